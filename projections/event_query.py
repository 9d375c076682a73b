"""Events API list queries: turn filters into index groups, run them server-side in one Lua call, fetch the page.

A query's matches are a disjoint union of branches; a branch is a conjunction of groups; a group is a union
of disjoint index ZSETs (event types, one domain, one contact, the identified set, or the page signatures a
text filter matched). Most queries are one branch; `search` (event name OR URL OR domain) is two: events whose
type name matches, and events of the other types whose page matches. The script counts each group in the time
range, drives each branch from its cheapest group, checks the others with `ZMSCORE` a chunk at a time, merges
the branches, and stops early when no count is needed. Sort orders: `timestamp` (ties by id), `event` (name,
then timestamp, then id; one part per event type, in order) and `createdAt` (receipt time, then id); every
part of the order follows `sort_dir`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis

from ingest.log import EventLog
from ingest.schema import Event

from . import keys
from .events import parse_member, read_event_types
from .keys import Keyspace
from .search import Signature, matching_signatures

SortBy = Literal["timestamp", "event", "createdAt"]
SCORE_MIN, SCORE_MAX = -(2**53), 2**53
GATHER_LIMIT = 20_000  # createdAt: sort a filtered set this small by receipt time instead of scanning `ix:r`


@dataclass(frozen=True, slots=True)
class EventQuery:
    event_type: str | None = None
    domain: str | None = None
    contact_id: str | None = None
    url_contains: str | None = None
    search: str | None = None
    identified_only: bool = False
    after_ms: int | None = None  # inclusive
    before_ms: int | None = None  # inclusive
    sort_by: SortBy = "timestamp"
    descending: bool = True
    offset: int = 0
    limit: int = 20


# ARGV: mode, lo, hi, desc, offset, limit, need_count, ranged, gather limit, unfiltered, then the query's shape:
# the number of parts, and per part the number of branches, per branch the number of groups, per group the
# number of keys and whether hints follow (1: each key's event count, then each key's newest score when sorting
# descending or oldest when ascending, keys in that order). KEYS: every group's keys in that order, then (createdAt) ix:r and ix:all, or (facets) the
# facet indices. Parts are concatenated in order (sort_by=event: one per event type); a part's branches are
# disjoint and merged. Returns {count or -1, member...}, or (facets) one count per facet index.
_QUERY_LUA = r"""
local mode, lo_s, hi_s = ARGV[1], ARGV[2], ARGV[3]
local lo, hi = tonumber(lo_s), tonumber(hi_s)
local desc, offset, limit = ARGV[4] == '1', tonumber(ARGV[5]), tonumber(ARGV[6])
local need_count, ranged = ARGV[7] == '1', ARGV[8] == '1'
local gather_limit, unfiltered = tonumber(ARGV[9]), ARGV[10] == '1'
local a, k = 11, 1
local function int() local v = tonumber(ARGV[a]); a = a + 1; return v end
local parts = {}
for p = 1, int() do
  local branches = {}
  for b = 1, int() do
    local gs = {}
    for g = 1, int() do
      local grp, nk = {}, int()
      for i = 1, nk do grp[i] = KEYS[k]; k = k + 1 end
      if int() == 1 then  -- hints: each key's event count, then its newest (desc) or oldest (asc) score
        grp.counts, grp.bounds = {}, {}
        for i = 1, nk do grp.counts[i] = int() end
        for i = 1, nk do grp.bounds[i] = int() end
      end
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

local function before(x, y)  -- x sorts before y: score, then member, both in the query's direction
  if x[2] ~= y[2] then if desc then return x[2] > y[2] end return x[2] < y[2] end
  if desc then return x[1] > y[1] end
  return x[1] < y[1]
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

