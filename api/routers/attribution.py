"""`GET /public-api/v1/events`: the attribution List Events API (reference/attribution-list-events-api.txt).

Validation (422 `{message}` naming the parameter), a Redis-held rate limit per workspace, signed keyset
cursors (Laravel's cursor-page shape), and rows from the touchpoint / conversion projections.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import msgspec
from fastapi import APIRouter, Depends, Request, Response

from ingest.errors import Forbidden, InvalidRequest, RateLimited, StreamfoldError, Unauthorized
from ingest.ids import new_token
from projections.fold.fold import read_checkpoint
from projections.touchpoints import (
    AD_FIELDS,
    MODELS,
    SOURCES,
    WINDOWS_DAYS,
    AttributionQuery,
    ChainResolver,
    Row,
    read_attribution_rows,
)

from .. import keys
from ..custom_fields import FieldFilter, parse_custom_field_filters, profile_matches
from ..deps import Services, ServicesDep, Tenant, require_scope
from ..errors import AttributionError
from ..workspace_settings import CUSTOM_EVENT_SLOTS, WorkspaceSettings, read_workspace_settings

router = APIRouter(prefix="/public-api/v1", tags=["attribution"])

STANDARD_EVENTS = (
    "add_payment_info", "add_to_cart", "complete_registration", "contact", "initiate_checkout",
    "lead_generated", "purchase", "schedule", "sign_up", "start_trial", "submit_application", "subscribe",
    "upsell_purchase", "view_content", "webinar_registration",
)  # fmt: skip
CUSTOM_EVENTS = tuple(f"custom_event_{n}" for n in range(1, CUSTOM_EVENT_SLOTS + 1))
EVENT_NAMES = frozenset(STANDARD_EVENTS + CUSTOM_EVENTS)
PLAIN_FIELDS = (
    "profile_id", "company_id", "space_id", "event_name", "configured_name", "amount", "is_upsell",
    "order_id", "order_name", "event_url",
)  # fmt: skip
FIELDS = frozenset(PLAIN_FIELDS + AD_FIELDS + ("id", "event_time_utc", "touchpoint_id", "source"))
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
DEFAULT_LIMIT = 100
MAX_LIMIT = 4000


def invalid(message: str, parameter: str) -> AttributionError:
    return AttributionError(InvalidRequest(message, details={"parameter": parameter}), status=422)


# ---------------------------------------------------------------- authentication and rate limit

_authenticate = require_scope("attribution:read")


async def attribution_tenant(request: Request) -> Tenant:
    """The key's workspace; its errors in the attribution API's shape."""
    try:
        return await _authenticate(request)
    except (Unauthorized, Forbidden) as exc:
        raise AttributionError(exc) from exc


AttributionReader = Annotated[Tenant, Depends(attribution_tenant)]


async def attribution_quota(tenant: AttributionReader, services: ServicesDep, response: Response) -> None:
    """Count the request against the workspace's per-minute budget (invalid requests count too)."""
    decision = await services.attribution_limiter.hit(tenant.id)
    if not decision.allowed:
        limited = RateLimited(
            "Too Many Attempts.", retry_after=decision.retry_after_s, headers=decision.headers()
        )
        raise AttributionError(limited)
    response.headers.update(decision.headers())


# ---------------------------------------------------------------- parameters


def _arrays(request: Request) -> dict[str, list[str]]:
    """Query values by name; `name`, `name[]` and `name[N]` all collect into `name` (in order)."""
    out: dict[str, list[str]] = {}
    for k, v in request.query_params.multi_items():
        m = re.fullmatch(r"([a-z_]+)(?:\[(\d*)\])?", k)
        if m is None or k.startswith("custom_field_filters"):
            continue
        out.setdefault(m.group(1), []).append(v)
    return out


def _scalar(params: dict[str, list[str]], name: str) -> str | None:
    vals = params.get(name)
    if not vals:
        return None
    if len(vals) > 1:
        raise invalid(f"The {name} field must be a single value.", name)
    return vals[0]


