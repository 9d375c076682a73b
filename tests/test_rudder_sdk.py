"""The real rudder-sdk-python client (gzip on, traits in context.traits), pointed at a live server, delivers
unchanged — tracks and pages become events, identify / group / alias become a contact with its company."""

from __future__ import annotations

import asyncio

import httpx
from rudderstack.analytics.client import Client


def _send_with_rudderstack(url: str, write_key: str, n: int) -> list[str]:
    errors: list[str] = []
    client = Client(write_key, host=url, on_error=lambda e, batch: errors.append(repr(e)), max_retries=0)
    for i in range(n):
        if i % 4 == 0:
            client.page(
                anonymous_id=f"anon-{i % 9}",
                name="Docs",
                properties={"url": f"https://docs.example.com/{i % 3}"},
            )
        else:
            client.track(
                user_id=f"user-{i % 20}",
                anonymous_id=f"anon-{i % 9}",
                event="used_feature",
                properties={"i": i},
            )
    client.identify(
        user_id="user-1", anonymous_id="browser-1",
        traits={"email": "grace@navy.mil", "firstName": "Grace", "lastName": "Hopper", "profile_field_16": 3},
    )  # fmt: skip
    client.track(anonymous_id="browser-1", event="opened_docs")
    client.group(user_id="user-1", group_id="navy", traits={"name": "US Navy", "domain": "navy.mil"})
    client.alias(previous_id="legacy-7", user_id="user-1")
    client.flush()
    client.join()
    return errors


async def test_rudderstack_client_builds_events_and_contacts(live_server, workspace, folded):
    errors = await asyncio.to_thread(_send_with_rudderstack, live_server.url, workspace.write_key, 400)
    assert errors == []
    await folded()
    async with httpx.AsyncClient(base_url=live_server.url, headers={"X-API-Key": workspace.read_key}) as http:
        count = (await http.get("/v1/events", params={"count_only": "true"})).json()["count"]
        contacts = (await http.get("/v1/contacts", params={"limit": 100})).json()
        types = (await http.get("/v1/events/types")).json()["types"]
    assert count == 401  # 400 + opened_docs; identify / group / alias are identity, not listed events
    assert types == ["opened_docs", "page_view", "used_feature"]
    assert contacts["pagination"]["total_items"] == len({i % 20 for i in range(400) if i % 4})
    grace = next(c for c in contacts["contacts"] if "user-1" in c["user_ids"])
    assert (grace["email"], grace["firstname"], grace["lastname"]) == ("grace@navy.mil", "Grace", "Hopper")
    assert grace["custom_fields"] == {"profile_field_16": 3}
    assert grace["company"]["name"] == "US Navy" and grace["company"]["domain"] == "navy.mil"
    assert "browser-1" in grace["anonymous_ids"] and "legacy-7" in grace["anonymous_ids"]
    # an anonymous id belongs to the first user seen with it: its pages (even earlier ones) are that user's
    first_user: dict[int, int] = {}
    for i in range(400):
        if i % 4:
            first_user.setdefault(i % 9, i % 20)
    tracks = sum(1 for i in range(400) if i % 4 and i % 20 == 1)
    pages = sum(1 for i in range(400) if i % 4 == 0 and first_user.get(i % 9) == 1)
    assert grace["events_count"] == tracks + pages + 1  # + opened_docs from the identified browser
