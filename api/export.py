"""Export: a workspace's events from the archive and the live log, as Parquet or JSON lines.

Rows follow the archive's documented schema (`ingest.archive.COLUMNS`: the Segment-shaped event, its Streamfold
id and log position) plus `contact_id` (identity's link, where the event has one). Events are read a log day at
a time as frames (polars), so a large export runs at the speed of reading and writing, not of a Python loop per
event; resends are left out as the fold leaves them out (the same messageId within the dedupe window of a kept
one). Settings entries are not events and are left out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import polars as pl
from redis.asyncio import Redis

from ingest import keys as log_keys
from ingest.archive import COLUMNS, Archive, entries_frame
from ingest.settings import Settings
from projections.identity import read_contact_ids_of_events
from projections.keyspace import Keyspace
from projections.located import DAY_MS

CHUNK = 2000  # log entries read from the stream at a time
_JSON_COLUMNS = ("campaign", "properties", "traits", "context")
_TIMES = ("timestamp", "received_at", "sent_at", "original_timestamp")
_decode = msgspec.json.Decoder()
_encode = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class ExportQuery:
    workspace: str
    since_ms: int | None = None  # event timestamp, inclusive
    until_ms: int | None = None  # inclusive


class _Dedupe:
    """The fold's messageId rule over frames in log order: a row is a resend when a kept row of the same
    messageId lies within the window's log days before it."""

    def __init__(self, window_days: int) -> None:
        self.window = window_days
        self.kept: dict[int, pl.Series] = {}  # log day → messageIds kept that day

    def __call__(self, frame: pl.DataFrame) -> pl.DataFrame:
        out = []
        for (day,), part in frame.group_by(["log_day"], maintain_order=True):
            part = part.unique(subset=["message_id"], keep="first", maintain_order=True)
            recent = [s for d, s in self.kept.items() if d >= day - self.window]  # type: ignore[operator]
            if recent:
                part = part.filter(~pl.col("message_id").is_in(pl.concat(recent).implode()))
            self.kept[day] = part["message_id"]  # type: ignore[index]
            for d in [d for d in self.kept if d < day - self.window]:  # type: ignore[operator]
                del self.kept[d]
            out.append(part)
        return pl.concat(out) if out else frame


async def export_frames(
    redis: Redis, settings: Settings, archive: Archive, q: ExportQuery
) -> AsyncIterator[pl.DataFrame]:
    """The workspace's events, a frame at a time, in log order, with `contact_id`."""
    partition = log_keys.partition_of(q.workspace, settings.partitions)
    ks = Keyspace(settings.key_prefix, partition)
    dedupe = _Dedupe(settings.dedupe_window_days)

    async def finish(frame: pl.DataFrame) -> pl.DataFrame | None:
        frame = frame.filter((pl.col("workspace") == q.workspace) & ~pl.col("control"))
        frame = frame.with_columns(
            (pl.col("entry_id").str.split("-").list.first().cast(pl.Int64) // DAY_MS).alias("log_day")
        )
        frame = dedupe(frame).drop("log_day")
        if q.since_ms is not None:
            frame = frame.filter(pl.col("timestamp").dt.epoch("ms") >= q.since_ms)
        if q.until_ms is not None:
            frame = frame.filter(pl.col("timestamp").dt.epoch("ms") <= q.until_ms)
        if frame.is_empty():
            return None
        contacts = await read_contact_ids_of_events(redis, ks, q.workspace, frame["id"].to_list())
        return frame.with_columns(pl.Series("contact_id", [contacts.get(i) for i in frame["id"]], pl.String))

    for day in archive.days(partition):
        found = await finish(pl.read_parquet(archive.path(partition, day)))
        if found is not None:
            yield found
    stream = log_keys.log(settings.key_prefix, partition)
    last = archive.last_entry(partition)
    start = f"({last}" if last else "-"
    while True:
        chunk = await redis.xrange(stream, start, "+", count=CHUNK)
        if not chunk:
            return
        readable = [(eid.decode(), f) for eid, f in chunk if f.get(b"w") == q.workspace.encode()]
        if readable:
            found = await finish(entries_frame(readable))
            if found is not None:
                yield found
        if len(chunk) < CHUNK:
            return
        start = f"({chunk[-1][0].decode()}"


def json_lines(frame: pl.DataFrame) -> bytes:
    """One JSON object a row: the schema's columns, times in ISO 8601 UTC, JSON fields as objects."""
    out = []
    times = {c: frame[c].dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ") for c in _TIMES}
    rows = frame.drop(list(_TIMES)).to_dicts()
    for i, row in enumerate(rows):
        for c in _JSON_COLUMNS:
            row[c] = _decode.decode(row[c]) if row[c] is not None else {}
        for c in _TIMES:
            row[c] = times[c][i]
        out.append(_encode.encode({k: row[k] for k in (*COLUMNS, "contact_id") if k in row}))
    return b"\n".join(out) + b"\n" if out else b""


async def export_to_file(
    redis: Redis,
    settings: Settings,
    archive: Archive,
    q: ExportQuery,
    out: Path,
    fmt: str,
    on_rows: Callable[[int], None] | None = None,
) -> int:
    """Write the export to `out` (`parquet` or `jsonl`); returns the number of events."""
    n = 0
    tmp = out.with_name(f".{out.name}.tmp")
    if fmt == "parquet":
        import pyarrow.parquet as pq

        writer: Any = None
        async for frame in export_frames(redis, settings, archive, q):
            table = frame.to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
            writer.write_table(table)
            n += frame.height
            if on_rows:
                on_rows(frame.height)
        if writer is None:
            _empty().write_parquet(tmp, compression="zstd")
        else:
            writer.close()
    else:
        with open(tmp, "wb") as f:
            async for frame in export_frames(redis, settings, archive, q):
                f.write(json_lines(frame))
                n += frame.height
                if on_rows:
                    on_rows(frame.height)
    tmp.replace(out)
    return n


def _empty() -> pl.DataFrame:
    schema = {**COLUMNS, "contact_id": pl.String}
    return pl.DataFrame(schema=schema)
