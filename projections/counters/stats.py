"""Stats and counts from the counters cube: `read_stats` for `/v1/events/stats`, `read_count` (and `list_count`)
for list totals.

A time range splits into whole UTC days, summed from the smallest rollup that answers the filters (with polars),
and the partial days at its ends, counted from the event indices (`projections.events.count_matching` and
`count_by_type_and_domain`) — never from the events themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl
from redis.asyncio import Redis

from ..events import EventQuery, Facets, count_by_type_and_domain, count_matching
from ..keyspace import Keyspace
from ..located import DAY_MS
from ..scripts import Script
from . import keys
from .cube import SEP, cube_field, day_of

NAMED_DAYS = 400  # read_count names the day keys of a range up to this long instead of listing them
TOP = 50
RECENT_DAYS = 90
_COUNTS = {"key": pl.Utf8, "count": pl.Int64}

# The whole-history rollup (`type␟domain␟a|i`) summed by type and by domain, for one suffix and optional filters.
ROLL_UP_TOTALS = Script(__package__, "roll_up_totals-1.lua")
# The sum of some fields in each of many hashes: one request for a range of days' cells.
SUM_FIELDS = Script(__package__, "sum_fields-n.lua")

GroupBy = Literal["type", "domain", "day"]


@dataclass(frozen=True, slots=True)
class StatsQuery:
    event_type: str | None = None
    domain: str | None = None
    after_ms: int | None = None  # inclusive
    before_ms: int | None = None  # inclusive
    identified_only: bool = False
    group_by: GroupBy | None = None  # None: all three

    @property
    def facets(self) -> Facets:
        return Facets(self.event_type, self.domain, self.identified_only)

    @property
    def suffix(self) -> str:
        """The rollup fields' suffix: `i` for identified events only, `a` for all."""
        return "i" if self.identified_only else "a"


@dataclass(slots=True)
class Stats:
    total: int
    by_type: list[dict[str, object]]
    by_domain: list[dict[str, object]]
    by_day: list[dict[str, object]]


# ---------------------------------------------------------------- time ranges: whole days and the partial ends


