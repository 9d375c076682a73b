"""Chunked sorted sets: a sorted set kept as small keys of at most CHUNK_MAX members, so every key stays in the
server's compact listpack encoding (a few bytes per member, against ~80 for a skiplist) however big the set.

A set is one key while small; past CHUNK_MAX it splits like a B-tree leaf, and a directory ZSET finds the chunk
of a member by its key (`keys.ChunkedSets`). Members are bytes starting with a KEY_LEN-byte key (`records.py`);
all scores are 0, so order is the members' bytes and ranges are BYLEX. The fold adds members in log order
(`queue_adds`, one `chunk_add-1.lua` call in the batch's transaction), so a set's layout depends on the log only,
not on where batches end: a rebuild gives the same keys. Reads walk the chunks server-side (`read_ranges`).
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from ..scripts import Script
from ..updates import Updates
from .keys import ChunkedSets
from .records import KEY_LEN

CHUNK_MAX = (
    120  # below zset-max-listpack-entries (128 by default): a chunk never leaves the listpack encoding
)
CHUNK_ADD = Script(__package__, "chunk_add-1.lua")
CHUNK_RANGE = Script(__package__, "chunk_range-1.lua")


def _family(sets: ChunkedSets) -> list[Any]:
    return [sets.first, sets.directory, sets.chunk_stem, sets.split]


def queue_adds(u: Updates, sets: ChunkedSets, adds: dict[str, list[bytes]]) -> None:
    """Add members to sets of a family (name → new members, each set's in log order) in the batch's
    transaction: one script call (`Updates.scripts`)."""
    if not adds:
        return
    argv: list[Any] = [CHUNK_MAX, KEY_LEN, *_family(sets)]
    for name, members in adds.items():
        argv += (name, len(members), *members)
    u.scripts.append((CHUNK_ADD, [sets.first_key(next(iter(adds)))], argv))


async def read_ranges(
    redis: Redis,
    sets: ChunkedSets,
    ranges: list[tuple[str, bytes, bytes]],
    *,
    rev: bool = False,
    count: int = -1,
) -> list[list[bytes]]:
    """The members of sets of a family between BYLEX bounds: for each `(name, lo, hi)` (bounds b'-', b'+',
    b'[' + x, b'(' + x; lo at or below hi), ascending, or descending from hi when `rev`; at most `count` a set
    (−1: all). One script call."""
    if not ranges:
        return []
    argv: list[Any] = [KEY_LEN, *_family(sets), int(rev), count]
    for r in ranges:
        argv += r
    flat = await CHUNK_RANGE.call_argv(redis, [sets.first_key(ranges[0][0])], argv)
    out: list[list[bytes]] = []
    at = 0
    for _ in ranges:
        n = flat[at]
        out.append(flat[at + 1 : at + 1 + n])
        at += 1 + n
    return out
