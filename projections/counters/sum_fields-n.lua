-- The sum of the fields a.fields in each hash of KEYS, in KEYS order (a missing field counts 0).
local a = cmsgpack.unpack(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  local n = 0
  for _, c in ipairs(redis.call('HMGET', key, unpack(a.fields))) do if c then n = n + tonumber(c) end end
  out[i] = n
end
return out
