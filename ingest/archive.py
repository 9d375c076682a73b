"""The log's cold tier: log entries past the archive horizon, one Parquet file per partition and day.

Layout: `<archive dir>/p<partition>/<YYYY-MM-DD>.parquet` (polars, zstd), one row per event, and beside it
`<YYYY-MM-DD>.json`, the manifest it was verified against (rows, entries, first and last entry id, sha256 of the
events and of the file). A file is written to a temporary name, fsynced, renamed, read back and checked before
the manifest is written; only then may the entries leave the stream. The schema (`COLUMNS`) is the documented
export schema too: a Segment-shaped event, its Streamfold id and its place in the log; JSON-valued fields
(properties, traits, context, campaign) as JSON text. Entries read back from it are the entries that were
archived (same ids, same events), so a rebuild replays archive + stream and reaches the live state.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import polars as pl

from .log import F_CONTROL, F_DATA, F_VERSION, F_WORKSPACE, entry_events, entry_fields
from .schema import Event, encode_events

DAY_MS = 86_400_000
_TS = pl.Datetime("ms", "UTC")
# column → polars type; the order is the files' and the export's
COLUMNS: dict[str, Any] = {
    "entry_id": pl.String,  # the log entry holding the event
    "entry_index": pl.Int32,  # its index in that entry
    "workspace": pl.String,
    "control": pl.Boolean,  # an entry of settings (not an event of the workspace's traffic)
    "id": pl.String,  # evt_<ULID>
    "type": pl.String,  # track | page | screen | identify | group | alias | crm_contact | crm_company | settings
    "event": pl.String,
    "message_id": pl.String,
    "timestamp": _TS,
    "received_at": _TS,
    "sent_at": _TS,
    "original_timestamp": _TS,
    "anonymous_id": pl.String,
    "user_id": pl.String,
    "group_id": pl.String,
    "previous_id": pl.String,
    "email": pl.String,
    "source": pl.String,
    "url": pl.String,
    "path": pl.String,
    "title": pl.String,
    "referrer": pl.String,
    "search": pl.String,
    "domain": pl.String,
    "campaign": pl.String,  # JSON
    "properties": pl.String,  # JSON
    "traits": pl.String,  # JSON
    "context": pl.String,  # JSON
    "ip": pl.String,
    "user_agent": pl.String,
    "library_name": pl.String,
    "library_version": pl.String,
    "name": pl.String,
    "category": pl.String,
}
_JSON_FIELDS = ("campaign", "properties", "traits", "context")
_TIME_FIELDS = ("timestamp", "received_at", "sent_at", "original_timestamp")
_EVENT_FIELDS = [
    c for c in COLUMNS if c not in ("entry_id", "entry_index", "workspace", "control", "id", "type")
]
_json = msgspec.json.Encoder()
_from_json = msgspec.json.Decoder()


class ArchiveCorrupt(ValueError):
    """An archive file does not match its manifest, or cannot be read."""


def day_name(day: int) -> str:
    return datetime.fromtimestamp(day * DAY_MS / 1000, UTC).strftime("%Y-%m-%d")


def _day_of_name(name: str) -> int:
    return int(datetime.strptime(name, "%Y-%m-%d").replace(tzinfo=UTC).timestamp() * 1000) // DAY_MS


def entry_ms(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


def _entry_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


# ---------------------------------------------------------------- entries ↔ frames


def entries_frame(entries: Iterable[tuple[str, dict[bytes, bytes]]]) -> pl.DataFrame:
    """One row per event of `entries` (entry id, fields), in log order."""
    cols: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    for entry_id, fields in entries:
        ws = fields[F_WORKSPACE].decode()
        control = bool(fields.get(F_CONTROL))
        for i, e in enumerate(entry_events(fields.get(F_VERSION), fields[F_DATA])):
            cols["entry_id"].append(entry_id)
            cols["entry_index"].append(i)
            cols["workspace"].append(ws)
            cols["control"].append(control)
            cols["id"].append(e.id)
            cols["type"].append(e.kind)
            for f in _EVENT_FIELDS:
                v = getattr(e, f)
                cols[f].append(_json.encode(v).decode() if f in _JSON_FIELDS else v)
    return pl.DataFrame(
        {
            c: pl.Series(c, v, dtype=pl.Int64 if c in _TIME_FIELDS else t)
            for (c, t), v in zip(COLUMNS.items(), cols.values(), strict=True)
        }
    ).with_columns(pl.col(c).cast(_TS) for c in _TIME_FIELDS)


def events_of_rows(rows: Iterable[dict[str, Any]]) -> Iterator[tuple[str, str, bool, int, Event]]:
    """(entry id, workspace, control, index, event) of archive rows."""
    for r in rows:
        values = {f: r[f] for f in _EVENT_FIELDS}
        for f in _TIME_FIELDS:
            t = values[f]
            values[f] = (
                None if t is None else int(t.timestamp() * 1000) if isinstance(t, datetime) else int(t)
            )
        for f in _JSON_FIELDS:
            values[f] = _from_json.decode(values[f]) if values[f] is not None else {}
        yield (
            r["entry_id"],
            r["workspace"],
            bool(r["control"]),
            int(r["entry_index"]),
            Event(id=r["id"], kind=r["type"], **values),
        )


def frame_entries(frame: pl.DataFrame) -> list[tuple[str, dict[bytes, bytes]]]:
    """The log entries of archive rows, as they were appended (same ids, same events, in log order)."""
    grouped: OrderedDict[str, tuple[str, bool, list[Event]]] = OrderedDict()
    rows = frame.with_columns(pl.col(c).dt.epoch("ms") for c in _TIME_FIELDS).iter_rows(named=True)
    for entry_id, ws, control, _, event in events_of_rows(rows):
        grouped.setdefault(entry_id, (ws, control, []))[2].append(event)
    out = []
    for entry_id in sorted(grouped, key=_entry_key):
        ws, control, events = grouped[entry_id]
        fields = entry_fields(ws, events)
        if control:
            fields[F_CONTROL] = b"1"
        out.append((entry_id, fields))
    return out


def events_digest(entries: Iterable[tuple[str, dict[bytes, bytes]]]) -> str:
    """sha256 over the entries' ids, workspaces and events (encoded alike whatever their compression)."""
    h = hashlib.sha256()
    for entry_id, fields in entries:
        h.update(
            entry_id.encode()
            + b"\x00"
            + fields[F_WORKSPACE]
            + b"\x00"
            + (b"c" if fields.get(F_CONTROL) else b"")
        )
        h.update(encode_events(entry_events(fields.get(F_VERSION), fields[F_DATA])))
    return h.hexdigest()


