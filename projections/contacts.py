"""Contact and company documents (what the identity fold writes) and their read functions.

A document keeps every field with the version that set it — (event timestamp, entry ms, entry seq, index) — so
conflicting writes resolve the same way whatever order or batching the fold saw: the greatest version wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from redis.asyncio import Redis

from ingest.sources.profile import email_domain

from . import keys
from .keys import Keyspace


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


class CompanyDoc(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: str
    created_at: int
    created_pos: list[int]
    updated_at: int = 0
    fields: dict[str, Any] = {}
    versions: dict[str, list[int]] = {}
    keys: list[str] = []  # 'g:<groupId>', 'x:<CRM id>', 'd:<domain>', 'n:<name>'


_encoder = msgspec.json.Encoder(order="sorted")
_contact_decoder = msgspec.json.Decoder(ContactDoc)
_company_decoder = msgspec.json.Decoder(CompanyDoc)


def encode_doc(doc: ContactDoc | CompanyDoc) -> bytes:
    return _encoder.encode(doc)


def decode_contact(raw: bytes) -> ContactDoc:
    return _contact_decoder.decode(raw)


def decode_company(raw: bytes) -> CompanyDoc:
    return _company_decoder.decode(raw)


# ---------------------------------------------------------------- reads


async def read_contacts(redis: Redis, ks: Keyspace, workspace: str, ids: list[str]) -> dict[str, ContactDoc]:
    """Documents of `ids` (merged-away ids resolve to their survivor), keyed by the id asked for."""
    ids = list(dict.fromkeys(i for i in ids if i))
    if not ids:
        return {}
    raws = await redis.hmget(keys.contacts(ks, workspace), ids)
    out = {i: decode_contact(r) for i, r in zip(ids, raws, strict=True) if r is not None}
    survivors = {d.merged_into for d in out.values() if d.merged_into}
    if survivors:
        found = await read_contacts(redis, ks, workspace, sorted(survivors))
        for i, d in list(out.items()):
            if d.merged_into:
                if d.merged_into in found:
                    out[i] = found[d.merged_into]
                else:
                    del out[i]
    return out


async def read_companies(redis: Redis, ks: Keyspace, workspace: str, ids: list[str]) -> dict[str, CompanyDoc]:
    ids = list(dict.fromkeys(i for i in ids if i))
    if not ids:
        return {}
    raws = await redis.hmget(keys.companies(ks, workspace), ids)
    return {i: decode_company(r) for i, r in zip(ids, raws, strict=True) if r is not None}


async def read_company_ids_of_contacts(
    redis: Redis, ks: Keyspace, workspace: str, contacts: list[ContactDoc]
) -> dict[str, str]:
    """contact id → company id: the explicit company (group call, CRM), else the company whose domain is the
    domain of the contact's email, when one exists."""
    out: dict[str, str] = {}
    by_domain: dict[str, list[str]] = {}
    for c in contacts:
        explicit = c.fields.get("company_id")
        if explicit:
            out[c.id] = explicit
        else:
            d = email_domain(c.fields.get("email"))
            if d:
                by_domain.setdefault(f"d:{d}", []).append(c.id)
    if by_domain:
        names = sorted(by_domain)
        for name, co in zip(names, await redis.hmget(keys.company_map(ks, workspace), names), strict=True):
            if co is not None:
                for cid in by_domain[name]:
                    out[cid] = co.decode()
    return out


async def read_contact_ids_of_events(
    redis: Redis, ks: Keyspace, workspace: str, event_ids: list[str]
) -> dict[str, str]:
    """event id (`evt_…`) → contact id, for the events linked to a contact."""
    if not event_ids:
        return {}
    found = await redis.hmget(keys.event_contacts(ks, workspace), [e[4:] for e in event_ids])
    return {e: c.decode() for e, c in zip(event_ids, found, strict=True) if c is not None}


async def read_contact_of_identifier(
    redis: Redis, ks: Keyspace, workspace: str, *, user_id: str | None = None,
    anonymous_id: str | None = None, email: str | None = None,
) -> str | None:  # fmt: skip
    """The contact an identifier belongs to now (user id first, then anonymous id, then email)."""
    for kind, value in (("u", user_id), ("a", anonymous_id), ("e", email)):
        if value:
            hit = await redis.hget(keys.identity_map(ks, workspace, kind), value)
            if hit is not None:
                return hit.decode()
    return None


@dataclass(slots=True)
class Enrichment:
    """What the Events API adds to an event: its contact and that contact's company."""

    contact_id: str | None
    contact: dict[str, Any] | None
    company: dict[str, Any] | None


