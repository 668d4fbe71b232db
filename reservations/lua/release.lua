-- End an ACTIVE hold and give its stock back: a cancel by its owner, or an expiry.
-- A hold past its deadline cannot be cancelled: it has expired (the tick ends it), the
-- same answer checkout gives.
-- KEYS: 1 stock, 2 holds, 3 expiry, 4 customers, 5 log
-- ARGV: 1 rid, 2 now ms, 3 new status (CANCELLED | EXPIRED), 4 events channel,
--       5 customer id that must own it ("" for any)
-- Returns: {"OK", status} | {"NOT_FOUND"} | {"NOT_ACTIVE", status} | {"CLAIMED"}
--        | {"EXPIRED"}
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then return {'NOT_FOUND'} end
local h = cjson.decode(raw)
if ARGV[5] ~= '' and h.c ~= ARGV[5] then return {'NOT_FOUND'} end
if h.s ~= 'ACTIVE' then return {'NOT_ACTIVE', h.s} end
if h.cl then return {'CLAIMED'} end  -- mid-checkout: it cannot end now

local now, status = tonumber(ARGV[2]), ARGV[3]
if status == 'CANCELLED' and now >= h.ex then return {'EXPIRED'} end
h.s, h.en = status, now
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(h))
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'reserved', -h.q)
count_customer(KEYS[4], h.c, -h.q)
log_hold(KEYS[5], status, ARGV[1], h, now)
tell_stock(ARGV[4], KEYS[1], now)
tell_customer(ARGV[4], h.c, ARGV[1], status, h.q, h.ex, now)
return {'OK', status}
