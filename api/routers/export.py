"""`GET /v1/export`: a workspace's events, archive and live log, streamed as JSON lines (scope `events:read`).

The rows are those of `streamfold export --format jsonl` (`api/export.py`): the archive's schema plus
`contact_id`, in log order, one object a line."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from ..deps import EventsReader, ServicesDep
from ..export import ExportQuery, export_frames, json_lines
from ..metrics import EXPORTED_EVENTS
from .events import parse_when

router = APIRouter(tags=["export"])


@router.get(
    "/v1/export",
    response_class=StreamingResponse,
    summary="Export events as JSON lines",
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
async def export_events(
    tenant: EventsReader, services: ServicesDep, since: str | None = None, until: str | None = None
) -> StreamingResponse:
    """Every event of the workspace (archived ones included) with a timestamp in [`since`, `until`] (ISO 8601,
    both optional), one JSON object a line."""
    q = ExportQuery(tenant.id, parse_when(since, "since"), parse_when(until, "until"))

    async def lines() -> AsyncIterator[bytes]:
        async for frame in export_frames(services.redis, services.settings, services.archive, q):
            yield json_lines(frame)
            EXPORTED_EVENTS.inc(frame.height)

    return StreamingResponse(lines(), media_type="application/x-ndjson")
