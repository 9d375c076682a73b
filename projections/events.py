"""Event indices (time-ordered, and by id which is receipt order), and the type and domain sets.

Every index is a ZSET whose member is the event id without `evt_` (a ULID), then its log position written short
(`member_of`; `parse_member` splits it) and whose score is the event `timestamp` in epoch ms — except `ix:r`,
whose scores are all 0. Sorted sets order equal scores by member, so ties sort by event id, and a page's
documents are fetched straight from the log without another lookup. An event id's ULID carries the
millisecond the event was received (`received_at`, `createdAt`), so id order is receipt order: `ix:r` lists
every event in it, and finds one event by id with a lexicographic range. Indices per workspace:
`ix:all`, `ix:t:<type>`, `ix:d:<domain>`, `ix:r`, `ix:c:<contact_id>` (events with `Located.contact_id`),
`ix:idf` (events for which `is_identified`), `ix:a:<anonymous_id>` (a visitor's events, identified or not).
Only listed events (track / page / screen) are indexed; identify / group / alias feed identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis

from ingest.log import EventLog
from ingest.schema import EVENT_KINDS, Event

from . import keys
from .keys import Keyspace
from .updates import Targets, Updates

ULID_LEN = 26
# Crockford base32 (ULIDs) → the digits int(…, 32) reads
_TO_BASE32 = str.maketrans("0123456789ABCDEFGHJKMNPQRSTVWXYZ", "0123456789abcdefghijklmnopqrstuv")


def ulid_ms(ulid: str) -> int:
    """The millisecond a ULID carries (its first 10 characters)."""
    return int(ulid[:10].translate(_TO_BASE32), 32)


def member_of(ulid: str, entry_id: str, index: int) -> str:
    """`<ULID><ms offset>[,<seq>]:<index>`: the event id, then its log position written short — the entry's
    milliseconds as an offset from the id's (an event is appended within milliseconds of being received, so
    the offset is small and usually empty), its sequence number when not 0, and the index in the entry."""
    ms, _, seq = entry_id.partition("-")
    offset = int(ms) - ulid_ms(ulid)
    return f"{ulid}{offset or ''}{',' + seq if seq and seq != '0' else ''}:{index}"


@dataclass(slots=True)
class Located:
    """An event with its log position, and the contact the identity projection resolved it to (if any): the
    fold sets `contact_id` once identity has run, before any other projection sees the event."""

    event: Event
    entry_id: str
    index: int
    contact_id: str | None = None
    ulid: str = field(init=False, repr=False, compare=False)  # the event id without `evt_`
    member: str = field(init=False, repr=False, compare=False)  # its member in the indices

    def __post_init__(self) -> None:
        self.ulid = ulid = self.event.id[4:]
        self.member = member_of(ulid, self.entry_id, self.index)


def is_listed(event: Event) -> bool:
    """Only tracked interactions are events of the Events API; identify/group/alias feed identity."""
    return event.kind in EVENT_KINDS


def is_identified(located: Located) -> bool:
    """Whether an event counts as linked to a known contact (`identified_only`, `ix:idf`, the counters cube).

    The identity projection (`projections/identity.py`) sets `contact_id` in the fold before `apply_events`.
    """
    return located.contact_id is not None


def apply_events(u: Updates, ks: Keyspace, workspace: str, located: list[Located]) -> None:
    mids = u.hset[keys.message_ids(ks, workspace)]
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
        ulid = loc.ulid
        mids[e.message_id] = ulid
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


def parse_member(member: bytes | str) -> tuple[str, str, int]:
    """(ulid, entry id, index) of an index member (`member_of`)."""
    m = member.decode() if isinstance(member, bytes) else member
    ulid = m[:ULID_LEN]
    position, _, idx = m[ULID_LEN:].rpartition(":")
    offset, _, seq = position.partition(",")
    return ulid, f"{ulid_ms(ulid) + int(offset or 0)}-{seq or 0}", int(idx)


async def read_event(
    redis: Redis, log: EventLog, ks: Keyspace, workspace: str, event_id: str
) -> Event | None:
    if not event_id.startswith("evt_") or len(event_id) != 4 + ULID_LEN:
        return None
    ulid = event_id[4:]
    found = await redis.zrange(
        keys.index_received(ks, workspace), f"[{ulid}", "+", bylex=True, offset=0, num=1
    )
    if not found or not found[0].startswith(ulid.encode()):
        return None
    _, entry_id, idx = parse_member(found[0])
    (event,) = await log.read_events_at(ks.partition, [(entry_id, idx)])
    return event


async def read_event_types(redis: Redis, ks: Keyspace, workspace: str) -> list[str]:
    return sorted(m.decode() for m in await redis.smembers(keys.event_types(ks, workspace)))
