"""Replay and digest: rebuild projections from the log into a fresh key namespace, and fingerprint a view.

The digest covers every projection key of a view (names relative to the view, types, full contents), so a
live fold and a replay of the same log give the same digest — the product's exactly-once promise, checked.
`verify_partition` compares the two at one checkpoint: it replays most of the log while the fold goes on, then
takes the partition's lease (the live owner's commits fail on the new epoch, so the checkpoint cannot move),
replays the rest, digests the live view, and gives the lease back. Only that partition's fold pauses, for one
live digest; appends never do. A verifier that dies holding the lease pauses the fold one lease time at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from ingest import keys as log_keys
from ingest.archive import Archive
from ingest.ids import new_token

from ..errors import FenceLost
from ..keyspace import Keyspace, view_pattern, workspace_pattern
from ..located import stream_id
from . import keys
from .fold import Fence, fold_entries, read_checkpoint
from .lease import release_lease, renew_lease, take_over_lease
from .rules import DEFAULT_RULES, FoldRules

REPLAY_CHUNK = 500
HOLD_ATTEMPTS = 3  # takes of the lease per verification before giving up (another verifier took it meanwhile)


async def log_chunks(
    redis: Redis, source: Keyspace, until: str, archive: Archive | None, *, after: str | None = None
) -> AsyncIterator[list[tuple[Any, dict[bytes, bytes]]]]:
    """The partition's log after `after` (from its start without) up to `until` (inclusive) in chunks, in log
    order: its archived entries, then the stream's."""
    start = f"({after}" if after is not None else "-"
    last = archive.last_entry(source.partition) if archive is not None else None
    if archive is not None and last is not None and (after is None or stream_id(last) > stream_id(after)):
        chunk: list[tuple[Any, dict[bytes, bytes]]] = []
        for entry in archive.entries(source.partition, until):
            if after is not None and stream_id(entry[0]) <= stream_id(after):
                continue
            chunk.append(entry)
            if len(chunk) >= REPLAY_CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
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
    """Fold the partition's log (archive, then stream) up to `until` (inclusive) into `target`, from the entry
    after `target`'s checkpoint (the start of the log for a fresh view). Returns entries read."""
    if until is None:
        return 0
    done = await read_checkpoint(redis, target)
    if done is not None and stream_id(done) >= stream_id(until):
        return 0
    n = 0
    async for chunk in log_chunks(redis, source, until, archive, after=done):
        await fold_entries(redis, target, chunk, fence=None, ack_group=None, rules=rules, archive=archive)
        n += len(chunk)
    return n


async def drop_view(redis: Redis, ks: Keyspace) -> None:
    if not ks.view:
        raise ValueError("refusing to drop the live view")
    async for key in redis.scan_iter(match=view_pattern(ks), count=1000):
        await redis.unlink(key)


DIGEST_CHUNK = 500  # keys read per pipeline by `digest`


async def digest(redis: Redis, ks: Keyspace) -> str:
    """SHA-256 over the view's projection keys (sorted by name relative to the view) and their contents.

    Keys are read a pipeline of DIGEST_CHUNK at a time (their types, then their contents), not one round trip
    each: `verify_partition` pauses the partition's fold for as long as the live digest takes."""
    base = ks.base
    names = sorted({k async for k in redis.scan_iter(match=workspace_pattern(ks), count=1000)})
    h = hashlib.sha256()
    for i in range(0, len(names), DIGEST_CHUNK):
        chunk = names[i : i + DIGEST_CHUNK]
        pipe = redis.pipeline(transaction=False)
        for key in chunk:
            pipe.type(key)
        types = [t.decode() for t in await pipe.execute()]
        for key, t in zip(chunk, types, strict=True):
            if t == "none":  # gone since the scan (a fold deleted it): not part of the view
                pipe.exists(key)
            elif t == "hash":
                pipe.hgetall(key)
            elif t == "zset":
                pipe.zrange(key, 0, -1, withscores=True)
            elif t == "set":
                pipe.smembers(key)
            elif t == "string":
                pipe.get(key)
            elif t == "list":
                pipe.lrange(key, 0, -1)
            else:
                raise ValueError(f"digest: unexpected key type {t} for {key!r}")
        for key, t, value in zip(chunk, types, await pipe.execute(), strict=True):
            if t == "none":
                continue
            h.update(b"\x00K" + key[len(base) :] + b"\x00" + t.encode())
            if t == "hash":
                for f, v in sorted(value.items()):
                    h.update(b"\x01" + f + b"\x02" + v)
            elif t == "zset":
                for m, sc in value:
                    h.update(b"\x01" + m + b"\x02" + repr(sc).encode())
            elif t == "set":
                for m in sorted(value):
                    h.update(b"\x01" + m)
            elif t == "string":
                h.update(b"\x01" + (value or b""))
            else:
                for m in value:
                    h.update(b"\x01" + m)
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class Verification:
    """A partition's live digest and the digest of its log replayed, both at `checkpoint`."""

    partition: int
    checkpoint: str | None
    live: str
    rebuilt: str
    entries: int  # log entries replayed

    @property
    def same(self) -> bool:
        return self.live == self.rebuilt


