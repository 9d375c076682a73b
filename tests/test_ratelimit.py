"""The attribution API's rate limit: per workspace, held in Redis so replicas share it."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from api.app import create_app
from api.ratelimit import RateLimiter
from ingest.workspaces import WorkspaceRegistry

from .conftest import make_settings, new_workspace

PATH = "/public-api/v1/events"
RANGE = {"start_date": "2026-03-01 00:00:00", "end_date": "2026-03-31 23:59:59"}


@pytest.fixture
def settings(redis_url):
    return make_settings(redis_url, attribution_rate_limit_per_minute=3)


async def test_requests_past_the_limit_are_429_with_retry_after_and_limit_headers(
    client, settings, redis, workspace
):
    key = await WorkspaceRegistry(redis, settings).create_key(workspace.id, ["attribution:read"])
    h = {"Authorization": f"Bearer {key}"}
    remaining = []
    for _ in range(3):
        r = await client.get(PATH, params=RANGE, headers=h)
        assert r.status_code == 200, r.text
        assert r.headers["X-RateLimit-Limit"] == "3"
        remaining.append(r.headers["X-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]
    r = await client.get(PATH, params=RANGE, headers=h)
    assert r.status_code == 429
    assert set(r.json()) == {"message"}
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert r.headers["X-RateLimit-Limit"] == "3" and r.headers["X-RateLimit-Remaining"] == "0"


async def test_invalid_requests_count_too(client, settings, redis, workspace):
    key = await WorkspaceRegistry(redis, settings).create_key(workspace.id, ["attribution:read"])
    h = {"Authorization": f"Bearer {key}"}
    for _ in range(3):
        assert (await client.get(PATH, params={"limit": "0"}, headers=h)).status_code == 422
    assert (await client.get(PATH, params=RANGE, headers=h)).status_code == 429


async def test_the_limit_holds_across_replicas_and_is_per_workspace(app, client, settings, redis, workspace):
    reg = WorkspaceRegistry(redis, settings)
    key = await reg.create_key(workspace.id, ["attribution:read"])
    other = await new_workspace(settings, redis)
    other_key = await reg.create_key(other.id, ["attribution:read"])
    replica = create_app(settings, run_appliers=False)
    async with replica.router.lifespan_context(replica):
        transport = httpx.ASGITransport(app=replica)
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as second:
            h = {"Authorization": f"Bearer {key}"}
            codes = [
                (await c.get(PATH, params=RANGE, headers=h)).status_code
                for c in (client, second, client, second)
            ]
            assert codes == [200, 200, 200, 429]
            r = await second.get(PATH, params=RANGE, headers={"Authorization": f"Bearer {other_key}"})
            assert r.status_code == 200


async def test_the_window_slides(settings, redis):
    lim = RateLimiter(redis, settings.key_prefix, "t", 2, window_ms=300)
    assert (await lim.hit("w")).allowed and (await lim.hit("w")).allowed
    refused = await lim.hit("w")
    assert not refused.allowed and refused.retry_after_s == 1
    for _ in range(200):  # poll the limiter itself until its oldest request has left the window
        if (await lim.hit("w")).allowed:
            break
        await asyncio.sleep(0.01)  # sleep-ok: polling the sliding window
    else:
        pytest.fail("the window never slid")
