"""HTTP routes of the demo app (config/urls.py includes them at the site root)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("rooms/new/", views.new_room, name="new_room"),
    path("chat/", views.chat_index, name="chat_index"),
    path("chat/<room:room>/", views.chat_room, name="chat_room"),
    path("chat/<room:room>/history/", views.chat_history, name="chat_history"),
    # Any other name under chat/ is explained, not a bare 404.
    path("chat/<path:room>/", views.bad_room_name, name="bad_room_name"),
    path("notifications/", views.notifications, name="notifications"),
    path("notifications/send/", views.notify, name="notify"),
    path("dashboard/", views.dashboard, name="dashboard"),
]
