"""`/v1/events`: list, types, stats and single events, shaped exactly as the Events API reference."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from ingest.errors import InvalidRequest, NotFound
from ingest.schema import Event
from projections.counters import GroupBy, StatsQuery, list_count, read_stats
from projections.events import (
    EventQuery,
    SortBy,
    event_ids_of,
    find_event_page,
    read_event,
    read_event_types,
    read_members,
)
from projections.identity import NO_ENRICHMENT, Enrichment, read_contact_ids_of_events, read_enrichments

from ..deps import EventsReader, ServicesDep
from ..render import FastJSON, Limit, Page, iso_ms, pagination

router = APIRouter(prefix="/v1/events", tags=["events"], default_response_class=FastJSON)


def parse_when(value: str | None, param: str) -> int | None:
    """ISO 8601 date or date-time → epoch ms (a date alone means its UTC midnight; no offset means UTC)."""
    if value is None:
        return None
    try:
        text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
        dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidRequest(
            f"{param} must be an ISO 8601 date or date-time, got {value!r}", details={"parameter": param}
        ) from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def event_data(e: Event) -> dict[str, Any]:
    """`data`: the page title and path, then the event's properties."""
    data: dict[str, Any] = {}
    if e.title is not None:
        data["title"] = e.title
    if e.path is not None:
        data["path"] = e.path
    data.update(e.properties)
    return data


def event_document(e: Event, enrichment: Enrichment = NO_ENRICHMENT, *, full: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": e.id,
        "event": e.event,
        "timestamp": iso_ms(e.timestamp),
        "url": e.url,
        "domain": e.domain,
        "data": event_data(e),
        "internal_contact_id": enrichment.contact_id,
        "contact": enrichment.contact,
        "company": enrichment.company,
    }
    if full:
        doc.update(
            {
                "type": e.kind,
                "message_id": e.message_id,
                "anonymous_id": e.anonymous_id,
                "user_id": e.user_id,
                "createdAt": iso_ms(e.received_at),
                "referrer": e.referrer,
                "campaign": e.campaign,
                "properties": e.properties,
                "context": e.context,
                "ip": e.ip,
                "user_agent": e.user_agent,
                "library": {"name": e.library_name, "version": e.library_version},
            }
        )
    return doc


def event_summary(e: Event, contact_id: str | None) -> dict[str, Any]:
    """`fields=summary`: a compact projection, no enrichment."""
    return {
        "id": e.id,
        "event": e.event,
        "timestamp": iso_ms(e.timestamp),
        "url": e.url,
        "contact_id": contact_id,
    }


BoolParam = Annotated[bool, Query()]


@router.get("")
async def list_events(
    tenant: EventsReader,
    services: ServicesDep,
    page: Page = 1,
    limit: Limit = 20,
    event_type: str | None = None,
    contact_id: str | None = None,
    domain: str | None = None,
    url_contains: str | None = None,
    date_after: str | None = None,
    date_before: str | None = None,
    identified_only: BoolParam = False,
    search: str | None = None,
    sort_by: SortBy = "timestamp",
    sort_dir: Literal["asc", "desc"] = "desc",
    count_only: BoolParam = False,
    fields: Literal["summary"] | None = None,
) -> FastJSON:
    q = EventQuery(
        event_type=event_type,
        domain=domain.lower() if domain else None,
        contact_id=contact_id,
        url_contains=url_contains or None,
        search=search or None,
        identified_only=identified_only,
        after_ms=parse_when(date_after, "date_after"),
        before_ms=parse_when(date_before, "date_before"),
        sort_by=sort_by,
        descending=sort_dir == "desc",
        offset=(page - 1) * limit,
        limit=limit,
    )
    redis = services.redis
    total, members = await find_event_page(
        redis,
        tenant.ks,
        tenant.id,
        q,
        count_only=count_only,
        count=list_count(redis, tenant.ks, tenant.id, q),
    )
    if count_only:
        return FastJSON({"status": "success", "count": total})
    # the events from the log and their contacts from the projections, at once
    ids = event_ids_of(members)
    if fields == "summary":
        events, contact_of = await asyncio.gather(
            read_members(redis, tenant.ks, members, services.archive),
            read_contact_ids_of_events(redis, tenant.ks, tenant.id, ids),
        )
        docs = [event_summary(e, contact_of.get(e.id)) for e in events]
    else:
        events, enriched = await asyncio.gather(
            read_members(redis, tenant.ks, members, services.archive),
            read_enrichments(redis, tenant.ks, tenant.id, ids),
        )
        docs = [event_document(e, enriched[e.id]) for e in events]
    return FastJSON(
        {
            "status": "success",
            "events": docs,
            "pagination": pagination(page, limit, total),
        }
    )


@router.get("/types")
async def list_event_types(tenant: EventsReader, services: ServicesDep) -> FastJSON:
    types = await read_event_types(services.redis, tenant.ks, tenant.id)
    return FastJSON({"status": "success", "types": types, "total_items": len(types)})


@router.get("/stats")
async def event_stats(
    tenant: EventsReader,
    services: ServicesDep,
    event_type: str | None = None,
    domain: str | None = None,
    date_after: str | None = None,
    date_before: str | None = None,
    identified_only: BoolParam = False,
    group_by: GroupBy | None = None,
) -> FastJSON:
    q = StatsQuery(
        event_type=event_type,
        domain=domain.lower() if domain else None,
        after_ms=parse_when(date_after, "date_after"),
        before_ms=parse_when(date_before, "date_before"),
        identified_only=identified_only,
        group_by=group_by,
    )
    s = await read_stats(services.redis, tenant.ks, tenant.id, q)
    stats: dict[str, Any] = {"total": s.total}
    if group_by in (None, "type"):
        stats["by_type"] = s.by_type
    if group_by in (None, "domain"):
        stats["by_domain"] = s.by_domain
    if group_by in (None, "day"):
        stats["by_day"] = s.by_day
    return FastJSON({"status": "success", "stats": stats})


@router.get("/{event_id}")
async def get_event(event_id: str, tenant: EventsReader, services: ServicesDep) -> FastJSON:
    e = await read_event(services.redis, tenant.ks, tenant.id, event_id, services.archive)
    if e is None:
        raise NotFound(f"event {event_id!r} not found", details={"event_id": event_id})
    enriched = await read_enrichments(services.redis, tenant.ks, tenant.id, [e.id])
    return FastJSON({"status": "success", "event": event_document(e, enriched[e.id], full=True)})
