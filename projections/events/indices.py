"""Event indices (time-ordered, and by id which is receipt order), and the type and domain sets.

Every index is a ZSET whose member is the event id without `evt_` (a ULID), then its log position written short
(`projections.located.member_of`) and whose score is the event `timestamp` in epoch ms — except `ix:r`, whose
scores are all 0. Sorted sets order equal scores by member, so ties sort by event id, and a page's documents are
fetched straight from the log without another lookup. An event id's ULID carries the millisecond the event was
received (`received_at`, `createdAt`), so id order is receipt order: `ix:r` lists every event in it, and finds
one event by id with a lexicographic range. Indices per workspace: `ix:all`, `ix:t:<type>`, `ix:d:<domain>`,
`ix:r`, `ix:c:<contact_id>` (events with `Located.contact_id`), `ix:idf` (events for which `is_identified`),
`ix:a:<anonymous_id>` (a visitor's events, identified or not). Only listed events (track / page / screen) are
indexed; identify / group / alias feed identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis

from ingest.schema import Event

from ..keyspace import Keyspace
from ..located import ULID_LEN, ContactMoves, Located, is_identified, is_listed, parse_member
from ..updates import Targets, Updates
from . import keys
from .store import read_events_at


def apply_events(u: Updates, ks: Keyspace, workspace: str, located: list[Located]) -> None:
    all_ix = u.zadd[keys.index_all(ks, workspace)]
    received_ix = u.zadd[keys.index_received(ks, workspace)]
    identified_ix = u.zadd[keys.index_identified(ks, workspace)]
    types = u.sadd[keys.event_types(ks, workspace)]
    doms = u.sadd[keys.domains(ks, workspace)]
    by_type = Targets(u.zadd, lambda t: keys.index_type(ks, workspace, t))
    by_domain = Targets(u.zadd, lambda d: keys.index_domain(ks, workspace, d))
    by_anonymous = Targets(u.zadd, lambda a: keys.index_anonymous(ks, workspace, a))
    by_contact = Targets(u.zadd, lambda c: keys.index_contact(ks, workspace, c))
    for loc in located:
        e = loc.event
        if not is_listed(e):
            continue
        member = loc.member
        ts = e.timestamp
        all_ix[member] = ts
        received_ix[member] = 0
        by_type[e.event][member] = ts
        types.add(e.event)
        if e.domain:
            by_domain[e.domain][member] = ts
            doms.add(e.domain)
        if e.anonymous_id is not None:
            by_anonymous[e.anonymous_id][member] = ts
        if loc.contact_id is not None:
            by_contact[loc.contact_id][member] = ts
        if is_identified(loc):
            identified_ix[member] = ts


@dataclass(slots=True)
class MovedEvents:
    """What `apply_contact_moves` did in one workspace: every moved event's ULID with its contact now, and the
    events that were anonymous until now (the counters move them to identified)."""

    contacts: list[tuple[str, str]] = field(default_factory=list)
    identified: list[Event] = field(default_factory=list)


async def apply_contact_moves(
    redis: Redis, ks: Keyspace, u: Updates, moves: dict[str, ContactMoves]
) -> dict[str, MovedEvents]:
    """Move earlier batches' events to their new contact, in the same transaction as the batch: a merged-away
    contact's events go to its survivor; a newly linked anonymous id's unidentified events become its contact's
    (contact index, identified index). Three round trips at most for the whole batch."""
    plan: list[tuple[str, str, str, str]] = []  # (workspace, kind, from, to)
    pipe = redis.pipeline(transaction=False)
    for ws in sorted(moves):
        for old, survivor in moves[ws].merged.items():
            pipe.zrange(keys.index_contact(ks, ws, old), 0, -1, withscores=True)
            plan.append((ws, "merged", old, survivor))
        for anonymous_id, contact in moves[ws].linked.items():
            pipe.zrange(keys.index_anonymous(ks, ws, anonymous_id), 0, -1, withscores=True)
            plan.append((ws, "linked", anonymous_id, contact))
    out: dict[str, MovedEvents] = {ws: MovedEvents() for ws in sorted(moves)}
    if not plan:
        return out
    replies = await pipe.execute()

    retro: list[tuple[str, str, list[tuple[bytes, float]]]] = []
    for (ws, kind, old, target), members in zip(plan, replies, strict=True):
        if not members:
            continue
        if kind == "linked":
            retro.append((ws, target, members))
            continue
        to_ix = u.zadd[keys.index_contact(ks, ws, target)]
        gone = u.zrem[keys.index_contact(ks, ws, old)]
        for m, score in members:
            ms = m.decode()
            to_ix[ms] = score
            gone.add(ms)
            out[ws].contacts.append((ms[:ULID_LEN], target))
    if not retro:
        return out

    pipe = redis.pipeline(transaction=False)
    for ws, _, members in retro:
        pipe.zmscore(keys.index_identified(ks, ws), [m for m, _ in members])
    newly: list[tuple[str, str, str, float]] = []  # (workspace, contact, member, score)
    for (ws, target, members), found in zip(retro, await pipe.execute(), strict=True):
        for (m, score), flag in zip(members, found, strict=True):
            if flag is None:
                newly.append((ws, target, m.decode(), score))
    if not newly:
        return out
    # the counters need each event's type and domain: the events themselves, from the log
    found_events = await read_events_at(redis, ks, [parse_member(m)[1:] for _, _, m, _ in newly])
    for (ws, target, m, score), e in zip(newly, found_events, strict=True):
        u.zadd[keys.index_contact(ks, ws, target)][m] = score
        u.zadd[keys.index_identified(ks, ws)][m] = score
        out[ws].contacts.append((m[:ULID_LEN], target))
        if e is not None:
            out[ws].identified.append(e)
    return out
