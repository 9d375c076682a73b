"""Identity: identify / alias / group build contacts and companies; anonymous history is identified
retroactively; merges and conflicting traits resolve deterministically; a rebuild gives the same bytes."""

from __future__ import annotations

import uuid

import httpx

from ingest import keys as log_keys
from ingest.workspaces import WorkspaceRegistry
from projections.fold.rebuild import rebuild_and_compare
from projections.identity import keys as identity_keys
from projections.keyspace import Keyspace

from .conftest import WorkspaceKeys


def msg(kind: str, **fields: object) -> dict[str, object]:
    return {"type": kind, "messageId": str(uuid.uuid4()), **fields}


async def send(client: httpx.AsyncClient, ws: WorkspaceKeys, *messages: dict[str, object]) -> None:
    r = await client.post("/v1/batch", json={"batch": list(messages)}, auth=(ws.write_key, ""))
    assert r.status_code == 200 and r.json() == {"success": True}, r.text


async def get(client: httpx.AsyncClient, ws: WorkspaceKeys, path: str, **params: object) -> dict:
    r = await client.get(path, params=params, headers={"Authorization": f"Bearer {ws.read_key}"})
    assert r.status_code == 200, r.text
    return r.json()


async def contacts(client, ws) -> list[dict]:
    return (await get(client, ws, "/v1/contacts", limit=100))["contacts"]


async def only_contact(client, ws) -> dict:
    (c,) = await contacts(client, ws)
    return c


def ks_of(settings, ws: WorkspaceKeys) -> Keyspace:
    return Keyspace(settings.key_prefix, log_keys.partition_of(ws.id, settings.partitions))


async def identified_count(client, ws) -> int:
    return (await get(client, ws, "/v1/events/stats", identified_only="true"))["stats"]["total"]


async def test_identify_creates_a_contact_with_its_traits(client, workspace, folded):
    traits = {
        "email": "Ada@Example.com", "firstName": "Ada", "lastName": "Lovelace", "phone": "+44 1",
        "profile_field_1": "vip", "profile_field_16": "42", "profile_field_26": "2026-05-01T10:00:00Z",
    }  # fmt: skip
    await send(client, workspace, msg("identify", userId="u1", anonymousId="a1", traits=traits))
    await folded()
    c = await only_contact(client, workspace)
    assert c["_id"].startswith("ct_")
    assert (c["email"], c["firstname"], c["lastname"], c["phone"]) == (
        "ada@example.com",
        "Ada",
        "Lovelace",
        "+44 1",
    )
    assert c["custom_fields"] == {
        "profile_field_1": "vip",
        "profile_field_16": 42,
        "profile_field_26": "2026-05-01",
    }
    assert c["user_ids"] == ["u1"] and c["anonymous_ids"] == ["a1"] and c["emails"] == ["ada@example.com"]
    one = (await get(client, workspace, f"/v1/contacts/{c['_id']}"))["contact"]
    assert one == c


async def test_custom_fields_of_the_wrong_kind_from_an_sdk_are_dropped(client, workspace, folded):
    traits = {
        "profile_field_2": {"a": 1},
        "profile_field_17": "many",
        "profile_field_27": "soon",
        "profile_field_31": 1,
    }
    await send(client, workspace, msg("identify", userId="u1", traits={"profile_field_3": 7, **traits}))
    await folded()
    assert (await only_contact(client, workspace))["custom_fields"] == {"profile_field_3": "7"}


async def test_anonymous_history_is_identified_retroactively(client, workspace, folded):
    pages = [msg("page", anonymousId="a1", properties={"url": f"https://example.com/{i}"}) for i in range(3)]
    await send(client, workspace, *pages)
    await folded()
    assert await identified_count(client, workspace) == 0
    await send(client, workspace, msg("identify", userId="u1", anonymousId="a1", traits={"email": "a@x.io"}))
    await folded()
    c = await only_contact(client, workspace)
    assert c["events_count"] == 3
    assert await identified_count(client, workspace) == 3
    listed = await get(client, workspace, "/v1/events", identified_only="true", count_only="true")
    assert listed["count"] == 3


async def test_two_devices_end_up_in_one_contact(client, workspace, folded, settings, redis):
    await send(client, workspace, msg("track", event="visit", anonymousId="phone"))
    await send(client, workspace, msg("track", event="visit", anonymousId="laptop"))
    await folded()
    await send(client, workspace, msg("identify", userId="u1", anonymousId="phone"))
    await folded()
    await send(client, workspace, msg("track", event="login", userId="u1", anonymousId="laptop"))
    await folded()
    c = await only_contact(client, workspace)
    assert c["anonymous_ids"] == ["laptop", "phone"] and c["events_count"] == 3
    assert await identified_count(client, workspace) == 3
    live, rebuilt, _ = await rebuild_and_compare(
        redis, settings.key_prefix, ks_of(settings, workspace).partition
    )
    assert live == rebuilt


