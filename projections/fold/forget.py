"""Forgetting a person: the work a request to delete a contact sets off, run by the partition's owner.

The request is an entry of the log (`EventLog.append_deletion`); when the fold reaches it, it commits a job
(`keys.forgetting`) with the checkpoint, and the owner runs it step by step, each step recorded, so a process
killed mid-way is resumed by the next owner and the work is done exactly once:

1. identify — the contact (its survivor, if merged) and every contact merged into it: their user ids, anonymous
   ids, emails and CRM ids, kept from here on only as hashes (`ingest.suppression`);
2. log — the partition's stream is copied with every earlier event of the workspace that carries one of them
   replaced by a tombstone (its id, times and messageId; `DELETED`), then renamed over the log, consumer group
   and all (entries appended meanwhile are copied as they are);
3. archive — the same in every archive file that holds such an event (written, verified, then replaced);
4. refold — the workspace alone is folded again from the rewritten log into a fresh view, then its keys replace
   the live ones: every projection (indices, counters, identity, touchpoints) is what folding the log without the
   person gives, so `streamfold rebuild` reaches the same digest and can never bring them back;
5. suppress — unless asked not to, their identifier hashes go on the workspace's suppression list;
6. done — the request's status gets its counts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import WatchError

from ingest import keys as log_keys
from ingest.archive import Archive
from ingest.deletions import DeletionRequests
from ingest.log import F_CONTROL, F_DATA, F_VERSION, F_WORKSPACE, entry_events, entry_fields
from ingest.schema import DELETED, Event
from ingest.suppression import Suppressions, hash_kinds, hashes_of

from .. import identity
from ..keyspace import Keyspace, workspace_keys
from ..located import stream_id
from . import keys
from .fold import Fence, fold_entries, read_checkpoint
from .rebuild import drop_view, log_chunks
from .rules import FoldRules

log = logging.getLogger("streamfold.forget")
COPY_CHUNK = 1000
VIEW = "forget"


@dataclass(slots=True)
class Job:
    deletion_id: str
    workspace: str
    contact_id: str
    entry_id: str  # the request's log entry: events before it are forgotten
    suppress: bool = True
    step: str = "identify"
    hashes: dict[str, str] = field(default_factory=dict)  # identifier hash → kind
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, deletion_id: str, raw: bytes | str) -> Job:
        d = json.loads(raw)
        return cls(
            deletion_id,
            d["workspace"],
            str(d.get("contact_id") or ""),
            d["entry_id"],
            bool(d.get("suppress", True)),
            d.get("step", "identify"),
            d.get("hashes", {}),
            d.get("counts", {}),
        )

    def dump(self) -> str:
        return json.dumps(
            {
                "workspace": self.workspace,
                "contact_id": self.contact_id,
                "entry_id": self.entry_id,
                "suppress": self.suppress,
                "step": self.step,
                "hashes": self.hashes,
                "counts": self.counts,
            }
        )


async def pending_jobs(redis: Redis, ks: Keyspace) -> list[Job]:
    raw = await redis.hgetall(keys.forgetting(ks))
    jobs = [Job.of(k.decode(), v) for k, v in raw.items()]
    return sorted(jobs, key=lambda j: stream_id(j.entry_id))


async def forget(
    redis: Redis, ks: Keyspace, job: Job, *, archive: Archive | None, rules: FoldRules, fence: Fence | None
) -> None:
    """Run a job to its end from the step it is at (each step idempotent, its end recorded)."""
    steps = {
        "identify": _identify,
        "log": _rewrite_log,
        "archive": _rewrite_archive,
        "refold": _refold,
        "swap": _swap_delete,
        "swap-rename": _swap_rename,
        "suppress": _suppress,
    }
    order = list(steps)
    while job.step != "done":
        await steps[job.step](redis, ks, job, archive=archive, rules=rules, fence=fence)
        job.step = order[order.index(job.step) + 1] if job.step != order[-1] else "done"
        await redis.hset(keys.forgetting(ks), job.deletion_id, job.dump())
    await DeletionRequests(redis, ks.prefix).finish(job.workspace, job.deletion_id, job.counts)
    await redis.hdel(keys.forgetting(ks), job.deletion_id)
    log.info("partition %s: deletion %s done: %s", ks.partition, job.deletion_id, job.counts)


# ---------------------------------------------------------------- steps


async def _identify(redis: Redis, ks: Keyspace, job: Job, **_: Any) -> None:
    docs = await identity.read_merge_group(redis, ks, job.workspace, job.contact_id)
    job.hashes = hash_kinds(job.workspace, identity.identifiers_of_people(docs))
    job.counts = {"contacts": len(docs), "identifiers": len(job.hashes)}


def _tombstone(e: Event) -> Event:
    return Event(
        id=e.id,
        kind=DELETED,
        event=DELETED,
        message_id=e.message_id,
        timestamp=e.timestamp,
        received_at=e.received_at,
    )


def _forgotten(
    job: Job, entries: Iterable[tuple[str, dict[bytes, bytes]]]
) -> tuple[list[tuple[str, dict[bytes, bytes]]], int]:
    """The entries with the person's events (of the workspace, before the request) tombstoned, and how many."""
    out, n = [], 0
    stop = stream_id(job.entry_id)
    wanted = set(job.hashes)
    for entry_id, fields in entries:
        if fields.get(F_WORKSPACE) != job.workspace.encode() or stream_id(entry_id) >= stop or not wanted:
            out.append((entry_id, fields))
            continue
        try:
            events = entry_events(fields.get(F_VERSION), fields[F_DATA])
        except Exception:  # a poison entry stays as it is (it is in the dead letters)
            out.append((entry_id, fields))
            continue
        hit = [bool(hashes_of(job.workspace, e) & wanted) and e.kind != DELETED for e in events]
        if not any(hit):
            out.append((entry_id, fields))
            continue
        n += sum(hit)
        rewritten = entry_fields(
            job.workspace, [_tombstone(e) if h else e for e, h in zip(events, hit, strict=True)]
        )
        if fields.get(F_CONTROL):
            rewritten[F_CONTROL] = fields[F_CONTROL]
        out.append((entry_id, rewritten))
    return out, n


