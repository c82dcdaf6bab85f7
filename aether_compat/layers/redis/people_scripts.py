"""The Lua scripts of presence (people.py): each runs in one group's slot, so every
join, leave and settled leave of a group is decided, counted and numbered in one
atomic step, whichever process or server makes it.

Keys of a group (base `<prefix>:{g.<group>}:`):

    pc  hash    connection ("<box> <token>", or a plain channel's box) ->
                "<len(key)>:<key><meta msgpack>"; without presence events only
                connections with metadata (readers name the others)
    pb  hash    box -> its connections here (crash sweeps read only this)
    pk  hash    presence-events groups: user key -> live connections
    pg  zset    presence-events groups: user key -> when its leave is due (grace)
    px  hash    presence-events groups: user key in grace -> its last meta
    ps  string  presence-events groups: the sequence of announced changes

Scripts return changes as a flat list of (sign "+"/"-", key, seq, meta).
"""

from .scripts import Script

_COMMON = """
local base = ARGV[1]
local C, B, K = base .. 'pc', base .. 'pb', base .. 'pk'
local G, X, S = base .. 'pg', base .. 'px', base .. 'ps'
local out = {}
local function parse(v)
  local n, rest = string.match(v, '^(%d+):(.*)$')
  n = tonumber(n)
  return string.sub(rest, 1, n), string.sub(rest, n + 1)
end
local function box_of(field)
  local space = string.find(field, ' ', 1, true)
  if space then return string.sub(field, 1, space - 1) end
  return field
end
-- Sequence numbers start at now_ms * 1000, so they grow across a lost dataset.
local function next_seq(floor)
  local q = redis.call('INCR', S)
  if q < tonumber(floor) then
    redis.call('SET', S, floor)
    q = tonumber(floor)
  end
  return q
end
local function change(sign, key, seq, meta)
  out[#out + 1] = sign; out[#out + 1] = key; out[#out + 1] = seq
  out[#out + 1] = meta
end
-- A key's first connection is a join, unless its leave waits in grace: then
-- the leave is called off and nobody hears of either.
local function key_up(key, meta, floor)
  if redis.call('HINCRBY', K, key, 1) == 1 then
    if redis.call('ZREM', G, key) == 1 then
      redis.call('HDEL', X, key)
    else
      change('+', key, next_seq(floor), meta)
    end
  end
end
-- A key's last connection: a leave now (due '') or due later, kept in grace.
local function key_down(key, meta, due, floor)
  if redis.call('HINCRBY', K, key, -1) <= 0 then
    redis.call('HDEL', K, key)
    if due == '' then
      change('-', key, next_seq(floor), meta)
    else
      redis.call('ZADD', G, due, key)
      redis.call('HSET', X, key, meta)
    end
  end
end
local function drop_field(field)
  redis.call('HDEL', C, field)
  local box = box_of(field)
  if redis.call('HINCRBY', B, box, -1) <= 0 then redis.call('HDEL', B, box) end
end
local function touch(ttl)
  for _, k in ipairs({C, B, K, G, X, S}) do redis.call('PEXPIRE', k, ttl) end
end
"""

