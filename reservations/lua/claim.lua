-- Checkout step 1: take an ACTIVE, unexpired hold out of the expiry index (it can no
-- longer expire or be cancelled) while it still counts as reserved. One checkout at a
-- time: a claimed hold is IN_PROGRESS for everyone else, and only the claim's own token
-- can put it back (unclaim.lua), so a failed duplicate never undoes a live checkout.
-- KEYS: 1 holds, 2 expiry, 3 claims (zset rid -> claimed at ms)
-- ARGV: 1 rid, 2 now ms, 3 customer id that must own it ("" for any), 4 claim token
-- Returns: {"OK", customer, qty, created, expires, key} | {"IN_PROGRESS"}
--        | {"NOT_FOUND"} | {"NOT_ACTIVE", status} | {"EXPIRED"}
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {'NOT_FOUND'} end
local h = cjson.decode(raw)
if ARGV[3] ~= '' and h.c ~= ARGV[3] then return {'NOT_FOUND'} end
if h.s ~= 'ACTIVE' then return {'NOT_ACTIVE', h.s} end
if h.cl then return {'IN_PROGRESS'} end
local now = tonumber(ARGV[2])
if now >= h.ex then return {'EXPIRED'} end  -- even if the expiry tick has not run yet
h.cl = ARGV[4]
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(h))
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], now, ARGV[1])
return {'OK', h.c, h.q, h.cr, h.ex, h.k}
