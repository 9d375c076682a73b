"""Counters cube: per UTC day × event type × domain × identified, one hash per day.

`read_stats` sums the cube with polars for whole days; partial days at the edges of a time range are
counted exactly from the events themselves (cost bounded by those edge hours, not by the history).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl
from redis.asyncio import Redis

from ingest.log import EventLog

from . import keys
from .events import Located, is_identified, is_listed, parse_member
from .keys import Keyspace
from .updates import Updates

SEP = "\x1f"
DAY_MS = 86_400_000


def day_of(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def cube_field(event_type: str, domain: str | None, identified: bool) -> str:
    return f"{event_type}{SEP}{domain or ''}{SEP}{1 if identified else 0}"


def apply_counters(u: Updates, ks: Keyspace, workspace: str, located: list[Located]) -> None:
    days = u.zadd[keys.counter_days(ks, workspace)]
    for loc in located:
        e = loc.event
        if not is_listed(e):
            continue
        day = day_of(e.timestamp)
        days[day] = e.timestamp // DAY_MS
        u.hincr[keys.counter_day(ks, workspace, day)][cube_field(e.event, e.domain, is_identified(loc))] += 1


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

    For retroactive identification: the total per (day, type, domain) stays the same. A cell moved to zero
    stays as a `0` field (the live fold and a rebuild make the same moves, so digests still agree).
    """
    key = keys.counter_day(ks, workspace, day)
    u.hincr[key][cube_field(event_type, domain, not to_identified)] -= n
    u.hincr[key][cube_field(event_type, domain, to_identified)] += n


@dataclass(frozen=True, slots=True)
class StatsQuery:
    event_type: str | None = None
    domain: str | None = None
    after_ms: int | None = None  # inclusive
    before_ms: int | None = None  # inclusive
    identified_only: bool = False


@dataclass(slots=True)
class Stats:
    total: int
    by_type: list[dict[str, object]]
    by_domain: list[dict[str, object]]
    by_day: list[dict[str, object]]


_SCHEMA = {"day": pl.Utf8, "type": pl.Utf8, "domain": pl.Utf8, "identified": pl.Int8, "count": pl.Int64}


async def _whole_day_rows(
    redis: Redis, ks: Keyspace, workspace: str, first_day: int, last_day: int
) -> pl.DataFrame:
    if first_day > last_day:
        return pl.DataFrame(schema=_SCHEMA)
    day_names = [
        d.decode()
        for d in await redis.zrange(keys.counter_days(ks, workspace), first_day, last_day, byscore=True)
    ]
    pipe = redis.pipeline(transaction=False)
    for day in day_names:
        pipe.hgetall(keys.counter_day(ks, workspace, day))
    cols: dict[str, list[object]] = {"day": [], "type": [], "domain": [], "identified": [], "count": []}
    for day, cube in zip(day_names, await pipe.execute(), strict=True):
        for field, n in cube.items():
            t, d, i = field.decode().split(SEP)
            cols["day"].append(day)
            cols["type"].append(t)
            cols["domain"].append(d)
            cols["identified"].append(int(i))
            cols["count"].append(int(n))
    return pl.DataFrame(cols, schema=_SCHEMA)


async def _edge_rows(
    redis: Redis, log: EventLog, ks: Keyspace, workspace: str, lo: int, hi: int
) -> pl.DataFrame:
    """Exact rows for a sub-day interval, read from the events in it (identified = member of `ix:idf`)."""
    members = await redis.zrange(keys.index_all(ks, workspace), lo, hi, byscore=True)
    if not members:
        return pl.DataFrame(schema=_SCHEMA)
    found = await log.read_events_at(ks.partition, [parse_member(m)[1:] for m in members])
    flags = await redis.zmscore(keys.index_identified(ks, workspace), members)
    pairs = [(e, f) for e, f in zip(found, flags, strict=True) if e is not None]
    events = [e for e, _ in pairs]
    identified = [f for _, f in pairs]
    return pl.DataFrame(
        {
            "day": [day_of(e.timestamp) for e in events],
            "type": [e.event for e in events],
            "domain": [e.domain or "" for e in events],
            "identified": [0 if s is None else 1 for s in identified],
            "count": [1] * len(events),
        },
        schema=_SCHEMA,
    )


async def read_stats(redis: Redis, log: EventLog, ks: Keyspace, workspace: str, q: StatsQuery) -> Stats:
    bounds = await redis.zrange(keys.counter_days(ks, workspace), 0, -1, withscores=True, desc=False)
    if not bounds:
        return Stats(0, [], [], [])
    first_known, last_known = int(bounds[0][1]), int(bounds[-1][1])
    lo = q.after_ms if q.after_ms is not None else first_known * DAY_MS
    hi = q.before_ms if q.before_ms is not None else (last_known + 1) * DAY_MS - 1
    frames = []
    if lo <= hi:
        first_whole = -(-lo // DAY_MS)  # ceil: first day starting at or after lo
        last_whole = (hi + 1) // DAY_MS - 1  # last day ending at or before hi
        if first_whole <= last_whole:
            frames.append(await _whole_day_rows(redis, ks, workspace, first_whole, last_whole))
            if lo < first_whole * DAY_MS:
                frames.append(await _edge_rows(redis, log, ks, workspace, lo, first_whole * DAY_MS - 1))
            if hi >= (last_whole + 1) * DAY_MS:
                frames.append(await _edge_rows(redis, log, ks, workspace, (last_whole + 1) * DAY_MS, hi))
        else:
            frames.append(await _edge_rows(redis, log, ks, workspace, lo, hi))
    df = pl.concat(frames) if frames else pl.DataFrame(schema=_SCHEMA)
    if q.event_type is not None:
        df = df.filter(pl.col("type") == q.event_type)
    if q.domain is not None:
        df = df.filter(pl.col("domain") == q.domain)
    if q.identified_only:
        df = df.filter(pl.col("identified") == 1)
    return summarize(df)


def summarize(df: pl.DataFrame) -> Stats:
    df = df.filter(pl.col("count") != 0)  # cells emptied by `move_identified_counts`
    total = int(df["count"].sum()) if df.height else 0

    def top(col: str, name: str) -> list[dict[str, object]]:
        g = df.filter(pl.col(col) != "") if col == "domain" else df
        g = g.group_by(col).agg(pl.col("count").sum()).sort(["count", col], descending=[True, False]).head(50)
        return [{name: k, "count": int(c)} for k, c in g.iter_rows()]

    days = df.group_by("day").agg(pl.col("count").sum()).sort("day", descending=True).head(90)
    return Stats(
        total=total,
        by_type=top("type", "type"),
        by_domain=top("domain", "domain"),
        by_day=[{"date": d, "count": int(c)} for d, c in days.iter_rows()],
    )
