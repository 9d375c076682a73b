"""Touchpoint chains and conversions, for the attribution API.

Sessions: per visitor (anonymous id, else user id), a browser event (page / screen, or a track call with a
URL) more than 30 minutes after the visitor's last one starts a session; its entry becomes a touchpoint
classified by `ingest.touchpoints`. Email clicks are touchpoints of their own. State is processed in log
order, so a live fold and a replay agree whatever the batch boundaries. Every tracked event is a conversion
candidate, indexed by name (custom event names are mapped at query time, so settings stay out of the fold).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import msgspec
from redis.asyncio import Redis

from ingest.schema import Event
from ingest.sources.profile import normalize_email
from ingest.touchpoints import Classified, classify

from . import keys
from .contacts import (
    ContactDoc,
    read_companies,
    read_company_contact_ids,
    read_company_ids_of_contacts,
    read_contact_ids_of_events,
    read_contacts,
)
from .events import Located
from .keys import Keyspace
from .updates import Targets, Updates

SESSION_GAP_MS = 30 * 60 * 1000
EMAIL_CLICK_EVENTS = frozenset({"email_clicked", "email_link_clicked", "Email Link Clicked", "email_click"})
AMOUNT_PROPERTIES = ("revenue", "value", "amount")
TS_DIGITS = 13  # conversion index members start with the zero-padded epoch ms, so BYLEX order = time order


class Touchpoint(msgspec.Struct, array_like=True, omit_defaults=True, frozen=True):
    id: str  # tp_<ULID of the event that opened the session (or the email click)>
    ts: int
    entry_id: str  # log entry of that event (for snapshot-consistent pages)
    visitor: str
    touch: Classified
    url: str | None = None


class Conversion(msgspec.Struct, array_like=True, omit_defaults=True, frozen=True):
    id: str  # evt_<ULID>
    ts: int
    entry_id: str
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


_tp_encoder = msgspec.json.Encoder()
_tp_decoder = msgspec.json.Decoder(Touchpoint)
_conv_decoder = msgspec.json.Decoder(Conversion)


def visitor_of_anonymous(anonymous_id: str | None) -> str | None:
    return f"a:{anonymous_id}" if anonymous_id else None


def visitor_of_user(user_id: str | None) -> str | None:
    return f"u:{user_id}" if user_id else None


def visitor_of_email(email: str | None) -> str | None:
    address = normalize_email(email)
    return f"e:{address}" if address else None


def visitor_of(e: Event) -> str | None:
    """Whose touchpoints an event belongs to: the browser's anonymous id, else the user id, else (email
    webhooks, which know people only by address) the email address."""
    return visitor_of_anonymous(e.anonymous_id) or visitor_of_user(e.user_id) or visitor_of_email(e.email)


def chain_member(visitor: str, ts: int, touchpoint_id: str) -> str:
    return f"{visitor}\x00{max(ts, 0):0{TS_DIGITS}d}{touchpoint_id}"


def conversion_member(ts: int, ulid: str) -> str:
    return f"{ts:0{TS_DIGITS}d}{ulid}"


def _amount(props: dict) -> float:
    for k in AMOUNT_PROPERTIES:
        v = props.get(k)
        if isinstance(v, bool):
            continue
        if isinstance(v, int | float):
            return float(v)
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                continue
    return 0.0


def _text(v: object) -> str | None:
    return None if v is None or v == "" else str(v)


def _truthy(v: object) -> bool:
    return v is True or (isinstance(v, str) and v.lower() in ("true", "1", "yes")) or v == 1


def _order_fields(p: dict[str, Any]) -> dict[str, Any]:
    """A conversion's amount and order fields from the event's properties (none: the defaults)."""
    if not p:
        return {}
    return {
        "amount": _amount(p),
        "order_id": _text(p.get("order_id") or p.get("orderId")),
        "order_name": _text(p.get("order_name") or p.get("orderName")),
        "is_upsell": _truthy(p.get("is_upsell")),
    }


def conversion_of(loc: Located) -> Conversion:
    e = loc.event
    return Conversion(
        id=e.id,
        ts=e.timestamp,
        entry_id=loc.entry_id,
        name=e.event,
        anonymous_id=e.anonymous_id,
        user_id=e.user_id,
        url=e.url,
        **_order_fields(e.properties),
    )


@lru_cache(maxsize=65_536)
def _classify(url: str | None, referrer: str | None, campaign: tuple[tuple[str, str], ...]) -> Classified:
    # Landing URLs and referrers repeat a lot (campaign links): classify each distinct one once.
    return classify(url, referrer, dict(campaign))


def opens_sessions(e: Event) -> bool:
    """Browser activity: page and screen views, and track calls sent from a page (they carry its URL)."""
    return e.kind in ("page", "screen") or (e.kind == "track" and e.url is not None)


@dataclass(slots=True)
class SessionState:
    start: int
    last: int

    def encode(self) -> str:
        return f"{self.start}:{self.last}"

    @classmethod
    def decode(cls, raw: bytes | str) -> SessionState:
        s = raw.decode() if isinstance(raw, bytes) else raw
        a, _, b = s.partition(":")
        return cls(int(a), int(b))


async def load_sessions(
    redis: Redis, ks: Keyspace, by_workspace: dict[str, Iterable[Located]]
) -> dict[str, dict[str, SessionState]]:
    """The session state of every visitor in a batch: one pipelined round trip for the whole batch."""
    wanted = {
        ws: sorted({v for loc in locs if opens_sessions(loc.event) and (v := visitor_of(loc.event))})
        for ws, locs in by_workspace.items()
    }
    order = [ws for ws in sorted(wanted) if wanted[ws]]
    if not order:
        return {}
    pipe = redis.pipeline(transaction=False)
    for ws in order:
        pipe.hmget(keys.tp_sessions(ks, ws), wanted[ws])
    out: dict[str, dict[str, SessionState]] = {}
    for ws, found in zip(order, await pipe.execute(), strict=True):
        out[ws] = {v: SessionState.decode(raw) for v, raw in zip(wanted[ws], found, strict=True) if raw}
    return out


def apply_touchpoints(
    u: Updates, ks: Keyspace, workspace: str, located: list[Located], sessions: dict[str, SessionState]
) -> None:
    """Touchpoints (session entries, email clicks), visitor chains, user → anonymous links, conversions.

    `sessions` is the batch's state loaded by `load_sessions`; it is advanced in place, in log order."""
    docs = u.hset[keys.tp_docs(ks, workspace)]
    chains = u.zadd[keys.tp_chains(ks, workspace)]
    conv_docs = u.hset[keys.conversion_docs(ks, workspace)]
    by_name = Targets(u.zadd, lambda name: keys.conversions_by_name(ks, workspace, name))
    names = u.sadd[keys.conversion_names(ks, workspace)]
    touched: set[str] = set()
    for loc in located:
        e = loc.event
        if e.kind == "track":
            c = conversion_of(loc)
            conv_docs[loc.ulid] = _tp_encoder.encode(c).decode()
            by_name[e.event][conversion_member(e.timestamp, loc.ulid)] = 0
            names.add(e.event)
        visitor = visitor_of(e)
        if visitor is None:
            continue
        touch: Classified | None = None
        if e.kind == "track" and e.event in EMAIL_CLICK_EVENTS:
            link = _text(e.properties.get("url") or e.properties.get("link")) or e.url
            touch = Classified(source="email", campaign_name=_text(e.properties.get("campaign_name")))
            tp = Touchpoint(f"tp_{loc.ulid}", e.timestamp, loc.entry_id, visitor, touch, link)
        elif opens_sessions(e):
            state = sessions.get(visitor)
            if state is not None and state.start <= e.timestamp <= state.last + SESSION_GAP_MS:
                state.last = max(state.last, e.timestamp)
                touched.add(visitor)
                continue
            sessions[visitor] = SessionState(e.timestamp, e.timestamp)
            touched.add(visitor)
            touch = _classify(e.url, e.referrer, tuple(sorted(e.campaign.items())) if e.campaign else ())
            tp = Touchpoint(f"tp_{loc.ulid}", e.timestamp, loc.entry_id, visitor, touch, e.url)
        else:
            continue
        docs[tp.id] = _tp_encoder.encode(tp).decode()
        chains[chain_member(visitor, tp.ts, tp.id)] = 0
    state_hash = u.hset[keys.tp_sessions(ks, workspace)]
    for v in sorted(touched):
        state_hash[v] = sessions[v].encode()


