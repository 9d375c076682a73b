"""Fold a batch of log entries into projection updates and commit them with the checkpoint, atomically.

Order of work for one batch: skip entries at or before the checkpoint; decode (poison → dead letters);
dedupe by messageId (first in log order wins); read what the log said about each workspace's settings
(retention) and apply the batch's changes to them; identity resolves each event's contact; each projection adds
its updates; identity's contact moves are applied by the projections that keep events by contact; events older
than their workspace's horizon expire; then one MULTI/EXEC holding the updates, the new checkpoint and the XACK
of the entries — guarded by the fence. An entry of settings ends its transaction, so every fold applies a
change of settings at the same point of the log.
"""

from __future__ import annotations

import gc
import json
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import WatchError

from ingest import keys as log_keys
from ingest.archive import Archive
from ingest.log import F_CONTROL, F_DATA, F_VERSION, F_WORKSPACE, entry_events
from ingest.schema import DELETION, SETTINGS, Event

from .. import counters, events, identity, touchpoints
from ..errors import FenceLost, PoisonEntry
from ..keyspace import Keyspace
from ..located import DAY_MS, Located, is_listed, stream_id
from ..updates import Updates
from . import keys
from .rules import DEFAULT_RULES, FoldRules

GROUP = "fold"


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
    deletions: int = 0  # requests to forget a person folded (their work is `forget.py`'s)


def decode_entry(fields: dict[bytes, bytes]) -> tuple[str, list[Event]]:
    """(workspace id, events) of a log entry (`ingest.log.entry_fields`); `PoisonEntry` when it cannot be read."""
    try:
        return fields[F_WORKSPACE].decode(), entry_events(fields.get(F_VERSION), fields[F_DATA])
    except Exception as exc:  # any decode failure makes the entry poison, with the reason kept
        raise PoisonEntry(f"cannot decode log entry: {exc}") from exc


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


GAP_CHUNK = 500  # entries read at a time between the checkpoint and a batch (`_fold_gap`)


async def fold_entries(
    redis: Redis,
    ks: Keyspace,
    entries: list[tuple[bytes, dict[bytes, bytes]]],
    *,
    fence: Fence | None,
    ack_group: str | None = GROUP,
    rules: FoldRules = DEFAULT_RULES,
    archive: Archive | None = None,
    only: str | None = None,
) -> FoldResult:
    """Apply `entries` (log order) exactly once, after every entry of the stream between the checkpoint and the
    first of them. Raises `FenceLost` if another applier owns the partition.
    With `only`, the events of other workspaces are passed over (a workspace folded again on its own).

    An entry of settings is a transaction of its own: the entries before it fold under the settings before it,
    the change takes effect with it, and no batching can fold an event on the other side of it. Likewise, while a
    workspace of the entries keeps its events for a limited time, each log day's entries fold apart: the
    retention horizon moves by whole days, so every event is folded under the horizon of its own log day,
    whatever the batches. (Without retention nothing depends on where a log day ends — the dedupe window reads
    every day it spans — so a batch folds whole.)"""
    with _collector_paused():
        gap = await _fold_gap(
            redis, ks, entries, fence=fence, ack_group=ack_group, rules=rules, archive=archive, only=only
        )
        return _sum(
            gap,
            await _fold_segments(
                redis, ks, entries, fence=fence, ack_group=ack_group, rules=rules, archive=archive, only=only
            ),
        )


async def _fold_gap(
    redis: Redis,
    ks: Keyspace,
    entries: list[tuple[bytes, dict[bytes, bytes]]],
    *,
    fence: Fence | None,
    ack_group: str | None,
    rules: FoldRules,
    archive: Archive | None,
    only: str | None,
) -> FoldResult:
    """Fold the stream's entries between the checkpoint and the first of `entries`, if any: the checkpoint never
    jumps over an entry. A consumer group delivers an entry once; one delivered to a stale owner (a read of its
    was blocked in Redis when its lease ran out) stays pending on the group while the new owner reads on, and
    would otherwise be skipped for good once the checkpoint passed it."""
    result = FoldResult(None, 0, 0, 0, 0)
    if not entries:
        return result
    first = entries[0][0].decode() if isinstance(entries[0][0], bytes) else entries[0][0]
    stream = log_keys.log(ks.prefix, ks.partition)
    while True:
        ckpt = await read_checkpoint(redis, ks)
        if ckpt is not None and stream_id(ckpt) >= stream_id(first):
            return result
        gap = await redis.xrange(stream, f"({ckpt}" if ckpt else "-", f"({first}", count=GAP_CHUNK)
        if not gap:
            return result
        result = _sum(
            result,
            await _fold_segments(
                redis, ks, gap, fence=fence, ack_group=ack_group, rules=rules, archive=archive, only=only
            ),
        )


