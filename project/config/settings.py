"""Settings of the demo site; the only module that reads the environment."""

import json
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parents[2]  # the repository, home of db.sqlite3

# Safe as shipped: DEBUG is on only when asked for (DJANGO_DEBUG=1, development), and
# outside development there is no fallback secret key.
DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "Set DJANGO_SECRET_KEY (or DJANGO_DEBUG=1 for local development)"
        )
    SECRET_KEY = "development-only-never-in-production-" + "x" * 20
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")

# Behind HTTPS (DJANGO_HTTPS=1): secure cookies, redirects and HSTS, so that
# `manage.py check --deploy` passes. Behind a TLS-terminating proxy, also set
# DJANGO_PROXY_SSL_HEADER=1 (the proxy must set X-Forwarded-Proto).
if os.environ.get("DJANGO_HTTPS") == "1":
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 31_536_000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
if os.environ.get("DJANGO_PROXY_SSL_HEADER") == "1":
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "aether_compat",
    "project.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files with DEBUG off too, from the apps' static folders (no
    # collectstatic needed); only files found at startup are served.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

# Login throttling (django-axes): 5 failed logins of one username from one address
# lock that pair out for 15 minutes; a successful login clears the count.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = 0.25  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True

ROOT_URLCONF = "project.config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

ASGI_APPLICATION = "project.config.asgi.application"
WSGI_APPLICATION = None

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("AETHER_DB_PATH", str(BASE_DIR / "db.sqlite3")),
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in (
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    )
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"

# aether_compat: the demo lets anonymous visitors into chat rooms (the library's
# default does not; AETHER_ALLOW_ANONYMOUS_ROOMS=0 turns that off), and operators may
# tune the WebSocket limits with a JSON object,
# e.g. AETHER_WEBSOCKET_LIMITS='{"commands_per_second": 50}'.
AETHER_ALLOW_ANONYMOUS_ROOMS = (
    os.environ.get("AETHER_ALLOW_ANONYMOUS_ROOMS", "1") == "1"
)
AETHER_WEBSOCKET_LIMITS = json.loads(os.environ.get("AETHER_WEBSOCKET_LIMITS", "{}"))
# Prometheus scrapes /metrics with this bearer token (staff users may read it too).
AETHER_METRICS_TOKEN = os.environ.get("AETHER_METRICS_TOKEN") or None

# Chat rooms (project/demo/room_store.py): only signed-in users create them, at most
# `per_user` each and `total` in all; a room's last activity (the lists' order) is
# written at most every `activity_seconds` per room and server process.
# DEMO_ROOMS='{"per_user": 3}' overrides any of them.
DEMO_ROOMS = {
    "per_user": 10,
    "total": 200,
    "activity_seconds": 30,
    **json.loads(os.environ.get("DEMO_ROOMS", "{}")),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"one_line": {"()": "project.config.logs.OneLine"}},
    # Every line says its level, so an ERROR stands out (the tests fail on one).
    "formatters": {"levelled": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "levelled"},
        "client_errors": {
            "class": "logging.StreamHandler",
            "filters": ["one_line"],
            "formatter": "levelled",
        },
    },
    "loggers": {
        "aether_compat": {"handlers": ["console"], "level": "WARNING"},
        "django.request": {"handlers": ["console"], "level": "ERROR"},
        # What a client can provoke at will (a bad Host header) is one line, not a
        # traceback at ERROR.
        "django.security": {
            "handlers": ["client_errors"],
            "level": "WARNING",
            "propagate": False,
        },
    },
}

# Group history (docs/history.md): a chat room keeps its last 100 messages for 5
# minutes, so a tab that lost its connection gets what it missed; the dashboard
# keeps its last statistics and hands them to a new viewer at once. Presence events
# (docs/presence.md): rooms and the dashboard tell their members who is there and
# who comes and goes (the chat's member list).
# AETHER_GROUP_OPTIONS='{"room:*": {...}}' (JSON) replaces these.
GROUP_OPTIONS = json.loads(os.environ.get("AETHER_GROUP_OPTIONS", "null")) or {
    "room:*": {"history_size": 100, "history_ttl": 300, "presence_events": True},
    "dashboard:*": {
        "history_size": 1,
        "history_ttl": 60,
        "last_on_join": True,
        "presence_events": True,
    },
}

REDIS_URL = os.environ.get("AETHER_REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "aether_compat.layers.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "group_options": GROUP_OPTIONS},
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "aether_compat.layers.InMemoryChannelLayer",
            "CONFIG": {"group_options": GROUP_OPTIONS},
        }
    }