# ---------------------------------------------------------------- reads


def decode_touchpoint(raw: bytes) -> Touchpoint:
    return _tp_decoder.decode(raw)


def decode_conversion(raw: bytes) -> Conversion:
    return _conv_decoder.decode(raw)


async def read_conversion_names(redis: Redis, ks: Keyspace, workspace: str) -> set[str]:
    return {m.decode() for m in await redis.smembers(keys.conversion_names(ks, workspace))}


# ---------------------------------------------------------------- attribution pages


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


@dataclass(frozen=True, slots=True)
class Row:
    conversion: Conversion
    member: str
    pos: int  # the touchpoint's place in the conversion's credited chain (0 without attribution)
    touchpoint: Touchpoint | None
    source: str | None
    amount: float

    @property
    def key(self) -> tuple[str, int]:
        return (self.member, self.pos)


class ChainResolver:
    """Whose touchpoints a conversion draws on, through the identity projection's reads.

    profile mode: every visitor (anonymous ids, user ids) of the conversion's contact — so a visitor identified
    later brings their earlier sessions along (retroactive); company mode: the visitors of every contact of the
    contact's company. An event without a contact draws on its own visitors only."""

    def __init__(self, redis: Redis, ks: Keyspace, workspace: str) -> None:
        self.redis, self.ks, self.workspace = redis, ks, workspace
        self._contact_of: dict[str, str] = {}
        self._contacts: dict[str, ContactDoc] = {}
        self._company_of: dict[str, str] = {}
        self._company_members: dict[str, list[ContactDoc]] = {}

    async def _load(self, conversions: list[Conversion]) -> None:
        todo = [c.id for c in conversions if c.id not in self._contact_of]
        if todo:
            self._contact_of.update(
                await read_contact_ids_of_events(self.redis, self.ks, self.workspace, todo)
            )
        ids = sorted(
            {self._contact_of[c.id] for c in conversions if c.id in self._contact_of} - set(self._contacts)
        )
        if ids:
            docs = await read_contacts(self.redis, self.ks, self.workspace, ids)
            self._contacts.update(docs)
            self._company_of.update(
                await read_company_ids_of_contacts(self.redis, self.ks, self.workspace, list(docs.values()))
            )

    def _contact(self, c: Conversion) -> ContactDoc | None:
        cid = self._contact_of.get(c.id)
        return self._contacts.get(cid) if cid else None

    async def _members_of_companies(self, companies: set[str]) -> dict[str, list[ContactDoc]]:
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
                found = await read_contacts(self.redis, self.ks, self.workspace, ids)
                self._company_members[co] = [found[i] for i in ids if i in found]
        return self._company_members

    async def visitors(self, conversions: list[Conversion], query_mode: str) -> list[list[str]]:
        await self._load(conversions)
        members: dict[str, list[ContactDoc]] = {}
        if query_mode == "company":
            companies = {
                co for c in conversions if (d := self._contact(c)) and (co := self._company_of.get(d.id))
            }
            members = await self._members_of_companies(companies)
        out = []
        for c in conversions:
            doc = self._contact(c)
            if doc is None:
                out.append(c.visitors)
                continue
            owners = [doc]
            co = self._company_of.get(doc.id)
            if query_mode == "company" and co is not None:
                owners = members.get(co, [doc])
            vs: dict[str, None] = {}
            for d in owners:
                vs.update(dict.fromkeys(f"a:{a}" for a in d.anonymous_ids))
                vs.update(dict.fromkeys(f"u:{u}" for u in d.user_ids))
                vs.update(dict.fromkeys(v for m in d.emails if (v := visitor_of_email(m))))
            vs.update(dict.fromkeys(c.visitors))
            out.append(list(vs))
        return out

    async def contact_of(self, conversions: list[Conversion]) -> list[str | None]:
        await self._load(conversions)
        return [d.id if (d := self._contact(c)) else None for c in conversions]

    async def company_of(self, conversions: list[Conversion]) -> list[str | None]:
        await self._load(conversions)
        return [self._company_of.get(d.id) if (d := self._contact(c)) else None for c in conversions]

    async def fields_of(self, conversions: list[Conversion]) -> list[dict[int, object]]:
        """The custom profile fields (slot → value) of each conversion's contact."""
        await self._load(conversions)
        out: list[dict[int, object]] = []
        for c in conversions:
            d = self._contact(c)
            f = d.fields if d else {}
            out.append({int(k[14:]): v for k, v in f.items() if k.startswith("profile_field_")})
        return out