async def test_a_device_stays_with_its_first_user(client, workspace, folded):
    await send(client, workspace, msg("identify", userId="u1", anonymousId="shared"))
    await send(client, workspace, msg("track", event="early", anonymousId="shared"))
    await folded()
    await send(client, workspace, msg("identify", userId="u2", anonymousId="shared"))
    await send(client, workspace, msg("track", event="later", anonymousId="shared"))
    await folded()
    by_user = {c["user_ids"][0]: c for c in await contacts(client, workspace)}
    assert set(by_user) == {"u1", "u2"}
    assert by_user["u1"]["anonymous_ids"] == ["shared"] and by_user["u2"]["anonymous_ids"] == []
    assert by_user["u1"]["events_count"] == 2 and by_user["u2"]["events_count"] == 0


async def test_alias_merges_into_the_contact_created_first(client, workspace, folded, settings, redis):
    await send(
        client, workspace, msg("identify", userId="old-id", traits={"firstName": "Ada", "title": "Eng"})
    )
    await send(client, workspace, msg("track", event="a", userId="old-id"))
    await folded()
    await send(client, workspace, msg("identify", userId="new-id", traits={"firstName": "Augusta"}))
    await send(client, workspace, msg("track", event="b", userId="new-id"))
    await folded()
    first, second = sorted(await contacts(client, workspace), key=lambda c: c["createdAt"] + c["_id"])
    assert first["user_ids"] == ["old-id"]
    await send(client, workspace, msg("alias", userId="new-id", previousId="old-id"))
    await folded()
    survivor = await only_contact(client, workspace)
    assert survivor["_id"] == first["_id"]  # the contact created first survives
    assert survivor["user_ids"] == ["new-id", "old-id"] and survivor["merged_ids"] == [second["_id"]]
    assert (
        survivor["firstname"] == "Augusta" and survivor["title"] == "Eng"
    )  # field by field, last write wins
    assert survivor["events_count"] == 2
    merged = (await get(client, workspace, f"/v1/contacts/{second['_id']}"))["contact"]
    assert merged["_id"] == survivor["_id"]
    await send(client, workspace, msg("track", event="c", userId="new-id"))
    await folded()
    assert (await only_contact(client, workspace))["events_count"] == 3
    live, rebuilt, _ = await rebuild_and_compare(
        redis, settings.key_prefix, ks_of(settings, workspace).partition
    )
    assert live == rebuilt


async def test_conflicting_traits_resolve_by_event_timestamp_then_log_position(client, workspace, folded):
    newer = msg("identify", userId="u1", traits={"lastName": "Newer"}, timestamp="2026-05-02T00:00:00Z")
    older = msg("identify", userId="u1", traits={"lastName": "Older"}, timestamp="2026-05-01T00:00:00Z")
    await send(client, workspace, newer)
    await send(client, workspace, older)  # arrives later, happened earlier: loses
    await folded()
    assert (await only_contact(client, workspace))["lastname"] == "Newer"
    same_time = "2026-05-03T00:00:00Z"
    await send(
        client, workspace,
        msg("identify", userId="u1", traits={"lastName": "First"}, timestamp=same_time),
        msg("identify", userId="u1", traits={"lastName": "Second"}, timestamp=same_time),
    )  # fmt: skip
    await folded()
    assert (await only_contact(client, workspace))[
        "lastname"
    ] == "Second"  # a tie goes to the later log position


async def test_group_links_the_contact_to_a_company(client, workspace, folded):
    await send(client, workspace, msg("identify", userId="u1", traits={"email": "ada@gmail.com"}))
    await send(
        client, workspace,
        msg("group", userId="u1", groupId="acct-1", traits={"name": "Analytical Engines", "website": "https://www.engines.io/x", "profile_field_18": 3}),
    )  # fmt: skip
    await folded()
    c = await only_contact(client, workspace)
    (co,) = (await get(client, workspace, "/v1/companies"))["companies"]
    assert co["_id"].startswith("co_") and (co["name"], co["domain"]) == ("Analytical Engines", "engines.io")
    assert co["group_ids"] == ["acct-1"] and co["custom_fields"] == {"profile_field_18": 3}
    assert c["company"] == {"_id": co["_id"], "name": "Analytical Engines", "domain": "engines.io"}
    one = (await get(client, workspace, f"/v1/companies/{co['_id']}"))["company"]
    assert one == {**co, "contact_ids": [c["_id"]]} and co["contacts_count"] == 1


async def test_a_contact_without_a_group_gets_the_company_of_its_email_domain(client, workspace, folded):
    await send(
        client,
        workspace,
        msg("group", userId="boss", groupId="g1", traits={"name": "Acme", "domain": "acme.com"}),
    )
    await send(client, workspace, msg("identify", userId="u2", traits={"email": "wile@acme.com"}))
    await send(client, workspace, msg("identify", userId="u3", traits={"email": "someone@else.com"}))
    await folded()
    by_user = {c["user_ids"][0]: c for c in await contacts(client, workspace)}
    assert by_user["u2"]["company"]["name"] == "Acme"
    assert by_user["u3"]["company"] is None
    acme = (await get(client, workspace, f"/v1/companies/{by_user['u2']['company']['_id']}"))["company"]
    assert acme["contact_ids"] == [by_user["boss"]["_id"], by_user["u2"]["_id"]]


