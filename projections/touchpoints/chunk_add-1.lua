-- Add members to chunked sorted sets (`projections/touchpoints/chunks.py`), each set's in the order given,
-- inside the fold's MULTI/EXEC. Every score is 0: order is the members' bytes.
-- KEYS[1]: a key of the workspace (routes the call to its slot; every key written shares it).
-- a.sets: {{first, directory, stem, tail, member...}, ...} (a `keys.ChunkedSet` and its new members);
-- a.max: members a chunk holds at most (below the listpack limit); a.keylen: bytes of a member's key, the part
-- a chunk's bound is made of. Chunk n is the key stem .. n .. tail; the directory holds `<bound><n>`.
local a = cmsgpack.unpack(ARGV[1])
local max, keylen = a.max, a.keylen

-- The chunk holding m's place: the one with the greatest bound at or below m's key (none: the first).
local function chunk_of(set, m)
  local found = redis.call('ZRANGE', set[2], '[' .. string.sub(m, 1, keylen) .. '\255', '-', 'BYLEX', 'REV',
    'LIMIT', 0, 1)
  if #found == 0 then
    return set[1]
  end
  return set[3] .. string.sub(found[1], keylen + 1) .. set[4]
end

-- A chunk past `max` members gives its upper half to a new chunk, or, when m was added at its end (time
-- order, the common case), just m: the chunk stays full and the next members go to the new one.
local function split(set, chunk, m)
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
  local id = redis.call('ZCARD', set[2]) + 1
  local args = {}
  for i, x in ipairs(moved) do
    args[2 * i - 1] = 0
    args[2 * i] = x
  end
  redis.call('ZADD', set[3] .. id .. set[4], unpack(args))
  redis.call('ZADD', set[2], 0, string.sub(moved[1], 1, keylen) .. id)
end

for _, set in ipairs(a.sets) do
  local n = #set - 4
  if redis.call('EXISTS', set[2]) == 0 and redis.call('ZCARD', set[1]) + n <= max then
    local args = {}
    for i = 1, n do
      args[2 * i - 1] = 0
      args[2 * i] = set[i + 4]
    end
    redis.call('ZADD', set[1], unpack(args))
  else
    for i = 5, #set do
      local m = set[i]
      local chunk = chunk_of(set, m)
      if redis.call('ZADD', chunk, 0, m) == 1 then
        split(set, chunk, m)
      end
    end
  end
end
return 0
