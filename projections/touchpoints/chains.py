"""Touchpoint chains and conversions: what the fold writes for the attribution API.

Sessions: per visitor (anonymous id, else user id), a browser event (page / screen, or a track call with a
URL) more than 30 minutes after the visitor's last one starts a session; its entry becomes a touchpoint
classified by `classify.py`, added to the visitor's chain. Email clicks are touchpoints of their own. State is
processed in log order, so a live fold and a replay agree whatever the batch boundaries. Every tracked event
is a conversion candidate, indexed by name (custom event names are mapped at query time, so settings stay
out of the fold). How members and documents are written: `records.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from redis.asyncio import Redis

from ingest.schema import Event
from ingest.sources.profile import normalize_email

from ..keyspace import Keyspace
from ..located import Located
from ..updates import Updates
from . import keys
from .chunks import queue_adds
from .classify import Classified, classify
from .records import (
    MAX_SORT_MS,
    AdFields,
    ConversionRecord,
    anonymous_fields,
    conversion_member,
    event_key,
    position_offset,
    touch_head,
    touch_member,
)

SESSION_GAP_MS = 30 * 60 * 1000
EMAIL_CLICK_EVENTS = frozenset({"email_clicked", "email_link_clicked", "Email Link Clicked", "email_click"})
AMOUNT_PROPERTIES = ("revenue", "value", "amount")


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


@lru_cache(maxsize=65_536)
def _classify(
    url: str | None, referrer: str | None, campaign: tuple[tuple[str, str], ...]
) -> tuple[bytes, AdFields | None]:
    # Landing URLs and referrers repeat a lot (campaign links): classify each distinct one once.
    return touch_head(classify(url, referrer, dict(campaign)))


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


@dataclass(slots=True)
class TouchpointState:
    """What folding one workspace's batch reads first (`load_state`) and advances in place, in log order: the
    open session of each visitor, and the ids of the conversion page URLs known so far."""

    sessions: dict[str, SessionState] = field(default_factory=dict)
    url_ids: dict[str, int] = field(default_factory=dict)
    next_url_id: int = 1


async def load_state(
    redis: Redis, ks: Keyspace, by_workspace: dict[str, Iterable[Located]]
) -> dict[str, TouchpointState]:
    """The state of every workspace of a batch: one pipelined round trip for the whole batch."""
    plan: list[tuple[str, str, list[str]]] = []
    pipe = redis.pipeline(transaction=False)
    for ws in sorted(by_workspace):
        locs = list(by_workspace[ws])
        visitors = sorted({v for loc in locs if opens_sessions(loc.event) and (v := visitor_of(loc.event))})
        urls = sorted({loc.event.url for loc in locs if loc.event.kind == "track" and loc.event.url})
        if visitors:
            pipe.hmget(keys.tp_sessions(ks, ws), visitors)
            plan.append((ws, "sessions", visitors))
        if urls:
            pipe.hmget(keys.conversion_url_ids(ks, ws), urls)
            pipe.hlen(keys.conversion_url_ids(ks, ws))
            plan += [(ws, "urls", urls), (ws, "url count", [])]
    out = {ws: TouchpointState() for ws in by_workspace}
    for (ws, what, asked), found in zip(plan, await pipe.execute() if plan else [], strict=True):
        state = out[ws]
        if what == "sessions":
            state.sessions = {v: SessionState.decode(raw) for v, raw in zip(asked, found, strict=True) if raw}
        elif what == "urls":
            state.url_ids = {u: int(raw) for u, raw in zip(asked, found, strict=True) if raw}
        else:
            state.next_url_id = int(found) + 1
    return out


def _conversion_record(
    loc: Located, position: tuple[int, int], state: TouchpointState, u: Updates, ks: Keyspace, ws: str
) -> ConversionRecord:
    e = loc.event
    url_id = 0
    if e.url:
        url_id = state.url_ids.get(e.url, 0)
        if not url_id:  # a URL met for the first time gets the next id
            url_id = state.url_ids[e.url] = state.next_url_id
            state.next_url_id += 1
            u.hset[keys.conversion_url_ids(ks, ws)][e.url] = str(url_id)
            u.hset[keys.conversion_urls(ks, ws)][str(url_id)] = e.url
    offset, seq = position
    return ConversionRecord(
        entry_offset=offset,
        entry_seq=seq,
        ts=None if 0 <= e.timestamp <= MAX_SORT_MS else e.timestamp,
        user_id=e.user_id,
        url=url_id,
        **anonymous_fields(e.anonymous_id),
        **_order_fields(e.properties),
    )


def apply_touchpoints(
    u: Updates, ks: Keyspace, workspace: str, located: list[Located], state: TouchpointState
) -> None:
    """Touchpoints (session entries, email clicks) into their visitor's chain, conversions into their name's
    index. `state` is the batch's (`load_state`); it is advanced in place, in log order."""
    ad_docs = u.hset[keys.tp_ad_docs(ks, workspace)]
    chains: dict[str, list[bytes]] = {}  # new members by visitor, and by event name, in log order
    by_name: dict[str, list[bytes]] = {}
    sessions = state.sessions
    touched: set[str] = set()
    for loc in located:
        e = loc.event
        if e.kind == "track":
            key, position = event_key(loc), position_offset(loc)
            member, doc = conversion_member(key, _conversion_record(loc, position, state, u, ks, workspace))
            index = by_name.get(e.event)
            if index is None:
                index = by_name[e.event] = []
            index.append(member)
            if doc is not None:
                u.hset[keys.conversion_docs(ks, workspace)][loc.ulid] = doc
        visitor = visitor_of(e)
        if visitor is None:
            continue
        if e.kind == "track" and e.event in EMAIL_CLICK_EVENTS:
            head = touch_head(
                Classified(source="email", campaign_name=_text(e.properties.get("campaign_name")))
            )
        elif opens_sessions(e):
            s = sessions.get(visitor)
            if s is not None and s.start <= e.timestamp <= s.last + SESSION_GAP_MS:
                s.last = max(s.last, e.timestamp)
                touched.add(visitor)
                continue
            sessions[visitor] = SessionState(e.timestamp, e.timestamp)
            touched.add(visitor)
            head = _classify(e.url, e.referrer, tuple(sorted(e.campaign.items())) if e.campaign else ())
        else:
            continue
        if e.kind != "track":  # a tracked event's key and position are known already
            key, position = event_key(loc), position_offset(loc)
        member, ad = touch_member(key, e.timestamp, position, head)
        chain = chains.get(visitor)
        if chain is None:
            chain = chains[visitor] = []
        chain.append(member)
        if ad is not None:
            ad_docs[loc.ulid] = ad
    queue_adds(u, keys.conversions_by_name(ks, workspace), by_name)
    queue_adds(u, keys.tp_chains(ks, workspace), chains)
    state_hash = u.hset[keys.tp_sessions(ks, workspace)]
    for v in sorted(touched):
        state_hash[v] = sessions[v].encode()
