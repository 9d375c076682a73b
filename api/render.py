"""How read answers are rendered, shared by the routers: JSON through msgspec, timestamps in ISO 8601 UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from fastapi.responses import JSONResponse


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
