"""Contact and company documents: what the identity fold writes and every identity read returns.

A document keeps every field with the version that set it — (event timestamp, entry ms, entry seq, index) — so
conflicting writes resolve the same way whatever order or batching the fold saw: the greatest version wins.
A live contact also carries its `membership`, the one place the rule "a contact's company is its explicit one,
else the company that owns its email's domain" is applied (`membership_of`); readers only look it up.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ingest.sources.profile import email_domain


class ContactDoc(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: str
    created_at: int  # timestamp of the event that created it
    created_pos: list[int]  # that event's log position: [entry ms, entry seq, index]
    updated_at: int = 0
    fields: dict[str, Any] = {}
    versions: dict[str, list[int]] = {}
    user_ids: list[str] = []
    anonymous_ids: list[str] = []
    emails: list[str] = []
    external_ids: list[str] = []
    merged_ids: list[str] = []  # contacts merged into this one
    merged_into: str | None = None  # set on a merged-away contact: its survivor
    membership: str | None = None  # `membership_of`, written with the document


class CompanyDoc(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: str
    created_at: int
    created_pos: list[int]
    updated_at: int = 0
    fields: dict[str, Any] = {}
    versions: dict[str, list[int]] = {}
    keys: list[str] = []  # 'g:<groupId>', 'x:<CRM id>', 'd:<domain>', 'n:<name>'


def membership_of(c: ContactDoc) -> str | None:
    """Which company a live contact belongs to: its explicit company (`co:<id>`, from a group call or the CRM),
    else whichever company owns its email's domain (`d:<domain>`, a key of the company map, resolved on read).
    Also the name of the company-members index the contact is in."""
    if c.merged_into:
        return None
    if c.fields.get("company_id"):
        return f"co:{c.fields['company_id']}"
    domain = email_domain(c.fields.get("email"))
    return f"d:{domain}" if domain else None


_encoder = msgspec.json.Encoder(order="sorted")
_contact_decoder = msgspec.json.Decoder(ContactDoc)
_company_decoder = msgspec.json.Decoder(CompanyDoc)


def encode_doc(doc: ContactDoc | CompanyDoc) -> bytes:
    return _encoder.encode(doc)


def decode_contact(raw: bytes) -> ContactDoc:
    return _contact_decoder.decode(raw)


def decode_company(raw: bytes) -> CompanyDoc:
    return _company_decoder.decode(raw)