def _sum(a: FoldResult, b: FoldResult) -> FoldResult:
    return FoldResult(
        b.checkpoint or a.checkpoint,
        a.applied_entries + b.applied_entries,
        a.applied_events + b.applied_events,
        a.duplicates + b.duplicates,
        a.dead_letters + b.dead_letters,
        a.deletions + b.deletions,
    )


async def _fold_segments(
    redis: Redis,
    ks: Keyspace,
    entries: list[tuple[bytes, dict[bytes, bytes]]],
    *,
    fence: Fence | None,
    ack_group: str | None,
    rules: FoldRules,
    archive: Archive | None,
    only: str | None,
) -> FoldResult:
    """`entries` folded a transaction per segment (`_segments`)."""
    result = FoldResult(None, 0, 0, 0, 0)
    for segment in await _segments(redis, ks, entries):
        result = _sum(
            result,
            await _fold(
                redis, ks, segment, fence=fence, ack_group=ack_group, rules=rules, archive=archive, only=only
            ),
        )
    return result


async def _segments(
    redis: Redis, ks: Keyspace, entries: list[tuple[bytes, dict[bytes, bytes]]]
) -> list[list[tuple[bytes, dict[bytes, bytes]]]]:
    """The transactions `entries` fold in: a control entry alone; the runs between, split at log-day boundaries
    when one of their workspaces has a retention (as the log said before the run: a change of it is a control
    entry, which ends the run). One round trip, for the retention of the entries' workspaces."""
    runs: list[list[tuple[bytes, dict[bytes, bytes]]]] = [[]]
    for entry in entries:
        if entry[1].get(F_CONTROL):
            runs += [[entry], []]
        else:
            runs[-1].append(entry)
    names = sorted({f[F_WORKSPACE] for run in runs for _, f in run if F_WORKSPACE in f})
    pipe = redis.pipeline(transaction=False)
    for ws in names:
        pipe.hexists(keys.workspace_rules(ks, ws.decode(errors="replace")), "retention_days")
    retaining = {ws for ws, has in zip(names, await pipe.execute() if names else [], strict=True) if has}
    segments: list[list[tuple[bytes, dict[bytes, bytes]]]] = []
    for i, run in enumerate(runs):
        # a run after a control entry may follow a change of retention: split as if retention were on
        by_day = i > 0 or any(f.get(F_WORKSPACE) in retaining for _, f in run)
        current: list[tuple[bytes, dict[bytes, bytes]]] = []
        for entry in run:
            if by_day and current and _day_of(current[-1][0]) != _day_of(entry[0]):
                segments.append(current)
                current = []
            current.append(entry)
        if current:
            segments.append(current)
    return segments or [[]]


def _day_of(entry_id: bytes | str) -> int:
    return stream_id(entry_id)[0] // DAY_MS


def _log_day(loc: Located) -> int:
    """The UTC day (days since the epoch) of the log entry holding the event: the dedupe's clock."""
    return loc.entry_ms // DAY_MS


