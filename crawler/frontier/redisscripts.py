"""The Lua scripts of the Redis frontier (``crawler.frontier.redisbackend``).

Every change that touches more than one key is one script: Redis runs a script atomically, so a
worker killed at any instant leaves the job consistent. Every script takes the job's keys in the
order of ``RedisKeys.frontier_keys``: meta, queue, requests, seen, inflight, owners, attempts,
errors, seeds. A request queued again (a reclaimed or released lease) goes behind the requests of
its priority already queued; its priority is read from its JSON (0 when that cannot be read).
"""

from __future__ import annotations

# Shared helpers: the queue score (priority first, then age) and the return to the queue.
_COMMON = """
local META, QUEUE, REQUESTS, SEEN = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local INFLIGHT, OWNERS, ATTEMPTS, ERRORS, SEEDS = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]

-- a counter field + 1; a value that is no number (a foreign write) starts again from 0, where
-- HINCRBY would fail the script half-way (Redis does not roll a failed script back)
local function bump(key, field)
  local value = (tonumber(redis.call('HGET', key, field)) or 0) + 1
  redis.call('HSET', key, field, value)
  return value
end

local function score(priority)
  local seq = bump(META, 'seq')
  return string.format('%.17g', -priority * 1e12 + seq)
end

local function priority_of(fp)
  local text = redis.call('HGET', REQUESTS, fp)
  if not text then return 0 end
  local ok, data = pcall(cjson.decode, text)
  if ok and type(data) == 'table' and type(data['priority']) == 'number' then
    return data['priority']
  end
  return 0
end

-- a leased fingerprint goes back to the queue (its attempts kept)
local function requeue(fp)
  redis.call('ZREM', INFLIGHT, fp)
  redis.call('HDEL', OWNERS, fp)
  redis.call('HSET', SEEN, fp, 'queued')
  redis.call('ZADD', QUEUE, score(priority_of(fp)), fp)
end
"""

# ARGV: owner, limit, deadline, max_attempts, error text for a row sent max_attempts times.
# A lease is no attempt (COMMIT counts one for each request sent).
# Returns {fp, json, attempts, …}, the number failed, {fps without request data}.
LEASE = (
    _COMMON
    + """
local owner, limit, deadline = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local max_attempts, too_many = tonumber(ARGV[4]), ARGV[5]
local leased, bad, failed, taken, popped_total = {}, {}, 0, 0, 0
while taken < limit and popped_total < limit + 1000 do
  local popped = redis.call('ZPOPMIN', QUEUE)
  if #popped == 0 then break end
  popped_total = popped_total + 1
  local fp = popped[1]
  local text = redis.call('HGET', REQUESTS, fp)
  local attempts = tonumber(redis.call('HGET', ATTEMPTS, fp)) or 0
  if not text then
    redis.call('HSET', SEEN, fp, 'failed')
    redis.call('HSET', ERRORS, fp, 'no request data')
    redis.call('HDEL', ATTEMPTS, fp)
    bump(META, 'failed')
    table.insert(bad, fp)
  elseif attempts >= max_attempts then
    redis.call('HSET', SEEN, fp, 'failed')
    redis.call('HSET', ERRORS, fp, too_many)
    redis.call('HDEL', REQUESTS, fp)
    bump(META, 'failed')
    failed = failed + 1
  else
    redis.call('ZADD', INFLIGHT, deadline, fp)
    redis.call('HSET', OWNERS, fp, owner)
    redis.call('HSET', SEEN, fp, 'leased')
    table.insert(leased, fp)
    table.insert(leased, text)
    table.insert(leased, attempts)
    taken = taken + 1
  end
end
return {leased, failed, bad}
"""
)

