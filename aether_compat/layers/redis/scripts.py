"""The Lua scripts of the Redis layer: each one is an operation that must be atomic
(check capacity, then queue) and costs one round trip. Key layout: keys.py.

Every script declares in KEYS one key of the slot it works in (for Redis Cluster
routing) and builds the other names of that slot from the `base` argument.
`group_scripts.py` holds the scripts of groups, built on the helpers here.
"""

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Script:
    """A Lua source and its SHA1, so callers can EVALSHA and load on NOSCRIPT."""

    name: str
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


HELPERS = """
local function deadline_of(item)
  return tonumber(string.sub(item, 1, string.find(item, '\\n', 1, true) - 1))
end

-- Drop expired items from the head of a plain channel; its length afterwards.
local function sweep_plain(q, now)
  local head = redis.call('LINDEX', q, 0)
  while head and deadline_of(head) < now do
    redis.call('LPOP', q)
    head = redis.call('LINDEX', q, 0)
  end
  return redis.call('LLEN', q)
end

-- Queue on a plain channel within capacity: 1 queued, 0 full.
local function push_plain(base, cap, usecaps, now, item, ttl)
  local q = base .. 'q'
  if usecaps then cap = tonumber(redis.call('GET', base .. 'c')) or cap end
  if redis.call('LLEN', q) >= cap and sweep_plain(q, now) >= cap then return 0 end
  redis.call('RPUSH', q, item)
  redis.call('PEXPIRE', q, ttl)
  return 1
end

-- One stored item for every token of a process box that has room; full tokens are
-- appended to `full`. Returns how many tokens the item was stored for, and them.
-- Counts are read and written with one HMGET and one HSET, whatever their number.
-- HMGET / HSET over lists of any length (unpack is limited to a few thousand).
local function hmget(key, fields)
  local out = {}
  for first = 1, #fields, 1000 do
    local last = math.min(#fields, first + 999)
    for _, v in ipairs(redis.call('HMGET', key, unpack(fields, first, last))) do
      out[#out + 1] = v
    end
  end
  return out
end

local function hset(key, pairs)
  for first = 1, #pairs, 1000 do
    redis.call('HSET', key, unpack(pairs, first, math.min(#pairs, first + 999)))
  end
end

local function push_proc(base, tokens, cap, usecaps, head, payload, ttl, cttl, full)
  local counts = base .. 'n'
  local have = hmget(counts, tokens)
  local caps = usecaps and hmget(base .. 'c', tokens) or {}
  local ok, updates = {}, {}
  for i, t in ipairs(tokens) do
    local n = tonumber(have[i]) or 0
    if n >= (tonumber(caps[i]) or cap) then
      full[#full + 1] = t
    else
      ok[#ok + 1] = t
      updates[#updates + 1] = t
      updates[#updates + 1] = n + 1
    end
  end
  local stored = table.concat(ok, ' ')
  if #ok > 0 then
    hset(counts, updates)
    redis.call('RPUSH', base .. 'q', head .. stored .. '\\n' .. payload)
    redis.call('PEXPIRE', base .. 'q', ttl)
    redis.call('PEXPIRE', counts, cttl)
  end
  return #ok, stored
end

-- Take back counts of messages received or expired: `acks` is one string of
-- "token count" pairs separated by spaces (one argument, however many tokens).
-- One HMGET, one HSET and one HDEL per 1000 tokens, not a call per token.
local function ack(counts, acks)
  local tokens, taken = {}, {}
  for t, n in string.gmatch(acks or '', '(%S+) (%d+)') do
    tokens[#tokens + 1] = t
    taken[#tokens] = tonumber(n)
  end
  if #tokens == 0 then return end
  local have, keep, gone = hmget(counts, tokens), {}, {}
  for i, t in ipairs(tokens) do
    local left = (tonumber(have[i]) or 0) - taken[i]
    if left > 0 then
      keep[#keep + 1] = t
      keep[#keep + 1] = left
    else
      gone[#gone + 1] = t
    end
  end
  hset(counts, keep)
  for first = 1, #gone, 1000 do
    redis.call('HDEL', counts, unpack(gone, first, math.min(#gone, first + 999)))
  end
end
"""

# KEYS: inbox of the box. ARGV: base, token, capacity, deadline, payload, ttl, cttl,
# acks (see ACK: the sender's own received messages, taken back first).
# Returns 1 queued, 0 full, -1 the process is gone.
SEND_PROC = Script(
    "send_proc",
    HELPERS
    + """
local base = ARGV[1]
ack(base .. 'n', ARGV[8])
if redis.call('EXISTS', base .. 'l') == 0 then return -1 end
return push_proc(base, {ARGV[2]}, tonumber(ARGV[3]), false, ARGV[4] .. '\\n',
                 ARGV[5], ARGV[6], ARGV[7], {})
""",
)

# KEYS: the channel's list. ARGV: base, capacity, now, deadline, payload, ttl.
SEND_PLAIN = Script(
    "send_plain",
    HELPERS
    + """
return push_plain(ARGV[1], tonumber(ARGV[2]), false, tonumber(ARGV[3]),
                  ARGV[4] .. '\\n\\n' .. ARGV[5], ARGV[6])
""",
)

# KEYS: the channel's list. ARGV: now. The oldest unexpired item, or nil.
TAKE_PLAIN = Script(
    "take_plain",
    HELPERS
    + """
local now = tonumber(ARGV[1])
local item = redis.call('LPOP', KEYS[1])
while item and deadline_of(item) < now do item = redis.call('LPOP', KEYS[1]) end
return item
""",
)

# KEYS: counts hash. ARGV: "token n token n ...": messages received or expired.
ACK = Script(
    "ack",
    HELPERS
    + """
ack(KEYS[1], ARGV[1])
return 0
""",
)

# KEYS: inbox, in-flight list. ARGV: n. Commit the last batch, take up to n more.
PUMP_TAKE = Script(
    "pump_take",
    """
redis.call('DEL', KEYS[2])
local items = redis.call('LPOP', KEYS[1], tonumber(ARGV[1]))
if not items then return {} end
redis.call('RPUSH', KEYS[2], unpack(items))
return items
""",
)

# KEYS: inbox, in-flight list. ARGV: items already handed on (forget them).
# Items a stopped pump took but never handed on go back to the head, in order.
RECOVER = Script(
    "recover",
    """
for i = 1, #ARGV do redis.call('LREM', KEYS[2], 1, ARGV[i]) end
while redis.call('LMOVE', KEYS[2], KEYS[1], 'RIGHT', 'LEFT') do end
return 0
""",
)
