-- Add members to chunked sorted sets (`projections/touchpoints/chunks.py`), each set's in the order given,
-- inside the fold's MULTI/EXEC. Every score is 0: order is the members' bytes.
-- KEYS[1]: a key of the workspace (routes the call to its slot; every key written shares it).
-- ARGV (binary-safe strings): max (members a chunk holds at most, below the listpack limit), keylen (bytes
-- of a member's key, what a chunk's bound is made of), then for each set `first, directory, stem, tail,
-- count, members…` (a `keys.ChunkedSet` and its new members). Chunk n is the key stem .. n .. tail; the
-- directory holds `<bound><n>`.
local max, keylen = tonumber(ARGV[1]), tonumber(ARGV[2])

-- The chunk holding m's place: the one with the greatest bound at or below m's key (none: the first).
local function chunk_of(first, directory, stem, tail, m)
  local found = redis.call('ZRANGE', directory, '[' .. string.sub(m, 1, keylen) .. '\255', '-', 'BYLEX', 'REV',
    'LIMIT', 0, 1)
  if #found == 0 then
    return first
  end
  return stem .. string.sub(found[1], keylen + 1) .. tail
end

-- A chunk past `max` members gives its upper half to a new chunk, or, when m was added at its end (time
-- order, the common case), just m: the chunk stays full and the next members go to the new one.
local function split(directory, stem, tail, chunk, m)
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
  local args = {}
  for i, x in ipairs(moved) do
    args[2 * i - 1] = 0
    args[2 * i] = x
  end
  redis.call('ZADD', stem .. id .. tail, unpack(args))
  redis.call('ZADD', directory, 0, string.sub(moved[1], 1, keylen) .. id)
end

local i = 3
while i <= #ARGV do
  local first, directory, stem, tail, n = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4])
  local lo, hi = i + 5, i + 4 + n
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
      local chunk = chunk_of(first, directory, stem, tail, m)
      if redis.call('ZADD', chunk, 0, m) == 1 then
        split(directory, stem, tail, chunk, m)
      end
    end
  end
  i = hi + 1
end
return 0
