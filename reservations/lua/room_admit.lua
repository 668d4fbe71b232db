-- One step of a product's waiting room: end lapsed admissions, then admit the next
-- shoppers in place order while fewer than available x oversubscription have an admission
-- they have not used. When the stock is gone for good (nothing available, nothing held,
-- or the sale has ended), the room is marked sold out and admits no one; a restock undoes
-- that. Safe to run from many processes at once: each run is one atomic step.
-- KEYS: 1 stock, 2 room (hash), 3 tickets, 4 queue, 5 admitted, 6 the room's change log
-- ARGV: 1 now ms, 2 batch (most admissions and lapses in one step), 3 room channel
-- Returns: {kind, admitted now, lapsed now, admissions unused, available}
--          kind: "OK" | "OFF" | "NOT_LOADED" | "NOT_STARTED" | "SOLD_OUT"
local now, batch = tonumber(ARGV[1]), tonumber(ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_LOADED', 0, 0, 0, 0} end
local s = redis.call('HMGET', KEYS[1], 'total', 'sold', 'reserved', 'starts', 'ends', 'room',
  'room_admit', 'room_over')
if s[6] ~= '1' then return {'OFF', 0, 0, 0, 0} end
local total, sold, reserved = tonumber(s[1]), tonumber(s[2]), tonumber(s[3])
local starts, ends = tonumber(s[4]), tonumber(s[5])
local available = total - sold - reserved
if starts >= 0 and now < starts then return {'NOT_STARTED', 0, 0, 0, available} end
local changed = redis.call('HSETNX', KEYS[2], 'started', now) == 1

local lapsed = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, batch)
for _, cid in ipairs(lapsed) do
  redis.call('ZREM', KEYS[5], cid)
  local raw = redis.call('HGET', KEYS[3], cid)
  if raw then
    local t = cjson.decode(raw)
    if t.s == 'ADMITTED' then
      t.s = 'EXPIRED'
      redis.call('HSET', KEYS[3], cid, cjson.encode(t))
      log_ticket(KEYS[6], 'LAPSED', cid, t, now)
    end
  end
end
if #lapsed > 0 then
  redis.call('HINCRBY', KEYS[2], 'lapsed', #lapsed)
  changed = true
end

local unused = redis.call('ZCARD', KEYS[5])
local kind, admitted = 'OK', 0
if (ends >= 0 and now >= ends) or (available <= 0 and reserved <= 0) then
  kind = 'SOLD_OUT'
  if redis.call('HSETNX', KEYS[2], 'soldout', now) == 1 then changed = true end
else
  if redis.call('HDEL', KEYS[2], 'soldout') == 1 then changed = true end
  local quota = math.floor(available * tonumber(s[8]) / 100) - unused
  if quota > batch then quota = batch end
  if quota > 0 then
    local popped = redis.call('ZPOPMIN', KEYS[4], quota)
    local deadline = now + tonumber(s[7])
    for i = 1, #popped, 2 do
      local cid = popped[i]
      local t = cjson.decode(redis.call('HGET', KEYS[3], cid))
      t.s, t.a, t.d = 'ADMITTED', now, deadline
      t.o = redis.call('HINCRBY', KEYS[2], 'admits', 1)
      redis.call('HSET', KEYS[3], cid, cjson.encode(t))
      redis.call('ZADD', KEYS[5], deadline, cid)
      -- The wait counts from the start for those who joined before it.
      log_ticket(KEYS[6], 'ADMITTED', cid, t, now, now - math.max(t.j, starts))
      admitted = admitted + 1
    end
    if admitted > 0 then
      -- The first step's admissions are a burst, not a rate: the estimate leaves them out.
      if redis.call('HSETNX', KEYS[2], 'first', now) == 1 then
        redis.call('HSET', KEYS[2], 'burst', admitted)
      end
      changed = true
    end
    unused = unused + admitted
  end
end
if changed then
  redis.call('PUBLISH', ARGV[3], cjson.encode({
    admits = tonumber(redis.call('HGET', KEYS[2], 'admits') or '0'),
    soldout = kind == 'SOLD_OUT', at = now,
  }))
end
return {kind, admitted, #lapsed, unused, available}
