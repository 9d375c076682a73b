"""Rate limits kept in Redis, so every API replica shares one budget per workspace.

The attribution API's is a sliding window: one Lua call per request drops entries older than the window,
counts, admits (recording the request) or refuses with the seconds until the oldest entry leaves the window.
Ingest's are token buckets (requests/s and events/s, set per workspace). Time comes from the Redis server's clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from ingest.errors import RateLimited
from ingest.ids import new_token
from ingest.workspaces import Workspace
from projections.scripts import Script

from . import keys

SLIDING_WINDOW = Script(__package__, "sliding_window-1.lua")


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after_s: int  # 0 when allowed

    def headers(self) -> dict[str, str]:
        h = {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining)}
        if not self.allowed:
            h["Retry-After"] = str(self.retry_after_s)
        return h


class RateLimiter:
    """`limit` requests per `window_ms` per (API name, workspace); limit 0 means unlimited."""

    def __init__(self, redis: Redis, prefix: str, name: str, limit: int, window_ms: int = 60_000) -> None:
        self.redis = redis
        self.prefix = prefix
        self.name = name
        self.limit = limit
        self.window_ms = window_ms

    async def hit(self, workspace_id: str) -> Decision:
        if self.limit <= 0:
            return Decision(True, 0, 0, 0)
        key = keys.rate_limit(self.prefix, self.name, workspace_id)
        allowed, remaining, wait_ms = await SLIDING_WINDOW(
            self.redis, [key], window_ms=self.window_ms, limit=self.limit, token=new_token(6)
        )
        return Decision(
            bool(allowed), self.limit, int(remaining), 0 if allowed else max(1, -(-int(wait_ms) // 1000))
        )


TOKEN_BUCKET = Script(__package__, "token_bucket-1.lua")


class IngestLimiter:
    """A workspace's ingest limits — requests per second and events per second, each off at 0 — as two token
    buckets in Redis holding one second of their rate, shared by every replica. A refused request stores
    nothing: the client retries it whole after `Retry-After`. One round trip per request, and none for a
    workspace without limits."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    async def admit(self, workspace: Workspace, events: int) -> None:
        rps, eps = workspace.requests_per_second, workspace.events_per_second
        if not rps and not eps:
            return
        admitted, which, wait_ms = await TOKEN_BUCKET(
            self.redis,
            [keys.rate_limit(self.prefix, "ingest", workspace.id)],
            rps=rps,
            eps=eps,
            events=events,
        )
        if admitted:
            return
        field, rate = ("requests_per_second", rps) if int(which) == 1 else ("events_per_second", eps)
        retry_after = max(1, -(-int(wait_ms) // 1000))
        raise RateLimited(
            f"workspace ingest limit of {rate} {field.replace('_per_second', '')}/s reached; nothing of this "
            f"request was stored, send it again after {retry_after}s",
            retry_after=retry_after,
            details={"limit": field, "value": rate},
            headers={"X-RateLimit-Limit": str(rate), "X-RateLimit-Remaining": "0"},
        )
