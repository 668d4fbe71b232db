-- Rebuild one product's counters and holds from MongoDB, only if they are missing
-- (a fresh Redis, or one that lost its data). Never overwrites live state.
-- sold is counted from the orders themselves, so it always agrees with the sold record.
-- KEYS: 1 stock, 2 holds, 3 expiry, 4 customers, 5 sold
-- ARGV: 1 total, 2 limit, 3 starts ms (-1: none), 4 ends ms (-1: none), 5 hold ms,
--       6 json list of active holds {r, c, q, cr, ex, k}, 7 json list of orders {r, c, q},
--       8 product version, 9-12 waiting room: on (1/0), opens before the start ms,
--       admission ms, oversubscription percent
-- Returns: 1 if loaded, 0 if the product was already there
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local reserved, sold = 0, 0
for _, h in ipairs(cjson.decode(ARGV[6])) do
  reserved = reserved + h.q
  redis.call('HSET', KEYS[2], h.r, cjson.encode({
    c = h.c, q = h.q, s = 'ACTIVE', cr = h.cr, ex = h.ex, k = h.k,
  }))
  redis.call('ZADD', KEYS[3], h.ex, h.r)
  redis.call('HINCRBY', KEYS[4], h.c, h.q)
end
redis.call('DEL', KEYS[5])
for _, o in ipairs(cjson.decode(ARGV[7])) do
  sold = sold + o.q
  redis.call('HSET', KEYS[5], o.r, o.q .. ':' .. o.c)
  redis.call('HINCRBY', KEYS[4], o.c, o.q)
end
redis.call('HSET', KEYS[1], 'total', ARGV[1], 'sold', sold, 'reserved', reserved,
  'limit', ARGV[2], 'starts', ARGV[3], 'ends', ARGV[4], 'hold', ARGV[5], 'version', ARGV[8],
  'format', 2, 'room', ARGV[9], 'room_open', ARGV[10], 'room_admit', ARGV[11],
  'room_over', ARGV[12])
return 1
