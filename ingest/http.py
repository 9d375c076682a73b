"""HTTP receivers for the Segment-compatible tracking API (server SDKs and browser SDKs alike).

Long paths `/v1/track|page|screen|identify|group|alias|batch`, the browser short forms `/v1/t|p|s|i|g|a|b`,
the beacon form `/beacon/v1/batch?writeKey=`, and Segment's own metrics sink `/v1/m`. Bodies are JSON
whatever the Content-Type. Answers: 200 `{"success": true}`; errors carry `code` and `message`.
CORS is open on every ingest path unless the workspace lists its allowed origins; a refused origin gets a
403 without CORS headers. The read API opens no CORS.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

import msgspec
from fastapi import APIRouter, Request, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import StreamfoldError, Unavailable
from .receive import BatchRejected, BatchTooLarge, OriginRefused, Receiver
from .redis_client import STORE_UNAVAILABLE
from .workspaces import key_from_authorization

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


@dataclass(slots=True)
class Incoming:
    """What an ingest answer depends on, read once from the ASGI scope (no framework objects)."""

    origin: str | None = None
    authorization: str | None = None
    content_encoding: str | None = None
    user_agent: str | None = None
    ip: str | None = None
    query_key: str | None = None
    content_length: str | None = None

    @classmethod
    def of(cls, scope: Scope) -> Incoming:
        inc = cls()
        for name, value in scope["headers"]:
            if name == b"origin":
                inc.origin = value.decode("latin-1")
            elif name == b"authorization":
                inc.authorization = value.decode("latin-1")
            elif name == b"content-encoding":
                inc.content_encoding = value.decode("latin-1")
            elif name == b"user-agent":
                inc.user_agent = value.decode("latin-1")
            elif name == b"content-length":
                inc.content_length = value.decode("latin-1")
        client = scope.get("client")
        inc.ip = client[0] if client else None
        qs = scope.get("query_string")
        if qs:
            inc.query_key = parse_qs(qs.decode("latin-1")).get("writeKey", [None])[0]
        return inc


def cors_of(origin: str | None) -> dict[str, str]:
    if not origin:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Expose-Headers": "Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining",
        "Vary": "Origin",
    }


def cors_headers(request: Request) -> dict[str, str]:
    return cors_of(request.headers.get("origin"))


Answer = tuple[int, bytes, dict[str, str]]


def error_answer(exc: StreamfoldError, headers: dict[str, str]) -> Answer:
    body: dict[str, object] = {"success": False, "code": exc.code, "message": exc.message}
    if isinstance(exc.details, list):
        body["errors"] = exc.details
    elif exc.details is not None:
        body["details"] = exc.details
    if exc.headers:
        headers = {**headers, **exc.headers}
    return exc.status, _encoder.encode(body), headers


def error_response(exc: StreamfoldError, headers: dict[str, str]) -> Response:
    status, body, headers = error_answer(exc, headers)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def closing(answer: Answer) -> Answer:
    """An answer given before the whole body was read: the rest may still be coming, so the connection closes."""
    status, body, headers = answer
    return status, body, {**headers, "Connection": "close"}


async def answer_messages(receiver: Receiver, route: IngestRoute, inc: Incoming, receive: Receive) -> Answer:
    """The one implementation of every ingest POST: authenticate a key sent in the headers (Basic user, or the
    beacon's query string) before reading the body, read it bounded, receive, then 200 / partial 200 / the
    error's status."""
    headers = cors_of(inc.origin)
    body = None
    try:
        key = inc.query_key if route.beacon else key_from_authorization(inc.authorization, basic=True)
        workspace = None if key is None or route.metrics else await receiver.authenticate(key, inc.origin)
        body = await receiver.bodies.read(receive, inc.content_length)
        if route.metrics:
            return 200, SUCCESS_BODY, headers
        receipt = await receiver.receive(
            body,
            kind_hint=route.kind_hint,
            batch=route.batch,
            content_encoding=inc.content_encoding,
            workspace=workspace,
            ip=inc.ip,
            user_agent=inc.user_agent,
            origin=inc.origin,
        )
    except (BatchRejected, BatchTooLarge) as exc:  # every message was judged, none accepted
        receiver.observer.received(route.source, 0, [r.code for r in exc.rejected])
        return error_answer(exc, headers)
    except StreamfoldError as exc:
        answer = error_answer(exc, {} if isinstance(exc, OriginRefused) else headers)
        return answer if body is not None else closing(answer)
    except STORE_UNAVAILABLE as exc:
        answer = error_answer(Unavailable(f"the event log is unavailable, retry later ({exc})"), headers)
        return answer if body is not None else closing(answer)
    if receipt.rejected:
        receiver.observer.received(route.source, receipt.accepted, [r.code for r in receipt.rejected])
        partial = {
            "success": True,
            "accepted": receipt.accepted,
            "rejected": [r.as_dict() for r in receipt.rejected],
        }
        return 200, _encoder.encode(partial), headers
    receiver.observer.received(route.source, receipt.accepted)
    return 200, SUCCESS_BODY, headers


@dataclass(frozen=True, slots=True)
class IngestRoute:
    kind_hint: str | None = None
    batch: bool = False
    beacon: bool = False
    metrics: bool = False  # analytics.js posts its own delivery metrics every 30 s; they are not events
    in_schema: bool = True
    source: str = "sdk"  # what metrics count its requests and events under (`ingest.observe.SOURCES`)


def _route_handler(route: IngestRoute) -> Callable[[Request], Awaitable[Response]]:
    async def receive_messages(request: Request) -> Response:
        status, body, headers = await answer_messages(
            _receiver(request), route, Incoming.of(request.scope), request.receive
        )
        return Response(body, status_code=status, media_type="application/json", headers=headers)

    return receive_messages


def _receiver(request: Request) -> Receiver:
    return request.app.state.receiver


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


INGEST_ROUTES: dict[str, IngestRoute] = {
    **{f"/v1/{p}": IngestRoute(kind_hint=k, in_schema=len(p) > 1) for p, k in SINGLE_PATHS.items()},
    **{f"/v1/{p}": IngestRoute(batch=True, in_schema=p == "batch") for p in BATCH_PATHS},
    "/beacon/v1/batch": IngestRoute(batch=True, beacon=True, source="beacon"),
    "/v1/m": IngestRoute(metrics=True, in_schema=False),
}


def build_router() -> APIRouter:
    """The ingest routes as FastAPI sees them (OpenAPI); `IngestFastPath` answers them before routing."""
    router = APIRouter(tags=["ingest"])
    for path, route in INGEST_ROUTES.items():
        router.add_api_route(path, _route_handler(route), methods=["POST"], include_in_schema=route.in_schema)
        router.add_api_route(path, preflight, methods=["OPTIONS"], include_in_schema=False)
    return router


class IngestFastPath:
    """ASGI middleware: ingest POSTs go straight to `answer_messages`, skipping FastAPI's route matching,
    dependency machinery and request/response objects — browsers send one event per request, so that
    overhead per request decides requests/s. Preflights and every other request pass through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = INGEST_ROUTES.get(scope["path"]) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        receiver: Receiver = scope["app"].state.receiver
        status, payload, headers = await answer_messages(receiver, route, Incoming.of(scope), receive)
        raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        raw += [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": payload})
