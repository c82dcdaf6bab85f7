"""HTTP routes of the demo project."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path, re_path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("chat/", views.chat_index, name="chat_index"),
    re_path(
        r"^chat/(?P<room>[A-Za-z0-9_-]{1,60})/$", views.chat_room, name="chat_room"
    ),
    path("notifications/", views.notifications, name="notifications"),
    path("notifications/send/", views.notify, name="notify"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
