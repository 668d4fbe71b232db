-- Recount one product's counters from Redis's own records, atomically, so it is exact even
-- under live traffic: reserved from the ACTIVE holds, sold from the sold record, each
-- customer's units from both. Sales MongoDB does not have (it lost them) are dropped
-- first; a product loaded before the sold record existed is given one from MongoDB's
-- orders. ACTIVE holds that are neither in the expiry index nor claimed go back in it.
-- KEYS: 1 stock, 2 holds, 3 expiry, 4 claims, 5 customers, 6 sold
-- ARGV: 1 json list of rids to unsell, 2 json list of MongoDB's orders {r, c, q} (used only
--       to backfill an old product), 3 "dry" to report without changing anything
-- Returns: json {loaded, sold = {was, now}, reserved = {was, now}, customers (how many
--       were wrong), unsold, requeued, backfilled}
if redis.call('EXISTS', KEYS[1]) == 0 then return cjson.encode({loaded = false}) end
local dry = ARGV[3] == 'dry'
local report = {loaded = true, customers = 0, unsold = 0, requeued = 0, backfilled = false}

local sales = {}  -- rid -> {q, c}
local flat = redis.call('HGETALL', KEYS[6])
for i = 1, #flat, 2 do
  local q, c = string.match(flat[i + 1], '^(%d+):(.+)$')
  sales[flat[i]] = {q = tonumber(q), c = c}
end
if redis.call('HGET', KEYS[1], 'format') ~= '2' then
  report.backfilled = true
  for _, o in ipairs(cjson.decode(ARGV[2])) do
    sales[o.r] = {q = o.q, c = o.c}
    if not dry then redis.call('HSET', KEYS[6], o.r, o.q .. ':' .. o.c) end
  end
  if not dry then redis.call('HSET', KEYS[1], 'format', 2) end
end
for _, rid in ipairs(cjson.decode(ARGV[1])) do
  if sales[rid] then
    sales[rid] = nil
    report.unsold = report.unsold + 1
    if not dry then redis.call('HDEL', KEYS[6], rid) end
  end
end

local sold, reserved, units = 0, 0, {}
for _, sale in pairs(sales) do
  sold = sold + sale.q
  units[sale.c] = (units[sale.c] or 0) + sale.q
end
flat = redis.call('HGETALL', KEYS[2])
for i = 1, #flat, 2 do
  local rid, h = flat[i], cjson.decode(flat[i + 1])
  if h.s == 'ACTIVE' then
    reserved = reserved + h.q
    units[h.c] = (units[h.c] or 0) + h.q
    local queued = redis.call('ZSCORE', KEYS[3], rid) or redis.call('ZSCORE', KEYS[4], rid)
    if not queued then
      report.requeued = report.requeued + 1
      if not dry then
        if h.cl then redis.call('ZADD', KEYS[4], h.cr, rid)  -- a claim as old as the hold
        else redis.call('ZADD', KEYS[3], h.ex, rid) end
      end
    end
  end
end

local s = redis.call('HMGET', KEYS[1], 'sold', 'reserved')
report.sold = {was = tonumber(s[1]), now = sold}
report.reserved = {was = tonumber(s[2]), now = reserved}
flat = redis.call('HGETALL', KEYS[5])
local stored = {}
for i = 1, #flat, 2 do stored[flat[i]] = tonumber(flat[i + 1]) end
for cid, n in pairs(units) do
  if stored[cid] ~= n then report.customers = report.customers + 1 end
  stored[cid] = nil
end
for _ in pairs(stored) do report.customers = report.customers + 1 end
if not dry then
  redis.call('HSET', KEYS[1], 'sold', sold, 'reserved', reserved)
  redis.call('DEL', KEYS[5])
  for cid, n in pairs(units) do
    if n > 0 then redis.call('HSET', KEYS[5], cid, n) end
  end
end
return cjson.encode(report)
