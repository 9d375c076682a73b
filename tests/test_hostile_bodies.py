"""Property: random and hostile bodies on every ingest path (deep nesting, huge numbers, odd unicode, wrong types,
broken gzip, truncation) never get a 5xx and never hang, and what was accepted before is intact afterwards."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import uuid
from typing import Any

import httpx
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ingest import keys

from .conftest import LiveServer, WorkspaceKeys

EXAMPLES = 200
REQUEST_TIMEOUT = 10.0  # seconds: a request taking longer counts as a hang

SINGLE = ["track", "page", "screen", "identify", "group", "alias", "t", "p", "s", "i", "g", "a"]
PATHS = (
    [f"/v1/{p}" for p in SINGLE]
    + ["/v1/batch", "/v1/b", "/v1/import", "/beacon/v1/batch", "/v1/m"]
    + ["/v1/sources/crm/sync", "/v1/sources/email/sendgrid", "/v1/sources/email/mailgun"]
)
FIELDS = [
    "type", "event", "userId", "anonymousId", "messageId", "properties", "traits", "context", "timestamp",
    "sentAt", "originalTimestamp", "groupId", "previousId", "name", "category", "integrations", "writeKey",
]  # fmt: skip

odd_text = st.text(
    st.characters(codec=None, exclude_categories=()), max_size=30
)  # surrogates, controls, astral planes
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)  # past any 64-bit or float range
    | st.floats()  # NaN and ±Infinity are not JSON: the body is invalid then
    | odd_text
    | st.sampled_from(["", "2026-01-02T03:04:05.123456+00:00", "2026-13-45T99:99:99Z", "track", "page"])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(odd_text, inner, max_size=4),
    max_leaves=12,
)
messages = st.fixed_dictionaries(
    {}, optional={field: json_values for field in FIELDS} | {"type": st.sampled_from(SINGLE + ["", "TRACK"])}
)


DEEP = "@@deep@@"


def plant(document: Any, field: str) -> None:
    """Put the `DEEP` placeholder in the first record of the document (a batch message, a CRM contact, a
    SendGrid event), or in the document itself."""
    if isinstance(document, dict):
        for name in ("batch", "contacts", "companies", "activities"):
            records = document.get(name)
            if isinstance(records, list) and records and isinstance(records[0], dict):
                records[0][field] = {"x": DEEP}
                return
        document[field] = {"x": DEEP}
    elif isinstance(document, list) and document and isinstance(document[0], dict):
        document[0][field] = DEEP


def deep_text(levels: int, kind: str) -> str:
    return "[" * levels + "1" + "]" * levels if kind == "[" else '{"k":' * levels + "1" + "}" * levels


@st.composite
def payloads(draw: st.DrawFn, path: str) -> Any:
    """A JSON document roughly shaped for `path`, or anything at all."""
    shape = draw(st.sampled_from(["fit", "fit", "fit", "any"]))
    if shape == "any":
        return draw(json_values)
    if path.startswith("/v1/sources/crm"):
        records = st.lists(st.dictionaries(st.sampled_from(["external_id", "email", "name", "custom_fields",
                                                            "updated_at", "type", "amount"]), json_values), max_size=3)  # fmt: skip
        return draw(st.fixed_dictionaries({}, optional={"crm": json_values, "contacts": records,
                                                        "companies": records, "activities": records}))  # fmt: skip
    if path.endswith("sendgrid"):
        return draw(st.lists(st.dictionaries(st.sampled_from(["email", "event", "timestamp", "sg_event_id", "url"]),
                                             json_values), max_size=3))  # fmt: skip
    if path.endswith("mailgun"):
        return {"signature": draw(json_values), "event-data": draw(json_values)}
    if path in ("/v1/batch", "/v1/b", "/v1/import", "/beacon/v1/batch"):
        return draw(st.fixed_dictionaries({"batch": st.lists(messages, max_size=4)},
                                          optional={"sentAt": json_values, "context": json_values}))  # fmt: skip
    return draw(messages)


@st.composite
def requests(draw: st.DrawFn, write_key: str) -> tuple[str, dict[str, str], bytes]:
    path = draw(st.sampled_from(PATHS))
    document = draw(payloads(path))
    key_at = draw(st.sampled_from(["header", "header", "body", "none", "unknown"]))
    key = (
        write_key
        if key_at != "unknown"
        else "wk_" + draw(odd_text.map(lambda t: t.encode("utf-8", "replace").hex()))
    )
    if key_at == "body" and isinstance(document, dict):
        document["writeKey"] = key
    deep = draw(st.integers(0, 2)) == 0  # a value nested up to far past the limit, where a value goes
    if deep:
        plant(document, draw(st.sampled_from(["properties", "traits", "context", "custom_fields", "x"])))
    text = json.dumps(document, ensure_ascii=draw(st.booleans()))
    if deep:
        levels = draw(st.sampled_from([61, 62, 63, 64, 1500, 5000]) | st.integers(50, 5000))
        text = text.replace(f'"{DEEP}"', deep_text(levels, draw(st.sampled_from("[{"))), 1)
    body = text.encode("utf-8", "surrogatepass")
    mutation = draw(st.sampled_from(["none", "none", "none", "truncate", "garbage", "bytes"]))
    if mutation == "truncate":
        body = body[: draw(st.integers(0, len(body)))]
    elif mutation == "garbage":
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.binary(max_size=8)) + body[at:]
    elif mutation == "bytes":
        body = draw(st.binary(max_size=200))
    headers = {"Content-Type": draw(st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded"]))}  # fmt: skip
    encoding = draw(st.sampled_from(["", "", "", "gzip", "gzip", "deflate", "br", "gzip-but-plain"]))
    if encoding == "gzip":
        body = gzip.compress(body)
    if encoding:
        headers["Content-Encoding"] = "gzip" if encoding == "gzip-but-plain" else encoding
    if key_at in ("header", "unknown"):
        if path.startswith("/beacon/"):
            path += f"?writeKey={key}"
        else:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    return path, headers, body


def known(key: str, path: str, document: Any, levels: int, kind: str) -> tuple[str, dict[str, str], bytes]:
    """A request that used to be answered 500: always tried."""
    body = json.dumps(document).replace(f'"{DEEP}"', deep_text(levels, kind)).encode()
    return path, {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}, body


def sentinel(i: int) -> dict[str, Any]:
    return {
        "type": "track", "event": "sentinel", "anonymousId": f"anon-{uuid.uuid4()}", "messageId": str(uuid.uuid4()),
        "properties": {"i": i, "nested": {"list": [1, 2.5, "three", None, True]}, "text": "ünïcødé ✓ 𝄞"},
    }  # fmt: skip


async def sentinels(client: httpx.AsyncClient, ws: WorkspaceKeys) -> list[dict[str, Any]]:
    r = await client.get(
        "/v1/events", params={"event_type": "sentinel", "limit": 100}, headers={"X-API-Key": ws.read_key}
    )
    assert r.status_code == 200, r.text
    return sorted(r.json()["events"], key=lambda e: e["_id"])


async def test_random_bodies_on_every_ingest_path_never_5xx_nor_hang_nor_disturb_accepted_events(
    live_server: LiveServer, workspace: WorkspaceKeys, redis, folded
):
    async with httpx.AsyncClient(base_url=live_server.url, timeout=REQUEST_TIMEOUT) as client:
        r = await client.post(
            "/v1/batch", json={"batch": [sentinel(i) for i in range(5)]}, auth=(workspace.write_key, "")
        )
        assert r.json() == {"success": True}
        await folded()
        before = await sentinels(client, workspace)
        assert len(before) == 5

        seen: set[int] = set()

        @settings(
            max_examples=EXAMPLES,
            deadline=None,  # a slow request is caught by REQUEST_TIMEOUT instead, on a busy machine too
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(request=requests(workspace.write_key))
        @example(request=known(workspace.write_key, "/v1/track", {"properties": {"x": DEEP}}, 5000, "["))
        @example(request=known(workspace.write_key, "/v1/batch", {"batch": [{"traits": DEEP}]}, 10_000, "{"))
        @example(
            request=known(workspace.write_key, "/v1/sources/crm/sync", {"contacts": [{"x": DEEP}]}, 9000, "[")
        )
        def never_a_5xx(request: tuple[str, dict[str, str], bytes]) -> None:
            path, headers, body = request
            with httpx.Client(base_url=live_server.url, timeout=REQUEST_TIMEOUT) as sync_client:
                r = sync_client.post(path, content=body, headers=headers)
            seen.add(r.status_code)
            assert r.status_code < 500, (path, headers, body[:300], r.text)
            if (
                r.status_code >= 400
            ):  # Segment's error shape: RudderStack re-sends a 4xx lacking code and message
                answer = r.json()
                assert answer["success"] is False and answer["code"] and answer["message"], answer

        await asyncio.to_thread(never_a_5xx)
        assert 200 in seen and 400 in seen  # the bodies reached both sides

        await folded()
        assert await sentinels(client, workspace) == before
        partitions = live_server.settings.partitions
        dead = [
            await redis.xlen(keys.dead_letters(live_server.settings.key_prefix, p)) for p in range(partitions)
        ]
        assert dead == [0] * partitions, "the fold refused something the ingest accepted"
