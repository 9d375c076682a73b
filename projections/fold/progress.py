"""How far the fold has come: checkpoints against the log's last entry, and waiting until it caught up."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from ingest import keys as log_keys

from ..keyspace import Keyspace
from ..located import stream_id
from . import keys


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
        current = {p for p, f in zip(targets, stamps, strict=True) if f == keys.PROJECTION_FORMAT.encode()}
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
