"""Email-provider webhooks: SendGrid's Event Webhook and Mailgun's webhooks → `email_*` events.

Each provider event becomes one listed event attributed to its recipient by email address (the fold links it
to — or creates — the contact with that email). Clicks keep the clicked URL (its domain and UTM campaign too),
so they can count as `email` touchpoints. The provider's own event id is the messageId: webhook retries are
deduplicated. When the workspace has a signing secret for the provider, the request must carry a valid
signature: SendGrid signs `timestamp + raw body` with ECDSA P-256 / SHA-256 (public key: base64 DER, from
Mail Settings → Signed Event Webhook); Mailgun signs `timestamp + token` with HMAC-SHA256 (the HTTP webhook
signing key), inside the body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..errors import InvalidRequest, Unauthorized
from ..ids import event_id, ulids
from ..nesting import MAX_NESTING, check_nesting
from ..normalize import campaign_from_url, domain_of
from ..schema import Event
from .profile import normalize_email

PROVIDERS = ("sendgrid", "mailgun")

SENDGRID_EVENTS = {
    "processed": "email_processed", "dropped": "email_dropped", "deferred": "email_deferred",
    "delivered": "email_delivered", "bounce": "email_bounce", "blocked": "email_bounce", "open": "email_open",
    "click": "email_click", "spamreport": "email_spam_report", "unsubscribe": "email_unsubscribe",
    "group_unsubscribe": "email_unsubscribe", "group_resubscribe": "email_resubscribe",
}  # fmt: skip
MAILGUN_EVENTS = {
    "accepted": "email_processed", "delivered": "email_delivered", "opened": "email_open", "clicked": "email_click",
    "unsubscribed": "email_unsubscribe", "complained": "email_spam_report", "rejected": "email_dropped",
}  # fmt: skip
SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


class SignatureRejected(Unauthorized):
    """A webhook without a valid provider signature, for a workspace that configured a signing secret."""

    code = "invalid_signature"


@dataclass(slots=True)
class WebhookRejection:
    index: int
    field: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "code": "invalid_event", "message": self.reason}


@dataclass(slots=True)
class WebhookPlan:
    events: list[Event] = field(default_factory=list)
    rejected: list[WebhookRejection] = field(default_factory=list)


class _Bad(Exception):
    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason


# ---------------------------------------------------------------- signatures


def verify_sendgrid(
    public_key_b64: str, body: bytes, signature_b64: str | None, timestamp: str | None
) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

    if not signature_b64 or not timestamp:
        raise SignatureRejected(f"missing {SENDGRID_SIGNATURE} / {SENDGRID_TIMESTAMP} headers")
    key_text = public_key_b64.strip()
    try:
        if key_text.startswith("-----BEGIN"):
            key = load_pem_public_key(key_text.encode())
        else:
            key = load_der_public_key(base64.b64decode(key_text))
        signature = base64.b64decode(signature_b64)
    except (ValueError, binascii.Error) as exc:
        raise SignatureRejected(f"cannot read the signature or the configured public key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SignatureRejected("the configured SendGrid verification key is not an ECDSA public key")
    try:
        key.verify(signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureRejected("SendGrid signature does not match the body") from None


def verify_mailgun(signing_key: str, signature: Any) -> None:
    if not isinstance(signature, dict):
        raise SignatureRejected("missing the Mailgun 'signature' object")
    ts, token, sig = signature.get("timestamp"), signature.get("token"), signature.get("signature")
    if not (isinstance(token, str) and isinstance(sig, str) and isinstance(ts, str | int)):
        raise SignatureRejected("the Mailgun signature needs timestamp, token and signature")
    expected = hmac.new(signing_key.encode(), f"{ts}{token}".encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, sig.lower()):
        raise SignatureRejected("Mailgun signature does not match")


# ---------------------------------------------------------------- payloads → events


def _email_event(
    *, eid: str, provider: str, name: str, provider_id: str, ts_ms: int, now: int, email: str,
    url: str | None, props: dict[str, Any], ip: str | None, user_agent: str | None,
) -> Event:  # fmt: skip
    if url is not None:
        props["url"] = url
    return Event(
        id=eid, kind="track", event=name, message_id=f"{provider}:{provider_id}", timestamp=ts_ms,
        received_at=now, properties=props, url=url, domain=domain_of(url), campaign=campaign_from_url(url),
        ip=ip, user_agent=user_agent, source=f"email:{provider}", email=email,
    )  # fmt: skip


def _recipient(value: Any, field: str) -> str:
    email = normalize_email(value)
    if email is None:
        raise _Bad(field, "is required: the recipient's email address")
    return email


def _seconds_to_ms(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Bad(field, "is required: Unix seconds")
    return int(round(value * 1000))


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _sendgrid_event(item: dict[str, Any], eid: str, now: int) -> Event:
    kind = item.get("event")
    if not isinstance(kind, str) or kind not in SENDGRID_EVENTS:
        raise _Bad("event", f"{kind!r} is not a SendGrid event type ({', '.join(sorted(SENDGRID_EVENTS))})")
    name = SENDGRID_EVENTS[kind]
    if kind == "bounce" and item.get("type") == "blocked":
        name = SENDGRID_EVENTS["blocked"]
    email = _recipient(item.get("email"), "email")
    ts = _seconds_to_ms(item.get("timestamp"), "timestamp")
    provider_id = _str(item.get("sg_event_id")) or hashlib.sha256(msgspec.json.encode(item)).hexdigest()[:32]
    url = _str(item.get("url"))
    if kind == "click" and url is None:
        raise _Bad("url", "is required for click events")
    props: dict[str, Any] = {"provider": "sendgrid", "provider_event": kind}
    for src, dst in (("sg_message_id", "email_message_id"), ("reason", "reason"), ("type", "bounce_type"),
                     ("status", "status"), ("category", "category"), ("asm_group_id", "group_id")):  # fmt: skip
        if item.get(src) is not None:
            props[dst] = item[src]
    return _email_event(
        eid=eid, provider="sendgrid", name=name, provider_id=provider_id, ts_ms=ts, now=now, email=email,
        url=url, props=props, ip=_str(item.get("ip")), user_agent=_str(item.get("useragent")),
    )  # fmt: skip


def plan_sendgrid(body: bytes, now: int) -> WebhookPlan:
    """SendGrid posts a JSON array of events; bad items are rejected by index, the others kept."""
    check_nesting(body, MAX_NESTING + 1, levels=2)  # each item counts from its own level
    try:
        items = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}", details={"field": "body"}) from exc
    if not isinstance(items, list) or not items:
        raise InvalidRequest(
            "body must be a non-empty JSON array of SendGrid events", details={"field": "body"}
        )
    plan = WebhookPlan()
    for i, (item, u) in enumerate(zip(items, ulids(len(items), now), strict=True)):
        try:
            if not isinstance(item, dict):
                raise _Bad("body", "each event must be a JSON object")
            plan.events.append(_sendgrid_event(item, event_id(u), now))
        except _Bad as exc:
            plan.rejected.append(WebhookRejection(i, exc.field, exc.reason))
    return plan


def decode_mailgun(body: bytes) -> dict[str, Any]:
    check_nesting(body, MAX_NESTING + 1, levels=2)  # the event counts from `event-data`
    try:
        payload = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}", details={"field": "body"}) from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("event-data"), dict):
        raise InvalidRequest(
            "event-data: is required (Mailgun posts {signature, event-data})", details={"field": "event-data"}
        )
    return payload


def plan_mailgun(payload: dict[str, Any], now: int) -> WebhookPlan:
    """Mailgun posts one event per request: `{signature: {...}, "event-data": {...}}`."""
    data = payload["event-data"]
    plan = WebhookPlan()
    try:
        kind = data.get("event")
        if kind == "failed":
            name = "email_bounce" if data.get("severity") == "permanent" else "email_deferred"
        elif isinstance(kind, str) and kind in MAILGUN_EVENTS:
            name = MAILGUN_EVENTS[kind]
        else:
            raise _Bad("event-data.event", f"{kind!r} is not a Mailgun event type")
        email = _recipient(data.get("recipient"), "event-data.recipient")
        ts = _seconds_to_ms(data.get("timestamp"), "event-data.timestamp")
        url = _str(data.get("url"))
        if kind == "clicked" and url is None:
            raise _Bad("event-data.url", "is required for clicked events")
        provider_id = _str(data.get("id")) or hashlib.sha256(msgspec.json.encode(data)).hexdigest()[:32]
        props: dict[str, Any] = {"provider": "mailgun", "provider_event": kind}
        message = data.get("message") if isinstance(data.get("message"), dict) else {}
        headers = message.get("headers") if isinstance(message.get("headers"), dict) else {}
        if headers.get("message-id"):
            props["email_message_id"] = headers["message-id"]
        if headers.get("subject"):
            props["subject"] = headers["subject"]
        for src in ("severity", "reason", "tags"):
            if data.get(src) is not None:
                props[src] = data[src]
        client = data.get("client-info") if isinstance(data.get("client-info"), dict) else {}
        (u,) = ulids(1, now)
        plan.events.append(
            _email_event(
                eid=event_id(u),
                provider="mailgun",
                name=name,
                provider_id=provider_id,
                ts_ms=ts,
                now=now,
                email=email,
                url=url,
                props=props,
                ip=_str(data.get("ip")),
                user_agent=_str(client.get("user-agent")),
            )  # fmt: skip
        )
    except _Bad as exc:
        plan.rejected.append(WebhookRejection(0, exc.field, exc.reason))
    return plan
