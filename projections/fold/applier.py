"""Appliers: own log partitions (fenced by a lease) and fold them through FastStream stream subscribers.

For each owned partition: acquire the lease `fence_owner` (SET NX PX), fold the log again from the start if
the partition's projections were written in an older format, drain the consumer group's pending entries first
(a crashed owner's unacknowledged batch), then consume new entries with a FastStream `StreamSub` (consumer
group, batches). Every batch commits updates + checkpoint + XACK in one MULTI/EXEC
guarded by the lease token, so a stale owner can never commit. Losing the lease or any error stops that
partition's subscriber and starts ownership over, which re-drains what is pending: nothing is skipped. With an
archive horizon, the owner also moves the partition's old log days to the archive (`archiver.py`) now and then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from faststream import AckPolicy
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.message import RedisBatchStreamMessage
from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError, ResponseError

from ingest import keys as log_keys
from ingest.archive import Archive
from ingest.ids import new_token
from ingest.log import encoded_size
from ingest.redis_client import STORE_UNAVAILABLE
from ingest.settings import Settings

from ..errors import FenceLost
from ..keyspace import Keyspace, workspace_pattern
from . import keys
from .archiver import archive_partition
from .fold import GROUP, Fence, FoldResult, fold_entries
from .forget import forget, pending_jobs
from .lease import acquire_lease, release_lease, renew_lease
from .observe import FoldObserver
from .rules import DEFAULT_RULES, FoldRules

log = logging.getLogger("streamfold.applier")
# FastStream's own per-batch chatter stays out of the logs; its warnings and errors still show.
_faststream_log = logging.getLogger("streamfold.faststream")
_faststream_log.setLevel(logging.WARNING)

T = TypeVar("T")
MAX_TRANSACTION_BYTES = 1_000_000  # encoded events folded per MULTI/EXEC, at most (one entry may exceed it)


def chunk_entries(
    entries: list[tuple[bytes, dict[bytes, bytes]]], max_bytes: int
) -> list[list[tuple[bytes, dict[bytes, bytes]]]]:
    chunks: list[list[tuple[bytes, dict[bytes, bytes]]]] = [[]]
    size = 0
    for entry in entries:
        n = encoded_size(entry[1])  # not the compressed size: a zstd entry holds ~4-10x more events
        if chunks[-1] and size + n > max_bytes:
            chunks.append([])
            size = 0
        chunks[-1].append(entry)
        size += n
    return [c for c in chunks if c]


def consumer_name(partition: int) -> str:
    # One consumer per partition: the group's pending list of a partition is its owner's, whoever that is.
    return f"fold-{partition}"


async def ensure_group(redis: Redis, prefix: str, partition: int) -> None:
    try:
        await redis.xgroup_create(log_keys.log(prefix, partition), GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def ensure_projection_format(
    redis: Redis,
    ks: Keyspace,
    rules: FoldRules = DEFAULT_RULES,
    *,
    archive: Archive | None = None,
    fence: Fence | None = None,
) -> bool:
    """Fold the partition again from the start of its log when its projections were written in another format
    (`keys.PROJECTION_FORMAT`) or under other fold rules (`FoldRules.stamp`). Returns whether it must. Called by the lease holder before it folds: a stale
    owner's commits fail on the epoch its acquisition bumped. A crash midway leaves the format unset, so the
    next owner starts over. Entries already moved to the archive are folded first, then the stream's are delivered
    again from its start."""
    stored, ckpt = await redis.mget(keys.projection_format(ks), keys.checkpoint(ks))
    if stored is not None and stored.decode() == rules.stamp:
        return False
    if ckpt is not None:
        log.warning(
            "partition %s: projections in format %s, this process writes %s: folding its log again",
            ks.partition,
            stored.decode() if stored else "1",
            rules.stamp,
        )
        stream = log_keys.log(ks.prefix, ks.partition)
        # the group goes with its pending list, so every entry is delivered again from the start
        with contextlib.suppress(ResponseError):
            await redis.xgroup_destroy(stream, GROUP)
        batch: list[bytes] = []
        async for key in redis.scan_iter(match=workspace_pattern(ks), count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await redis.unlink(*batch)
                batch.clear()
        if batch:
            await redis.unlink(*batch)
        await redis.delete(keys.checkpoint(ks), keys.workspaces(ks))
        if archive is not None:
            for chunk in _chunks(archive.entries(ks.partition), 500):
                await fold_entries(
                    redis, ks, chunk, fence=fence, ack_group=None, rules=rules, archive=archive
                )  # type: ignore[arg-type]
        await ensure_group(redis, ks.prefix, ks.partition)
    await redis.set(keys.projection_format(ks), rules.stamp)
    return ckpt is not None


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def _raw_parser(msg: Any, original: Any = None) -> RedisBatchStreamMessage:
    # Skip FastStream's JSON envelope handling: the log holds msgpack entries we decode ourselves.
    return RedisBatchStreamMessage(raw_message=msg, body=b"", consumer=None, group=None)


async def _raw_decoder(msg: Any, original: Any = None) -> Any:
    return msg.raw_message


class PartitionOwner:
    """Folds one partition while holding its lease."""

    def __init__(self, applier: Applier, partition: int) -> None:
        self.applier = applier
        self.partition = partition
        self.ks = Keyspace(applier.settings.key_prefix, partition)
        self.fence = Fence(token=f"{applier.instance}:{new_token(8)}")
        self.lost = asyncio.Event()
        self._archiving: asyncio.Task[None] | None = None
        self._archive_due = 0.0
        self._folding = asyncio.Lock()  # one fold at a time: the subscriber's batches, drains, orphan checks

    @property
    def redis(self) -> Redis:
        return self.applier.redis

    async def acquire(self) -> bool:
        return await acquire_lease(self.redis, self.ks, self.fence, self.applier.settings.lease_ttl_ms)

    async def renew(self) -> bool:
        return await renew_lease(self.redis, self.ks, self.fence, self.applier.settings.lease_ttl_ms)

    async def release(self) -> None:
        with contextlib.suppress(Exception):
            await release_lease(self.redis, self.ks, self.fence)

    async def fold(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        async with self._folding:
            # Bound each transaction's size so one big read batch never blocks Redis (and queries) for long.
            for chunk in chunk_entries(entries, MAX_TRANSACTION_BYTES):
                started = time.perf_counter()
                result = await self._fold_until_stored(chunk)
                self.applier.observer.folded(self.partition, result, time.perf_counter() - started)
                if result.deletions:
                    await self.forget_pending()

    async def _fold_until_stored(self, chunk: list[tuple[bytes, dict[bytes, bytes]]]) -> FoldResult:
        """Fold one chunk; while Redis is out of memory, keep the lease and try again. Full, Redis refuses the
        whole MULTI/EXEC (it holds the checkpoint's SET, a write that may grow memory): nothing was written."""
        delay = 0.05
        while True:
            try:
                result = await fold_entries(
                    self.redis,
                    self.ks,
                    chunk,
                    fence=self.fence,
                    rules=self.applier.rules,
                    archive=self.applier.archive,
                )
            except OutOfMemoryError:
                if self.lost.is_set():
                    raise
                if delay == 0.05:
                    log.warning(
                        "partition %s: Redis is out of memory; retrying until it takes writes", self.partition
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.lost.wait(), timeout=delay)
                delay = min(delay * 2, 1.0)
                continue
            if delay > 0.05:
                log.warning("partition %s: Redis takes writes again; folding on", self.partition)
            return result

    async def fold_orphans(self) -> None:
        """Fold entries pending on the group for a whole lease: a stale owner's read, blocked in Redis when its
        lease ran out, took them, and the group delivers them to nobody again. Folding up to the newest of
        them folds every entry between the checkpoint and it (`fold_entries` starts at the checkpoint)."""
        stream = log_keys.log(self.ks.prefix, self.partition)
        idle = await self.redis.xpending_range(
            stream,
            GROUP,
            "-",
            "+",
            self.applier.settings.fold_batch_entries,
            idle=self.applier.settings.lease_ttl_ms,
        )
        if idle:
            newest = idle[-1]["message_id"]
            await self.fold([(eid, f) for eid, f in await self.redis.xrange(stream, newest, newest) if f])

    async def forget_pending(self) -> None:
        """Run the partition's requests to forget a person to their end (the fold waits: the workspace is folded
        again from the rewritten log up to the checkpoint, which must not move meanwhile)."""
        for job in await pending_jobs(self.redis, self.ks):
            await forget(
                self.redis,
                self.ks,
                job,
                archive=self.applier.archive,
                rules=self.applier.rules,
                fence=self.fence,
            )

    def _archive_when_due(self) -> None:
        """Start an archive run of the partition when one is due (every `archive_interval_seconds`, never two
        at once); the run stops between days once the lease is lost."""
        s = self.applier.settings
        if not s.archive_after_days or (self._archiving is not None and not self._archiving.done()):
            return
        now = time.monotonic()
        if now < self._archive_due:
            return
        self._archive_due = now + s.archive_interval_seconds
        self._archiving = asyncio.create_task(self._archive(), name=f"archive-p{self.partition}")

    async def _archive(self) -> None:
        try:
            done = await archive_partition(
                self.redis,
                self.ks.prefix,
                self.partition,
                self.applier.archive,
                self.applier.settings.archive_after_days,
                on_day=lambda entries, events: self.applier.observer.archived(
                    self.partition, entries, events
                ),
                stop=self.lost,
            )
            if done.days:
                log.info("partition %s: archived %s days (%s events)", self.partition, done.days, done.events)
        except Exception:
            log.exception("partition %s: archive run failed; the next one completes it", self.partition)

    async def drain_pending(self) -> None:
        """Fold entries delivered to an earlier owner but never acknowledged, in log order."""
        stream = log_keys.log(self.ks.prefix, self.partition)
        me = consumer_name(self.partition)
        start: bytes | str = "0-0"
        while True:  # first take over what other consumer names left pending
            reply = await self.redis.xautoclaim(stream, GROUP, me, 0, start, count=1000)
            start = reply[0]
            if start in (b"0-0", "0-0"):
                break
        n = self.applier.settings.fold_batch_entries
        last = "0"
        while True:
            reply = await self.redis.xreadgroup(GROUP, me, {stream: last}, count=n)
            entries = reply[0][1] if reply else []
            entries = [(eid, f) for eid, f in entries if f]  # deleted entries come back with no fields
            if not entries:
                break
            await self.fold(entries)
            last = entries[-1][0]

    async def run(self) -> None:
        """Own the partition until the lease is lost or the applier stops."""
        s = self.applier.settings
        await ensure_group(self.redis, s.key_prefix, self.partition)
        await ensure_projection_format(
            self.redis, self.ks, self.applier.rules, archive=self.applier.archive, fence=self.fence
        )
        await self.drain_pending()
        await self.forget_pending()  # a deletion a crashed owner left half done
        sub = self.applier.broker.subscriber(
            stream=StreamSub(
                log_keys.log(s.key_prefix, self.partition),
                group=GROUP,
                consumer=consumer_name(self.partition),
                batch=True,
                max_records=s.fold_batch_entries,
                polling_interval=500,
            ),
            ack_policy=AckPolicy.MANUAL,
            parser=_raw_parser,
            decoder=_raw_decoder,
        )

        @sub
        async def fold_log_batch(batch: Any) -> None:
            if self.lost.is_set():
                return  # left pending: the next owner drains it
            entries = list(zip(batch["message_ids"], batch["data"], strict=True))
            try:
                await self.fold(entries)
            except FenceLost:
                log.warning("partition %s: lease lost, stopping", self.partition)
                self.lost.set()
            except STORE_UNAVAILABLE as exc:
                log.warning("partition %s: Redis unavailable (%s); restarting ownership", self.partition, exc)
                self.lost.set()
            except Exception:
                log.exception("partition %s: fold failed; restarting ownership", self.partition)
                self.lost.set()

        await sub.start()
        try:
            interval = s.lease_ttl_ms / 3000
            while not self.lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.lost.wait(), timeout=interval)
                if not self.lost.is_set() and not await self.renew():
                    log.warning("partition %s: lease not renewed, stopping", self.partition)
                    self.lost.set()
                if not self.lost.is_set():
                    self._archive_when_due()
                    await self.fold_orphans()
        finally:
            with contextlib.suppress(Exception):
                await sub.stop()


