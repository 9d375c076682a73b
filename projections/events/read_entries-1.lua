-- The version ('v') and data ('d') fields of each log entry id in a.ids, as {v, d} (false when the entry is
-- gone), in a.ids' order.
-- KEYS[1]: the partition's log stream.
local a = cmsgpack.unpack(ARGV[1])
local out = {}
for i, id in ipairs(a.ids) do
  local found = false
  local r = redis.call('XRANGE', KEYS[1], id, id, 'COUNT', 1)
  if r[1] then
    local f = r[1][2]
    local v, d
    for j = 1, #f, 2 do
      if f[j] == 'v' then v = f[j + 1] elseif f[j] == 'd' then d = f[j + 1] end
    end
    if d then found = {v or '', d} end
  end
  out[i] = found
end
return out
