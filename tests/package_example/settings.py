"""A minimal project that uses the installed wheel: the library's own install
story (INSTALLED_APPS, CHANNEL_LAYERS), nothing from the repository."""

SECRET_KEY = "package-test"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "channels",
    "aether_compat",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CHANNEL_LAYERS = {"default": {"BACKEND": "aether_compat.layers.InMemoryChannelLayer"}}
AETHER_ALLOW_ANONYMOUS_ROOMS = True
USE_TZ = True
