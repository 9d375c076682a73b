-- The whole-history rollup KEYS[1] (fields `type␟domain␟a|i`) summed by type and by domain, server-side.
-- a.suffix: 'a' (every event) or 'i' (identified ones); a.event_type, a.domain: optional filters.
-- Returns {{type, count, ...}, {domain, count, ...}}, names in first-seen order.
local a = cmsgpack.unpack(ARGV[1])
local suffix, t, d = a.suffix, a.event_type, a.domain
local flat = redis.call('HGETALL', KEYS[1])
local by_t, by_d, out_t, out_d = {}, {}, {}, {}
local function add(sums, order, name, c)
  if sums[name] == nil then sums[name] = 0; order[#order + 1] = name end
  sums[name] = sums[name] + c
end
local ordered_t, ordered_d = {}, {}
for i = 1, #flat, 2 do
  local f = flat[i]
  local x = string.find(f, '\031', 1, true)
  local y = string.find(f, '\031', x + 1, true)
  if string.sub(f, y + 1) == suffix then
    local ft, fd = string.sub(f, 1, x - 1), string.sub(f, x + 1, y - 1)
    if (t == nil or ft == t) and (d == nil or fd == d) then
      local c = tonumber(flat[i + 1])
      add(by_t, ordered_t, ft, c)
      add(by_d, ordered_d, fd, c)
    end
  end
end
for _, name in ipairs(ordered_t) do out_t[#out_t + 1] = name; out_t[#out_t + 1] = by_t[name] end
for _, name in ipairs(ordered_d) do out_d[#out_d + 1] = name; out_d[#out_d + 1] = by_d[name] end
return {out_t, out_d}
