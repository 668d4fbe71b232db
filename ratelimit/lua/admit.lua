-- Count one request in each of several limits, in order, as one atomic step: all the
-- limits of one request (its address window, its caller's cost budget, its user's write
-- window) in one round trip, or a single one. The first limit that refuses ends it: the
-- limits after it are neither counted nor read, and those before it stay counted (as when
-- they are counted one call after another).
-- KEYS     the limits (on a cluster all in one hash slot: the caller groups them)
-- ARGV     now (milliseconds since the epoch), then four per key: its kind and three
--          parameters, 'window', bucket width (ms), buckets per window, limit
--                   or 'bucket', capacity, restore rate (points per second), cost
-- Returns  three values per limit reached, {allowed (1 or 0), a, b, allowed, a, b, ...},
--          shorter when one refused:
--          a window: requests in it after this one, and the milliseconds since the epoch
--                    at which the oldest of them leaves it (0: none)
--          a bucket: its level after (a string: it may be fractional), and the
--                    milliseconds until `cost` points are there (0 when allowed)
-- The work and memory of each limit are bounded: a window keeps at most 61 buckets and a
-- bucket two fields, whatever the limit and however many requests were counted.

-- A sliding window of whole buckets (a hash: bucket number -> requests counted in it):
-- one request more, unless the window is full.
local function window_hit(key, now, width, buckets, limit)
  local current = math.floor(now / width)
  local first = current - buckets + 1
  local counted, oldest = 0, nil
  local stale = {}
  local fields = redis.call('HGETALL', key)
  for i = 1, #fields, 2 do
    local bucket = tonumber(fields[i])
    if bucket < first then
      stale[#stale + 1] = fields[i]
    else
      counted = counted + tonumber(fields[i + 1])
      if oldest == nil or bucket < oldest then oldest = bucket end
    end
  end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end

  local allowed = 0
  if counted < limit then
    allowed = 1
    counted = counted + 1
    redis.call('HINCRBY', key, current, 1)
    if oldest == nil then oldest = current end
    redis.call('PEXPIRE', key, (buckets + 1) * width)
  end
  local leaves = 0
  if oldest ~= nil then leaves = (oldest + buckets) * width end
  return allowed, counted, leaves
end

-- A leaky bucket (a hash: level, at) that refills at `rate` points per second up to
-- `capacity`: `cost` points less, or nothing taken when it holds too few.
local function bucket_take(key, now, capacity, rate, cost)
  local state = redis.call('HMGET', key, 'level', 'at')
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

  redis.call('HSET', key, 'level', tostring(level), 'at', tostring(at))
  -- Once full again, a bucket is the same as no bucket: let it go.
  redis.call('PEXPIRE', key, math.ceil((capacity - level) * 1000 / rate) + 1000)
  return allowed, tostring(level), wait
end

local now = tonumber(ARGV[1])
local reply = {}
for i = 1, #KEYS do
  local at = 2 + (i - 1) * 4
  local kind = ARGV[at]
  local p1, p2, p3 = tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  local allowed, a, b
  if kind == 'window' then
    allowed, a, b = window_hit(KEYS[i], now, p1, p2, p3)
  elseif kind == 'bucket' then
    allowed, a, b = bucket_take(KEYS[i], now, p1, p2, p3)
  else
    return redis.error_reply('unknown limit kind: ' .. tostring(kind))
  end
  reply[#reply + 1] = allowed
  reply[#reply + 1] = a
  reply[#reply + 1] = b
  if allowed == 0 then break end
end
return reply
