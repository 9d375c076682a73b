"""Redis clients for every process: redis-py asyncio, with commands packed by hiredis in C.

redis-py's asyncio connection packs each command in Python, which dominated the fold's profile (every
ZADD member and HSET field goes through it); hiredis's `pack_command` does the same bytes in C.
`STORE_UNAVAILABLE` are the Redis failures that mean "not now, retry" (answered 503 by every HTTP layer).
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis.asyncio import Connection, Redis
from redis.exceptions import ConnectionError, OutOfMemoryError, TimeoutError

# Redis cannot take a command now, and may later: it is down or restarting (refused, reset, timed out, still
# loading its append-only file: BusyLoadingError is a ConnectionError), or full (`maxmemory` reached under
# `noeviction`: it refuses writes with OOM, and refuses a whole MULTI/EXEC that holds one). What was refused was
# not stored; a request refused mid-way may have been, and its re-sending is deduplicated by messageId.
STORE_UNAVAILABLE: tuple[type[Exception], ...] = (ConnectionError, TimeoutError, OutOfMemoryError)


class HiredisPackingConnection(Connection):
    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0]
        if isinstance(first, str) and " " in first or isinstance(first, bytes) and b" " in first:
            args = (*first.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:  # an argument type hiredis does not pack (memoryview, …): redis-py's way
            return super().pack_command(*args)


def connect_redis(url: str, **kwargs: Any) -> Redis:
    """A client for `url`; plain TCP connections pack with hiredis, others (TLS, unix socket) as redis-py does."""
    if url.startswith("redis://"):
        kwargs.setdefault("connection_class", HiredisPackingConnection)
    return Redis.from_url(url, **kwargs)
