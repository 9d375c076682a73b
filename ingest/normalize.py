"""Turn a validated wire message into the canonical `Event`.

Event names (`page` → `page_view`, `screen` → `screen_view`), URL → domain, campaign (UTM) capture,
and clock-skew correction `timestamp = receivedAt − (sentAt − timestamp)`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .errors import InvalidRequest
from .schema import MESSAGE_TYPES, Event, WireMessage

EVENT_NAME_OF_KIND = {
    "page": "page_view",
    "screen": "screen_view",
    "identify": "identify",
    "group": "group",
    "alias": "alias",
}
_UTM_KEYS = {
    "utm_source": "source",
    "utm_medium": "medium",
    "utm_campaign": "name",
    "utm_term": "term",
    "utm_content": "content",
}
# context keys lifted into Event fields (the rest of context is kept as is)
_LIFTED_CONTEXT_KEYS = ("page", "campaign", "ip", "userAgent", "library", "traits")
MAX_EVENT_NAME = 200


class MessageRejected(InvalidRequest):
    """One message of a request is invalid; `field` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", details={"field": field})
        self.field = field
        self.reason = message


def to_ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def _as_id(value: str | int | None) -> str | None:
    if value is None:
        return None
    s = str(value)
    return s if s != "" else None  # userId "" means anonymous (RudderStack JS)


def domain_of(url: str | None) -> str | None:
    if not url:
        return None
    try:
        host = urlsplit(url if "//" in url else f"//{url}").hostname
    except ValueError:
        return None
    return host.lower() if host else None


def campaign_from_url(url: str | None) -> dict[str, str]:
    if not url or "utm_" not in url:
        return {}
    try:
        query = urlsplit(url).query
    except ValueError:
        return {}
    return {_UTM_KEYS[k]: v for k, v in parse_qsl(query) if k in _UTM_KEYS and v}


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def normalize(
    msg: WireMessage,
    *,
    kind_hint: str | None,
    event_id: str,
    received_at_ms: int,
    batch_sent_at: datetime | None,
    batch_context: dict[str, Any] | None,
    request_ip: str | None,
    request_user_agent: str | None,
) -> Event:
    """Validate the semantics of one message and build its `Event`. Raises `MessageRejected`."""
    kind = (msg.type or kind_hint or "").lower()
    if not kind:
        raise MessageRejected("type", "is required (one of track, page, screen, identify, group, alias)")
    if kind not in MESSAGE_TYPES:
        raise MessageRejected("type", f"{msg.type!r} is not one of {', '.join(MESSAGE_TYPES)}")

    user_id = _as_id(msg.userId)
    anonymous_id = _as_id(msg.anonymousId)
    if user_id is None and anonymous_id is None:
        raise MessageRejected("userId", "userId or anonymousId is required")

    if kind == "track":
        if not isinstance(msg.event, str) or not msg.event.strip():
            raise MessageRejected("event", "is required for track calls")
        name = msg.event.strip()
        if len(name) > MAX_EVENT_NAME:
            raise MessageRejected("event", f"is longer than {MAX_EVENT_NAME} characters")
    else:
        name = EVENT_NAME_OF_KIND[kind]
    group_id = _as_id(msg.groupId)
    previous_id = _as_id(msg.previousId)
    if kind == "group" and group_id is None:
        raise MessageRejected("groupId", "is required for group calls")
    if kind == "alias" and previous_id is None:
        raise MessageRejected("previousId", "is required for alias calls")

    context: dict[str, Any] = dict(batch_context or {})
    if msg.context:
        context.update(msg.context)
    properties = msg.properties or {}
    page = context.get("page") if isinstance(context.get("page"), dict) else {}
    page_props = properties if kind == "page" else {}

    def page_field(key: str) -> str | None:
        return _str_or_none(page.get(key) or page_props.get(key))

    url = page_field("url")
    campaign_raw = context.get("campaign")
    campaign = (
        {k: str(v) for k, v in campaign_raw.items() if v is not None and v != ""}
        if isinstance(campaign_raw, dict)
        else {}
    ) or campaign_from_url(url)
    library = context.get("library") if isinstance(context.get("library"), dict) else {}
    traits: dict[str, Any] = {}
    if isinstance(context.get("traits"), dict):
        traits.update(context["traits"])
    if msg.traits:
        traits.update(msg.traits)

    # Clock skew: the client's clock may be off; trust the interval between its timestamp and sentAt.
    ts_dt = msg.timestamp or msg.originalTimestamp
    sent_at_dt = msg.sentAt or batch_sent_at
    ts = to_ms(ts_dt) if ts_dt is not None else received_at_ms
    sent_at = to_ms(sent_at_dt) if sent_at_dt is not None else None
    if ts_dt is not None and sent_at is not None:
        ts = received_at_ms - (sent_at - ts)

    rest = {k: v for k, v in context.items() if k not in _LIFTED_CONTEXT_KEYS}
    message_id = _as_id(msg.messageId) or event_id
    return Event(
        id=event_id,
        kind=kind,
        event=name,
        message_id=message_id,
        timestamp=ts,
        received_at=received_at_ms,
        sent_at=sent_at,
        original_timestamp=to_ms(msg.originalTimestamp) if msg.originalTimestamp else None,
        anonymous_id=anonymous_id,
        user_id=user_id,
        group_id=group_id,
        previous_id=previous_id,
        properties=properties,
        traits=traits,
        context=rest,
        url=url,
        path=page_field("path"),
        title=page_field("title"),
        referrer=page_field("referrer"),
        search=page_field("search"),
        domain=domain_of(url),
        campaign=campaign,
        ip=_str_or_none(context.get("ip")) or request_ip,
        user_agent=_str_or_none(context.get("userAgent")) or request_user_agent,
        library_name=_str_or_none(library.get("name")),
        library_version=_str_or_none(library.get("version")),
        name=_str_or_none(msg.name),
        category=_str_or_none(msg.category),
    )
