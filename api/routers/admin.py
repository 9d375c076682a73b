"""`/v1/admin/settings`: read and change a workspace's settings (timezone, custom event names, custom profile
field labels) with an API key holding the `admin` scope."""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import APIRouter, Request

from ingest.errors import InvalidRequest

from ..deps import AdminTenant, ServicesDep
from ..workspace_settings import (
    SettingsChange,
    WorkspaceSettings,
    change_workspace_settings,
    read_workspace_settings,
)

router = APIRouter(prefix="/v1/admin", tags=["admin"])
_change_decoder = msgspec.json.Decoder(SettingsChange)


def settings_document(s: WorkspaceSettings) -> dict[str, Any]:
    return {
        "timezone": s.timezone,
        "custom_events": {
            f"custom_event_{n}": {"event": ce.event, "configured_name": ce.configured_name}
            for n, ce in sorted(s.custom_events.items())
        },
        "profile_field_labels": {
            f"profile_field_{n}": label for n, label in sorted(s.profile_field_labels.items())
        },
        "retention_days": s.retention_days,
    }


@router.get("/settings")
async def get_settings(tenant: AdminTenant, services: ServicesDep) -> dict[str, Any]:
    s = await read_workspace_settings(services.redis, services.settings.key_prefix, tenant.id)
    return {"status": "success", "settings": settings_document(s)}


@router.patch(
    "/settings",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": msgspec.json.schema(SettingsChange)}},
        }
    },
)
async def patch_settings(request: Request, tenant: AdminTenant, services: ServicesDep) -> dict[str, Any]:
    """Partial update: `{"timezone": "Europe/Berlin", "custom_events": {"3": {"event": "Demo Booked",
    "configured_name": "Demo"}}, "profile_field_labels": {"5": "Plan", "6": null}, "retention_days": 90}` (null
    clears a slot; `retention_days` 0 or null keeps every event)."""
    try:
        change = _change_decoder.decode(await request.body())
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid settings: {exc}", details={"field": "body"}) from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}", details={"field": "body"}) from exc
    s = await change_workspace_settings(services.registry, services.log, tenant.id, change)
    return {"status": "success", "settings": settings_document(s)}
