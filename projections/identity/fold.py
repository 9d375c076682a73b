"""Identity: which contact each event belongs to, and the contact/company documents, folded in log order.

The rules (deterministic: they read only the log, so a rebuild gives the same contacts, ids and links):
- Identifiers → contact: user id, anonymous id, email, CRM external id (one contact each). A contact is
  created — id `ct_<ULID of the creating event>` — by an event with a userId, an identify call, a CRM contact
  record or activity, or an email event, when none of its identifiers is known yet.
- An anonymous id belongs to the first contact it is seen with (an identify, track or alias carrying it with a
  userId); from then on all its events, earlier ones included, are that contact's (retroactive identification,
  in the same fold step). A later different user on the same device does not take it over.
- Two known contacts are merged when one event links them: `alias` always; identify / track / CRM / email only
  when they do not belong to two different user ids (then the event's user wins the event, and an email moves
  to its newest claimant). The contact created first (earliest log position) survives; the other keeps a
  document with `merged_into`, and its identifiers and events move to the survivor.
- Conflicting field values, within a contact and across a merge: the greatest version wins, field by field —
  version = (event timestamp, log entry id, index in entry), i.e. last write by event time, ties by log position.
- Companies: keyed by group id (`group`), CRM id, domain; a contact's company is its explicit one (group call,
  CRM), else the company whose domain is its email's domain (`docs.membership_of`, resolved on read).
- Contacts that change for earlier batches' events are announced as `ContactMoves` (`WorkspaceIdentity.moves`);
  the projections that keep events by contact move them, and identity links the moved events
  (`apply_event_contacts`).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from ingest.schema import CRM_COMPANY, CRM_CONTACT, Event
from ingest.sources.profile import (
    company_fields_from_traits,
    contact_fields_from_traits,
    normalize_domain,
    normalize_email,
)

from ..keyspace import Keyspace
from ..located import ContactMoves, Located
from ..updates import Updates
from . import keys
from .docs import CompanyDoc, ContactDoc, decode_company, decode_contact, encode_doc, membership_of

MAP_KINDS = ("a", "u", "e", "x")  # anonymous id, user id, email, CRM external id
_NEVER = [-1]


def _insert(items: list[str], value: str) -> bool:
    i = bisect.bisect_left(items, value)
    if i < len(items) and items[i] == value:
        return False
    items.insert(i, value)
    return True


def _set_fields(doc: ContactDoc | CompanyDoc, values: dict[str, Any], ver: list[int]) -> bool:
    changed = False
    for name, value in values.items():
        if ver > doc.versions.get(name, _NEVER):
            doc.versions[name] = ver
            if value is None:
                doc.fields.pop(name, None)
            else:
                doc.fields[name] = value
            changed = True
    if changed and ver[0] > doc.updated_at:
        doc.updated_at = ver[0]
    return changed


# ---------------------------------------------------------------- what each event says about identity


@dataclass(slots=True)
class Identifiers:
    """The identifiers and company keys an event mentions (looked up in one round trip per batch)."""

    ids: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in MAP_KINDS})
    company_keys: set[str] = field(default_factory=set)


def _crm_props(e: Event) -> dict[str, Any]:
    return e.properties if isinstance(e.properties, dict) else {}


def _company_keys_of(e: Event) -> list[str]:
    out: list[str] = []
    if e.kind == "group" and e.group_id:
        out.append(f"g:{e.group_id}")
        d = normalize_domain(e.traits.get("domain") or e.traits.get("website"))
        if d:
            out.append(f"d:{d}")
    elif e.kind == "identify":
        co = e.traits.get("company")
        if isinstance(co, dict):
            if co.get("id") is not None:
                out.append(f"g:{co['id']}")
            d = normalize_domain(co.get("domain") or co.get("website"))
            if d:
                out.append(f"d:{d}")
            if not out and isinstance(co.get("name"), str) and co["name"].strip():
                out.append(f"n:{co['name'].strip().lower()}")
        elif isinstance(co, str) and co.strip():
            out.append(f"n:{co.strip().lower()}")
    elif e.kind in (CRM_CONTACT, CRM_COMPANY):
        p = _crm_props(e)
        ext = p.get("company_external_id") if e.kind == CRM_CONTACT else p.get("external_id")
        if ext:
            out.append(f"x:{ext}")
        d = normalize_domain(p.get("company_domain") if e.kind == CRM_CONTACT else e.traits.get("domain"))
        if d:
            out.append(f"d:{d}")
    return out


def _person_ids(e: Event) -> tuple[str | None, str | None, str | None, str | None]:
    """(user id, anonymous id, email, CRM id) the event identifies its person by."""
    if e.kind == CRM_CONTACT:
        return None, None, e.email, _crm_props(e).get("external_id")
    if e.source is not None:  # CRM activities and email events know people by email / CRM id only
        return None, None, e.email, _crm_props(e).get("contact_external_id")
    email = normalize_email(e.traits.get("email")) if e.kind == "identify" else None
    return e.user_id, e.anonymous_id, email, None


def identifiers_of(events: Iterable[Located]) -> Identifiers:
    out = Identifiers()
    for loc in events:
        e = loc.event
        uid, aid, email, ext = _person_ids(e)
        for kind, value in (("u", uid), ("a", aid), ("e", email), ("x", ext)):
            if value:
                out.ids[kind].add(str(value))
        if e.kind == "alias" and e.previous_id:
            out.ids["u"].add(e.previous_id)
            out.ids["a"].add(e.previous_id)
        out.company_keys.update(_company_keys_of(e))
    return out


# ---------------------------------------------------------------- one workspace's state for one batch


class WorkspaceIdentity:
    """What Redis held for the batch's identifiers, plus this batch's changes, applied in log order."""

    def __init__(self, ks: Keyspace, workspace: str) -> None:
        self.ks = ks
        self.workspace = workspace
        self.maps: dict[str, dict[str, str | None]] = {k: {} for k in MAP_KINDS}
        self.company_map: dict[str, str | None] = {}
        self.contacts: dict[str, ContactDoc] = {}
        self.companies: dict[str, CompanyDoc] = {}
        self.map_writes: dict[str, dict[str, str]] = {k: {} for k in MAP_KINDS}
        self.company_map_writes: dict[str, str] = {}
        self.dirty_contacts: set[str] = set()
        self.dirty_companies: set[str] = set()
        self.created_contacts: set[str] = set()
        self.created_companies: set[str] = set()
        self.merged_away: list[str] = []  # contacts of earlier batches merged away in this one
        self.anon_linked: list[str] = []  # anonymous ids without a contact before this batch, linked now
        self.initial_membership: dict[str, str | None] = {}  # loaded contacts' company membership

    # ---- lookups and links

    def _get(self, kind: str, ident: str | None) -> ContactDoc | None:
        cid = self.maps[kind].get(ident) if ident else None
        return self.contacts.get(cid) if cid else None

    def _link(self, kind: str, ident: str, c: ContactDoc) -> None:
        old = self.maps[kind].get(ident)
        if old == c.id:
            return
        if kind == "a" and old is None and ident not in self.map_writes["a"]:
            self.anon_linked.append(ident)
        if kind == "e" and old is not None and old in self.contacts:  # an email moves to its new claimant
            prev = self.contacts[old]
            if ident in prev.emails:
                prev.emails.remove(ident)
                self.dirty_contacts.add(prev.id)
        self.maps[kind][ident] = c.id
        self.map_writes[kind][ident] = c.id
        lists = {"a": c.anonymous_ids, "u": c.user_ids, "e": c.emails, "x": c.external_ids}
        _insert(lists[kind], ident)
        self.dirty_contacts.add(c.id)

    def _create_contact(self, loc: Located) -> ContactDoc:
        cid = f"ct_{loc.ulid}"
        doc = ContactDoc(id=cid, created_at=loc.event.timestamp, created_pos=loc.version[1:])
        self.contacts[cid] = doc
        self.created_contacts.add(cid)
        self.dirty_contacts.add(cid)
        return doc

    def _merge(self, a: ContactDoc, b: ContactDoc) -> ContactDoc:
        """Merge two live contacts; the one created first survives."""
        s, loser = (a, b) if a.created_pos <= b.created_pos else (b, a)
        for name, ver in loser.versions.items():
            if ver > s.versions.get(name, _NEVER):
                s.versions[name] = ver
                if name in loser.fields:
                    s.fields[name] = loser.fields[name]
                else:
                    s.fields.pop(name, None)
        s.updated_at = max(s.updated_at, loser.updated_at)
        s.created_at = min(s.created_at, loser.created_at)
        for kind, ids in (
            ("u", loser.user_ids), ("a", loser.anonymous_ids), ("e", loser.emails), ("x", loser.external_ids),
        ):  # fmt: skip
            for ident in list(ids):
                self.maps[kind][ident] = s.id
                self.map_writes[kind][ident] = s.id
                _insert(
                    {"a": s.anonymous_ids, "u": s.user_ids, "e": s.emails, "x": s.external_ids}[kind], ident
                )
        s.merged_ids = sorted({*s.merged_ids, loser.id, *loser.merged_ids})
        self.contacts[loser.id] = ContactDoc(
            id=loser.id, created_at=loser.created_at, created_pos=loser.created_pos, merged_into=s.id
        )
        if loser.id not in self.created_contacts:
            self.merged_away.append(loser.id)
        self.dirty_contacts.update((s.id, loser.id))
        return s

    def canonical(self, cid: str | None) -> str | None:
        seen = 0
        while cid is not None and cid in self.contacts and self.contacts[cid].merged_into and seen < 1000:
            cid = self.contacts[cid].merged_into
            seen += 1
        return cid

    def _person(
        self, loc: Located, uid: str | None, aid: str | None, email: str | None, ext: str | None,
        *, create: bool, always_merge: bool = False,
    ) -> ContactDoc | None:  # fmt: skip
        wanted = [(k, i) for k, i in (("x", ext), ("u", uid), ("a", aid), ("e", email)) if i]
        # strongest identifier first: the event belongs to its CRM id / user; others join it when they may
        c: ContactDoc | None = None
        for kind, ident in wanted:
            found = self._get(kind, ident)
            if found is None or (c is not None and found.id == c.id):
                continue
            if c is None:
                c = found
            elif always_merge or _compatible(c, found):
                c = self._merge(c, found)
        if uid and c is not None and c.user_ids and self._get("u", uid) is None:
            c = None  # a new user on a device / email someone else's: a contact of its own
        if c is None:
            if not create and not uid:
                return None
            c = self._create_contact(loc)
        for kind, ident in wanted:
            found = self._get(kind, ident)
            if found is None or (kind == "e" and found.id != c.id):  # an email moves to its newest claimant
                self._link(kind, ident, c)
        return c

    # ---- companies

    def _company(self, loc: Located, company_keys: list[str], *, create: bool) -> CompanyDoc | None:
        co: CompanyDoc | None = None
        for k in company_keys:  # the first key that resolves wins (group / CRM id before domain)
            cid = self.company_map.get(k)
            if cid and cid in self.companies:
                co = self.companies[cid]
                break
        if co is None:
            if not create or not company_keys:
                return None
            cid = f"co_{loc.ulid}"
            co = CompanyDoc(id=cid, created_at=loc.event.timestamp, created_pos=loc.version[1:])
            self.companies[cid] = co
            self.created_companies.add(cid)
        for k in company_keys:
            if self.company_map.get(k) != co.id:
                old = self.company_map.get(k)
                if old and old in self.companies and k in self.companies[old].keys:
                    self.companies[old].keys.remove(k)
                    self.dirty_companies.add(old)
                self.company_map[k] = co.id
                self.company_map_writes[k] = co.id
                _insert(co.keys, k)
        self.dirty_companies.add(co.id)
        return co

    # ---- one event

    def apply(self, loc: Located) -> str | None:
        """Fold one event's identity effects; return the contact it belongs to at its log position."""
        e = loc.event
        ver = loc.version
        uid, aid, email, ext = _person_ids(e)
        if e.kind == "alias":
            return self._alias(loc, ver)
        if e.kind == "identify":
            values = contact_fields_from_traits(e.traits, strict=False)
            c = self._person(loc, uid, aid, values.get("email") or email, None, create=True)
        elif e.kind == CRM_CONTACT:
            values = contact_fields_from_traits(e.traits, strict=False)
            if email:
                values["email"] = email
            c = self._person(loc, None, None, email, ext, create=True)
        elif e.kind == CRM_COMPANY:
            co = self._company(loc, _company_keys_of(e), create=True)
            if co is not None:
                _set_fields(co, company_fields_from_traits(e.traits, strict=False), ver)
            return None
        else:
            values = {}
            c = self._person(loc, uid, aid, email, ext, create=bool(uid or email or ext), always_merge=False)
        if c is None:
            return None
        if email and "email" not in c.versions and c.id == f"ct_{loc.ulid}":
            values = {
                **values,
                "email": email,
            }  # a contact an email / CRM event created is known by that email
        if values and _set_fields(c, values, ver):
            self.dirty_contacts.add(c.id)
        company_keys = _company_keys_of(e)
        if company_keys:
            co = self._company(loc, company_keys, create=True)
            if co is not None:
                if e.kind == "group":
                    _set_fields(co, company_fields_from_traits(e.traits, strict=False), ver)
                elif e.kind == "identify" and isinstance(e.traits.get("company"), dict):
                    _set_fields(co, company_fields_from_traits(e.traits["company"], strict=False), ver)
                elif e.kind == "identify" and isinstance(e.traits.get("company"), str):
                    _set_fields(co, {"name": e.traits["company"].strip()}, ver)
                if _set_fields(c, {"company_id": co.id}, ver):
                    self.dirty_contacts.add(c.id)
        return c.id

    def _alias(self, loc: Located, ver: list[int]) -> str | None:
        e = loc.event
        prev = e.previous_id
        kind, ident = ("u", e.user_id) if e.user_id else ("a", e.anonymous_id)
        c = self._person(loc, e.user_id, e.anonymous_id, None, None, create=True)
        assert c is not None and ident
        if prev and prev != ident:
            found = self._get("u", prev) or self._get("a", prev)
            if found is None:
                self._link("a", prev, c)
            elif found.id != c.id:
                c = self._merge(c, found)
        return c.id

    # ---- end of batch

    def moves(self) -> ContactMoves:
        """The contacts earlier batches' events now belong to: merged-away contacts → their survivor, newly
        linked anonymous ids → their contact."""
        merged = {cid: self.canonical(cid) for cid in self.merged_away}
        linked = {aid: self.canonical(self.maps["a"].get(aid)) for aid in self.anon_linked}
        return ContactMoves(
            merged={k: v for k, v in merged.items() if v is not None},
            linked={k: v for k, v in linked.items() if v is not None},
        )

    def queue_writes(self, u: Updates) -> None:
        ks, ws = self.ks, self.workspace
        for kind, writes in self.map_writes.items():
            if writes:
                u.hset[keys.identity_map(ks, ws, kind)].update(writes)
        if self.company_map_writes:
            u.hset[keys.company_map(ks, ws)].update(self.company_map_writes)
        docs = u.hset[keys.contacts(ks, ws)]
        for cid in sorted(self.dirty_contacts):
            doc = self.contacts[cid]
            doc.membership = membership_of(doc)
            docs[cid] = encode_doc(doc).decode()
            if doc.merged_into:
                if cid not in self.created_contacts:
                    u.zrem[keys.contact_list(ks, ws)].add(cid)
            else:
                u.zadd[keys.contact_list(ks, ws)][cid] = doc.created_at
            before, after = self.initial_membership.get(cid), doc.membership
            if before != after:
                if before is not None:
                    u.zrem[keys.company_members(ks, ws, before)].add(cid)
                if after is not None:
                    u.zadd[keys.company_members(ks, ws, after)][cid] = doc.created_at
        co_docs = u.hset[keys.companies(ks, ws)]
        for cid in sorted(self.dirty_companies):
            co = self.companies[cid]
            co_docs[cid] = encode_doc(co).decode()
            u.zadd[keys.company_list(ks, ws)][cid] = co.created_at


