-- End an ACTIVE hold and give its stock back: a cancel by its owner, or an expiry.
-- KEYS: 1 stock, 2 holds, 3 expiry, 4 customers, 5 log
-- ARGV: 1 rid, 2 now ms, 3 new status (CANCELLED | EXPIRED), 4 events channel,
--       5 customer id that must own it ("" for any)
-- Returns: {"OK", status} | {"NOT_FOUND"} | {"NOT_ACTIVE", status} | {"CLAIMED"}

-- The customer's own channel, beside the product's: "<prefix>:customer:<cid>:events"
-- (reservations/events.py names it the same way).
local function tell_customer(channel, cid, rid, status, qty, expires, at)
  local prefix, pid = string.match(channel, '^(.-):{(.-)}:')
  redis.call('PUBLISH', prefix .. ':customer:' .. cid .. ':events', cjson.encode({
    product = pid, hold = rid, status = status, quantity = qty, expires = expires, at = at,
  }))
end
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then return {'NOT_FOUND'} end
local h = cjson.decode(raw)
if ARGV[5] ~= '' and h.c ~= ARGV[5] then return {'NOT_FOUND'} end
if h.s ~= 'ACTIVE' then return {'NOT_ACTIVE', h.s} end
if h.cl then return {'CLAIMED'} end  -- mid-checkout: it cannot end now

local now, status = tonumber(ARGV[2]), ARGV[3]
h.s, h.en = status, now
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(h))
redis.call('ZREM', KEYS[3], ARGV[1])
local reserved = redis.call('HINCRBY', KEYS[1], 'reserved', -h.q)
local left = redis.call('HINCRBY', KEYS[4], h.c, -h.q)
if left <= 0 then redis.call('HDEL', KEYS[4], h.c) end
redis.call('XADD', KEYS[5], '*', 'e', status, 'r', ARGV[1], 'c', h.c, 'q', h.q,
  'cr', h.cr, 'ex', h.ex, 'k', h.k, 'at', now)
local s = redis.call('HMGET', KEYS[1], 'total', 'sold')
redis.call('PUBLISH', ARGV[4], cjson.encode({
  total = tonumber(s[1]), sold = tonumber(s[2]), reserved = reserved, at = now,
}))
tell_customer(ARGV[4], h.c, ARGV[1], status, h.q, h.ex, now)
return {'OK', status}
