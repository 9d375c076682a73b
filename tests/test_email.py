"""Email webhooks: SendGrid's Event Webhook and Mailgun's, verified by their signature schemes when a secret is set."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ingest.sources.http import set_signing_secret

from .conftest import WorkspaceKeys

T = 1_777_000_000  # 2026-04-24, Unix seconds as the providers send them


def sendgrid_events() -> list[dict]:
    base = {
        "email": "Ada@Engines.io",
        "timestamp": T,
        "sg_message_id": "msg-1.filter",
        "category": ["launch"],
    }
    return [
        {**base, "event": "delivered", "sg_event_id": "sg-1"},
        {**base, "event": "open", "sg_event_id": "sg-2", "timestamp": T + 60, "useragent": "Mail/1.0", "ip": "10.0.0.1"},
        {**base, "event": "click", "sg_event_id": "sg-3", "timestamp": T + 90,
         "url": "https://www.engines.io/pricing?utm_source=newsletter&utm_medium=email"},
        {**base, "event": "bounce", "sg_event_id": "sg-4", "email": "gone@engines.io", "type": "bounce", "reason": "550"},
        {**base, "event": "unsubscribe", "sg_event_id": "sg-5", "timestamp": T + 120},
    ]  # fmt: skip


def mailgun_payload(event: str = "clicked", key: str = "mg-key", **data: object) -> dict:
    ts, token = str(T), "t" * 50
    sig = hmac.new(key.encode(), f"{ts}{token}".encode(), hashlib.sha256).hexdigest()
    event_data = {
        "event": event, "id": f"mg-{event}", "timestamp": T + 0.5, "recipient": "ada@engines.io",
        "url": "https://engines.io/blog", "message": {"headers": {"message-id": "m@mg", "subject": "Hi"}},
        "client-info": {"user-agent": "Mozilla"}, **data,
    }  # fmt: skip
    return {"signature": {"timestamp": ts, "token": token, "signature": sig}, "event-data": event_data}


async def post(
    client: httpx.AsyncClient, ws: WorkspaceKeys, provider: str, body: bytes | object, **kw
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post(
        f"/v1/sources/email/{provider}",
        content=content,
        auth=(ws.write_key, ""),
        headers=kw.get("headers", {}),
    )


async def get(client: httpx.AsyncClient, ws: WorkspaceKeys, path: str, **params: object) -> dict:
    r = await client.get(path, params=params, headers={"Authorization": f"Bearer {ws.read_key}"})
    assert r.status_code == 200, r.text
    return r.json()


async def test_sendgrid_events_become_email_events_of_the_recipient(client, workspace, folded):
    r = await post(client, workspace, "sendgrid", sendgrid_events())
    assert r.status_code == 200 and r.json() == {"success": True}
    await folded()
    events = (await get(client, workspace, "/v1/events", sort_dir="asc", limit=100))["events"]
    assert sorted(e["event"] for e in events) == sorted(
        ["email_delivered", "email_open", "email_click", "email_bounce", "email_unsubscribe"]
    )
    click = next(e for e in events if e["event"] == "email_click")
    assert click["url"].startswith("https://www.engines.io/pricing") and click["domain"] == "www.engines.io"
    assert click["timestamp"] == "2026-04-24T03:08:10.000Z"
    full = (await get(client, workspace, f"/v1/events/{click['_id']}"))["event"]
    assert full["campaign"] == {"source": "newsletter", "medium": "email"}
    by_email = {c["email"]: c for c in (await get(client, workspace, "/v1/contacts"))["contacts"]}
    assert set(by_email) == {"ada@engines.io", "gone@engines.io"}
    assert (
        by_email["ada@engines.io"]["events_count"] == 4 and by_email["gone@engines.io"]["events_count"] == 1
    )


async def test_webhook_retries_are_deduplicated_by_the_provider_event_id(client, workspace, folded):
    for _ in range(2):
        assert (await post(client, workspace, "sendgrid", sendgrid_events())).status_code == 200
        assert (await post(client, workspace, "mailgun", mailgun_payload())).status_code == 200
    await folded()
    assert (await get(client, workspace, "/v1/events", count_only="true"))["count"] == 6


async def test_email_events_join_the_contact_identify_created(client, workspace, folded):
    r = await client.post(
        "/v1/identify",
        json={"userId": "u1", "traits": {"email": "ada@engines.io"}},
        auth=(workspace.write_key, ""),
    )
    assert r.status_code == 200
    assert (await post(client, workspace, "mailgun", mailgun_payload())).status_code == 200
    await folded()
    (c,) = (await get(client, workspace, "/v1/contacts"))["contacts"]
    assert c["user_ids"] == ["u1"] and c["events_count"] == 1
    (e,) = (await get(client, workspace, "/v1/events", contact_id=c["_id"]))["events"]
    assert e["event"] == "email_click" and e["url"] == "https://engines.io/blog"


async def test_mailgun_event_kinds_map_to_email_events(client, workspace, folded):
    for event, extra in (("delivered", {}), ("opened", {}), ("failed", {"severity": "permanent"}),
                         ("failed", {"severity": "temporary", "id": "mg-temp"}), ("unsubscribed", {}),
                         ("complained", {})):  # fmt: skip
        r = await post(client, workspace, "mailgun", mailgun_payload(event, **extra))
        assert r.status_code == 200, r.text
    await folded()
    types = (await get(client, workspace, "/v1/events/types"))["types"]
    assert types == [
        "email_bounce",
        "email_deferred",
        "email_delivered",
        "email_open",
        "email_spam_report",
        "email_unsubscribe",
    ]


async def test_sendgrid_signature_is_verified_when_a_key_is_configured(
    client, workspace, folded, settings, redis
):
    private = ec.generate_private_key(ec.SECP256R1())
    public_der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    await set_signing_secret(
        redis, settings.key_prefix, workspace.id, "sendgrid", base64.b64encode(public_der).decode()
    )
    body = json.dumps(sendgrid_events()).encode()
    ts = str(T)
    signature = base64.b64encode(private.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
    good = {"X-Twilio-Email-Event-Webhook-Signature": signature, "X-Twilio-Email-Event-Webhook-Timestamp": ts}

    r = await post(client, workspace, "sendgrid", body)
    assert r.status_code == 401 and r.json()["code"] == "invalid_signature"
    r = await post(client, workspace, "sendgrid", body.replace(b"sg-1", b"sg-X"), headers=good)
    assert r.status_code == 401 and "does not match" in r.json()["message"]
    r = await post(
        client, workspace, "sendgrid", body, headers={**good, "X-Twilio-Email-Event-Webhook-Timestamp": "1"}
    )
    assert r.status_code == 401
    r = await post(client, workspace, "sendgrid", body, headers=good)
    assert r.status_code == 200, r.text
    await folded()
    assert (await get(client, workspace, "/v1/events", count_only="true"))["count"] == 5


async def test_mailgun_signature_is_verified_when_a_key_is_configured(
    client, workspace, folded, settings, redis
):
    await set_signing_secret(redis, settings.key_prefix, workspace.id, "mailgun", "mg-key")
    r = await post(client, workspace, "mailgun", mailgun_payload(key="wrong-key"))
    assert r.status_code == 401 and r.json()["code"] == "invalid_signature"
    unsigned = mailgun_payload()
    del unsigned["signature"]
    assert (await post(client, workspace, "mailgun", unsigned)).status_code == 401
    assert (await post(client, workspace, "mailgun", mailgun_payload())).status_code == 200
    await folded()
    assert (await get(client, workspace, "/v1/events", count_only="true"))["count"] == 1


async def test_bad_sendgrid_items_are_rejected_by_index_and_the_rest_kept(client, workspace, folded):
    events = sendgrid_events()[:2] + [
        {"event": "open", "timestamp": T},  # no email
        {"event": "teleported", "email": "a@b.c", "timestamp": T},
        {"event": "click", "email": "a@b.c", "timestamp": T, "sg_event_id": "x"},  # no url
        {"event": "open", "email": "a@b.c", "timestamp": "yesterday"},
        "not an object",
    ]
    r = await post(client, workspace, "sendgrid", events)
    assert r.status_code == 200
    body = r.json()
    assert body["accepted"] == 2
    assert [(x["index"], x["field"]) for x in body["rejected"]] == [
        (2, "email"),
        (3, "event"),
        (4, "url"),
        (5, "timestamp"),
        (6, "body"),
    ]
    await folded()
    assert (await get(client, workspace, "/v1/events", count_only="true"))["count"] == 2


async def test_bad_webhook_bodies_are_400_naming_the_field(client, workspace):
    r = await post(client, workspace, "sendgrid", b"{oops")
    assert r.status_code == 400 and "body" in r.json()["message"]
    r = await post(client, workspace, "sendgrid", [])
    assert r.status_code == 400 and "array" in r.json()["message"]
    r = await post(client, workspace, "sendgrid", [{"event": "open"}])
    assert r.status_code == 400 and "[0].email" in r.json()["message"]
    r = await post(client, workspace, "mailgun", {"signature": {}})
    assert r.status_code == 400 and "event-data" in r.json()["message"]
    r = await post(client, workspace, "mailgun", mailgun_payload(recipient=None))
    assert r.status_code == 400 and "event-data.recipient" in r.json()["message"]


async def test_unknown_provider_is_404_and_keys_are_checked(client, workspace):
    r = await post(client, workspace, "postal-pigeon", [])
    assert r.status_code == 404 and "sendgrid" in r.json()["message"]
    r = await client.post("/v1/sources/email/sendgrid", json=sendgrid_events())
    assert r.status_code == 401
    r = await client.post("/v1/sources/email/sendgrid", json=sendgrid_events(), auth=(workspace.read_key, ""))
    assert r.status_code == 403
    r = await client.post(
        f"/v1/sources/email/sendgrid?writeKey={workspace.write_key}", json=sendgrid_events()
    )
    assert r.status_code == 200
