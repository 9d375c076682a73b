"""The log: one Redis stream per partition, one entry per accepted request (all its events, msgpack-encoded).

An entry's fields: `w` workspace id, `v` format version, `d` the encoded `list[Event]`.
An event's log position is (entry id, index in entry). The fold reads entries back (`projections/fold`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

from . import keys
from .schema import Event, encode_events
from .settings import Settings

FORMAT_VERSION = b"1"
F_WORKSPACE, F_VERSION, F_DATA = b"w", b"v", b"d"


def entry_fields(workspace_id: str, events: list[Event]) -> dict[bytes, bytes]:
    return {F_WORKSPACE: workspace_id.encode(), F_VERSION: FORMAT_VERSION, F_DATA: encode_events(events)}


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
