"""Touchpoint chains and conversions: what the fold writes for the attribution API.

Sessions: per visitor (anonymous id, else user id), a browser event (page / screen, or a track call with a
URL) more than 30 minutes after the visitor's last one starts a session; its entry becomes a touchpoint
classified by `classify.py`. Email clicks are touchpoints of their own. State is processed in log order, so a
live fold and a replay agree whatever the batch boundaries. Every tracked event is a conversion candidate,
indexed by name (custom event names are mapped at query time, so settings stay out of the fold).
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

from ..keyspace import Keyspace
from ..located import Located
from ..updates import Targets, Updates
from . import keys
from .classify import Classified, classify

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
    touched: set[str] = set()
    for loc in located:
        e = loc.event
        if e.kind == "track":
            c = conversion_of(loc)
            conv_docs[loc.ulid] = _tp_encoder.encode(c).decode()
            by_name[e.event][conversion_member(e.timestamp, loc.ulid)] = 0
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


def decode_touchpoint(raw: bytes) -> Touchpoint:
    return _tp_decoder.decode(raw)


def decode_conversion(raw: bytes) -> Conversion:
    return _conv_decoder.decode(raw)