# ---------------------------------------------------------------- files


class Archive:
    """The archive directory of one deployment (shared by every fold worker and API replica)."""

    def __init__(self, root: str | Path, *, cache_days: int = 4) -> None:
        self.root = Path(root)
        self._cache: OrderedDict[tuple[int, int], dict[tuple[str, int], Event]] = OrderedDict()
        self._cache_days = cache_days

    def _dir(self, partition: int) -> Path:
        return self.root / f"p{partition}"

    def path(self, partition: int, day: int) -> Path:
        return self._dir(partition) / f"{day_name(day)}.parquet"

    def manifest_path(self, partition: int, day: int) -> Path:
        return self._dir(partition) / f"{day_name(day)}.json"

    def days(self, partition: int) -> list[int]:
        """The days of the partition archived and verified (their manifest exists), oldest first."""
        d = self._dir(partition)
        if not d.is_dir():
            return []
        return sorted(_day_of_name(p.stem) for p in d.glob("*.json"))

    def manifest(self, partition: int, day: int) -> dict[str, Any] | None:
        p = self.manifest_path(partition, day)
        return json.loads(p.read_text()) if p.exists() else None

    def write_day(
        self, partition: int, day: int, entries: list[tuple[str, dict[bytes, bytes]]]
    ) -> dict[str, Any]:
        """Write one partition-day of entries, fsync it, read it back and verify it, then write its manifest."""
        d = self._dir(partition)
        d.mkdir(parents=True, exist_ok=True)
        path, tmp = self.path(partition, day), self._dir(partition) / f".{day_name(day)}.parquet.tmp"
        frame = entries_frame(entries)
        frame.write_parquet(tmp, compression="zstd")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(d)
        expected = events_digest(entries)
        back = frame_entries(pl.read_parquet(path))
        if len(back) != len(entries) or events_digest(back) != expected:
            path.unlink(missing_ok=True)
            raise ArchiveCorrupt(f"{path}: what was read back differs from what was written")
        manifest = {
            "partition": partition,
            "day": day_name(day),
            "rows": frame.height,
            "entries": len(entries),
            "first_entry": entries[0][0],
            "last_entry": entries[-1][0],
            "events_sha256": expected,
            "file_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }
        tmp_m = d / f".{day_name(day)}.json.tmp"
        tmp_m.write_text(json.dumps(manifest, indent=2))
        with open(tmp_m, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_m, self.manifest_path(partition, day))
        _fsync_dir(d)
        return manifest

    def read_day(self, partition: int, day: int) -> list[tuple[str, dict[bytes, bytes]]]:
        """The entries of one archived day, checked against its manifest."""
        manifest = self.manifest(partition, day)
        path = self.path(partition, day)
        if manifest is None or not path.exists():
            raise ArchiveCorrupt(f"{path}: not archived")
        if hashlib.sha256(path.read_bytes()).hexdigest() != manifest["file_sha256"]:
            raise ArchiveCorrupt(f"{path}: its sha256 differs from its manifest's")
        return frame_entries(pl.read_parquet(path))

    def entries(self, partition: int, until: str | None = None) -> Iterator[tuple[str, dict[bytes, bytes]]]:
        """Every archived entry of the partition in log order (up to `until`, inclusive)."""
        stop = _entry_key(until) if until is not None else None
        for day in self.days(partition):
            for entry_id, fields in self.read_day(partition, day):
                if stop is not None and _entry_key(entry_id) > stop:
                    return
                yield entry_id, fields

    def last_entry(self, partition: int) -> str | None:
        days = self.days(partition)
        if not days:
            return None
        manifest = self.manifest(partition, days[-1])
        return manifest["last_entry"] if manifest else None

    def events_at(self, partition: int, positions: list[tuple[str, int]]) -> list[Event | None]:
        """Events by log position from the archive (None where not archived); a few days are kept in memory."""
        out: list[Event | None] = []
        for entry_id, index in positions:
            day = entry_ms(entry_id) // DAY_MS
            found = self._day_events(partition, day)
            out.append(found.get((entry_id, index)) if found is not None else None)
        return out

    def _day_events(self, partition: int, day: int) -> dict[tuple[str, int], Event] | None:
        key = (partition, day)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        path = self.path(partition, day)
        if not path.exists():
            return None
        frame = pl.read_parquet(path).with_columns(pl.col(c).dt.epoch("ms") for c in _TIME_FIELDS)
        events = {(eid, idx): e for eid, _, _, idx, e in events_of_rows(frame.iter_rows(named=True))}
        self._cache[key] = events
        while len(self._cache) > self._cache_days:
            self._cache.popitem(last=False)
        return events


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
