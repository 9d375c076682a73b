"""msgspec shapes: what clients send (Segment's HTTP tracking API) and the canonical `Event` kept in the log.

`Event` is encoded as a msgpack array (`array_like`), so evolve it only by appending optional fields.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

# ---------------------------------------------------------------- wire (Segment-compatible) shapes

MESSAGE_TYPES = ("track", "page", "screen", "identify", "group", "alias")


class WireMessage(msgspec.Struct):
    """One Segment message. Every optional field accepts `null`; unknown fields are ignored."""

    type: str | None = None
    event: str | None = None
    name: str | None = None
    category: str | None = None
    messageId: str | int | None = None
    anonymousId: str | int | None = None
    userId: str | int | None = None
    groupId: str | int | None = None
    previousId: str | int | None = None
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    timestamp: datetime | None = None
    originalTimestamp: datetime | None = None
    sentAt: datetime | None = None
    writeKey: str | None = None


class WireBatch(msgspec.Struct):
    """The `/v1/batch` body: messages are kept raw so each one is validated (and sized) on its own."""

    batch: list[msgspec.Raw] | None = None
    sentAt: datetime | None = None
    writeKey: str | None = None
    context: dict[str, Any] | None = None


# ---------------------------------------------------------------- canonical event (stored in the log)


class Event(msgspec.Struct, array_like=True, omit_defaults=True, gc=False):
    """An accepted, normalized message. Times are integer milliseconds since the Unix epoch (UTC).

    Not tracked by the garbage collector (`gc=False`: a fold batch decodes thousands, and an event holds only
    strings, numbers and JSON-like dicts, never a reference cycle)."""

    id: str  # evt_<ULID>, given on receipt
    kind: str  # track | page | screen | identify | group | alias
    event: str  # page_view, screen_view, the track name, identify, group, alias
    message_id: str  # the client's messageId (the dedupe key within a workspace)
    timestamp: int  # skew-corrected event time
    received_at: int
    sent_at: int | None = None
    original_timestamp: int | None = None
    anonymous_id: str | None = None
    user_id: str | None = None
    group_id: str | None = None
    previous_id: str | None = None
    properties: dict[str, Any] = {}
    traits: dict[str, Any] = {}
    context: dict[str, Any] = {}  # what remains of the client's context after the fields below
    url: str | None = None
    path: str | None = None
    title: str | None = None
    referrer: str | None = None
    search: str | None = None
    domain: str | None = None
    campaign: dict[str, str] = {}
    ip: str | None = None
    user_agent: str | None = None
    library_name: str | None = None
    library_version: str | None = None
    name: str | None = None  # page / screen name
    category: str | None = None
    source: str | None = None  # a non-SDK source: "crm:<name>", "email:<provider>"
    email: str | None = None  # who the event is about, for sources that know people by email (CRM, email)


EVENT_KINDS = ("track", "page", "screen")  # kinds that are "events" in the Events API (not identity calls)
CRM_CONTACT, CRM_COMPANY = "crm_contact", "crm_company"  # CRM upserts: identity records, not listed events
SETTINGS = "settings"  # a workspace's fold settings (`properties`: retention_days), written by `EventLog.append_settings`
DELETION = "deletion"  # forget a person (`properties`: deletion_id, contact_id, suppress): `EventLog.append_deletion`
DELETED = (
    "deleted"  # what a forgotten person's event became in the log: its id, times and messageId, nothing else
)

_event_list_encoder = msgspec.msgpack.Encoder()
_event_list_decoder = msgspec.msgpack.Decoder(list[Event])
_raw_list_decoder = msgspec.msgpack.Decoder(list[msgspec.Raw])
_event_decoder = msgspec.msgpack.Decoder(Event)


def encode_events(events: list[Event]) -> bytes:
    return _event_list_encoder.encode(events)


def decode_events(data: bytes) -> list[Event]:
    return _event_list_decoder.decode(data)


def decode_event_at(data: bytes, index: int) -> Event:
    """Decode only the `index`-th event of an encoded entry (the others are skipped, not built)."""
    return _event_decoder.decode(_raw_list_decoder.decode(data)[index])
