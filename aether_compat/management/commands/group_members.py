"""`manage.py group_members GROUP`: list the channels in a group, then their count."""

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...facade import Channels
from .. import reach_note


class Command(BaseCommand):
    help = "List the members (channel names) of GROUP, one a line, and their count."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("group", help="group name, e.g. room:lobby")

    def handle(self, *args: Any, **options: Any) -> None:
        group = options["group"]
        try:
            Channels.group(group)  # the name rule first, before any note
            note = reach_note(Channels.layer)
            if note:
                self.stderr.write(self.style.WARNING(note))
            members = Channels.sync.group_members(group)
        except (TypeError, ImproperlyConfigured, NotImplementedError) as exc:
            raise CommandError(str(exc)) from exc
        for member in sorted(members):
            self.stdout.write(member)
        noun = "member" if len(members) == 1 else "members"
        self.stdout.write(f"{len(members)} {noun} in {group!r}")
