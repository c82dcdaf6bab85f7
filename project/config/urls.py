"""HTTP routes of the demo site: the demo app's pages, the auth views, the admin
(with the live connections page) and the Prometheus metrics."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from aether_compat.metrics_view import metrics_view

urlpatterns = [
    path("", include("project.demo.urls")),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/aether/", include("aether_compat.admin_urls")),
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
]
