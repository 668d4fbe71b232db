-- Checkout failed before it was durable: put the hold back with its original deadline
-- (if that has passed, the next expiry tick ends it). Only the claim's own token does; a
-- claims entry whose hold is no longer claimed is dropped.
-- KEYS: 1 holds, 2 expiry, 3 claims
-- ARGV: 1 rid, 2 claim token
-- Returns: 1 if that claim was put back, else 0
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local h = raw and cjson.decode(raw)
if not h or h.s ~= 'ACTIVE' or not h.cl then
  redis.call('ZREM', KEYS[3], ARGV[1])
  return 0
end
if h.cl ~= ARGV[2] then return 0 end
h.cl = nil
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(h))
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[2], h.ex, ARGV[1])
return 1