class Applier:
    """Folds a set of partitions in this process; one FastStream broker, one owner task per partition."""

    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        partitions: list[int] | None = None,
        observer: FoldObserver | None = None,
    ) -> None:
        if settings.redis_url is None:
            raise ValueError("the applier needs settings.redis_url")
        self.redis = redis
        self.settings = settings
        self.observer = observer or FoldObserver()
        self.rules = FoldRules.of(settings)
        self.archive = Archive(settings.archive_root)
        self.partitions = settings.owned_partitions() if partitions is None else partitions
        self.instance = f"{socket.gethostname()}:{os.getpid()}"
        self.broker = RedisBroker(settings.redis_url, logger=_faststream_log, log_level=logging.DEBUG)
        self._tasks: list[asyncio.Task[None]] = []
        self._owners: dict[int, PartitionOwner] = {}
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        await self.broker.start()
        for p in self.partitions:
            self._tasks.append(asyncio.create_task(self._own_forever(p), name=f"applier-p{p}"))

    async def _own_forever(self, partition: int) -> None:
        retry = max(self.settings.lease_ttl_ms / 4000, 0.05)
        said_unavailable = False
        while not self._stopping.is_set():
            owner = PartitionOwner(self, partition)
            try:
                if await owner.acquire():
                    said_unavailable = False
                    self._owners[partition] = owner
                    try:
                        await owner.run()
                    finally:
                        self._owners.pop(partition, None)
                        await owner.release()
            except asyncio.CancelledError:
                raise
            except FenceLost:
                log.warning("partition %s: lease lost, stopping", partition)
            except STORE_UNAVAILABLE as exc:
                # one line when Redis goes away (or fills up), not one per attempt until it is back
                level = logging.DEBUG if said_unavailable else logging.WARNING
                said_unavailable = True
                log.log(level, "partition %s: Redis unavailable (%s); trying again", partition, exc)
            except Exception:
                log.exception("partition %s: owner failed", partition)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=retry)

    def owned(self) -> list[int]:
        return sorted(self._owners)

    async def stop(self) -> None:
        self._stopping.set()
        for owner in list(self._owners.values()):
            owner.lost.set()
        if self._tasks:
            done, pending = await asyncio.wait(self._tasks, timeout=5)
            for t in pending:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.broker.stop()
