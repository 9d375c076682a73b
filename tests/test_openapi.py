"""`/openapi.json` says how each endpoint takes its key (so "Authorize" and "Try it out" on `/docs` work) and
what the ingest endpoints accept."""

from __future__ import annotations

import httpx
import pytest

from api.app import create_app


@pytest.fixture
async def spec(settings):
    app = create_app(settings, run_appliers=False)  # the schema needs no Redis: no lifespan
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/openapi.json")
    assert r.status_code == 200
    return r.json()


async def test_security_schemes_cover_every_way_to_present_a_key(spec):
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerKey"] == {**schemes["bearerKey"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKeyHeader"] | {"description": ""} == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "",
    }
    assert (schemes["writeKeyBasic"]["type"], schemes["writeKeyBasic"]["scheme"]) == ("http", "basic")
    assert (schemes["writeKeyQuery"]["in"], schemes["writeKeyQuery"]["name"]) == ("query", "writeKey")


async def test_read_endpoints_take_a_bearer_or_x_api_key(spec):
    read_ops = [
        op
        for path, ops in spec["paths"].items()
        if path.startswith(("/v1/events", "/v1/contacts", "/v1/companies", "/public-api/"))
        for op in ops.values()
    ]
    assert read_ops and all(op["security"] == [{"bearerKey": []}, {"apiKeyHeader": []}] for op in read_ops)


async def test_ingest_endpoints_show_the_segment_shapes(spec):
    paths = spec["paths"]
    track = paths["/v1/track"]["post"]
    assert track["security"] == [{"writeKeyBasic": []}]
    body = track["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/WireMessage"}
    assert body["example"]["event"] == "signed_up"
    batch = paths["/v1/batch"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert batch == {"$ref": "#/components/schemas/WireBatch"}
    schemas = spec["components"]["schemas"]
    assert schemas["WireBatch"]["properties"]["batch"]["items"] == {
        "$ref": "#/components/schemas/WireMessage"
    }
    assert {"userId", "anonymousId", "event", "properties", "messageId"} <= schemas["WireMessage"][
        "properties"
    ].keys()
    assert paths["/beacon/v1/batch"]["post"]["security"] == [{"writeKeyQuery": []}]
    crm = paths["/v1/sources/crm/sync"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert crm == {"$ref": "#/components/schemas/CrmSync"}


async def test_try_it_out_with_the_documented_schemes_works(client, workspace, folded):
    sent = await client.post(
        "/v1/track", json={"userId": "u1", "event": "signed_up"}, auth=(workspace.write_key, "")
    )
    assert sent.json() == {"success": True}
    await folded()
    for headers in ({"Authorization": f"Bearer {workspace.read_key}"}, {"X-API-Key": workspace.read_key}):
        r = await client.get("/v1/events", params={"count_only": "true"}, headers=headers)
        assert r.json()["count"] == 1
