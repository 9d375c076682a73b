"""Fold a batch of log entries into projection updates and commit them with the checkpoint, atomically.

Order of work for one batch: skip entries at or before the checkpoint; decode (poison → dead letters);
dedupe by messageId (first in log order wins); let each projection add its updates; then one
MULTI/EXEC holding the updates, the new checkpoint and the XACK of the entries — guarded by the fence.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import WatchError

from ingest import keys as log_keys
from ingest.errors import FenceLost, PoisonEntry
from ingest.log import decode_entry
from ingest.schema import Event

from . import keys
from .counters import apply_counters
from .events import Located, apply_events
from .identity import load_identity, queue_event_contacts, queue_moves, resolve_contacts
from .keys import Keyspace
from .search import apply_search, read_known_signatures
from .touchpoints import apply_touchpoints, load_sessions
from .updates import Updates

GROUP = "fold"


def stream_id(raw: bytes | str) -> tuple[int, int]:
    s = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = s.partition("-")
    return int(ms), int(seq or 0)


@dataclass(slots=True)
class Fence:
    """Proof of partition ownership: the lease token stored at `fence_owner`, and the fencing epoch
    (`fence_epoch`, incremented by every acquisition) this owner got when it acquired the lease."""

    token: str
    epoch: int = 0


@dataclass(slots=True)
class FoldResult:
    checkpoint: str | None
    applied_entries: int
    applied_events: int
    duplicates: int
    dead_letters: int


async def read_checkpoint(redis: Redis, ks: Keyspace) -> str | None:
    raw = await redis.get(keys.checkpoint(ks))
    return raw.decode() if raw is not None else None


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for one batch, and back on (if it was on) when the batch ends.

    A batch makes hundreds of thousands of containers (positions, per-key updates, commands) that die with it;
    collections in the middle of it traversed them again and again, a sixth of the fold's CPU. Reference
    counting still frees them at once; cycles made meanwhile wait for the first collection after the batch."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


async def fold_entries(
    redis: Redis,
    ks: Keyspace,
    entries: list[tuple[bytes, dict[bytes, bytes]]],
    *,
    fence: Fence | None,
    ack_group: str | None = GROUP,
) -> FoldResult:
    """Apply `entries` (log order) exactly once. Raises `FenceLost` if another applier owns the partition."""
    with _collector_paused():
        return await _fold(redis, ks, entries, fence=fence, ack_group=ack_group)


async def _fold(
    redis: Redis,
    ks: Keyspace,
    entries: list[tuple[bytes, dict[bytes, bytes]]],
    *,
    fence: Fence | None,
    ack_group: str | None,
) -> FoldResult:
    ckpt = await read_checkpoint(redis, ks)
    after = stream_id(ckpt) if ckpt else (-1, -1)
    fresh = [(eid, f) for eid, f in entries if stream_id(eid) > after]
    all_ids = [eid for eid, _ in entries]

    decoded: list[tuple[str, str, list[Event]]] = []
    poison: list[tuple[str, dict[bytes, bytes], str]] = []
    for eid, fields in fresh:
        entry_id = eid.decode() if isinstance(eid, bytes) else eid
        try:
            ws, events = decode_entry(fields)
        except PoisonEntry as exc:
            poison.append((entry_id, fields, exc.message))
            continue
        decoded.append((entry_id, ws, events))

    # Dedupe: ask once per workspace which of the batch's messageIds were already folded.
    by_ws: dict[str, list[Located]] = defaultdict(list)
    for entry_id, ws, events in decoded:
        by_ws[ws].extend(Located(e, entry_id, i) for i, e in enumerate(events))
    seen: dict[str, set[str]] = {}
    if by_ws:
        pipe = redis.pipeline(transaction=False)
        order = sorted(by_ws)
        for ws in order:
            pipe.hmget(
                keys.message_ids(ks, ws), list(dict.fromkeys(loc.event.message_id for loc in by_ws[ws]))
            )
        for ws, found in zip(order, await pipe.execute(), strict=True):
            mids = list(dict.fromkeys(loc.event.message_id for loc in by_ws[ws]))
            seen[ws] = {m for m, hit in zip(mids, found, strict=True) if hit is not None}

    known_signatures = await read_known_signatures(redis, ks, by_ws)
    # Touchpoints: the open session of every visitor in the batch (one round trip), advanced in log order.
    sessions = await load_sessions(redis, ks, by_ws) if by_ws else {}

    u = Updates()
    applied = duplicates = 0
    batch: dict[str, list[Located]] = {}
    for ws in sorted(by_ws):
        already = seen.get(ws, set())
        fresh_events: list[Located] = []
        for loc in by_ws[ws]:
            if loc.event.message_id in already:
                duplicates += 1
                continue
            already.add(loc.event.message_id)
            fresh_events.append(loc)
        if fresh_events:
            batch[ws] = fresh_events
            applied += len(fresh_events)

    # Identity first: each event's contact (links and merges of the whole batch applied), then the indices
    # and counters see it; earlier batches' events that changed contact move in the same transaction.
    identity = await load_identity(redis, ks, batch) if batch else {}
    for ws, fresh_events in batch.items():
        contacts = resolve_contacts(identity[ws], fresh_events)
        for loc, c in zip(fresh_events, contacts, strict=True):
            loc.contact_id = c
        located = fresh_events
        u.sadd[keys.workspaces(ks)].add(ws)
        identity[ws].queue_writes(u)
        queue_event_contacts(u, ks, ws, located, contacts)
        apply_events(u, ks, ws, located)
        apply_counters(u, ks, ws, located)
        apply_search(u, ks, ws, located, known_signatures.get(ws, set()))
        apply_touchpoints(u, ks, ws, located, sessions.setdefault(ws, {}))
    if identity:
        await queue_moves(redis, ks, u, identity)

    new_ckpt = None
    if entries:
        last = max(all_ids, key=stream_id)
        last_s = last.decode() if isinstance(last, bytes) else last
        new_ckpt = last_s if stream_id(last_s) > after else ckpt
    await _commit(redis, ks, u, poison, new_ckpt, all_ids, fence=fence, ack_group=ack_group)
    return FoldResult(new_ckpt, len(fresh), applied, duplicates, len(poison))


async def _commit(
    redis: Redis,
    ks: Keyspace,
    u: Updates,
    poison: list[tuple[str, dict[bytes, bytes], str]],
    new_ckpt: str | None,
    ack_ids: list[Any],
    *,
    fence: Fence | None,
    ack_group: str | None,
) -> None:
    log_stream = log_keys.log(ks.prefix, ks.partition)
    dlq = log_keys.dead_letters(ks.prefix, ks.partition)
    async with redis.pipeline(transaction=True) as pipe:
        if fence is not None:
            # Watch the epoch, not the lease key: lease renewals (PEXPIRE) touch the lease key and would
            # abort a commit for nothing, while every new owner increments the epoch before it folds.
            await pipe.watch(keys.fence_epoch(ks))
            epoch, owner = await pipe.mget(keys.fence_epoch(ks), keys.fence_owner(ks))
            if owner is None or owner.decode() != fence.token or int(epoch or 0) != fence.epoch:
                raise FenceLost(f"partition {ks.partition} is owned by another applier")
            pipe.multi()
        u.queue(pipe, keys.checkpoint(ks))
        for entry_id, fields, reason in poison:
            pipe.xadd(dlq, {b"entry": entry_id.encode(), b"reason": reason.encode(), **fields})
        if new_ckpt is not None:
            pipe.set(keys.checkpoint(ks), new_ckpt)
        if ack_group is not None and ack_ids:
            pipe.xack(log_stream, ack_group, *ack_ids)
        try:
            await pipe.execute()
        except WatchError as exc:
            raise FenceLost(f"partition {ks.partition} changed owner during commit") from exc
