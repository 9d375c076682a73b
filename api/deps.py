"""Request dependencies: the services the app factory made, and API-key authentication with scopes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from ingest import keys as log_keys
from ingest.errors import Unauthorized
from ingest.log import EventLog
from ingest.settings import Settings
from ingest.workspaces import Workspace, WorkspaceRegistry, require_grant
from projections.keys import Keyspace


@dataclass(slots=True)
class Services:
    settings: Settings
    redis: Redis
    registry: WorkspaceRegistry
    log: EventLog


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


def presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return request.headers.get("x-api-key") or None


def require_scope(scope: str) -> Callable[[Request], Awaitable[Tenant]]:
    async def authenticate(request: Request) -> Tenant:
        services = get_services(request)
        key = presented_key(request)
        if key is None:
            raise Unauthorized("missing API key: send Authorization: Bearer <key> or X-API-Key")
        grant = require_grant(await services.registry.resolve(key), scope, unknown="invalid API key")
        s = services.settings
        ks = Keyspace(s.key_prefix, log_keys.partition_of(grant.workspace.id, s.partitions))
        return Tenant(grant.workspace, ks, grant.scopes)

    return authenticate


EventsReader = Annotated[Tenant, Depends(require_scope("events:read"))]
ContactsReader = Annotated[Tenant, Depends(require_scope("contacts:read"))]
