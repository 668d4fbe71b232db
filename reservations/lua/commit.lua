-- Checkout step 3, after the order is durable in MongoDB: the sale is counted, once.
-- The sold record (rid -> "qty:customer", bounded by the product's orders) is what makes it
-- idempotent: a duplicate or late commit, even one arriving after the ended hold was
-- dropped from Redis, finds its rid there and changes nothing.
-- KEYS: 1 stock, 2 holds, 3 expiry, 4 claims, 5 log, 6 customers, 7 sold
-- ARGV: 1 rid, 2 now ms, 3 events channel, 4 customer id, 5 qty, 6 hold's deadline ms
-- Returns: {"OK"} | {"ALREADY"} | {"NOT_LOADED"} | {"ABSORBED"} | {"LATE", status}
--   ABSORBED: the hold is unknown here (Redis was rebuilt from MongoDB before the hold had
--   been recorded there); LATE: Redis had ended the hold (its claim was lost with Redis's
--   data). The sale is durable either way, so it is counted all the same.
local rid, now, qty, cid = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[5]), ARGV[4]
redis.call('ZREM', KEYS[4], rid)
if redis.call('HEXISTS', KEYS[7], rid) == 1 then return {'ALREADY'} end
-- Not loaded: the next load counts this sale from MongoDB's orders.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_LOADED'} end
redis.call('HSET', KEYS[7], rid, qty .. ':' .. cid)
redis.call('HINCRBY', KEYS[1], 'sold', qty)
local outcome = {'ABSORBED'}
local raw = redis.call('HGET', KEYS[2], rid)
if raw then
  local h = cjson.decode(raw)
  if h.s == 'ACTIVE' then
    redis.call('HINCRBY', KEYS[1], 'reserved', -h.q)
    outcome = {'OK'}
  else  -- it ended and gave its units back: they are sold after all
    count_customer(KEYS[6], cid, qty)
    outcome = {'LATE', h.s}
  end
  h.s, h.en, h.cl = 'COMPLETED', now, nil
  redis.call('HSET', KEYS[2], rid, cjson.encode(h))
  redis.call('ZREM', KEYS[3], rid)
  log_hold(KEYS[5], 'COMPLETED', rid, h, now)
else
  count_customer(KEYS[6], cid, qty)
end
tell_stock(ARGV[3], KEYS[1], now)
tell_customer(ARGV[3], cid, rid, 'COMPLETED', qty, tonumber(ARGV[6]), now)
return outcome
