"""Text index for `url_contains` and `search`: a dictionary of page signatures with a trigram index over it.

A signature is a listed event's (URL, domain); events without a URL have none. Each distinct signature gets a
stable id (a hash, so the fold needs no counter), a dictionary entry `sig` (id → url␟domain), a time-ordered
index `ix:s:<id>` of its events (members and scores as in `indices.py`), its id in its domain's set `sig:d:<domain>`
(the domain filter is the union of the domain's signature indices), its event count and its
newest and oldest timestamps (`sig:n`, `sig:new`, `sig:old`: a query over many signatures counts them with one
read and skips the indices that cannot reach its page), and its id in `ng:<trigram>` for every trigram of its
lower-cased text. A substring query intersects the trigram sets, checks the few
candidates exactly, and answers with signature ids: its cost grows with distinct pages, never with events.
Signatures are disjoint (an event has at most one), so the union of their indices is counted by summing
`ZCOUNT`s. Event names, the third field `search` looks in, are matched against the small set of event types;
`query.py` combines the two.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

from redis.asyncio import Redis

from ..keyspace import Keyspace
from ..located import Located, is_listed
from ..updates import Targets, Updates
from . import keys
from .expiry import KEEP_ALL, Keep, Oldest

SEP = "\x1f"
GRAM = 3


def signature_text(url: str, domain: str | None) -> str:
    return f"{url}{SEP}{domain or ''}"


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
    url: str
    domain: str

    @classmethod
    def parse(cls, sid: str, text: str) -> Signature:
        url, domain = text.split(SEP)
        return cls(sid, url, domain)

    def contains(self, needle: str) -> bool:
        """Whether the lower-cased URL or domain contains `needle` (already lower-cased)."""
        return needle in self.url.lower() or needle in self.domain


def signature_of(loc: Located) -> tuple[str, str] | None:
    """(id, text) of a listed event's signature; None when the event has no URL."""
    e = loc.event
    if not e.url:
        return None
    return _signature(e.url, e.domain)


@lru_cache(maxsize=65_536)
def _signature(url: str, domain: str | None) -> tuple[str, str]:
    # Events repeat a few thousand pages: text and hash once per distinct one (and not again for the same
    # event in `apply_search` after `read_known_signatures`).
    text = signature_text(url, domain)
    return signature_id(text), text


async def read_known_signatures(
    redis: Redis, ks: Keyspace, by_workspace: dict[str, list[Located]]
) -> dict[str, set[str]]:
    """Which of a fold batch's signatures each workspace's dictionary already holds (one round trip)."""
    asked: dict[str, list[str]] = {}
    for ws in sorted(by_workspace):
        ids = {sig[0] for loc in by_workspace[ws] if is_listed(loc.event) and (sig := signature_of(loc))}
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


def apply_search(
    u: Updates,
    ks: Keyspace,
    workspace: str,
    located: list[Located],
    known: set[str],
    keep: Keep = KEEP_ALL,
) -> None:
    """Index each listed event with a URL under its signature (those `keep` keeps: see `expiry.py`); new
    signatures enter the dictionary and the trigram sets."""
    expiring = Oldest() if keep.track else None
    dictionary = u.hset[keys.signatures(ks, workspace)]
    by_signature = Targets(u.zadd, lambda sid: keys.index_signature(ks, workspace, sid))
    counts = u.hincr[keys.signature_counts(ks, workspace)]
    newest = u.zadd_gt[keys.signature_newest(ks, workspace)]
    oldest = u.zadd_lt[keys.signature_oldest(ks, workspace)]
    with_field: dict[str, list[str]] = defaultdict(list)  # field text → the new signatures that have it
    for loc in located:
        if not is_listed(loc.event):
            continue
        sig = signature_of(loc)
        if sig is None:
            continue
        sid, text = sig
        ts = loc.event.timestamp
        # the dictionary and the bounds know every page ever seen (bounds only ever widen: an expired event
        # leaves them as they were, which queries read as a hint, never as a count)
        if ts > newest.get(sid, ts - 1):
            newest[sid] = ts
        if ts < oldest.get(sid, ts + 1):
            oldest[sid] = ts
        if keep.keeps(ts):
            if expiring is not None:
                expiring.add(f"s:{sid}", ts)
            by_signature[sid][loc.member] = ts
            counts[sid] += 1
        if sid in known:
            continue
        known.add(sid)
        dictionary[sid] = text
        if loc.event.domain:
            u.sadd[keys.domain_signatures(ks, workspace, loc.event.domain)].add(sid)
        for part in text.split(SEP):
            with_field[part].append(sid)
    # A signature's trigrams are its fields' (`grams`), and new signatures share most fields: each distinct
    # field's trigram sets get all the new signatures that have it at once.
    by_gram = Targets(u.sadd, lambda g: keys.signature_gram(ks, workspace, g))
    for part, sids in with_field.items():
        for g in _part_grams(part):
            by_gram[g].update(sids)
    if expiring is not None:
        expiring.queue(u, ks, workspace)


async def _candidates(
    redis: Redis, ks: Keyspace, workspace: str, needles: list[str], domain: str | None
) -> list[Signature]:
    """Signatures whose text may contain every needle, of `domain` if given: the intersection of the trigram sets
    and the domain's set (or, with neither, the whole dictionary)."""
    sets = [keys.signature_gram(ks, workspace, g) for g in sorted({g for n in needles for g in grams(n)})]
    if domain is not None:
        sets.append(keys.domain_signatures(ks, workspace, domain))
    if not sets:
        flat = await redis.hgetall(keys.signatures(ks, workspace))
        return [Signature.parse(k.decode(), v.decode()) for k, v in flat.items()]
    sids = sorted(m.decode() for m in await redis.sinter(sets))
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
    domain: str | None = None,
) -> list[Signature]:
    """The signatures whose URL contains `url_contains` and whose URL or domain contains `search`
    (case-insensitive), of one domain if given, sorted by id."""
    url_q = url_contains.lower() if url_contains else None
    text_q = search.lower() if search else None
    out = [
        sig
        for sig in await _candidates(redis, ks, workspace, [n for n in (url_q, text_q) if n], domain)
        if (domain is None or sig.domain == domain)
        and (url_q is None or url_q in sig.url.lower())
        and (text_q is None or sig.contains(text_q))
    ]
    return sorted(out, key=lambda sig: sig.id)
