-- Before an admin lowers total stock in MongoDB: lower it here first, refusing to go below
-- what is sold or held (the holds live only in Redis). Raising is left to set_rules, after
-- MongoDB, so Redis never offers stock that MongoDB does not have.
-- KEYS: 1 stock
-- ARGV: 1 new total
-- Returns: {"OK"} | {"NOT_LOADED"} | {"BELOW_COMMITTED", sold + reserved}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_LOADED'} end
local s = redis.call('HMGET', KEYS[1], 'total', 'sold', 'reserved')
local committed = tonumber(s[2]) + tonumber(s[3])
local total = tonumber(ARGV[1])
if total < committed then return {'BELOW_COMMITTED', committed} end
if total < tonumber(s[1]) then redis.call('HSET', KEYS[1], 'total', total) end
return {'OK'}
