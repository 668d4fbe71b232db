-- Checkout step 3, after the order is durable in MongoDB: the hold's units move from
-- reserved to sold. Idempotent: committing a COMPLETED hold changes nothing.
-- KEYS: 1 stock, 2 holds, 3 expiry, 4 claims, 5 log, 6 customers
-- ARGV: 1 rid, 2 now ms, 3 events channel, 4 customer id, 5 qty
-- Returns: {"OK"} | {"ALREADY"} | {"ABSORBED"} | {"NOT_ACTIVE", status}
-- "ABSORBED": the hold is gone (Redis was rebuilt from MongoDB before the hold had been
-- recorded there); the sale is durable, so it is counted as sold all the same.

-- The customer's own channel, beside the product's: "<prefix>:customer:<cid>:events"
-- (reservations/events.py names it the same way).
local function tell_customer(channel, cid, rid, status, qty, expires, at)
  local prefix, pid = string.match(channel, '^(.-):{(.-)}:')
  redis.call('PUBLISH', prefix .. ':customer:' .. cid .. ':events', cjson.encode({
    product = pid, hold = rid, status = status, quantity = qty, expires = expires, at = at,
  }))
end
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then
  if redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('HINCRBY', KEYS[1], 'sold', tonumber(ARGV[5]))
    redis.call('HINCRBY', KEYS[6], ARGV[4], tonumber(ARGV[5]))
  end
  return {'ABSORBED'}
end
local h = cjson.decode(raw)
if h.s == 'COMPLETED' then return {'ALREADY'} end
if h.s ~= 'ACTIVE' then return {'NOT_ACTIVE', h.s} end
local now = tonumber(ARGV[2])
h.s, h.en, h.cl = 'COMPLETED', now, nil
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(h))
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
local reserved = redis.call('HINCRBY', KEYS[1], 'reserved', -h.q)
local sold = redis.call('HINCRBY', KEYS[1], 'sold', h.q)
redis.call('XADD', KEYS[5], '*', 'e', 'COMPLETED', 'r', ARGV[1], 'c', h.c, 'q', h.q,
  'cr', h.cr, 'ex', h.ex, 'k', h.k, 'at', now)
redis.call('PUBLISH', ARGV[3], cjson.encode({
  total = tonumber(redis.call('HGET', KEYS[1], 'total')), sold = sold,
  reserved = reserved, at = now,
}))
tell_customer(ARGV[3], h.c, ARGV[1], 'COMPLETED', h.q, h.ex, now)
return {'OK'}
