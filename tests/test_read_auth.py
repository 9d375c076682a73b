"""Read API authentication: Bearer or X-API-Key, 401 for missing/unknown keys, 403 for a key of another scope."""

from __future__ import annotations

from ingest.workspaces import WorkspaceRegistry


async def test_bearer_and_x_api_key_are_both_accepted(client, workspace):
    for headers in ({"Authorization": f"Bearer {workspace.read_key}"}, {"X-API-Key": workspace.read_key}):
        r = await client.get("/v1/events/types", headers=headers)
        assert r.status_code == 200 and r.json() == {"status": "success", "types": [], "total_items": 0}


async def test_missing_key_is_401_in_the_error_shape(client):
    r = await client.get("/v1/events")
    assert r.status_code == 401
    body = r.json()
    assert body["status"] == "error" and "API key" in body["error"]
    assert set(body) == {"status", "error", "details", "timestamp"}


async def test_unknown_key_is_401(client):
    r = await client.get("/v1/events", headers={"Authorization": "Bearer rk_unknown"})
    assert r.status_code == 401 and r.json()["error"] == "invalid API key"


async def test_key_of_another_scope_is_403(client, workspace):
    r = await client.get("/v1/events", headers={"X-API-Key": workspace.write_key})
    assert r.status_code == 403 and "events:read" in r.json()["error"]


async def test_revoked_key_is_401(client, workspace, settings, redis):
    assert await WorkspaceRegistry(redis, settings).revoke_key(workspace.read_key)
    r = await client.get("/v1/events", headers={"X-API-Key": workspace.read_key})
    assert r.status_code == 401


async def test_workspaces_are_isolated(client, workspace, settings, redis, folded):
    from .conftest import new_workspace

    other = await new_workspace(settings, redis)
    r = await client.post("/v1/track", json={"userId": "u", "event": "mine"}, auth=(workspace.write_key, ""))
    assert r.status_code == 200
    await folded()
    mine = (await client.get("/v1/events", headers={"X-API-Key": workspace.read_key})).json()["events"]
    assert [e["event"] for e in mine] == ["mine"]
    theirs = await client.get("/v1/events", headers={"X-API-Key": other.read_key})
    assert theirs.json()["pagination"]["total_items"] == 0
    r = await client.get(f"/v1/events/{mine[0]['_id']}", headers={"X-API-Key": other.read_key})
    assert r.status_code == 404 and r.json()["status"] == "error"
