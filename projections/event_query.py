"""Events API list queries: turn filters into index groups, run them server-side in one Lua call, fetch the page.

A query is a conjunction of groups; a group is a union of disjoint index ZSETs (one type, one domain, one
contact, the identified set, or the signatures a text filter matched). The script counts each group in the
time range, drives from the smallest, checks the others with `ZMSCORE` a chunk at a time, and stops early
when no count is needed. Sort orders: `timestamp` (ties by id), `event` (name, then timestamp, then id) and
`createdAt` (receipt time, then id); every part of the order follows `sort_dir`.
"""

from __future__ import annotations

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


# KEYS: the groups' keys (flattened), then the sort's keys (event: its parts' keys; createdAt: ix:r, ix:all).
# ARGV: mode, lo, hi, desc, offset, limit, need_count, ranged, ngroups, size of each group, gather limit, then
# (event mode) the parts' layout.
# Returns {count or -1, member...}.
_QUERY_LUA = r"""
local mode, lo_s, hi_s = ARGV[1], ARGV[2], ARGV[3]
local lo, hi = tonumber(lo_s), tonumber(hi_s)
local desc, offset, limit = ARGV[4] == '1', tonumber(ARGV[5]), tonumber(ARGV[6])
local need_count, ranged = ARGV[7] == '1', ARGV[8] == '1'
local ngroups = tonumber(ARGV[9])
local groups, k = {}, 1
for g = 1, ngroups do
  local grp = {}
  for i = 1, tonumber(ARGV[9 + g]) do grp[i] = KEYS[k]; k = k + 1 end
  groups[g] = grp
end
local CHUNK = 1000

local function range(key, start, count)
  if desc then
    return redis.call('ZRANGE', key, hi_s, lo_s, 'BYSCORE', 'REV', 'LIMIT', start, count, 'WITHSCORES')
  end
  return redis.call('ZRANGE', key, lo_s, hi_s, 'BYSCORE', 'LIMIT', start, count, 'WITHSCORES')
end

local function before(a, b)  -- a sorts before b: score, then member, both in the query's direction
  if a[2] ~= b[2] then if desc then return a[2] > b[2] end return a[2] < b[2] end
  if desc then return a[1] > b[1] end
  return a[1] < b[1]
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

-- count (or -1) and the first `want` matches {member, score} in order
local function evaluate(gs, want, count_needed)
  -- drive from the group whose scan costs least: its size times the keys each of its chunks is checked in
  local totals, nkeys = {}, 0
  for g, grp in ipairs(gs) do
    local t = 0
    for _, key in ipairs(grp) do t = t + redis.call('ZCOUNT', key, lo_s, hi_s) end
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
      local bound = nil
      for _, key in ipairs(driver) do
        local r
        if bound == nil then r = range(key, 0, want)
        elseif desc then r = redis.call('ZRANGE', key, hi_s, bound, 'BYSCORE', 'REV', 'LIMIT', 0, want, 'WITHSCORES')
        else r = redis.call('ZRANGE', key, lo_s, bound, 'BYSCORE', 'LIMIT', 0, want, 'WITHSCORES') end
        for i = 1, #r, 2 do picked[#picked + 1] = {r[i], tonumber(r[i + 1])} end
        if #picked >= 2 * want then
          table.sort(picked, before)
          for i = #picked, want + 1, -1 do picked[i] = nil end
          bound = string.format('%.17g', picked[want][2])
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

local out = {}
local function emit(picked, from, to)
  for i = from, math.min(to, #picked) do out[#out + 1] = picked[i][1] end
end

if mode == 'facets' then
  -- KEYS after the groups: facet indices; the count of each facet within the groups and the time range
  local counts = {}
  for t = k, #KEYS do
    local gs = {{KEYS[t]}}
    for _, grp in ipairs(groups) do gs[#gs + 1] = grp end
    counts[#counts + 1] = (evaluate(gs, 0, true))
  end
  return counts
end

if mode == 'timestamp' then
  if ngroups == 1 and #groups[1] == 1 then
    local key = groups[1][1]
    local count = redis.call('ZCOUNT', key, lo_s, hi_s)
    if limit > 0 then
      local r = range(key, offset, limit)
      for i = 1, #r, 2 do out[#out + 1] = r[i] end
    end
    table.insert(out, 1, count)
    return out
  end
  local count, picked = evaluate(groups, limit > 0 and offset + limit or 0, need_count)
  emit(picked, offset + 1, offset + limit)
  table.insert(out, 1, count)
  return out
end

if mode == 'event' then
  -- After the group sizes: gather limit, the group each event name's part replaces (0 = none, the part is
  -- added as a group), the number of parts, and each part's size. Parts come in sort order, their keys
  -- after the groups' keys: a type index, or that type's signature indices replacing the signature group.
  local replaced, nparts = tonumber(ARGV[11 + ngroups]), tonumber(ARGV[12 + ngroups])
  local total, pos, stop = 0, 0, offset + limit
  for part = 1, nparts do
    local keys_of = {}
    for i = 1, tonumber(ARGV[12 + ngroups + part]) do keys_of[i] = KEYS[k]; k = k + 1 end
    local gs = {keys_of}
    for g, grp in ipairs(groups) do if g ~= replaced then gs[#gs + 1] = grp end end
    local want = 0
    if limit > 0 and pos < stop then want = stop - pos end
    local c, picked = evaluate(gs, want, true)
    if want > 0 then emit(picked, math.max(offset - pos, 0) + 1, stop - pos) end
    total = total + c
    pos = pos + c
  end
  table.insert(out, 1, total)
  return out
end

-- mode == 'createdAt': KEYS after the groups are ix:r and ix:all; ngroups == 0 means no filter
local received, all = KEYS[k], KEYS[k + 1]
local gs = groups
if ngroups == 0 then gs = {{all}} end
local count = evaluate(gs, 0, true)
if limit > 0 and count > offset then
  if ngroups == 0 and not ranged then
    local r
    if desc then r = redis.call('ZRANGE', received, offset, offset + limit - 1, 'REV')
    else r = redis.call('ZRANGE', received, offset, offset + limit - 1) end
    for i = 1, #r do out[#out + 1] = r[i] end
  elseif count <= tonumber(ARGV[10 + ngroups])
      and (offset + limit) * redis.call('ZCARD', received) / count > 3 * count then
    -- few matches spread thin over ix:r: sort them by receipt time instead of scanning ix:r for them
    local _, picked = evaluate(gs, count, false)
    local byr = {}
    for s = 1, #picked, CHUNK do
      local members = {}
      for i = s, math.min(s + CHUNK - 1, #picked) do members[#members + 1] = picked[i][1] end
      local sc = redis.call('ZMSCORE', received, unpack(members))
      for i = 1, #members do byr[#byr + 1] = {members[i], tonumber(sc[i])} end
    end
    table.sort(byr, before)
    emit(byr, offset + 1, offset + limit)
  else
    local want, start, got, found = offset + limit, 0, 0, {}
    local total = redis.call('ZCARD', received)
    while got < want and start < total do
      local r
      if desc then r = redis.call('ZRANGE', received, start, start + CHUNK - 1, 'REV')
      else r = redis.call('ZRANGE', received, start, start + CHUNK - 1) end
      local flags = passes(r, gs)
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


@dataclass(slots=True)
class Plan:
    """The query's conjunction of index unions; with a text filter, its signatures form the first group."""

    groups: list[list[str]]
    signatures: list[Signature] | None = None


