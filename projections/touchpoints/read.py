"""Attribution pages for the List Events API: conversions in time order, each credited to the touchpoints in
its window under a model, as keyset pages stable under concurrent folding.

Whose touchpoints a conversion draws on is read through the identity projection (`ChainResolver`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl
from redis.asyncio import Redis

from ..identity import Person, read_companies, read_company_contact_ids, read_people, read_people_of_events
from ..keyspace import Keyspace
from ..located import stream_id, ulid_text
from . import keys
from .chains import visitor_of_anonymous, visitor_of_email, visitor_of_user
from .chunks import read_ranges
from .classify import Classified
from .models import attribute, window_start_ms
from .records import (
    AdFields,
    ConversionRecord,
    TouchRef,
    classified,
    decode_ad_doc,
    decode_conversion_doc,
    key_of_text,
    key_text,
    read_conversion_member,
    read_touch_member,
    time_key,
    ulid_bytes_ms,
)


@dataclass(frozen=True, slots=True)
class AttributionQuery:
    """What one attribution page asks for; times in epoch ms (UTC), both ends inclusive."""

    start_ms: int
    end_ms: int
    names: tuple[str, ...]  # tracked event names (custom events already mapped)
    sources: frozenset[str] | None = None  # None: no attribution, one row per event
    model: str | None = None
    window_days: int | None = None
    snapshot: str | None = None  # log entry id: rows of later entries are left out (stable pages)
    query_mode: str = "profile"
    ad_fields: bool = True  # whether rows need their touchpoint's ad hierarchy fields (one more read)


@dataclass(frozen=True, slots=True)
class Conversion:
    """A conversion (a tracked event) as attribution rows show it."""

    id: str  # evt_<ULID>
    ts: int
    name: str
    anonymous_id: str | None = None
    user_id: str | None = None
    amount: float = 0.0
    order_id: str | None = None
    order_name: str | None = None
    is_upsell: bool = False
    url: str | None = None

    @property
    def visitors(self) -> list[str]:
        return [v for v in (visitor_of_anonymous(self.anonymous_id), visitor_of_user(self.user_id)) if v]


@dataclass(frozen=True, slots=True)
class Touchpoint:
    """A credited touchpoint; its id is `tp_<ULID of the event that opened the session (or the email click)>`,
    made when asked for (a page reads more rows than it keeps)."""

    key: bytes  # `records.KEY_LEN` bytes: time, ULID
    ts: int
    touch: Classified

    @property
    def id(self) -> str:
        return f"tp_{ulid_text(self.key[6:])}"


@dataclass(frozen=True, slots=True)
class Row:
    conversion: Conversion
    member: str  # the conversion's key as text (`records.key_text`): rows are in (member, pos) order
    pos: int  # the touchpoint's place in the conversion's credited chain (0 without attribution)
    touchpoint: Touchpoint | None
    source: str | None
    amount: float

    @property
    def key(self) -> tuple[str, int]:
        return (self.member, self.pos)


class ChainResolver:
    """Whose touchpoints a conversion draws on, through the identity projection's reads.

    profile mode: every visitor (anonymous ids, user ids, emails) of the conversion's contact — so a visitor
    identified later brings their earlier sessions along (retroactive); company mode: the visitors of every
    contact of the contact's company. An event without a contact draws on its own visitors only."""

    def __init__(self, redis: Redis, ks: Keyspace, workspace: str) -> None:
        self.redis, self.ks, self.workspace = redis, ks, workspace
        self._person_of: dict[str, Person | None] = {}  # by conversion (event) id
        self._company_members: dict[str, list[Person]] = {}

    async def _load(self, conversions: list[Conversion]) -> None:
        todo = sorted({c.id for c in conversions} - set(self._person_of))
        if todo:
            found = await read_people_of_events(self.redis, self.ks, self.workspace, todo)
            self._person_of.update({eid: found.get(eid) for eid in todo})

    async def _members_of_companies(self, companies: set[str]) -> dict[str, list[Person]]:
        """The contacts of each company (identity's company members index), cached for the request."""
        todo = sorted(companies - set(self._company_members))
        if todo:
            docs = await read_companies(self.redis, self.ks, self.workspace, todo)
            for co in todo:
                ids = (
                    await read_company_contact_ids(self.redis, self.ks, self.workspace, docs[co])
                    if co in docs
                    else []
                )
                found = await read_people(self.redis, self.ks, self.workspace, ids)
                self._company_members[co] = [found[i] for i in ids if i in found]
        return self._company_members

    async def visitors(self, conversions: list[Conversion], query_mode: str) -> list[list[str]]:
        await self._load(conversions)
        members: dict[str, list[Person]] = {}
        if query_mode == "company":
            companies = {p.company.id for c in conversions if (p := self._person_of[c.id]) and p.company}
            members = await self._members_of_companies(companies)
        out = []
        for c in conversions:
            person = self._person_of[c.id]
            if person is None:
                out.append(c.visitors)
                continue
            owners = [person]
            if query_mode == "company" and person.company is not None:
                owners = members.get(person.company.id, [person])
            vs: dict[str, None] = {}
            for p in owners:
                d = p.contact
                vs.update(dict.fromkeys(f"a:{a}" for a in d.anonymous_ids))
                vs.update(dict.fromkeys(f"u:{u}" for u in d.user_ids))
                vs.update(dict.fromkeys(v for m in d.emails if (v := visitor_of_email(m))))
            vs.update(dict.fromkeys(c.visitors))
            out.append(list(vs))
        return out

    async def contact_of(self, conversions: list[Conversion]) -> list[str | None]:
        await self._load(conversions)
        return [p.contact.id if (p := self._person_of[c.id]) else None for c in conversions]

    async def company_of(self, conversions: list[Conversion]) -> list[str | None]:
        await self._load(conversions)
        return [p.company.id if (p := self._person_of[c.id]) and p.company else None for c in conversions]

    async def fields_of(self, conversions: list[Conversion]) -> list[dict[int, object]]:
        """The custom profile fields (slot → value) of each conversion's contact."""
        await self._load(conversions)
        out: list[dict[int, object]] = []
        for c in conversions:
            p = self._person_of[c.id]
            f = p.contact.fields if p else {}
            out.append({int(k[14:]): v for k, v in f.items() if k.startswith("profile_field_")})
        return out


