"""Per-workspace ingest limits (requests/s, events/s): off by default; over a limit, 429 with Retry-After (exposed
to browsers), nothing of the refused request stored, other workspaces untouched; set with the CLI."""

from __future__ import annotations

import asyncio
import time

from ingest.workspaces import WorkspaceRegistry

from .cli_helpers import common_flags, streamfold
from .conftest import new_workspace

SITE = "https://shop.example.com"


def track(i: int) -> dict[str, object]:
    return {"type": "track", "event": "clicked", "userId": f"u{i}", "messageId": f"m-{i}"}


async def total_events(client, ws) -> int:
    r = await client.get("/v1/events", headers={"X-API-Key": ws.read_key})
    assert r.status_code == 200, r.text
    return r.json()["pagination"]["total_items"]


async def test_without_limits_a_burst_is_all_accepted(client, workspace, folded):
    answers = await asyncio.gather(
        *(client.post("/v1/track", json=track(i), auth=(workspace.write_key, "")) for i in range(60))
    )
    assert [r.status_code for r in answers] == [200] * 60
    await folded()
    assert await total_events(client, workspace) == 60


async def test_requests_over_the_limit_are_429_with_retry_after_and_store_nothing(
    client, settings, redis, folded
):
    limited = await new_workspace(settings, redis)
    other = await new_workspace(settings, redis)
    await WorkspaceRegistry(redis, settings).set_ingest_limits(
        limited.id, requests_per_second=3, events_per_second=None
    )
    started = time.monotonic()
    answers = [
        await client.post("/v1/t", json=track(i), auth=(limited.write_key, ""), headers={"Origin": SITE})
        for i in range(12)
    ]
    elapsed = time.monotonic() - started
    admitted = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code != 200]
    assert 3 <= len(admitted) <= 3 + 3 * elapsed + 1, (len(admitted), elapsed)
    assert refused and {r.status_code for r in refused} == {429}
    r = refused[0]
    assert r.json()["code"] == "rate_limited" and "3 requests/s" in r.json()["message"]
    assert r.json()["details"] == {"limit": "requests_per_second", "value": 3}
    assert r.headers["retry-after"] == "1" and r.headers["x-ratelimit-limit"] == "3"
    assert r.headers["access-control-allow-origin"] == SITE
    assert "Retry-After" in r.headers["access-control-expose-headers"]
    # another workspace is not slowed down
    assert (await client.post("/v1/track", json=track(99), auth=(other.write_key, ""))).status_code == 200
    await folded()
    assert await total_events(client, limited) == len(admitted)
    assert await total_events(client, other) == 1


async def test_a_batch_bigger_than_a_second_of_events_passes_then_the_debt_is_paid_back(
    client, settings, redis, folded
):
    ws = await new_workspace(settings, redis)
    await WorkspaceRegistry(redis, settings).set_ingest_limits(
        ws.id, requests_per_second=None, events_per_second=10
    )
    big = {"batch": [track(i) for i in range(25)]}
    assert (await client.post("/v1/batch", json=big, auth=(ws.write_key, ""))).status_code == 200
    started = time.monotonic()
    r = await client.post("/v1/batch", json={"batch": [track(100)]}, auth=(ws.write_key, ""))
    assert r.status_code == 429 and r.json()["details"] == {"limit": "events_per_second", "value": 10}
    assert r.headers["retry-after"] == "2"  # 15 events of debt and 1 more at 10/s: 1.6 s
    for _ in range(200):  # a client retrying after Retry-After gets through once the debt is paid
        r = await client.post("/v1/batch", json={"batch": [track(100)]}, auth=(ws.write_key, ""))
        if r.status_code == 200:
            break
        assert r.status_code == 429
        await asyncio.sleep(int(r.headers["retry-after"]) / 4)  # sleep-ok: the client backs off as told
    assert r.status_code == 200 and time.monotonic() - started >= 1.5
    await folded()
    assert await total_events(client, ws) == 26


async def test_sources_share_the_workspace_limit(client, settings, redis):
    ws = await new_workspace(settings, redis)
    await WorkspaceRegistry(redis, settings).set_ingest_limits(
        ws.id, requests_per_second=1, events_per_second=None
    )
    assert (await client.post("/v1/track", json=track(1), auth=(ws.write_key, ""))).status_code == 200
    r = await client.post(
        "/v1/sources/crm/sync",
        json={"crm": "hubspot", "contacts": [{"external_id": "hs-1", "email": "a@b.io"}]},
        auth=(ws.write_key, ""),
    )
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


async def test_the_cli_sets_shows_and_lifts_limits_and_refuses_bad_values(settings, redis):
    ws = await new_workspace(settings, redis)
    flags = common_flags(settings)
    out = streamfold("workspace", "set-limits", ws.id, "--events-per-second", "500", *flags)
    assert out.returncode == 0 and "500 events/s" in out.stdout, out.stderr
    assert (await WorkspaceRegistry(redis, settings).get_workspace(ws.id)).events_per_second == 500
    assert "limits=500 events/s" in streamfold("workspace", "list", *flags).stdout
    bad = streamfold("workspace", "set-limits", ws.id, "--requests-per-second", "-1", *flags)
    assert bad.returncode != 0 and "requests_per_second" in bad.stderr
    assert streamfold("workspace", "set-limits", ws.id, *flags).returncode != 0
    out = streamfold("workspace", "set-limits", ws.id, "--events-per-second", "0", *flags)
    assert out.returncode == 0 and "ingest limits: none" in out.stdout
