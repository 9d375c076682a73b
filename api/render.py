"""How read answers are rendered, shared by the routers: JSON through msgspec, timestamps in ISO 8601 UTC, offset
pages (their `page` and `limit` query parameters and the answer's page block)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from fastapi import Query
from fastapi.responses import JSONResponse

# The last page anyone may ask for: the offset (page − 1) × limit stays far inside the 64-bit integers Redis and
# msgpack take (an unbounded page was a 500), and still reaches past 10^11 events.
MAX_PAGE = 1_000_000_000
Page = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page number (1–{MAX_PAGE}).")]
Limit = Annotated[int, Query(ge=1, le=100, description="Results per page (1–100).")]


class FastJSON(JSONResponse):
    """JSON rendered by msgspec: a 100-event page serializes in microseconds, not FastAPI's milliseconds."""

    def render(self, content: Any) -> bytes:
        return msgspec.json.encode(content)


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as `2026-04-24T10:00:00.123Z`."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def pagination(page: int, limit: int, total: int) -> dict[str, int]:
    """The Events API's page block."""
    return {"page": page, "limit": limit, "total_pages": -(-total // limit), "total_items": total}
