"""Receive one ingest request: decompress, size-check, decode, authenticate, validate, normalize, append.

Batches accept their valid messages and report the rejected ones by index (as Segment does): no valid
event is lost because a neighbour was bad. The client is answered only after Redis acknowledged the append.
"""

from __future__ import annotations

import contextlib
import re
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .body import BodyReader, over_limit
from .errors import Forbidden, InvalidRequest, PayloadTooLarge
from .ids import event_id, ulids
from .log import EventLog
from .nesting import MAX_NESTING, TOO_DEEP, nesting_exceeds, prune_too_deep, too_deep_field
from .normalize import MessageRejected, normalize
from .observe import IngestObserver
from .schema import Event, WireBatch, WireMessage
from .settings import Settings
from .suppression import Suppressions
from .workspaces import Workspace, WorkspaceRegistry

_wire_message_decoder = msgspec.json.Decoder(WireMessage)
_wire_batch_decoder = msgspec.json.Decoder(WireBatch)
_encoder = msgspec.json.Encoder()
_PATH_RE = re.compile(r" - at `\$(?P<path>[^`]*)`$")


@dataclass(slots=True)
class Rejection:
    index: int
    field: str
    message: str
    code: str = "invalid_event"

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "code": self.code, "message": self.message}


@dataclass(slots=True)
class Receipt:
    workspace: Workspace
    accepted: int
    entry_id: str | None
    rejected: list[Rejection] = field(default_factory=list)


class BatchRejected(InvalidRequest):
    """Every message of the request was rejected."""

    def __init__(self, rejected: list[Rejection]) -> None:
        first = rejected[0]
        noun = "message" if len(rejected) == 1 else f"all {len(rejected)} messages"
        super().__init__(
            f"{noun} rejected; batch[{first.index}].{first.field}: {first.message}",
            details=[r.as_dict() for r in rejected],
        )
        self.rejected = rejected


class OriginRefused(Forbidden):
    """A browser request from a website origin the workspace does not allow (answered without CORS headers)."""

    code = "origin_not_allowed"

    def __init__(self, origin: str) -> None:
        super().__init__(
            f"origin {origin!r} may not send events to this workspace (see its allowed origins)",
            details={"field": "Origin", "origin": origin},
        )


def origin_allowed(workspace: Workspace, origin: str | None) -> bool:
    """Requests without an Origin (server SDKs) always pass; `*.example.com` entries match subdomains."""
    allowed = workspace.allowed_origins
    if not allowed or origin is None or "*" in allowed:
        return True
    origin = origin.rstrip("/").lower()
    if origin in allowed:
        return True
    scheme, _, host = origin.partition("://")
    for pattern in allowed:
        p_scheme, _, p_host = pattern.partition("://")
        if p_host.startswith("*.") and p_scheme == scheme and host.endswith(p_host[1:]):
            return True
    return False


class BatchTooLarge(PayloadTooLarge):
    def __init__(self, rejected: list[Rejection]) -> None:
        super().__init__(rejected[0].message, details=[r.as_dict() for r in rejected])
        self.rejected = rejected


