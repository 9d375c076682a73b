"""The log: one Redis stream per partition, one entry per accepted request (all its events, msgpack-encoded).

An entry's fields: `w` workspace id, `v` format version, `d` the encoded `list[Event]` — as is (`v` = 1), or
zstd-compressed (`v` = 2) when that makes it at least a tenth smaller (a request of many events shrinks about
4×; a single browser event barely, and stays as is). An event's log position is (entry id, index in entry).
`entry_events` and `entry_event_at` read entries back, whatever their version.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import zstandard
from redis.asyncio import Redis

from . import keys
from .ids import event_id, ulid
from .schema import DELETION, SETTINGS, Event, decode_event_at, decode_events, encode_events
from .settings import Settings

PLAIN, ZSTD = b"1", b"2"  # versions of an entry's data
F_WORKSPACE, F_VERSION, F_DATA = b"w", b"v", b"d"
F_CONTROL = b"c"  # present (b"1") on an entry of settings: the fold ends a transaction at it
COMPRESS_FROM = 256  # bytes of encoded events; smaller entries are not worth a frame header
_compressor = zstandard.ZstdCompressor(level=3)
_decompressor = zstandard.ZstdDecompressor()


def entry_fields(workspace_id: str, events: list[Event]) -> dict[bytes, bytes]:
    data, version = encode_events(events), PLAIN
    if len(data) >= COMPRESS_FROM:
        packed = _compressor.compress(data)
        if len(packed) * 10 <= len(data) * 9:
            data, version = packed, ZSTD
    return {F_WORKSPACE: workspace_id.encode(), F_VERSION: version, F_DATA: data}


def control_entry_fields(workspace_id: str, now_ms: int, kind: str, **properties: Any) -> dict[bytes, bytes]:
    """The fields of a control entry (a change of settings, a deletion): one event of `kind`, marked as
    control, which the fold applies in a transaction of its own."""
    u = ulid(now_ms)
    change = Event(
        id=event_id(u), kind=kind, event=kind, message_id=f"{kind}:{u}", timestamp=now_ms, received_at=now_ms,
        properties=dict(properties),
    )  # fmt: skip
    return {**entry_fields(workspace_id, [change]), F_CONTROL: b"1"}


def encoded_size(fields: dict[bytes, bytes]) -> int:
    """Bytes of an entry's encoded events before compression, read from the zstd frame header (nothing is
    decompressed): what a fold transaction holding the entry costs, whatever its version."""
    data = fields.get(F_DATA, b"")
    if fields.get(F_VERSION) == ZSTD:
        try:
            size = zstandard.frame_content_size(data)
        except zstandard.ZstdError:
            return len(data)  # unreadable: the fold dead-letters it
        if size >= 0:
            return size
    return len(data)


def _plain(version: bytes | None, data: bytes) -> bytes:
    if version == PLAIN:
        return data
    if version == ZSTD:
        return _decompressor.decompress(data)
    raise ValueError(f"unknown log entry version {version!r}")


def entry_events(version: bytes | None, data: bytes) -> list[Event]:
    """Every event of an entry's data (`F_DATA`) written in `version` (`F_VERSION`)."""
    return decode_events(_plain(version, data))


def entry_event_at(version: bytes | None, data: bytes, index: int) -> Event:
    """The `index`-th event of an entry's data (the others are skipped, not built)."""
    return decode_event_at(_plain(version, data), index)


class EventLog:
    """Appends requests to the partitioned log. One XADD (one round trip) per request."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self._in_flight: set[asyncio.Task[None]] = set()
        self._waiting: list[tuple[str, dict[bytes, bytes], asyncio.Future[str]]] = []

    def partition(self, workspace_id: str) -> int:
        return keys.partition_of(workspace_id, self.settings.partitions)

    def stream(self, workspace_id: str) -> str:
        return keys.log(self.settings.key_prefix, self.partition(workspace_id))

    async def append_settings(self, workspace_id: str, **settings: int | None) -> str:
        """Append a change of the workspace's fold settings (e.g. `retention_days`; None: back to the default):
        an entry of the log like any other, so the fold applies it in order and a rebuild the same way."""
        return await self._append_control(workspace_id, SETTINGS, **settings)

    async def append_deletion(self, workspace_id: str, **deletion: Any) -> str:
        """Append the request to forget a person (`deletion_id`, `contact_id`, `suppress`): the fold forgets
        them at this point of the log."""
        return await self._append_control(workspace_id, DELETION, **deletion)

    async def _append_control(self, workspace_id: str, kind: str, **properties: Any) -> str:
        fields = control_entry_fields(workspace_id, time.time_ns() // 1_000_000, kind, **properties)
        reply = await self.redis.xadd(self.stream(workspace_id), fields)  # type: ignore[arg-type]
        return reply.decode() if isinstance(reply, bytes) else str(reply)

    async def append(self, workspace_id: str, events: list[Event]) -> str:
        """Append and return the entry id once Redis acknowledged it.

        Appends made in the same event-loop turn (concurrent requests: browsers send one event each) go out
        as one pipeline, one round trip; each caller still waits for its own entry's acknowledgement."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[str] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._send_waiting)
        self._waiting.append((self.stream(workspace_id), entry_fields(workspace_id, events), done))
        return await done

    def _send_waiting(self) -> None:
        batch, self._waiting = self._waiting, []
        task = asyncio.ensure_future(self._xadd_all(batch))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _xadd_all(self, batch: list[tuple[str, dict[bytes, bytes], asyncio.Future[str]]]) -> None:
        try:
            if len(batch) == 1:
                replies: list[Any] = [await self.redis.xadd(batch[0][0], batch[0][1])]  # type: ignore[arg-type]
            else:
                pipe = self.redis.pipeline(transaction=False)
                for stream, fields, _ in batch:
                    pipe.xadd(stream, fields)  # type: ignore[arg-type]
                replies = await pipe.execute(raise_on_error=False)
        except BaseException as exc:
            for _, _, done in batch:
                if not done.done():
                    done.set_exception(
                        exc if isinstance(exc, Exception) else ConnectionError("append cancelled")
                    )
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, done), reply in zip(batch, replies, strict=True):
            if done.done():
                continue
            if isinstance(reply, Exception):
                done.set_exception(reply)
            else:
                done.set_result(reply.decode() if isinstance(reply, bytes) else str(reply))
