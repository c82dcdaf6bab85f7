"""`manage.py broadcast GROUP MESSAGE`: send to a group and print who got it.

It exits non-zero when any member failed (scripts and cron jobs notice), unless
`--allow-partial` accepts a delivery that reached some members; `--json` prints one
object for scripts instead of the text report. When the layer itself failed (Redis
down), the error says so in one line."""

import json
import sys
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...facade import Channels
from ...layers import is_aether_layer
from ...results import SendResult
from .. import layer_failure, quiet_layer_logs, reach_note


class Command(BaseCommand):
    help = (
        "Broadcast MESSAGE (or the bytes of --binary FILE) to GROUP through the "
        "Channels facade and print the SendResult: sent, failed, and each error."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("group", help="group name, e.g. room:lobby")
        parser.add_argument("message", nargs="?", help="the text to send")
        parser.add_argument("--sender", help="who the message is from")
        parser.add_argument(
            "--binary",
            metavar="FILE",
            help="send the bytes of FILE ('-' for stdin) instead of MESSAGE",
        )
        parser.add_argument(
            "--allow-partial",
            action="store_true",
            help="exit 0 when some members failed but at least one got it",
        )
        parser.add_argument(
            "--json", action="store_true", help="print the result as one JSON object"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        group, text, path = options["group"], options["message"], options["binary"]
        if (text is None) == (path is None):
            raise CommandError("give either MESSAGE or --binary FILE (exactly one)")
        with quiet_layer_logs(options["verbosity"]):
            result = self._send(group, text, path, options["sender"])
        if options["json"]:
            self.stdout.write(json.dumps(_as_json(group, result)))
        else:
            self._report(group, result, counted=is_aether_layer(Channels.layer))
        _fail_unless_delivered(group, result, options["allow_partial"])

    def _send(
        self, group: str, text: str | None, path: str | None, sender: str | None
    ) -> SendResult:
        try:
            target = Channels.sync.group(group)
            self._warn_about_reach(Channels.layer)
            if path is None:
                return target.broadcast(text, sender=sender)
            return target.broadcast_binary(_read_bytes(path), sender=sender)
        except (TypeError, ImproperlyConfigured, OSError) as exc:
            raise CommandError(str(exc)) from exc

    def _warn_about_reach(self, layer: Any) -> None:
        note = reach_note(layer)
        if note:
            self.stderr.write(self.style.WARNING(note))

    def _report(self, group: str, result: SendResult, counted: bool) -> None:
        self.stdout.write(
            f"Broadcast to {group!r}: sent={result.sent_count} "
            f"failed={result.failed_count}"
        )
        for error in result.errors:
            self.stdout.write(f"error: {type(error).__name__}: {error}")
        if not counted:
            self.stderr.write(
                "Note: this layer does not count deliveries (its group_send returns "
                "None), so sent=0 means 'not counted', not 'nobody'."
            )


def _fail_unless_delivered(group: str, result: SendResult, allow_partial: bool) -> None:
    """A CommandError (exit status 1) unless everyone got it, or some did and
    `allow_partial` accepts that."""
    if not result.failed_count or (allow_partial and result.sent_count > 0):
        return
    down = layer_failure(group, list(result.errors))
    if down is not None:
        raise CommandError(f"cannot broadcast to {group!r}: {down}")
    raise CommandError(
        f"{result.failed_count} of {result.sent_count + result.failed_count} "
        f"members of {group!r} did not get the message"
    )


def _as_json(group: str, result: SendResult) -> dict[str, Any]:
    errors = [
        {
            "type": type(error).__name__,
            "channel": getattr(error, "channel", None),
            "message": str(error),
        }
        for error in result.errors
    ]
    return {
        "group": group,
        "sent": result.sent_count,
        "failed": result.failed_count,
        "errors": errors,
    }


def _read_bytes(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    return Path(path).read_bytes()
