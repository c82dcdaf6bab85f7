"""HTTP routes of the demo project."""

urlpatterns: list = []