async def _plan(redis: Redis, ks: Keyspace, workspace: str, q: EventQuery) -> Plan | None:
    """None when a filter matches nothing."""
    plan = Plan([])
    if q.url_contains or q.search:
        sigs = await matching_signatures(
            redis,
            ks,
            workspace,
            url_contains=q.url_contains,
            search=q.search,
            event_type=q.event_type,
            domain=q.domain,
        )
        if not sigs:
            return None
        plan.signatures = sigs
        plan.groups.append(_signature_group(ks, workspace, q, sigs))
    else:  # a signature group already holds the type and domain conditions
        if q.event_type is not None:
            plan.groups.append([keys.index_type(ks, workspace, q.event_type)])
        if q.domain is not None:
            plan.groups.append([keys.index_domain(ks, workspace, q.domain)])
    if q.contact_id is not None:
        plan.groups.append([keys.index_contact(ks, workspace, q.contact_id)])
    if q.identified_only:
        plan.groups.append([keys.index_identified(ks, workspace)])
    return plan


def _signature_group(ks: Keyspace, workspace: str, q: EventQuery, sigs: list[Signature]) -> list[str]:
    """The index union of matched signatures. For `search` alone, an event name or a domain that matches
    stands for all its signatures: its one index replaces theirs (still disjoint from the rest)."""
    group = [keys.index_signature(ks, workspace, s.id) for s in sigs]
    if not q.search or q.url_contains or q.domain is not None or q.event_type is not None:
        return group
    text = q.search.lower()
    options = [group]
    names = {s.event for s in sigs if text in s.event.lower()}
    if names:
        rest = [keys.index_signature(ks, workspace, s.id) for s in sigs if s.event not in names]
        options.append([keys.index_type(ks, workspace, n) for n in sorted(names)] + rest)
    doms = {s.domain for s in sigs if s.domain and text in s.domain}
    if doms:
        rest = [keys.index_signature(ks, workspace, s.id) for s in sigs if s.domain not in doms]
        options.append([keys.index_domain(ks, workspace, d) for d in sorted(doms)] + rest)
    return min(options, key=len)


