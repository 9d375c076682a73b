"""`GET /v1/status`: how far the fold is behind the log, and how many dead letters, for every partition.

Any key of the workspace except a write-only one: write keys ship in every web page that loads tracker.js.
Every partition is listed, not only the caller's: lag and dead-letter counts are operational numbers (how
busy the fold is), carrying no event, no workspace id and no dead letter's content. The most another tenant
learns is when a partition it shares with others last received an append (the head id is a log time).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from ingest import keys as log_keys
from ingest.errors import Forbidden, Unauthorized
from ingest.workspaces import WRITE_SCOPES
from projections.fold import GROUP, stream_id
from projections.progress import checkpoints, log_heads

from ..deps import ServicesDep, get_services, presented_key

router = APIRouter(prefix="/v1", tags=["status"])


class PartitionStatus(BaseModel):
    partition: int
    log_head: str | None = Field(description="Id of the log's last entry; null for an empty log.")
    checkpoint: str | None = Field(description="Id of the last entry folded; null before the first fold.")
    lag_entries: int | None = Field(
        description="Log entries not folded yet (the fold's consumer group: never delivered + delivered but "
        "not committed); null when Redis cannot count them (entries deleted mid-log)."
    )
    lag_seconds: float = Field(
        description="Log time from the last entry folded to the head (from the first entry before any fold)."
    )
    dead_letters: int = Field(description="Entries in the partition's dead-letter stream.")


class StatusResponse(BaseModel):
    status: Literal["success"] = "success"
    workspace_partition: int = Field(description="The partition holding the calling key's workspace.")
    lag_entries: int | None = Field(description="Sum over partitions; null when any partition's is unknown.")
    dead_letters: int = Field(description="Sum over partitions.")
    partitions: list[PartitionStatus]


async def workspace_partition(request: Request) -> int:
    """The partition of the presented key's workspace; any key but a write-only one."""
    services = get_services(request)
    key = presented_key(request)
    if key is None:
        raise Unauthorized("missing API key: send Authorization: Bearer <key> or X-API-Key")
    grant = await services.registry.resolve(key)
    if grant is None:
        raise Unauthorized("invalid API key")
    if grant.scopes <= set(WRITE_SCOPES):
        raise Forbidden("a write key is public (it ships in web pages): use a read or admin key")
    if grant.workspace.disabled:
        raise Forbidden("this workspace is disabled")
    return log_keys.partition_of(grant.workspace.id, services.settings.partitions)


def ms_of(entry_id: str) -> int:
    return stream_id(entry_id)[0]


def entries_behind(
    head: str | None, ckpt: str | None, group: dict[str, Any] | None, length: int
) -> int | None:
    if head is None or (ckpt is not None and stream_id(ckpt) >= stream_id(head)):
        return 0
    if ckpt is None:
        return length
    if group is not None and group.get("lag") is not None:
        # the checkpoint is committed with the XACK, so pending entries are exactly the uncommitted ones
        return int(group["lag"]) + int(group["pending"])
    return None


async def read_partition_status(redis: Redis, prefix: str, partitions: int) -> list[PartitionStatus]:
    """Heads, checkpoints and the group/dead-letter counts: three requests at once, whatever the partition count
    (a second one only for partitions never folded, to date their first entry)."""
    pipe = redis.pipeline(transaction=False)
    for p in range(partitions):
        pipe.xinfo_groups(log_keys.log(prefix, p))
        pipe.xlen(log_keys.log(prefix, p))
        pipe.xlen(log_keys.dead_letters(prefix, p))
    heads, ckpts, replies = await asyncio.gather(
        log_heads(redis, prefix, partitions),
        checkpoints(redis, prefix, partitions),
        pipe.execute(raise_on_error=False),
    )
    never_folded = [p for p in heads if ckpts.get(p) is None]
    first_ms: dict[int, int] = {}
    if never_folded:
        firsts = redis.pipeline(transaction=False)
        for p in never_folded:
            firsts.xrange(log_keys.log(prefix, p), count=1)
        for p, reply in zip(never_folded, await firsts.execute(), strict=True):
            if reply:
                first_ms[p] = ms_of(reply[0][0].decode())
    out = []
    for p in range(partitions):
        groups, length, dead = replies[3 * p : 3 * p + 3]
        if isinstance(groups, ResponseError):  # no log yet
            groups = []
        group = next((g for g in groups if g["name"] in (GROUP, GROUP.encode())), None)
        head, ckpt = heads.get(p), ckpts.get(p)
        behind_ms = 0
        if head is not None:
            since = ms_of(ckpt) if ckpt is not None else first_ms.get(p, ms_of(head))
            behind_ms = max(ms_of(head) - since, 0)
        out.append(
            PartitionStatus(
                partition=p,
                log_head=head,
                checkpoint=ckpt,
                lag_entries=entries_behind(head, ckpt, group, int(length)),
                lag_seconds=behind_ms / 1000,
                dead_letters=int(dead),
            )
        )
    return out


@router.get("/status", response_model=StatusResponse, summary="Fold lag and dead letters per partition")
async def fold_status(
    services: ServicesDep, partition: Annotated[int, Depends(workspace_partition)]
) -> StatusResponse:
    s = services.settings
    parts = await read_partition_status(services.redis, s.key_prefix, s.partitions)
    lags = [x.lag_entries for x in parts]
    return StatusResponse(
        workspace_partition=partition,
        lag_entries=None if None in lags else sum(x or 0 for x in lags),
        dead_letters=sum(x.dead_letters for x in parts),
        partitions=parts,
    )
