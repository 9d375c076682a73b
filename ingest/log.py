"""The log: one Redis stream per partition, one entry per accepted request (all its events, msgpack-encoded).

An entry's fields: `w` workspace id, `v` format version, `d` the encoded `list[Event]`.
An event's log position is (entry id, index in entry).
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from . import keys
from .errors import PoisonEntry
from .schema import Event, decode_event_at, decode_events, encode_events
from .settings import Settings

FORMAT_VERSION = b"1"
F_WORKSPACE, F_VERSION, F_DATA = b"w", b"v", b"d"

# The data field (F_DATA) of each entry id in ARGV (nil when the entry is gone), in ARGV's order.
_READ_ENTRIES = """
local out = {}
for i, id in ipairs(ARGV) do
  local found = false
  local r = redis.call('XRANGE', KEYS[1], id, id, 'COUNT', 1)
  if r[1] then
    local f = r[1][2]
    for j = 1, #f, 2 do if f[j] == 'd' then found = f[j + 1]; break end end
  end
  out[i] = found
end
return out
"""


def entry_fields(workspace_id: str, events: list[Event]) -> dict[bytes, bytes]:
    return {F_WORKSPACE: workspace_id.encode(), F_VERSION: FORMAT_VERSION, F_DATA: encode_events(events)}


def decode_entry(fields: dict[bytes, bytes]) -> tuple[str, list[Event]]:
    """(workspace id, events) of a log entry; `PoisonEntry` when it cannot be decoded."""
    try:
        if fields.get(F_VERSION) != FORMAT_VERSION:
            raise PoisonEntry(f"unknown log entry version {fields.get(F_VERSION)!r}")
        return fields[F_WORKSPACE].decode(), decode_events(fields[F_DATA])
    except PoisonEntry:
        raise
    except Exception as exc:  # any decode failure makes the entry poison, with the reason kept
        raise PoisonEntry(f"cannot decode log entry: {exc}") from exc


class EventLog:
    """Appends requests to the partitioned log. One XADD (one round trip) per request."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self._in_flight: set[asyncio.Task[None]] = set()
        self._waiting: list[tuple[str, dict[bytes, bytes], asyncio.Future[str]]] = []
        self._read_entries: AsyncScript | None = None

    def partition(self, workspace_id: str) -> int:
        return keys.partition_of(workspace_id, self.settings.partitions)

    def stream(self, workspace_id: str) -> str:
        return keys.log(self.settings.key_prefix, self.partition(workspace_id))

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

    async def read_events_at(self, partition: int, positions: list[tuple[str, int]]) -> list[Event | None]:
        """Fetch events by log position: one script call reads every distinct entry's data server-side, so a
        page costs one request and one reply however many entries its events come from."""
        stream = keys.log(self.settings.key_prefix, partition)
        entry_ids = list(dict.fromkeys(eid for eid, _ in positions))
        if not entry_ids:
            return []
        if self._read_entries is None:
            self._read_entries = self.redis.register_script(_READ_ENTRIES)
        replies: list[Any] = await self._read_entries(keys=[stream], args=entry_ids)
        data = {eid: raw for eid, raw in zip(entry_ids, replies, strict=True) if raw is not None}
        out: list[Event | None] = []
        for eid, idx in positions:
            raw = data.get(eid)
            out.append(decode_event_at(raw, idx) if raw is not None else None)
        return out
