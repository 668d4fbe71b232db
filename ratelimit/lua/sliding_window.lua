-- Count one request in a sliding window of whole buckets, unless the window is full.
-- KEYS[1]  the window (a hash: bucket number -> requests counted in it)
-- ARGV     now (milliseconds since the epoch), bucket width (milliseconds), buckets per
--          window, limit
-- Returns  {allowed (1 or 0), requests in the window after this one,
--           milliseconds since the epoch at which the oldest of them leaves it (0: none)}
-- The work and the memory are bounded by the buckets per window (at most 61 fields),
-- whatever the limit and however many requests were counted.
local now = tonumber(ARGV[1])
local width = tonumber(ARGV[2])
local buckets = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])

local current = math.floor(now / width)
local first = current - buckets + 1
local counted, oldest = 0, nil
local stale = {}
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local bucket = tonumber(fields[i])
  if bucket < first then
    stale[#stale + 1] = fields[i]
  else
    counted = counted + tonumber(fields[i + 1])
    if oldest == nil or bucket < oldest then oldest = bucket end
  end
end
if #stale > 0 then redis.call('HDEL', KEYS[1], unpack(stale)) end

local allowed = 0
if counted < limit then
  allowed = 1
  counted = counted + 1
  redis.call('HINCRBY', KEYS[1], current, 1)
  if oldest == nil then oldest = current end
  redis.call('PEXPIRE', KEYS[1], (buckets + 1) * width)
end
local leaves = 0
if oldest ~= nil then leaves = (oldest + buckets) * width end
return {allowed, counted, leaves}
