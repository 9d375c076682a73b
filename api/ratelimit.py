"""Sliding-window rate limits kept in Redis, so every API replica shares one budget per workspace.

One Lua call per request: drop entries older than the window, count, admit (recording the request) or
refuse with the seconds until the oldest entry leaves the window. Time comes from the Redis server's clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from ingest import keys
from ingest.ids import new_token

_SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
if used < limit then
  redis.call('ZADD', KEYS[1], now, now .. '-' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, limit - used - 1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = tonumber(oldest[2]) + window - now
return {0, 0, wait}
"""


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
        self._script = redis.register_script(_SLIDING_WINDOW)

    async def hit(self, workspace_id: str) -> Decision:
        if self.limit <= 0:
            return Decision(True, 0, 0, 0)
        key = keys.rate_limit(self.prefix, self.name, workspace_id)
        allowed, remaining, wait_ms = await self._script(
            keys=[key], args=[self.window_ms, self.limit, new_token(6)]
        )
        return Decision(
            bool(allowed), self.limit, int(remaining), 0 if allowed else max(1, -(-int(wait_ms) // 1000))
        )
