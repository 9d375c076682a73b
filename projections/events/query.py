"""Events API list queries: turn filters into index groups, run them server-side in one Lua call, fetch the page.

A query's matches are a disjoint union of branches; a branch is a conjunction of groups; a group is a union
of disjoint index ZSETs (event types, one domain, one contact, the identified set, or the page signatures a
text filter matched). Most queries are one branch; `search` (event name OR URL OR domain) is two: events whose
type name matches, and events of the other types whose page matches. The script counts each group in the time
range, drives each branch from its cheapest group, checks the others with `ZMSCORE` a chunk at a time, merges
the branches, and stops early when no count is needed. Sort orders: `timestamp` (ties by id), `event` (name,
then timestamp, then id; one part per event type, in order) and `createdAt` (receipt time, then id); every
part of the order follows `sort_dir`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import Redis

from ..keyspace import Keyspace
from ..scripts import Script
from . import keys
from .search import Signature, matching_signatures
from .store import read_event_types

SortBy = Literal["timestamp", "event", "createdAt"]
SCORE_MIN, SCORE_MAX = -(2**53), 2**53
GATHER_LIMIT = 20_000  # createdAt: sort a filtered set this small by receipt time instead of scanning `ix:r`


@dataclass(frozen=True, slots=True)
class EventQuery:
    event_type: str | None = None
    domain: str | None = None
    contact_id: str | None = None
    url_contains: str | None = None
    search: str | None = None
    identified_only: bool = False
    after_ms: int | None = None  # inclusive
    before_ms: int | None = None  # inclusive
    sort_by: SortBy = "timestamp"
    descending: bool = True
    offset: int = 0
    limit: int = 20


QUERY_EVENTS = Script(__package__, "query_events-n.lua")


class HintedGroup(list[str]):
    """A union of signature indices with what the script needs to skip most of them: each index's event count
    and its best score in the query's direction (newest when descending, oldest when ascending), the indices
    ordered best first."""

    counts: list[int]
    bounds: list[int]


async def _signature_group(
    redis: Redis, ks: Keyspace, workspace: str, sigs: list[Signature], descending: bool
) -> list[str]:
    """The indices of `sigs`, hinted (`HintedGroup`) when every signature's count and span are known."""
    ids = [s.id for s in sigs]
    pipe = redis.pipeline(transaction=False)
    pipe.hmget(keys.signature_counts(ks, workspace), ids)
    pipe.zmscore(
        keys.signature_newest(ks, workspace) if descending else keys.signature_oldest(ks, workspace), ids
    )
    counts, bounds = await pipe.execute()
    plain = [keys.index_signature(ks, workspace, sid) for sid in ids]
    if any(c is None for c in counts) or any(b is None for b in bounds):
        return plain
    order = sorted(range(len(ids)), key=lambda i: (-bounds[i] if descending else bounds[i], ids[i]))
    group = HintedGroup(plain[i] for i in order)
    group.counts = [int(counts[i]) for i in order]
    group.bounds = [int(bounds[i]) for i in order]
    return group


@dataclass(slots=True)
class Branch:
    """One disjoint part of a query's matches: events of one of `types` (None: of any type) that are in every
    group (each group a union of index keys)."""

    types: list[str] | None
    groups: list[list[str]]

    def all_groups(self, ks: Keyspace, workspace: str) -> list[list[str]]:
        out = list(self.groups)
        if self.types is not None:
            out.append([keys.index_type(ks, workspace, t) for t in self.types])
        return out or [[keys.index_all(ks, workspace)]]