async def test_a_company_lists_its_members_as_they_come_and_go(client, workspace, folded):
    await send(
        client, workspace, msg("group", userId="u1", groupId="g1", traits={"name": "One", "domain": "one.io"})
    )
    await send(
        client, workspace, msg("identify", userId="u2", traits={"email": "b@one.io"})
    )  # by email domain
    await folded()
    (one,) = (await get(client, workspace, "/v1/companies"))["companies"]
    assert one["contacts_count"] == 2
    await send(client, workspace, msg("group", userId="u2", groupId="g2", traits={"name": "Two"}))  # u2 moves
    await send(
        client, workspace, msg("identify", userId="u1", traits={"email": "a@elsewhere.io"})
    )  # stays (explicit)
    await folded()
    counts = {
        c["name"]: c["contacts_count"] for c in (await get(client, workspace, "/v1/companies"))["companies"]
    }
    assert counts == {"One": 1, "Two": 1}


async def test_identify_by_email_joins_a_contact_known_by_that_email(client, workspace, folded):
    await send(client, workspace, msg("identify", anonymousId="a1", traits={"email": "ada@x.io"}))
    await folded()
    await send(
        client, workspace, msg("identify", userId="u1", traits={"email": "ADA@x.io", "firstName": "Ada"})
    )
    await folded()
    c = await only_contact(client, workspace)
    assert c["user_ids"] == ["u1"] and c["anonymous_ids"] == ["a1"] and c["firstname"] == "Ada"


# ---------------------------------------------------------------- the read API's contract


async def test_contacts_pages_are_ordered_and_counted(client, workspace, folded):
    for i in range(5):
        await send(
            client, workspace, msg("identify", userId=f"u{i}", timestamp=f"2026-05-0{i + 1}T00:00:00Z")
        )
    await folded()
    page1 = await get(client, workspace, "/v1/contacts", limit=2)
    page3 = await get(client, workspace, "/v1/contacts", limit=2, page=3)
    assert page1["pagination"] == {"page": 1, "limit": 2, "total_pages": 3, "total_items": 5}
    assert [c["user_ids"] for c in page1["contacts"]] == [["u4"], ["u3"]]
    assert [c["user_ids"] for c in page3["contacts"]] == [["u0"]]
    asc = await get(client, workspace, "/v1/contacts", limit=1, sort_dir="asc")
    assert asc["contacts"][0]["user_ids"] == ["u0"]


async def test_contacts_api_bad_parameters_name_the_parameter(client, workspace):
    h = {"Authorization": f"Bearer {workspace.read_key}"}
    for path in ("/v1/contacts", "/v1/companies"):
        for params, name in (
            ({"limit": 0}, "limit"),
            ({"limit": 101}, "limit"),
            ({"page": "x"}, "page"),
            ({"sort_dir": "up"}, "sort_dir"),
        ):
            r = await client.get(path, params=params, headers=h)
            assert r.status_code == 400, (path, params)
            body = r.json()
            assert (
                body["status"] == "error" and name in body["error"] and body["details"] == {"parameter": name}
            )


async def test_unknown_contact_and_company_are_404(client, workspace):
    h = {"Authorization": f"Bearer {workspace.read_key}"}
    r = await client.get("/v1/contacts/ct_nope", headers=h)
    assert r.status_code == 404 and "ct_nope" in r.json()["error"]
    r = await client.get("/v1/companies/co_nope", headers=h)
    assert r.status_code == 404 and "co_nope" in r.json()["error"]


async def test_contacts_need_the_contacts_read_scope(client, workspace, settings, redis):
    events_only = await WorkspaceRegistry(redis, settings).create_key(workspace.id, ["events:read"])
    r = await client.get("/v1/contacts", headers={"Authorization": f"Bearer {events_only}"})
    assert r.status_code == 403 and "contacts:read" in r.json()["error"]
    assert (await client.get("/v1/companies")).status_code == 401


async def test_contacts_of_one_workspace_are_invisible_to_another(client, workspace, folded, settings, redis):
    from .conftest import new_workspace

    other = await new_workspace(settings, redis)
    await send(client, workspace, msg("identify", userId="u1"))
    await folded()
    c = await only_contact(client, workspace)
    assert await contacts(client, other) == []
    r = await client.get(f"/v1/contacts/{c['_id']}", headers={"Authorization": f"Bearer {other.read_key}"})
    assert r.status_code == 404


async def test_identity_keys_live_in_the_workspace_namespace(client, workspace, folded, settings, redis):
    await send(client, workspace, msg("identify", userId="u1", anonymousId="a1"))
    await folded()
    ks = ks_of(settings, workspace)
    assert await redis.hget(identity_keys.identity_map(ks, workspace.id, "u"), "u1") is not None
    assert await redis.hget(identity_keys.identity_map(ks, workspace.id, "a"), "a1") is not None
