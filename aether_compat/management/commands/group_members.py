"""`manage.py group_members GROUP`: list the channels in a group, then their count
(or, with `--json`, one object for scripts). An unreachable layer is a one-line
error and a non-zero exit (with `--json`, also an object with its `error`)."""

import json
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...errors import AetherError, MemberUnreachable
from ...facade import Channels
from .. import quiet_layer_logs, reach_note


class Command(BaseCommand):
    help = "List the members (channel names) of GROUP, one a line, and their count."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("group", help="group name, e.g. room:lobby")
        parser.add_argument(
            "--json", action="store_true", help="print the members as one JSON object"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        group = options["group"]
        try:
            Channels.group(group)  # the name rule first, before any note
            note = reach_note(Channels.layer)
            if note:
                self.stderr.write(self.style.WARNING(note))
            with quiet_layer_logs(options["verbosity"]):
                members = Channels.sync.group_members(group)
        except (TypeError, ImproperlyConfigured, NotImplementedError) as exc:
            raise CommandError(str(exc)) from exc
        except (AetherError, ConnectionError, OSError) as exc:
            why = exc.reason if isinstance(exc, MemberUnreachable) else str(exc)
            if options["json"]:
                self.stdout.write(json.dumps({"group": group, "error": why}))
            raise CommandError(f"cannot list {group!r}: {why}") from exc
        if options["json"]:
            self.stdout.write(json.dumps({"group": group, "members": sorted(members)}))
            return
        for member in sorted(members):
            self.stdout.write(member)
        noun = "member" if len(members) == 1 else "members"
        self.stdout.write(f"{len(members)} {noun} in {group!r}")
