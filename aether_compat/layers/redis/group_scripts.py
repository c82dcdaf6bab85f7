"""The Lua scripts of groups (see scripts.py for the conventions and helpers):
fan-out to boxes, and member listing. Only GROUP_SEND and GROUP_MEMBERS cross
slots; the layer runs them only when all keys live on one non-cluster server.
"""

from .scripts import HELPERS, Script

_DELIVER_PROC = """
-- Deliver a group message to one process box, leaving out the members in `skip`
-- ("<box> <token>": sessions the sender serves itself). Returns sent, code, tokens,
-- stored where code is 'e' (no members left here), 'g' (process gone: tokens
-- failed) or 'f' (tokens were full), and stored the tokens it was stored for.
local function deliver_proc(base, group, cutoff, cap, usecaps, head, payload,
                            ttl, cttl, skip)
  local members = base .. 'm:' .. group
  local box = string.match(base, '{([^}]*)}')
  redis.call('ZREMRANGEBYSCORE', members, '-inf', '(' .. cutoff)
  local tokens = redis.call('ZRANGE', members, 0, -1)
  if next(skip) ~= nil then
    local kept = {}
    for _, t in ipairs(tokens) do
      if not skip[box .. ' ' .. t] then kept[#kept + 1] = t end
    end
    tokens = kept
  end
  if #tokens == 0 then
    if redis.call('EXISTS', members) == 0 then return 0, 'e', tokens, '' end
    return 0, 'f', tokens, ''
  end
  if redis.call('EXISTS', base .. 'l') == 0 then return 0, 'g', tokens, '' end
  local full = {}
  local sent, stored = push_proc(base, tokens, cap, usecaps, head, payload, ttl,
                                 cttl, full, true)
  return sent, 'f', full, stored
end
"""

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
local head, payload, ttl, cttl = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local confirm = string.find(head, '@', 1, true) ~= nil
local skip = {}
for i = 10, #ARGV do skip[ARGV[i]] = true end
"""

# KEYS: inbox of a process box. ARGV: base, group, cutoff, capacity, usecaps,
# head ("<deadline>\n", with "@<reply> " after it to ask for confirmation),
# payload, ttl, cttl, skipped tokens... Returns {sent, code, stored, tokens...}.
DELIVER_PROC = Script(
    "deliver_proc",
    HELPERS
    + _DELIVER_PROC
    + _DELIVER_ARGS
    + """
local sent, code, tokens, stored = deliver_proc(ARGV[1], ARGV[2], ARGV[3], cap,
                                                usecaps, head, payload, ttl, cttl,
                                                skip)
local out = {sent, code, stored}
for _, t in ipairs(tokens) do out[#out + 1] = t end
return out
""",
)

# KEYS: a plain channel's list. ARGV: base, capacity, usecaps, now, head (as
# DELIVER_PROC), payload, ttl. Returns 1 queued, 0 full.
DELIVER_PLAIN = Script(
    "deliver_plain",
    HELPERS
    + """
return push_plain(ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1', tonumber(ARGV[4]),
                  ARGV[5] .. '\\n' .. ARGV[6], ARGV[7])
""",
)

# One server only. KEYS: group's box set. ARGV: prefix, group, cutoff, capacity,
# usecaps, head (as DELIVER_PROC), payload, ttl, cttl, skipped tokens..., then (as
# ARGV[#ARGV]) now. Returns {sent, box, code, token, ...}: a triple per failed
# member and, when asked to confirm, (box, 'c', "token token ...") per box stored.
GROUP_SEND = Script(
    "group_send",
    HELPERS
    + _DELIVER_PROC
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
    local sent, code, tokens, stored = deliver_proc(base, group, cutoff, cap,
                                                    usecaps, head, payload, ttl,
                                                    cttl, skip)
    out[1] = out[1] + sent
    if code ~= 'f' then redis.call('ZREM', KEYS[1], box) end
    for _, t in ipairs(tokens) do
      out[#out + 1] = box; out[#out + 1] = code; out[#out + 1] = t
    end
    if confirm and sent > 0 then
      out[#out + 1] = box; out[#out + 1] = 'c'; out[#out + 1] = stored
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

# KEYS: a sorted set of members (a box's members of a group, or a group's boxes).
# ARGV: member, leave time in ms or '' (remove it whatever its join time), leave
# time, and on one server only the group's box set and the box: the box leaves it
# when it has no members left, unless it joined after the leave time.
# Returns how many members KEYS[1] has left.
LEAVE = Script(
    "leave",
    """
local function drop(key, member, at)
  local joined = redis.call('ZSCORE', key, member)
  if joined and (at == '' or tonumber(joined) <= tonumber(at)) then
    redis.call('ZREM', key, member)
  end
end
drop(KEYS[1], ARGV[1], ARGV[2])
local left = redis.call('ZCARD', KEYS[1])
if left == 0 and ARGV[4] then drop(ARGV[4], ARGV[5], ARGV[3]) end
return left
""",
)
