"""The JSON nesting limit: 64 levels per event, refused with a 400 naming the field, never a 500."""

from __future__ import annotations

import json
import timeit
import uuid

import pytest

from ingest.nesting import MAX_NESTING, nesting_exceeds

from .test_crm import ADA, SYNC
from .test_email import mailgun_payload, post, sendgrid_events

DEEP = 10_000


def nested(levels: int, kind: str = "array") -> object:
    """A value `levels` arrays (or objects) deep; the innermost holds 1."""
    value: object = 1
    for _ in range(levels):
        value = [value] if kind == "array" else {"k": value}
    return value


def body(value: object) -> bytes:
    # json.dumps recurses too; a deep value is spliced in as text
    return json.dumps(value, separators=(",", ":")).encode()


def deep_text(levels: int, kind: str = "array") -> bytes:
    if kind == "array":
        return b"[" * levels + b"1" + b"]" * levels
    return b'{"k":' * levels + b"1" + b"}" * levels


def message(kind: str = "track", field: str | None = None, levels: int = 0, shape: str = "array") -> bytes:
    msg: dict[str, object] = {"type": kind, "event": "e", "userId": "u1", "messageId": str(uuid.uuid4())}
    if field is None:
        return body(msg)
    msg[field] = {"deep": "@@"}
    return body(msg).replace(b'"@@"', deep_text(levels, shape))


def batch(*messages: bytes) -> bytes:
    return b'{"batch":[' + b",".join(messages) + b"]}"


@pytest.mark.parametrize("shape", ["array", "object"])
@pytest.mark.parametrize(
    ("path", "kind", "field"),
    [
        ("/v1/track", "track", "properties"),
        ("/v1/identify", "identify", "traits"),
        ("/v1/p", "page", "context"),
    ],
)
async def test_a_message_nested_thousands_of_levels_is_400_naming_the_field(
    client, workspace, path, kind, field, shape
):
    levels = 5_000  # as deep as fits in one event's 32 KB
    r = await client.post(path, content=message(kind, field, levels, shape), auth=(workspace.write_key, ""))
    assert r.status_code == 400, r.text
    answer = r.json()
    assert answer["success"] is False and answer["code"] == "invalid_request"
    assert answer["errors"][0]["field"] == field
    assert f"{field}: nests deeper than 64 levels" in answer["message"]


async def test_the_limit_is_64_levels_counting_the_event_itself(client, workspace):
    # the message object is level 1 and `properties` level 2, so the arrays in it may nest 62 more levels
    ok = message("track", "properties", MAX_NESTING - 2)
    r = await client.post("/v1/track", content=ok, auth=(workspace.write_key, ""))
    assert r.status_code == 200, r.text
    r = await client.post("/v1/batch", content=batch(ok), auth=(workspace.write_key, ""))
    assert r.json() == {"success": True}
    too_deep = message("track", "properties", MAX_NESTING - 1)
    r = await client.post("/v1/track", content=too_deep, auth=(workspace.write_key, ""))
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "properties"
    r = await client.post("/v1/batch", content=batch(too_deep), auth=(workspace.write_key, ""))
    assert r.status_code == 400 and "batch[0].properties" in r.json()["message"]


@pytest.mark.parametrize("levels", [100, DEEP])
async def test_a_too_deep_message_in_a_batch_is_rejected_by_index_and_its_neighbours_kept(
    client, workspace, folded, levels
):
    sent = batch(message(), message(), message(), message("identify", "traits", levels, "object"), message())
    r = await client.post("/v1/batch", content=sent, auth=(workspace.write_key, ""))
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["accepted"] == 4
    assert [(x["index"], x["field"]) for x in answer["rejected"]] == [(3, "traits")]
    assert "64 levels" in answer["rejected"][0]["message"]
    await folded()
    r = await client.get(
        "/v1/events", params={"count_only": "true"}, headers={"X-API-Key": workspace.read_key}
    )
    assert r.json()["count"] == 4


