"""Chunked sorted sets: a sorted set kept as small keys of at most CHUNK_MAX members, so every key stays in the
server's compact listpack encoding (a few bytes per member, against ~80 for a skiplist) however big the set.

A set is one key while small; past CHUNK_MAX it splits like a B-tree leaf, and a directory ZSET finds the chunk
of a member by its key (`keys.ChunkedSet`). Members are bytes starting with a KEY_LEN-byte key (`records.py`);
all scores are 0, so order is the members' bytes and ranges are BYLEX. The fold adds members in log order
(`queue_adds`, one `chunk_add-1.lua` call in the batch's transaction), so a set's layout depends on the log only,
not on where batches end: a rebuild gives the same keys. Reads walk the chunks server-side (`read_ranges`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from ..scripts import Script
from ..updates import Updates
from .keys import ChunkedSet
from .records import KEY_LEN

CHUNK_MAX = (
    120  # below zset-max-listpack-entries (128 by default): a chunk never leaves the listpack encoding
)
CHUNK_ADD = Script(__package__, "chunk_add-1.lua")
CHUNK_RANGE = Script(__package__, "chunk_range-1.lua")


def queue_adds(u: Updates, adds: Iterable[tuple[ChunkedSet, list[bytes]]]) -> None:
    """Add members to chunked sets, each set's in the order given (log order), in the batch's transaction: one
    script call (`Updates.scripts`)."""
    argv: list[Any] = [CHUNK_MAX, KEY_LEN]
    route = None
    for s, members in adds:
        if members:
            argv += (s.first, s.directory, s.stem, s.tail, len(members), *members)
            route = route or s.first
    if route is not None:
        u.scripts.append((CHUNK_ADD, [route], argv))


@dataclass(frozen=True, slots=True)
class Range:
    """Members of `set` between BYLEX bounds (b'-', b'+', b'[' + x, b'(' + x), ascending, or descending from
    `hi` when `rev`; at most `count` (−1: all)."""

    set: ChunkedSet
    lo: bytes
    hi: bytes
    rev: bool = False
    count: int = -1


async def read_ranges(redis: Redis, ranges: list[Range]) -> list[list[bytes]]:
    """The members of each range, in one script call."""
    if not ranges:
        return []
    argv: list[Any] = [KEY_LEN]
    for r in ranges:
        argv += (r.set.first, r.set.directory, r.set.stem, r.set.tail, r.lo, r.hi, int(r.rev), r.count)
    return await CHUNK_RANGE.call_argv(redis, [ranges[0].set.first], argv)
