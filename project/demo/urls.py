"""HTTP routes of the demo app (config/urls.py includes them at the site root)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("chat/", views.chat_index, name="chat_index"),
    path("chat/<room:room>/", views.chat_room, name="chat_room"),
    path("chat/<room:room>/history/", views.chat_history, name="chat_history"),
    path("notifications/", views.notifications, name="notifications"),
    path("notifications/send/", views.notify, name="notify"),
    path("dashboard/", views.dashboard, name="dashboard"),
]
