"""What the browser SDKs send, over plain HTTP: short paths, `/v1/b`, beacon, `/v1/m`, content types, shapes.

Messages are shaped as `@segment/analytics-next` 1.84.3 and `@rudderstack/analytics-js` 3.34.1 send them
(see the wire-format reference); a valid browser event must never get a 4xx the SDK would drop silently.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

LANDING = "http://shop.example.test:5173/pricing?utm_source=news&utm_medium=email&utm_campaign=spring"
PAGE = {"url": LANDING, "path": "/pricing", "referrer": "", "search": "?utm_source=news", "title": "Pricing"}
CAMPAIGN = {"source": "news", "medium": "email", "name": "spring"}


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def segment_message(kind: str, **fields: object) -> dict[str, object]:
    """An analytics-next message: `ajs-next-…` messageId, `userId: null`, page + campaign context."""
    now = datetime.now(UTC)
    return {
        "type": kind, "messageId": f"ajs-next-{int(now.timestamp() * 1000)}-{uuid.uuid4()}",
        "anonymousId": "6f1c0f3e-anon", "userId": None, "timestamp": iso(now), "sentAt": iso(now),
        "context": {"page": PAGE, "campaign": CAMPAIGN, "userAgent": "Mozilla/5.0", "locale": "en-US",
                    "library": {"name": "analytics.js", "version": "npm:next-1.84.3"}},
        "integrations": {}, "_metadata": {"bundled": ["Segment.io"], "unbundled": [], "bundledIds": []},
        "properties": {}, "writeKey": None, **fields,
    }  # fmt: skip


def rudder_message(kind: str, **fields: object) -> dict[str, object]:
    """A RudderStack JS v3 message: no `timestamp`, `originalTimestamp` + `sentAt`, `userId: ""`."""
    now = datetime.now(UTC)
    return {
        "type": kind, "messageId": str(uuid.uuid4()), "anonymousId": "b2c1-anon", "userId": "",
        "channel": "web", "originalTimestamp": iso(now), "sentAt": iso(now),
        "context": {"page": PAGE, "campaign": CAMPAIGN, "sessionId": 1764000000000, "traits": {},
                    "library": {"name": "RudderLabs JavaScript SDK", "version": "3.34.1"}},
        "integrations": {"All": True}, "properties": {}, **fields,
    }  # fmt: skip


async def events_of(client, ws) -> list[dict]:
    r = await client.get("/v1/events", params={"limit": 100}, headers={"X-API-Key": ws.read_key})
    assert r.status_code == 200, r.text
    return r.json()["events"]


async def event_doc(client, ws, event_id: str) -> dict:
    r = await client.get(f"/v1/events/{event_id}", headers={"X-API-Key": ws.read_key})
    assert r.status_code == 200, r.text
    return r.json()["event"]


def text_plain(body: object) -> dict[str, object]:
    return {"content": json.dumps(body).encode(), "headers": {"Content-Type": "text/plain"}}


async def test_segment_short_paths_take_one_text_plain_message_each(client, workspace, folded):
    sent = {
        "t": segment_message("track", event="Signed Up", properties={"plan": "pro"}),
        "p": segment_message("page", name="Pricing"),
        "s": segment_message("screen", name="Home"),
        "i": segment_message("identify", userId="user-1", traits={"email": "a@example.com"}),
        "g": segment_message("group", userId="user-1", groupId="acme"),
        "a": segment_message("alias", userId="user-1", previousId="6f1c0f3e-anon"),
    }
    for path, msg in sent.items():
        r = await client.post(f"/v1/{path}", auth=(workspace.write_key, ""), **text_plain(msg))
        assert (r.status_code, r.json()) == (200, {"success": True}), (path, r.text)
    await folded()
    assert sorted(e["event"] for e in await events_of(client, workspace)) == [
        "Signed Up",
        "page_view",
        "screen_view",
    ]


async def test_segment_batch_path_takes_write_key_in_the_body(client, workspace, folded):
    body = {"writeKey": workspace.write_key, "sentAt": iso(datetime.now(UTC)),
            "batch": [segment_message("track", event="a"), segment_message("track", event="b")]}  # fmt: skip
    r = await client.post("/v1/b", **text_plain(body))
    assert r.status_code == 200, r.text
    await folded()
    assert sorted(e["event"] for e in await events_of(client, workspace)) == ["a", "b"]


async def test_bodies_are_json_whatever_the_content_type(client, workspace, folded):
    for content_type in (
        "text/plain",
        "application/json;charset=UTF-8",
        None,
        "application/x-www-form-urlencoded",
    ):
        msg = rudder_message("track", event=f"ct {content_type}")
        headers = {"Content-Type": content_type} if content_type else {}
        r = await client.post(
            "/v1/track", content=json.dumps(msg).encode(), headers=headers, auth=(workspace.write_key, "")
        )
        assert r.status_code == 200, (content_type, r.text)
    await folded()
    assert len(await events_of(client, workspace)) == 4


async def test_beacon_takes_the_write_key_from_the_query_string(client, workspace, folded):
    body = {"batch": [rudder_message("track", event="left page")], "sentAt": iso(datetime.now(UTC))}
    r = await client.post(f"/beacon/v1/batch?writeKey={workspace.write_key}", **text_plain(body))
    assert r.status_code == 200, r.text
    r = await client.post("/beacon/v1/batch", **text_plain(body))
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    await folded()
    assert [e["event"] for e in await events_of(client, workspace)] == ["left page"]


async def test_the_query_string_key_counts_only_on_the_beacon_path(client, workspace):
    r = await client.post(
        f"/v1/t?writeKey={workspace.write_key}", **text_plain(segment_message("track", event="x"))
    )
    assert r.status_code == 401


async def test_segment_metrics_get_a_cheap_200_and_are_not_events(client, workspace, folded):
    metrics = {"series": [{"type": "Counter", "metric": "analytics_js.invoke", "value": 1, "tags": {}}]}
    r = await client.post("/v1/m", **text_plain(metrics))
    assert r.status_code == 200
    await client.post(
        "/v1/t", auth=(workspace.write_key, ""), **text_plain(segment_message("track", event="x"))
    )
    await folded()
    assert [e["event"] for e in await events_of(client, workspace)] == ["x"]


async def test_rudderstack_original_timestamp_is_skew_corrected_with_sent_at(client, workspace, folded):
    fast = datetime.now(UTC) + timedelta(days=400)  # the visitor's clock is 400 days ahead
    msg = rudder_message(
        "track", event="x", originalTimestamp=iso(fast), sentAt=iso(fast + timedelta(seconds=3))
    )
    r = await client.post("/v1/track", json=msg, auth=(workspace.write_key, ""))
    assert r.status_code == 200
    await folded()
    (event,) = await events_of(client, workspace)
    doc = await event_doc(client, workspace, event["_id"])
    ts = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
    received = datetime.fromisoformat(doc["createdAt"].replace("Z", "+00:00"))
    assert abs((received - ts).total_seconds() - 3.0) < 0.002


async def test_an_empty_user_id_means_anonymous(client, workspace, folded):
    r = await client.post(
        "/v1/track", json=rudder_message("track", event="x"), auth=(workspace.write_key, "")
    )
    assert r.status_code == 200
    await folded()
    (event,) = await events_of(client, workspace)
    doc = await event_doc(client, workspace, event["_id"])
    assert (doc["user_id"], doc["anonymous_id"]) == (None, "b2c1-anon")


async def test_identify_traits_at_the_root_or_in_context_traits_are_accepted(client, workspace):
    seg = segment_message("identify", userId="u1", traits={"email": "a@example.com"})
    rudder = rudder_message("identify", userId="u1")
    rudder["context"]["traits"] = {"email": "a@example.com"}  # type: ignore[index]
    for path, msg in (("/v1/i", seg), ("/v1/identify", rudder)):
        r = await client.post(path, json=msg, auth=(workspace.write_key, ""))
        assert r.status_code == 200, r.text


async def test_ajs_next_message_ids_dedupe_like_any_other(client, workspace, folded):
    msg = segment_message("track", event="once")
    for _ in range(3):  # a CORS refusal or a lost answer makes the SDK resend with the same messageId
        r = await client.post("/v1/t", auth=(workspace.write_key, ""), **text_plain(msg))
        assert r.status_code == 200
    await folded()
    assert [e["event"] for e in await events_of(client, workspace)] == ["once"]


async def test_a_track_takes_url_domain_and_campaign_from_its_context_like_a_page(client, workspace, folded):
    for kind, path, build in (("track", "/v1/t", segment_message), ("page", "/v1/page", rudder_message)):
        msg = build(kind, event="Viewed Pricing") if kind == "track" else build(kind, name="Pricing")
        r = await client.post(path, json=msg, auth=(workspace.write_key, ""))
        assert r.status_code == 200, r.text
    await folded()
    events = await events_of(client, workspace)
    assert len(events) == 2
    for event in events:
        doc = await event_doc(client, workspace, event["_id"])
        assert (doc["url"], doc["domain"]) == (LANDING, "shop.example.test"), doc["event"]
        assert doc["campaign"] == CAMPAIGN, doc["event"]


async def test_extra_fields_empty_properties_and_sdk_blocks_are_fine(client, workspace, folded):
    msg = segment_message(
        "track", event="x", properties={}, somethingNew={"a": 1}, options={}, integrations={"All": False}
    )
    r = await client.post("/v1/t", auth=(workspace.write_key, ""), **text_plain(msg))
    assert r.status_code == 200, r.text
    await folded()
    assert len(await events_of(client, workspace)) == 1


async def test_bad_input_on_short_paths_is_refused_clearly_and_loses_nothing(client, workspace, folded):
    auth = (workspace.write_key, "")
    cases = [
        (b"{not json", 400, "JSON"),
        (json.dumps(segment_message("track", event=None)).encode(), 400, "event"),
        (
            json.dumps(segment_message("track", event="x", properties={"b": "x" * 33_000})).encode(),
            413,
            "per event",
        ),
    ]
    for body, status, words in cases:
        r = await client.post("/v1/t", content=body, headers={"Content-Type": "text/plain"}, auth=auth)
        assert r.status_code == status, r.text
        assert r.json()["success"] is False and words in r.json()["message"] and r.json()["code"]
    r = await client.post("/v1/t", auth=("wk_wrong", ""), **text_plain(segment_message("track", event="x")))
    assert r.status_code == 401 and r.json()["message"] == "unknown write key"
    r = await client.post("/v1/t", auth=auth, **text_plain(segment_message("track", event="kept")))
    assert r.status_code == 200
    await folded()
    assert [e["event"] for e in await events_of(client, workspace)] == ["kept"]
