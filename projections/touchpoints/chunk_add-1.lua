-- Add members to chunked sorted sets of one family (`projections/touchpoints/chunks.py`), each set's in the
-- order given, inside the fold's MULTI/EXEC. Every score is 0: order is the members' bytes.
-- KEYS[1]: a key of the workspace (routes the call to its slot; every key written shares it).
-- ARGV (binary-safe strings): max (members a chunk holds at most, below the listpack limit), keylen (bytes
-- of a member's key, what a chunk's bound is made of), the family's key stems `first, directory, chunk_stem,
-- split` (`keys.ChunkedSets`), then for each set `name, count, members…`. A set's chunk n is the key
-- chunk_stem .. n .. ':' .. name; its directory holds `<bound><n>`; `split` lists the sets that have chunks.
local max, keylen = tonumber(ARGV[1]), tonumber(ARGV[2])
local first_stem, directory_stem, chunk_stem, split = ARGV[3], ARGV[4], ARGV[5], ARGV[6]

-- The chunk holding m's place: the one with the greatest bound at or below m's key (none: the first).
local function chunk_of(first, directory, name, m)
  local found = redis.call('ZRANGE', directory, '[' .. string.sub(m, 1, keylen) .. '\255', '-', 'BYLEX', 'REV',
    'LIMIT', 0, 1)
  if #found == 0 then
    return first
  end
  return chunk_stem .. string.sub(found[1], keylen + 1) .. ':' .. name
end

-- A chunk past `max` members gives its upper half to a new chunk, or, when m was added at its end (time
-- order, the common case), just m: the chunk stays full and the next members go to the new one.
local function split_chunk(directory, name, chunk, m)
  local n = redis.call('ZCARD', chunk)
  if n <= max then
    return
  end
  local from = math.floor(n / 2)
  if redis.call('ZRANGE', chunk, -1, -1)[1] == m then
    from = n - 1
  end
  local moved = redis.call('ZRANGE', chunk, from, -1)
  redis.call('ZREMRANGEBYRANK', chunk, from, -1)
  local id = redis.call('ZCARD', directory) + 1
  if id == 1 then
    redis.call('SADD', split, name)
  end
  local args = {}
  for i, x in ipairs(moved) do
    args[2 * i - 1] = 0
    args[2 * i] = x
  end
  redis.call('ZADD', chunk_stem .. id .. ':' .. name, unpack(args))
  redis.call('ZADD', directory, 0, string.sub(moved[1], 1, keylen) .. id)
end

local i = 7
while i <= #ARGV do
  local name, n = ARGV[i], tonumber(ARGV[i + 1])
  local first, directory = first_stem .. name, directory_stem .. name
  local lo, hi = i + 2, i + 1 + n
  if redis.call('EXISTS', directory) == 0 and redis.call('ZCARD', first) + n <= max then
    local args = {}
    for j = lo, hi do
      args[#args + 1] = 0
      args[#args + 1] = ARGV[j]
    end
    redis.call('ZADD', first, unpack(args))
  else
    for j = lo, hi do
      local m = ARGV[j]
      local chunk = chunk_of(first, directory, name, m)
      if redis.call('ZADD', chunk, 0, m) == 1 then
        split_chunk(directory, name, chunk, m)
      end
    end
  end
  i = hi + 1
end
return 0
