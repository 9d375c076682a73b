"""Replay and digest: rebuild projections from the log into a fresh key namespace, and fingerprint a view.

The digest covers every projection key of a view (names relative to the view, types, full contents), so a
live fold and a replay of the same log give the same digest — the product's exactly-once promise, checked.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis

from ingest import keys as log_keys
from ingest.archive import Archive

from ..keyspace import Keyspace, view_pattern, workspace_pattern
from ..located import stream_id
from .fold import fold_entries, read_checkpoint
from .rules import DEFAULT_RULES, FoldRules

REPLAY_CHUNK = 500


async def log_chunks(
    redis: Redis, source: Keyspace, until: str, archive: Archive | None
) -> AsyncIterator[list[tuple[Any, dict[bytes, bytes]]]]:
    """The partition's log up to `until` (inclusive) in chunks, in log order: its archived entries, then the
    stream's."""
    start = "-"
    if archive is not None:
        chunk: list[tuple[Any, dict[bytes, bytes]]] = []
        for entry in archive.entries(source.partition, until):
            chunk.append(entry)
            if len(chunk) >= REPLAY_CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
        last = archive.last_entry(source.partition)
        if last is not None:
            if stream_id(last) >= stream_id(until):
                return
            start = f"({last}"
    stream = log_keys.log(source.prefix, source.partition)
    while True:
        part = await redis.xrange(stream, start, until, count=REPLAY_CHUNK)
        if not part:
            return
        yield part
        last_id = part[-1][0].decode()
        if stream_id(last_id) >= stream_id(until) or len(part) < REPLAY_CHUNK:
            return
        start = f"({last_id}"


async def replay(
    redis: Redis,
    source: Keyspace,
    target: Keyspace,
    *,
    until: str | None,
    rules: FoldRules = DEFAULT_RULES,
    archive: Archive | None = None,
) -> int:
    """Fold the partition's log (archive, then stream) from the start up to `until` (inclusive) into
    `target`. Returns entries read."""
    if until is None:
        return 0
    n = 0
    async for chunk in log_chunks(redis, source, until, archive):
        await fold_entries(redis, target, chunk, fence=None, ack_group=None, rules=rules, archive=archive)
        n += len(chunk)
    return n


async def drop_view(redis: Redis, ks: Keyspace) -> None:
    if not ks.view:
        raise ValueError("refusing to drop the live view")
    async for key in redis.scan_iter(match=view_pattern(ks), count=1000):
        await redis.unlink(key)


async def digest(redis: Redis, ks: Keyspace) -> str:
    """SHA-256 over the view's projection keys (sorted by name relative to the view) and their contents."""
    base = ks.base
    names = sorted({k async for k in redis.scan_iter(match=workspace_pattern(ks), count=1000)})
    h = hashlib.sha256()
    for key in names:
        rel = key[len(base) :]
        t = (await redis.type(key)).decode()
        h.update(b"\x00K" + rel + b"\x00" + t.encode())
        if t == "hash":
            items = sorted((await redis.hgetall(key)).items())
            for f, v in items:
                h.update(b"\x01" + f + b"\x02" + v)
        elif t == "zset":
            for m, sc in await redis.zrange(key, 0, -1, withscores=True):
                h.update(b"\x01" + m + b"\x02" + repr(sc).encode())
        elif t == "set":
            for m in sorted(await redis.smembers(key)):
                h.update(b"\x01" + m)
        elif t == "string":
            h.update(b"\x01" + (await redis.get(key) or b""))
        elif t == "list":
            for m in await redis.lrange(key, 0, -1):
                h.update(b"\x01" + m)
        else:
            raise ValueError(f"digest: unexpected key type {t} for {key!r}")
    return h.hexdigest()


async def rebuild_and_compare(
    redis: Redis,
    prefix: str,
    partition: int,
    view: str = "verify",
    rules: FoldRules = DEFAULT_RULES,
    archive: Archive | None = None,
) -> tuple[str, str, int]:
    """Replay the partition up to the live checkpoint into `view`; return (live digest, rebuilt digest, entries)."""
    live = Keyspace(prefix, partition)
    target = live.rebuild_view(view)
    await drop_view(redis, target)
    until = await read_checkpoint(redis, live)
    n = await replay(redis, live, target, until=until, rules=rules, archive=archive)
    live_digest = await digest(redis, live)
    rebuilt_digest = await digest(redis, target)
    await drop_view(redis, target)
    return live_digest, rebuilt_digest, n
