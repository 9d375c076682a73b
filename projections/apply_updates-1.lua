-- Run a fold batch's key updates (`projections/updates.py`) in one call, inside the fold's MULTI/EXEC.
-- KEYS[1]: a key of the partition (routes the call to the partition's slot; every key updated shares it).
-- ARGV: the commands one after another, each `name, key, count, args…` (`count` args follow). Unlike the other
-- scripts' named arguments (one msgpack map), this is a stream of binary-safe strings: index members are
-- binary, and the server's msgpack decoder knows no binary type.
-- HINCRBY carries many `field, increment` pairs (one HINCRBY each, in order). MERGE_RECORDS `width, records…`
-- merges sorted fixed-width records into a string of records sorted by their first 16 bytes (a ULID);
-- REMOVE_RECORDS `width, records…` takes records out of such a string (deleting it when none is left).

-- ULID order of two records or members: their first 16 bytes as big-endian numbers (no locale involved)
local function ulid_less(a, b)
  local a1, a2, a3, a4 = struct.unpack('>I4I4I4I4', a)
  local b1, b2, b3, b4 = struct.unpack('>I4I4I4I4', b)
  if a1 ~= b1 then return a1 < b1 end
  if a2 ~= b2 then return a2 < b2 end
  if a3 ~= b3 then return a3 < b3 end
  return a4 < b4
end

local function merge_records(key, w, first, last)
  local n = redis.call('STRLEN', key) / w
  local lo = n  -- the first stored record after the first new one: usually none (records come in receipt order)
  if n > 0 and ulid_less(ARGV[first], redis.call('GETRANGE', key, (n - 1) * w, n * w - 1)) then
    local hi
    lo, hi = 0, n - 1
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if ulid_less(ARGV[first], redis.call('GETRANGE', key, mid * w, mid * w + w - 1)) then hi = mid else lo = mid + 1 end
    end
  end
  if lo == n then
    redis.call('APPEND', key, table.concat(ARGV, '', first, last))
    return
  end
  local tail = redis.call('GETRANGE', key, lo * w, n * w - 1)
  local out, t, j, tn = {}, 1, first, #tail / w
  while t <= tn or j <= last do
    local rec = t <= tn and string.sub(tail, (t - 1) * w + 1, t * w)
    if rec and (j > last or not ulid_less(ARGV[j], rec)) then
      out[#out + 1] = rec
      t = t + 1
    else
      out[#out + 1] = ARGV[j]
      j = j + 1
    end
  end
  redis.call('SETRANGE', key, lo * w, table.concat(out))
end

local function remove_records(key, w, first, last)
  local gone = {}
  for j = first, last do gone[ARGV[j]] = true end
  local raw = redis.call('GET', key)
  if not raw then return end
  local kept = {}
  for j = 0, #raw / w - 1 do
    local rec = string.sub(raw, j * w + 1, (j + 1) * w)
    if not gone[rec] then kept[#kept + 1] = rec end
  end
  if #kept == 0 then redis.call('DEL', key) else redis.call('SET', key, table.concat(kept)) end
end

local i, n = 1, #ARGV
while i <= n do
  local name, key, count = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local first, last = i + 3, i + 2 + count
  if name == 'HINCRBY' then
    for j = first, last, 2 do redis.call('HINCRBY', key, ARGV[j], ARGV[j + 1]) end
  elseif name == 'MERGE_RECORDS' then
    merge_records(key, tonumber(ARGV[first]), first + 1, last)
  elseif name == 'REMOVE_RECORDS' then
    remove_records(key, tonumber(ARGV[first]), first + 1, last)
  elseif count > 0 then
    redis.call(name, key, unpack(ARGV, first, last))
  else
    redis.call(name, key)
  end
  i = last + 1
end
return 0
