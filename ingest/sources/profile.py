"""Contact and company profile fields: the standard ones and the custom slots `profile_field_1`–`_30`.

Slots 1–15 hold text, 16–25 numbers, 26–30 dates (kept as ISO 8601 `YYYY-MM-DD`). One coercion function serves
the CRM sync (which rejects a bad value with its reason) and the fold (which drops what an SDK sent wrongly).
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

TEXT_SLOTS = range(1, 16)
NUMBER_SLOTS = range(16, 26)
DATE_SLOTS = range(26, 31)
MAX_TEXT = 1000
CUSTOM_FIELDS = tuple(f"profile_field_{i}" for i in range(1, 31))

CONTACT_FIELDS = ("email", "firstname", "lastname", "phone", "title")
COMPANY_FIELDS = ("name", "domain", "industry", "employees", "plan")

# Segment / CRM spellings of the standard contact traits → our field names
CONTACT_ALIASES = {
    "email": "email",
    "firstname": "firstname", "firstName": "firstname", "first_name": "firstname",
    "lastname": "lastname", "lastName": "lastname", "last_name": "lastname",
    "phone": "phone", "title": "title",
}  # fmt: skip


class FieldRejected(ValueError):
    """A profile value of the wrong kind; `field` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def slot_of(name: str) -> int | None:
    if not name.startswith("profile_field_"):
        return None
    tail = name[len("profile_field_") :]
    if not tail.isdigit():
        return None
    n = int(tail)
    return n if 1 <= n <= 30 else None


def coerce_custom(name: str, value: Any) -> Any:
    """The stored value of custom field `name` (None clears it). Raises `FieldRejected`."""
    slot = slot_of(name)
    if slot is None:
        raise FieldRejected(name, "is not a custom field (profile_field_1 to profile_field_30)")
    if value is None:
        return None
    if slot in TEXT_SLOTS:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise FieldRejected(name, f"slot {slot} holds text; got {type(value).__name__}")
        text = str(value)
        if len(text) > MAX_TEXT:
            raise FieldRejected(name, f"is longer than {MAX_TEXT} characters")
        return text
    if slot in NUMBER_SLOTS:
        if isinstance(value, bool):
            raise FieldRejected(name, f"slot {slot} holds a number; got a boolean")
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise FieldRejected(name, f"slot {slot} holds a number; got {value!r}") from None
        if not isinstance(value, int | float) or (isinstance(value, float) and not math.isfinite(value)):
            raise FieldRejected(name, f"slot {slot} holds a finite number; got {value!r}")
        return int(value) if isinstance(value, float) and value.is_integer() else value
    if not isinstance(value, str):
        raise FieldRejected(name, f"slot {slot} holds a date (ISO 8601); got {type(value).__name__}")
    return parse_date(name, value)


def parse_date(name: str, value: str) -> str:
    text = value.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text).isoformat()
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FieldRejected(name, f"is not an ISO 8601 date: {value!r}") from None
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC)
    return dt.date().isoformat()


def normalize_email(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    return text if "@" in text and not text.startswith("@") and not text.endswith("@") else None


def email_domain(email: str | None) -> str | None:
    return email.rpartition("@")[2] or None if email else None


def normalize_domain(value: Any) -> str | None:
    """'https://www.Example.com/x' → 'example.com'."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().lower()
    if "//" in text:
        text = text.split("//", 1)[1]
    host = text.split("/", 1)[0].split(":", 1)[0]
    host = host.removeprefix("www.")
    return host or None


def contact_fields_from_traits(traits: dict[str, Any], *, strict: bool) -> dict[str, Any]:
    """Our contact fields out of Segment-style traits (or a CRM record). Unknown keys are ignored.

    `strict` raises `FieldRejected` on a bad value (CRM); otherwise a bad value is dropped (SDK traits).
    """
    out: dict[str, Any] = {}
    for key, value in traits.items():
        if key in CONTACT_ALIASES:
            field = CONTACT_ALIASES[key]
            if field == "email":
                email = normalize_email(value)
                if email is None and value is not None:
                    if strict:
                        raise FieldRejected(key, f"is not an email address: {value!r}")
                    continue
                out["email"] = email
            elif value is None or isinstance(value, str | int | float) and not isinstance(value, bool):
                out[field] = None if value is None else str(value)[:MAX_TEXT]
            elif strict:
                raise FieldRejected(key, f"must be a string; got {type(value).__name__}")
        elif slot_of(key) is not None:
            try:
                out[key] = coerce_custom(key, value)
            except FieldRejected:
                if strict:
                    raise
    if "name" in traits and isinstance(traits["name"], str) and not {"firstname", "lastname"} & out.keys():
        first, _, last = traits["name"].strip().partition(" ")
        out["firstname"], out["lastname"] = first or None, last.strip() or None
    return out


def company_fields_from_traits(traits: dict[str, Any], *, strict: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in traits.items():
        if key in ("domain", "website"):
            domain = normalize_domain(value)
            if domain is None and value is not None:
                if strict:
                    raise FieldRejected(key, f"is not a domain: {value!r}")
                continue
            if key == "domain" or "domain" not in traits:
                out["domain"] = domain
        elif key in ("name", "industry", "plan"):
            if value is None or isinstance(value, str | int | float) and not isinstance(value, bool):
                out[key] = None if value is None else str(value)[:MAX_TEXT]
            elif strict:
                raise FieldRejected(key, f"must be a string; got {type(value).__name__}")
        elif key in ("employees", "employee_count"):
            if value is None or isinstance(value, int | float) and not isinstance(value, bool):
                out["employees"] = value
            elif strict:
                raise FieldRejected(key, f"must be a number; got {type(value).__name__}")
        elif slot_of(key) is not None:
            try:
                out[key] = coerce_custom(key, value)
            except FieldRejected:
                if strict:
                    raise
    return out
