"""The Lua script behind :class:`~sockjs_gateway.backplane.history.RedisChannels`: one run
per publish, atomic in Redis, so that every node sees the same offsets and the same
history, and every :class:`~sockjs_gateway.history.HistoryLimits` bound holds in Redis as
it does in memory.

Besides each channel's hash (epoch, offset) and stream, the script keeps an index, so
that a bound crossed finds what to drop without scanning Redis:

* ``index:last``, channels by their last publish: the least recently published channel
  is evicted by ``max_channels``, and one whose keys expired (silent for ``max_age``) is
  forgotten;
* ``index:first``, channels by their oldest retained message: ``max_total_bytes`` and
  ``max_age`` drop the oldest message of any channel. Both are scored by a hub-wide
  sequence number, exact where milliseconds tie;
* ``index:bytes`` and ``index:messages``, per channel; ``index:totals``, over the hub.

A channel's keys expire after ``max_age`` of silence; the index does not (it holds at
most ``max_channels`` names), so the next publish finds and counts what expired.
"""

from __future__ import annotations

__all__ = ["PUBLISH", "TRIM_STEPS", "TRIM_RUNS", "REASONS", "INDEX"]

#: Most steps one run of the script takes to enforce the bounds: dropping one message, or
#: forgetting one whole channel, is a step. When a publish needs more (one large message
#: pushing out thousands of small ones, or bounds lowered over history kept under larger
#: ones), its node runs the script again at once, trimming only, until it is done: no run
#: holds Redis for long, and other commands are served between runs.
TRIM_STEPS = 1000
#: Most trimming runs after one publish; what is still over a bound then is dropped by
#: the next publishes (reached only if other nodes publish as fast as it drops).
TRIM_RUNS = 1000
#: The bounds, in the order the script returns their drop counts.
REASONS = ("count", "channel_bytes", "age", "total_bytes", "channels")
#: The index keys (after ``prefix + "index:"``), in the script's KEYS order.
INDEX = ("last", "first", "bytes", "messages", "totals")

