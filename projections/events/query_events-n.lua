-- The Events API list query (`projections/events/query.py`), run server-side in one call.
-- KEYS: every group's keys in the order of a.parts, then (mode createdAt) ix:all and the receipt-record strings
-- (`rx:<day>`, 32-byte records sorted by event id) in the walk's order, or (mode facets) the facet indices. Members are binary
-- (a 16-byte ULID, then the log position): they are ordered by their ULID read as numbers, never by Lua's string
-- comparison (which follows the server's locale).
-- a.parts: parts → branches → groups; a group is {keys = how many of KEYS it takes, counts = {…}, bounds = {…}}
-- with the optional hints: each key's event count, and its newest score when sorting descending or oldest when
-- ascending (keys best bound first). Parts are concatenated in order (sort_by=event: one per event type); a
-- part's branches are disjoint and merged; a branch's groups are intersected; a group's keys are united.
-- a.mode: timestamp | event | createdAt | facets; a.lo, a.hi: the score range (strings); a.desc, a.offset,
-- a.limit, a.need_count, a.ranged (a time range was given), a.gather_limit, a.unfiltered.
-- Returns {count or -1, member...}, or (facets) one count per facet index.
local a = cmsgpack.unpack(ARGV[1])
local mode, lo_s, hi_s = a.mode, a.lo, a.hi
local lo, hi = tonumber(lo_s), tonumber(hi_s)
local desc, offset, limit = a.desc, a.offset, a.limit
local need_count, ranged = a.need_count, a.ranged
local gather_limit, unfiltered = a.gather_limit, a.unfiltered
local k = 1
local parts = {}
for p, branch_specs in ipairs(a.parts) do
  local branches = {}
  for b, group_specs in ipairs(branch_specs) do
    local gs = {}
    for g, spec in ipairs(group_specs) do
      local grp = {}
      for i = 1, spec.keys do grp[i] = KEYS[k]; k = k + 1 end
      if spec.counts then grp.counts, grp.bounds = spec.counts, spec.bounds end
      gs[g] = grp
    end
    branches[b] = gs
  end
  parts[p] = branches
end
local CHUNK = 1000

local function range(key, start, count)
  if desc then
    return redis.call('ZRANGE', key, hi_s, lo_s, 'BYSCORE', 'REV', 'LIMIT', start, count, 'WITHSCORES')
  end
  return redis.call('ZRANGE', key, lo_s, hi_s, 'BYSCORE', 'LIMIT', start, count, 'WITHSCORES')
end

local function id_key(x)  -- a picked {member, score}'s ULID as 32 hex digits (cached in x[3]): sorts as the id
  local h = x[3]
  if not h then
    h = string.format('%08x%08x%08x%08x', struct.unpack('>I4I4I4I4', x[1]))
    x[3] = h
  end
  return h
end

local function before(x, y)  -- x sorts before y: score, then event id, both in the query's direction
  if x[2] ~= y[2] then if desc then return x[2] > y[2] end return x[2] < y[2] end
  if desc then return id_key(x) > id_key(y) end
  return id_key(x) < id_key(y)
end

-- flags[i] = true when members[i] is in every group of `others`
local function passes(members, others)
  local flags = {}
  for i = 1, #members do flags[i] = true end
  for _, grp in ipairs(others) do
    local hit = {}
    for _, key in ipairs(grp) do
      local sc = redis.call('ZMSCORE', key, unpack(members))
      for i = 1, #members do if sc[i] then hit[i] = true end end
    end
    for i = 1, #members do if not hit[i] then flags[i] = false end end
  end
  return flags
end

-- count (or -1) and the first `want` matches {member, score} in order, of one branch
local function evaluate(gs, want, count_needed)
  -- drive from the group whose scan costs least: its size times the keys each of its chunks is checked in
  local totals, nkeys = {}, 0
  for g, grp in ipairs(gs) do
    local t = 0
    if grp.counts and not ranged then
      for i = 1, #grp do t = t + grp.counts[i] end
    else
      for _, key in ipairs(grp) do t = t + redis.call('ZCOUNT', key, lo_s, hi_s) end
    end
    if t == 0 then return 0, {} end
    totals[g] = t
    nkeys = nkeys + #grp
  end
  local best, bestn, bestcost = nil, nil, nil
  for g, grp in ipairs(gs) do
    local cost = totals[g] * (1 + nkeys - #grp)
    if bestcost == nil or cost < bestcost then best, bestn, bestcost = g, totals[g], cost end
  end
  local driver, others = gs[best], {}
  for g, grp in ipairs(gs) do if g ~= best then others[#others + 1] = grp end end
  local picked = {}
  if #others == 0 then
    if want > 0 then
      -- the first `want` of a union: once `want` candidates are known, later keys only give what beats them
      local bound, bound_score = nil, nil
      for i, key in ipairs(driver) do
        -- hinted keys come best bound first: once one cannot beat the page's last candidate, none can
        if bound ~= nil and driver.bounds then
          local b = driver.bounds[i]
          if (desc and b < bound_score) or (not desc and b > bound_score) then break end
        end
        local r
        if bound == nil then r = range(key, 0, want)
        elseif desc then r = redis.call('ZRANGE', key, hi_s, bound, 'BYSCORE', 'REV', 'LIMIT', 0, want, 'WITHSCORES')
        else r = redis.call('ZRANGE', key, lo_s, bound, 'BYSCORE', 'LIMIT', 0, want, 'WITHSCORES') end
        for i = 1, #r, 2 do picked[#picked + 1] = {r[i], tonumber(r[i + 1])} end
        if #picked >= 2 * want then
          table.sort(picked, before)
          for i = #picked, want + 1, -1 do picked[i] = nil end
          bound_score = picked[want][2]
          bound = string.format('%.17g', bound_score)
        end
      end
      table.sort(picked, before)
    end
    return bestn, picked
  end
  local count = 0
  for _, key in ipairs(driver) do
    local start, got = 0, 0
    while count_needed or got < want do
      local r = range(key, start, CHUNK)
      local n = #r / 2
      if n == 0 then break end
      local members = {}
      for i = 1, n do members[i] = r[2 * i - 1] end
      local flags = passes(members, others)
      for i = 1, n do
        if flags[i] then
          count = count + 1
          if got < want then picked[#picked + 1] = {members[i], tonumber(r[2 * i])}; got = got + 1 end
        end
      end
      if n < CHUNK then break end
      start = start + CHUNK
    end
  end
  table.sort(picked, before)
  if not count_needed then count = -1 end
  return count, picked
end

-- the same over a part's disjoint branches: counts add up, first matches merge
local function evaluate_part(branches, want, count_needed)
  if #branches == 1 then return evaluate(branches[1], want, count_needed) end
  local count, merged = 0, {}
  for _, gs in ipairs(branches) do
    local c, picked = evaluate(gs, want, count_needed)
    count = count + c
    for _, x in ipairs(picked) do merged[#merged + 1] = x end
  end
  table.sort(merged, before)
  for i = #merged, want + 1, -1 do merged[i] = nil end
  if not count_needed then count = -1 end
  return count, merged
end

local out = {}
local function emit(picked, from, to)
  for i = from, math.min(to, #picked) do out[#out + 1] = picked[i][1] end
end

if mode == 'facets' then
  -- the count of each facet index within the (one-branch) query and the time range
  local counts = {}
  for t = k, #KEYS do
    local gs = {{KEYS[t]}}
    for _, grp in ipairs(parts[1][1]) do gs[#gs + 1] = grp end
    counts[#counts + 1] = (evaluate(gs, 0, true))
  end
  return counts
end

if mode == 'timestamp' then
  local branches = parts[1]
  if #branches == 1 and #branches[1] == 1 and #branches[1][1] == 1 then
    local key = branches[1][1][1]
    local count = redis.call('ZCOUNT', key, lo_s, hi_s)
    if limit > 0 then
      local r = range(key, offset, limit)
      for i = 1, #r, 2 do out[#out + 1] = r[i] end
    end
    table.insert(out, 1, count)
    return out
  end
  local count, picked = evaluate_part(branches, limit > 0 and offset + limit or 0, need_count)
  emit(picked, offset + 1, offset + limit)
  table.insert(out, 1, count)
  return out
end

if mode == 'event' then
  local total, pos, stop = 0, 0, offset + limit
  for p = 1, #parts do
    local want = 0
    if limit > 0 and pos < stop then want = stop - pos end
    local c, picked = evaluate_part(parts[p], want, true)
    if want > 0 then emit(picked, math.max(offset - pos, 0) + 1, stop - pos) end
    total = total + c
    pos = pos + c
  end
  table.insert(out, 1, total)
  return out
end

-- mode == 'createdAt': KEYS after the groups are ix:all and the receipt strings, in walk order
local W = 32
local all = KEYS[k]
local days, lens, total = {}, {}, 0
for t = k + 1, #KEYS do
  days[#days + 1] = KEYS[t]
  lens[#days] = redis.call('STRLEN', KEYS[t]) / W
  total = total + lens[#days]
end

local function varint(n)
  local bytes = {}
  repeat
    local b = n % 128
    n = (n - b) / 128
    if n > 0 then b = b + 128 end
    bytes[#bytes + 1] = string.char(b)
  until n == 0
  return table.concat(bytes)
end

-- the members of `count` records of day `i` from walk position `from` (0-based), in walk order
local function records(i, from, count)
  local n = lens[i]
  local a, b = from, from + count - 1
  if desc then a, b = n - from - count, n - from - 1 end
  if a < 0 then a = 0 end
  if b >= n then b = n - 1 end
  local out = {}
  if b < a then return out end
  local raw = redis.call('GETRANGE', days[i], a * W, (b + 1) * W - 1)
  for j = 0, #raw / W - 1 do
    local u, off, seq, idx = struct.unpack('>c16i8I4I4', raw, j * W + 1)
    local zig = off >= 0 and off * 2 or -off * 2 - 1
    out[#out + 1] = u .. varint(zig) .. varint(seq) .. varint(idx)
  end
  if desc then
    for x = 1, math.floor(#out / 2) do out[x], out[#out + 1 - x] = out[#out + 1 - x], out[x] end
  end
  return out
end

local branches = parts[1]
local count = evaluate_part(branches, 0, true)
if limit > 0 and count > offset then
  if unfiltered and not ranged then
    local skip, left = offset, limit
    for i = 1, #days do
      if left == 0 then break end
      if skip >= lens[i] then
        skip = skip - lens[i]
      else
        for _, m in ipairs(records(i, skip, left)) do out[#out + 1] = m; left = left - 1 end
        skip = 0
      end
    end
  elseif count <= gather_limit and (offset + limit) * total / count > 3 * count then
    -- few matches spread thin over the receipt records: sort them by id (= receipt order) instead of walking
    local _, picked = evaluate_part(branches, count, false)
    for i = 1, #picked do picked[i][2] = 0 end
    table.sort(picked, before)
    emit(picked, offset + 1, offset + limit)
  else
    local want, got, found = offset + limit, 0, {}
    for i = 1, #days do
      local from = 0
      while got < want and from < lens[i] do
        local members = records(i, from, CHUNK)
        local flags = {}
        for _, gs in ipairs(branches) do
          local f = passes(members, gs)
          for j = 1, #members do if f[j] then flags[j] = true end end
        end
        if ranged and #members > 0 then
          local ts = redis.call('ZMSCORE', all, unpack(members))
          for j = 1, #members do
            local t = tonumber(ts[j])
            if t == nil or t < lo or t > hi then flags[j] = false end
          end
        end
        for j = 1, #members do
          if flags[j] and got < want then
            got = got + 1
            found[got] = members[j]
          end
        end
        from = from + CHUNK
      end
      if got >= want then break end
    end
    for i = offset + 1, math.min(want, got) do out[#out + 1] = found[i] end
  end
end
table.insert(out, 1, count)
return out
