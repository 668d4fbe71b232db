-- Keep a loaded product's total and sale rules in step with MongoDB after an admin edit
-- or restock (values read back from MongoDB). The total never drops below what is sold or
-- held (lower_total.lua checked that before MongoDB changed).
-- KEYS: 1 stock
-- Syncs can arrive out of order (concurrent edits): only a newer product version applies.
-- ARGV: 1 total, 2 limit, 3 starts ms, 4 ends ms, 5 hold ms, 6 events channel, 7 now ms,
--       8 product version, 9 "force" to apply even an equal version (undoing lower_total),
--       10-13 waiting room: on (1/0), opens before the start ms, admission ms,
--       oversubscription percent
-- Returns: {"OK"} | {"NOT_LOADED"} | {"STALE"} | {"BELOW_COMMITTED", sold + reserved}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_LOADED'} end
local version = tonumber(ARGV[8])
local stored = tonumber(redis.call('HGET', KEYS[1], 'version') or '-1')
if stored > version or (stored == version and ARGV[9] ~= 'force') then return {'STALE'} end
local s = redis.call('HMGET', KEYS[1], 'sold', 'reserved')
local committed = tonumber(s[1]) + tonumber(s[2])
local total = tonumber(ARGV[1])
if total < committed then return {'BELOW_COMMITTED', committed} end
redis.call('HSET', KEYS[1], 'total', total, 'limit', ARGV[2], 'starts', ARGV[3],
  'ends', ARGV[4], 'hold', ARGV[5], 'version', version, 'room', ARGV[10],
  'room_open', ARGV[11], 'room_admit', ARGV[12], 'room_over', ARGV[13])
redis.call('PUBLISH', ARGV[6], cjson.encode({
  total = total, sold = tonumber(s[1]), reserved = tonumber(s[2]), at = tonumber(ARGV[7]),
}))
return {'OK'}
