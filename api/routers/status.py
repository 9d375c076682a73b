"""`GET /v1/status`: how far the fold is behind the log, and how many dead letters, for every partition.

Any key of the workspace except a write-only one: write keys ship in every web page that loads tracker.js.
Every partition is listed, not only the caller's: lag and dead-letter counts are operational numbers (how
busy the fold is), carrying no event, no workspace id and no dead letter's content. The most another tenant
learns is when a partition it shares with others last received an append (the head id is a log time).
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from projections.fold.progress import read_fold_lag

from ..deps import AnyReader, ServicesDep

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


@router.get("/status", response_model=StatusResponse, summary="Fold lag and dead letters per partition")
async def fold_status(services: ServicesDep, tenant: AnyReader) -> StatusResponse:
    s = services.settings
    parts = [
        PartitionStatus.model_validate(lag, from_attributes=True)
        for lag in await read_fold_lag(services.redis, s.key_prefix, s.partitions)
    ]
    lags = [x.lag_entries for x in parts]
    return StatusResponse(
        workspace_partition=tenant.ks.partition,
        lag_entries=None if None in lags else sum(x or 0 for x in lags),
        dead_letters=sum(x.dead_letters for x in parts),
        partitions=parts,
    )
