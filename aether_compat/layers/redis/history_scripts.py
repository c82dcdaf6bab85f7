"""The Lua of group history (conventions: scripts.py). Every key here lives in the
group's own slot, next to its box set (keys.py), so the offset is assigned and the
message stored by the same script that fans it out (one server) or that lists the
group's boxes (several hosts, Cluster):

    <prefix>:{g.<group>}:o   hash  e: epoch, n: newest offset (kept `meta_ttl`)
    <prefix>:{g.<group>}:h   list  "<offset> <ms>[ <excluded channel>...]\\n<data>",
                                   oldest first, at most history_size, PEXPIREd
                                   history_ttl after the newest message

The history variants wrap the plain scripts unchanged: they take their own
arguments off the end of ARGV, store the message, put the position mark in the
item head (ARGV[6], see position.py) and run the plain script's body as a function,
so a group without history runs exactly the script it ran before.
"""

from .group_scripts import GROUP_BOXES, GROUP_SEND
from .scripts import Script

_STREAM = """
-- The group's epoch and newest offset; a lost stream (no meta: Redis restarted
-- empty, flushed, or the meta expired) starts again with the `candidate` epoch.
local function position(base, candidate, meta_ttl)
  local meta = base .. 'o'
  local found = redis.call('HMGET', meta, 'e', 'n')
  if not found[1] then
    redis.call('DEL', base .. 'h')
    redis.call('HSET', meta, 'e', candidate, 'n', 0)
    found = {candidate, 0}
  end
  redis.call('PEXPIRE', meta, meta_ttl)
  return found[1], tonumber(found[2])
end

-- Assign the next offset to `data` and store it, capped by size and age.
local function append(base, candidate, meta_ttl, size, ttl, entry_head, data)
  local epoch = position(base, candidate, meta_ttl)
  local offset = redis.call('HINCRBY', base .. 'o', 'n', 1)
  local h = base .. 'h'
  redis.call('RPUSH', h, offset .. ' ' .. entry_head .. '\\n' .. data)
  redis.call('LTRIM', h, -tonumber(size), -1)
  redis.call('PEXPIRE', h, ttl)
  return epoch, offset
end
"""

# ARGV ends with: candidate epoch, meta ttl, size, ttl, entry head ("<ms>[ x...]").
_TAKE_ARGS = """
local h_head = table.remove(ARGV)
local h_ttl = table.remove(ARGV)
local h_size = table.remove(ARGV)
local h_meta_ttl = table.remove(ARGV)
local h_candidate = table.remove(ARGV)
"""


def _with_history(plain: Script, store: str, result: str) -> Script:
    body = f"local h_out = (function()\n{plain.source}\nend)()\n"
    source = _STREAM + _TAKE_ARGS + store + body + result
    return Script(plain.name + "_history", source)


# As GROUP_SEND, ARGV + (candidate, meta ttl, size, ttl, entry head). Returns
# GROUP_SEND's list with one more triple at its end: ('#', offset, epoch).
GROUP_SEND_HISTORY = _with_history(
    GROUP_SEND,
    """
local h_base = ARGV[1] .. ':{g.' .. ARGV[2] .. '}:'
local h_epoch, h_offset = append(h_base, h_candidate, h_meta_ttl, h_size, h_ttl,
                                 h_head, ARGV[7])
ARGV[6] = (string.gsub(ARGV[6], '\\n',
           '\\n#' .. h_offset .. ':' .. h_epoch .. ':' .. ARGV[2] .. ' ', 1))
""",
    """
h_out[#h_out + 1] = '#'; h_out[#h_out + 1] = tostring(h_offset)
h_out[#h_out + 1] = h_epoch
return h_out
""",
)

# As GROUP_BOXES (KEYS: the group's box set), ARGV + (data, candidate, meta ttl,
# size, ttl, entry head). Returns {offset, epoch, box, box, ...}.
GROUP_BOXES_HISTORY = _with_history(
    GROUP_BOXES,
    """
local h_data = table.remove(ARGV)
local h_base = string.sub(KEYS[1], 1, -2)
local h_epoch, h_offset = append(h_base, h_candidate, h_meta_ttl, h_size, h_ttl,
                                 h_head, h_data)
""",
    """
table.insert(h_out, 1, h_epoch); table.insert(h_out, 1, h_offset)
return h_out
""",
)

# KEYS: the group's meta hash. ARGV: candidate epoch, meta ttl, since offset (or
# -1: the newest `count`), count. Returns {epoch, offset, oldest offset kept,
# entries from max(since + 1, oldest) on, at most `count` of them}.
READ_HISTORY = Script(
    "read_history",
    _STREAM
    + """
local base = string.sub(KEYS[1], 1, -2)
local epoch, n = position(base, ARGV[1], ARGV[2])
local since, count = tonumber(ARGV[3]), tonumber(ARGV[4])
local h = base .. 'h'
local first = n - redis.call('LLEN', h) + 1
local start = since >= 0 and since + 1 or n - count + 1
if start < first then start = first end
local out = {epoch, n, first}
if start <= n and count > 0 then
  local stop = math.min(n, start + count - 1)
  for _, e in ipairs(redis.call('LRANGE', h, start - first, stop - first)) do
    out[#out + 1] = e
  end
end
return out
""",
)
