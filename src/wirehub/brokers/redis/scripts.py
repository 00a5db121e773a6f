"""The Lua scripts: each step that must be atomic is one script call.

Durations are passed in milliseconds. Every script touches only keys of one channel,
which share a hash slot in Redis Cluster (see :mod:`wirehub.brokers.redis.keys`).

The publishing scripts come twice: with PUBLISH, and with SPUBLISH for a Cluster with
sharded PUB/SUB (Redis checks that a script's shard channel is in the slot of its keys,
which the partition tag ensures).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

# A new epoch: 8 letters from a random 48-bit number (exact in Lua's doubles); the caller
# sends the number, which costs less than letters.
_EPOCH_LETTERS = """
local function new_epoch(seed)
  local letters = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'
  local out = {}
  seed = tonumber(seed)
  for i = 1, 8 do
    local index = seed % 52
    seed = (seed - index) / 52
    out[i] = string.sub(letters, index + 1, index + 1)
  end
  return table.concat(out)
end
"""

# The stream's epoch: made when it has none, or when it was last given one under another
# generation of its master. Redis replicates asynchronously: when a replica is promoted,
# the writes the old master acknowledged after its last sync are lost, and the new
# master would hand out their offsets again under the same epoch. A stream first touched
# under a new generation therefore starts a new epoch (its history kept): a client
# positioned on the old timeline is told (recovered: false) instead of "recovering"
# publications it never saw. The generation is, per deployment:
# - Sentinel: the Sentinels' configuration epoch of the master, which every failover
#   increments, sent by the node. An older one (a node that has not yet heard of the
#   failover) keeps the epoch, so that nodes do not take turns renewing it.
# - Redis Cluster ("@"): the ID of the master running the script, which changes with a
#   failover (and with a slot migration, which renews the epoch too: conservative).
# - otherwise (""): not checked.
_CURRENT_EPOCH = """
local function current_epoch(meta, seed, generation)
  local state = redis.call('hmget', meta, 'e', 'g')
  local epoch = state[1]
  if generation == '@' then
    generation = redis.call('cluster', 'myid')
    if epoch and state[2] == generation then
      return epoch
    end
  elseif epoch and (generation == '' or (tonumber(state[2]) or -1) >= tonumber(generation)) then
    return epoch
  end
  epoch = new_epoch(seed)
  redis.call('hset', meta, 'e', epoch, 'g', generation)
  return epoch
end
"""


__all__ = [
    "ADD_PRESENCE",
    "HISTORY",
    "PRESENCE",
    "PUBLISH_HISTORY",
    "PUBLISH_IDEMPOTENT",
    "REMOVE_PRESENCE",
    "SCRIPTS",
    "SPUBLISH_HISTORY",
    "SPUBLISH_IDEMPOTENT",
    "Script",
]


@dataclass(frozen=True)
class Script:
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())

    def sharded(self) -> Script:
        """The same script publishing with SPUBLISH."""
        source = self.source.replace("redis.call('publish',", "redis.call('spublish',")
        if source == self.source:
            raise ValueError("this script does not publish")
        return Script(source)


# Append to the channel's stream and publish, with the offset and epoch assigned here.
# KEYS: stream, meta, result. ARGV: history size, history ttl ms, PUB/SUB channel, meta
# ttl ms (0: none), result ttl ms ("": no idempotency key), generation, an epoch seed,
# publication (what is the same for every publication of a channel comes first: the
# caller packs it once). Returns {offset, epoch, suppressed (0/1)}.
PUBLISH_HISTORY = Script(
    _EPOCH_LETTERS
    + _CURRENT_EPOCH
    + """
local stream, meta, result = KEYS[1], KEYS[2], KEYS[3]
local size, ttl, channel, meta_ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local result_ttl, generation, seed, body = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
if result_ttl ~= '' then
  local seen = redis.call('hmget', result, 'e', 's')
  if seen[1] then
    return {tonumber(seen[2]) or 0, seen[1], 1}
  end
end
local epoch = current_epoch(meta, seed, generation)
local offset = redis.call('hincrby', meta, 's', 1)
if meta_ttl ~= '0' then
  redis.call('pexpire', meta, meta_ttl)
