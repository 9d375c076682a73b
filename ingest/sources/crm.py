"""CRM sync: contact upserts, company upserts and activities in one request, each record its own log event.

Records are checked one by one: a bad record is rejected with its list, index and reason; the valid ones are
appended (one log entry for the request). Idempotent: a record's messageId is a hash of the CRM name and the
record's canonical JSON, so re-sending a sync is deduplicated by the fold and changes nothing. Partial: only the
fields a record carries are written (`null` clears a field). A record's `updated_at` (activities: `timestamp`)
is its event time, so conflicting syncs resolve by the CRM's own clock (see projections/identity.py).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from ..errors import InvalidRequest
from ..ids import event_id, ulids
from ..nesting import MAX_NESTING, TOO_DEEP, nesting_exceeds, prune_too_deep, too_deep_field
from ..normalize import MAX_EVENT_NAME, campaign_from_url, domain_of, to_ms
from ..schema import CRM_COMPANY, CRM_CONTACT, Event
from .profile import (
    CONTACT_ALIASES,
    FieldRejected,
    company_fields_from_traits,
    contact_fields_from_traits,
    normalize_domain,
    normalize_email,
    slot_of,
)

_EVENT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]*$")
_canonical = msgspec.json.Encoder(order="sorted")

CONTACT_KEYS = {
    *CONTACT_ALIASES, "name", "external_id", "company_external_id", "company_domain", "custom_fields", "updated_at",
}  # fmt: skip
COMPANY_KEYS = {
    "external_id", "name", "domain", "website", "industry", "employees", "plan", "custom_fields", "updated_at",
}  # fmt: skip
ACTIVITY_KEYS = {
    "external_id", "type", "contact_external_id", "email", "timestamp", "amount", "currency", "properties",
    "url",
}  # fmt: skip


class CrmSync(msgspec.Struct, forbid_unknown_fields=True):
    """The body of `POST /v1/sources/crm/sync`. Records stay raw so each one is judged on its own."""

    crm: str = "crm"
    contacts: list[msgspec.Raw] = []
    companies: list[msgspec.Raw] = []
    activities: list[msgspec.Raw] = []


@dataclass(slots=True)
class RecordRejection:
    list: str
    index: int
    field: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"list": self.list, "index": self.index, "field": self.field, "message": self.reason}


@dataclass(slots=True)
class SyncPlan:
    events: list[Event] = field(default_factory=list)
    accepted: dict[str, int] = field(default_factory=lambda: {"contacts": 0, "companies": 0, "activities": 0})
    rejected: list[RecordRejection] = field(default_factory=list)


class _Bad(Exception):
    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason


_sync_decoder = msgspec.json.Decoder(CrmSync)
_record_decoder = msgspec.json.Decoder(dict[str, Any])


def decode_sync(data: bytes) -> tuple[CrmSync, dict[tuple[str, int], str]]:
    """The sync body, its records kept raw, and the records nested too deep to decode at all (cut out: list and
    index → field), which `plan_sync` rejects on their own."""
    too_deep: dict[tuple[str, int], str] = {}
    try:
        try:
            sync = _sync_decoder.decode(data)
        except RecursionError:
            data, too_deep = prune_too_deep(data, ("contacts", "companies", "activities"))
            sync = _sync_decoder.decode(data)
    except RecursionError as exc:
        raise InvalidRequest(f"body: {TOO_DEEP}", details={"field": "body"}) from exc
    except msgspec.ValidationError as exc:
        text = str(exc)
        where = text.rsplit("`$.", 1)[-1].rstrip("`") if "`$." in text else "body"
        raise InvalidRequest(f"{where}: {text}", details={"field": where}) from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}", details={"field": "body"}) from exc
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", sync.crm):
        raise InvalidRequest(
            "crm: must be a short lowercase name like 'hubspot' (a-z, 0-9, _ and -)", details={"field": "crm"}
        )
    if not (sync.contacts or sync.companies or sync.activities):
        raise InvalidRequest(
            "body: nothing to sync; send at least one of contacts, companies, activities",
            details={"field": "body"},
        )
    return sync, too_deep


def _text_id(rec: dict[str, Any], key: str) -> str | None:
    value = rec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value).strip() == "":
        raise _Bad(key, "must be a non-empty string or an integer")
    return str(value).strip()


def _when(rec: dict[str, Any], key: str, default: int) -> int:
    value = rec.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise _Bad(key, "must be an ISO 8601 date-time")
    try:
        return to_ms(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
    except ValueError:
        raise _Bad(key, f"is not an ISO 8601 date-time: {value!r}") from None


def _custom(rec: dict[str, Any]) -> dict[str, Any]:
    """Top-level `profile_field_N` keys and a `custom_fields` object, merged."""
    out = {k: v for k, v in rec.items() if slot_of(k) is not None}
    extra = rec.get("custom_fields")
    if extra is not None:
        if not isinstance(extra, dict):
            raise _Bad("custom_fields", "must be an object of profile_field_1 … profile_field_30")
        for k, v in extra.items():
            if slot_of(k) is None:
                raise _Bad(
                    f"custom_fields.{k}", "is not a custom field (profile_field_1 to profile_field_30)"
                )
            out[k] = v
    return out


def _unknown(rec: dict[str, Any], allowed: set[str]) -> None:
    for k in rec:
        if k not in allowed and slot_of(k) is None:
            raise _Bad(k, "is not a known field")


def _message_id(crm: str, kind: str, rec: dict[str, Any]) -> str:
    return f"crm:{crm}:{kind}:" + hashlib.sha256(_canonical.encode(rec)).hexdigest()[:32]


def _contact_event(crm: str, rec: dict[str, Any], eid: str, now: int) -> Event:
    _unknown(rec, CONTACT_KEYS)
    ext = _text_id(rec, "external_id")
    email = normalize_email(rec.get("email"))
    if rec.get("email") is not None and email is None:
        raise _Bad("email", f"is not an email address: {rec.get('email')!r}")
    if ext is None and email is None:
        raise _Bad("external_id", "a contact needs an external_id or an email")
    try:
        traits = contact_fields_from_traits(
            {k: v for k, v in rec.items() if k in CONTACT_ALIASES or k == "name"} | _custom(rec), strict=True
        )
    except FieldRejected as exc:
        raise _Bad(exc.field, exc.reason) from None
    props: dict[str, Any] = {"crm": crm}
    if ext is not None:
        props["external_id"] = ext
    company_ext = _text_id(rec, "company_external_id")
    if company_ext is not None:
        props["company_external_id"] = company_ext
    if rec.get("company_domain") is not None:
        d = normalize_domain(rec["company_domain"])
        if d is None:
            raise _Bad("company_domain", f"is not a domain: {rec['company_domain']!r}")
        props["company_domain"] = d
    return Event(
        id=eid, kind=CRM_CONTACT, event=CRM_CONTACT, message_id=_message_id(crm, "contact", rec),
        timestamp=_when(rec, "updated_at", now), received_at=now, traits=traits, properties=props,
        source=f"crm:{crm}", email=email,
    )  # fmt: skip


def _company_event(crm: str, rec: dict[str, Any], eid: str, now: int) -> Event:
    _unknown(rec, COMPANY_KEYS)
    ext = _text_id(rec, "external_id")
    try:
        traits = company_fields_from_traits(
            {k: v for k, v in rec.items() if k in COMPANY_KEYS and k not in ("external_id", "custom_fields")}
            | _custom(rec),
            strict=True,
        )
    except FieldRejected as exc:
        raise _Bad(exc.field, exc.reason) from None
    if ext is None and not traits.get("domain"):
        raise _Bad("external_id", "a company needs an external_id or a domain")
    props: dict[str, Any] = {"crm": crm}
    if ext is not None:
        props["external_id"] = ext
    return Event(
        id=eid, kind=CRM_COMPANY, event=CRM_COMPANY, message_id=_message_id(crm, "company", rec),
        timestamp=_when(rec, "updated_at", now), received_at=now, traits=traits, properties=props,
        source=f"crm:{crm}",
    )  # fmt: skip


def _activity_event(crm: str, rec: dict[str, Any], eid: str, now: int) -> Event:
    _unknown(rec, ACTIVITY_KEYS)
    name = rec.get("type")
    if not isinstance(name, str) or not name.strip():
        raise _Bad("type", "is required: the activity's event name, e.g. deal_created")
    name = name.strip()
    if len(name) > MAX_EVENT_NAME or not _EVENT_NAME.match(name):
        raise _Bad("type", "must be a name like deal_created (letters, digits, _ . : -; at most 200)")
    contact_ext = _text_id(rec, "contact_external_id")
    email = normalize_email(rec.get("email"))
    if rec.get("email") is not None and email is None:
        raise _Bad("email", f"is not an email address: {rec.get('email')!r}")
    if contact_ext is None and email is None:
        raise _Bad("contact_external_id", "an activity needs a contact_external_id or an email")
    props: dict[str, Any] = {}
    if rec.get("properties") is not None:
        if not isinstance(rec["properties"], dict):
            raise _Bad("properties", "must be an object")
        props.update(rec["properties"])
    amount = rec.get("amount")
    if amount is not None:
        if isinstance(amount, bool) or not isinstance(amount, int | float):
            raise _Bad("amount", "must be a number")
        props["amount"] = amount
    if rec.get("currency") is not None:
        cur = rec["currency"]
        if not isinstance(cur, str) or not re.fullmatch(r"[A-Za-z]{3}", cur):
            raise _Bad("currency", "must be a 3-letter ISO 4217 code")
        props["currency"] = cur.upper()
    ext = _text_id(rec, "external_id")
    props["crm"] = crm
    if ext is not None:
        props["external_id"] = ext
    if contact_ext is not None:
        props["contact_external_id"] = contact_ext
    url = rec.get("url")
    if url is not None and not isinstance(url, str):
        raise _Bad("url", "must be a string")
    mid = f"crm:{crm}:activity:{ext}" if ext is not None else _message_id(crm, "activity", rec)
    return Event(
        id=eid, kind="track", event=name, message_id=mid, timestamp=_when(rec, "timestamp", now),
        received_at=now, properties=props, source=f"crm:{crm}", email=email, url=url, domain=domain_of(url),
        campaign=campaign_from_url(url),
    )  # fmt: skip


def plan_sync(sync: CrmSync, now_ms: int, too_deep: dict[tuple[str, int], str] | None = None) -> SyncPlan:
    """Validate every record and build the events of the valid ones (contacts, then companies, then activities).
    `too_deep` names the records `decode_sync` cut out."""
    too_deep = too_deep or {}
    plan = SyncPlan()
    builders = (
        ("contacts", sync.contacts, _contact_event),
        ("companies", sync.companies, _company_event),
        ("activities", sync.activities, _activity_event),
    )
    ids = iter(ulids(sum(len(raws) for _, raws, _ in builders), now_ms))
    for name, raws, build in builders:
        for i, raw in enumerate(raws):
            eid = event_id(next(ids))
            if (name, i) in too_deep or nesting_exceeds(record := bytes(raw), MAX_NESTING):
                where = too_deep.get((name, i)) or too_deep_field(record)
                plan.rejected.append(RecordRejection(name, i, where, TOO_DEEP))
                continue
            try:
                rec = _record_decoder.decode(raw)
            except (msgspec.ValidationError, msgspec.DecodeError):
                plan.rejected.append(RecordRejection(name, i, "body", "must be a JSON object"))
                continue
            try:
                plan.events.append(build(sync.crm, rec, eid, now_ms))
            except _Bad as exc:
                plan.rejected.append(RecordRejection(name, i, exc.field, exc.reason))
                continue
            plan.accepted[name] += 1
    return plan
