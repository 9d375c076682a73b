"""HTTP receivers for the Segment-compatible tracking API (server SDKs and browser SDKs alike).

Long paths `/v1/track|page|screen|identify|group|alias|batch`, the browser short forms `/v1/t|p|s|i|g|a|b`,
the beacon form `/beacon/v1/batch?writeKey=`, and Segment's own metrics sink `/v1/m`. Bodies are JSON
whatever the Content-Type. Answers: 200 `{"success": true}`; errors carry `code` and `message`.
CORS is open on every ingest path unless the workspace lists its allowed origins; a refused origin gets a
403 without CORS headers. The read API opens no CORS.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
from fastapi import APIRouter, Request, Response
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import RateLimited, StreamfoldError, Unavailable
from .receive import OriginRefused, Receiver

SUCCESS_BODY = b'{"success":true}'
_encoder = msgspec.json.Encoder()

# path → (kind hint, is batch)
SINGLE_PATHS = {
    "track": "track", "page": "page", "screen": "screen", "identify": "identify", "group": "group", "alias": "alias",
    "t": "track", "p": "page", "s": "screen", "i": "identify", "g": "group", "a": "alias",
}  # fmt: skip
BATCH_PATHS = ("batch", "b", "import")

CORS_ALLOW_HEADERS = (
    "Authorization, Content-Type, Content-Encoding, X-Retry-Count, AnonymousId, SentAt, "
    "Rsa-Retry-Attempt, Rsa-Retry-Reason, Rsa-Since-First-Attempt, Rsa-Since-Last-Attempt"
)


def cors_headers(request: Request) -> dict[str, str]:
    origin = request.headers.get("origin")
    if not origin:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Expose-Headers": "Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining",
        "Vary": "Origin",
    }


def error_response(exc: StreamfoldError, headers: dict[str, str]) -> Response:
    body: dict[str, object] = {"success": False, "code": exc.code, "message": exc.message}
    if isinstance(exc.details, list):
        body["errors"] = exc.details
    elif exc.details is not None:
        body["details"] = exc.details
    if isinstance(exc, RateLimited):
        headers = {**headers, "Retry-After": str(exc.retry_after)}
    return Response(
        _encoder.encode(body), status_code=exc.status, media_type="application/json", headers=headers
    )


def _receiver(request: Request) -> Receiver:
    return request.app.state.receiver


def _make_handler(
    kind_hint: str | None, batch: bool, beacon: bool = False
) -> Callable[[Request], Awaitable[Response]]:
    async def receive_messages(request: Request) -> Response:
        headers = cors_headers(request)
        try:
            receipt = await _receiver(request).receive(
                await request.body(),
                kind_hint=kind_hint,
                batch=batch,
                content_encoding=request.headers.get("content-encoding"),
                authorization=None if beacon else request.headers.get("authorization"),
                query_key=request.query_params.get("writeKey") if beacon else None,
                ip=request.client.host if request.client else None,
                user_agent=request.headers.get("user-agent"),
                origin=request.headers.get("origin"),
            )
        except OriginRefused as exc:
            return error_response(exc, {})
        except StreamfoldError as exc:
            return error_response(exc, headers)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            return error_response(Unavailable(f"the event log is unavailable, retry later ({exc})"), headers)
        if receipt.rejected:
            body = {
                "success": True,
                "accepted": receipt.accepted,
                "rejected": [r.as_dict() for r in receipt.rejected],
            }
            return Response(_encoder.encode(body), media_type="application/json", headers=headers)
        return Response(SUCCESS_BODY, media_type="application/json", headers=headers)

    return receive_messages


async def preflight(request: Request) -> Response:
    """Both browser SDKs preflight (they send Authorization). Only the beacon form names its workspace here,
    so only there can a refused origin be turned away this early; elsewhere the POST itself is refused."""
    try:
        await _receiver(request).check_origin(
            request.query_params.get("writeKey"), request.headers.get("origin")
        )
    except OriginRefused as exc:
        return error_response(exc, {})
    headers = cors_headers(request)
    if headers:
        headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        asked = request.headers.get("access-control-request-headers")
        headers["Access-Control-Allow-Headers"] = asked or CORS_ALLOW_HEADERS
        headers["Access-Control-Max-Age"] = "86400"
    return Response(status_code=204, headers=headers)


async def segment_metrics(request: Request) -> Response:
    """analytics.js posts its own delivery metrics here every 30 s; they are not events."""
    return Response(SUCCESS_BODY, media_type="application/json", headers=cors_headers(request))


def ingest_endpoints() -> dict[str, tuple[Callable[[Request], Awaitable[Response]], bool]]:
    """Every ingest path → (its POST handler, shown in OpenAPI). Each path also answers the CORS preflight."""
    endpoints: dict[str, tuple[Callable[[Request], Awaitable[Response]], bool]] = {}
    for path, kind in SINGLE_PATHS.items():
        endpoints[f"/v1/{path}"] = (_make_handler(kind, batch=False), len(path) > 1)
    for path in BATCH_PATHS:
        endpoints[f"/v1/{path}"] = (_make_handler(None, batch=True), path == "batch")
    endpoints["/beacon/v1/batch"] = (_make_handler(None, batch=True, beacon=True), True)
    endpoints["/v1/m"] = (segment_metrics, False)
    return endpoints


def build_router() -> APIRouter:
    """The ingest routes as FastAPI sees them (OpenAPI); `IngestFastPath` answers them before routing."""
    router = APIRouter(tags=["ingest"])
    for path, (handler, in_schema) in ingest_endpoints().items():
        router.add_api_route(path, handler, methods=["POST"], include_in_schema=in_schema)
        router.add_api_route(path, preflight, methods=["OPTIONS"], include_in_schema=False)
    return router


class IngestFastPath:
    """ASGI middleware: ingest POSTs and preflights go straight to their handlers, skipping FastAPI's route
    matching and dependency machinery — browsers send one event per request, so that overhead per request is
    what decides requests/s. Same handlers as the routes above; any other request passes through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.endpoints = {path: handler for path, (handler, _) in ingest_endpoints().items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            handler = self.endpoints.get(scope["path"])
            method = scope["method"]
            if handler is not None and method in ("POST", "OPTIONS"):
                request = Request(scope, receive)
                response = await (handler(request) if method == "POST" else preflight(request))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
