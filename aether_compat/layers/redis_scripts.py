"""The Lua scripts of the Redis layer: each one is an operation that must be atomic
(check capacity, then queue) and costs one round trip. Key layout: redis_keys.py.

Every script declares in KEYS one key of the slot it works in (for Redis Cluster
routing) and builds the other names of that slot from the `base` argument; only
GROUP_SEND and GROUP_MEMBERS cross slots, and the layer runs them only when all keys
live on one non-cluster server.
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


_HELPERS = """
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
-- appended to `full`. Returns how many tokens the item was stored for. Counts are
-- read and written with one HMGET and one HSET, whatever the number of tokens.
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
  if #ok > 0 then
    hset(counts, updates)
    redis.call('RPUSH', base .. 'q', head .. table.concat(ok, ' ') .. '\\n' .. payload)
    redis.call('PEXPIRE', base .. 'q', ttl)
    redis.call('PEXPIRE', counts, cttl)
  end
  return #ok
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

-- Deliver a group message to one process box, leaving out the members in `skip`
-- ("<box> <token>": sessions the sender serves itself). Returns sent, code, tokens
-- where code is 'e' (no members left here), 'g' (process gone: tokens failed) or
-- 'f' (tokens were full).
local function deliver_proc(base, group, cutoff, cap, usecaps, head, payload,
                            ttl, cttl, skip)
  local members = base .. 'm:' .. group
  local box = string.match(base, '{([^}]*)}')
  redis.call('ZREMRANGEBYSCORE', members, '-inf', '(' .. cutoff)
  local tokens = {}
  for _, t in ipairs(redis.call('ZRANGE', members, 0, -1)) do
    if not skip[box .. ' ' .. t] then tokens[#tokens + 1] = t end
  end
  if #tokens == 0 then
    if redis.call('EXISTS', members) == 0 then return 0, 'e', tokens end
    return 0, 'f', tokens
  end
  if redis.call('EXISTS', base .. 'l') == 0 then return 0, 'g', tokens end
  local full = {}
  local sent = push_proc(base, tokens, cap, usecaps, head, payload, ttl, cttl, full)
  return sent, 'f', full
end
"""

# KEYS: inbox of the box. ARGV: base, token, capacity, deadline, payload, ttl, cttl,
# acks (see ACK: the sender's own received messages, taken back first).
# Returns 1 queued, 0 full, -1 the process is gone.
SEND_PROC = Script(
    "send_proc",
    _HELPERS
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
    _HELPERS
    + """
return push_plain(ARGV[1], tonumber(ARGV[2]), false, tonumber(ARGV[3]),
                  ARGV[4] .. '\\n\\n' .. ARGV[5], ARGV[6])
""",
)

# KEYS: the channel's list. ARGV: now. The oldest unexpired item, or nil.
TAKE_PLAIN = Script(
    "take_plain",
    _HELPERS
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
    _HELPERS
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

# KEYS: group's box set. ARGV: cutoff. Boxes with members joined since cutoff.
GROUP_BOXES = Script(
    "group_boxes",
    """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
""",
)

_DELIVER_ARGS = """
local cap, usecaps = tonumber(ARGV[4]), ARGV[5] == '1'
local head, payload, ttl, cttl = ARGV[6] .. '\\n', ARGV[7], ARGV[8], ARGV[9]
local skip = {}
for i = 10, #ARGV do skip[ARGV[i]] = true end
"""

# KEYS: inbox of a process box. ARGV: base, group, cutoff, capacity, usecaps,
# deadline, payload, ttl, cttl, skipped tokens... Returns {sent, code, tokens...}.
DELIVER_PROC = Script(
    "deliver_proc",
    _HELPERS
    + _DELIVER_ARGS
    + """
local sent, code, tokens = deliver_proc(ARGV[1], ARGV[2], ARGV[3], cap, usecaps,
                                        head, payload, ttl, cttl, skip)
local out = {sent, code}
for _, t in ipairs(tokens) do out[#out + 1] = t end
return out
""",
)

# KEYS: a plain channel's list. ARGV: base, capacity, usecaps, now, deadline,
# payload, ttl. Returns 1 queued, 0 full.
DELIVER_PLAIN = Script(
    "deliver_plain",
    _HELPERS
    + """
return push_plain(ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1', tonumber(ARGV[4]),
                  ARGV[5] .. '\\n\\n' .. ARGV[6], ARGV[7])
""",
)

# One server only. KEYS: group's box set. ARGV: prefix, group, cutoff, capacity,
# usecaps, deadline, payload, ttl, cttl, skipped tokens..., then (as ARGV[#ARGV])
# now. Returns {sent, box, code, token, ...} with one triple per failed member.
GROUP_SEND = Script(
    "group_send",
    _HELPERS
    + """
local now = tonumber(table.remove(ARGV))
"""
    + _DELIVER_ARGS
    + """
local prefix, group, cutoff = ARGV[1], ARGV[2], ARGV[3]
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. cutoff)
local out = {0}
for _, box in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local base = prefix .. ':{' .. box .. '}:'
  if string.sub(box, 1, 2) == 'c.' then
    if skip[box] then
    elseif push_plain(base, cap, usecaps, now, head .. '\\n' .. payload, ttl) == 1 then
      out[1] = out[1] + 1
    else
      out[#out + 1] = box; out[#out + 1] = 'f'; out[#out + 1] = ''
    end
  else
    local sent, code, tokens = deliver_proc(base, group, cutoff, cap, usecaps,
                                            head, payload, ttl, cttl, skip)
    out[1] = out[1] + sent
    if code ~= 'f' then redis.call('ZREM', KEYS[1], box) end
    for _, t in ipairs(tokens) do
      out[#out + 1] = box; out[#out + 1] = code; out[#out + 1] = t
    end
  end
end
return out
""",
)

# KEYS: the process's live key. ARGV: base, group, cutoff. Tokens, or nil if gone.
MEMBERS_PROC = Script(
    "members_proc",
    """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
return redis.call('ZRANGEBYSCORE', ARGV[1] .. 'm:' .. ARGV[2], ARGV[3], '+inf')
""",
)

# One server only. KEYS: group's box set. ARGV: prefix, group, cutoff.
# Returns {box, n, token * n, box, n, ...} for live boxes.
GROUP_MEMBERS = Script(
    "group_members",
    """
local prefix, group, cutoff = ARGV[1], ARGV[2], ARGV[3]
local out = {}
for _, box in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], cutoff, '+inf')) do
  local base = prefix .. ':{' .. box .. '}:'
  if string.sub(box, 1, 2) == 'c.' then
    out[#out + 1] = box; out[#out + 1] = 0
  elseif redis.call('EXISTS', base .. 'l') == 1 then
    local tokens = redis.call('ZRANGEBYSCORE', base .. 'm:' .. group, cutoff, '+inf')
    out[#out + 1] = box; out[#out + 1] = #tokens
    for _, t in ipairs(tokens) do out[#out + 1] = t end
  end
end
return out
""",
)

ALL = (
    SEND_PROC,
    SEND_PLAIN,
    TAKE_PLAIN,
    ACK,
    PUMP_TAKE,
    RECOVER,
    GROUP_BOXES,
    DELIVER_PROC,
    DELIVER_PLAIN,
    GROUP_SEND,
    MEMBERS_PROC,
    GROUP_MEMBERS,
)
