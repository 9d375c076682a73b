"""Retention: a workspace's events older than its horizon (log time, whole days) leave the lists, `count_only`,
single-event reads and the indices, while stats keep their whole history; a change of retention is a log entry,
so any batching and a rebuild reach the same state."""

from __future__ import annotations

import time

import msgspec
import pytest

from ingest import keys as log_keys
from ingest.log import EventLog, control_entry_fields, entry_fields
from ingest.schema import SETTINGS
from projections.events import keys as event_keys
from projections.fold.fold import fold_entries
from projections.fold.rebuild import digest, rebuild_and_compare
from projections.keyspace import Keyspace
from projections.located import DAY_MS

from .factories import make_events

READ = "events:read"


def keyspace(settings, workspace) -> Keyspace:
    return Keyspace(settings.key_prefix, log_keys.partition_of(workspace.id, settings.partitions))


async def append_days(redis, settings, workspace, days: int, per_day: int, *, end_ms: int) -> list:
    """`per_day` events on each of `days` days before `end_ms`, each day's in an entry of its own received that
    day (entry id on that day: log time), oldest first."""
    ks = keyspace(settings, workspace)
    stream = log_keys.log(settings.key_prefix, ks.partition)
    out = []
    for d in range(days, 0, -1):
        t = end_ms - d * DAY_MS
        events = [
            msgspec.structs.replace(e, timestamp=t + i, received_at=t + i)
            for i, e in enumerate(make_events(per_day, seed=d, start_ms=t))
        ]
        await redis.xadd(stream, entry_fields(workspace.id, events), id=f"{t}-0")
        out += events
    return out


async def append_settings_at(redis, settings, workspace, ms: int, **change: int | None) -> None:
    """A change of settings appended at log time `ms` (as `EventLog.append_settings` would at that moment)."""
    ks = keyspace(settings, workspace)
    fields = control_entry_fields(workspace.id, ms, SETTINGS, **change)
    await redis.xadd(log_keys.log(settings.key_prefix, ks.partition), fields, id=f"{ms}-1")


async def fold_all(redis, settings, workspace, chunk: int = 1000) -> None:
    ks = keyspace(settings, workspace)
    entries = await redis.xrange(log_keys.log(settings.key_prefix, ks.partition))
    for i in range(0, len(entries), chunk):
        await fold_entries(redis, ks, entries[i : i + chunk], fence=None, ack_group=None)


async def test_retention_drops_old_events_from_lists_but_not_from_stats(
    client_without_fold, redis, settings, workspace
):
    client = client_without_fold
    now = time.time_ns() // 1_000_000
    events = await append_days(redis, settings, workspace, 20, 5, end_ms=now)
    await EventLog(redis, settings).append_settings(workspace.id, retention_days=7)
    await fold_all(redis, settings, workspace)
    horizon = (now // DAY_MS - 7) * DAY_MS
    kept = [e for e in events if e.timestamp >= horizon]
    assert 0 < len(kept) < len(events)
    h = {"Authorization": f"Bearer {workspace.read_key}"}
    r = await client.get("/v1/events", params={"count_only": "true"}, headers=h)
    assert r.json()["count"] == len(kept)
    listed = (await client.get("/v1/events", params={"limit": 100}, headers=h)).json()["events"]
    assert sorted(e["_id"] for e in listed) == sorted(e.id for e in kept)
    by_receipt = (
        await client.get("/v1/events", params={"limit": 100, "sort_by": "createdAt"}, headers=h)
    ).json()
    assert sorted(e["_id"] for e in by_receipt["events"]) == sorted(e.id for e in kept)
    gone = next(e for e in events if e.timestamp < horizon)
    assert (await client.get(f"/v1/events/{gone.id}", headers=h)).status_code == 404
    assert (await client.get(f"/v1/events/{kept[0].id}", headers=h)).status_code == 200
    stats = (await client.get("/v1/events/stats", headers=h)).json()["stats"]
    assert stats["total"] == len(events)
    ks = keyspace(settings, workspace)
    assert await redis.zcard(event_keys.index_all(ks, workspace.id)) == len(kept)
    old_days = {e.received_at // DAY_MS for e in events if e.timestamp < horizon}
    for day in old_days:
        assert not await redis.exists(event_keys.received(ks, workspace.id, day))


async def test_any_batching_and_a_rebuild_reach_the_same_state(redis, settings, workspace):
    now = time.time_ns() // 1_000_000
    await append_days(redis, settings, workspace, 12, 4, end_ms=now - 20 * DAY_MS)
    await append_settings_at(redis, settings, workspace, now - 20 * DAY_MS, retention_days=3)
    await append_days(redis, settings, workspace, 10, 4, end_ms=now - 2 * DAY_MS)
    await append_settings_at(redis, settings, workspace, now - 2 * DAY_MS - 1000, retention_days=None)
    await append_days(redis, settings, workspace, 2, 4, end_ms=now)
    await fold_all(redis, settings, workspace, chunk=2)
    ks = keyspace(settings, workspace)
    live, rebuilt, n = await rebuild_and_compare(redis, settings.key_prefix, ks.partition)
    assert n == 26 and live == rebuilt
    one_by_one = ks.rebuild_view("ones")
    for entry in await redis.xrange(log_keys.log(settings.key_prefix, ks.partition)):
        await fold_entries(redis, one_by_one, [entry], fence=None, ack_group=None)
    assert await digest(redis, one_by_one) == live
    # the second change kept every later event: 2 days × 4 events, plus those inside 3 days of the change
    assert await redis.zcard(event_keys.index_all(ks, workspace.id)) > 8


@pytest.mark.parametrize("hour", [0, 5, 11, 13, 19, 23])
async def test_identity_churn_with_retention_changes_folds_the_same_whatever_the_batches(
    redis, settings, workspace, hour
):
    """Merges, retroactive identification and expiry interleaved: a live fold in random batches, one entry at a
    time, and a rebuild all reach the same digest — whatever the hour of the log day the log starts at."""
    import random

    from .test_identity_scenario import churn

    rng = random.Random(7)
    ks = keyspace(settings, workspace)
    stream = log_keys.log(settings.key_prefix, ks.partition)
    today = time.time_ns() // 1_000_000 // DAY_MS * DAY_MS
    start = today - 40 * DAY_MS + hour * 3_600_000 + 1234
    entries = churn(120, seed=3)
    for k, events in enumerate(entries):
        t = start + k * 8 * 3_600_000  # every 8 hours of log time
        events = [
            msgspec.structs.replace(e, timestamp=t - rng.randrange(3 * DAY_MS), received_at=t) for e in events
        ]
        await redis.xadd(stream, entry_fields(workspace.id, events), id=f"{t}-0")
        if k in (30, 70, 100):
            await append_settings_at(
                redis, settings, workspace, t + 1, retention_days={30: 4, 70: 2, 100: None}[k]
            )
    all_entries = await redis.xrange(stream)
    i = 0
    while i < len(all_entries):
        n = rng.randint(1, 9)
        await fold_entries(redis, ks, all_entries[i : i + n], fence=None, ack_group=None)
        i += n
    live, rebuilt, n = await rebuild_and_compare(redis, settings.key_prefix, ks.partition)
    assert n == len(all_entries) and live == rebuilt
    one_by_one = ks.rebuild_view("ones")
    for entry in all_entries:
        await fold_entries(redis, one_by_one, [entry], fence=None, ack_group=None)
    assert await digest(redis, one_by_one) == live