async def _event_parts(redis: Redis, ks: Keyspace, workspace: str, plan: Plan) -> tuple[int, list[list[str]]]:
    """For `sort_by=event`: (group the parts replace, one part per event name in ascending order)."""
    if plan.signatures is not None:
        by_name: dict[str, list[str]] = {}
        for sig in plan.signatures:
            by_name.setdefault(sig.event, []).append(keys.index_signature(ks, workspace, sig.id))
        return 1, [by_name[name] for name in sorted(by_name)]
    names = await read_event_types(redis, ks, workspace)
    return 0, [[keys.index_type(ks, workspace, name)] for name in names]


async def read_event_page(
    redis: Redis, log: EventLog, ks: Keyspace, workspace: str, q: EventQuery, *, count_only: bool = False
) -> tuple[int, list[Event]]:
    """(matching count, one page of events in the query's order)."""
    plan = await _plan(redis, ks, workspace, q)
    if plan is None:
        return 0, []
    groups = plan.groups
    lo = q.after_ms if q.after_ms is not None else SCORE_MIN
    hi = q.before_ms if q.before_ms is not None else SCORE_MAX
    if lo > hi:
        return 0, []
    limit = 0 if count_only else q.limit
    # Type / domain / identified filters together: the counters cube counts them (no scan of an index),
    # and the script only has to find the page.
    known_count: int | None = None
    if len(groups) > 1 and plan.signatures is None and q.contact_id is None:
        from .counters import StatsQuery, read_count  # counters builds on this module's facet counts

        known_count = await read_count(
            redis,
            ks,
            workspace,
            StatsQuery(q.event_type, q.domain, q.after_ms, q.before_ms, q.identified_only),
        )
        if known_count == 0 or count_only:
            return known_count, []
    sort_keys: list[str] = []
    sort_args: list[int] = []
    mode: str = q.sort_by
    if q.sort_by == "event" and q.event_type is None:
        replaced, parts = await _event_parts(redis, ks, workspace, plan)
        if q.descending:
            parts.reverse()
        sort_keys = [key for part in parts for key in part]
        sort_args = [replaced, len(parts), *[len(part) for part in parts]]
    elif q.sort_by == "createdAt":
        sort_keys = [keys.index_received(ks, workspace), keys.index_all(ks, workspace)]
    else:
        mode = "timestamp"  # by event within one event type is by timestamp
    if mode == "timestamp" and not groups:
        groups = [[keys.index_all(ks, workspace)]]
    flat = [key for grp in groups for key in grp]
    args: list[int | str] = [
        mode,
        lo,
        hi,
        1 if q.descending else 0,
        q.offset,
        limit,
        1 if known_count is None else 0,
        1 if (q.after_ms is not None or q.before_ms is not None) else 0,
        len(groups),
        *[len(grp) for grp in groups],
        GATHER_LIMIT,
        *sort_args,
    ]
    reply = await redis.register_script(_QUERY_LUA)(keys=[*flat, *sort_keys], args=args)
    total, members = (int(reply[0]) if known_count is None else known_count), reply[1:]
    if count_only or not members:
        return total, []
    found = await log.read_events_at(ks.partition, [parse_member(m)[1:] for m in members])
    return total, [e for e in found if e is not None]


async def read_facet_counts(
    redis: Redis, groups: list[list[str]], facets: list[str], after_ms: int, before_ms: int
) -> list[int]:
    """How many events of each facet index (a type, a domain) are in every group and the time range."""
    if not facets:
        return []
    flat = [key for grp in groups for key in grp]
    args = [
        "facets",
        after_ms,
        before_ms,
        0,
        0,
        0,
        1,
        1,
        len(groups),
        *[len(g) for g in groups],
        GATHER_LIMIT,
    ]
    return [int(c) for c in await redis.register_script(_QUERY_LUA)(keys=[*flat, *facets], args=args)]
