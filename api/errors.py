"""Error shapes of the read APIs, in one place.

Events API: `{status: "error", error, details, timestamp}`. Attribution API: `{message}`.
Each `StreamfoldError` subclass carries its HTTP status; request-validation errors become 400s naming the parameter.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ingest.errors import InvalidRequest, StreamfoldError, Unavailable
from ingest.redis_client import STORE_UNAVAILABLE


class AttributionError(StreamfoldError):
    """An error of the attribution API: rendered as `{message}` (its validation failures are 422)."""

    def __init__(self, inner: StreamfoldError, status: int | None = None) -> None:
        super().__init__(inner.message, details=inner.details)
        self.status = status or inner.status
        self.code = inner.code
        self.inner = inner


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def events_error_body(exc: StreamfoldError) -> dict[str, Any]:
    return {"status": "error", "error": exc.message, "details": exc.details, "timestamp": now_iso()}


def _headers(exc: StreamfoldError) -> dict[str, str]:
    return exc.inner.headers if isinstance(exc, AttributionError) else exc.headers


async def handle_streamfold_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StreamfoldError)
    if isinstance(exc, AttributionError):
        return JSONResponse({"message": exc.message}, status_code=exc.status, headers=_headers(exc))
    return JSONResponse(events_error_body(exc), status_code=exc.status, headers=_headers(exc))


async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = [str(x) for x in first.get("loc", ()) if x not in ("query", "path", "body")]
    param = ".".join(loc) or "request"
    err = InvalidRequest(
        f"invalid parameter {param}: {first.get('msg', 'invalid')}", details={"parameter": param}
    )
    if request.url.path.startswith("/public-api/"):
        return JSONResponse({"message": err.message}, status_code=422)
    return JSONResponse(events_error_body(err), status_code=400)


async def handle_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if request.url.path.startswith("/public-api/"):
        return JSONResponse({"message": str(exc.detail)}, status_code=exc.status_code)
    err = StreamfoldError(str(exc.detail))
    return JSONResponse(events_error_body(err), status_code=exc.status_code)


async def handle_store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """Redis down, restarting or full (`STORE_UNAVAILABLE`): 503 with `Retry-After`, in the route's error shape."""
    err: StreamfoldError = Unavailable(f"the store is unavailable, retry later ({exc})")
    if request.url.path.startswith("/public-api/"):
        err = AttributionError(err)
    return await handle_streamfold_error(request, err)


def install(app: FastAPI) -> None:
    app.add_exception_handler(StreamfoldError, handle_streamfold_error)
    for unavailable in STORE_UNAVAILABLE:
        app.add_exception_handler(unavailable, handle_store_unavailable)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_error)
