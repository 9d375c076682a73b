-- The record of one event id in KEYS[1], a string of fixed-width records sorted by their first 16 bytes (a ULID);
-- false when it is not there. a.ulid: the id's 16 bytes as four big-endian 32-bit numbers {n1, n2, n3, n4}
-- (compared as numbers: no locale involved), a.width: the record width.
local a = cmsgpack.unpack(ARGV[1])
local w, u = a.width, a.ulid
local function cmp(rec)  -- -1, 0, 1: the record's ULID before, equal to, after the one asked for
  local r = {struct.unpack('>I4I4I4I4', rec)}
  for i = 1, 4 do
    if r[i] ~= u[i] then return r[i] < u[i] and -1 or 1 end
  end
  return 0
end
local lo, hi = 0, redis.call('STRLEN', KEYS[1]) / w - 1
while lo <= hi do
  local mid = math.floor((lo + hi) / 2)
  local rec = redis.call('GETRANGE', KEYS[1], mid * w, mid * w + w - 1)
  local c = cmp(rec)
  if c == 0 then return rec end
  if c < 0 then lo = mid + 1 else hi = mid - 1 end
end
return false