def _compatible(a: ContactDoc, b: ContactDoc) -> bool:
    """Two contacts may be merged by an implicit link unless each belongs to its own user id."""
    return not (a.user_ids and b.user_ids)


# ---------------------------------------------------------------- the fold hook


async def load_identity(
    redis: Redis, ks: Keyspace, batch: dict[str, list[Located]]
) -> dict[str, WorkspaceIdentity]:
    """Two pipelined round trips for the whole batch: identifier maps, then the documents they point to."""
    states = {ws: WorkspaceIdentity(ks, ws) for ws in batch}
    wanted = {ws: identifiers_of(locs) for ws, locs in batch.items()}
    pipe = redis.pipeline(transaction=False)
    plan: list[tuple[str, str, list[str]]] = []
    for ws in sorted(batch):
        for kind in MAP_KINDS:
            idents = sorted(wanted[ws].ids[kind])
            if idents:
                pipe.hmget(keys.identity_map(ks, ws, kind), idents)
                plan.append((ws, kind, idents))
        cokeys = sorted(wanted[ws].company_keys)
        if cokeys:
            pipe.hmget(keys.company_map(ks, ws), cokeys)
            plan.append((ws, "co", cokeys))
    replies = await pipe.execute() if plan else []
    contact_ids: dict[str, set[str]] = {ws: set() for ws in batch}
    company_ids: dict[str, set[str]] = {ws: set() for ws in batch}
    for (ws, kind, idents), found in zip(plan, replies, strict=True):
        target = states[ws].company_map if kind == "co" else states[ws].maps[kind]
        for ident, hit in zip(idents, found, strict=True):
            value = hit.decode() if hit is not None else None
            target[ident] = value
            if value is not None:
                (company_ids if kind == "co" else contact_ids)[ws].add(value)

    pipe = redis.pipeline(transaction=False)
    plan2: list[tuple[str, str, list[str]]] = []
    for ws in sorted(batch):
        if contact_ids[ws]:
            ids = sorted(contact_ids[ws])
            pipe.hmget(keys.contacts(ks, ws), ids)
            plan2.append((ws, "ct", ids))
        if company_ids[ws]:
            ids = sorted(company_ids[ws])
            pipe.hmget(keys.companies(ks, ws), ids)
            plan2.append((ws, "co", ids))
    replies = await pipe.execute() if plan2 else []
    for (ws, kind, ids), found in zip(plan2, replies, strict=True):
        st = states[ws]
        for i, raw in zip(ids, found, strict=True):
            if raw is None:
                continue
            if kind == "ct":
                st.contacts[i] = decode_contact(raw)
                st.initial_membership[i] = membership_of(st.contacts[i])
            else:
                st.companies[i] = decode_company(raw)
    return states


