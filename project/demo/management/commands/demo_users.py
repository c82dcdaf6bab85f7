"""`python manage.py demo_users`: create (or reset) the demo's logins and print them,
so the README's run command ends at a page someone can sign in to."""

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

DEMO_USERS = (
    ("alice", False),
    ("bob", False),
    ("staff", True),
)


class Command(BaseCommand):
    help = "Create or reset the demo users (alice, bob) and a staff user; print logins."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--password",
            help="one password for every demo user (default: a random one each)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model().objects
        self.stdout.write("Demo logins (open http://127.0.0.1:8000/login/):")
        for username, staff in DEMO_USERS:
            password = options["password"] or secrets.token_urlsafe(9)
            user, _ = users.get_or_create(username=username)
            user.is_staff = staff
            user.is_active = True
            user.set_password(password)
            user.save()
            role = "staff" if staff else "user"
            self.stdout.write(
                f"  {role:5}  username: {username:6}  password: {password}"
            )
