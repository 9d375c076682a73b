"""Attribution pages for the List Events API: conversions in time order, each credited to the touchpoints in
its window under a model, as keyset pages stable under concurrent folding.

Whose touchpoints a conversion draws on is read through the identity projection (`ChainResolver`).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from ..identity import Person, read_companies, read_company_contact_ids, read_people, read_people_of_events
from ..keyspace import Keyspace
from ..located import stream_id
from . import keys
from .chains import (
    TS_DIGITS,
    Conversion,
    Touchpoint,
    chain_member,
    decode_conversion,
    decode_touchpoint,
    visitor_of_email,
)
from .models import attribute, window_start_ms


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
    if not members:
        return []
    raws = await redis.hmget(keys.conversion_docs(ks, workspace), [m[TS_DIGITS:] for m in members])
    convs: list[tuple[str, Conversion]] = []
    for m, raw in zip(members, raws, strict=True):
        if raw is None:
            continue
        c = decode_conversion(raw)
        if q.snapshot is not None and stream_id(c.entry_id) > stream_id(q.snapshot):
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
                if q.snapshot is None or stream_id(tp.entry_id) <= stream_id(q.snapshot):
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
