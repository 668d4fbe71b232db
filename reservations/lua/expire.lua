-- Expire the holds of one product whose deadline has passed (at most ARGV[2] of them).
-- Safe to run from many processes at once: each hold is popped and ended exactly once.
-- A claimed hold is mid-checkout: it left the index when it was claimed.
-- KEYS: 1 stock, 2 holds, 3 expiry, 4 customers, 5 log
-- ARGV: 1 now ms, 2 batch size, 3 events channel
-- Returns: list of expired rids
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
      count_customer(KEYS[4], h.c, -h.q)
      log_hold(KEYS[5], 'EXPIRED', rid, h, now)
      expired[#expired + 1] = rid
      tell_customer(ARGV[3], h.c, rid, 'EXPIRED', h.q, h.ex, now)
    end
  end
end
if freed > 0 then
  redis.call('HINCRBY', KEYS[1], 'reserved', -freed)
  tell_stock(ARGV[3], KEYS[1], now)
end
return expired