def _split_days(lo: int, hi: int) -> list[tuple[int, int]]:
    """A sub-range cut at UTC midnights."""
    out = []
    while lo <= hi:
        end = min(hi, (lo // DAY_MS + 1) * DAY_MS - 1)
        out.append((lo, end))
        lo = end + 1
    return out


@dataclass(frozen=True, slots=True)
class DaySpan:
    """A time range (epoch ms, inclusive) as the whole UTC days it covers (day numbers `first_whole` to
    `last_whole`; none when first > last) and the partial days at its ends (`pieces`)."""

    first_whole: int
    last_whole: int
    pieces: list[tuple[int, int]]

    @classmethod
    def of(cls, lo: int, hi: int) -> DaySpan:
        first_whole = -(-lo // DAY_MS)  # first day starting at or after lo
        last_whole = (hi + 1) // DAY_MS - 1  # last day ending at or before hi
        if first_whole > last_whole:
            return cls(first_whole, last_whole, _split_days(lo, hi))
        pieces = _split_days(lo, first_whole * DAY_MS - 1) + _split_days((last_whole + 1) * DAY_MS, hi)
        return cls(first_whole, last_whole, pieces)

    @property
    def has_whole_days(self) -> bool:
        return self.first_whole <= self.last_whole


async def _known_days(redis: Redis, ks: Keyspace, workspace: str) -> tuple[int, int] | None:
    """The first and last day numbers with counts, or None when there are none."""
    pipe = redis.pipeline(transaction=False)
    pipe.zrange(keys.counter_days(ks, workspace), 0, 0, withscores=True)
    pipe.zrange(keys.counter_days(ks, workspace), -1, -1, withscores=True)
    first, last = await pipe.execute()
    if not first:
        return None
    return int(first[0][1]), int(last[0][1])


# ---------------------------------------------------------------- stats


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


def _parse_hash(raw: dict[bytes, bytes], suffix: str) -> list[tuple[str, int]]:
    """(name, count) of a rollup hash's fields `name␟suffix`."""
    out = []
    for f, n in raw.items():
        name, _, end = f.decode().rpartition(SEP)
        if end == suffix:
            out.append((name, int(n)))
    return out


def _pairs(flat: list[Any]) -> list[tuple[str, int]]:
    """[(name, count)] of a script's flat `name, count, …` reply."""
    return [(flat[i].decode(), int(flat[i + 1])) for i in range(0, len(flat), 2)]


async def _whole_days(
    redis: Redis, ks: Keyspace, workspace: str, q: StatsQuery, day_names: list[str], covers_all: bool
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(counts by type, counts by domain) over whole days, from the smallest rollup that answers the filters."""
    suffix = q.suffix
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
        types = [pair for raw in replies[:n] for pair in _parse_hash(raw, suffix)]
        domains = [pair for raw in replies[n:] for pair in _parse_hash(raw, suffix)]
        return _frame(types), _frame(domains)
    if covers_all and q.event_type is None and q.domain is None:
        pipe = redis.pipeline(transaction=False)
        pipe.hgetall(keys.counter_all_types(ks, workspace))
        pipe.hgetall(keys.counter_all_domains(ks, workspace))
        by_type, by_domain = await pipe.execute()
        return _frame(_parse_hash(by_type, suffix)), _frame(_parse_hash(by_domain, suffix))
    if covers_all:
        flat_types, flat_domains = await ROLL_UP_TOTALS(
            redis,
            [keys.counter_totals(ks, workspace)],
            suffix=suffix,
            event_type=q.event_type,
            domain=q.domain,
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
                cells.append((t, d, int(n)))
    cube = pl.DataFrame(
        {"type": [c[0] for c in cells], "domain": [c[1] for c in cells], "count": [c[2] for c in cells]},
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
    """The filtered count of each whole day, one round trip."""
    if not day_names:
        return []
    suffix = q.suffix
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
    return [int(c) for c in await SUM_FIELDS(redis, day_keys, fields=fields)]


async def _edges(
    redis: Redis, ks: Keyspace, workspace: str, q: StatsQuery, pieces: list[tuple[int, int]]
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, int]]:
    """(by type, by domain, by day) for sub-day pieces, counted from the indices."""
    by_type: list[tuple[str, int]] = []
    by_domain: list[tuple[str, int]] = []
    by_day: dict[str, int] = {}
    counted = await count_by_type_and_domain(redis, ks, workspace, q.facets, pieces)
    for (lo, _), (types, domains) in zip(pieces, counted, strict=True):
        by_type.extend(types)
        by_domain.extend(domains)
        by_day[day_of(lo)] = by_day.get(day_of(lo), 0) + sum(c for _, c in types)
    return _frame(by_type), _frame(by_domain), by_day


async def read_stats(redis: Redis, ks: Keyspace, workspace: str, q: StatsQuery) -> Stats:
    known = await _known_days(redis, ks, workspace)
    if known is None:
        return Stats(0, [], [], [])
    first_known, last_known = known
    lo = q.after_ms if q.after_ms is not None else first_known * DAY_MS
    hi = q.before_ms if q.before_ms is not None else (last_known + 1) * DAY_MS - 1
    if lo > hi:
        return Stats(0, [], [], [])
    span = DaySpan.of(lo, hi)
    day_names: list[str] = []
    if span.has_whole_days:  # the days with counts, newest first
        day_names = [
            d.decode()
            for d in await redis.zrange(
                keys.counter_days(ks, workspace), span.last_whole, span.first_whole, byscore=True, desc=True
            )
        ]
    covers_all = span.first_whole <= first_known and span.last_whole >= last_known
    need_facets = q.group_by in (None, "type", "domain")
    types, domains = await _whole_days(redis, ks, workspace, q, day_names if need_facets else [], covers_all)
    edge_types, edge_domains, edge_days = await _edges(redis, ks, workspace, q, span.pieces)
    types = pl.concat([types, edge_types])
    by_day: list[dict[str, object]] = []
    if q.group_by in (None, "day"):
        by_day = await _recent_days(redis, ks, workspace, q, day_names, edge_days)
    if need_facets:
        total = int(types["count"].sum())
    else:
        total = (
            sum(int(d["count"]) for d in by_day)  # type: ignore[call-overload]
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


# ---------------------------------------------------------------- counts


async def read_count(redis: Redis, ks: Keyspace, workspace: str, q: StatsQuery) -> int:
    """How many events match type / domain / identified filters in a time range: the cube for whole days,
    the indices for the partial days at the ends (what the list endpoint's `total_items` needs). With both
    bounds given and a range of at most `NAMED_DAYS` days, the day keys are named from the range (a missing
    day counts 0) and every read goes out at once."""
    if q.after_ms is None or q.before_ms is None or (q.before_ms - q.after_ms) // DAY_MS > NAMED_DAYS:
        known = await _known_days(redis, ks, workspace)
        if known is None:
            return 0
        first_known, last_known = known
    else:
        first_known, last_known = q.after_ms // DAY_MS, q.before_ms // DAY_MS
    lo = q.after_ms if q.after_ms is not None else first_known * DAY_MS
    hi = q.before_ms if q.before_ms is not None else (last_known + 1) * DAY_MS - 1
    lo, hi = max(lo, first_known * DAY_MS), min(hi, (last_known + 1) * DAY_MS - 1)
    if lo > hi:
        return 0
    span = DaySpan.of(lo, hi)
    day_names = [day_of(d * DAY_MS) for d in range(span.first_whole, span.last_whole + 1)]
    whole, edges = await asyncio.gather(
        _day_totals(redis, ks, workspace, q, day_names),
        count_matching(redis, ks, workspace, q.facets, span.pieces),
    )
    return sum(whole) + sum(edges)


def list_count(
    redis: Redis, ks: Keyspace, workspace: str, q: EventQuery
) -> Callable[[], Awaitable[int]] | None:
    """How to count a list query from the cube, when the cube can: two or more of the type / domain /
    identified filters and nothing else (one filter alone is a single index the list query counts itself)."""
    filters = (q.event_type is not None) + (q.domain is not None) + q.identified_only
    if filters < 2 or q.url_contains or q.search or q.contact_id is not None:
        return None
    stats = StatsQuery(q.event_type, q.domain, q.after_ms, q.before_ms, q.identified_only)
    return lambda: read_count(redis, ks, workspace, stats)
