"""Forgetting a person (scope `admin`): `DELETE /v1/contacts/{id}` asks for it, `GET /v1/deletions/{id}` says how
far it got, `/v1/suppressions` lists (hashed) and lifts the identifiers whose events are dropped at ingest.

The work itself is the fold's (`projections/fold/forget.py`). Errors use the Events API shape."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from ingest.deletions import DeletionRequests
from ingest.errors import NotFound
from ingest.suppression import Suppressions, hash_kinds
from projections.identity import identifiers_of_people, read_merge_group

from ..deps import AdminTenant, ServicesDep

router = APIRouter(tags=["deletions"])


@router.delete("/v1/contacts/{contact_id}", status_code=202, summary="Forget a contact")
async def delete_contact(
    contact_id: str,
    tenant: AdminTenant,
    services: ServicesDep,
    suppress: Annotated[
        bool, Query(description="drop later events carrying the contact's identifiers")
    ] = True,
) -> JSONResponse:
    """Forget the contact — and, when it was merged, the survivor and every contact merged into it: their
    events leave every projection, the log and the archive; with `suppress`, later events carrying one of
    their identifiers are dropped at ingest. Answers at once; `GET /v1/deletions/{deletion_id}` follows it."""
    people = await read_merge_group(services.redis, tenant.ks, tenant.id, contact_id)
    if not people:
        raise NotFound(f"contact {contact_id!r} not found", details={"contact_id": contact_id})
    deletion_id = await DeletionRequests(services.redis, services.settings.key_prefix).request(
        services.log,
        tenant.id,
        people[0].id,
        suppress=suppress,
        hashes=hash_kinds(tenant.id, identifiers_of_people(people)),
    )
    services.registry.forget_cached()
    return JSONResponse({"status": "accepted", "deletion_id": deletion_id}, status_code=202)


@router.get("/v1/deletions/{deletion_id}", summary="How a deletion is going")
async def get_deletion(deletion_id: str, tenant: AdminTenant, services: ServicesDep) -> dict[str, Any]:
    """`pending` until the person is gone from the projections, the log and the archive; then `done`, with how
    many contacts, identifiers and events it removed."""
    status = await DeletionRequests(services.redis, services.settings.key_prefix).status(
        tenant.id, deletion_id
    )
    return {"status": "success", "deletion": status}


@router.get("/v1/suppressions", summary="Suppressed identifiers (hashed)")
async def list_suppressions(tenant: AdminTenant, services: ServicesDep) -> dict[str, Any]:
    s = Suppressions(services.redis, services.settings.key_prefix)
    return {
        "status": "success",
        "suppressions": await s.list(tenant.id),
        "dropped_events": await s.dropped(tenant.id),
    }


@router.delete("/v1/suppressions/{identifier_hash}", summary="Lift a suppression")
async def lift_suppression(
    identifier_hash: str, tenant: AdminTenant, services: ServicesDep
) -> dict[str, Any]:
    if not await Suppressions(services.redis, services.settings.key_prefix).lift(tenant.id, identifier_hash):
        raise NotFound(f"no suppression {identifier_hash!r}", details={"hash": identifier_hash})
    services.registry.forget_cached()
    return {"status": "success"}
