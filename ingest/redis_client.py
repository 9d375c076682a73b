"""Redis clients for every process: redis-py asyncio, with commands packed by hiredis in C.

redis-py's asyncio connection packs each command in Python, which dominated the fold's profile (every
ZADD member and HSET field goes through it); hiredis's `pack_command` does the same bytes in C.
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis.asyncio import Connection, Redis


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
