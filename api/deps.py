"""Request dependencies: the services the app factory made, and API-key authentication with scopes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from ingest import keys as log_keys
from ingest.archive import Archive
from ingest.log import EventLog
from ingest.settings import Settings
from ingest.workspaces import READ_SCOPES, Workspace, WorkspaceRegistry, key_from_authorization
from projections.keyspace import Keyspace

from .ratelimit import RateLimiter


@dataclass(slots=True)
class Services:
    """What the app factory made for this process; closed on shutdown."""

    settings: Settings
    redis: Redis
    registry: WorkspaceRegistry
    log: EventLog
    attribution_limiter: RateLimiter
    archive: Archive  # where log entries past the archive horizon went (reads of old events look there)


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


@dataclass(frozen=True, slots=True)
class Tenant:
    """The workspace a request acts for, and where its projections live."""

    workspace: Workspace
    ks: Keyspace
    scopes: frozenset[str]

    @property
    def id(self) -> str:
        return self.workspace.id


def require_scope(scope: str | tuple[str, ...]) -> Callable[[Request], Awaitable[Tenant]]:
    """A dependency: the tenant of the request's key (Bearer or X-API-Key), which must hold `scope` (or one of
    several)."""

    async def authenticate(request: Request) -> Tenant:
        services = get_services(request)
        key = key_from_authorization(request.headers.get("authorization"), basic=False)
        grant = await services.registry.authorize(
            key or request.headers.get("x-api-key") or None,
            scope,
            missing="missing API key: send Authorization: Bearer <key> or X-API-Key",
            unknown="invalid API key",
        )
        s = services.settings
        ks = Keyspace(s.key_prefix, log_keys.partition_of(grant.workspace.id, s.partitions))
        return Tenant(grant.workspace, ks, grant.scopes)

    return authenticate


EventsReader = Annotated[Tenant, Depends(require_scope("events:read"))]
ContactsReader = Annotated[Tenant, Depends(require_scope("contacts:read"))]
AdminTenant = Annotated[Tenant, Depends(require_scope("admin"))]
# any key but a write-only one (write keys are public: they ship in every page that loads tracker.js)
AnyReader = Annotated[Tenant, Depends(require_scope((*READ_SCOPES, "admin")))]
