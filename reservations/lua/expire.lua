-- Expire the holds of one product whose deadline has passed (at most ARGV[2] of them).
-- Safe to run from many processes at once: each hold is popped and ended exactly once.
-- KEYS: 1 stock, 2 holds, 3 expiry, 4 customers, 5 log
-- ARGV: 1 now ms, 2 batch size, 3 events channel
-- Returns: list of expired rids

-- The customer's own channel, beside the product's: "<prefix>:customer:<cid>:events"
-- (reservations/events.py names it the same way).
local function tell_customer(channel, cid, rid, status, qty, expires, at)
  local prefix, pid = string.match(channel, '^(.-):{(.-)}:')
  redis.call('PUBLISH', prefix .. ':customer:' .. cid .. ':events', cjson.encode({
    product = pid, hold = rid, status = status, quantity = qty, expires = expires, at = at,
  }))
end
local now = tonumber(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
if #due == 0 then return due end
local expired, freed = {}, 0
for _, rid in ipairs(due) do
  redis.call('ZREM', KEYS[3], rid)
  local raw = redis.call('HGET', KEYS[2], rid)
  if raw then
    local h = cjson.decode(raw)
    if h.s == 'ACTIVE' and not h.cl then
      h.s, h.en = 'EXPIRED', now
      redis.call('HSET', KEYS[2], rid, cjson.encode(h))
      freed = freed + h.q
      local left = redis.call('HINCRBY', KEYS[4], h.c, -h.q)
      if left <= 0 then redis.call('HDEL', KEYS[4], h.c) end
      redis.call('XADD', KEYS[5], '*', 'e', 'EXPIRED', 'r', rid, 'c', h.c, 'q', h.q,
        'cr', h.cr, 'ex', h.ex, 'k', h.k, 'at', now)
      expired[#expired + 1] = rid
      tell_customer(ARGV[3], h.c, rid, 'EXPIRED', h.q, h.ex, now)
    end
  end
end
if freed > 0 then
  local reserved = redis.call('HINCRBY', KEYS[1], 'reserved', -freed)
  local s = redis.call('HMGET', KEYS[1], 'total', 'sold')
  redis.call('PUBLISH', ARGV[3], cjson.encode({
    total = tonumber(s[1]), sold = tonumber(s[2]), reserved = reserved, at = now,
  }))
end
return expired
