"""Requests to forget a person: each one an entry of the log (so the fold forgets them in order, and a crash
mid-way is resumed), and a status kept beside the workspace (`pending` until the fold has rewritten the log and
the archive and folded the workspace again, then `done` with counts)."""

from __future__ import annotations

import json
import time
from typing import Any

from redis.asyncio import Redis

from . import keys
from .errors import NotFound
from .ids import ulid
from .log import EventLog
from .suppression import Suppressions


class DeletionRequests:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    async def request(
        self, log: EventLog, workspace_id: str, contact_id: str, *, suppress: bool, hashes: dict[str, str]
    ) -> str:
        """Record the request, suppress the person's identifiers (`hashes`: hash → kind) at once if asked, so
        nothing of theirs is stored while the fold forgets them, and append the request to the log; returns its
        id."""
        deletion_id = f"del_{ulid().lower()}"
        status = {"status": "pending", "contact_id": contact_id, "suppress": suppress, "requested_at": _now()}
        await self.redis.hset(keys.deletions(self.prefix, workspace_id), deletion_id, json.dumps(status))
        if suppress:
            await Suppressions(self.redis, self.prefix).add(workspace_id, hashes, deletion_id)
        await log.append_deletion(
            workspace_id, deletion_id=deletion_id, contact_id=contact_id, suppress=suppress
        )
        return deletion_id

    async def status(self, workspace_id: str, deletion_id: str) -> dict[str, Any]:
        raw = await self.redis.hget(keys.deletions(self.prefix, workspace_id), deletion_id)
        if raw is None:
            raise NotFound(f"deletion {deletion_id!r} not found", details={"deletion_id": deletion_id})
        return {"deletion_id": deletion_id, **json.loads(raw)}

    async def finish(self, workspace_id: str, deletion_id: str, counts: dict[str, int]) -> None:
        """Mark a deletion done, with what it removed."""
        key = keys.deletions(self.prefix, workspace_id)
        raw = await self.redis.hget(key, deletion_id)
        status = json.loads(raw) if raw else {}
        status.update({"status": "done", "done_at": _now(), **counts})
        await self.redis.hset(key, deletion_id, json.dumps(status))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