def resolve_contacts(
    state: WorkspaceIdentity, located: list[Located], kept: Callable[[int], bool] | None = None
) -> list[str | None]:
    """Apply the batch's identity effects in log order; the final contact of each event (after every link and
    merge of the batch — an anonymous event linked later in the same batch gets its contact too, as a later
    batch would move it: so only if `kept(timestamp)`, i.e. it is not already past the retention horizon,
    which no later batch moves)."""
    at_event = [state.apply(loc) for loc in located]
    out: list[str | None] = []
    for loc, cid in zip(located, at_event, strict=True):
        e = loc.event
        if cid is None and e.anonymous_id and e.source is None and (kept is None or kept(e.timestamp)):
            cid = state.maps["a"].get(e.anonymous_id)
        out.append(state.canonical(cid))
    return out


def apply_event_contacts(
    u: Updates, ks: Keyspace, workspace: str, pairs: Iterable[tuple[str, str | None]]
) -> None:
    """Link listed events (by ULID) to their contact: the batch's own, and earlier events that moved."""
    evc = u.hset[keys.event_contacts(ks, workspace)]
    for ulid, contact in pairs:
        if contact is not None:
            evc[ulid] = contact


def forget_event_contacts(u: Updates, ks: Keyspace, workspace: str, ulids: list[str]) -> None:
    """Drop the links of events that left the events projection (expired)."""
    if ulids:
        u.hdel[keys.event_contacts(ks, workspace)].update(ulids)
