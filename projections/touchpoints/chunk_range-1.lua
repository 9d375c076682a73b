-- Members of chunked sorted sets of one family (`projections/touchpoints/chunks.py`) between BYLEX bounds.
-- KEYS[1]: a key of the workspace (routes the call).
-- ARGV (binary-safe strings): keylen (bytes of a member's key), the family's key stems `first, directory,
-- chunk_stem, split`, rev ('1': walk from hi down), count (at most this many members a set, −1: all), then
-- for each set `name, lo, hi`: BYLEX bounds ('-', '+', '[x', '(x'; lo at or below hi).
-- Answers one flat array: for each set, how many members, then its members in walk order.
local keylen = tonumber(ARGV[1])
local first_stem, directory_stem, chunk_stem, split = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local rev, count = ARGV[6] == '1', tonumber(ARGV[7])

local function range(key, lo, hi, want)
  if rev then
    if want < 0 then
      return redis.call('ZRANGE', key, hi, lo, 'BYLEX', 'REV')
    end
    return redis.call('ZRANGE', key, hi, lo, 'BYLEX', 'REV', 'LIMIT', 0, want)
  end
  if want < 0 then
    return redis.call('ZRANGE', key, lo, hi, 'BYLEX')
  end
  return redis.call('ZRANGE', key, lo, hi, 'BYLEX', 'LIMIT', 0, want)
end

-- The directory entry of the chunk a bound falls in (false: the first chunk). A low bound may give an earlier
-- chunk than needed and a high bound a later one: the chunks read apply the exact bounds.
local function entry_at(directory, bound, high)
  if bound == '-' then
    return false
  end
  local max = '+'
  if bound ~= '+' then
    local x = string.sub(bound, 2)
    if high then
      max = '[' .. string.sub(x, 1, keylen) .. '\255'
    else
      max = '[' .. x
    end
  end
  return redis.call('ZRANGE', directory, max, '-', 'BYLEX', 'REV', 'LIMIT', 0, 1)[1] or false
end

-- A split set: walk its chunks from the one the walk starts in to the one it ends in, through the directory.
local function walk(name, lo, hi, out)
  local directory = directory_stem .. name
  local entry, stop
  if rev then
    entry, stop = entry_at(directory, hi, true), entry_at(directory, lo, false)
  else
    entry, stop = entry_at(directory, lo, false), entry_at(directory, hi, true)
  end
  local found = 0
  while true do
    local key = first_stem .. name
    if entry then
      key = chunk_stem .. string.sub(entry, keylen + 1) .. ':' .. name
    end
    local want = -1
    if count >= 0 then
      want = count - found
    end
    for _, m in ipairs(range(key, lo, hi, want)) do
      out[#out + 1] = m
      found = found + 1
    end
    if (count >= 0 and found >= count) or entry == stop then
      break
    end
    if rev then
      if not entry then
        break
      end
      entry = redis.call('ZRANGE', directory, '(' .. entry, '-', 'BYLEX', 'REV', 'LIMIT', 0, 1)[1] or false
    else
      local after = '-'
      if entry then
        after = '(' .. entry
      end
      entry = redis.call('ZRANGE', directory, after, '+', 'BYLEX', 'LIMIT', 0, 1)[1]
      if not entry then
        break
      end
    end
  end
  return found
end

-- Which sets are split, asked for a thousand names at a time.
local is_split = {}
if redis.call('SCARD', split) > 0 then
  for i = 8, #ARGV, 3000 do
    local names = {}
    for j = i, math.min(i + 2999, #ARGV), 3 do
      names[#names + 1] = ARGV[j]
    end
    for k, flag in ipairs(redis.call('SMISMEMBER', split, unpack(names))) do
      if flag == 1 then
        is_split[i + 3 * (k - 1)] = true
      end
    end
  end
end

local out = {}
for i = 8, #ARGV, 3 do
  local at = #out + 1
  out[at] = 0
  if is_split[i] then
    out[at] = walk(ARGV[i], ARGV[i + 1], ARGV[i + 2], out)
  else
    local found = range(first_stem .. ARGV[i], ARGV[i + 1], ARGV[i + 2], count)
    out[at] = #found
    for _, m in ipairs(found) do
      out[#out + 1] = m
    end
  end
end
return out
