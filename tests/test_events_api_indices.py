"""The index contract identity builds on: contact / identified / anonymous indices and moving cube counts."""

from __future__ import annotations

import uuid

from ingest import keys as log_keys
from ingest.ids import event_id, ulids
from ingest.log import EventLog
from ingest.schema import Event
from projections.counters import StatsQuery, day_of, read_stats
from projections.counters.cube import move_identified_counts
from projections.events import apply_events
from projections.events import keys as event_keys
from projections.fold.rebuild import rebuild_and_compare
from projections.keyspace import Keyspace
from projections.located import (
    DAY_MS,
    RECORD,
    WAITING,
    Located,
    is_identified,
    member_of_record,
    parse_member,
)
from projections.updates import Updates

T0 = 1_777_000_000_000  # 2026-04-24


def make_event(
    uid: str, ts: int, *, name: str = "page_view", user: str | None = None, anon: str | None = None
) -> Event:
    return Event(
        id=event_id(uid),
        kind="page" if name == "page_view" else "track",
        event=name,
        message_id=str(uuid.uuid4()),
        timestamp=ts,
        received_at=ts + 5,
        user_id=user,
        anonymous_id=anon,
        url="https://example.com/pricing",
        domain="example.com",
    )


def keyspace(settings, workspace) -> Keyspace:
    return Keyspace(settings.key_prefix, log_keys.partition_of(workspace.id, settings.partitions))


async def append(redis, settings, workspace, events: list[Event]) -> None:
    await EventLog(redis, settings).append(workspace.id, events)


def records_of(raw: bytes | None, width: int = RECORD.size) -> list[str]:
    """The event ULIDs of a string of receipt (or waiting) records, in order."""
    raw = raw or b""
    return [parse_member(member_of_record(raw[i : i + RECORD.size]))[0] for i in range(0, len(raw), width)]


async def test_identified_waiting_and_received_indices_follow_the_fold(
    app, redis, settings, workspace, folded
):
    ids = ulids(4, T0)
    events = [
        make_event(ids[0], T0, anon="a1"),
        make_event(ids[1], T0 + 1, anon="a1", user="u1"),
        make_event(ids[2], T0 + 2, user="u2"),
        make_event(ids[3], T0 + 3, anon="a2"),
    ]
    await append(redis, settings, workspace, events)
    await folded()
    ks = keyspace(settings, workspace)
    idf = [
        parse_member(m)[0] for m in await redis.zrange(event_keys.index_identified(ks, workspace.id), 0, -1)
    ]
    # a1's earlier event is identified retroactively: a1 was linked to u1's contact in the same fold step
    assert idf == [ids[0], ids[1], ids[2]]
    # only a2's event waits for its visitor to be identified; a1 waits no more
    assert not await redis.exists(event_keys.anonymous_events(ks, workspace.id, "a1"))
    assert records_of(await redis.get(event_keys.anonymous_events(ks, workspace.id, "a2")), WAITING.size) == [
        ids[3]
    ]
    # every event in id order, which is receipt order (an id's ULID carries the receipt millisecond)
    day = T0 // DAY_MS
    assert await redis.zrange(event_keys.received_days(ks, workspace.id), 0, -1) == [str(day).encode()]
    assert records_of(await redis.get(event_keys.received(ks, workspace.id, day))) == ids


async def test_receipt_records_stay_in_id_order_when_events_arrive_out_of_it(
    app, redis, settings, workspace, folded
):
    ids = ulids(6, T0)
    for batch in ([ids[3], ids[4]], [ids[0]], [ids[5], ids[1]], [ids[2]]):  # appended out of receipt order
        await append(redis, settings, workspace, [make_event(u, T0, anon="a9") for u in batch])
        await folded()
    ks = keyspace(settings, workspace)
    assert records_of(await redis.get(event_keys.received(ks, workspace.id, T0 // DAY_MS))) == ids
    assert records_of(await redis.get(event_keys.anonymous_events(ks, workspace.id, "a9")), WAITING.size) == [
        ids[3], ids[4], ids[0], ids[5], ids[1], ids[2]
    ]  # fmt: skip


def test_a_resolved_contact_indexes_the_event_under_the_contact_and_as_identified():
    ks = Keyspace("sf", 0)
    (uid,) = ulids(1, T0)
    loc = Located(make_event(uid, T0, anon="a1"), "1-0", 0, contact_id="ct_1")
    assert is_identified(loc)
    u = Updates()
    apply_events(u, ks, "w1", [loc])
    assert u.zadd[event_keys.index_contact(ks, "w1", "ct_1")] == {loc.member: T0}
    assert u.zadd[event_keys.index_identified(ks, "w1")] == {loc.member: T0}


async def test_moving_counts_to_identified_keeps_totals(app, redis, settings, workspace, folded):
    ids = ulids(2, T0)
    await append(redis, settings, workspace, [make_event(ids[0], T0, anon="a1"), make_event(ids[1], T0 + 1)])
    await folded()
    ks = keyspace(settings, workspace)
    before = await read_stats(redis, ks, workspace.id, StatsQuery(identified_only=True))
    assert before.total == 0
    u = Updates()
    move_identified_counts(u, ks, workspace.id, day_of(T0), "page_view", "example.com", 2)
    async with redis.pipeline(transaction=True) as pipe:
        u.queue(pipe)
        await pipe.execute()
    assert (await read_stats(redis, ks, workspace.id, StatsQuery(identified_only=True))).total == 2
    every = await read_stats(redis, ks, workspace.id, StatsQuery())
    assert every.total == 2 and every.by_type == [{"type": "page_view", "count": 2}]


async def test_rebuild_gives_the_live_digest_with_the_new_indices(app, redis, settings, workspace, folded):
    ids = ulids(4, T0)
    events = [
        make_event(u, T0 + i, anon=f"a{i % 2}", user="u" if i == 3 else None) for i, u in enumerate(ids)
    ]
    await append(redis, settings, workspace, events)
    await folded()
    ks = keyspace(settings, workspace)
    live, rebuilt, n = await rebuild_and_compare(redis, settings.key_prefix, ks.partition)
    assert n == 1 and live == rebuilt