-- mode == 'createdAt': KEYS after the groups are ix:r and ix:all
local received, all = KEYS[k], KEYS[k + 1]
local branches = parts[1]
local count = evaluate_part(branches, 0, true)
if limit > 0 and count > offset then
  if unfiltered and not ranged then
    local r
    if desc then r = redis.call('ZRANGE', received, offset, offset + limit - 1, 'REV')
    else r = redis.call('ZRANGE', received, offset, offset + limit - 1) end
    for i = 1, #r do out[#out + 1] = r[i] end
  elseif count <= gather_limit
      and (offset + limit) * redis.call('ZCARD', received) / count > 3 * count then
    -- few matches spread thin over ix:r: sort them by id (= receipt order) instead of scanning ix:r for them
    local _, picked = evaluate_part(branches, count, false)
    for i = 1, #picked do picked[i][2] = 0 end
    table.sort(picked, before)
    emit(picked, offset + 1, offset + limit)
  else
    local want, start, got, found = offset + limit, 0, 0, {}
    local total = redis.call('ZCARD', received)
    while got < want and start < total do
      local r
      if desc then r = redis.call('ZRANGE', received, start, start + CHUNK - 1, 'REV')
      else r = redis.call('ZRANGE', received, start, start + CHUNK - 1) end
      local flags = {}
      for _, gs in ipairs(branches) do
        local f = passes(r, gs)
        for i = 1, #r do if f[i] then flags[i] = true end end
      end
      if ranged then
        local ts = redis.call('ZMSCORE', all, unpack(r))
        for i = 1, #r do
          local t = tonumber(ts[i])
          if t == nil or t < lo or t > hi then flags[i] = false end
        end
      end
      for i = 1, #r do
        if flags[i] and got < want then got = got + 1; found[got] = r[i] end
      end
      start = start + CHUNK
    end
    for i = offset + 1, math.min(want, got) do out[#out + 1] = found[i] end
  end
end
table.insert(out, 1, count)
return out
"""


class HintedGroup(list[str]):
    """A union of signature indices with what the script needs to skip most of them: each index's event count
    and its best score in the query's direction (newest when descending, oldest when ascending), the indices
    ordered best first."""

    counts: list[int]
    bounds: list[int]


async def _signature_group(
    redis: Redis, ks: Keyspace, workspace: str, sigs: list[Signature], descending: bool
) -> list[str]:
    """The indices of `sigs`, hinted (`HintedGroup`) when every signature's count and span are known."""
    ids = [s.id for s in sigs]
    pipe = redis.pipeline(transaction=False)
    pipe.hmget(keys.signature_counts(ks, workspace), ids)
    pipe.zmscore(
        keys.signature_newest(ks, workspace) if descending else keys.signature_oldest(ks, workspace), ids
    )
    counts, bounds = await pipe.execute()
    plain = [keys.index_signature(ks, workspace, sid) for sid in ids]
    if any(c is None for c in counts) or any(b is None for b in bounds):
        return plain
    order = sorted(range(len(ids)), key=lambda i: (-bounds[i] if descending else bounds[i], ids[i]))
    group = HintedGroup(plain[i] for i in order)
    group.counts = [int(counts[i]) for i in order]
    group.bounds = [int(bounds[i]) for i in order]
    return group


@dataclass(slots=True)
class Branch:
    """One disjoint part of a query's matches: events of one of `types` (None: of any type) that are in every
    group (each group a union of index keys)."""

    types: list[str] | None
    groups: list[list[str]]

    def all_groups(self, ks: Keyspace, workspace: str) -> list[list[str]]:
        out = list(self.groups)
        if self.types is not None:
            out.append([keys.index_type(ks, workspace, t) for t in self.types])
        return out or [[keys.index_all(ks, workspace)]]


async def _branches(redis: Redis, ks: Keyspace, workspace: str, q: EventQuery) -> list[Branch]:
    """The query's disjoint branches; none when a filter matches nothing."""
    types = [q.event_type] if q.event_type is not None else None
    common: list[list[str]] = []
    if q.contact_id is not None:
        common.append([keys.index_contact(ks, workspace, q.contact_id)])
    if q.identified_only:
        common.append([keys.index_identified(ks, workspace)])
    # a page signature implies its domain: with a text filter the signatures carry the domain condition
    domain_group = [[keys.index_domain(ks, workspace, q.domain)]] if q.domain is not None else []
    url_group = domain_group
    url_sigs: list[Signature] | None = None
    if q.url_contains:
        url_sigs = await matching_signatures(
            redis, ks, workspace, url_contains=q.url_contains, domain=q.domain
        )
        if not url_sigs:
            return []
        url_group = [await _signature_group(redis, ks, workspace, url_sigs, q.descending)]
    if not q.search:
        return [Branch(types, url_group + common)]
    # search: events whose type name matches, and events of the other types whose page (URL, domain) matches
    all_types = await read_event_types(redis, ks, workspace)
    needle = q.search.lower()
    named = [t for t in all_types if needle in t.lower()]
    out = []
    by_name = named if types is None else [t for t in types if t in named]
    if by_name:
        out.append(Branch(by_name, url_group + common))
    others = types if types is not None else all_types
    if named:
        others = [t for t in others if t not in named]
    if others:
        if url_sigs is not None:  # the url_contains pages that also match the search
            sigs = [s for s in url_sigs if s.contains(needle)]
        else:
            sigs = await matching_signatures(redis, ks, workspace, search=q.search, domain=q.domain)
        if sigs:
            page_group = await _signature_group(redis, ks, workspace, sigs, q.descending)
            out.append(Branch(others if (named or types is not None) else None, [page_group, *common]))
    return out


def _shape(parts: list[list[list[list[str]]]]) -> tuple[list[str], list[int]]:
    """(KEYS, ARGV tail) of parts → branches → groups → keys, as the script reads them."""
    flat: list[str] = []
    sizes: list[int] = [len(parts)]
    for branches in parts:
        sizes.append(len(branches))
        for groups in branches:
            sizes.append(len(groups))
            for grp in groups:
                sizes.append(len(grp))
                flat.extend(grp)
                if isinstance(grp, HintedGroup):
                    sizes += [1, *grp.counts, *grp.bounds]
                else:
                    sizes.append(0)
    return flat, sizes


def event_ids_of(members: list[bytes]) -> list[str]:
    """The event ids of index members, in order."""
    return [f"evt_{parse_member(m)[0]}" for m in members]


async def read_members(log: EventLog, ks: Keyspace, members: list[bytes]) -> list[Event]:
    """The events of index members, from the log, in order."""
    if not members:
        return []
    found = await log.read_events_at(ks.partition, [parse_member(m)[1:] for m in members])
    return [e for e in found if e is not None]


async def find_event_page(
    redis: Redis, ks: Keyspace, workspace: str, q: EventQuery, *, count_only: bool = False
) -> tuple[int, list[bytes]]:
    """(matching count, the index members of one page in the query's order): the events are read apart, so a
    caller can fetch them and what it joins to them at once."""
    branches = await _branches(redis, ks, workspace, q)
    if not branches:
        return 0, []
    lo = q.after_ms if q.after_ms is not None else SCORE_MIN
    hi = q.before_ms if q.before_ms is not None else SCORE_MAX
    if lo > hi:
        return 0, []
    limit = 0 if count_only else q.limit
    groups = [b.all_groups(ks, workspace) for b in branches]
    # Type / domain / identified filters together: the counters cube counts them (no scan of an index),
    # and the script only has to find the page; the two go out at once.
    counted = None
    if len(groups[0]) > 1 and not (q.url_contains or q.search) and q.contact_id is None:
        from .counters import StatsQuery, read_count  # counters builds on this module's facet counts

        counted = read_count(
            redis,
            ks,
            workspace,
            StatsQuery(q.event_type, q.domain, q.after_ms, q.before_ms, q.identified_only),
        )
        if count_only:
            return await counted, []
    mode: str = q.sort_by
    sort_keys: list[str] = []
    parts = [groups]
    if q.sort_by == "event" and q.event_type is None:
        # one part per event type in name order, each the branches restricted to that type
        names = await read_event_types(redis, ks, workspace)
        if q.descending:
            names.reverse()
        parts = [
            [
                Branch([n], b.groups).all_groups(ks, workspace)
                for b in branches
                if b.types is None or n in b.types
            ]
            for n in names
        ]
        parts = [p for p in parts if p]
    elif q.sort_by == "createdAt":
        sort_keys = [keys.index_received(ks, workspace), keys.index_all(ks, workspace)]
    else:
        mode = "timestamp"  # by event within one event type is by timestamp
    unfiltered = len(branches) == 1 and branches[0].types is None and not branches[0].groups
    flat, shape = _shape(parts)
    args: list[int | str] = [
        mode,
        lo,
        hi,
        1 if q.descending else 0,
        q.offset,
        limit,
        1 if counted is None else 0,
        1 if (q.after_ms is not None or q.before_ms is not None) else 0,
        GATHER_LIMIT,
        1 if unfiltered else 0,
        *shape,
    ]
    page = redis.register_script(_QUERY_LUA)(keys=[*flat, *sort_keys], args=args)
    if counted is None:
        reply = await page
        total = int(reply[0])
    else:
        total, reply = await asyncio.gather(counted, page)
    members = reply[1:]
    if count_only or total == 0:
        return total, []
    return total, members


async def read_facet_counts(
    redis: Redis, groups: list[list[str]], facets: list[str], after_ms: int, before_ms: int
) -> list[int]:
    """How many events of each facet index (a type, a domain) are in every group and the time range."""
    if not facets:
        return []
    flat, shape = _shape([[groups]])
    args = ["facets", after_ms, before_ms, 0, 0, 0, 1, 1, GATHER_LIMIT, 0, *shape]
    return [int(c) for c in await redis.register_script(_QUERY_LUA)(keys=[*flat, *facets], args=args)]
