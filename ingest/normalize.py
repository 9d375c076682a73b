"""Turn a validated wire message into the canonical `Event`.

Event names (`page` → `page_view`, `screen` → `screen_view`), URL → domain, campaign (UTM) capture,
and clock-skew correction `timestamp = receivedAt − (sentAt − timestamp)`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

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


_HOST_RE = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.-]*:)?(?://)?(?:[^@/?#]*@)?(\[[^\]/?#]*\]|[^:/?#@]*)")


def domain_of(url: str | None) -> str | None:
    """The lower-cased host of a URL (no port, no user info); None when there is none."""
    if not url:
        return None
    m = _HOST_RE.match(url)
    host = m.group(1).lower() if m else ""
    return host or None


def campaign_from_url(url: str | None) -> dict[str, str]:
    """UTM parameters of a landing URL, as Segment's `context.campaign` names them."""
    if not url or "utm_" not in url:
        return {}
    out: dict[str, str] = {}
    for pair in url.partition("?")[2].partition("#")[0].split("&"):
        key, _, value = pair.partition("=")
        name = _UTM_KEYS.get(key)
        if name and value:
            out[name] = unquote_plus(value) if ("%" in value or "+" in value) else value
    return out


def _str_or_none(value: Any) -> str | None:
    if value is None or value.__class__ is str:
        return value
    return str(value)


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
    correct_skew: bool = True,
) -> Event:
    """Validate the semantics of one message and build its `Event`. Raises `MessageRejected`.

    `correct_skew=False` keeps `timestamp` as sent: an export's (`streamfold import`) was corrected when the
    event was first received, and correcting it again against the time of the import would move it to now."""
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

    context: dict[str, Any] = msg.context or {}
    if batch_context:
        context = {**batch_context, **context}
    properties = msg.properties or {}
    page = context.get("page")
    if not isinstance(page, dict):
        page = {}
    if kind == "page" and properties:
        page = {**properties, **{k: v for k, v in page.items() if v}}
    url = _str_or_none(page.get("url")) or None
    campaign_raw = context.get("campaign")
    campaign = (
        {k: v if isinstance(v, str) else str(v) for k, v in campaign_raw.items() if v is not None and v != ""}
        if isinstance(campaign_raw, dict) and campaign_raw
        else campaign_from_url(url)
    )
    library = context.get("library")
    if not isinstance(library, dict):
        library = {}
    context_traits = context.get("traits")
    if isinstance(context_traits, dict) and context_traits:
        traits = {**context_traits, **msg.traits} if msg.traits else context_traits
    else:
        traits = msg.traits or {}

    # Clock skew: the client's clock may be off; trust the interval between its timestamp and sentAt.
    ts_dt = msg.timestamp or msg.originalTimestamp
    sent_at_dt = msg.sentAt or batch_sent_at
    ts = to_ms(ts_dt) if ts_dt is not None else received_at_ms
    sent_at = to_ms(sent_at_dt) if sent_at_dt is not None else None
    if correct_skew and ts_dt is not None and sent_at is not None:
        ts = received_at_ms - (sent_at - ts)

    rest = {k: v for k, v in context.items() if k not in _LIFTED_CONTEXT_KEYS} if context else {}
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
        path=_str_or_none(page.get("path")) or None,
        title=_str_or_none(page.get("title")) or None,
        referrer=_str_or_none(page.get("referrer")) or None,
        search=_str_or_none(page.get("search")) or None,
        domain=domain_of(url),
        campaign=campaign,
        ip=_str_or_none(context.get("ip")) or request_ip,
        user_agent=_str_or_none(context.get("userAgent")) or request_user_agent,
        library_name=_str_or_none(library.get("name")),
        library_version=_str_or_none(library.get("version")),
        name=_str_or_none(msg.name),
        category=_str_or_none(msg.category),
    )
