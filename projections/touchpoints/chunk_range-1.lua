-- Members of chunked sorted sets (`projections/touchpoints/chunks.py`) between BYLEX bounds, in order.
-- KEYS[1]: a key of the workspace (routes the call).
-- ARGV (binary-safe strings): keylen (bytes of a member's key), then for each range `first, directory, stem,
-- tail, lo, hi, rev, count`: lo / hi are BYLEX bounds ('-', '+', '[x', '(x', lo at or below hi); rev '1' walks
-- from hi down; count −1 = every member. Answers one array of members per range.
local keylen = tonumber(ARGV[1])

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
  local found = redis.call('ZRANGE', directory, max, '-', 'BYLEX', 'REV', 'LIMIT', 0, 1)
  return found[1] or false
end

local function chunk_key(r, entry)
  if not entry then
    return r[1]
  end
  return r[3] .. string.sub(entry, keylen + 1) .. r[4]
end

local function read(r)
  local lo, hi, rev, count = r[5], r[6], r[7], r[8]
  local function range(key, want)
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
  if redis.call('EXISTS', r[2]) == 0 then
    return range(r[1], count)
  end
  -- Walk the chunks from the one the walk starts in to the one it ends in, through the directory.
  local entry, stop
  if rev then
    entry, stop = entry_at(r[2], hi, true), entry_at(r[2], lo, false)
  else
    entry, stop = entry_at(r[2], lo, false), entry_at(r[2], hi, true)
  end
  local out = {}
  while true do
    local want = -1
    if count >= 0 then
      want = count - #out
    end
    for _, m in ipairs(range(chunk_key(r, entry), want)) do
      out[#out + 1] = m
    end
    if (count >= 0 and #out >= count) or entry == stop then
      break
    end
    if rev then
      if not entry then
        break
      end
      entry = redis.call('ZRANGE', r[2], '(' .. entry, '-', 'BYLEX', 'REV', 'LIMIT', 0, 1)[1] or false
    else
      local after = '-'
      if entry then
        after = '(' .. entry
      end
      entry = redis.call('ZRANGE', r[2], after, '+', 'BYLEX', 'LIMIT', 0, 1)[1]
      if not entry then
        break
      end
    end
  end
  return out
end

local out = {}
for i = 2, #ARGV, 8 do
  out[#out + 1] = read({ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6] == '1',
    tonumber(ARGV[i + 7])})
end
return out
