"""URLs of the live admin page; every view is wrapped by `admin.site.admin_view`
(staff only; others go to the admin login)."""

from django.contrib import admin
from django.urls import path

from . import admin_views

app_name = "aether_compat_admin"

urlpatterns = [
    path("", admin.site.admin_view(admin_views.live_page), name="live"),
    path("state.json", admin.site.admin_view(admin_views.state), name="state"),
    path(
        "disconnect/",
        admin.site.admin_view(admin_views.disconnect),
        name="disconnect",
    ),
]
