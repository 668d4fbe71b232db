-- Read one customer's ticket with what its view needs, at one instant (changes nothing).
-- KEYS: 1 stock, 2 room (hash), 3 tickets, 4 queue
-- ARGV: 1 customer id
-- Returns: {ticket json or "", rank in the queue (-1: not waiting), queue length,
--           room: started, soldout, admits, first, burst; stock: room, starts, ends}
local raw = redis.call('HGET', KEYS[3], ARGV[1]) or ''
local rank = redis.call('ZRANK', KEYS[4], ARGV[1])
local r = redis.call('HMGET', KEYS[2], 'started', 'soldout', 'admits', 'first', 'burst')
local s = redis.call('HMGET', KEYS[1], 'room', 'starts', 'ends')
return {raw, rank or -1, redis.call('ZCARD', KEYS[4]),
  r[1] or '', r[2] or '', r[3] or '0', r[4] or '', r[5] or '0',
  s[1] or '', s[2] or '-1', s[3] or '-1'}
