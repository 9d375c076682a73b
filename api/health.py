"""What `/readyz` checks: Redis answers PING in time; the partitions this process folds have an owner and are
not further behind their log than `ready_max_lag_seconds` (the lag `GET /v1/status` shows: log time from the last
entry folded to the log's head)."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ingest.settings import Settings
from projections.fold import keys
from projections.fold.progress import read_fold_lag
from projections.keyspace import Keyspace

PING_TIMEOUT_SECONDS = 1.0
CHECK_TIMEOUT_SECONDS = 3.0


async def partitions_without_owner(redis: Redis, prefix: str, of: list[int]) -> list[int]:
    pipe = redis.pipeline(transaction=False)
    for p in of:
        pipe.exists(keys.fence_owner(Keyspace(prefix, p)))
    return [p for p, n in zip(of, await pipe.execute(), strict=True) if not n]


def _ranges(parts: list[int]) -> str:
    """[0, 1, 2, 5] → '0-2,5'."""
    out: list[str] = []
    for p in parts:
        if out and out[-1].split("-")[-1] == str(p - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{p}"
        else:
            out.append(str(p))
    return ",".join(out)


async def unready_reason(redis: Redis, settings: Settings, *, folding: bool) -> str | None:
    """Why this process should not get traffic now, or None when it is ready."""
    try:
        await asyncio.wait_for(redis.ping(), PING_TIMEOUT_SECONDS)
    except (TimeoutError, RedisError, OSError) as exc:
        return f"Redis does not answer PING within {PING_TIMEOUT_SECONDS:g}s ({exc or type(exc).__name__})"
    if not folding:
        return None
    parts = settings.owned_partitions()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            orphans = await partitions_without_owner(redis, settings.key_prefix, parts)
            if orphans:
                return f"partitions {_ranges(orphans)} have no fold owner yet"
            if settings.ready_max_lag_seconds <= 0:
                return None
            lags = await read_fold_lag(redis, settings.key_prefix, settings.partitions)
    except (TimeoutError, RedisError, OSError) as exc:
        return f"Redis did not answer the readiness checks ({exc or type(exc).__name__})"
    mine = set(parts)
    worst = max((lag for lag in lags if lag.partition in mine), key=lambda lag: lag.lag_seconds, default=None)
    if worst is not None and worst.lag_seconds > settings.ready_max_lag_seconds:
        return (
            f"fold lag {worst.lag_seconds:.1f}s on partition {worst.partition} is over "
            f"ready_max_lag_seconds={settings.ready_max_lag_seconds:g}"
        )
    return None
