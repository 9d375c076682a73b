"""CORS on the ingest paths: preflights, headers on every answer, per-workspace allowed origins.

Websites post cross-origin; a refused origin gets a 403 without CORS headers. The read API opens no CORS.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from api.cli import main as streamfold
from ingest.errors import InvalidRequest, RateLimited
from ingest.http import error_response
from ingest.workspaces import WorkspaceRegistry

SITE = "http://shop.example.test:5173"
INGEST_PATHS = [
    *(f"/v1/{p}" for p in ("track", "page", "screen", "identify", "group", "alias", "batch")),
    *(f"/v1/{p}" for p in ("t", "p", "s", "i", "g", "a", "b", "m")),
    "/beacon/v1/batch",
]
RUDDERSTACK_HEADERS = (
    "authorization,content-type,anonymousid,sentat,rsa-retry-attempt,rsa-retry-reason,"
    "rsa-since-first-attempt,rsa-since-last-attempt"
)


def track(**extra: object) -> dict[str, object]:
    return {
        "type": "track",
        "event": "clicked",
        "anonymousId": "anon-1",
        "messageId": str(uuid.uuid4()),
        **extra,
    }


async def total_events(client, ws) -> int:
    r = await client.get("/v1/events", headers={"X-API-Key": ws.read_key})
    assert r.status_code == 200, r.text
    return r.json()["pagination"]["total_items"]


async def test_preflight_on_every_ingest_path_allows_the_origin_and_the_asked_headers(client):
    for path in INGEST_PATHS:
        r = await client.options(
            path,
            headers={
                "Origin": SITE,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": RUDDERSTACK_HEADERS,
            },
        )
        assert 200 <= r.status_code < 300, path
        assert r.headers["access-control-allow-origin"] == SITE, path
        assert "POST" in r.headers["access-control-allow-methods"], path
        allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
        assert set(RUDDERSTACK_HEADERS.split(",")) <= allowed, path


async def test_preflight_without_asked_headers_lists_every_sdk_header(client):
    r = await client.options("/v1/t", headers={"Origin": SITE, "Access-Control-Request-Method": "POST"})
    allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "x-retry-count", "anonymousid", "sentat"} <= allowed


async def test_post_answers_carry_allow_origin_success_and_errors_alike(client, workspace):
    ok = await client.post("/v1/t", json=track(), auth=(workspace.write_key, ""), headers={"Origin": SITE})
    bad = await client.post(
        "/v1/t", content=b"{oops", auth=(workspace.write_key, ""), headers={"Origin": SITE}
    )
    nokey = await client.post("/v1/t", json=track(), headers={"Origin": SITE})
    assert (ok.status_code, bad.status_code, nokey.status_code) == (200, 400, 401)
    for r in (ok, bad, nokey):
        assert r.headers["access-control-allow-origin"] == SITE
        assert "Retry-After" in r.headers["access-control-expose-headers"]


def test_rate_limited_ingest_answers_expose_retry_after():
    r = error_response(RateLimited("slow down", retry_after=7), {"Access-Control-Allow-Origin": SITE,
                       "Access-Control-Expose-Headers": "Retry-After"})  # fmt: skip
    assert r.status_code == 429 and r.headers["retry-after"] == "7"
    assert r.headers["access-control-expose-headers"] == "Retry-After"


async def test_the_read_api_opens_no_cors(client, workspace):
    r = await client.get("/v1/events", headers={"Origin": SITE, "X-API-Key": workspace.read_key})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    r = await client.options("/v1/events", headers={"Origin": SITE, "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in r.headers


async def test_a_workspace_restricted_to_its_sites_accepts_them(client, workspace, settings, redis, folded):
    await WorkspaceRegistry(redis, settings).set_allowed_origins(workspace.id, [SITE + "/"])
    r = await client.post("/v1/t", json=track(), auth=(workspace.write_key, ""), headers={"Origin": SITE})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == SITE
    await folded()
    assert await total_events(client, workspace) == 1


async def test_a_refused_origin_gets_a_clear_403_without_cors_headers_and_nothing_is_stored(
    client, workspace, settings, redis, folded
):
    await WorkspaceRegistry(redis, settings).set_allowed_origins(workspace.id, [SITE])
    r = await client.post(
        "/v1/t", json=track(), auth=(workspace.write_key, ""), headers={"Origin": "https://evil.example"}
    )
    assert r.status_code == 403
    assert r.json()["code"] == "origin_not_allowed" and "https://evil.example" in r.json()["message"]
    assert not any(h.startswith("access-control-") for h in r.headers)
    await folded()
    assert await total_events(client, workspace) == 0


async def test_requests_without_an_origin_are_server_sdks_and_pass_the_origin_check(
    client, workspace, settings, redis
):
    await WorkspaceRegistry(redis, settings).set_allowed_origins(workspace.id, [SITE])
    r = await client.post("/v1/batch", json={"batch": [track()]}, auth=(workspace.write_key, ""))
    assert r.status_code == 200


async def test_a_wildcard_origin_allows_subdomains_of_that_scheme_only(client, workspace, settings, redis):
    await WorkspaceRegistry(redis, settings).set_allowed_origins(workspace.id, ["https://*.example.com"])

    async def post(origin: str) -> int:
        r = await client.post(
            "/v1/t", json=track(), auth=(workspace.write_key, ""), headers={"Origin": origin}
        )
        return r.status_code

    assert await post("https://blog.example.com") == 200
    assert await post("http://blog.example.com") == 403
    assert await post("https://example.com.evil.test") == 403


async def test_a_beacon_preflight_names_its_workspace_so_a_refused_origin_is_refused_there(
    client, workspace, settings, redis
):
    await WorkspaceRegistry(redis, settings).set_allowed_origins(workspace.id, [SITE])
    path = f"/beacon/v1/batch?writeKey={workspace.write_key}"
    asked = {"Access-Control-Request-Method": "POST"}
    refused = await client.options(path, headers={"Origin": "https://evil.example", **asked})
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
    allowed = await client.options(path, headers={"Origin": SITE, **asked})
    assert allowed.status_code == 204 and allowed.headers["access-control-allow-origin"] == SITE


async def test_malformed_allowed_origins_are_refused(settings, redis, workspace):
    with pytest.raises(InvalidRequest, match="scheme://host"):
        await WorkspaceRegistry(redis, settings).set_allowed_origins(workspace.id, ["www.example.com"])


async def test_the_cli_sets_and_clears_allowed_origins(settings, redis, workspace, capsys):
    registry = WorkspaceRegistry(redis, settings)
    name = (await registry.get_workspace(workspace.id)).name
    common = ["--redis-url", settings.redis_url or "", "--key-prefix", settings.key_prefix]
    args = ["workspace", "set-origins", name, "https://A.example.com", "https://b.example.com/", *common]
    assert await asyncio.to_thread(streamfold, args) == 0
    got = (await registry.get_workspace(workspace.id)).allowed_origins
    assert got == ("https://a.example.com", "https://b.example.com")
    assert await asyncio.to_thread(streamfold, ["workspace", "set-origins", name, "--any", *common]) == 0
    assert (await registry.get_workspace(workspace.id)).allowed_origins == ()
    assert "allowed origins: any" in capsys.readouterr().out
