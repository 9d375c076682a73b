"""CRM sync: contacts, companies and activities through the log; idempotent, partial, per-record rejections."""

from __future__ import annotations

import httpx

from ingest.workspaces import WorkspaceRegistry

from .conftest import WorkspaceKeys

SYNC = "/v1/sources/crm/sync"


async def sync(client: httpx.AsyncClient, ws: WorkspaceKeys, body: dict, status: int = 200) -> dict:
    r = await client.post(SYNC, json=body, auth=(ws.write_key, ""))
    assert r.status_code == status, r.text
    return r.json()


async def get(client: httpx.AsyncClient, ws: WorkspaceKeys, path: str, **params: object) -> dict:
    r = await client.get(path, params=params, headers={"Authorization": f"Bearer {ws.read_key}"})
    assert r.status_code == 200, r.text
    return r.json()


async def contacts(client, ws) -> list[dict]:
    return (await get(client, ws, "/v1/contacts", limit=100))["contacts"]


ADA = {
    "external_id": "hs-1", "email": "ada@engines.io", "firstname": "Ada", "lastname": "Lovelace",
    "company_external_id": "hs-co-1", "profile_field_1": "champion", "custom_fields": {"profile_field_20": 12.5},
    "updated_at": "2026-05-01T00:00:00Z",
}  # fmt: skip
ENGINES = {"external_id": "hs-co-1", "name": "Analytical Engines", "domain": "engines.io", "employees": 12}
DEAL = {
    "external_id": "deal-9", "type": "deal_created", "contact_external_id": "hs-1", "amount": 12000,
    "currency": "eur", "timestamp": "2026-05-02T10:00:00Z", "properties": {"stage": "qualified"},
}  # fmt: skip


async def test_sync_upserts_contacts_companies_and_records_activities(client, workspace, folded):
    body = await sync(
        client, workspace, {"crm": "hubspot", "contacts": [ADA], "companies": [ENGINES], "activities": [DEAL]}
    )
    assert body == {
        "success": True,
        "accepted": {"contacts": 1, "companies": 1, "activities": 1},
        "rejected": [],
    }
    await folded()
    (c,) = await contacts(client, workspace)
    assert (c["email"], c["firstname"], c["external_ids"]) == ("ada@engines.io", "Ada", ["hs-1"])
    assert c["custom_fields"] == {"profile_field_1": "champion", "profile_field_20": 12.5}
    assert c["company"]["name"] == "Analytical Engines" and c["company"]["domain"] == "engines.io"
    assert c["events_count"] == 1
    (co,) = (await get(client, workspace, "/v1/companies"))["companies"]
    assert co["external_ids"] == ["hs-co-1"] and co["employees"] == 12
    (deal,) = (await get(client, workspace, "/v1/events", event_type="deal_created"))["events"]
    assert deal["timestamp"] == "2026-05-02T10:00:00.000Z"
    assert (
        deal["data"]["amount"] == 12000
        and deal["data"]["currency"] == "EUR"
        and deal["data"]["stage"] == "qualified"
    )


async def test_resending_the_same_sync_changes_nothing(client, workspace, folded, settings, redis):
    from ingest import keys as log_keys
    from projections.fold.rebuild import digest
    from projections.keyspace import Keyspace

    body = {"crm": "hubspot", "contacts": [ADA], "companies": [ENGINES], "activities": [DEAL]}
    await sync(client, workspace, body)
    await folded()
    ks = Keyspace(settings.key_prefix, log_keys.partition_of(workspace.id, settings.partitions))
    before = await digest(redis, ks)
    await sync(client, workspace, body)
    await folded()
    assert await digest(redis, ks) == before


async def test_a_partial_sync_updates_only_the_fields_given(client, workspace, folded):
    await sync(client, workspace, {"contacts": [ADA]})
    await folded()
    update = {
        "external_id": "hs-1",
        "lastname": "King",
        "profile_field_1": None,
        "updated_at": "2026-05-03T00:00:00Z",
    }
    await sync(client, workspace, {"contacts": [update]})
    await folded()
    (c,) = await contacts(client, workspace)
    assert (c["firstname"], c["lastname"], c["email"]) == ("Ada", "King", "ada@engines.io")
    assert c["custom_fields"] == {"profile_field_20": 12.5}  # null cleared slot 1, slot 20 untouched


