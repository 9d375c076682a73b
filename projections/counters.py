"""Counters: the cube per UTC day × event type × domain × identified, and rollups of it that stats read.

Rollups (fields end in `a` = every event, `i` = identified ones, so identifying an event only ever adds):
the whole history by type × domain, and per day by type, by domain and in total. `read_stats` sums whole days
from the smallest rollup that answers the filters, with polars; partial days at the ends of a time range
are counted from the type and domain indices (`read_facet_counts`), never from the events themselves.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import polars as pl
from redis.asyncio import Redis

from . import keys
from .event_query import read_facet_counts
from .events import Located, is_identified, is_listed
from .keys import Keyspace
from .updates import Targets, Updates

SEP = "\x1f"
DAY_MS = 86_400_000


def day_of(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def cube_field(event_type: str, domain: str | None, identified: bool) -> str:
    return f"{event_type}{SEP}{domain or ''}{SEP}{1 if identified else 0}"


def _rollup_fields(event_type: str, domain: str | None, day: str, suffix: str) -> tuple[str, str, str, str]:
    """The rollup cells one event adds to, as the fields of `_rollups`' keys (in that order)."""
    dom = domain or ""
    return (
        f"{event_type}{SEP}{dom}{SEP}{suffix}",
        f"{event_type}{SEP}{suffix}",
        f"{dom}{SEP}{suffix}",
        f"{day}{SEP}{suffix}",
    )


def _rollups(u: Updates, ks: Keyspace, workspace: str, day: str) -> tuple[dict[str, int], ...]:
    """The increments of the rollup keys for an event of `day`: totals, the day's types, the day's domains,
    days."""
    return (
        u.hincr[keys.counter_totals(ks, workspace)],
        u.hincr[keys.counter_day_types(ks, workspace, day)],
        u.hincr[keys.counter_day_domains(ks, workspace, day)],
        u.hincr[keys.counter_day_totals(ks, workspace)],
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
    if covers_all:
        cells = _parse_hash(await redis.hgetall(keys.counter_totals(ks, workspace)), suffix)
    else:
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


async def _day_totals(
    redis: Redis, ks: Keyspace, workspace: str, q: StatsQuery, day_names: list[str]
) -> list[int]:
    """The filtered count of each whole day, one pipelined round trip."""
    suffix = "i" if q.identified_only else "a"
    pipe = redis.pipeline(transaction=False)
    if q.event_type is None and q.domain is None:
        pipe.hmget(keys.counter_day_totals(ks, workspace), [f"{d}{SEP}{suffix}" for d in day_names])
        return [int(c or 0) for c in (await pipe.execute())[0]]
    for day in day_names:
        if q.event_type is not None and q.domain is not None:
            fields = [cube_field(q.event_type, q.domain, True)]
            if not q.identified_only:
                fields.append(cube_field(q.event_type, q.domain, False))
            pipe.hmget(keys.counter_day(ks, workspace, day), fields)
        elif q.event_type is not None:
            pipe.hmget(keys.counter_day_types(ks, workspace, day), [f"{q.event_type}{SEP}{suffix}"])
        else:
            pipe.hmget(keys.counter_day_domains(ks, workspace, day), [f"{q.domain}{SEP}{suffix}"])
    return [sum(int(c or 0) for c in cells) for cells in await pipe.execute()]


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
    the indices for the partial days at the ends (what the list endpoint's `total_items` needs)."""
    pipe = redis.pipeline(transaction=False)
    pipe.zrange(keys.counter_days(ks, workspace), 0, 0, withscores=True)
    pipe.zrange(keys.counter_days(ks, workspace), -1, -1, withscores=True)
    first, last = await pipe.execute()
    if not first:
        return 0
    lo = q.after_ms if q.after_ms is not None else int(first[0][1]) * DAY_MS
    hi = q.before_ms if q.before_ms is not None else (int(last[0][1]) + 1) * DAY_MS - 1
    if lo > hi:
        return 0
    first_whole, last_whole = -(-lo // DAY_MS), (hi + 1) // DAY_MS - 1
    if first_whole > last_whole:
        pieces, day_names = _split_days(lo, hi), []
    else:
        pieces = _split_days(lo, first_whole * DAY_MS - 1) + _split_days((last_whole + 1) * DAY_MS, hi)
        day_names = [
            d.decode()
            for d in await redis.zrange(
                keys.counter_days(ks, workspace), first_whole, last_whole, byscore=True
            )
        ]
    total = sum(await _day_totals(redis, ks, workspace, q, day_names)) if day_names else 0
    if pieces:
        groups = _filter_groups(ks, workspace, q) or [[keys.index_all(ks, workspace)]]
        for p_lo, p_hi in pieces:
            total += (await read_facet_counts(redis, groups[1:], groups[0], p_lo, p_hi))[0]
    return total


def _filter_groups(ks: Keyspace, workspace: str, q: StatsQuery) -> list[list[str]]:
    groups: list[list[str]] = []
    if q.event_type is not None:
        groups.append([keys.index_type(ks, workspace, q.event_type)])
    if q.domain is not None:
        groups.append([keys.index_domain(ks, workspace, q.domain)])
    if q.identified_only:
        groups.append([keys.index_identified(ks, workspace)])
    return groups
