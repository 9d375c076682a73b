"""`/healthz` says the process serves; `/readyz` says it should get traffic: Redis answers, the partitions it
folds have an owner, and none is further behind its log than `ready_max_lag_seconds`."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest_asyncio

from api.app import create_app
from api.embedded import EmbeddedValkey, free_port
from api.health import unready_reason
from ingest import keys as log_keys
from projections.fold import keys
from projections.keyspace import Keyspace

from .conftest import make_settings


async def wait_ready(client: httpx.AsyncClient, timeout: float = 20) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        r = await client.get("/readyz")
        if r.status_code == 200 or time.monotonic() > deadline:
            return r
        await asyncio.sleep(0.05)  # sleep-ok: polling until the applier holds its leases


@pytest_asyncio.fixture
async def http_only(settings, redis):
    app = create_app(settings, run_appliers=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c


async def test_healthz_answers_while_the_process_serves(http_only):
    r = await http_only.get("/healthz")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})


async def test_readyz_is_200_once_the_folded_partitions_are_owned(client):
    r = await wait_ready(client)
    assert (r.status_code, r.json()) == (200, {"status": "ok"})


async def test_an_http_only_process_is_ready_when_redis_answers(http_only):
    assert (await http_only.get("/readyz")).status_code == 200


async def test_partitions_without_a_fold_owner_are_not_ready(settings, redis):
    reason = await unready_reason(redis, settings, folding=True)
    assert reason == "partitions 0-3 have no fold owner yet"


async def test_a_fold_lag_over_the_threshold_is_not_ready(settings, redis):
    for p in range(settings.partitions):
        await redis.set(keys.fence_owner(Keyspace(settings.key_prefix, p)), "someone")
    seconds, _ = await redis.time()
    log = log_keys.log(settings.key_prefix, 2)
    first = await redis.xadd(log, {"d": b"x"}, id=f"{(seconds - 90) * 1000}-0")  # 90 s of log never folded
    await redis.xadd(log, {"d": b"x"})

    reason = await unready_reason(redis, settings.with_(ready_max_lag_seconds=30), folding=True)
    assert reason is not None and reason.startswith("fold lag 9") and "partition 2 " in reason
    assert await unready_reason(redis, settings.with_(ready_max_lag_seconds=0), folding=True) is None
    assert await unready_reason(redis, settings.with_(ready_max_lag_seconds=30), folding=False) is None

    await redis.set(keys.checkpoint(Keyspace(settings.key_prefix, 2)), first)  # folded the old one: 90 s left
    assert await unready_reason(redis, settings.with_(ready_max_lag_seconds=120), folding=True) is None


async def test_readyz_is_503_with_a_reason_when_redis_stops(tmp_path):
    server = EmbeddedValkey(tmp_path, free_port(), appendonly=False)
    settings = make_settings(server.start(), lease_ttl_ms=1000)
    try:
        app = create_app(settings, run_appliers=True)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                assert (await wait_ready(c)).status_code == 200
                await asyncio.to_thread(server.stop)
                r = await c.get("/readyz")
                assert r.status_code == 503
                assert r.json()["status"] == "unavailable"
                assert "Redis does not answer" in r.json()["reason"]
                assert (await c.get("/healthz")).status_code == 200
    finally:
        server.stop()