async def _unseen(
    redis: Redis, ks: Keyspace, by_ws: dict[str, list[Located]], rules: FoldRules, u: Updates
) -> tuple[dict[str, list[Located]], int]:
    """The events whose messageId was not folded within the dedupe window before them (first in log order
    wins), and how many were duplicates. Records the new ones (messageId → log day) in buckets of `window` log
    days each, so an event's window reaches two buckets; drops the buckets the window has left behind (both in
    `u`), so the dedupe costs memory for two windows at most. Two round trips: which buckets exist within reach,
    then each asked for the messageIds of the events whose window it lies in."""
    window = rules.dedupe_window_days
    ordered = sorted(by_ws)
    days_of = {ws: [loc.entry_ms // DAY_MS for loc in by_ws[ws]] for ws in ordered}  # _log_day, inlined
    pipe = redis.pipeline(transaction=False)
    for ws in ordered:  # the buckets there are within reach of the batch's days, and those left behind
        lo, hi = _bucket(min(days_of[ws]) - window, window), max(days_of[ws])
        pipe.zrange(keys.message_id_days(ks, ws), lo, hi, byscore=True)
        pipe.zrange(keys.message_id_days(ks, ws), "-inf", f"({_first_kept_bucket(hi, window)}", byscore=True)
    replies = await pipe.execute()
    plan: list[tuple[str, list[str]]] = []  # (workspace, messageIds asked)
    pipe = redis.pipeline(transaction=False)
    for n, ws in enumerate(ordered):
        existing, stale = replies[2 * n], replies[2 * n + 1]
        for bucket in stale:
            u.delete.add(keys.message_ids(ks, ws, int(bucket)))
            u.zrem[keys.message_id_days(ks, ws)].add(bucket.decode())
        if not existing:
            continue
        by_day: dict[int, dict[str, None]] = defaultdict(dict)
        for loc, day in zip(by_ws[ws], days_of[ws], strict=True):
            by_day[day][loc.event.message_id] = None
        for bucket in sorted(int(b) for b in existing):
            reached = [m for day, m in by_day.items() if bucket <= day < bucket + 2 * window]
            mids = (
                list(reached[0]) if len(reached) == 1 else list(dict.fromkeys(chain.from_iterable(reached)))
            )
            if mids:
                pipe.hmget(keys.message_ids(ks, ws, bucket), mids)
                plan.append((ws, mids))
    seen: dict[str, dict[str, list[int]]] = defaultdict(dict)  # workspace → messageId → days it was folded
    for (ws, mids), reply in zip(plan, await pipe.execute() if plan else [], strict=True):
        for m, hit in zip(mids, reply, strict=True):
            if hit is not None:
                seen[ws].setdefault(m, []).append(int(hit))
    fresh: dict[str, list[Located]] = {}
    duplicates = 0
    for ws in ordered:
        known = seen[ws]
        # Log days never decrease, so no later batch looks into a bucket this one leaves behind: it is not
        # written (a batch boundary elsewhere would have dropped it just the same).
        first_kept = _first_kept_bucket(max(days_of[ws]), window)
        kept: list[Located] = []
        targets: dict[int, tuple[dict[str, Any] | None, str]] = {}  # day → (its bucket's writes, the day)
        for loc, day in zip(by_ws[ws], days_of[ws], strict=True):
            mid = loc.event.message_id
            prior = known.get(mid)
            if prior is None:
                known[mid] = [day]
            elif any(day - window <= d <= day for d in prior):
                duplicates += 1
                continue
            else:
                prior.append(day)
            kept.append(loc)
            target = targets.get(day)
            if target is None:
                bucket = _bucket(day, window)
                # within a bucket a messageId is new once: its days are within a window of each other
                writes = u.hset[keys.message_ids(ks, ws, bucket)] if bucket >= first_kept else None
                if writes is not None:
                    u.zadd[keys.message_id_days(ks, ws)][str(bucket)] = bucket
                target = targets[day] = (writes, str(day))
            if target[0] is not None:
                target[0][mid] = target[1]
        if kept:
            fresh[ws] = kept
    return fresh, duplicates


def _bucket(day: int, window: int) -> int:
    """The dedupe bucket of a log day: the first day of its run of `window` days."""
    return day - day % window


def _first_kept_bucket(last_day: int, window: int) -> int:
    """The oldest bucket still holding a day within the window of `last_day`."""
    return _bucket(last_day - window, window)


async def _fold(
    redis: Redis,
    ks: Keyspace,
    entries: list[tuple[bytes, dict[bytes, bytes]]],
    *,
    fence: Fence | None,
    ack_group: str | None,
    rules: FoldRules,
    archive: Archive | None,
    only: str | None = None,
) -> FoldResult:
    ckpt = await read_checkpoint(redis, ks)
    after = stream_id(ckpt) if ckpt else (-1, -1)
    fresh_entries = [(eid, f) for eid, f in entries if stream_id(eid) > after]
    all_ids = [eid for eid, _ in entries]

    by_ws: dict[str, list[Located]] = defaultdict(list)
    poison: list[tuple[str, dict[bytes, bytes], str]] = []
    for eid, fields in fresh_entries:
        if only is not None and fields.get(F_WORKSPACE) != only.encode():
            continue
        entry_id = eid.decode() if isinstance(eid, bytes) else eid
        try:
            ws, decoded = decode_entry(fields)
        except PoisonEntry as exc:
            poison.append((entry_id, fields, exc.message))
            continue
        by_ws[ws].extend(Located(e, entry_id, i) for i, e in enumerate(decoded))

    u = Updates()
    batch, duplicates = await _unseen(redis, ks, by_ws, rules, u) if by_ws else ({}, 0)
    log_ms = max((stream_id(eid)[0] for eid, _ in fresh_entries), default=None)
    if log_ms is not None:
        horizons = await _horizons(redis, ks, u, batch, log_ms)
        if batch:
            await _apply(redis, ks, u, batch, horizons, archive)
        await _expire(redis, ks, u, horizons)

    new_ckpt = None
    if entries:
        last = max(all_ids, key=stream_id)
        last_s = last.decode() if isinstance(last, bytes) else last
        new_ckpt = last_s if stream_id(last_s) > after else ckpt
    deletions = _queue_deletions(ks, u, batch)
    await _commit(redis, ks, u, poison, new_ckpt, all_ids, fence=fence, ack_group=ack_group)
    applied = sum(len(locs) for locs in batch.values())
    return FoldResult(new_ckpt, len(fresh_entries), applied, duplicates, len(poison), deletions)


def _queue_deletions(ks: Keyspace, u: Updates, batch: dict[str, list[Located]]) -> int:
    """Requests to forget a person become jobs of the live view's partition, committed with the batch (a rebuild
    view only folds them: its log is already the rewritten one)."""
    n = 0
    for ws, located in batch.items():
        for loc in located:
            if loc.event.kind != DELETION or ks.view:
                continue
            p = loc.event.properties
            job = {"workspace": ws, "entry_id": loc.entry_id, "step": "identify", **p}
            u.hset[keys.forgetting(ks)][str(p.get("deletion_id"))] = json.dumps(job)
            n += 1
    return n


async def _apply(
    redis: Redis,
    ks: Keyspace,
    u: Updates,
    batch: dict[str, list[Located]],
    horizons: Horizons,
    archive: Archive | None,
) -> None:
    """Every projection's updates for the batch's new events, in one `Updates`."""
    # What the projections need from Redis for the whole batch, each one round trip.
    known_signatures = await events.read_known_signatures(redis, ks, batch)
    touchpoint_states = await touchpoints.load_state(redis, ks, batch)
    states = await identity.load_identity(redis, ks, batch)
    # Identity first: each event's contact (links and merges of the whole batch applied), then the other
    # projections see it.
    for ws, located in batch.items():
        state = states[ws]
        keep = horizons.of(ws)
        for loc, contact in zip(located, identity.resolve_contacts(state, located, keep.keeps), strict=True):
            loc.contact_id = contact
        u.sadd[keys.workspaces(ks)].add(ws)
        state.queue_writes(u)
        identity.apply_event_contacts(
            u,
            ks,
            ws,
            [
                (loc.ulid, loc.contact_id)
                for loc in located
                if is_listed(loc.event) and keep.keeps(loc.event.timestamp)
            ],
        )
        events.apply_events(u, ks, ws, located, keep)
        counters.apply_counters(u, ks, ws, located)
        events.apply_search(u, ks, ws, located, known_signatures.get(ws, set()), keep)
        touchpoints.apply_touchpoints(u, ks, ws, located, touchpoint_states[ws])
    # Earlier batches' events whose contact changed move in the same transaction: identity announces the
    # moves, the events projection moves its indices and says which events moved, identity links them to
    # their contact and the counters count the newly identified ones.
    moves = {ws: m for ws in sorted(states) if (m := states[ws].moves())}
    if moves:
        moved = await events.apply_contact_moves(redis, ks, u, moves, horizons.keep, archive)
        for ws, m in moved.items():
            identity.apply_event_contacts(u, ks, ws, m.contacts)
        await counters.move_to_identified(redis, ks, u, {ws: m.identified for ws, m in moved.items()})


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
        for entry_id, fields, reason in (
            poison if not ks.view else ()
        ):  # a rebuild's replay dead-letters nothing
            pipe.xadd(dlq, {b"entry": entry_id.encode(), b"reason": reason.encode(), **fields})
        if new_ckpt is not None:
            pipe.set(keys.checkpoint(ks), new_ckpt)
        if ack_group is not None and ack_ids:
            pipe.xack(log_stream, ack_group, *ack_ids)
        try:
            await pipe.execute()
        except WatchError as exc:
            raise FenceLost(f"partition {ks.partition} changed owner during commit") from exc


@dataclass(slots=True)
class Horizons:
    """Per workspace: how the batch indexes its events (`keep`: the horizon of the settings in force before the
    batch's own change of them, if any), the horizon its events expire to at the batch's end (after that
    change), and the workspaces whose expiry index is to be built first."""

    keep: dict[str, events.Keep]
    expire: dict[str, int]
    build: set[str]

    def of(self, workspace: str) -> events.Keep:
        return self.keep.get(workspace, events.KEEP_ALL)


async def _horizons(
    redis: Redis, ks: Keyspace, u: Updates, batch: dict[str, list[Located]], log_ms: int
) -> Horizons:
    """Each workspace's horizons at this log time: the batch's workspaces, and on the first batch of a log day every
    workspace of the partition (so quiet workspaces expire too). A change of settings is a batch of its own
    (`fold_entries`): it takes effect at that batch's end."""
    day = log_ms // DAY_MS
    pipe = redis.pipeline(transaction=False)
    pipe.get(keys.expired_day(ks))
    pipe.smembers(keys.workspaces(ks))
    last_day, known = await pipe.execute()
    names = set(batch)
    if last_day is None or int(last_day) < day:
        names |= {w.decode() for w in known}
        u.set[keys.expired_day(ks)] = str(day).encode()
    order = sorted(names)
    pipe = redis.pipeline(transaction=False)
    for ws in order:
        pipe.hmget(keys.workspace_rules(ks, ws), ["retention_days", "expiry"])
    out = Horizons({}, {}, set())
    for ws, (retention, indexed) in zip(order, await pipe.execute() if order else [], strict=True):
        before = after = int(retention) if retention is not None else None
        for loc in batch.get(ws, ()):
            if loc.event.kind == SETTINGS and "retention_days" in loc.event.properties:
                after = _retention(loc.event.properties["retention_days"])
                if after is None:
                    u.hdel[keys.workspace_rules(ks, ws)].add("retention_days")
                else:
                    u.hset[keys.workspace_rules(ks, ws)]["retention_days"] = str(after)
        start, end = _horizon(log_ms, before), _horizon(log_ms, after)
        if start is None and end is None:
            continue
        out.keep[ws] = events.Keep(start, track=True)
        if end is not None:
            out.expire[ws] = end
            if indexed is None:
                out.build.add(ws)
                u.hset[keys.workspace_rules(ks, ws)]["expiry"] = "1"
    return out


def _horizon(log_ms: int, retention_days: int | None) -> int | None:
    return events.horizon_of(log_ms, retention_days) if retention_days is not None else None


def _retention(value: object) -> int | None:
    """A retention change's days (None, 0 or anything but a positive whole number: keep everything)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


async def _expire(redis: Redis, ks: Keyspace, u: Updates, horizons: Horizons) -> None:
    """Events older than their workspace's horizon leave the events projection, and identity forgets their
    contact."""
    if not horizons.expire:
        return
    for ws, ex in (await events.read_expiries(redis, ks, horizons.expire, horizons.build)).items():
        identity.forget_event_contacts(u, ks, ws, events.apply_expiry(u, ks, ws, ex))
