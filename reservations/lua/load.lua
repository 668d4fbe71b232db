-- Rebuild one product's counters and holds from MongoDB, only if they are missing
-- (a fresh Redis, or one that lost its data). Never overwrites live state.
-- KEYS: 1 stock, 2 holds, 3 expiry, 4 customers
-- ARGV: 1 total, 2 sold, 3 limit, 4 starts ms (-1: none), 5 ends ms (-1: none), 6 hold ms,
--       7 json list of active holds {r, c, q, cr, ex, k}, 8 json map customer -> units bought,
--       9 product version
-- Returns: 1 if loaded, 0 if the product was already there
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local holds = cjson.decode(ARGV[7])
local reserved = 0
for _, h in ipairs(holds) do
  reserved = reserved + h.q
  redis.call('HSET', KEYS[2], h.r, cjson.encode({
    c = h.c, q = h.q, s = 'ACTIVE', cr = h.cr, ex = h.ex, k = h.k,
  }))
  redis.call('ZADD', KEYS[3], h.ex, h.r)
  redis.call('HINCRBY', KEYS[4], h.c, h.q)
end
for customer, units in pairs(cjson.decode(ARGV[8])) do
  redis.call('HINCRBY', KEYS[4], customer, units)
end
redis.call('HSET', KEYS[1], 'total', ARGV[1], 'sold', ARGV[2], 'reserved', reserved,
  'limit', ARGV[3], 'starts', ARGV[4], 'ends', ARGV[5], 'hold', ARGV[6], 'version', ARGV[9])
return 1
