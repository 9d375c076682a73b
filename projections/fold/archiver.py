"""The archiver: moves log entries older than the archive horizon from the stream to the archive's Parquet files.

Per partition, whole log days only: a day is archived once the fold's checkpoint and the log's head are both at
least `archive_after_days` days past it. Its entries are written to the day's file, fsynced, read back and
verified (`ingest.archive.Archive.write_day`), and only then trimmed from the stream (`XTRIM MINID`). Killed at
any point, the next run completes the day: a day whose manifest exists is only trimmed. The projections keep
their events: reads of an archived event go to the archive (`projections.events.read_events_at`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from ingest import keys as log_keys
from ingest.archive import Archive
from ingest.log import entry_events

from ..keyspace import Keyspace
from ..located import DAY_MS, stream_id
from .fold import read_checkpoint


@dataclass(slots=True)
class Archived:
    """What one run did to one partition."""

    partition: int
    days: int = 0
    entries: int = 0
    events: int = 0


async def archive_partition(
    redis: Redis,
    prefix: str,
    partition: int,
    archive: Archive,
    after_days: int,
    *,
    on_day: Callable[[int, int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> Archived:
    """Archive and trim every whole log day of the partition older than `after_days` days before both the
    checkpoint and the head. `on_day(entries, events)` reports progress; a set `stop` ends the run between
    days."""
    done = Archived(partition)
    stream = log_keys.log(prefix, partition)
    ckpt = await read_checkpoint(redis, Keyspace(prefix, partition))
    head = await redis.xrevrange(stream, count=1)
    if ckpt is None or not head:
        return done
    limit = min(stream_id(ckpt)[0], stream_id(head[0][0])[0]) // DAY_MS - after_days  # days before it go
    while stop is None or not stop.is_set():
        first = await redis.xrange(stream, count=1)
        if not first:
            return done
        day = stream_id(first[0][0])[0] // DAY_MS
        if day >= limit:
            return done
        end = f"{(day + 1) * DAY_MS - 1}-18446744073709551615"
        if archive.manifest(partition, day) is None:
            entries = [(eid.decode(), fields) for eid, fields in await redis.xrange(stream, "-", end)]
            readable = [(eid, f) for eid, f in entries if _readable(f)]  # poison ones are in the dead letters
            if readable:
                await asyncio.to_thread(archive.write_day, partition, day, readable)
            done.days += 1
            done.entries += len(readable)
            n = sum(len(entry_events(f.get(b"v"), f[b"d"])) for _, f in readable)
            done.events += n
            if on_day is not None:
                on_day(len(readable), n)
        await redis.xtrim(stream, minid=f"{(day + 1) * DAY_MS}-0", approximate=False)
    return done


def _readable(fields: dict[bytes, bytes]) -> bool:
    try:
        entry_events(fields.get(b"v"), fields[b"d"])
        fields[b"w"].decode()
    except Exception:
        return False
    return True
