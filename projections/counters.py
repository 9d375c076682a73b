"""Counters: the cube per UTC day × event type × domain × identified, and rollups of it that stats read.

Rollups (fields end in `a` = every event, `i` = identified ones, so identifying an event only ever adds):
the whole history by type × domain, by type and by domain, and per day by type, by domain and in total.
`read_stats` sums whole days from the smallest rollup that answers the filters, with polars; partial days at
the ends of a time range are counted from the type and domain indices (`read_facet_counts`), never from the events themselves.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import polars as pl
from redis.asyncio import Redis

from . import keys
from .event_query import read_facet_counts
from .events import Located, is_identified, is_listed
from .keys import Keyspace
from .updates import Targets, Updates

SEP = "\x1f"
DAY_MS = 86_400_000
NAMED_DAYS = 400  # read_count names the day keys of a range up to this long instead of listing them


def day_of(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def cube_field(event_type: str, domain: str | None, identified: bool) -> str:
    return f"{event_type}{SEP}{domain or ''}{SEP}{1 if identified else 0}"


def _rollup_fields(event_type: str, domain: str | None, day: str, suffix: str) -> tuple[str, ...]:
    """The rollup cells one event adds to, as the fields of `_rollups`' keys (in that order)."""
    dom = domain or ""
    return (
        f"{event_type}{SEP}{dom}{SEP}{suffix}",
        f"{event_type}{SEP}{suffix}",
        f"{dom}{SEP}{suffix}",
        f"{day}{SEP}{suffix}",
        f"{event_type}{SEP}{suffix}",
        f"{dom}{SEP}{suffix}",
    )


def _rollups(u: Updates, ks: Keyspace, workspace: str, day: str) -> tuple[dict[str, int], ...]:
    """The increments of the rollup keys for an event of `day`: totals, the day's types, the day's domains,
    days, all types, all domains."""
    return (
        u.hincr[keys.counter_totals(ks, workspace)],
        u.hincr[keys.counter_day_types(ks, workspace, day)],
        u.hincr[keys.counter_day_domains(ks, workspace, day)],
        u.hincr[keys.counter_day_totals(ks, workspace)],
        u.hincr[keys.counter_all_types(ks, workspace)],
        u.hincr[keys.counter_all_domains(ks, workspace)],
    )


