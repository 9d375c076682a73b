"""Event indices (time-ordered sorted sets, and receipt-ordered records), and the type and domain sets.

Every index is a ZSET whose member is the event's ULID as 16 bytes, then its log position written short
(`projections.located.member_of`), and whose score is the event `timestamp` in epoch ms. Sorted sets order equal
scores by member, so ties sort by event id, and a page's documents are fetched straight from the log without
another lookup. Indices per workspace: `ix:all`, `ix:t:<type>`, `ix:c:<contact_id>` (events with
`Located.contact_id`), `ix:idf` (events for which `is_identified`); by page signature in `search.py` (which also
serves the domain filter: a domain is the union of its pages). An event id's ULID carries the millisecond the
event was received (`createdAt`), so id order is receipt order: the receipt records of a day's events, sorted
by id, fill one string `rx:<day>` (`createdAt` pages, and finding one event by id); an anonymous visitor's
events without a contact wait in `ax:<anonymous id>` until the visitor is identified. Records cost 32 bytes an
event where a sorted-set member costs about 80. Only listed events (track / page / screen) are indexed;
identify / group / alias feed identity.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from redis.asyncio import Redis

from ingest.archive import Archive
from ingest.schema import Event

from ..keyspace import Keyspace
from ..located import (
    DAY_MS,
    RECORD,
    WAITING,
    ContactMoves,
    Located,
    is_identified,
    is_listed,
    member_of_record,
    parse_member,
)
from ..updates import Targets, Updates
from . import keys
from .expiry import KEEP_ALL, Keep, Oldest
from .store import read_events_at


def received_day(loc: Located) -> int:
    """The UTC day (days since the epoch) its id's millisecond falls on: which `rx:<day>` holds its record."""
    return int.from_bytes(loc.key[:6], "big") // DAY_MS


def apply_events(
    u: Updates, ks: Keyspace, workspace: str, located: list[Located], keep: Keep = KEEP_ALL
) -> None:
    """Index the listed events that `keep` keeps (`expiry.py`); the expiry index learns the oldest score each
    index gets when `keep.track`."""
    oldest = Oldest() if keep.track else None
    all_ix = u.zadd[keys.index_all(ks, workspace)]
    identified_ix = u.zadd[keys.index_identified(ks, workspace)]
    types = u.sadd[keys.event_types(ks, workspace)]
    doms = u.sadd[keys.domains(ks, workspace)]
    days = u.zadd[keys.received_days(ks, workspace)]
    by_type = Targets(u.zadd, lambda t: keys.index_type(ks, workspace, t))
    by_contact = Targets(u.zadd, lambda c: keys.index_contact(ks, workspace, c))
    by_day: Targets[list[bytes]] = Targets(u.records, lambda d: keys.received(ks, workspace, int(d)))
    waiting: Targets[list[bytes]] = Targets(u.append, lambda a: keys.anonymous_events(ks, workspace, a))
    horizon = keep.horizon
    seen_days: set[int] = set()
    for loc in located:
        e = loc.event
        if not is_listed(e):
            continue
        types.add(e.event)
        if e.domain:
            doms.add(e.domain)
        ts = e.timestamp
        if horizon is not None and ts < horizon:  # not `keep.keeps(ts)`: this loop runs for every event
            continue
        member = loc.member
        all_ix[member] = ts
        by_type[e.event][member] = ts
        day = int.from_bytes(loc.key[:6], "big") // DAY_MS  # received_day(loc)
        record = loc.record
        by_day[day].append(record)  # type: ignore[index]
        if day not in seen_days:
            seen_days.add(day)
            days[str(day)] = day
        if loc.contact_id is not None:
            by_contact[loc.contact_id][member] = ts
            identified_ix[member] = ts  # is_identified(loc)
        elif e.anonymous_id is not None:
            waiting[e.anonymous_id].append(WAITING.pack(record, ts))
        if oldest is not None:
            for ref in ("all", f"t:{e.event}", "idf" if is_identified(loc) else None):
                if ref:
                    oldest.add(ref, ts)
            if loc.contact_id is not None:
                oldest.add(f"c:{loc.contact_id}", ts)
            elif e.anonymous_id is not None:
                oldest.add(f"a:{e.anonymous_id}", ts)
    if oldest is not None:
        oldest.queue(u, ks, workspace)