end
if offset == 1 then
  -- A new epoch, or metadata that expired: whatever the stream held is another story.
  redis.call('del', stream)
end
local id = string.format('%d', offset)
redis.call('xadd', stream, 'MAXLEN', size, id, 'd', body)
redis.call('pexpire', stream, ttl)
redis.call('publish', channel, 'H' .. id .. ':' .. epoch .. ':' .. body)
if result_ttl ~= '' then
  redis.call('hset', result, 'e', epoch, 's', id)
  redis.call('pexpire', result, result_ttl)
end
return {offset, epoch, 0}
"""
)

# Publish without history, once per idempotency key.
# KEYS: result. ARGV: PUB/SUB channel, message, result ttl ms. Returns 1 if suppressed.
PUBLISH_IDEMPOTENT = Script("""
if redis.call('hexists', KEYS[1], 'e') == 1 then
  return 1
end
redis.call('publish', ARGV[1], ARGV[2])
redis.call('hset', KEYS[1], 'e', '')
redis.call('pexpire', KEYS[1], ARGV[3])
return 0
""")

SPUBLISH_HISTORY = PUBLISH_HISTORY.sharded()
SPUBLISH_IDEMPOTENT = PUBLISH_IDEMPOTENT.sharded()

# Read the stream position, creating the epoch if there is none yet (or a new one under
# a new generation), and entries.
# KEYS: stream, meta. ARGV: an epoch seed, meta ttl ms (0: none), what to read
# ("" nothing, "f" forward, "r" reverse), start id, count (0: all), generation.
# Returns {offset, epoch, entries}.
HISTORY = Script(
    _EPOCH_LETTERS
    + _CURRENT_EPOCH
    + """
local stream, meta = KEYS[1], KEYS[2]
local seed, meta_ttl, direction, start, count = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local epoch = current_epoch(meta, seed, ARGV[6])
local offset = tonumber(redis.call('hget', meta, 's')) or 0
if meta_ttl ~= '0' then
  redis.call('pexpire', meta, meta_ttl)
end
local entries = {}
if direction == 'f' then
  if count == '0' then
    entries = redis.call('xrange', stream, start, '+')
  else
    entries = redis.call('xrange', stream, start, '+', 'COUNT', count)
  end
elseif direction == 'r' then
  if count == '0' then
    entries = redis.call('xrevrange', stream, start, '-')
  else
    entries = redis.call('xrevrange', stream, start, '-', 'COUNT', count)
  end
end
return {offset, epoch, entries}
"""
)

# KEYS: data hash, expiry zset. ARGV: client id, info, expires at (unix ms), ttl ms.
ADD_PRESENCE = Script("""
redis.call('hset', KEYS[1], ARGV[1], ARGV[2])
redis.call('zadd', KEYS[2], ARGV[3], ARGV[1])
redis.call('pexpire', KEYS[1], ARGV[4])
redis.call('pexpire', KEYS[2], ARGV[4])
return 1
""")

# KEYS: data hash, expiry zset. ARGV: client id.
REMOVE_PRESENCE = Script("""
redis.call('hdel', KEYS[1], ARGV[1])
redis.call('zrem', KEYS[2], ARGV[1])
return 1
""")

# Drop expired entries, then return the rest as a flat client, info, ... list.
# KEYS: data hash, expiry zset. ARGV: now (unix ms).
PRESENCE = Script("""
local expired = redis.call('zrangebyscore', KEYS[2], '-inf', ARGV[1])
for i = 1, #expired, 1000 do
  redis.call('hdel', KEYS[1], unpack(expired, i, math.min(i + 999, #expired)))
end
if #expired > 0 then
  redis.call('zremrangebyscore', KEYS[2], '-inf', ARGV[1])
end
return redis.call('hgetall', KEYS[1])
""")

SCRIPTS = (PUBLISH_HISTORY, PUBLISH_IDEMPOTENT, HISTORY, ADD_PRESENCE, REMOVE_PRESENCE, PRESENCE)
"""Every script, loaded on each new command connection (standalone and Sentinel: the
SPUBLISH ones are for a Cluster, where scripts are sent as EVAL when missing)."""