def _lex(ms: int) -> str:
    return f"{max(ms, 0):0{TS_DIGITS}d}"


async def _conversion_chunk(
    redis: Redis,
    ks: Keyspace,
    workspace: str,
    q: AttributionQuery,
    *,
    lo: str,
    hi: str,
    backward: bool,
    count: int,
) -> list[str]:
    """Up to `count` conversion members between the BYLEX bounds over every asked name, in walk order."""
    pipe = redis.pipeline(transaction=False)
    for name in q.names:
        key = keys.conversions_by_name(ks, workspace, name)
        if backward:
            pipe.zrange(key, hi, lo, bylex=True, desc=True, offset=0, num=count)
        else:
            pipe.zrange(key, lo, hi, bylex=True, offset=0, num=count)
    members = sorted({m.decode() for reply in await pipe.execute() for m in reply}, reverse=backward)
    return members[:count]


async def _rows_of(
    redis: Redis,
    ks: Keyspace,
    workspace: str,
    q: AttributionQuery,
    members: list[str],
    resolver: ChainResolver,
    accept: object,
) -> list[Row]:
    """The rows of some conversions (ascending), attributed when the query has sources."""
    from .attribution import attribute, window_start_ms

    if not members:
        return []
    raws = await redis.hmget(keys.conversion_docs(ks, workspace), [m[TS_DIGITS:] for m in members])
    convs: list[tuple[str, Conversion]] = []
    for m, raw in zip(members, raws, strict=True):
        if raw is None:
            continue
        c = decode_conversion(raw)
        if q.snapshot is not None and _sid(c.entry_id) > _sid(q.snapshot):
            continue
        convs.append((m, c))
    if accept is not None and convs:
        fields = await resolver.fields_of([c for _, c in convs])
        convs = [mc for mc, f in zip(convs, fields, strict=True) if accept(f)]  # type: ignore[operator]
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
    order = sorted(span)
    pipe = redis.pipeline(transaction=False)
    chains_key = keys.tp_chains(ks, workspace)
    for v in order:
        a, b = span[v]
        lo_lex = "[" + chain_member(v, a or 0, "")
        pipe.zrange(chains_key, lo_lex, "(" + chain_member(v, b + 1, ""), bylex=True)
    cut = TS_DIGITS + 1
    tp_ids = {
        v: [m.decode()[len(v) + cut :] for m in reply]
        for v, reply in zip(order, await pipe.execute(), strict=True)
    }
    wanted = sorted({t for ts in tp_ids.values() for t in ts})
    tps: dict[str, Touchpoint] = {}
    if wanted:
        for raw in await redis.hmget(keys.tp_docs(ks, workspace), wanted):
            if raw is not None:
                tp = decode_touchpoint(raw)
                if q.snapshot is None or _sid(tp.entry_id) <= _sid(q.snapshot):
                    tps[tp.id] = tp
    batch = []
    for (m, c), vs in zip(convs, visitor_lists, strict=True):
        touches = {t: tps[t] for v in vs for t in tp_ids.get(v, []) if t in tps}
        batch.append((m, c.ts, c.amount, [(tp.ts, tp.id, tp.touch.source) for tp in touches.values()]))
    credited = attribute(batch, q.model, q.window_days)
    by_member = dict(convs)
    rows = []
    for r in credited.iter_rows(named=True):
        if r["source"] not in q.sources:
            continue
        tp_id = r["touchpoint_id"]
        rows.append(
            Row(
                by_member[r["conv"]],
                r["conv"],
                r["pos"],
                tps.get(tp_id) if tp_id else None,
                r["source"],
                r["credit"],
            )
        )
    return rows