async def _branches(redis: Redis, ks: Keyspace, workspace: str, q: EventQuery) -> list[Branch]:
    """The query's disjoint branches; none when a filter matches nothing."""
    types = [q.event_type] if q.event_type is not None else None
    common: list[list[str]] = []
    if q.contact_id is not None:
        common.append([keys.index_contact(ks, workspace, q.contact_id)])
    if q.identified_only:
        common.append([keys.index_identified(ks, workspace)])
    # A domain is the union of its pages (signatures): with a text filter the signatures that match it carry the
    # domain condition too.
    url_group: list[list[str]] = []
    url_sigs: list[Signature] | None = None
    if q.url_contains or q.domain is not None:
        url_sigs = await matching_signatures(
            redis, ks, workspace, url_contains=q.url_contains or None, domain=q.domain
        )
        if not url_sigs:
            return []
        url_group = [await _signature_group(redis, ks, workspace, url_sigs, q.descending)]
    if not q.search:
        return [Branch(types, url_group + common)]
    # search: events whose type name matches, and events of the other types whose page (URL, domain) matches
    all_types = await read_event_types(redis, ks, workspace)
    needle = q.search.lower()
    named = [t for t in all_types if needle in t.lower()]
    out = []
    by_name = named if types is None else [t for t in types if t in named]
    if by_name:
        out.append(Branch(by_name, url_group + common))
    others = types if types is not None else all_types
    if named:
        others = [t for t in others if t not in named]
    if others:
        if url_sigs is not None:  # the url_contains / domain pages that also match the search
            sigs = [s for s in url_sigs if s.contains(needle)]
        else:
            sigs = await matching_signatures(redis, ks, workspace, search=q.search, domain=q.domain)
        if sigs:
            page_group = await _signature_group(redis, ks, workspace, sigs, q.descending)
            out.append(Branch(others if (named or types is not None) else None, [page_group, *common]))
    return out


def _shape(parts: list[list[list[list[str]]]]) -> tuple[list[str], list[list[list[dict[str, Any]]]]]:
    """(KEYS, the script's `parts`) of parts → branches → groups → keys: the keys flat, each group as how many
    keys it takes and its hints."""
    flat: list[str] = []
    specs: list[list[list[dict[str, Any]]]] = []
    for branches in parts:
        branch_specs = []
        for groups in branches:
            group_specs = []
            for grp in groups:
                flat.extend(grp)
                spec: dict[str, Any] = {"keys": len(grp)}
                if isinstance(grp, HintedGroup):
                    spec["counts"], spec["bounds"] = grp.counts, grp.bounds
                group_specs.append(spec)
            branch_specs.append(group_specs)
        specs.append(branch_specs)
    return flat, specs


async def find_event_page(
    redis: Redis,
    ks: Keyspace,
    workspace: str,
    q: EventQuery,
    *,
    count_only: bool = False,
    count: Callable[[], Awaitable[int]] | None = None,
) -> tuple[int, list[bytes]]:
    """(matching count, the index members of one page in the query's order): the events are read apart, so a
    caller can fetch them and what it joins to them at once. `count`, when given, counts the matches some
    cheaper way (the counters cube: `projections.counters.list_count`); it runs beside the page's script,
    which then only has to find the page."""
    branches = await _branches(redis, ks, workspace, q)
    if not branches:
        return 0, []
    lo = q.after_ms if q.after_ms is not None else SCORE_MIN
    hi = q.before_ms if q.before_ms is not None else SCORE_MAX
    if lo > hi:
        return 0, []
    limit = 0 if count_only else q.limit
    groups = [b.all_groups(ks, workspace) for b in branches]
    counted = count() if count is not None else None
    if counted is not None and count_only:
        return await counted, []
    mode: str = q.sort_by
    sort_keys: list[str] = []
    parts = [groups]
    if q.sort_by == "event" and q.event_type is None:
        # one part per event type in name order, each the branches restricted to that type
        names = await read_event_types(redis, ks, workspace)
        if q.descending:
            names.reverse()
        parts = [
            [
                Branch([n], b.groups).all_groups(ks, workspace)
                for b in branches
                if b.types is None or n in b.types
            ]
            for n in names
        ]
        parts = [p for p in parts if p]
    elif q.sort_by == "createdAt":
        days = await redis.zrange(keys.received_days(ks, workspace), 0, -1, desc=q.descending)
        sort_keys = [keys.index_all(ks, workspace), *(keys.received(ks, workspace, int(d)) for d in days)]
    else:
        mode = "timestamp"  # by event within one event type is by timestamp
    unfiltered = len(branches) == 1 and branches[0].types is None and not branches[0].groups
    flat, shape = _shape(parts)
    page = QUERY_EVENTS(
        redis,
        [*flat, *sort_keys],
        mode=mode,
        lo=str(lo),
        hi=str(hi),
        desc=q.descending,
        offset=q.offset,
        limit=limit,
        need_count=counted is None,
        ranged=q.after_ms is not None or q.before_ms is not None,
        gather_limit=GATHER_LIMIT,
        unfiltered=unfiltered,
        parts=shape,
    )
    if counted is None:
        reply = await page
        total = int(reply[0])
    else:
        total, reply = await asyncio.gather(counted, page)
    members = reply[1:]
    if count_only or total == 0:
        return total, []
    return total, members