def apply_counters(u: Updates, ks: Keyspace, workspace: str, located: list[Located]) -> None:
    # Group the batch's events by cube cell first: the per-event work is one tuple count, and the key
    # and field strings are built once per distinct (day, type, domain, identified) of the batch.
    cells: Counter[tuple[int, str, str | None, bool]] = Counter()
    for loc in located:
        e = loc.event
        if is_listed(e):
            cells[(e.timestamp // DAY_MS, e.event, e.domain, is_identified(loc))] += 1
    if not cells:
        return
    days = u.zadd[keys.counter_days(ks, workspace)]
    day_names: dict[int, str] = {}
    for day_no in sorted({c[0] for c in cells}, key=lambda d: repr((d,))):  # the order repr-sorted cells have
        days[day_names.setdefault(day_no, day_of(day_no * DAY_MS))] = day_no
    # each key's increments looked up once per batch (their order does not matter: `Updates` sorts them)
    cube = Targets(u.hincr, lambda day: keys.counter_day(ks, workspace, day))
    rollups: dict[str, tuple[dict[str, int], ...]] = {}
    for (day_no, event_type, domain, identified), n in cells.items():
        day = day_names[day_no]
        cube[day][cube_field(event_type, domain, identified)] += n
        targets = rollups.get(day) or rollups.setdefault(day, _rollups(u, ks, workspace, day))
        for suffix in ("a", "i") if identified else ("a",):
            for target, field in zip(targets, _rollup_fields(event_type, domain, day, suffix), strict=True):
                target[field] += n


def move_identified_counts(
    u: Updates,
    ks: Keyspace,
    workspace: str,
    day: str,
    event_type: str,
    domain: str | None,
    n: int,
    *,
    to_identified: bool = True,
) -> None:
    """Move `n` counts of (day, type, domain) from anonymous to identified (or back, `to_identified=False`).

    For retroactive identification: totals stay the same. In the day cube the anonymous cell shrinks (the
    caller drops a cell that reaches zero); the rollups' identified cells grow (or shrink, moving back).
    """
    key = keys.counter_day(ks, workspace, day)
    u.hincr[key][cube_field(event_type, domain, not to_identified)] -= n
    u.hincr[key][cube_field(event_type, domain, to_identified)] += n
    for target, field in zip(
        _rollups(u, ks, workspace, day), _rollup_fields(event_type, domain, day, "i"), strict=True
    ):
        target[field] += n if to_identified else -n


GroupBy = Literal["type", "domain", "day"]


@dataclass(frozen=True, slots=True)
class StatsQuery:
    event_type: str | None = None
    domain: str | None = None
    after_ms: int | None = None  # inclusive
    before_ms: int | None = None  # inclusive
    identified_only: bool = False
    group_by: GroupBy | None = None  # None: all three


@dataclass(slots=True)
class Stats:
    total: int
    by_type: list[dict[str, object]]
    by_domain: list[dict[str, object]]
    by_day: list[dict[str, object]]


TOP = 50
RECENT_DAYS = 90
_COUNTS = {"key": pl.Utf8, "count": pl.Int64}


def _frame(pairs: list[tuple[str, int]]) -> pl.DataFrame:
    return pl.DataFrame({"key": [k for k, _ in pairs], "count": [c for _, c in pairs]}, schema=_COUNTS)


def _top(frame: pl.DataFrame, name: str) -> list[dict[str, object]]:
    g = (
        frame.filter(pl.col("key") != "")
        .group_by("key")
        .agg(pl.col("count").sum())
        .filter(pl.col("count") > 0)
    )
    g = g.sort(["count", "key"], descending=[True, False]).head(TOP)
    return [{name: k, "count": int(c)} for k, c in g.iter_rows()]


def _split_days(lo: int, hi: int) -> list[tuple[int, int]]:
    """A sub-range cut at UTC midnights."""
    out = []
    while lo <= hi:
        end = min(hi, (lo // DAY_MS + 1) * DAY_MS - 1)
        out.append((lo, end))
        lo = end + 1
    return out


def _parse_hash(raw: dict[bytes, bytes], suffix: str) -> list[tuple[list[str], int]]:
    out = []
    for f, n in raw.items():
        parts = f.decode().split(SEP)
        if parts[-1] == suffix:
            out.append((parts[:-1], int(n)))
    return out


# The whole-history rollup (fields `type␟domain␟a|i`) summed by type and by domain server-side, for one
# suffix and optional type / domain filters. ARGV: suffix, type, domain, has type, has domain.
# Returns {{type, count, ...}, {domain, count, ...}}.
_ROLL_UP_TOTALS = r"""
local suffix, t, d = ARGV[1], ARGV[2], ARGV[3]
local has_t, has_d = ARGV[4] == '1', ARGV[5] == '1'
local flat = redis.call('HGETALL', KEYS[1])
local by_t, by_d, out_t, out_d = {}, {}, {}, {}
local function add(sums, order, name, c)
  if sums[name] == nil then sums[name] = 0; order[#order + 1] = name end
  sums[name] = sums[name] + c
end
local ordered_t, ordered_d = {}, {}
for i = 1, #flat, 2 do
  local f = flat[i]
  local a = string.find(f, '\031', 1, true)
  local b = string.find(f, '\031', a + 1, true)
  if string.sub(f, b + 1) == suffix then
    local ft, fd = string.sub(f, 1, a - 1), string.sub(f, a + 1, b - 1)
    if (not has_t or ft == t) and (not has_d or fd == d) then
      local c = tonumber(flat[i + 1])
      add(by_t, ordered_t, ft, c)
      add(by_d, ordered_d, fd, c)
    end
  end
end
for _, name in ipairs(ordered_t) do out_t[#out_t + 1] = name; out_t[#out_t + 1] = by_t[name] end
for _, name in ipairs(ordered_d) do out_d[#out_d + 1] = name; out_d[#out_d + 1] = by_d[name] end
return {out_t, out_d}
"""


def _pairs(flat: list[Any]) -> list[tuple[str, int]]:
    """[(name, count)] of the script's flat `name, count, …` reply."""
    return [(flat[i].decode(), int(flat[i + 1])) for i in range(0, len(flat), 2)]


async def _whole_days(
    redis: Redis, ks: Keyspace, workspace: str, q: StatsQuery, day_names: list[str], covers_all: bool
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(counts by type, counts by domain) over whole days, from the smallest rollup that answers the filters."""
    suffix = "i" if q.identified_only else "a"
    if not day_names:
        return _frame([]), _frame([])
    if q.event_type is None and q.domain is None and not covers_all:
        pipe = redis.pipeline(transaction=False)
        for day in day_names:
            pipe.hgetall(keys.counter_day_types(ks, workspace, day))
        for day in day_names:
            pipe.hgetall(keys.counter_day_domains(ks, workspace, day))
        replies = await pipe.execute()
        n = len(day_names)
        types = [(p[0], c) for raw in replies[:n] for p, c in _parse_hash(raw, suffix)]
        domains = [(p[0], c) for raw in replies[n:] for p, c in _parse_hash(raw, suffix)]
        return _frame(types), _frame(domains)
    if covers_all and q.event_type is None and q.domain is None:
        pipe = redis.pipeline(transaction=False)
        pipe.hgetall(keys.counter_all_types(ks, workspace))
        pipe.hgetall(keys.counter_all_domains(ks, workspace))
        by_type, by_domain = await pipe.execute()
        return (
            _frame([(p[0], c) for p, c in _parse_hash(by_type, suffix)]),
            _frame([(p[0], c) for p, c in _parse_hash(by_domain, suffix)]),
        )
    if covers_all:
        flat_types, flat_domains = await redis.eval(
            _ROLL_UP_TOTALS,
            1,
            keys.counter_totals(ks, workspace),
            suffix,
            q.event_type or "",
            q.domain or "",
            0 if q.event_type is None else 1,
            0 if q.domain is None else 1,
        )
        return _frame(_pairs(flat_types)), _frame(_pairs(flat_domains))
    pipe = redis.pipeline(transaction=False)
    for day in day_names:
        pipe.hgetall(keys.counter_day(ks, workspace, day))
    wanted = {"1"} if q.identified_only else {"0", "1"}
    cells = []
    for raw in await pipe.execute():
        for f, n in raw.items():
            t, d, i = f.decode().split(SEP)
            if i in wanted:
                cells.append(([t, d], int(n)))
    cube = pl.DataFrame(
        {
            "type": [p[0] for p, _ in cells],
            "domain": [p[1] for p, _ in cells],
            "count": [c for _, c in cells],
        },
        schema={"type": pl.Utf8, "domain": pl.Utf8, "count": pl.Int64},
    )
    if q.event_type is not None:
        cube = cube.filter(pl.col("type") == q.event_type)
    if q.domain is not None:
        cube = cube.filter(pl.col("domain") == q.domain)
    return (
        cube.select(pl.col("type").alias("key"), "count"),
        cube.select(pl.col("domain").alias("key"), "count"),
    )


# The sum of the ARGV fields in each KEYS hash, in KEYS order: one request for a range of days' cells.
_SUM_FIELDS = """
local out = {}
for i, key in ipairs(KEYS) do
  local n = 0
  for _, c in ipairs(redis.call('HMGET', key, unpack(ARGV))) do if c then n = n + tonumber(c) end end
  out[i] = n
end
return out
"""


async def _day_totals(
    redis: Redis, ks: Keyspace, workspace: str, q: StatsQuery, day_names: list[str]
) -> list[int]:
    """The filtered count of each whole day, one round trip."""
    if not day_names:
        return []
    suffix = "i" if q.identified_only else "a"
    if q.event_type is None and q.domain is None:
        fields = [f"{d}{SEP}{suffix}" for d in day_names]
        return [int(c or 0) for c in await redis.hmget(keys.counter_day_totals(ks, workspace), fields)]
    if q.event_type is not None and q.domain is not None:
        day_keys = [keys.counter_day(ks, workspace, day) for day in day_names]
        fields = [cube_field(q.event_type, q.domain, True)]
        if not q.identified_only:
            fields.append(cube_field(q.event_type, q.domain, False))
    elif q.event_type is not None:
        day_keys = [keys.counter_day_types(ks, workspace, day) for day in day_names]
        fields = [f"{q.event_type}{SEP}{suffix}"]
    else:
        day_keys = [keys.counter_day_domains(ks, workspace, day) for day in day_names]
        fields = [f"{q.domain}{SEP}{suffix}"]
    return [int(c) for c in await redis.eval(_SUM_FIELDS, len(day_keys), *day_keys, *fields)]


async def _edges(
    redis: Redis, ks: Keyspace, workspace: str, q: StatsQuery, pieces: list[tuple[int, int]]
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, int]]:
    """(by type, by domain, by day) for sub-day pieces, counted from the indices."""
    if not pieces:
        return _frame([]), _frame([]), {}
    groups = _filter_groups(ks, workspace, q)
    pipe = redis.pipeline(transaction=False)
    pipe.smembers(keys.event_types(ks, workspace))
    pipe.smembers(keys.domains(ks, workspace))
    type_set, domain_set = await pipe.execute()
    types = sorted(t.decode() for t in type_set)
    doms = sorted(d.decode() for d in domain_set)
    facet_keys = [keys.index_type(ks, workspace, t) for t in types] + [
        keys.index_domain(ks, workspace, d) for d in doms
    ]
    by_type: list[tuple[str, int]] = []
    by_domain: list[tuple[str, int]] = []
    by_day: dict[str, int] = {}
    for lo, hi in pieces:
        counts = await read_facet_counts(redis, groups, facet_keys, lo, hi)
        by_type.extend(zip(types, counts[: len(types)], strict=True))
        by_domain.extend(zip(doms, counts[len(types) :], strict=True))
        by_day[day_of(lo)] = by_day.get(day_of(lo), 0) + sum(counts[: len(types)])
    return _frame(by_type), _frame(by_domain), by_day


async def read_stats(redis: Redis, ks: Keyspace, workspace: str, q: StatsQuery) -> Stats:
    pipe = redis.pipeline(transaction=False)
    pipe.zrange(keys.counter_days(ks, workspace), 0, 0, withscores=True)
    pipe.zrange(keys.counter_days(ks, workspace), -1, -1, withscores=True)
    first, last = await pipe.execute()
    if not first:
        return Stats(0, [], [], [])
    first_known, last_known = int(first[0][1]), int(last[0][1])
    lo = q.after_ms if q.after_ms is not None else first_known * DAY_MS
    hi = q.before_ms if q.before_ms is not None else (last_known + 1) * DAY_MS - 1
    if lo > hi:
        return Stats(0, [], [], [])
    first_whole = -(-lo // DAY_MS)  # first day starting at or after lo
    last_whole = (hi + 1) // DAY_MS - 1  # last day ending at or before hi
    if first_whole <= last_whole:
        pieces = _split_days(lo, first_whole * DAY_MS - 1) + _split_days((last_whole + 1) * DAY_MS, hi)
        day_names = [
            d.decode()
            for d in await redis.zrange(
                keys.counter_days(ks, workspace), last_whole, first_whole, byscore=True, desc=True
            )
        ]
    else:
        pieces, day_names = _split_days(lo, hi), []
    covers_all = first_whole <= first_known and last_whole >= last_known
    need_facets = q.group_by in (None, "type", "domain")
    types, domains = await _whole_days(redis, ks, workspace, q, day_names if need_facets else [], covers_all)
    edge_types, edge_domains, edge_days = await _edges(redis, ks, workspace, q, pieces)
    types = pl.concat([types, edge_types])
    by_day: list[dict[str, object]] = []
    if q.group_by in (None, "day"):
        by_day = await _recent_days(redis, ks, workspace, q, day_names, edge_days)
    if need_facets:
        total = int(types["count"].sum())
    else:
        total = (
            sum(int(d["count"]) for d in by_day)
            if len(by_day) < RECENT_DAYS
            else await _total(redis, ks, workspace, q, day_names, covers_all, edge_days)
        )
    return Stats(
        total=total,
        by_type=_top(types, "type") if q.group_by in (None, "type") else [],
        by_domain=_top(pl.concat([domains, edge_domains]), "domain")
        if q.group_by in (None, "domain")
        else [],
        by_day=by_day,
    )


async def _total(
    redis: Redis,
    ks: Keyspace,
    workspace: str,
    q: StatsQuery,
    day_names: list[str],
    covers_all: bool,
    edge_days: dict[str, int],
) -> int:
    if covers_all:
        types, _ = await _whole_days(redis, ks, workspace, q, day_names, True)
        whole = int(types["count"].sum())
    else:
        whole = sum(await _day_totals(redis, ks, workspace, q, day_names))
    return whole + sum(edge_days.values())


async def _recent_days(
    redis: Redis, ks: Keyspace, workspace: str, q: StatsQuery, day_names: list[str], edge_days: dict[str, int]
) -> list[dict[str, object]]:
    """The most recent days with events (edges included), newest first, at most 90."""
    found = {d: c for d, c in edge_days.items() if c}
    whole = 0
    for start in range(0, len(day_names), RECENT_DAYS + 10):
        chunk = day_names[start : start + RECENT_DAYS + 10]
        for day, c in zip(chunk, await _day_totals(redis, ks, workspace, q, chunk), strict=True):
            if c:
                found[day] = c
                whole += 1
        if whole >= RECENT_DAYS:
            break
    days = pl.DataFrame(
        {"date": list(found), "count": list(found.values())}, schema={"date": pl.Utf8, "count": pl.Int64}
    )
    days = days.sort("date", descending=True).head(RECENT_DAYS)
    return [{"date": d, "count": int(c)} for d, c in days.iter_rows()]


async def read_count(redis: Redis, ks: Keyspace, workspace: str, q: StatsQuery) -> int:
    """How many events match type / domain / identified filters in a time range: the cube for whole days,
    the indices for the partial days at the ends (what the list endpoint's `total_items` needs). With both
    bounds given and a range of at most `NAMED_DAYS` days, the day keys are named from the range (a missing
    day counts 0) and every read goes out at once."""
    if q.after_ms is None or q.before_ms is None or (q.before_ms - q.after_ms) // DAY_MS > NAMED_DAYS:
        pipe = redis.pipeline(transaction=False)
        pipe.zrange(keys.counter_days(ks, workspace), 0, 0, withscores=True)
        pipe.zrange(keys.counter_days(ks, workspace), -1, -1, withscores=True)
        first, last = await pipe.execute()
        if not first:
            return 0
        first_known, last_known = int(first[0][1]), int(last[0][1])
    else:
        first_known, last_known = q.after_ms // DAY_MS, q.before_ms // DAY_MS
    lo = q.after_ms if q.after_ms is not None else first_known * DAY_MS
    hi = q.before_ms if q.before_ms is not None else (last_known + 1) * DAY_MS - 1
    lo, hi = max(lo, first_known * DAY_MS), min(hi, (last_known + 1) * DAY_MS - 1)
    if lo > hi:
        return 0
    first_whole, last_whole = -(-lo // DAY_MS), (hi + 1) // DAY_MS - 1
    if first_whole > last_whole:
        pieces, day_names = _split_days(lo, hi), []
    else:
        pieces = _split_days(lo, first_whole * DAY_MS - 1) + _split_days((last_whole + 1) * DAY_MS, hi)
        day_names = [day_of(d * DAY_MS) for d in range(first_whole, last_whole + 1)]
    groups = _filter_groups(ks, workspace, q) or [[keys.index_all(ks, workspace)]]
    counts = await asyncio.gather(
        _day_totals(redis, ks, workspace, q, day_names),
        *(read_facet_counts(redis, groups[1:], groups[0], p_lo, p_hi) for p_lo, p_hi in pieces),
    )
    return sum(counts[0]) + sum(c[0] for c in counts[1:])


def _filter_groups(ks: Keyspace, workspace: str, q: StatsQuery) -> list[list[str]]:
    groups: list[list[str]] = []
    if q.event_type is not None:
        groups.append([keys.index_type(ks, workspace, q.event_type)])
    if q.domain is not None:
        groups.append([keys.index_domain(ks, workspace, q.domain)])
    if q.identified_only:
        groups.append([keys.index_identified(ks, workspace)])
    return groups
