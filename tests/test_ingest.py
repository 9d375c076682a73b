"""Segment-compatible ingest: auth, validation, limits, gzip, dedupe and clock-skew correction."""

from __future__ import annotations

import gzip
import json
import uuid

import httpx

from .conftest import WorkspaceKeys


def track(event: str = "signed_up", **extra: object) -> dict[str, object]:
    return {"type": "track", "event": event, "userId": "u1", "messageId": str(uuid.uuid4()), **extra}


async def list_events(client: httpx.AsyncClient, ws: WorkspaceKeys, **params: object) -> dict:
    r = await client.get("/v1/events", params=params, headers={"Authorization": f"Bearer {ws.read_key}"})
    assert r.status_code == 200, r.text
    return r.json()


async def test_track_answers_exactly_200_success_true(client, workspace):
    r = await client.post("/v1/track", json=track(), auth=(workspace.write_key, ""))
    assert r.status_code == 200
    assert r.json() == {"success": True}


async def test_write_key_in_body_is_accepted(client, workspace, folded):
    body = {"batch": [track()], "writeKey": workspace.write_key}
    r = await client.post("/v1/batch", json=body)
    assert r.status_code == 200, r.text
    await folded()
    assert (await list_events(client, workspace))["pagination"]["total_items"] == 1


async def test_missing_and_unknown_write_keys_are_401_with_code_and_message(client, workspace):
    r = await client.post("/v1/track", json=track())
    assert r.status_code == 401
    assert r.json()["code"] == "unauthorized" and "write key" in r.json()["message"]
    r = await client.post("/v1/track", json=track(), auth=("wk_nope", ""))
    assert r.status_code == 401 and r.json()["message"] == "unknown write key"


async def test_read_key_cannot_write(client, workspace):
    r = await client.post("/v1/track", json=track(), auth=(workspace.read_key, ""))
    assert r.status_code == 403 and "write" in r.json()["message"]


async def test_malformed_json_is_400_naming_the_body(client, workspace):
    r = await client.post("/v1/batch", content=b"{not json", auth=(workspace.write_key, ""))
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_request" and "JSON" in r.json()["message"]


async def test_missing_type_in_batch_names_index_and_field(client, workspace):
    msg = track()
    del msg["type"]
    r = await client.post("/v1/batch", json={"batch": [msg]}, auth=(workspace.write_key, ""))
    assert r.status_code == 400
    body = r.json()
    assert body["errors"] == [
        {"index": 0, "field": "type", "code": "invalid_event", "message": body["errors"][0]["message"]}
    ]
    assert "batch[0].type" in body["message"]


async def test_wrong_field_type_names_the_field(client, workspace):
    r = await client.post("/v1/track", json=track(event=42), auth=(workspace.write_key, ""))
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "event"


async def test_batch_keeps_valid_events_and_reports_rejected_ones(client, workspace, folded):
    good1, good2 = track("a"), track("b")
    bad = {"type": "track", "userId": "u1"}  # no event name
    r = await client.post("/v1/batch", json={"batch": [good1, bad, good2]}, auth=(workspace.write_key, ""))
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is True and body["accepted"] == 2
    assert [(x["index"], x["field"]) for x in body["rejected"]] == [(1, "event")]
    await folded()
    names = sorted(e["event"] for e in (await list_events(client, workspace))["events"])
    assert names == ["a", "b"]


async def test_null_optional_fields_and_microsecond_offsets_are_accepted(client, workspace, folded):
    msg = {
        "type": "track", "event": "x", "userId": None, "anonymousId": "anon-1", "properties": None,
        "context": None, "integrations": {}, "timestamp": "2026-01-02T03:04:05.123456+00:00",
        "messageId": str(uuid.uuid4()), "category": None, "name": None,
    }  # fmt: skip
    r = await client.post("/v1/batch", json={"batch": [msg], "sentAt": None}, auth=(workspace.write_key, ""))
    assert r.status_code == 200 and r.json() == {"success": True}
    await folded()
    (event,) = (await list_events(client, workspace))["events"]
    assert event["timestamp"] == "2026-01-02T03:04:05.123Z"


async def test_gzip_bodies_are_decompressed(client, workspace, folded):
    body = gzip.compress(json.dumps({"batch": [track("zipped")]}).encode())
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    r = await client.post("/v1/batch", content=body, headers=headers, auth=(workspace.write_key, ""))
    assert r.status_code == 200, r.text
    await folded()
    assert (await list_events(client, workspace))["events"][0]["event"] == "zipped"


async def test_corrupt_gzip_is_400(client, workspace):
    r = await client.post(
        "/v1/batch",
        content=b"\x1f\x8bnope",
        headers={"Content-Encoding": "gzip"},
        auth=(workspace.write_key, ""),
    )
    assert r.status_code == 400 and "gzip" in r.json()["message"]


async def test_event_over_32kb_is_413_saying_per_event(client, workspace):
    big = track(properties={"blob": "x" * 33_000})
    r = await client.post("/v1/track", json=big, auth=(workspace.write_key, ""))
    assert r.status_code == 413 and "per event" in r.json()["message"]


async def test_request_over_500kb_is_413_saying_per_request(client, workspace):
    batch = [track(properties={"blob": "x" * 20_000}) for _ in range(30)]
    r = await client.post("/v1/batch", json={"batch": batch}, auth=(workspace.write_key, ""))
    assert r.status_code == 413 and "per request" in r.json()["message"]


