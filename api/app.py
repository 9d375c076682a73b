"""The app factory: one FastAPI app with the ingest and query routers; clients made here, closed on shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from redis.asyncio import Redis

from ingest.archive import Archive
from ingest.http import IngestFastPath
from ingest.http import build_router as build_ingest_router
from ingest.log import EventLog
from ingest.receive import Receiver
from ingest.redis_client import connect_redis
from ingest.settings import Settings
from ingest.sources.http import build_router as build_sources_router
from ingest.workspaces import WorkspaceRegistry
from projections.fold.applier import Applier

from . import __version__, errors, openapi
from .deps import Services
from .health import unready_reason
from .metrics import FoldMetrics, IngestMetrics, RequestMetrics
from .ratelimit import IngestLimiter, RateLimiter
from .routers import (
    admin,
    attribution,
    contacts,
    dashboard,
    deletions,
    events,
    export,
    metrics,
    status,
    tracker,
)


def connect(settings: Settings) -> Redis:
    if not settings.redis_url:
        raise ValueError(
            "no Redis URL: set STREAMFOLD_REDIS_URL or --redis-url (or let `streamfold serve` embed one)"
        )
    return connect_redis(settings.redis_url, max_connections=256)


def create_app(
    settings: Settings, *, run_appliers: bool = True, ready_needs_fold: bool | None = None
) -> FastAPI:
    """`ready_needs_fold`: `/readyz` also checks the fold of `settings.fold_partitions` (default: when this
    process runs the appliers; `serve --workers N` folds in a sibling process and says so)."""
    check_fold = run_appliers if ready_needs_fold is None else ready_needs_fold

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = connect(settings)
        limiter = RateLimiter(
            redis, settings.key_prefix, "attribution", settings.attribution_rate_limit_per_minute
        )
        services = Services(
            settings,
            redis,
            WorkspaceRegistry(redis, settings),
            EventLog(redis, settings),
            limiter,
            Archive(settings.archive_root),
        )
        app.state.services = services
        app.state.receiver = Receiver(
            services.registry,
            services.log,
            settings,
            IngestLimiter(redis, settings.key_prefix).admit,
            observer=IngestMetrics(),
        )
        applier = Applier(redis, settings, observer=FoldMetrics()) if run_appliers else None
        if applier is not None:
            await applier.start()
        app.state.applier = applier
        try:
            yield
        finally:
            if applier is not None:
                await applier.stop()
            await redis.aclose()

    app = FastAPI(
        title="Streamfold",
        version=__version__,
        summary="Segment-compatible event ingestion folded into fast read projections.",
        lifespan=lifespan,
        # no OpenTelemetry providers are configured here; checking for them costs ~10% of a one-event request
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    errors.install(app)
    openapi.install(app)
    app.add_middleware(IngestFastPath)
    app.add_middleware(RequestMetrics)  # outermost: times the ingest fast path too
    app.include_router(build_ingest_router())
    app.include_router(build_sources_router())
    app.include_router(events.router)
    app.include_router(export.router)
    app.include_router(contacts.contacts_router)
    app.include_router(deletions.router)
    app.include_router(contacts.companies_router)
    app.include_router(admin.router)
    app.include_router(tracker.router)
    app.include_router(attribution.router)
    app.include_router(status.router)
    app.include_router(dashboard.router)
    app.include_router(metrics.router)

    @app.get("/healthz", tags=["health"], summary="Liveness: the process serves HTTP")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Readiness: Redis answers; the partitions this process folds are owned and caught up",
        responses={503: {"description": '`{"status": "unavailable", "reason": "…"}`'}},
    )
    async def readyz() -> JSONResponse:
        services: Services = app.state.services
        reason = await unready_reason(services.redis, settings, folding=check_fold)
        if reason is None:
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)

    return app


def create_app_from_env() -> FastAPI:
    """Factory for uvicorn worker processes (`streamfold serve --workers N`): HTTP only, settings from env; one
    sibling process folds unless `no_fold`."""
    settings = Settings.from_env()
    return create_app(settings, run_appliers=False, ready_needs_fold=not settings.no_fold)
