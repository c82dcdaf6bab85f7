"""The demo's settings as the tests run them: as shipped (DEBUG off), with a
secret key of the tests' own. Servers the tests start inherit the key."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-" + "k" * 40)

from project.config.settings import *  # noqa: F403