def _before(entry: tuple[int, int], snapshot: tuple[int, int] | None) -> bool:
    return snapshot is None or entry <= snapshot


async def _conversions(
    redis: Redis,
    ks: Keyspace,
    workspace: str,
    found: list[tuple[bytes, str]],
    snapshot: tuple[int, int] | None,
) -> list[tuple[str, Conversion]]:
    """(member text, conversion) of index members (with their event name), ascending; later than the
    snapshot left out. Spilled records and page URLs are read in one round trip."""
    decoded: list[tuple[str, str, ConversionRecord]] = []  # (key as text, name, record)
    for m, name in found:
        key, rec = read_conversion_member(m)
        if _before((ulid_bytes_ms(key[6:]) + rec.entry_offset, rec.entry_seq), snapshot):
            decoded.append((key_text(key), name, rec))
    spilled = [k[13:] for k, _, rec in decoded if rec.spilled]
    if spilled:
        docs = await redis.hmget(keys.conversion_docs(ks, workspace), spilled)
        full = {u: decode_conversion_doc(d) for u, d in zip(spilled, docs, strict=True) if d is not None}
        decoded = [(k, n, full.get(k[13:], r) if r.spilled else r) for k, n, r in decoded]
        decoded = [d for d in decoded if not d[2].spilled]
    url_ids = sorted({rec.url for *_, rec in decoded if rec.url})
    urls: dict[int, str] = {}
    if url_ids:
        found_urls = await redis.hmget(keys.conversion_urls(ks, workspace), [str(i) for i in url_ids])
        urls = {i: u.decode() for i, u in zip(url_ids, found_urls, strict=True) if u is not None}
    out = []
    for text, name, rec in decoded:
        c = Conversion(
            id=f"evt_{text[13:]}",
            ts=rec.ts if rec.ts is not None else int(text[:13]),
            name=name,
            anonymous_id=rec.anonymous,
            user_id=rec.user_id,
            amount=rec.amount,
            order_id=rec.order_id,
            order_name=rec.order_name,
            is_upsell=rec.is_upsell,
            url=urls.get(rec.url),
        )
        out.append((text, c))
    return out


async def _conversion_chunk(
    redis: Redis,
    ks: Keyspace,
    workspace: str,
    q: AttributionQuery,
    *,
    lo: bytes,
    hi: bytes,
    backward: bool,
    count: int,
) -> list[tuple[bytes, str]]:
    """Up to `count` conversion members (with their name) between the BYLEX bounds over every asked name, in
    walk order."""
    sets = keys.conversions_by_name(ks, workspace)
    ranges = [(n, lo, hi) for n in q.names]
    members = await read_ranges(redis, sets, ranges, rev=backward, count=count)
    found = [(m, name) for name, ms in zip(q.names, members, strict=True) for m in ms]
    found.sort(reverse=backward)
    return found[:count]


async def _touchpoints(
    redis: Redis,
    ks: Keyspace,
    workspace: str,
    span: dict[str, tuple[int | None, int]],
    snapshot: tuple[int, int] | None,
) -> dict[str, list[TouchRef]]:
    """Each visitor's touchpoints between the times of `span` (None: from the start), later than the snapshot
    left out."""
    order = sorted(span)
    ranges = [(v, b"[" + time_key(span[v][0] or 0), b"(" + time_key(span[v][1] + 1)) for v in order]
    found = await read_ranges(redis, keys.tp_chains(ks, workspace), ranges)
    out: dict[str, list[TouchRef]] = {}
    for v, members in zip(order, found, strict=True):
        refs = [t for m in members if _before((t := read_touch_member(m)).entry, snapshot)]
        if refs:
            out[v] = refs
    return out


