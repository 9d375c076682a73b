"""Reading a request body before anything decodes it: as it arrives, bounded in size and in time.

Every write path reads its body here (SDK ingest, beacon, CRM sync, email webhooks), after the key it could
check from the headers was checked, so an unauthenticated or oversized body is never held in memory whole, and a
stalled one never holds its connection for long.
"""

from __future__ import annotations

import asyncio

from starlette.types import Receive

from .errors import InvalidRequest, PayloadTooLarge, RequestTimeout


def over_limit(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"request body is over the {limit}-byte limit per request (batch)",
        details={"limit": limit, "field": "body"},
    )


class _Reading:
    __slots__ = ("deadline", "expired")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False


class BodyReader:
    """Reads request bodies of at most `limit` bytes as sent (compressed or not) that arrive within `timeout`
    seconds. One timer per event loop sweeps the bodies still arriving, instead of one timer per request:
    this runs on every ingest request, and a timer each costs more than the rest of the reading."""

    def __init__(self, limit: int, timeout: float) -> None:
        self.limit = limit
        self.timeout = timeout
        self.period = min(1.0, timeout / 10)  # a body is cut off at most this late
        self._reading: dict[asyncio.Task[object], _Reading] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    async def read(self, receive: Receive, content_length: str | None) -> bytes:
        """The body of the request `receive` belongs to, chunk by chunk as the client sends it.

        413 as soon as it passes the limit (before a byte is read when Content-Length says so), 408 when it has
        not all arrived in time. When this raises, the answer should close the connection: the rest of the body
        may still be coming."""
        if content_length is not None and content_length.isdigit() and int(content_length) > self.limit:
            raise over_limit(self.limit)
        task = asyncio.current_task()
        assert task is not None
        loop = task.get_loop()
        cancelling = task.cancelling()
        reading = self._reading[task] = _Reading(loop.time() + self.timeout)
        if self._sweeper is None:
            self._sweeper = loop.call_later(self.period, self._sweep, loop)
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise InvalidRequest(
                        "the client went away before sending the whole body", details={"field": "body"}
                    )
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.limit:
                    raise over_limit(self.limit)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        except asyncio.CancelledError:
            if reading.expired and task.uncancel() <= cancelling:
                raise RequestTimeout(
                    f"the request body did not arrive within {self.timeout:g} seconds",
                    details={"field": "body"},
                ) from None
            raise
        finally:
            del self._reading[task]

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for task, reading in self._reading.items():
            if reading.deadline <= now and not reading.expired:
                reading.expired = True
                task.cancel()
        self._sweeper = loop.call_later(self.period, self._sweep, loop) if self._reading else None