async def test_a_too_deep_batch_context_is_400_naming_it(client, workspace):
    for levels in (100, DEEP):
        sent = b'{"context":{"x":' + deep_text(levels) + b'},"batch":[' + message() + b"]}"
        r = await client.post("/v1/batch", content=sent, auth=(workspace.write_key, ""))
        assert r.status_code == 400, r.text
        assert r.json()["message"].startswith("context: nests deeper")


async def test_brackets_inside_strings_do_not_count(client, workspace):
    msg = json.loads(message())
    msg["properties"] = {"a": "[" * 500, "b": "}" * 500, "c": '\\"[[[[', "d": nested(20)}
    r = await client.post("/v1/track", json=msg, auth=(workspace.write_key, ""))
    assert r.status_code == 200, r.text


async def test_a_crm_record_nested_too_deep_is_rejected_by_list_and_index(client, workspace):
    for levels in (100, DEEP):
        record = body({**ADA, "custom_fields": {"x": "@@"}}).replace(b'"@@"', deep_text(levels, "object"))
        sent = b'{"crm":"hubspot","contacts":[' + body(ADA) + b"," + record + b"]}"
        r = await client.post(SYNC, content=sent, auth=(workspace.write_key, ""))
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["accepted"]["contacts"] == 1
        assert [(x["list"], x["index"], x["field"]) for x in answer["rejected"]] == [
            ("contacts", 1, "custom_fields")
        ]


async def test_too_deep_email_webhooks_are_400_naming_the_field(client, workspace):
    for levels in (100, DEEP):
        events = body(sendgrid_events()).replace(b'["launch"]', deep_text(levels), 1)
        r = await post(client, workspace, "sendgrid", events)
        assert r.status_code == 400, r.text
        assert r.json()["message"].startswith("[0].category: nests deeper")
        payload = body(mailgun_payload(tags="@@")).replace(b'"@@"', deep_text(levels))
        r = await post(client, workspace, "mailgun", payload)
        assert r.status_code == 400, r.text
        assert r.json()["message"].startswith("event-data.tags: nests deeper")


def test_the_nesting_check_is_exact_and_ignores_strings():
    assert not nesting_exceeds(deep_text(64), 64)
    assert nesting_exceeds(deep_text(65), 64)
    assert nesting_exceeds(deep_text(65, "object"), 64)
    assert nesting_exceeds(b"[" * DEEP, 64)  # not valid JSON, but a decoder would recurse that deep first
    # closing brackets in a string cannot hide depth that follows them
    hidden = b'["' + b"]" * 100 + b'",' + deep_text(70) + b',"' + b"[" * 100 + b'"]'
    assert nesting_exceeds(hidden, 64)
    assert not nesting_exceeds(b'["' + b"[" * 100 + b'\\"]"]', 64)


def test_the_nesting_check_costs_little_per_1kb_event():
    event = {
        "type": "track", "event": "Button Clicked", "messageId": f"ajs-next-1714000000000-{uuid.uuid4()}",
        "anonymousId": str(uuid.uuid4()), "timestamp": "2026-01-02T03:04:05.123Z",
        "properties": {"label": "Sign up", "plan": "pro", "price": 12.5, "tags": ["a", "b"]},
        "context": {
            "page": {"url": "https://www.example.com/pricing?utm_source=google", "path": "/pricing",
                     "referrer": "https://www.google.com/", "title": "Pricing", "search": "?utm_source=google"},
            "campaign": {"source": "google"}, "library": {"name": "analytics.js", "version": "next-1.84.3"},
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0",
            "locale": "en-US", "screen": {"width": 1920, "height": 1080}, "padding": "x" * 300,
        },
    }  # fmt: skip
    data = body(event)
    assert 900 < len(data) < 1200
    per_event = min(timeit.repeat(lambda: nesting_exceeds(data, MAX_NESTING), number=2000, repeat=5)) / 2000
    assert per_event < 5e-6, f"{per_event * 1e6:.2f} µs per 1 KB event"