@dataclass(slots=True)
class MovedEvents:
    """What `apply_contact_moves` did in one workspace: every moved event's ULID with its contact now, and the
    events that were anonymous until now (the counters move them to identified)."""

    contacts: list[tuple[str, str]] = field(default_factory=list)
    identified: list[Event] = field(default_factory=list)


async def apply_contact_moves(
    redis: Redis,
    ks: Keyspace,
    u: Updates,
    moves: dict[str, ContactMoves],
    keeps: dict[str, Keep] | None = None,
    archive: Archive | None = None,
) -> dict[str, MovedEvents]:
    """Move earlier batches' events to their new contact, in the same transaction as the batch: a merged-away
    contact's events go to its survivor; a newly linked anonymous id's waiting events become its contact's
    (contact index, identified index) and its waiting list goes. Three round trips at most for the batch."""
    plan: list[tuple[str, str, str, str]] = []  # (workspace, kind, from, to)
    pipe = redis.pipeline(transaction=False)
    for ws in sorted(moves):
        for old, survivor in moves[ws].merged.items():
            pipe.zrange(keys.index_contact(ks, ws, old), 0, -1, withscores=True)
            plan.append((ws, "merged", old, survivor))
        for anonymous_id, contact in moves[ws].linked.items():
            pipe.get(keys.anonymous_events(ks, ws, anonymous_id))
            plan.append((ws, "linked", anonymous_id, contact))
    out: dict[str, MovedEvents] = {ws: MovedEvents() for ws in sorted(moves)}
    notes: dict[str, Oldest] = defaultdict(Oldest)  # what the expiry index learns (with a horizon)
    if not plan:
        return out
    replies = await pipe.execute()

    retro: list[tuple[str, str, list[bytes]]] = []
    for (ws, kind, old, target), found in zip(plan, replies, strict=True):
        if not found:
            continue
        if kind == "linked":
            w = WAITING.size
            retro.append(
                (ws, target, [member_of_record(found[i : i + RECORD.size]) for i in range(0, len(found), w)])
            )
            u.delete.add(keys.anonymous_events(ks, ws, old))
            continue
        to_ix = u.zadd[keys.index_contact(ks, ws, target)]
        gone = u.zrem[keys.index_contact(ks, ws, old)]
        keep = (keeps or {}).get(ws, KEEP_ALL)
        kept = [(m, score) for m, score in found if keep.keeps(int(score))]
        gone.update(m for m, _ in found)
        # an event the horizon passes with this batch expires first: it moves nowhere (as if the batch's
        # expiry had run before it, which one entry per batch would do)
        for m, score in kept:
            to_ix[m] = score
            out[ws].contacts.append((parse_member(m)[0], target))
        if keep.track and kept:
            notes[ws].add(f"c:{target}", min(int(score) for _, score in kept))
    if not retro:
        for ws, oldest in notes.items():
            oldest.queue(u, ks, ws)
        return out

    pipe = redis.pipeline(transaction=False)
    for ws, _, members in retro:
        pipe.zmscore(keys.index_identified(ks, ws), members)
    newly: list[tuple[str, str, bytes]] = []  # (workspace, contact, member)
    for (ws, target, members), found in zip(retro, await pipe.execute(), strict=True):
        newly += [(ws, target, m) for m, flag in zip(members, found, strict=True) if flag is None]
    if not newly:
        for ws, oldest in notes.items():
            oldest.queue(u, ks, ws)
        return out
    # their timestamps, and for the counters their type and domain: the events themselves, from the log
    found_events = await read_events_at(redis, ks, [parse_member(m)[1:] for _, _, m in newly], archive)
    for (ws, target, m), e in zip(newly, found_events, strict=True):
        if e is None:  # its log entry is gone (archived or deleted): nothing left to move
            continue
        keep = (keeps or {}).get(ws, KEEP_ALL)
        if not keep.keeps(
            e.timestamp
        ):  # expired: it stays out of the indices, and so of the counts' move too
            continue
        if keep.track:
            notes[ws].add(f"c:{target}", e.timestamp)
            notes[ws].add("idf", e.timestamp)
        u.zadd[keys.index_contact(ks, ws, target)][m] = e.timestamp
        u.zadd[keys.index_identified(ks, ws)][m] = e.timestamp
        out[ws].contacts.append((parse_member(m)[0], target))
        out[ws].identified.append(e)
    for ws, oldest in notes.items():
        oldest.queue(u, ks, ws)
    return out
