"""Expiry: a workspace's events older than its horizon leave the events projection (retention and archive).

The horizon is a UTC midnight of log time: the log day of what is being folded, less the workspace's
`retention_days` (set through the log). An event
whose timestamp lies before the horizon is not indexed, and once the horizon passes an event it is taken out of
every index, of the receipt records and of the waiting records (and identity forgets its contact); the counters, types,
contacts, companies, identity and touchpoints keep their whole history. Which keys hold old events is kept in an
expiry index (`exp`: index reference → the oldest score it holds), so an expiry reads and trims only those.
Deterministic: the horizon moves by whole days of log time and trimming is monotone, so however the fold's
batches fall, the same events are gone once the same log has been folded.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from redis.asyncio import Redis

from ..keyspace import Keyspace
from ..located import DAY_MS, RECORD, WAITING, parse_member, record_of, ulid_bytes, ulid_ms
from ..updates import Updates
from . import keys


def key_of_ref(ks: Keyspace, workspace: str, ref: str) -> str:
    """The key an expiry-index reference names."""
    kind, _, arg = ref.partition(":")
    if kind == "all":
        return keys.index_all(ks, workspace)
    if kind == "idf":
        return keys.index_identified(ks, workspace)
    if kind == "t":
        return keys.index_type(ks, workspace, arg)
    if kind == "s":
        return keys.index_signature(ks, workspace, arg)
    if kind == "c":
        return keys.index_contact(ks, workspace, arg)
    if kind == "a":
        return keys.anonymous_events(ks, workspace, arg)
    raise ValueError(f"unknown expiry reference {ref!r}")


def horizon_of(log_ms: int, days: int) -> int:
    """The horizon `days` days of log time before `log_ms`, at a UTC midnight."""
    return (log_ms // DAY_MS - days) * DAY_MS


@dataclass(frozen=True, slots=True)
class Keep:
    """How a batch indexes a workspace's events: only those at or after `horizon` (None: all), and whether the
    expiry index learns the oldest score each index gets (whenever a horizon is or becomes active)."""

    horizon: int | None
    track: bool

    def keeps(self, ts: int) -> bool:
        return self.horizon is None or ts >= self.horizon


KEEP_ALL = Keep(None, False)


class Oldest(dict[str, int]):
    """The oldest score a batch adds to each index reference: what the expiry index learns from the batch."""

    def add(self, ref: str, score: int) -> None:
        if score < self.get(ref, score + 1):
            self[ref] = score

    def queue(self, u: Updates, ks: Keyspace, workspace: str) -> None:
        if self:
            u.zadd_lt[keys.expiry_index(ks, workspace)].update(self)


@dataclass(slots=True)
class Expiry:
    """What one workspace's expiry read: per trimmed index reference the members going and the oldest score
    left (None: nothing left); per waiting-records reference the records left; the record count of the receipt
    days concerned; and, when the expiry index is being built, its entries."""

    horizon: int
    trimmed: dict[str, tuple[list[bytes], int | None]] = field(default_factory=dict)
    waiting: dict[str, bytes] = field(default_factory=dict)
    receipt_counts: dict[int, int] = field(default_factory=dict)
    built: dict[str, int] = field(default_factory=dict)


async def _build(redis: Redis, ks: Keyspace, workspace: str) -> dict[str, int]:
    """The expiry index of a workspace that has had none: every index key and its oldest score."""
    refs: list[str] = []
    for pattern in (keys.index_pattern(ks, workspace), keys.anonymous_pattern(ks, workspace)):
        async for key in redis.scan_iter(match=pattern, count=1000):
            ref = keys.ref_of_key(ks, workspace, key.decode())
            if ref is not None:
                refs.append(ref)
    refs.sort()
    pipe = redis.pipeline(transaction=False)
    for ref in refs:
        if ref.startswith("a:"):
            pipe.get(key_of_ref(ks, workspace, ref))
        else:
            pipe.zrange(key_of_ref(ks, workspace, ref), 0, 0, withscores=True)
    out: dict[str, int] = {}
    for ref, reply in zip(refs, await pipe.execute() if refs else [], strict=True):
        if ref.startswith("a:"):
            if reply:
                out[ref] = min(_waiting_ts(reply))
        elif reply:
            out[ref] = int(reply[0][1])
    return out


def _waiting_ts(raw: bytes) -> list[int]:
    """The timestamps of a string of waiting records."""
    return [WAITING.unpack_from(raw, i)[1] for i in range(0, len(raw), WAITING.size)]


async def read_expiries(
    redis: Redis, ks: Keyspace, horizons: dict[str, int], build: set[str]
) -> dict[str, Expiry]:
    """What expiring each workspace's events older than its horizon takes (two or three round trips for all)."""
    out = {ws: Expiry(h) for ws, h in horizons.items()}
    for ws in sorted(build):
        out[ws].built = await _build(redis, ks, ws)
    order = sorted(horizons)
    pipe = redis.pipeline(transaction=False)
    for ws in order:
        pipe.zrange(keys.expiry_index(ks, ws), "-inf", f"({horizons[ws]}", byscore=True)
    due: list[tuple[str, str]] = []
    for ws, refs in zip(order, await pipe.execute() if order else [], strict=True):
        found = {r.decode() for r in refs} | {r for r, s in out[ws].built.items() if s < horizons[ws]}
        due += [(ws, ref) for ref in sorted(found)]
    if not due:
        return out
    pipe = redis.pipeline(transaction=False)
    for ws, ref in due:
        key, h = key_of_ref(ks, ws, ref), horizons[ws]
        if ref.startswith("a:"):
            pipe.get(key)
        else:
            pipe.zrange(key, "-inf", f"({h}", byscore=True)
            pipe.zrange(key, h, "+inf", byscore=True, offset=0, num=1, withscores=True)
    replies = iter(await pipe.execute())
    days: set[tuple[str, int]] = set()
    for ws, ref in due:
        ex = out[ws]
        if ref.startswith("a:"):
            raw = next(replies) or b""
            w = WAITING.size
            ex.waiting[ref] = b"".join(
                raw[i : i + w]
                for i, ts in zip(range(0, len(raw), w), _waiting_ts(raw), strict=True)
                if ts >= ex.horizon
            )
            continue
        gone, rest = next(replies), next(replies)
        ex.trimmed[ref] = (gone, int(rest[0][1]) if rest else None)
        if ref == "all":
            days |= {(ws, ulid_ms(parse_member(m)[0]) // DAY_MS) for m in gone}
    if days:
        ordered = sorted(days)
        pipe = redis.pipeline(transaction=False)
        for ws, day in ordered:
            pipe.strlen(keys.received(ks, ws, day))
        for (ws, day), n in zip(ordered, await pipe.execute(), strict=True):
            out[ws].receipt_counts[day] = int(n) // RECORD.size
    return out


def apply_expiry(u: Updates, ks: Keyspace, workspace: str, ex: Expiry) -> list[str]:
    """Queue the expiry read by `read_expiries`: trim the indices, the receipt and waiting records and the
    signatures' counts, and keep the expiry index true. Returns the ids (ULIDs) of the identified events gone,
    whose link to a contact identity drops."""
    exp = keys.expiry_index(ks, workspace)
    unlinked: list[str] = []
    if ex.built:
        u.zadd[exp].update(ex.built)
    for ref, (gone, oldest) in ex.trimmed.items():
        key = key_of_ref(ks, workspace, ref)
        u.zremrange[key] = ex.horizon
        if oldest is None:
            u.zrem[exp].add(ref)
        else:
            u.zadd[exp][ref] = oldest
        if ref.startswith("s:") and gone:
            u.hincr[keys.signature_counts(ks, workspace)][ref[2:]] -= len(gone)
        elif ref == "idf":
            unlinked += [parse_member(m)[0] for m in gone]
        elif ref == "all":
            _remove_receipts(u, ks, workspace, ex, gone)
    for ref, left in ex.waiting.items():
        key = key_of_ref(ks, workspace, ref)
        if left:
            u.set[key] = left
            u.zadd[exp][ref] = min(_waiting_ts(left))
        elif u.append.get(key):  # the batch adds to it: the key stays, its oldest is what the batch adds
            u.set[key] = b""
            u.zrem[exp].add(ref)
        else:
            u.delete.add(key)
            u.zrem[exp].add(ref)
    return unlinked


def _remove_receipts(u: Updates, ks: Keyspace, workspace: str, ex: Expiry, gone: list[bytes]) -> None:
    by_day: dict[int, list[bytes]] = defaultdict(list)
    for m in gone:
        ulid, entry_id, index = parse_member(m)
        by_day[ulid_ms(ulid) // DAY_MS].append(record_of(ulid_bytes(ulid), entry_id, index))
    for day, records in by_day.items():
        key = keys.received(ks, workspace, day)
        if len(records) >= ex.receipt_counts.get(day, 0) and not u.records.get(key):
            u.delete.add(key)  # the whole day went, and the batch adds nothing to it
            u.zrem[keys.received_days(ks, workspace)].add(str(day))
        else:
            u.remove_records[key].update(records)