# ARGV: now, seeded (0|1), #new, #again, #started, #done, #failed, #seeds, then new and again
# as (fp, priority, json) triples, started fps (requests sent: an attempt each, while leased),
# done fps, failed (fp, error) pairs, seed origins ("host port").
COMMIT = (
    _COMMON
    + """
local now, seeded = ARGV[1], ARGV[2]
local n_new, n_again, n_started = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local n_done, n_failed, n_seeds = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local i = 9
for _ = 1, n_new do
  local fp, priority, text = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  i = i + 3
  if redis.call('HSETNX', SEEN, fp, 'queued') == 1 then
    redis.call('HSET', REQUESTS, fp, text)
    redis.call('ZADD', QUEUE, score(priority), fp)
  end
end
for _ = 1, n_again do
  local fp, priority, text = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  i = i + 3
  redis.call('ZREM', INFLIGHT, fp)
  redis.call('HDEL', OWNERS, fp)
  redis.call('HDEL', ATTEMPTS, fp)
  redis.call('HDEL', ERRORS, fp)
  redis.call('HSET', SEEN, fp, 'queued')
  redis.call('HSET', REQUESTS, fp, text)
  redis.call('ZADD', QUEUE, score(priority), fp)
end
for _ = 1, n_started do
  local fp = ARGV[i]
  i = i + 1
  if redis.call('ZSCORE', INFLIGHT, fp) then
    bump(ATTEMPTS, fp)
  end
end
for _ = 1, n_done do
  local fp = ARGV[i]
  i = i + 1
  if redis.call('ZREM', INFLIGHT, fp) == 1 then
    redis.call('HDEL', OWNERS, fp)
    redis.call('HDEL', REQUESTS, fp)
    redis.call('HDEL', ATTEMPTS, fp)
    redis.call('HSET', SEEN, fp, 'done')
    bump(META, 'done')
  end
end
for _ = 1, n_failed do
  local fp, error = ARGV[i], ARGV[i + 1]
  i = i + 2
  if redis.call('ZREM', INFLIGHT, fp) == 1 then
    redis.call('HDEL', OWNERS, fp)
    redis.call('HDEL', REQUESTS, fp)
    redis.call('HSET', SEEN, fp, 'failed')
    redis.call('HSET', ERRORS, fp, error)
    bump(META, 'failed')
  end
end
for _ = 1, n_seeds do
  redis.call('SADD', SEEDS, ARGV[i])
  i = i + 1
end
if seeded == '1' then
  redis.call('HSETNX', META, 'seeded_at', now)
end
return 1
"""
)

# ARGV: owner, deadline. Returns how many leases moved.
RENEW = (
    _COMMON
    + """
local moved = 0
for _, fp in ipairs(redis.call('ZRANGE', INFLIGHT, 0, -1)) do
  if redis.call('HGET', OWNERS, fp) == ARGV[1] then
    redis.call('ZADD', INFLIGHT, ARGV[2], fp)
    moved = moved + 1
  end
end
return moved
"""
)

# ARGV: now. Returns how many expired leases went back to the queue.
RECLAIM = (
    _COMMON
    + """
local expired = redis.call('ZRANGEBYSCORE', INFLIGHT, '-inf', '(' .. ARGV[1])
for _, fp in ipairs(expired) do requeue(fp) end
return #expired
"""
)

# ARGV: owner, then fingerprints the owner leased and never started: they, and every other
# lease of owner, go back to the queue. Returns how many.
RELEASE = (
    _COMMON
    + """
local owner, moved = ARGV[1], 0
for i = 2, #ARGV do
  if redis.call('HGET', OWNERS, ARGV[i]) == owner then
    requeue(ARGV[i])
    moved = moved + 1
  end
end
for _, fp in ipairs(redis.call('ZRANGE', INFLIGHT, 0, -1)) do
  if redis.call('HGET', OWNERS, fp) == owner then
    requeue(fp)
    moved = moved + 1
  end
end
return moved
"""
)

# ARGV: a list of owners whose leases go back (processes known to be gone). Returns how many.
RECLAIM_OWNERS = (
    _COMMON
    + """
local gone, moved = {}, 0
for i = 1, #ARGV do gone[ARGV[i]] = true end
for _, fp in ipairs(redis.call('ZRANGE', INFLIGHT, 0, -1)) do
  local owner = redis.call('HGET', OWNERS, fp)
  if not owner or gone[owner] then
    requeue(fp)
    moved = moved + 1
  end
end
return moved
"""
)

# ARGV: owner. 1 when rows are queued or leased by another owner.
HAS_WORK = (
    _COMMON
    + """
if redis.call('ZCARD', QUEUE) > 0 then return 1 end
for _, fp in ipairs(redis.call('ZRANGE', INFLIGHT, 0, -1)) do
  if redis.call('HGET', OWNERS, fp) ~= ARGV[1] then return 1 end
end
return 0
"""
)

# ARGV: now. The job is finished only when nothing is queued or leased. Returns 1 if it is.
FINISH = (
    _COMMON
    + """
if redis.call('ZCARD', QUEUE) == 0 and redis.call('ZCARD', INFLIGHT) == 0 then
  redis.call('HSET', META, 'state', 'finished')
  redis.call('HSETNX', META, 'finished_at', ARGV[1])
  return 1
end
return 0
"""
)