# The enrichment of a page in one call. KEYS: event → contact (`id:evc`), contacts, company map, companies.
# ARGV: event ULIDs. For each event: its contact's document (a merged-away contact resolves to its survivor)
# and that contact's company document (the explicit `company_id`, else the company of its email's domain, as
# `read_company_ids_of_contacts`), false where there is none: {contact₁, company₁, contact₂, company₂, …}.
_ENRICH = r"""
local function survivor(cid)
  for _ = 1, 16 do
    local raw = redis.call('HGET', KEYS[2], cid)
    if not raw then return false end
    local doc = cjson.decode(raw)
    local into = doc.merged_into
    if into == nil or into == cjson.null then return raw, doc end
    cid = into
  end
  return false
end
local function company(doc)
  local fields = doc.fields
  if type(fields) ~= 'table' then return false end
  local coid = fields.company_id
  if type(coid) ~= 'string' or coid == '' then
    coid = false
    local email = fields.email
    if type(email) == 'string' and email ~= '' then
      local domain = string.match(email, '@([^@]*)$') or email
      if domain ~= '' then coid = redis.call('HGET', KEYS[3], 'd:' .. domain) end
    end
  end
  if not coid then return false end
  return redis.call('HGET', KEYS[4], coid)
end
local out, done = {}, {}
local cids = redis.call('HMGET', KEYS[1], unpack(ARGV))
for i = 1, #ARGV do
  local cid = cids[i]
  local found = cid and done[cid]
  if cid and not found then
    local raw, doc = survivor(cid)
    found = {raw, raw and company(doc) or false}
    done[cid] = found
  end
  out[2 * i - 1] = found and found[1] or false
  out[2 * i] = found and found[2] or false
end
return out
"""


async def read_enrichments(
    redis: Redis, ks: Keyspace, workspace: str, event_ids: list[str]
) -> dict[str, Enrichment]:
    """Enrichment of each event id: one script call for a whole page."""
    if not event_ids:
        return {}
    keys_ = [
        keys.event_contacts(ks, workspace),
        keys.contacts(ks, workspace),
        keys.company_map(ks, workspace),
        keys.companies(ks, workspace),
    ]
    reply = await redis.eval(_ENRICH, len(keys_), *keys_, *[e[4:] for e in event_ids])
    contacts: dict[bytes, ContactDoc] = {}
    companies: dict[bytes, CompanyDoc] = {}
    out: dict[str, Enrichment] = {}
    for eid, raw_contact, raw_company in zip(event_ids, reply[::2], reply[1::2], strict=True):
        if raw_contact is None:
            out[eid] = Enrichment(None, None, None)
            continue
        c = contacts.get(raw_contact) or contacts.setdefault(raw_contact, decode_contact(raw_contact))
        co = None
        if raw_company is not None:
            co = companies.get(raw_company) or companies.setdefault(raw_company, decode_company(raw_company))
        out[eid] = Enrichment(
            c.id,
            {"_id": c.id, "firstname": c.fields.get("firstname"), "lastname": c.fields.get("lastname")},
            {"_id": co.id, "name": co.fields.get("name"), "domain": co.fields.get("domain")} if co else None,
        )
    return out


async def _read_id_page(
    redis: Redis, key: str, *, offset: int, limit: int, descending: bool
) -> tuple[int, list[str]]:
    """(size of the ZSET, one page of its members) in one round trip."""
    pipe = redis.pipeline(transaction=False)
    pipe.zcard(key)
    pipe.zrange(key, offset, offset + limit - 1, desc=descending)
    total, ids = await pipe.execute()
    return int(total), [i.decode() for i in ids]


async def read_contact_page(
    redis: Redis, ks: Keyspace, workspace: str, *, offset: int, limit: int, descending: bool = True
) -> tuple[int, list[ContactDoc]]:
    key = keys.contact_list(ks, workspace)
    total, ids = await _read_id_page(redis, key, offset=offset, limit=limit, descending=descending)
    docs = await read_contacts(redis, ks, workspace, ids)
    return total, [docs[i] for i in ids if i in docs]


async def read_company_page(
    redis: Redis, ks: Keyspace, workspace: str, *, offset: int, limit: int, descending: bool = True
) -> tuple[int, list[CompanyDoc]]:
    key = keys.company_list(ks, workspace)
    total, ids = await _read_id_page(redis, key, offset=offset, limit=limit, descending=descending)
    docs = await read_companies(redis, ks, workspace, ids)
    return total, [docs[i] for i in ids if i in docs]


async def read_merge_history(redis: Redis, ks: Keyspace, workspace: str, contact_id: str) -> list[str]:
    """The contact ids merged into `contact_id` (its survivor's, if it was merged away itself)."""
    docs = await read_contacts(redis, ks, workspace, [contact_id])
    return docs[contact_id].merged_ids if contact_id in docs else []


async def read_company_contact_ids(
    redis: Redis, ks: Keyspace, workspace: str, company: CompanyDoc
) -> list[str]:
    """The live contacts whose company is `company`: its explicit members, and the contacts without an explicit
    company whose email domain is a domain this company owns. Sorted by creation time, then id."""
    domains = [k for k in company.keys if k.startswith("d:")]
    owners = await redis.hmget(keys.company_map(ks, workspace), domains) if domains else []
    pipe = redis.pipeline(transaction=False)
    pipe.zrange(keys.company_members(ks, workspace, f"co:{company.id}"), 0, -1, withscores=True)
    for d, owner in zip(domains, owners, strict=True):
        if owner is not None and owner.decode() == company.id:
            pipe.zrange(keys.company_members(ks, workspace, d), 0, -1, withscores=True)
    members = {m.decode(): score for reply in await pipe.execute() for m, score in reply}
    return sorted(members, key=lambda cid: (members[cid], cid))