# KEYS: pc. ARGV: base, events (1/0), ttl, floor, state (1/0), due ('' or ms:
# when a key left by a changed meta is due), own box ('' or the box whose other
# connections here are stale and leave), then field, value pairs.
# Returns {changes, seq, values of pc, {key, meta of each key in grace}} (the last
# three only with state).
JOIN = Script(
    "presence_join",
    _COMMON
    + """
local events, ttl, floor = ARGV[2] == '1', ARGV[3], ARGV[4]
local want, due, own = ARGV[5] == '1', ARGV[6], ARGV[7]
if own ~= '' then
  local given = {}
  for i = 8, #ARGV, 2 do given[ARGV[i]] = true end
  local all = redis.call('HGETALL', C)
  for i = 1, #all, 2 do
    if box_of(all[i]) == own and not given[all[i]] then
      drop_field(all[i])
      if events then
        local key, meta = parse(all[i + 1])
        key_down(key, meta, due, floor)
      end
    end
  end
end
for i = 8, #ARGV, 2 do
  local field, value = ARGV[i], ARGV[i + 1]
  local old = redis.call('HGET', C, field)
  if value == '' then  -- no metadata, no events: nothing to store
    if old then drop_field(field) end
  else
    redis.call('HSET', C, field, value)
    if not old then redis.call('HINCRBY', B, box_of(field), 1) end
  end
  if events and value ~= '' then
    local key, meta = parse(value)
    if not old then
      key_up(key, meta, floor)
    else
      local old_key, old_meta = parse(old)
      if old_key ~= key then
        key_down(old_key, old_meta, due, floor)
        key_up(key, meta, floor)
      end
    end
  end
end
touch(ttl)
if not want then return {out} end
local ghosts = {}
for _, key in ipairs(redis.call('ZRANGE', G, 0, -1)) do
  ghosts[#ghosts + 1] = key
  ghosts[#ghosts + 1] = redis.call('HGET', X, key) or ''
end
return {out, redis.call('GET', S) or '0', redis.call('HVALS', C), ghosts}
""",
)

# KEYS: pc. ARGV: base, events (1/0), floor, due ('' leave now, else ms), fields.
# Returns the changes.
LEAVE = Script(
    "presence_leave",
    _COMMON
    + """
local events, floor, due = ARGV[2] == '1', ARGV[3], ARGV[4]
for i = 5, #ARGV do
  local old = redis.call('HGET', C, ARGV[i])
  if old then
    drop_field(ARGV[i])
    if events then
      local key, meta = parse(old)
      key_down(key, meta, due, floor)
    end
  end
end
return out
""",
)

# KEYS: pc. ARGV: base, now. Returns {1 if a leave is due else 0, {box, count..}}:
# the cheap look a sweep takes at each group.
PEEK = Script(
    "presence_peek",
    _COMMON
    + """
local due = redis.call('ZRANGEBYSCORE', G, '-inf', ARGV[2], 'LIMIT', 0, 1)
return {#due, redis.call('HGETALL', B)}
""",
)

# KEYS: pc. ARGV: base, now, floor, events (1/0), dead boxes... Announces the
# leaves that are due, and removes the connections of dead boxes: their keys
# left with no connection leave at once (no grace). Returns the changes.
SETTLE = Script(
    "presence_settle",
    _COMMON
    + """
local now, floor, events = ARGV[2], ARGV[3], ARGV[4] == '1'
for _, key in ipairs(redis.call('ZRANGEBYSCORE', G, '-inf', now)) do
  redis.call('ZREM', G, key)
  local meta = redis.call('HGET', X, key) or ''
  redis.call('HDEL', X, key)
  change('-', key, next_seq(floor), meta)
end
if #ARGV >= 5 then
  local dead = {}
  for i = 5, #ARGV do dead[ARGV[i]] = true end
  local all = redis.call('HGETALL', C)
  for i = 1, #all, 2 do
    if dead[box_of(all[i])] then
      drop_field(all[i])
      if events then
        local key, meta = parse(all[i + 1])
        key_down(key, meta, '', floor)
      end
    end
  end
end
return out
""",
)

# KEYS: pc. ARGV: base. Returns {field, value, ...} of pc, {key, meta, ...} of
# the keys in grace, and the sequence.
READ = Script(
    "presence_read",
    _COMMON
    + """
local ghosts = {}
for _, key in ipairs(redis.call('ZRANGE', G, 0, -1)) do
  ghosts[#ghosts + 1] = key
  ghosts[#ghosts + 1] = redis.call('HGET', X, key) or ''
end
return {redis.call('HGETALL', C), ghosts, redis.call('GET', S) or '0'}
""",
)
