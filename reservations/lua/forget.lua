-- Drop ended holds from Redis once MongoDB has recorded them (keeps memory bounded).
-- Only terminal holds are removed; an ACTIVE one is never touched.
-- KEYS: 1 holds
-- ARGV: rids
-- Returns: number removed
local removed = 0
for _, rid in ipairs(ARGV) do
  local raw = redis.call('HGET', KEYS[1], rid)
  if raw and cjson.decode(raw).s ~= 'ACTIVE' then
    redis.call('HDEL', KEYS[1], rid)
    removed = removed + 1
  end
end
return removed
