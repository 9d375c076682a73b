"""The counters cube per UTC day × event type × domain × identified, and the rollups of it that stats read.

Rollups (fields end in `a` = every event, `i` = identified ones, so identifying an event only ever adds):
the whole history by type × domain, by type and by domain, and per day by type, by domain and in total.
Retroactive identification moves counts from anonymous to identified (`move_to_identified`); a cube cell that
reaches zero is deleted, so the cube's bytes do not depend on where batches split.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from redis.asyncio import Redis

from ingest.schema import Event

from ..keyspace import Keyspace
from ..located import DAY_MS, Located, is_identified, is_listed
from ..updates import Targets, Updates
from . import keys

SEP = "\x1f"


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
    u: Updates, ks: Keyspace, workspace: str, day: str, event_type: str, domain: str | None, n: int
) -> None:
    """Move `n` counts of (day, type, domain) from anonymous to identified: totals stay the same. In the day
    cube the anonymous cell shrinks (`move_to_identified` drops a cell that reaches zero); the rollups'
    identified cells grow."""
    key = keys.counter_day(ks, workspace, day)
    u.hincr[key][cube_field(event_type, domain, False)] -= n
    u.hincr[key][cube_field(event_type, domain, True)] += n
    for target, field in zip(
        _rollups(u, ks, workspace, day), _rollup_fields(event_type, domain, day, "i"), strict=True
    ):
        target[field] += n


async def move_to_identified(
    redis: Redis, ks: Keyspace, u: Updates, identified: dict[str, list[Event]]
) -> None:
    """Count earlier anonymous events as identified (retroactive identification), per workspace; a cube cell
    moved to zero is deleted (a rebuild that folds the anonymous events and their identification together
    never creates it). One round trip to learn which cells empty."""
    cells: set[tuple[str, str]] = set()
    for ws in sorted(identified):
        for e in identified[ws]:
            day = day_of(e.timestamp)
            move_identified_counts(u, ks, ws, day, e.event, e.domain, 1)
            cells.add((keys.counter_day(ks, ws, day), cube_field(e.event, e.domain, False)))
    if not cells:
        return
    order = sorted(cells)
    pipe = redis.pipeline(transaction=False)
    for key, cell in order:
        pipe.hget(key, cell)
    for (key, cell), current in zip(order, await pipe.execute(), strict=True):
        pending = u.hincr[key].get(cell, 0)
        if int(current or 0) + pending == 0:
            u.hincr[key].pop(cell, None)
            u.hdel[key].add(cell)