async def test_an_older_crm_record_does_not_overwrite_a_newer_one(client, workspace, folded):
    await sync(
        client, workspace, {"contacts": [{**ADA, "lastname": "New", "updated_at": "2026-06-01T00:00:00Z"}]}
    )
    await sync(
        client, workspace, {"contacts": [{**ADA, "lastname": "Old", "updated_at": "2026-04-01T00:00:00Z"}]}
    )
    await folded()
    (c,) = await contacts(client, workspace)
    assert c["lastname"] == "New"


async def test_crm_contact_joins_the_contact_an_identify_created_by_email(client, workspace, folded):
    r = await client.post(
        "/v1/identify",
        json={"userId": "u1", "traits": {"email": "ADA@engines.io"}},
        auth=(workspace.write_key, ""),
    )
    assert r.status_code == 200
    await folded()
    await sync(client, workspace, {"contacts": [ADA]})
    await folded()
    (c,) = await contacts(client, workspace)
    assert c["user_ids"] == ["u1"] and c["external_ids"] == ["hs-1"] and c["lastname"] == "Lovelace"


async def test_invalid_records_are_rejected_with_list_index_and_reason_and_valid_ones_kept(
    client, workspace, folded
):
    body = {
        "contacts": [
            {"firstname": "No id"},
            {"external_id": "x1", "email": "not-an-email"},
            {"external_id": "x2", "profile_field_16": "lots"},
            {"external_id": "x3", "profile_field_26": "someday"},
            {"external_id": "x4", "favourite_colour": "blue"},
            {"external_id": "ok", "email": "ok@x.io"},
        ],
        "companies": [{"name": "No key"}, {"external_id": "c1", "employees": "many"}],
        "activities": [
            {"contact_external_id": "ok"},
            {"type": "deal_won", "email": "ok@x.io", "amount": "1k"},
            {"type": "deal won!", "email": "ok@x.io"},
            {"type": "deal_won", "amount": 5},
            42,
        ],
    }
    out = await sync(client, workspace, body)
    assert out["accepted"] == {"contacts": 1, "companies": 0, "activities": 0}
    got = [(r["list"], r["index"], r["field"]) for r in out["rejected"]]
    assert got == [
        ("contacts", 0, "external_id"), ("contacts", 1, "email"), ("contacts", 2, "profile_field_16"),
        ("contacts", 3, "profile_field_26"), ("contacts", 4, "favourite_colour"),
        ("companies", 0, "external_id"), ("companies", 1, "employees"),
        ("activities", 0, "type"), ("activities", 1, "amount"), ("activities", 2, "type"),
        ("activities", 3, "contact_external_id"), ("activities", 4, "body"),
    ]  # fmt: skip
    assert all(r["message"] for r in out["rejected"])
    await folded()
    assert [c["external_ids"] for c in await contacts(client, workspace)] == [["ok"]]


async def test_a_sync_with_nothing_valid_is_400_naming_the_first_bad_record(client, workspace):
    out = await sync(client, workspace, {"contacts": [{"firstname": "x"}]}, status=400)
    assert out["success"] is False and out["code"] == "invalid_request"
    assert "contacts[0].external_id" in out["message"] and out["errors"][0]["list"] == "contacts"


async def test_malformed_sync_bodies_are_400_naming_the_field(client, workspace):
    for body, field in (
        (b"{nope", "body"),
        (b"[]", "body"),
        (b'{"contacts": {}}', "contacts"),
        (b'{"crm": "Big CRM!", "contacts": [{"email": "a@b.c"}]}', "crm"),
        (b'{"people": []}', "people"),
        (b"{}", "body"),
    ):
        r = await client.post(SYNC, content=body, auth=(workspace.write_key, ""))
        assert r.status_code == 400, body
        assert field in r.json()["message"], (body, r.json())


async def test_crm_sync_needs_the_crm_write_scope(client, workspace, settings, redis):
    r = await client.post(SYNC, json={"contacts": [ADA]})
    assert r.status_code == 401
    write_only = await WorkspaceRegistry(redis, settings).create_key(workspace.id, ["write"])
    r = await client.post(SYNC, json={"contacts": [ADA]}, auth=(write_only, ""))
    assert r.status_code == 403 and "crm:write" in r.json()["message"]
    r = await client.post(
        SYNC, json={"contacts": [ADA]}, headers={"Authorization": f"Bearer {workspace.write_key}"}
    )
    assert r.status_code == 200