async def _facet_counts(
    redis: Redis, groups: list[list[str]], facets: list[str], after_ms: int, before_ms: int
) -> list[int]:
    """How many events of each facet index (a type, a domain) are in every group and the time range."""
    if not facets:
        return []
    flat, shape = _shape([[groups]])
    counts = await QUERY_EVENTS(
        redis,
        [*flat, *facets],
        mode="facets",
        lo=str(after_ms),
        hi=str(before_ms),
        desc=False,
        offset=0,
        limit=0,
        need_count=True,
        ranged=True,
        gather_limit=GATHER_LIMIT,
        unfiltered=False,
        parts=shape,
    )
    return [int(c) for c in counts]


@dataclass(frozen=True, slots=True)
class Facets:
    """Filters of a count over the indices: an event type, a domain, identified events only."""

    event_type: str | None = None
    domain: str | None = None
    identified_only: bool = False


async def _domain_signature_keys(
    redis: Redis, ks: Keyspace, workspace: str, domains: list[str]
) -> list[list[str]]:
    """The signature indices of each domain (a domain's events are the union of its pages'), one round trip."""
    if not domains:
        return []
    pipe = redis.pipeline(transaction=False)
    for d in domains:
        pipe.smembers(keys.domain_signatures(ks, workspace, d))
    return [
        [keys.index_signature(ks, workspace, sid.decode()) for sid in sorted(sids)]
        for sids in await pipe.execute()
    ]


async def _facet_groups(redis: Redis, ks: Keyspace, workspace: str, f: Facets) -> list[list[str]] | None:
    """The index groups `f` intersects; None when its domain has no events."""
    out: list[list[str]] = []
    if f.event_type is not None:
        out.append([keys.index_type(ks, workspace, f.event_type)])
    if f.domain is not None:
        (pages,) = await _domain_signature_keys(redis, ks, workspace, [f.domain])
        if not pages:
            return None
        out.append(pages)
    if f.identified_only:
        out.append([keys.index_identified(ks, workspace)])
    return out


async def count_matching(
    redis: Redis, ks: Keyspace, workspace: str, f: Facets, ranges: list[tuple[int, int]]
) -> list[int]:
    """How many events match `f` in each time range (epoch ms, inclusive), counted from the indices."""
    groups = await _facet_groups(redis, ks, workspace, f)
    if groups is None:
        return [0 for _ in ranges]
    groups = groups or [[keys.index_all(ks, workspace)]]
    # the first group's keys are the facets: their counts add up (signature indices are disjoint)
    counts = await asyncio.gather(*(_facet_counts(redis, groups[1:], groups[0], lo, hi) for lo, hi in ranges))
    return [sum(c) for c in counts]


async def count_by_type_and_domain(
    redis: Redis, ks: Keyspace, workspace: str, f: Facets, ranges: list[tuple[int, int]]
) -> list[tuple[list[tuple[str, int]], list[tuple[str, int]]]]:
    """For each time range, how many events matching `f` each event type and each domain has (every type and
    domain of the workspace, in name order), counted from the indices."""
    if not ranges:
        return []
    groups = await _facet_groups(redis, ks, workspace, f)
    pipe = redis.pipeline(transaction=False)
    pipe.smembers(keys.event_types(ks, workspace))
    pipe.smembers(keys.domains(ks, workspace))
    type_set, domain_set = await pipe.execute()
    types = sorted(t.decode() for t in type_set)
    doms = sorted(d.decode() for d in domain_set)
    if groups is None:
        return [([(t, 0) for t in types], [(d, 0) for d in doms]) for _ in ranges]
    pages = await _domain_signature_keys(redis, ks, workspace, doms)
    facet_keys = [keys.index_type(ks, workspace, t) for t in types] + [k for ps in pages for k in ps]
    out = []
    for lo, hi in ranges:
        counts = iter(await _facet_counts(redis, groups, facet_keys, lo, hi))
        by_type = [(t, next(counts)) for t in types]
        by_domain = [(d, sum(next(counts) for _ in ps)) for d, ps in zip(doms, pages, strict=True)]
        out.append((by_type, by_domain))
    return out