def _field_of(exc: msgspec.ValidationError) -> tuple[str, str]:
    text = str(exc)
    m = _PATH_RE.search(text)
    if not m:
        return "body", text
    path = m.group("path").lstrip(".") or "body"
    return path, text[: m.start()]


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo `Content-Encoding: gzip|deflate`; refuse anything that inflates past `limit` bytes."""
    enc = (encoding or "").strip().lower()
    if enc in ("", "identity"):
        data = body
    elif enc in ("gzip", "x-gzip", "deflate"):
        wbits = 16 + zlib.MAX_WBITS if enc != "deflate" else zlib.MAX_WBITS
        d = zlib.decompressobj(wbits)
        try:
            data = d.decompress(body, limit + 1)
        except zlib.error as exc:
            raise InvalidRequest(
                f"body is not valid {enc}: {exc}", details={"field": "Content-Encoding"}
            ) from exc
    else:
        raise InvalidRequest(
            f"Content-Encoding {encoding!r} is not supported (gzip, deflate)",
            details={"field": "Content-Encoding"},
        )
    if len(data) > limit:
        raise over_limit(limit)
    return data


Admission = Callable[[Workspace, int], Awaitable[None]]
"""Admits a request of a workspace carrying n events, or raises `RateLimited` (storing nothing)."""


class Receiver:
    """The write path shared by every HTTP receiver (Segment endpoints, beacon, short browser paths, webhooks,
    CRM syncs)."""

    def __init__(
        self,
        registry: WorkspaceRegistry,
        log: EventLog,
        settings: Settings,
        admit: Admission | None = None,
        *,
        observer: IngestObserver | None = None,
    ) -> None:
        self.registry = registry
        self.log = log
        self.settings = settings
        self.bodies = BodyReader(settings.max_request_bytes, settings.body_timeout_seconds)
        self.suppressions = Suppressions(log.redis, settings.key_prefix)
        self.admit = admit
        self.observer = observer or IngestObserver()

    async def store(self, workspace: Workspace, events: list[Event]) -> tuple[str | None, int]:
        """Append a request's accepted events to the log — if the workspace's ingest limits admit it, else
        `RateLimited` and nothing is stored — but those of forgotten people (suppressed, counted): (entry id or
        None when nothing was left, how many were suppressed)."""
        if self.admit is not None:
            await self.admit(workspace, len(events))
        kept, suppressed = await self.suppressions.filter(workspace, events)
        return (await self.log.append(workspace.id, kept) if kept else None), suppressed

    async def authenticate(self, key: str | None, origin: str | None) -> Workspace:
        """The workspace a write key opens to a request from `origin` (None: not from a browser)."""
        grant = await self.registry.authorize(
            key,
            "write",
            missing="missing write key: send it as the HTTP Basic username or as writeKey in the body",
            unknown="unknown write key",
        )
        if not origin_allowed(grant.workspace, origin):
            raise OriginRefused(origin or "")
        return grant.workspace

    async def check_origin(self, key: str | None, origin: str | None) -> None:
        """Preflight check, possible only when the key is in the query string (the beacon form)."""
        if key is None or origin is None:
            return
        grant = await self.registry.resolve(key)
        if grant is not None and not origin_allowed(grant.workspace, origin):
            raise OriginRefused(origin)

    async def receive(
        self,
        body: bytes,
        *,
        kind_hint: str | None,
        batch: bool,
        content_encoding: str | None = None,
        workspace: Workspace | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
        origin: str | None = None,
        correct_skew: bool = True,
    ) -> Receipt:
        """Receive one request's body. `workspace` is given when the caller already authenticated a key sent
        beside the body; otherwise the key is the body's `writeKey`. `correct_skew=False` keeps the messages'
        timestamps as sent (an import of events corrected when they were first received)."""
        s = self.settings
        data = decompress(body, content_encoding, s.max_request_bytes)
        received_at = time.time_ns() // 1_000_000
        if not data.strip():
            raise InvalidRequest("body is empty; send a JSON object", details={"field": "body"})

        too_deep: dict[int, str] = {}
        if batch:
            wire_batch, too_deep = _decode_batch(data)
            raws = wire_batch.batch
            if raws is None:
                raise InvalidRequest("batch: is required (an array of messages)", details={"field": "batch"})
            if len(raws) > s.max_batch_events:
                raise PayloadTooLarge(
                    f"batch has {len(raws)} messages; the limit is {s.max_batch_events} per request",
                    details={"field": "batch", "limit": s.max_batch_events},
                )
            key = wire_batch.writeKey
            sent_at, batch_context = wire_batch.sentAt, wire_batch.context
            # merged into each message's context, so it nests one level deeper there
            if batch_context and nesting_exceeds(_encoder.encode(batch_context), MAX_NESTING - 1):
                raise InvalidRequest(f"context: {TOO_DEEP}", details={"field": "context"})
        else:
            if len(data) > s.max_event_bytes:
                raise PayloadTooLarge(
                    f"event is {len(data)} bytes; the limit is {s.max_event_bytes} bytes per event",
                    details={"field": "body", "limit": s.max_event_bytes},
                )
            if nesting_exceeds(data, MAX_NESTING):  # before anything decodes it
                raise BatchRejected([Rejection(0, too_deep_field(data), TOO_DEEP)])
            raws = [msgspec.Raw(data)]
            sent_at, batch_context, key = None, None, None
            if workspace is None:
                with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                    key = msgspec.json.decode(data, type=_KeyOnly).writeKey

        if workspace is None:
            # a malformed single message still needs the key first, so decode errors report after auth
            if key is None and not batch:
                try:
                    msgspec.json.decode(data)
                except msgspec.DecodeError as exc:
                    raise InvalidRequest(f"body is not valid JSON: {exc}", details={"field": "body"}) from exc
            workspace = await self.authenticate(key, origin)

        ids = ulids(len(raws), received_at)
        events: list[Event] = []
        rejected: list[Rejection] = []
        for i, raw in enumerate(raws):
            try:
                if i in too_deep:
                    rejected.append(Rejection(i, too_deep[i], TOO_DEEP))
                    continue
                if batch and len(raw) > s.max_event_bytes:
                    rejected.append(
                        Rejection(
                            i,
                            "body",
                            f"event is {len(raw)} bytes; the limit is {s.max_event_bytes} bytes per event",
                            "event_too_large",
                        )
                    )
                    continue
                if batch and nesting_exceeds(message := bytes(raw), MAX_NESTING):
                    rejected.append(Rejection(i, too_deep_field(message), TOO_DEEP))
                    continue
                msg = _wire_message_decoder.decode(raw)
                events.append(
                    normalize(
                        msg,
                        kind_hint=kind_hint,
                        event_id=event_id(ids[i]),
                        received_at_ms=received_at,
                        batch_sent_at=sent_at,
                        batch_context=batch_context,
                        request_ip=ip,
                        request_user_agent=user_agent,
                        correct_skew=correct_skew,
                    )
                )
            except msgspec.ValidationError as exc:
                path, reason = _field_of(exc)
                rejected.append(Rejection(i, path, reason))
            except msgspec.DecodeError as exc:
                raise InvalidRequest(f"body is not valid JSON: {exc}", details={"field": "body"}) from exc
            except MessageRejected as exc:
                rejected.append(Rejection(i, exc.field, exc.reason))

        if not events and rejected:
            if all(r.code == "event_too_large" for r in rejected):
                raise BatchTooLarge(rejected)
            raise BatchRejected(rejected)
        entry_id, _ = await self.store(workspace, events) if events else (None, 0)
        return Receipt(workspace=workspace, accepted=len(events), entry_id=entry_id, rejected=rejected)


class _KeyOnly(msgspec.Struct):
    writeKey: str | None = None


def _decode_batch(data: bytes) -> tuple[WireBatch, dict[int, str]]:
    """Decode a batch body, its messages kept raw. A message nested so deep that even skipping over it would
    exhaust the decoder's stack is cut out first and reported (index → field) to be rejected on its own."""
    too_deep: dict[int, str] = {}
    try:
        try:
            return _wire_batch_decoder.decode(data), too_deep
        except RecursionError:
            data, cut = prune_too_deep(data, ("batch",))
            too_deep = {index: where for (_, index), where in cut.items()}
            return _wire_batch_decoder.decode(data), too_deep
    except msgspec.ValidationError as exc:
        path, reason = _field_of(exc)
        raise InvalidRequest(f"{path}: {reason}", details={"field": path}) from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}", details={"field": "body"}) from exc
    except RecursionError as exc:  # not valid JSON in a way the pruning could not follow
        raise InvalidRequest(f"body: {TOO_DEEP}", details={"field": "body"}) from exc