def _array(
    params: dict[str, list[str]], name: str, allowed: frozenset[str] | tuple[str, ...], most: int
) -> list[str] | None:
    vals = params.get(name)
    if vals is None:
        return None
    vals = [v for part in vals for v in part.split(",")] if all("," in v for v in vals) else vals
    if len(vals) < 1 or any(v == "" for v in vals):
        raise invalid(f"The {name} field must have at least 1 items.", name)
    if len(vals) > most:
        raise invalid(f"The {name} field must not have more than {most} items.", name)
    if len(set(vals)) != len(vals):
        dup = next(v for i, v in enumerate(vals) if v in vals[:i])
        raise invalid(f"The {name} field has a duplicate value: {dup}.", name)
    for v in vals:
        if v not in allowed:
            raise invalid(f"The selected {name} value {v!r} is invalid.", name)
    return vals


def parse_local(value: str | None, name: str, tz: ZoneInfo) -> int:
    """`YYYY-MM-DD HH:MM:SS` in the workspace's zone → epoch ms. Wall times skipped by a DST change are
    read with the offset before it; repeated ones mean their first occurrence."""
    if value is None or value == "":
        raise invalid(f"The {name} field is required.", name)
    if not DATE_RE.match(value):
        raise invalid(f"The {name} field must match the format Y-m-d H:i:s.", name)
    try:
        local = datetime.strptime(value, DATE_FORMAT)
    except ValueError as exc:
        raise invalid(f"The {name} field must be a valid date.", name) from exc
    return int(local.replace(tzinfo=tz, fold=0).timestamp() * 1000)


