-- The data field ('d') of each log entry id in a.ids (false when the entry is gone), in a.ids' order.
-- KEYS[1]: the partition's log stream.
local a = cmsgpack.unpack(ARGV[1])
local out = {}
for i, id in ipairs(a.ids) do
  local found = false
  local r = redis.call('XRANGE', KEYS[1], id, id, 'COUNT', 1)
  if r[1] then
    local f = r[1][2]
    for j = 1, #f, 2 do if f[j] == 'd' then found = f[j + 1]; break end end
  end
  out[i] = found
end
return out