async def test_gzip_bomb_is_refused_by_decompressed_size(client, workspace):
    body = gzip.compress(json.dumps({"batch": [track(properties={"blob": "x" * 900_000})]}).encode())
    assert len(body) < 10_000
    r = await client.post(
        "/v1/batch", content=body, headers={"Content-Encoding": "gzip"}, auth=(workspace.write_key, "")
    )
    assert r.status_code == 413


async def test_oversized_event_in_batch_is_rejected_alone(client, workspace, folded):
    r = await client.post(
        "/v1/batch",
        json={"batch": [track("ok"), track("big", properties={"blob": "x" * 33_000})]},
        auth=(workspace.write_key, ""),
    )
    assert r.status_code == 200
    assert r.json()["rejected"][0]["code"] == "event_too_large"
    await folded()
    assert [e["event"] for e in (await list_events(client, workspace))["events"]] == ["ok"]


async def test_more_than_2500_events_is_413(client, workspace):
    batch = [{"type": "track", "event": "e", "userId": "u"} for _ in range(2501)]
    r = await client.post("/v1/batch", json={"batch": batch}, auth=(workspace.write_key, ""))
    assert r.status_code == 413 and "2500" in r.json()["message"]


async def test_same_message_id_is_stored_and_counted_once(client, workspace, folded):
    msg = track("once")
    for _ in range(3):
        r = await client.post("/v1/track", json=msg, auth=(workspace.write_key, ""))
        assert r.status_code == 200
    await client.post("/v1/batch", json={"batch": [msg, msg]}, auth=(workspace.write_key, ""))
    await folded()
    listing = await list_events(client, workspace)
    assert listing["pagination"]["total_items"] == 1
    stats = (await client.get("/v1/events/stats", headers={"X-API-Key": workspace.read_key})).json()["stats"]
    assert stats["total"] == 1


async def test_clock_skew_is_corrected_with_sent_at(client, workspace, folded):
    # the client's clock is ten years fast: its timestamp and sentAt are both off by the same amount
    msg = track(timestamp="2036-01-01T00:00:00.000Z")
    body = {"batch": [msg], "sentAt": "2036-01-01T00:00:05.000Z"}
    r = await client.post("/v1/batch", json=body, auth=(workspace.write_key, ""))
    assert r.status_code == 200
    await folded()
    (event,) = (await list_events(client, workspace))["events"]
    full = (await client.get(f"/v1/events/{event['_id']}", headers={"X-API-Key": workspace.read_key})).json()[
        "event"
    ]
    from datetime import datetime

    ts = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
    received = datetime.fromisoformat(full["createdAt"].replace("Z", "+00:00"))
    assert abs((received - ts).total_seconds() - 5.0) < 0.002


async def test_original_timestamp_is_used_when_timestamp_is_absent(client, workspace, folded):
    msg = {"type": "track", "event": "x", "anonymousId": "a", "originalTimestamp": "2026-03-01T00:00:00.000Z"}
    r = await client.post("/v1/batch", json={"batch": [msg]}, auth=(workspace.write_key, ""))
    assert r.status_code == 200
    await folded()
    (event,) = (await list_events(client, workspace))["events"]
    assert event["timestamp"] == "2026-03-01T00:00:00.000Z"


async def test_page_becomes_page_view_with_domain_from_url(client, workspace, folded):
    msg = {
        "type": "page", "anonymousId": "a", "name": "Pricing",
        "context": {"page": {"url": "https://Shop.Example.com:8443/pricing?utm_source=news", "title": "Pricing", "path": "/pricing"}},
    }  # fmt: skip
    r = await client.post("/v1/page", json=msg, auth=(workspace.write_key, ""))
    assert r.status_code == 200
    r = await client.post(
        "/v1/screen", json={"anonymousId": "a", "name": "Home"}, auth=(workspace.write_key, "")
    )
    assert r.status_code == 200
    await folded()
    events = {e["event"]: e for e in (await list_events(client, workspace))["events"]}
    assert set(events) == {"page_view", "screen_view"}
    assert events["page_view"]["domain"] == "shop.example.com"
    assert events["page_view"]["data"] == {"title": "Pricing", "path": "/pricing"}
    full = await client.get(
        f"/v1/events/{events['page_view']['_id']}", headers={"X-API-Key": workspace.read_key}
    )
    assert full.json()["event"]["campaign"] == {"source": "news"}


async def test_identify_group_alias_are_accepted_but_not_listed_as_events(client, workspace, folded):
    for path, body in [
        ("/v1/identify", {"userId": "u1", "traits": {"email": "a@b.c"}}),
        ("/v1/group", {"userId": "u1", "groupId": "g1"}),
        ("/v1/alias", {"userId": "u1", "previousId": "anon"}),
    ]:
        r = await client.post(path, json=body, auth=(workspace.write_key, ""))
        assert r.status_code == 200, (path, r.text)
    r = await client.post("/v1/group", json={"userId": "u1"}, auth=(workspace.write_key, ""))
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "groupId"
    await folded()
    assert (await list_events(client, workspace))["pagination"]["total_items"] == 0


async def test_a_message_without_any_identity_is_rejected(client, workspace):
    r = await client.post("/v1/track", json={"event": "x"}, auth=(workspace.write_key, ""))
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "userId"


async def test_log_unavailable_is_503_so_sdks_retry(settings):
    from api.app import create_app
    from api.embedded import free_port

    dead = create_app(settings.with_(redis_url=f"redis://127.0.0.1:{free_port()}/0"), run_appliers=False)
    async with dead.router.lifespan_context(dead):
        transport = httpx.ASGITransport(app=dead)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            r = await c.post("/v1/track", json=track(), auth=("wk_any", ""))
    assert r.status_code == 503
    assert r.json()["code"] == "unavailable" and "retry" in r.json()["message"]
