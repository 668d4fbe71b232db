-- Shared by every script (prepended to each when it is registered; see scripts.py).
-- The scripts spell the engine's Redis format: a hold's fields (c q s cr ex k en cl), the
-- change log's (e r c q cr ex k at), the sold record's "qty:customer" and the recorded
-- holds and orders handed to load and repair ({r c q cr ex k}, {r c q}). In Python, only
-- reservations/codec.py knows them: change both together.

-- Publish a hold's change on its customer's own channel, "<prefix>:customer:<cid>:events",
-- beside the product's channel "<prefix>:{<pid>}:events": the names
-- reservations/keys.py builds (customer_channel, ProductKeys.events) for Python.
local function tell_customer(channel, cid, rid, status, qty, expires, at)
  local prefix, pid = string.match(channel, '^(.-):{(.-)}:')
  redis.call('PUBLISH', prefix .. ':customer:' .. cid .. ':events', cjson.encode({
    product = pid, hold = rid, status = status, quantity = qty, expires = expires, at = at,
  }))
end

-- Publish the product's counters on its channel.
local function tell_stock(channel, stock_key, at)
  local s = redis.call('HMGET', stock_key, 'total', 'sold', 'reserved')
  redis.call('PUBLISH', channel, cjson.encode({
    total = tonumber(s[1]), sold = tonumber(s[2]), reserved = tonumber(s[3]), at = at,
  }))
end

-- Append a hold's state to the product's change log (read by the persister).
local function log_hold(log_key, status, rid, h, at)
  redis.call('XADD', log_key, '*', 'e', status, 'r', rid, 'c', h.c, 'q', h.q,
    'cr', h.cr, 'ex', h.ex, 'k', h.k, 'at', at)
end

-- Append a waiting-room ticket's step to the room's change log (read by the room
-- recorder): e JOINED ADMITTED LAPSED RESERVED, c customer, j the ticket's join ms (which
-- names the ticket), at, w the wait in ms (ADMITTED), r the hold (RESERVED).
local function log_ticket(log_key, step, cid, t, at, wait)
  redis.call('XADD', log_key, '*', 'e', step, 'c', cid, 'j', t.j, 'at', at,
    'w', wait or 0, 'r', t.r or '')
end

-- One customer's units held or bought, moved by `delta`; the field goes at zero.
local function count_customer(customers_key, cid, delta)
  local left = redis.call('HINCRBY', customers_key, cid, delta)
  if left <= 0 then redis.call('HDEL', customers_key, cid) end
end
