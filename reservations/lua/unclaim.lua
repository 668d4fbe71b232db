-- Checkout failed before it was durable: put the hold back with its original deadline
-- (if that has passed, the next expiry tick ends it).
-- KEYS: 1 holds, 2 expiry, 3 claims
-- ARGV: 1 rid
-- Returns: 1 if it was claimed, else 0
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local h = cjson.decode(raw)
if h.s ~= 'ACTIVE' or not h.cl then return 0 end
h.cl = nil
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(h))
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[2], h.ex, ARGV[1])
return 1
