"""`GET /metrics`: Prometheus text exposition of this process's counters (all processes' under `serve --workers`)
and the fold lag and dead letters of every partition, read from Redis at scrape time.

No key: it is meant for a Prometheus inside the network, like `/healthz`. It shows operational numbers only
(no workspace, event or key), but keep it off the public internet (no route to it from a public load balancer).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from redis.exceptions import RedisError

from projections.fold.progress import read_fold_lag

from ..deps import ServicesDep
from ..metrics import exposition

LAG_READ_TIMEOUT_SECONDS = 2.0

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (no key: for a Prometheus inside the network)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format 0.0.4"}},
)
async def metrics(services: ServicesDep) -> Response:
    s = services.settings
    try:
        async with asyncio.timeout(LAG_READ_TIMEOUT_SECONDS):
            lags = await read_fold_lag(services.redis, s.key_prefix, s.partitions)
    except (TimeoutError, RedisError, OSError):
        lags = None  # the counters still answer; streamfold_redis_up says the lag is missing
    body, content_type = exposition(lags)
    return Response(body, media_type=content_type)