def utc_text(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime(DATE_FORMAT)


class Parsed(msgspec.Struct, frozen=True):
    start_ms: int
    end_ms: int
    query_mode: str
    event_names: list[str] | None
    sources: list[str] | None
    model: str | None
    window: int | None
    fields: list[str]
    limit: int
    cursor: str | None
    filters: list[FieldFilter]


def parse_request(request: Request, ws: WorkspaceSettings) -> Parsed:
    params = _arrays(request)
    tz = ZoneInfo(ws.timezone)
    start_ms = parse_local(_scalar(params, "start_date"), "start_date", tz)
    end_ms = parse_local(_scalar(params, "end_date"), "end_date", tz) + 999  # the whole end second
    if end_ms - 999 <= start_ms:
        raise invalid("The end_date field must be a date after start_date.", "end_date")
    mode = _scalar(params, "query_mode") or "profile"
    if mode not in ("profile", "company"):
        raise invalid("The selected query_mode is invalid (profile, company).", "query_mode")
    names = _array(params, "event_names", EVENT_NAMES, 10)
    sources = _array(params, "sources", frozenset(SOURCES), 15)
    model = _scalar(params, "attribution_model")
    window_raw = _scalar(params, "attribution_window")
    if sources is not None and model is None:
        raise invalid("The attribution_model field is required when sources is present.", "attribution_model")
    if sources is not None and window_raw is None:
        raise invalid(
            "The attribution_window field is required when sources is present.", "attribution_window"
        )
    if model is not None and model not in MODELS:
        raise invalid(
            f"The selected attribution_model is invalid ({', '.join(MODELS)}).", "attribution_model"
        )
    window: int | None = None
    if window_raw is not None:
        if not re.fullmatch(r"\d+", window_raw) or int(window_raw) not in WINDOWS_DAYS:
            raise invalid(
                f"The selected attribution_window is invalid ({', '.join(map(str, WINDOWS_DAYS))}).",
                "attribution_window",
            )
        window = int(window_raw)
    fields = _array(params, "fields", FIELDS, 20) or []
    if sources is None:
        for f in fields:
            if f in AD_FIELDS:
                raise invalid(f"The fields value {f} requires sources to be provided.", "fields")
    limit_raw = _scalar(params, "limit")
    limit = DEFAULT_LIMIT
    if limit_raw is not None:
        if not re.fullmatch(r"-?\d+", limit_raw):
            raise invalid("The limit field must be an integer.", "limit")
        limit = int(limit_raw)
        if not 1 <= limit <= MAX_LIMIT:
            raise invalid(f"The limit field must be between 1 and {MAX_LIMIT}.", "limit")
    filters = parse_custom_field_filters(request.query_params.multi_items(), ws)
    return Parsed(
        start_ms,
        end_ms,
        mode,
        names,
        sources,
        model,
        window,
        fields,
        limit,
        _scalar(params, "cursor"),
        filters,
    )


# ---------------------------------------------------------------- cursors (signed keyset positions)


class CursorBody(msgspec.Struct, array_like=True):
    member: str
    pos: int
    next: bool  # True: rows after this position; False: rows before it
    snapshot: str | None
    query: str  # digest of the query it belongs to


_cursor_enc = msgspec.msgpack.Encoder()
_cursor_dec = msgspec.msgpack.Decoder(CursorBody)


async def cursor_secret(services: Services) -> bytes:
    key = keys.cursor_secret(services.settings.key_prefix)
    await services.redis.set(key, new_token(32), nx=True)
    return (await services.redis.get(key)) or b""


def sign_cursor(secret: bytes, body: CursorBody) -> str:
    payload = _cursor_enc.encode(body)
    mac = hmac.new(secret, payload, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac + payload).decode().rstrip("=")


def open_cursor(secret: bytes, token: str, query_digest: str) -> CursorBody:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        mac, payload = raw[:16], raw[16:]
        if not hmac.compare_digest(mac, hmac.new(secret, payload, hashlib.sha256).digest()[:16]):
            raise ValueError("bad signature")
        body = _cursor_dec.decode(payload)
    except Exception as exc:
        raise invalid("The cursor is invalid.", "cursor") from exc
    if body.query != query_digest:
        raise invalid(
            "The cursor does not belong to this query; repeat the query's other parameters.", "cursor"
        )
    return body


def query_digest(workspace: str, p: Parsed) -> str:
    shape = [workspace, p.start_ms, p.end_ms, p.query_mode, p.event_names, p.sources, p.model, p.window]
    shape += [p.limit, msgspec.json.encode(p.filters).decode()]
    return hashlib.sha256(msgspec.json.encode(shape)).hexdigest()[:24]


# ---------------------------------------------------------------- the endpoint


def event_selection(ws: WorkspaceSettings, asked: list[str] | None) -> tuple[list[str], dict[str, str]]:
    """Tracked names to read, and tracked name → API event name (custom events through the mapping)."""
    api_names = asked if asked is not None else list(STANDARD_EVENTS) + list(CUSTOM_EVENTS)
    tracked: dict[str, str] = {}
    for n in api_names:
        if n.startswith("custom_event_"):
            ce = ws.custom_events.get(int(n.rsplit("_", 1)[1]))
            if ce is not None:
                tracked.setdefault(ce.event, n)
        else:
            tracked.setdefault(n, n)
    return sorted(tracked), tracked


def row_document(row: Row, fields: list[str], attributed: bool, ctx: dict[str, Any]) -> dict[str, Any]:
    c = row.conversion
    api_name = ctx["api_names"].get(c.name, c.name)
    doc: dict[str, Any] = {"id": c.id, "event_time_utc": utc_text(c.ts)}
    if attributed:
        doc["touchpoint_id"] = row.touchpoint.id if row.touchpoint else None
    wants = list(fields)
    if any(f in AD_FIELDS for f in fields) and "source" not in wants:
        wants.append("source")
    ws: WorkspaceSettings = ctx["settings"]
    for f in wants:
        if f in doc:
            continue
        if f == "profile_id":
            doc[f] = ctx["contacts"].get(row.member)
        elif f == "company_id":
            doc[f] = ctx["companies"].get(row.member)
        elif f == "space_id":
            doc[f] = ctx["workspace"]
        elif f == "event_name":
            doc[f] = api_name
        elif f == "configured_name":
            slot = int(api_name.rsplit("_", 1)[1]) if api_name.startswith("custom_event_") else None
            doc[f] = ws.custom_events[slot].configured_name if slot in ws.custom_events else api_name
        elif f == "amount":
            doc[f] = round(row.amount, 6)
        elif f == "is_upsell":
            doc[f] = c.is_upsell
        elif f == "order_id":
            doc[f] = c.order_id
        elif f == "order_name":
            doc[f] = c.order_name
        elif f == "event_url":
            doc[f] = c.url
        elif f == "touchpoint_id":
            doc[f] = row.touchpoint.id if row.touchpoint else None
        elif f == "source":
            doc[f] = row.source
        elif f in AD_FIELDS:
            doc[f] = getattr(row.touchpoint.touch, f) if row.touchpoint else None
    return doc


@router.get("/events", summary="List Events (attribution)", dependencies=[Depends(attribution_quota)])
async def list_attribution_events(
    request: Request, tenant: AttributionReader, services: ServicesDep
) -> dict[str, Any]:
    try:
        return await _list(request, services, tenant)
    except AttributionError:
        raise
    except StreamfoldError as exc:
        raise AttributionError(exc, status=422 if isinstance(exc, InvalidRequest) else None) from exc


async def _list(request: Request, services: Services, tenant: Tenant) -> dict[str, Any]:
    redis = services.redis
    ws = await read_workspace_settings(redis, services.settings.key_prefix, tenant.id)
    p = parse_request(request, ws)
    digest = query_digest(tenant.id, p)
    secret = await cursor_secret(services)
    after = before = None
    if p.cursor is not None:
        cur = open_cursor(secret, p.cursor, digest)
        snapshot = cur.snapshot
        if cur.next:
            after = (cur.member, cur.pos)
        else:
            before = (cur.member, cur.pos)
    else:
        snapshot = await read_checkpoint(redis, tenant.ks) or "0-0"
    names, api_names = event_selection(ws, p.event_names)
    q = AttributionQuery(
        start_ms=p.start_ms,
        end_ms=p.end_ms,
        names=tuple(names),
        sources=frozenset(p.sources) if p.sources is not None else None,
        model=p.model,
        window_days=p.window,
        snapshot=snapshot,
        query_mode=p.query_mode,
        ad_fields=any(f in AD_FIELDS for f in p.fields),
    )
    resolver = ChainResolver(redis, tenant.ks, tenant.id)
    accept = (lambda fields: profile_matches(fields, p.filters, ws.timezone)) if p.filters else None
    rows = await read_attribution_rows(
        redis,
        tenant.ks,
        tenant.id,
        q,
        limit=p.limit + 1,
        after=after,
        before=before,
        resolver=resolver,
        accept=accept,
    )
    # One row more than a page tells whether another page lies in the walking direction.
    if before is not None:
        more_back = len(rows) > p.limit
        page = rows[-p.limit :] if more_back else rows
        has_prev, has_next = more_back, True
    else:
        more = len(rows) > p.limit
        page = rows[: p.limit]
        has_next, has_prev = more, after is not None
    convs = [r.conversion for r in page]
    contacts = dict(zip([r.member for r in page], await resolver.contact_of(convs), strict=True))
    companies = dict(zip([r.member for r in page], await resolver.company_of(convs), strict=True))
    ctx = {
        "api_names": api_names,
        "settings": ws,
        "workspace": tenant.id,
        "contacts": contacts,
        "companies": companies,
    }
    data = [row_document(r, p.fields, p.sources is not None, ctx) for r in page]
    path = str(request.url.replace(query=""))
    base_params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]

    def cursor_for(row: Row, forward: bool) -> str:
        return sign_cursor(secret, CursorBody(row.member, row.pos, forward, snapshot, digest))

    next_cursor = cursor_for(page[-1], True) if has_next and page else None
    prev_cursor = cursor_for(page[0], False) if has_prev and page else None

    def url(c: str | None) -> str | None:
        return None if c is None else f"{path}?{urlencode([*base_params, ('cursor', c)])}"

    return {
        "data": data,
        "path": path,
        "per_page": p.limit,
        "next_cursor": next_cursor,
        "next_page_url": url(next_cursor),
        "prev_cursor": prev_cursor,
        "prev_page_url": url(prev_cursor),
    }