# KEYS: meta hash, stream, pub/sub channel, then the index: sorted sets of channels by
# their last publish and by their oldest retained message (scored by a hub-wide sequence
# number, so that order is exact within a millisecond too), hashes of the bytes and
# messages of each channel, and a hash of the totals and the sequence. ARGV: new epoch,
# data, channel name, node id, publish token, the bounds (max_messages, max_age in ms,
# max_channel_bytes, max_total_bytes, max_channels, steps: one argument, the same for
# every publish of a hub), key prefix, and "1" to trim only (data, epoch and token
# unused). Returns "0" for a retry of a publish done, else "1", the drops by REASONS,
# channels, messages, bytes, and 1 if the steps ran out, separated by spaces (one string:
# a client reads it faster than an array).
# Channels evicted or aged out are reached by name (prefix .. kind .. name), so every key
# of one hub must be on one Redis server (not Redis Cluster). A stream entry holds the
# fields o (offset), s (sequence) and d (data).
PUBLISH = """
local meta, stream, bus = KEYS[1], KEYS[2], KEYS[3]
local LAST, FIRST, BYTES, COUNT, TOTALS = KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local channel, mark, data, trimming = ARGV[3], 'n:' .. ARGV[4], ARGV[2], ARGV[8] == '1'
if not trimming and redis.call('HGET', meta, mark) == ARGV[5] then
  return '0'
end
local bounds = {}
for number in string.gmatch(ARGV[6], '%d+') do
  bounds[#bounds + 1] = tonumber(number)
end
local max_messages, max_age, max_channel_bytes = bounds[1], bounds[2], bounds[3]
local max_total_bytes, max_channels, steps = bounds[4], bounds[5], bounds[6]
local prefix = ARGV[7]
local dropped = {count = 0, channel_bytes = 0, age = 0, total_bytes = 0, channels = 0}
local total_bytes = tonumber(redis.call('HGET', TOTALS, 'bytes') or '0')
local total_messages = tonumber(redis.call('HGET', TOTALS, 'messages') or '0')

local function oldest(key)
  return redis.call('ZRANGE', key, 0, 0)[1]
end

-- Forget channel c with its numbering: its keys (if not expired already) and its counts.
local function forget(c, reason)
  local n = tonumber(redis.call('HGET', COUNT, c) or '0')
  dropped[reason] = dropped[reason] + n
  total_messages = total_messages - n
  total_bytes = total_bytes - tonumber(redis.call('HGET', BYTES, c) or '0')
  redis.call('DEL', prefix .. 'meta:' .. c, prefix .. 'stream:' .. c)
  redis.call('HDEL', BYTES, c)
  redis.call('HDEL', COUNT, c)
  redis.call('ZREM', LAST, c)
  redis.call('ZREM', FIRST, c)
  steps = steps - 1
end

-- Drop the oldest retained message of c (only if published before cutoff, when given).
-- Returns its size; nil if nothing was dropped, or c was forgotten (its keys expired).
local function drop_first(c, reason, cutoff)
  local s = prefix .. 'stream:' .. c
  local head = redis.call('XRANGE', s, '-', '+', 'COUNT', 2)
  if not head[1] then
    forget(c, reason)
    return nil
  end
  if cutoff and tonumber(string.match(head[1][1], '^(%d+)')) >= cutoff then
    return nil
  end
  local size = #head[1][2][6]
  redis.call('XDEL', s, head[1][1])
  redis.call('HINCRBY', BYTES, c, -size)
  redis.call('HINCRBY', COUNT, c, -1)
  total_bytes = total_bytes - size
  total_messages = total_messages - 1
  dropped[reason] = dropped[reason] + 1
  if head[2] then
    redis.call('ZADD', FIRST, head[2][2][4], c)
  else
    redis.call('ZREM', FIRST, c)
  end
  steps = steps - 1
  return size
end

-- max_age: channels silent that long (Redis expired their keys), then old messages.
while steps > 0 do
  local c = oldest(LAST)
  if not c or redis.call('EXISTS', prefix .. 'meta:' .. c) == 1 then break end
  forget(c, 'age')
end
local time = redis.call('TIME')
local cutoff = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) - max_age
while steps > 0 do
  local c = oldest(FIRST)
  if not c or not drop_first(c, 'age', cutoff) then break end
end

local epoch, offset, id, held, bytes
if trimming then
  while steps > 0 and redis.call('ZCARD', LAST) > max_channels do
    forget(oldest(LAST), 'channels')
  end
  held = tonumber(redis.call('HGET', COUNT, channel) or '0')
  bytes = tonumber(redis.call('HGET', BYTES, channel) or '0')
else
  epoch = redis.call('HGET', meta, 'epoch')
  if not epoch then
    if redis.call('ZSCORE', LAST, channel) then
      forget(channel, 'age')
    end
    redis.call('DEL', stream)
    while steps > 0 and redis.call('ZCARD', LAST) >= max_channels do
      forget(oldest(LAST), 'channels')
    end
    epoch = ARGV[1]
    redis.call('HSET', meta, 'epoch', epoch)
  end
  offset = redis.call('HINCRBY', meta, 'offset', 1)
  redis.call('HSET', meta, mark, ARGV[5])
  local seq = redis.call('HINCRBY', TOTALS, 'seq', 1)
  id = redis.call('XADD', stream, '*', 'o', offset, 's', seq, 'd', data)
  held = redis.call('HINCRBY', COUNT, channel, 1)
  bytes = redis.call('HINCRBY', BYTES, channel, #data)
  total_messages = total_messages + 1
  total_bytes = total_bytes + #data
  redis.call('ZADD', LAST, seq, channel)
  redis.call('ZADD', FIRST, 'NX', seq, channel)
end

while steps > 0 and held > max_messages do
  if not drop_first(channel, 'count') then break end
  held = held - 1
end
while steps > 0 and bytes > max_channel_bytes do
  local size = drop_first(channel, 'channel_bytes')
  if not size then break end
  bytes = bytes - size
end
while steps > 0 and total_bytes > max_total_bytes do
  local c = oldest(FIRST)
  if not c or not drop_first(c, 'total_bytes') then break end
end

redis.call('HSET', TOTALS, 'bytes', total_bytes, 'messages', total_messages)
if not trimming then
  redis.call('PEXPIRE', meta, max_age)
  redis.call('PEXPIRE', stream, max_age)
  local z = '\\0'
  local ms = string.match(id, '^(%d+)')
  redis.call('PUBLISH', bus, channel .. z .. epoch .. z .. offset .. z .. ms .. z .. data)
end
return table.concat({1, dropped.count, dropped.channel_bytes, dropped.age,
  dropped.total_bytes, dropped.channels, redis.call('ZCARD', LAST), total_messages,
  total_bytes, steps <= 0 and 1 or 0}, ' ')
"""
