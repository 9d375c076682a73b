"""How far the fold has come: checkpoints against the log's last entry, the lag and dead letters of every
partition, and waiting until the fold caught up."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from ingest import keys as log_keys

from ..keyspace import Keyspace
from ..located import stream_id
from . import keys
from .fold import GROUP
from .rules import DEFAULT_RULES, FoldRules


async def log_heads(redis: Redis, prefix: str, partitions: int) -> dict[int, str]:
    """Last entry id of every non-empty partition log."""
    pipe = redis.pipeline(transaction=False)
    for p in range(partitions):
        pipe.xrevrange(log_keys.log(prefix, p), count=1)
    out = {}
    for p, reply in enumerate(await pipe.execute()):
        if reply:
            out[p] = reply[0][0].decode()
    return out


async def checkpoints(redis: Redis, prefix: str, partitions: int, view: str = "") -> dict[int, str | None]:
    vals = await redis.mget([keys.checkpoint(Keyspace(prefix, p, view)) for p in range(partitions)])
    return {p: (v.decode() if v is not None else None) for p, v in enumerate(vals)}


async def wait_until_folded(
    redis: Redis,
    prefix: str,
    partitions: int,
    *,
    timeout: float = 60.0,
    targets: dict[int, str] | None = None,
    rules: FoldRules = DEFAULT_RULES,
) -> None:
    """Return once every partition's checkpoint reached its log head as of the call (or `targets`), folded in
    this version's projection format (an applier that finds an older one folds the log again first)."""
    targets = targets if targets is not None else await log_heads(redis, prefix, partitions)
    if not targets:
        return
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        ck = await checkpoints(redis, prefix, partitions)
        stamps = await redis.mget([keys.projection_format(Keyspace(prefix, p)) for p in targets])
        current = {p for p, f in zip(targets, stamps, strict=True) if f == rules.stamp.encode()}
        behind = {
            p: t
            for p, t in targets.items()
            if p not in current or ck.get(p) is None or stream_id(ck[p] or "0-0") < stream_id(t)
        }
        if not behind:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"fold did not reach the log head in {timeout}s; behind: {behind}, at: {ck}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """How far one partition's fold is behind its log, and how many entries it gave up on."""

    partition: int
    log_head: str | None  # id of the log's last entry; None for an empty log
    checkpoint: str | None  # id of the last entry folded; None before the first fold
    lag_entries: int | None  # entries not folded yet; None when Redis cannot count them (entries deleted)
    lag_seconds: float  # log time from the last entry folded to the head (from the first entry before any)
    dead_letters: int  # entries in the partition's dead-letter stream


def _entries_behind(
    head: str | None, ckpt: str | None, group: dict[str, Any] | None, length: int
) -> int | None:
    if head is None or (ckpt is not None and stream_id(ckpt) >= stream_id(head)):
        return 0
    if ckpt is None:
        return length
    if group is not None and group.get("lag") is not None:
        # the checkpoint is committed with the XACK, so pending entries are exactly the uncommitted ones
        return int(group["lag"]) + int(group["pending"])
    return None


async def read_fold_lag(redis: Redis, prefix: str, partitions: int) -> list[PartitionLag]:
    """Every partition's lag and dead letters: heads, checkpoints and the group / dead-letter counts go out at
    once, whatever the partition count (then one more request for partitions never folded, to date their
    first entry)."""
    pipe = redis.pipeline(transaction=False)
    for p in range(partitions):
        pipe.xinfo_groups(log_keys.log(prefix, p))
        pipe.xlen(log_keys.log(prefix, p))
        pipe.xlen(log_keys.dead_letters(prefix, p))
    heads, ckpts, replies = await asyncio.gather(
        log_heads(redis, prefix, partitions),
        checkpoints(redis, prefix, partitions),
        pipe.execute(raise_on_error=False),
    )
    never_folded = [p for p in heads if ckpts.get(p) is None]
    first_ms: dict[int, int] = {}
    if never_folded:
        firsts = redis.pipeline(transaction=False)
        for p in never_folded:
            firsts.xrange(log_keys.log(prefix, p), count=1)
        for p, reply in zip(never_folded, await firsts.execute(), strict=True):
            if reply:
                first_ms[p] = stream_id(reply[0][0])[0]
    out = []
    for p in range(partitions):
        groups, length, dead = replies[3 * p : 3 * p + 3]
        if isinstance(groups, ResponseError):  # no log yet
            groups = []
        group = next((g for g in groups if g["name"] in (GROUP, GROUP.encode())), None)
        head, ckpt = heads.get(p), ckpts.get(p)
        behind_ms = 0
        if head is not None:
            since = stream_id(ckpt)[0] if ckpt is not None else first_ms.get(p, stream_id(head)[0])
            behind_ms = max(stream_id(head)[0] - since, 0)
        out.append(
            PartitionLag(
                p, head, ckpt, _entries_behind(head, ckpt, group, int(length)), behind_ms / 1000, int(dead)
            )
        )
    return out
