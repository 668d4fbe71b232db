-- Reserve `qty` units of one product for one customer: the whole decision and change.
-- KEYS: 1 stock (hash), 2 holds (hash rid -> json), 3 expiry (zset rid -> deadline ms),
--       4 customers (hash cid -> units held or bought), 5 idempotency (string), 6 log (stream),
--       7 waiting-room tickets (hash), 8 its unused admissions (zset), 9 its queue (zset),
--       10 its change log (stream)
-- ARGV: 1 rid, 2 customer id, 3 qty, 4 now ms, 5 idempotency key ("" for none),
--       6 events channel, 7 idempotency ttl seconds
-- Returns: {"OK", rid, expires_ms, available} | {"EXISTING", rid} | {"NOT_LOADED"}
--        | {"SALE_NOT_ACTIVE"} | {"LIMIT_PER_CUSTOMER", limit, already}
--        | {"OUT_OF_STOCK", available} | {"NOT_ADMITTED", place in the queue (0: none)}
-- With the product's waiting room on, only a customer with a valid admission may reserve,
-- and a reservation uses the admission up.
local rid, cid, qty, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local key = ARGV[5]

if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_LOADED'} end
if key ~= '' then
  local existing = redis.call('GET', KEYS[5])
  if existing then return {'EXISTING', existing} end
end

local s = redis.call('HMGET', KEYS[1], 'total', 'sold', 'reserved', 'limit', 'starts', 'ends', 'hold',
  'room')
local total, sold, reserved = tonumber(s[1]), tonumber(s[2]), tonumber(s[3])
local limit, starts, ends, hold = tonumber(s[4]), tonumber(s[5]), tonumber(s[6]), tonumber(s[7])

if (starts >= 0 and now < starts) or (ends >= 0 and now >= ends) then
  return {'SALE_NOT_ACTIVE'}
end
local ticket
if s[8] == '1' then
  local raw = redis.call('HGET', KEYS[7], cid)
  ticket = raw and cjson.decode(raw)
  if not ticket or ticket.s ~= 'ADMITTED' or ticket.d <= now then
    local rank = redis.call('ZRANK', KEYS[9], cid)
    return {'NOT_ADMITTED', rank and rank + 1 or 0}
  end
end
local already = tonumber(redis.call('HGET', KEYS[4], cid) or '0')
if already + qty > limit then return {'LIMIT_PER_CUSTOMER', limit, already} end
local available = total - sold - reserved
if qty > available then return {'OUT_OF_STOCK', available} end

if ticket then
  ticket.s, ticket.u, ticket.r = 'RESERVED', now, rid
  redis.call('HSET', KEYS[7], cid, cjson.encode(ticket))
  redis.call('ZREM', KEYS[8], cid)
  log_ticket(KEYS[10], 'RESERVED', cid, ticket, now)
end
local h = {c = cid, q = qty, s = 'ACTIVE', cr = now, ex = now + hold, k = key}
redis.call('HINCRBY', KEYS[1], 'reserved', qty)
redis.call('HINCRBY', KEYS[4], cid, qty)
redis.call('HSET', KEYS[2], rid, cjson.encode(h))
redis.call('ZADD', KEYS[3], h.ex, rid)
if key ~= '' then redis.call('SET', KEYS[5], rid, 'EX', tonumber(ARGV[7])) end
log_hold(KEYS[6], 'ACTIVE', rid, h, now)
redis.call('PUBLISH', ARGV[6], cjson.encode({
  total = total, sold = sold, reserved = reserved + qty, at = now,
}))
tell_customer(ARGV[6], cid, rid, 'ACTIVE', qty, h.ex, now)
return {'OK', rid, h.ex, available - qty}
