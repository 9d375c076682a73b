"""Suppression: the identifiers of forgotten people, kept only as hashes; events carrying one are dropped at
ingest and counted, never stored.

An identifier is a user id (`u`), an anonymous id (`a`), an email (`e`, lower-cased) or a CRM id (`x`); its hash
is sha256 of `workspace:kind:value`. `identifiers_of` is the one place that says which identifiers an event
carries: ingest checks them against the list, and forgetting a person tombstones the events that carry theirs.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis

from . import keys
from .schema import CRM_CONTACT, Event
from .sources.profile import normalize_email
from .workspaces import Workspace

KINDS = {"u": "user id", "a": "anonymous id", "e": "email", "x": "CRM id"}


def identifier_hash(workspace_id: str, kind: str, value: str) -> str:
    return hashlib.sha256(f"{workspace_id}:{kind}:{value}".encode()).hexdigest()


def identifiers_of(e: Event) -> set[tuple[str, str]]:
    """Every (kind, value) an event names a person by: its ids, an alias's previous id, emails in the event or
    its traits, CRM ids of CRM records and activities."""
    out: set[tuple[str, str]] = set()
    for kind, value in (("u", e.user_id), ("a", e.anonymous_id)):
        if value:
            out.add((kind, value))
    if e.previous_id:
        out |= {("u", e.previous_id), ("a", e.previous_id)}
    for raw in (e.email, e.traits.get("email") if isinstance(e.traits, dict) else None):
        email = normalize_email(raw)
        if email:
            out.add(("e", email))
    if isinstance(e.properties, dict) and e.source is not None:
        key = "external_id" if e.kind == CRM_CONTACT else "contact_external_id"
        ext = e.properties.get(key)
        if ext:
            out.add(("x", str(ext)))
    return out


def hashes_of(workspace_id: str, e: Event) -> set[str]:
    return {identifier_hash(workspace_id, kind, value) for kind, value in identifiers_of(e)}


class Suppressions:
    """A deployment's suppression lists, one per workspace."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    async def filter(self, workspace: Workspace, events: list[Event]) -> tuple[list[Event], int]:
        """The events to store, and how many were dropped (counted). One round trip, only for a workspace that
        has suppressed identifiers."""
        if not workspace.suppressions or not events:
            return events, 0
        per_event = [hashes_of(workspace.id, e) for e in events]
        asked = sorted(set().union(*per_event))
        if not asked:
            return events, 0
        found = await self.redis.hmget(keys.suppressions(self.prefix, workspace.id), asked)
        suppressed = {h for h, hit in zip(asked, found, strict=True) if hit is not None}
        kept = [e for e, hs in zip(events, per_event, strict=True) if not hs & suppressed]
        dropped = len(events) - len(kept)
        if dropped:
            await self.redis.incrby(keys.suppressed_events(self.prefix, workspace.id), dropped)
        return kept, dropped

    async def add(self, workspace_id: str, hashes: dict[str, str], deletion_id: str) -> None:
        """Suppress identifier hashes (hash → kind) for a deletion."""
        if not hashes:
            return
        key = keys.suppressions(self.prefix, workspace_id)
        now = int(time.time() * 1000)
        existing = await self.redis.hmget(key, sorted(hashes))
        new = {
            h: json.dumps({"kind": k, "deletion_id": deletion_id, "at": now})
            for h, k in sorted(hashes.items())
        }
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, mapping=new)
        pipe.hincrby(
            keys.workspace(self.prefix, workspace_id), "suppressions", sum(1 for x in existing if x is None)
        )
        await pipe.execute()

    async def list(self, workspace_id: str) -> list[dict[str, Any]]:
        raw = await self.redis.hgetall(keys.suppressions(self.prefix, workspace_id))
        return [{"hash": h.decode(), **json.loads(v)} for h, v in sorted(raw.items())]

    async def lift(self, workspace_id: str, identifier_hash_: str) -> bool:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(keys.suppressions(self.prefix, workspace_id), identifier_hash_)
        (removed,) = await pipe.execute()
        if removed:
            await self.redis.hincrby(keys.workspace(self.prefix, workspace_id), "suppressions", -1)
        return bool(removed)

    async def dropped(self, workspace_id: str) -> int:
        return int(await self.redis.get(keys.suppressed_events(self.prefix, workspace_id)) or 0)


def hash_kinds(workspace_id: str, identifiers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """hash → kind of identifiers."""
    return {identifier_hash(workspace_id, k, v): k for k, v in identifiers}