@contextlib.asynccontextmanager
async def fold_paused(redis: Redis, ks: Keyspace, lease_ttl_ms: int) -> AsyncIterator[Fence]:
    """Hold the partition's lease (taken over from its owner, renewed meanwhile) so no applier commits: the
    live view stays at its checkpoint. Yields the fence; whether it still holds at the end is `still_held`."""
    fence = Fence(token=f"verify:{new_token(8)}")
    await take_over_lease(redis, ks, fence, lease_ttl_ms)
    done = asyncio.Event()

    async def keep_renewing() -> None:
        # stopped by `done`, not cancelled: a Redis call cancelled mid-way may swallow the cancellation
        while await renew_lease(redis, ks, fence, lease_ttl_ms):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout=lease_ttl_ms / 3000)
            if done.is_set():
                return

    renewer = asyncio.create_task(keep_renewing())
    try:
        yield fence
    finally:
        done.set()
        with contextlib.suppress(Exception):
            await renewer
        await release_lease(redis, ks, fence)


async def still_held(redis: Redis, ks: Keyspace, fence: Fence) -> bool:
    owner, epoch = await redis.mget(keys.fence_owner(ks), keys.fence_epoch(ks))
    return owner is not None and owner.decode() == fence.token and int(epoch or 0) == fence.epoch


async def verify_partition(
    redis: Redis,
    prefix: str,
    partition: int,
    *,
    lease_ttl_ms: int,
    view: str = "verify",
    rules: FoldRules = DEFAULT_RULES,
    archive: Archive | None = None,
) -> Verification:
    """Replay the partition into `view` and digest it and the live view at the same checkpoint (see the module
    docstring); `view` is dropped before and after."""
    live = Keyspace(prefix, partition)
    target = live.rebuild_view(view)
    await drop_view(redis, target)
    try:
        # the bulk of the replay while the fold goes on; under the lease only what it folded meanwhile
        n = await replay(
            redis, live, target, until=await read_checkpoint(redis, live), rules=rules, archive=archive
        )
        for _ in range(HOLD_ATTEMPTS):
            async with fold_paused(redis, live, lease_ttl_ms) as fence:
                at = await read_checkpoint(redis, live)
                n += await replay(redis, live, target, until=at, rules=rules, archive=archive)
                live_digest = await digest(redis, live)
                if not await still_held(redis, live, fence):
                    continue  # another verifier took the lease meanwhile: the checkpoint may have moved
            return Verification(partition, at, live_digest, await digest(redis, target), n)
        raise FenceLost(f"partition {partition}: could not hold the lease through a digest")
    finally:
        await drop_view(redis, target)


async def rebuild_and_compare(
    redis: Redis,
    prefix: str,
    partition: int,
    view: str = "verify",
    rules: FoldRules = DEFAULT_RULES,
    archive: Archive | None = None,
    *,
    lease_ttl_ms: int = 10_000,
) -> tuple[str, str, int]:
    """`verify_partition` as (live digest, rebuilt digest, entries replayed)."""
    v = await verify_partition(
        redis, prefix, partition, lease_ttl_ms=lease_ttl_ms, view=view, rules=rules, archive=archive
    )
    return v.live, v.rebuilt, v.entries
