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

-- A listpack hash takes O(n) per field until it turns into a hash table at 128
-- fields: a value longer than any listpack keeps makes it a table at once.
local function hset(key, pairs)
  local big = #pairs > 256
  if big then redis.call('HSET', key, '~', string.rep('~', 100)) end
  for first = 1, #pairs, 1000 do
    redis.call('HSET', key, unpack(pairs, first, math.min(#pairs, first + 999)))
  end
  if big then redis.call('HDEL', key, '~') end
end

-- The counts of `tokens` (`held` of the box's tokens have one), by position or,
-- when few tokens have a count, by token: no reply per token.
local function counts_of(key, tokens, held)
  if held == 0 then return {} end
  if held * 4 >= #tokens then return hmget(key, tokens) end
  local flat, by_token = redis.call('HGETALL', key), {}
  for i = 1, #flat, 2 do by_token[flat[i]] = flat[i + 1] end
  return by_token
end

-- Open items: group messages stored for a process without a count per token,
-- because none of their tokens could be full (`fast_room`). A token's count is
-- then its entry in <base>n plus the open items that name it, until the process
-- settles them (see ACK). <base>o holds each open item's tokens by id.
local OPEN_MAX = 8

local function fast_room(counts, held, open, cap)
  if open >= OPEN_MAX or held > 64 then return false end
  local most = 0
  if held > 0 then
    local flat = redis.call('HGETALL', counts)
    for i = 2, #flat, 2 do most = math.max(most, tonumber(flat[i])) end
  end
  return most + open < cap
end

-- How many open items name each token of `wanted` (a set).
local function open_counts(base, wanted)
  local found = {}
  for _, list in ipairs(redis.call('HVALS', base .. 'o')) do
    for t in string.gmatch(list, '%S+') do
      if wanted[t] then found[t] = (found[t] or 0) + 1 end
    end
  end
  return found
end

-- One stored item for every token of a process box that has room; full tokens are
-- appended to `full`. Returns how many tokens the item was stored for, and them.
-- With `fast` (a group message) it is stored open when no token can be full;
-- else every token's count is checked and raised.
local function push_proc(base, tokens, cap, usecaps, head, payload, ttl, cttl, full,
                         fast)
  local counts, open_key = base .. 'n', base .. 'o'
  local held = redis.call('HLEN', counts)
  local open = redis.call('HLEN', open_key)
  local q = base .. 'q'
  if fast and not usecaps and fast_room(counts, held, open, cap) then
    local stored = table.concat(tokens, ' ')
    local id = redis.call('INCR', base .. 's')
    redis.call('HSET', open_key, id, stored)
    redis.call('RPUSH', q, head .. '*' .. id .. ' ' .. stored .. '\\n' .. payload)
    redis.call('PEXPIRE', q, ttl)
    redis.call('PEXPIRE', open_key, cttl)
    redis.call('PEXPIRE', base .. 's', cttl)
    return #tokens, stored
  end
  local have = counts_of(counts, tokens, held)
  local caps = usecaps and hmget(base .. 'c', tokens) or {}
  local in_open = {}
  if open > 0 then
    local near, any = {}, false
    for i, t in ipairs(tokens) do
      local n = tonumber(have[i] or have[t]) or 0
      if n + open >= (tonumber(caps[i]) or cap) then near[t], any = true, true end
    end
    if any then in_open = open_counts(base, near) end
  end
  local ok, updates = {}, {}
  for i, t in ipairs(tokens) do
    local n = tonumber(have[i] or have[t]) or 0
    if n + (in_open[t] or 0) >= (tonumber(caps[i]) or cap) then
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
    redis.call('RPUSH', q, head .. stored .. '\\n' .. payload)
    redis.call('PEXPIRE', q, ttl)
    redis.call('PEXPIRE', counts, cttl)
  end
  return #ok, stored
end

-- Take back counts of messages received or expired, and settle open items:
-- `acks` is one string of "token count" pairs separated by spaces (one argument,
-- however many tokens). A negative count raises the token's count (a message of
-- an open item that went into a buffer, not to a waiting receiver); "*<id> 1"
-- settles open item <id> (its process has handed it on). One HMGET, one HSET
-- and one HDEL per 1000 tokens, not a call per token.
local function ack(counts, acks)
  local tokens, taken, ids = {}, {}, {}
  for t, n in string.gmatch(acks or '', '(%S+) (%-?%d+)') do
    if string.byte(t, 1) == 42 then  -- '*'
      ids[#ids + 1] = string.sub(t, 2)
    else
      tokens[#tokens + 1] = t
      taken[#tokens] = tonumber(n)
    end
  end
  if #tokens > 0 then
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
  for first = 1, #ids, 1000 do
    redis.call('HDEL', string.sub(counts, 1, -2) .. 'o',
               unpack(ids, first, math.min(#ids, first + 999)))
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
                 ARGV[5], ARGV[6], ARGV[7], {}, false)
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

# KEYS: counts hash. ARGV: "token n token n ...": messages received or expired,
# and open items settled (see `ack`).
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
