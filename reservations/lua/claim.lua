-- Checkout step 1: take an ACTIVE, unexpired hold out of the expiry index (it can no
-- longer expire) while it still counts as reserved. Claiming a claimed hold again is
-- allowed: the durable step and the commit are idempotent.
-- KEYS: 1 holds, 2 expiry, 3 claims (zset rid -> claimed at ms)
-- ARGV: 1 rid, 2 now ms, 3 customer id that must own it ("" for any)
-- Returns: {"OK", customer, qty, created, expires, key}
--        | {"NOT_FOUND"} | {"NOT_ACTIVE", status} | {"EXPIRED"}
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {'NOT_FOUND'} end
local h = cjson.decode(raw)
if ARGV[3] ~= '' and h.c ~= ARGV[3] then return {'NOT_FOUND'} end
if h.s ~= 'ACTIVE' then return {'NOT_ACTIVE', h.s} end
local now = tonumber(ARGV[2])
if not h.cl then
  if now >= h.ex then return {'EXPIRED'} end  -- even if the expiry tick has not run yet
  h.cl = now
  redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(h))
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZADD', KEYS[3], now, ARGV[1])
end
return {'OK', h.c, h.q, h.cr, h.ex, h.k}
