"""Sliding-window rate limits kept in Redis, so every API replica shares one budget per workspace.

One Lua call per request: drop entries older than the window, count, admit (recording the request) or
refuse with the seconds until the oldest entry leaves the window. Time comes from the Redis server's clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from ingest.ids import new_token
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