async def _rewrite_log(redis: Redis, ks: Keyspace, job: Job, **_: Any) -> None:
    """Copy the stream with the person's events tombstoned, then rename the copy over it (consumer group
    recreated where it was); entries appended meanwhile are copied as they are."""
    stream, copy = log_keys.log(ks.prefix, ks.partition), log_keys.log_rewrite(ks.prefix, ks.partition)
    await redis.delete(copy)
    start, total = "-", 0
    while True:
        chunk = await redis.xrange(stream, start, "+", count=COPY_CHUNK)
        if chunk:
            rewritten, n = _forgotten(job, [(eid.decode(), f) for eid, f in chunk])
            total += n
            pipe = redis.pipeline(transaction=False)
            for entry_id, fields in rewritten:
                pipe.xadd(copy, fields, id=entry_id)  # type: ignore[arg-type]
            await pipe.execute()
            start = f"({chunk[-1][0].decode()}"
            if len(chunk) == COPY_CHUNK:
                continue
        if start == "-":  # an empty log: nothing to rewrite
            break
        # caught up: swap, unless something was appended since the last read
        async with redis.pipeline(transaction=True) as pipe:
            await pipe.watch(stream)
            if await pipe.xrange(stream, start, "+", count=1):
                continue
            groups = await pipe.xinfo_groups(stream)
            pipe.multi()
            pipe.rename(copy, stream)
            for g in groups:
                pipe.xgroup_create(
                    stream,
                    _text(g["name"]),
                    id=_text(g["last-delivered-id"]),
                    entries_read=g.get("entries-read"),
                )
            try:
                await pipe.execute()
            except WatchError:
                continue
        break
    job.counts["log_events"] = total


async def _rewrite_archive(
    redis: Redis, ks: Keyspace, job: Job, *, archive: Archive | None, **_: Any
) -> None:
    total = files = 0
    if archive is not None:
        for day in archive.days(ks.partition):
            rewritten, n = _forgotten(job, archive.read_day(ks.partition, day))
            if n:
                archive.write_day(ks.partition, day, rewritten)
                total, files = total + n, files + 1
    job.counts.update(archive_events=total, archive_files=files)


async def _refold(
    redis: Redis, ks: Keyspace, job: Job, *, archive: Archive | None, rules: FoldRules, fence: Fence | None
) -> None:
    """Fold the workspace alone from the rewritten log, up to the live checkpoint, into the view `forget`."""
    view = ks.rebuild_view(VIEW)
    await drop_view(redis, view)
    until = await read_checkpoint(redis, ks)
    if until is None:
        return
    async for chunk in log_chunks(redis, ks, until, archive):
        await fold_entries(
            redis, view, chunk, fence=None, ack_group=None, rules=rules, archive=archive, only=job.workspace
        )


async def _swap_delete(redis: Redis, ks: Keyspace, job: Job, **_: Any) -> None:
    """Drop the workspace's live projection keys that the fresh view does not have."""
    view = ks.rebuild_view(VIEW)
    fresh = {
        k[len(view.base) :]
        async for k in redis.scan_iter(match=workspace_keys(view, job.workspace), count=1000)
    }
    stale = [
        k
        async for k in redis.scan_iter(match=workspace_keys(ks, job.workspace), count=1000)
        if k[len(ks.base) :] not in fresh
    ]
    for i in range(0, len(stale), 1000):
        await redis.unlink(*stale[i : i + 1000])


async def _swap_rename(redis: Redis, ks: Keyspace, job: Job, **_: Any) -> None:
    """Move the fresh view's keys of the workspace over the live ones, then drop the rest of the view."""
    view = ks.rebuild_view(VIEW)
    moving = [k async for k in redis.scan_iter(match=workspace_keys(view, job.workspace), count=1000)]
    for i in range(0, len(moving), 500):
        pipe = redis.pipeline(transaction=False)
        for k in moving[i : i + 500]:
            pipe.rename(k, ks.base.encode() + k[len(view.base) :])
        await pipe.execute()
    await drop_view(redis, view)


async def _suppress(redis: Redis, ks: Keyspace, job: Job, **_: Any) -> None:
    if job.suppress:
        await Suppressions(redis, ks.prefix).add(job.workspace, job.hashes, job.deletion_id)
    job.counts["suppressed_identifiers"] = len(job.hashes) if job.suppress else 0


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
