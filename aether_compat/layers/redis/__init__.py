"""The Redis channel layer, as a package. Read it in this order:

- `layer.py`: `RedisChannelLayer`, every public method (send, receive,
  new_channel, group_add/discard/send/members, flush, close).
- `groups.py`: memberships and counted fan-out (`group_scripts.py`: its Lua);
  `members.py` reads a group's members; `confirm.py` confirmed broadcasts.
- `inbox.py`: the background work for this instance's own channels (the pump, the
  expiry sweeper, the ack flusher); `pump.py` is the loop that moves the inbox out
  of Redis, `handoff.py` what it does with each item (buffers, sessions, answers
  to confirming broadcasters), `local.py` the in-process buffers where messages
  wait until `receive()` takes them.
- `history.py`: groups that keep history (offsets, storage, `group_history`,
  `last_on_join`; `history_scripts.py` its Lua, `position.py` the position an item
  carries); `sequencer.py` keeps each member's messages in offset order.
- `presence.py`: the process's live key, the memberships it re-announces and the
  discards it retries; `beat.py` the heartbeat thread that keeps them in Redis
  (no event loop needed); `lifecycle.py` fork, exit and SIGTERM.
- `plain.py`: receiving on plain channels (their own list, no local buffer).
- `connections.py`: redis-py clients per event loop and host, and batches of
  commands and scripts in one round trip per host (`held.py`: the command
  connection each (loop, host) keeps for them, the pool when it is busy).
- `config.py`: the settings (hosts, checks, encryption, timing rules).
- `keys.py`: key names and which box a channel lives in; `scripts.py`: the Lua.
- `util.py`: the logger, clock, retry pace, cancellation check and counters.
"""

from .layer import RedisChannelLayer
from .lifecycle import leave_now, leave_on_sigterm

__all__ = ["RedisChannelLayer", "leave_now", "leave_on_sigterm"]
