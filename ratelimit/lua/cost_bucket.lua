-- Take `cost` points from a leaky bucket that refills at `rate` points per second up to
-- `capacity`; take nothing when it holds too few.
-- KEYS[1]  the bucket (a hash: level, at)
-- ARGV     capacity, rate (points per second), cost, now (milliseconds since the epoch)
-- Returns  {allowed (1 or 0), level after (a string: it may be fractional),
--           milliseconds until `cost` points are there (0 when allowed)}
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now = tonumber(ARGV[4])

local state = redis.call('HMGET', KEYS[1], 'level', 'at')
local level = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
-- Clocks of different processes may disagree a little: time never runs backwards here.
if now > at then
  level = math.min(capacity, level + (now - at) * rate / 1000)
  at = now
end

local allowed, wait = 0, 0
if cost <= level then
  level = level - cost
  allowed = 1
else
  wait = math.ceil((cost - level) * 1000 / rate)
end

redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', tostring(at))
-- Once full again, a bucket is the same as no bucket: let it go.
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - level) * 1000 / rate) + 1000)
return {allowed, tostring(level), wait}
