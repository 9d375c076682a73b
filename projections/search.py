"""Text index for `url_contains` and `search`: a dictionary of event signatures with a trigram index over it.

A signature is an event's (name, URL, domain). Each distinct signature gets a stable id (a hash, so the fold
needs no counter), a dictionary entry `sig` (id → name␟url␟domain), a time-ordered index `ix:s:<id>` of its
events (members and scores as in `projections.events`), and its id in `ng:<trigram>` for every trigram of its
lower-cased text. A substring query intersects the trigram sets, checks the few candidates exactly, and
answers with signature ids: its cost grows with distinct signatures, never with events. Signatures are
disjoint (an event has exactly one), so the union of their indices is counted by summing `ZCOUNT`s.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

from redis.asyncio import Redis

from . import keys
from .events import Located, is_listed
from .keys import Keyspace
from .updates import Targets, Updates

SEP = "\x1f"
GRAM = 3


def signature_text(event: str, url: str | None, domain: str | None) -> str:
    return f"{event}{SEP}{url or ''}{SEP}{domain or ''}"


def signature_id(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def grams(text: str) -> set[str]:
    """Trigrams of lower-cased text (no trigram spans a field separator)."""
    return set().union(*map(_part_grams, text.split(SEP)))


@lru_cache(maxsize=65_536)
def _part_grams(part: str) -> frozenset[str]:
    # Signatures share their fields (a few event names and domains, the site's URLs): grams once per field.
    low = part.lower()
    return frozenset(low[i : i + GRAM] for i in range(len(low) - GRAM + 1))


@dataclass(frozen=True, slots=True)
class Signature:
    id: str
    event: str
    url: str
    domain: str

    @classmethod
    def parse(cls, sid: str, text: str) -> Signature:
        event, url, domain = text.split(SEP)
        return cls(sid, event, url, domain)


def signature_of(loc: Located) -> tuple[str, str]:
    """(id, text) of a listed event's signature."""
    e = loc.event
    return _signature(e.event, e.url, e.domain)


@lru_cache(maxsize=65_536)
def _signature(event: str, url: str | None, domain: str | None) -> tuple[str, str]:
    # Events repeat a few thousand signatures: text and hash once per distinct one (and not again for the
    # same event in `apply_search` after `read_known_signatures`).
    text = signature_text(event, url, domain)
    return signature_id(text), text


async def read_known_signatures(
    redis: Redis, ks: Keyspace, by_workspace: dict[str, list[Located]]
) -> dict[str, set[str]]:
    """Which of a fold batch's signatures each workspace's dictionary already holds (one round trip)."""
    asked: dict[str, list[str]] = {}
    for ws in sorted(by_workspace):
        ids = {signature_of(loc)[0] for loc in by_workspace[ws] if is_listed(loc.event)}
        if ids:
            asked[ws] = sorted(ids)
    if not asked:
        return {}
    pipe = redis.pipeline(transaction=False)
    for ws, ids in asked.items():
        pipe.hmget(keys.signatures(ks, ws), ids)
    replies = await pipe.execute()
    return {
        ws: {sid for sid, hit in zip(ids, found, strict=True) if hit is not None}
        for (ws, ids), found in zip(asked.items(), replies, strict=True)
    }


def apply_search(u: Updates, ks: Keyspace, workspace: str, located: list[Located], known: set[str]) -> None:
    """Index each listed event under its signature; new signatures enter the dictionary and trigram sets."""
    dictionary = u.hset[keys.signatures(ks, workspace)]
    by_signature = Targets(u.zadd, lambda sid: keys.index_signature(ks, workspace, sid))
    with_field: dict[str, list[str]] = defaultdict(list)  # field text → the new signatures that have it
    for loc in located:
        if not is_listed(loc.event):
            continue
        sid, text = signature_of(loc)
        by_signature[sid][loc.member] = loc.event.timestamp
        if sid in known:
            continue
        known.add(sid)
        dictionary[sid] = text
        for part in text.split(SEP):
            with_field[part].append(sid)
    # A signature's trigrams are its fields' (`grams`), and new signatures share most fields: each distinct
    # field's trigram sets get all the new signatures that have it at once.
    by_gram = Targets(u.sadd, lambda g: keys.signature_gram(ks, workspace, g))
    for part, sids in with_field.items():
        for g in _part_grams(part):
            by_gram[g].update(sids)


async def _candidates(redis: Redis, ks: Keyspace, workspace: str, needles: list[str]) -> list[Signature]:
    """Signatures whose text may contain every needle: trigram intersection (or the whole dictionary)."""
    gs = sorted({g for n in needles for g in grams(n)})
    if not gs:
        flat = await redis.hgetall(keys.signatures(ks, workspace))
        return [Signature.parse(k.decode(), v.decode()) for k, v in flat.items()]
    sids = sorted(m.decode() for m in await redis.sinter([keys.signature_gram(ks, workspace, g) for g in gs]))
    if not sids:
        return []
    texts = await redis.hmget(keys.signatures(ks, workspace), sids)
    return [Signature.parse(s, t.decode()) for s, t in zip(sids, texts, strict=True) if t is not None]


async def matching_signatures(
    redis: Redis,
    ks: Keyspace,
    workspace: str,
    *,
    url_contains: str | None = None,
    search: str | None = None,
    event_type: str | None = None,
    domain: str | None = None,
) -> list[Signature]:
    """The signatures matching every given filter (substring filters case-insensitive), sorted by id."""
    url_q = url_contains.lower() if url_contains else None
    text_q = search.lower() if search else None
    needles = [n for n in (url_q, text_q) if n]
    out = []
    for sig in await _candidates(redis, ks, workspace, needles):
        if event_type is not None and sig.event != event_type:
            continue
        if domain is not None and sig.domain != domain:
            continue
        if url_q and url_q not in sig.url.lower():
            continue
        if text_q and not (
            text_q in sig.event.lower() or text_q in sig.url.lower() or text_q in sig.domain.lower()
        ):
            continue
        out.append(sig)
    return sorted(out, key=lambda sig: sig.id)
