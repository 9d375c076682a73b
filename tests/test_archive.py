"""The archive: whole log days past the horizon move to verified Parquet files and leave the stream; every field
reads back; reads, the fold's retroactive identification and a rebuild go on as if nothing moved; an archive run
killed at any point is completed by the next, nothing lost, nothing twice."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import polars as pl
import pytest

from ingest import keys as log_keys
from ingest.archive import Archive, entries_frame, frame_entries
from ingest.log import F_DATA, F_VERSION, entry_events, entry_fields
from projections.fold.archiver import archive_partition
from projections.fold.fold import fold_entries
from projections.fold.rebuild import rebuild_and_compare
from projections.keyspace import Keyspace
from projections.located import DAY_MS

from .conftest import make_settings
from .factories import make_events
from .test_identity_scenario import churn


@pytest.fixture
def settings(redis_url, tmp_path):
    return make_settings(redis_url, archive_dir=str(tmp_path / "archive"))


def keyspace(settings, workspace) -> Keyspace:
    return Keyspace(settings.key_prefix, log_keys.partition_of(workspace.id, settings.partitions))


def events_of(entries) -> list:
    return [e for _, f in entries for e in entry_events(f.get(F_VERSION), f[F_DATA])]


async def append_days(redis, settings, workspace, days: int, *, end_ms: int, per_day: int = 6) -> None:
    """Each day two entries: plain events and an identity churn entry (identify, alias, group, email…)."""
    stream = log_keys.log(settings.key_prefix, keyspace(settings, workspace).partition)
    for d in range(days, 0, -1):
        t = end_ms - d * DAY_MS
        plain = [
            msgspec.structs.replace(e, timestamp=t + i)
            for i, e in enumerate(make_events(per_day, seed=d, start_ms=t))
        ]
        mixed = [msgspec.structs.replace(e, timestamp=t + 10 + i) for i, e in enumerate(churn(1, seed=d)[0])]
        await redis.xadd(stream, entry_fields(workspace.id, plain), id=f"{t}-0")
        await redis.xadd(stream, entry_fields(workspace.id, mixed), id=f"{t + 1000}-0")


async def fold_all(redis, settings, workspace, archive: Archive | None = None) -> None:
    ks = keyspace(settings, workspace)
    entries = await redis.xrange(log_keys.log(settings.key_prefix, ks.partition))
    await fold_entries(redis, ks, entries, fence=None, ack_group=None, archive=archive)


def test_every_field_reads_back_from_a_day_file(tmp_path: Path):
    events = churn(3, seed=5)
    entries = [(f"{1780000000000 + i}-{i}", entry_fields("ws_a", es)) for i, es in enumerate(events)]
    entries.append(("1780000000009-0", entry_fields("ws_a", make_events(40, seed=2))))
    archive = Archive(tmp_path)
    manifest = archive.write_day(0, 1780000000000 // DAY_MS, entries)
    assert manifest["rows"] == sum(len(es) for es in events) + 40 and manifest["entries"] == 4
    back = archive.read_day(0, 1780000000000 // DAY_MS)
    assert [eid for eid, _ in back] == [eid for eid, _ in entries]
    assert events_of(back) == events_of(entries)
    frame = pl.read_parquet(archive.path(0, 1780000000000 // DAY_MS))
    assert frame.columns[:6] == ["entry_id", "entry_index", "workspace", "control", "id", "type"]
    assert events_of(frame_entries(entries_frame(entries))) == events_of(entries)


async def test_old_days_move_to_the_archive_and_reads_and_rebuild_go_on(
    client_without_fold, redis, settings, workspace
):
    archive = Archive(settings.archive_root)
    now = time.time_ns() // 1_000_000
    await append_days(redis, settings, workspace, 10, end_ms=now)
    ks = keyspace(settings, workspace)
    stream = log_keys.log(settings.key_prefix, ks.partition)
    before = [(eid.decode(), f) for eid, f in await redis.xrange(stream)]
    await fold_all(redis, settings, workspace, archive)
    done = await archive_partition(redis, settings.key_prefix, ks.partition, archive, after_days=4)
    assert done.days == 5 and done.entries == 10  # days at least 4 before the last day (the log head's)
    left = [(eid.decode(), f) for eid, f in await redis.xrange(stream)]
    assert len(left) == 10
    archived = list(archive.entries(ks.partition))
    assert [eid for eid, _ in archived] + [eid for eid, _ in left] == [eid for eid, _ in before]
    assert events_of(archived) == events_of(before[: len(archived)])
    # the API still answers about archived events
    h = {"Authorization": f"Bearer {workspace.read_key}"}
    listed = (
        await client_without_fold.get("/v1/events", params={"limit": 100, "sort_dir": "asc"}, headers=h)
    ).json()
    oldest = listed["events"][0]
    assert len(listed["events"]) == min(100, listed["pagination"]["total_items"])
    assert (await client_without_fold.get(f"/v1/events/{oldest['_id']}", headers=h)).json()["event"][
        "_id"
    ] == oldest["_id"]
    # a rebuild replays archive + stream and reaches the live digest
    live, rebuilt, n = await rebuild_and_compare(redis, settings.key_prefix, ks.partition, archive=archive)
    assert n == len(before) and live == rebuilt
    # running it again changes nothing
    again = await archive_partition(redis, settings.key_prefix, ks.partition, archive, after_days=4)
    assert again.days == 0 and len(await redis.xrange(stream)) == 10


async def test_a_run_killed_after_writing_a_day_is_completed_by_the_next(redis, settings, workspace):
    archive = Archive(settings.archive_root)
    now = time.time_ns() // 1_000_000
    await append_days(redis, settings, workspace, 6, end_ms=now)
    ks = keyspace(settings, workspace)
    stream = log_keys.log(settings.key_prefix, ks.partition)
    before = [(eid.decode(), f) for eid, f in await redis.xrange(stream)]
    await fold_all(redis, settings, workspace, archive)
    # killed between writing the first day and trimming it; and a torn temporary file of the next day
    first_day = int(before[0][0].split("-")[0]) // DAY_MS
    archive.write_day(ks.partition, first_day, before[:2])
    (archive.path(ks.partition, first_day + 1).parent / ".torn.parquet.tmp").write_bytes(b"PAR1 torn")
    await archive_partition(redis, settings.key_prefix, ks.partition, archive, after_days=2)
    after = list(archive.entries(ks.partition)) + [(eid.decode(), f) for eid, f in await redis.xrange(stream)]
    assert [eid for eid, _ in after] == [eid for eid, _ in before]  # each entry once, in order
    assert events_of(after) == events_of(before)
