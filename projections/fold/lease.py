"""Partition leases: `fence_owner` holds the owner's token for a lease time, `fence_epoch` counts acquisitions.

An owner takes the lease when nobody holds it, renews it while it folds and gives it up when it stops; every
acquisition bumps the epoch its commits are guarded by (`fold._commit`), so a stale owner can never commit.
`take_over_lease` takes it from whoever holds it, to pause a partition's fold (`rebuild.verify_partition`).
"""

from __future__ import annotations

from redis.asyncio import Redis

from ..keyspace import Keyspace
from ..scripts import Script
from . import keys
from .fold import Fence

RENEW_LEASE = Script(__package__, "renew_lease-1.lua")
RELEASE_LEASE = Script(__package__, "release_lease-1.lua")


async def acquire_lease(redis: Redis, ks: Keyspace, fence: Fence, ttl_ms: int) -> bool:
    """Take the partition's lease for `fence.token` if nobody holds it; the epoch it then gets fences out every
    earlier owner's commits."""
    ok = await redis.set(keys.fence_owner(ks), fence.token, nx=True, px=ttl_ms)
    if ok:
        fence.epoch = int(await redis.incr(keys.fence_epoch(ks)))
    return bool(ok)


async def take_over_lease(redis: Redis, ks: Keyspace, fence: Fence, ttl_ms: int) -> None:
    """Take the partition's lease whoever holds it: the holder's next commit fails on the new epoch and it stops,
    then acquires again once the lease is released or expires. Pauses the partition's fold (e.g. to digest it
    at a checkpoint that cannot move); log appends go on."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(keys.fence_owner(ks), fence.token, px=ttl_ms)
        pipe.incr(keys.fence_epoch(ks))
        _, epoch = await pipe.execute()
    fence.epoch = int(epoch)


async def renew_lease(redis: Redis, ks: Keyspace, fence: Fence, ttl_ms: int) -> bool:
    """Extend the lease by `ttl_ms` if `fence` still holds it."""
    return bool(await RENEW_LEASE(redis, [keys.fence_owner(ks)], token=fence.token, ttl_ms=ttl_ms))


async def release_lease(redis: Redis, ks: Keyspace, fence: Fence) -> None:
    """Give the lease up if `fence` still holds it (otherwise it is another's: leave it)."""
    await RELEASE_LEASE(redis, [keys.fence_owner(ks)], token=fence.token)