async def _rows_of(
    redis: Redis,
    ks: Keyspace,
    workspace: str,
    q: AttributionQuery,
    found: list[tuple[bytes, str]],
    resolver: ChainResolver,
    accept: Callable[[dict[int, object]], bool] | None,
) -> list[Row]:
    """The rows of some conversions (ascending), attributed when the query has sources."""
    snapshot = stream_id(q.snapshot) if q.snapshot is not None else None
    convs = await _conversions(redis, ks, workspace, found, snapshot)
    if accept is not None and convs:
        fields = await resolver.fields_of([c for _, c in convs])
        convs = [mc for mc, f in zip(convs, fields, strict=True) if accept(f)]
    if q.sources is None:
        return [Row(c, m, 0, None, None, c.amount) for m, c in convs]
    if not convs:
        return []
    assert q.model is not None and q.window_days is not None
    visitor_lists = await resolver.visitors([c for _, c in convs], q.query_mode)
    span: dict[str, tuple[int | None, int]] = {}
    for (_, c), vs in zip(convs, visitor_lists, strict=True):
        lo = window_start_ms(c.ts, q.window_days)
        for v in vs:
            a, b = span.get(v, (lo, c.ts))
            span[v] = (None if a is None or lo is None else min(a, lo), max(b, c.ts))
    chains = await _touchpoints(redis, ks, workspace, span, snapshot)
    # Touchpoints go to the models as (time, key, source), the key as hex: it orders as the ids do. A touchpoint
    # is in one visitor's chain only, so a conversion's are its visitors' chains put together.
    by_hex: dict[str, TouchRef] = {}
    touches_of: dict[str, list[tuple[int, str, str]]] = {}
    for v, refs in chains.items():
        touches = touches_of[v] = []
        for t in refs:
            h = t.key.hex()
            by_hex[h] = t
            touches.append((t.ts, h, t.source))
    batch = [
        (m, c.ts, c.amount, [t for v in vs for t in touches_of.get(v, ())])
        for (m, c), vs in zip(convs, visitor_lists, strict=True)
    ]
    by_member = dict(convs)
    credited = attribute(batch, q.model, q.window_days).filter(pl.col("source").is_in(sorted(q.sources)))
    columns = (credited[c].to_list() for c in ("conv", "pos", "touchpoint_id", "source", "credit"))
    picked = [
        (m, pos, by_hex[h] if h else None, src, credit)
        for m, pos, h, src, credit in zip(*columns, strict=True)
    ]
    ad_docs: dict[bytes, AdFields] = {}  # touchpoint ULID (bytes) → ad hierarchy fields kept in a document
    if q.ad_fields:
        wanted = sorted(
            {t.key[6:] for _, _, t, _, _ in picked if t is not None and t.has_ad_fields and t.ad is None}
        )
        if wanted:
            found_docs = await redis.hmget(keys.tp_ad_docs(ks, workspace), [ulid_text(w) for w in wanted])
            ad_docs = {w: decode_ad_doc(d) for w, d in zip(wanted, found_docs, strict=True) if d is not None}
    return [
        Row(
            by_member[m],
            m,
            pos,
            Touchpoint(
                t.key, t.ts, classified(t.source, (t.ad or ad_docs.get(t.key[6:])) if q.ad_fields else None)
            )
            if t
            else None,
            source,
            credit,
        )
        for m, pos, t, source, credit in picked
    ]


async def read_attribution_rows(
    redis: Redis,
    ks: Keyspace,
    workspace: str,
    q: AttributionQuery,
    *,
    limit: int,
    after: tuple[str, int] | None = None,
    before: tuple[str, int] | None = None,
    resolver: ChainResolver | None = None,
    accept: Callable[[dict[int, object]], bool] | None = None,
) -> list[Row]:
    """Up to `limit` rows in (time, event id, touchpoint position) order: the first ones strictly after
    `after`, or the last ones strictly before `before` (still returned ascending). Keyset pages: a row
    is never skipped or repeated, and with `q.snapshot` later events never shift them."""
    resolver = resolver or ChainResolver(redis, ks, workspace)
    if not q.names:
        return []
    backward = before is not None
    lo_key, hi_key = time_key(q.start_ms), time_key(q.end_ms + 1)
    lo, hi = b"[" + lo_key, b"(" + hi_key
    if after is not None:
        lo_key = key_of_text(after[0])
        lo = b"[" + lo_key
    if before is not None:
        hi_key = key_of_text(before[0]) + b"\xff"  # every member of the key: its rows before `before`'s pos
        hi = b"[" + hi_key
    out: list[Row] = []
    count = min(max(limit + 1, 64), 2000)
    while len(out) < limit and lo_key <= hi_key:
        found = await _conversion_chunk(redis, ks, workspace, q, lo=lo, hi=hi, backward=backward, count=count)
        if not found:
            break
        rows = await _rows_of(redis, ks, workspace, q, sorted(found), resolver, accept)
        if after is not None:
            rows = [r for r in rows if r.key > after]
        if before is not None:
            rows = [r for r in rows if r.key < before]
        if backward:
            out.extend(reversed(rows))
            hi_key = found[-1][0]
            hi = b"(" + hi_key
        else:
            out.extend(rows)
            lo_key = found[-1][0]
            lo = b"(" + lo_key
        if len(found) < count:
            break
    out = out[:limit]
    return list(reversed(out)) if backward else out
