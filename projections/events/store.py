"""The event store is the log itself: an event is read from the entry that holds it, by its log position.

One script call reads every distinct entry of a page server-side (`read_entries-1.lua`), so a page costs one
request and one reply however many entries its events come from. `read_event` finds one event by id through
its receipt record (`find_record-1.lua`); `read_event_types` lists the type set.
"""

from __future__ import annotations

import re
import struct
from typing import Any

from redis.asyncio import Redis

from ingest import keys as log_keys
from ingest.archive import Archive
from ingest.log import entry_event_at
from ingest.schema import Event

from ..keyspace import Keyspace
from ..located import DAY_MS, RECORD, member_of_record, parse_member, ulid_bytes, ulid_ms
from ..scripts import Script
from . import keys

READ_ENTRIES = Script(__package__, "read_entries-1.lua")
FIND_RECORD = Script(__package__, "find_record-1.lua")
_ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")


async def read_events_at(
    redis: Redis, ks: Keyspace, positions: list[tuple[str, int]], archive: Archive | None = None
) -> list[Event | None]:
    """The events at log positions (entry id, index), in order: from the stream, else (entries moved there) from
    the archive; None where the entry is gone from both."""
    entry_ids = list(dict.fromkeys(eid for eid, _ in positions))
    if not entry_ids:
        return []
    replies: list[Any] = await READ_ENTRIES(redis, [log_keys.log(ks.prefix, ks.partition)], ids=entry_ids)
    data = {eid: found for eid, found in zip(entry_ids, replies, strict=True) if found is not None}
    out: list[Event | None] = []
    for eid, idx in positions:
        found = data.get(eid)
        out.append(entry_event_at(found[0], found[1], idx) if found is not None else None)
    if archive is not None and len(data) < len(entry_ids):
        gone = [i for i, (eid, _) in enumerate(positions) if eid not in data]
        for i, e in zip(gone, archive.events_at(ks.partition, [positions[i] for i in gone]), strict=True):
            out[i] = e
    return out


async def read_members(
    redis: Redis, ks: Keyspace, members: list[bytes], archive: Archive | None = None
) -> list[Event]:
    """The events of index members, from the log, in order."""
    if not members:
        return []
    found = await read_events_at(redis, ks, [parse_member(m)[1:] for m in members], archive)
    return [e for e in found if e is not None]


def event_ids_of(members: list[bytes]) -> list[str]:
    """The event ids of index members, in order."""
    return [f"evt_{parse_member(m)[0]}" for m in members]


async def read_event(
    redis: Redis, ks: Keyspace, workspace: str, event_id: str, archive: Archive | None = None
) -> Event | None:
    """One listed event by id: its receipt record is in the string of the day its id was received."""
    ulid = event_id[4:]
    if not event_id.startswith("evt_") or not _ULID.fullmatch(ulid):
        return None
    key = ulid_bytes(ulid)
    record = await FIND_RECORD(
        redis,
        [keys.received(ks, workspace, ulid_ms(ulid) // DAY_MS)],
        ulid=list(struct.unpack(">IIII", key)),
        width=RECORD.size,
    )
    if not record:
        return None
    _, entry_id, idx = parse_member(member_of_record(record))
    (event,) = await read_events_at(redis, ks, [(entry_id, idx)], archive)
    return event


async def read_event_types(redis: Redis, ks: Keyspace, workspace: str) -> list[str]:
    return sorted(m.decode() for m in await redis.smembers(keys.event_types(ks, workspace)))


async def read_contact_event_counts(
    redis: Redis, ks: Keyspace, workspace: str, contact_ids: list[str]
) -> list[int]:
    """How many listed events each contact has, in order (one round trip)."""
    if not contact_ids:
        return []
    pipe = redis.pipeline(transaction=False)
    for cid in contact_ids:
        pipe.zcard(keys.index_contact(ks, workspace, cid))
    return [int(n) for n in await pipe.execute()]
