-- Join a product's waiting room: one ticket per customer and product, idempotent.
-- Before the sale starts, the place is a uniform random draw made at join (ARGV[3]): the
-- queue, ordered by it, is a uniformly random permutation of those who joined before the
-- start, fixed once they joined (joining again keeps the draw). From the start on, places
-- follow arrival: 1 + an arrival number, after every draw. A ticket whose admission lapsed
-- or was used may join again, at the back.
-- KEYS: 1 stock, 2 room (hash), 3 tickets (hash cid -> json), 4 queue (zset cid -> score),
--       5 admitted (zset cid -> deadline ms), 6 the room's change log (stream)
-- ARGV: 1 customer id, 2 now ms, 3 draw: a uniform number in [0, 1), as a decimal string,
--       4 the customer's ticket channel
-- Returns: {"OK", ticket json} (a new ticket) | {"EXISTING", ticket json} | {"NOT_LOADED"}
--        | {"ROOM_OFF"} | {"ROOM_NOT_OPEN", opens ms} | {"SALE_ENDED"}
local cid, now = ARGV[1], tonumber(ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_LOADED'} end
local s = redis.call('HMGET', KEYS[1], 'room', 'room_open', 'starts', 'ends')
if s[1] ~= '1' then return {'ROOM_OFF'} end
local starts, ends = tonumber(s[3]), tonumber(s[4])
if starts >= 0 and now < starts - tonumber(s[2]) then
  return {'ROOM_NOT_OPEN', starts - tonumber(s[2])}
end
if ends >= 0 and now >= ends then return {'SALE_ENDED'} end

local raw = redis.call('HGET', KEYS[3], cid)
if raw then
  local t = cjson.decode(raw)
  if t.s == 'WAITING' or (t.s == 'ADMITTED' and t.d > now) then return {'EXISTING', raw} end
  redis.call('ZREM', KEYS[5], cid)  -- a lapsed admission the tick has not ended yet
  redis.call('HINCRBY', KEYS[2], 'rejoined', 1)
else
  redis.call('HINCRBY', KEYS[2], 'joined', 1)
end
local score
if starts >= 0 and now < starts then
  score = ARGV[3]
else
  score = 1 + redis.call('HINCRBY', KEYS[2], 'seq', 1)
end
local t = {s = 'WAITING', z = score, j = now}
local encoded = cjson.encode(t)
redis.call('HSET', KEYS[3], cid, encoded)
redis.call('ZADD', KEYS[4], score, cid)
redis.call('PUBLISH', ARGV[4], encoded)
log_ticket(KEYS[6], 'JOINED', cid, t, now)
return {'OK', encoded}
