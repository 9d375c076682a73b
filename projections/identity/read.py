"""Reads of the identity projection: people (a contact with its company), pages of contacts and companies, a
company's contacts, the contact of each event, and the Events API's enrichment.

Who a merged-away contact is now, and which company a contact belongs to, are resolved in one place: the
`people-4.lua` script, for contacts asked by id or through the events linked to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from ..keyspace import Keyspace
from ..scripts import Script
from . import keys
from .docs import CompanyDoc, ContactDoc, decode_company, decode_contact

PEOPLE = Script(__package__, "people-4.lua")


@dataclass(frozen=True, slots=True)
class Person:
    """A live contact and its company (None without one)."""

    contact: ContactDoc
    company: CompanyDoc | None


async def _people(redis: Redis, ks: Keyspace, workspace: str, **asked: list[str]) -> list[Person | None]:
    keys_ = [
        keys.event_contacts(ks, workspace),
        keys.contacts(ks, workspace),
        keys.company_map(ks, workspace),
        keys.companies(ks, workspace),
    ]
    reply = await PEOPLE(redis, keys_, **asked)
    contacts: dict[bytes, ContactDoc] = {}
    companies: dict[bytes, CompanyDoc] = {}
    out: list[Person | None] = []
    for raw_contact, raw_company in zip(reply[::2], reply[1::2], strict=True):
        if raw_contact is None:
            out.append(None)
            continue
        c = contacts.get(raw_contact) or contacts.setdefault(raw_contact, decode_contact(raw_contact))
        co = None
        if raw_company is not None:
            co = companies.get(raw_company) or companies.setdefault(raw_company, decode_company(raw_company))
        out.append(Person(c, co))
    return out


async def read_people(redis: Redis, ks: Keyspace, workspace: str, ids: list[str]) -> dict[str, Person]:
    """The people of contact ids, keyed by the id asked for (a merged-away id gives its survivor)."""
    ids = list(dict.fromkeys(i for i in ids if i))
    if not ids:
        return {}
    found = await _people(redis, ks, workspace, contacts=ids)
    return {i: p for i, p in zip(ids, found, strict=True) if p is not None}


async def read_people_of_events(
    redis: Redis, ks: Keyspace, workspace: str, event_ids: list[str]
) -> dict[str, Person]:
    """The person each event (`evt_…`) is linked to, for the events linked to a contact."""
    if not event_ids:
        return {}
    found = await _people(redis, ks, workspace, events=[e[4:] for e in event_ids])
    return {e: p for e, p in zip(event_ids, found, strict=True) if p is not None}


async def read_contact_ids_of_events(
    redis: Redis, ks: Keyspace, workspace: str, event_ids: list[str]
) -> dict[str, str]:
    """event id (`evt_…`) → the contact id it was linked to, for the events linked to a contact."""
    if not event_ids:
        return {}
    found = await redis.hmget(keys.event_contacts(ks, workspace), [e[4:] for e in event_ids])
    return {e: c.decode() for e, c in zip(event_ids, found, strict=True) if c is not None}


@dataclass(slots=True)
class Enrichment:
    """What the Events API adds to an event: its contact and that contact's company."""

    contact_id: str | None
    contact: dict[str, Any] | None
    company: dict[str, Any] | None


NO_ENRICHMENT = Enrichment(None, None, None)


async def read_enrichments(
    redis: Redis, ks: Keyspace, workspace: str, event_ids: list[str]
) -> dict[str, Enrichment]:
    """Enrichment of each event id: one script call for a whole page."""
    people = await read_people_of_events(redis, ks, workspace, event_ids)
    out: dict[str, Enrichment] = {}
    for eid in event_ids:
        p = people.get(eid)
        if p is None:
            out[eid] = NO_ENRICHMENT
            continue
        c, co = p.contact, p.company
        out[eid] = Enrichment(
            c.id,
            {"_id": c.id, "firstname": c.fields.get("firstname"), "lastname": c.fields.get("lastname")},
            {"_id": co.id, "name": co.fields.get("name"), "domain": co.fields.get("domain")} if co else None,
        )
    return out


async def read_companies(redis: Redis, ks: Keyspace, workspace: str, ids: list[str]) -> dict[str, CompanyDoc]:
    ids = list(dict.fromkeys(i for i in ids if i))
    if not ids:
        return {}
    raws = await redis.hmget(keys.companies(ks, workspace), ids)
    return {i: decode_company(r) for i, r in zip(ids, raws, strict=True) if r is not None}


async def _read_id_page(
    redis: Redis, key: str, *, offset: int, limit: int, descending: bool
) -> tuple[int, list[str]]:
    """(size of the ZSET, one page of its members) in one round trip."""
    pipe = redis.pipeline(transaction=False)
    pipe.zcard(key)
    pipe.zrange(key, offset, offset + limit - 1, desc=descending)
    total, ids = await pipe.execute()
    return int(total), [i.decode() for i in ids]


async def read_people_page(
    redis: Redis, ks: Keyspace, workspace: str, *, offset: int, limit: int, descending: bool = True
) -> tuple[int, list[Person]]:
    """(how many live contacts, one page of them by creation time)."""
    key = keys.contact_list(ks, workspace)
    total, ids = await _read_id_page(redis, key, offset=offset, limit=limit, descending=descending)
    people = await read_people(redis, ks, workspace, ids)
    return total, [people[i] for i in ids if i in people]


async def read_company_page(
    redis: Redis, ks: Keyspace, workspace: str, *, offset: int, limit: int, descending: bool = True
) -> tuple[int, list[CompanyDoc]]:
    """(how many companies, one page of them by creation time)."""
    key = keys.company_list(ks, workspace)
    total, ids = await _read_id_page(redis, key, offset=offset, limit=limit, descending=descending)
    docs = await read_companies(redis, ks, workspace, ids)
    return total, [docs[i] for i in ids if i in docs]


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


async def read_merge_group(redis: Redis, ks: Keyspace, workspace: str, contact_id: str) -> list[ContactDoc]:
    """A contact's survivor (if it was merged away) and every contact merged into that survivor: all the
    documents of one person. Empty when the contact is unknown."""
    people = await read_people(redis, ks, workspace, [contact_id])
    if contact_id not in people:
        return []
    survivor = people[contact_id].contact
    merged = (
        await redis.hmget(keys.contacts(ks, workspace), survivor.merged_ids) if survivor.merged_ids else []
    )
    return [survivor, *(decode_contact(raw) for raw in merged if raw is not None)]


def identifiers_of_people(docs: list[ContactDoc]) -> set[tuple[str, str]]:
    """Every (kind, value) the contacts are known by: user ids `u`, anonymous ids `a`, emails `e`, CRM ids `x`
    (the kinds of `ingest.suppression`)."""
    out: set[tuple[str, str]] = set()
    for d in docs:
        out |= {("u", v) for v in d.user_ids} | {("a", v) for v in d.anonymous_ids}
        out |= {("e", v) for v in d.emails} | {("x", v) for v in d.external_ids}
        if d.fields.get("email"):
            out.add(("e", str(d.fields["email"])))
    return out