def _sid(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


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
    accept: object = None,
) -> list[Row]:
    """Up to `limit` rows in (time, event id, touchpoint position) order: the first ones strictly after
    `after`, or the last ones strictly before `before` (still returned ascending). Keyset pages: a row
    is never skipped or repeated, and with `q.snapshot` later events never shift them."""
    resolver = resolver or ChainResolver(redis, ks, workspace)
    if not q.names:
        return []
    backward = before is not None
    lo = "[" + _lex(q.start_ms)
    hi = "(" + _lex(q.end_ms + 1)
    if after is not None:
        lo = "[" + after[0]
    if before is not None:
        hi = "[" + before[0]
    out: list[Row] = []
    count = min(max(limit + 1, 64), 2000)
    while len(out) < limit:
        members = await _conversion_chunk(
            redis, ks, workspace, q, lo=lo, hi=hi, backward=backward, count=count
        )
        if not members:
            break
        rows = await _rows_of(redis, ks, workspace, q, sorted(members), resolver, accept)
        if after is not None:
            rows = [r for r in rows if r.key > after]
        if before is not None:
            rows = [r for r in rows if r.key < before]
        if backward:
            out.extend(reversed(rows))
            hi = "(" + members[-1]
        else:
            out.extend(rows)
            lo = "(" + members[-1]
        if len(members) < count:
            break
    out = out[:limit]
    return list(reversed(out)) if backward else out
