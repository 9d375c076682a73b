"""Faults: Redis restarted under load, Redis out of memory, two appliers racing for the same partitions.

Each runs on a private valkey-server (these tests stop it, restart it or fill it) or, for the race, through a
TCP proxy that can hold one applier's traffic in the middle of a commit. The promise checked every time: every
acknowledged event is folded exactly once (the Events API counts it once, a replay of the log gives the live
digest), and a client is told to retry (503 with `Retry-After`) while the store cannot take its events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from api.app import create_app
from api.embedded import EmbeddedValkey, free_port
from ingest import keys as log_keys
from ingest.log import EventLog
from ingest.settings import Settings
from projections.fold import keys as fold_keys
from projections.fold.applier import Applier, PartitionOwner, ensure_group
from projections.fold.progress import checkpoints, wait_until_folded
from projections.fold.rebuild import digest, verify_partition
from projections.keyspace import Keyspace

from .conftest import WorkspaceKeys, make_settings, new_workspace
from .factories import make_events


@contextlib.asynccontextmanager
async def private_valkey(data_dir: Path, *, appendonly: bool = True) -> AsyncIterator[EmbeddedValkey]:
    server = EmbeddedValkey(data_dir, free_port(), appendonly=appendonly)
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


@contextlib.asynccontextmanager
async def http_app(settings: Settings, *, run_appliers: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, run_appliers=run_appliers)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as c:
            yield c


def track(n: int, size: int = 0) -> dict:
    return {
        "type": "track",
        "event": "signed_up",
        "userId": f"u{n % 7}",
        "messageId": f"m-{n}",
        "properties": {"n": n, "pad": secrets.token_hex(size // 2)},  # incompressible: log entries are zstd
    }


async def post_track(client: httpx.AsyncClient, ws: WorkspaceKeys, n: int, size: int = 0) -> httpx.Response:
    return await client.post("/v1/track", json=track(n, size), auth=(ws.write_key, ""))


async def stored_numbers(client: httpx.AsyncClient, ws: WorkspaceKeys) -> list[int]:
    """Every event the Events API lists for the workspace, by the `n` it was sent with (sorted, repeats kept)."""
    out: list[int] = []
    page = 1
    while True:
        r = await client.get(
            "/v1/events",
            params={"limit": 100, "page": page},
            headers={"Authorization": f"Bearer {ws.read_key}"},
        )
        assert r.status_code == 200, r.text
        events = r.json()["events"]
        out += [e["data"]["n"] for e in events]
        if len(events) < 100:
            return sorted(out)
        page += 1


async def wait_for(condition, timeout: float = 60.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)  # sleep-ok: polling a condition the test's own tasks set


async def wait_for_checkpoints_to_move(
    redis: Redis, settings: Settings, before: dict, timeout: float = 30
) -> None:
    async with asyncio.timeout(timeout):
        while await checkpoints(redis, settings.key_prefix, settings.partitions) == before:
            await asyncio.sleep(0.01)  # sleep-ok: polling the checkpoints, the condition we wait for


async def assert_every_partition_verifies(redis: Redis, settings: Settings) -> None:
    for p in range(settings.partitions):
        v = await verify_partition(redis, settings.key_prefix, p, lease_ttl_ms=settings.lease_ttl_ms)
        assert v.same, f"partition {p}: live {v.live} != rebuilt {v.rebuilt} at {v.checkpoint}"


# ---------------------------------------------------------------- Redis restarted under load


async def test_redis_restarted_under_load_keeps_every_acknowledged_event_once(tmp_path):
    async with private_valkey(tmp_path / "valkey") as server:
        settings = make_settings(server.url, lease_ttl_ms=1000)
        redis = Redis.from_url(server.url)
        ws = await new_workspace(settings, redis)
        acknowledged: list[int] = []
        refused: list[httpx.Response] = []
        unacknowledged: list[int] = []
        stop = asyncio.Event()
        async with http_app(settings) as client:

            async def send() -> None:
                n = 0
                while not stop.is_set():
                    r = await post_track(client, ws, n)
                    if r.status_code == 200:
                        acknowledged.append(n)
                    else:
                        refused.append(r)
                        unacknowledged.append(n)
                    n += 1
                    await asyncio.sleep(0.005)  # sleep-ok: a client's pace, so the outage spans many requests

            sender = asyncio.create_task(send())
            try:
                await wait_for(lambda: len(acknowledged) >= 50)
                await asyncio.to_thread(server.stop)  # SHUTDOWN: Valkey goes away mid-stream
                await wait_for(lambda: len(refused) >= 5)
                await asyncio.to_thread(server.start)  # same port, same data dir, its append-only file
                await redis.aclose()  # the test's own client; the app's reconnect by themselves
                redis = Redis.from_url(server.url)
                restarted_at = len(acknowledged)
                await wait_for(
                    lambda: len(acknowledged) >= restarted_at + 50
                )  # the app reconnected by itself
            finally:
                stop.set()
                await sender
            assert all(r.status_code == 503 for r in refused), [(r.status_code, r.text) for r in refused]
            assert all(r.headers.get("retry-after", "").isdigit() for r in refused), refused[0].headers
            assert refused[0].json()["code"] == "unavailable"

            # the client re-sends what was not acknowledged (some of it may have reached the log already)
            for n in unacknowledged:
                r = await post_track(client, ws, n)
                assert r.status_code == 200, r.text
            await wait_until_folded(redis, settings.key_prefix, settings.partitions, timeout=60)
            assert await stored_numbers(client, ws) == sorted(acknowledged + unacknowledged)
        await assert_every_partition_verifies(redis, settings)
        await redis.aclose()


# ---------------------------------------------------------------- Redis out of memory


async def oom_rejections(redis: Redis) -> int:
    """How many commands the server refused for want of memory (INFO errorstats)."""
    stats = await redis.info("errorstats")
    return int(stats.get("errorstat_OOM", {}).get("count", 0))


async def test_out_of_memory_is_503_nothing_half_written_and_ingest_recovers(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="streamfold.applier")
    async with private_valkey(tmp_path / "valkey", appendonly=False) as server:
        # a lease longer than the test: the partition's owner, driven by hand, needs no renewal
        settings = make_settings(server.url, lease_ttl_ms=600_000, partitions=1)
        redis = Redis.from_url(server.url)
        ws = await new_workspace(settings, redis)
        stream = log_keys.log(settings.key_prefix, 0)
        ks = Keyspace(settings.key_prefix, 0)
        owner = PartitionOwner(Applier(redis, settings), 0)
        assert await owner.acquire()
        await ensure_group(redis, settings.key_prefix, 0)

        async def fold_the_log() -> None:
            at = await redis.get(fold_keys.checkpoint(ks))
            await owner.fold(await redis.xrange(stream, f"({at.decode()}" if at else "-", "+"))

        async with http_app(settings, run_appliers=False) as client:
            for n in range(20):
                assert (await post_track(client, ws, n)).status_code == 200
            await fold_the_log()
            used = (await redis.info("memory"))["used_memory"]
            await redis.config_set("maxmemory-policy", "noeviction")
            await redis.config_set("maxmemory", used + 400_000)

            # ~20 KB events, 8 at a time, until the server refuses a good run of them
            answers: dict[int, httpx.Response] = {}
            n = 20
            while sum(r.status_code == 503 for r in answers.values()) < 16:
                assert n < 400, "maxmemory was never reached"
                batch = range(n, n + 8)
                replies = await asyncio.gather(*(post_track(client, ws, i, 20_000) for i in batch))
                answers.update(zip(batch, replies, strict=True))
                n += 8
            assert {r.status_code for r in answers.values()} == {200, 503}
            refused = [i for i, r in answers.items() if r.status_code == 503]
            assert all(answers[i].headers.get("retry-after", "").isdigit() for i in refused)
            assert answers[refused[0]].json()["code"] == "unavailable"
            acknowledged = list(range(20)) + [i for i, r in answers.items() if r.status_code == 200]

            # the log holds exactly the acknowledged requests, one entry each
            logged = [
                e.properties["n"] for _, fields in await redis.xrange(stream) for e in logged_events(fields)
            ]
            assert sorted(logged) == sorted(acknowledged)

            # full for good: the owner's commits are refused whole; it keeps the lease and tries again
            await redis.config_set("maxmemory", used // 2)
            at, state, rejections = (
                await redis.get(fold_keys.checkpoint(ks)),
                await digest(redis, ks),
                await oom_rejections(redis),
            )
            folding = asyncio.create_task(fold_the_log())
            async with asyncio.timeout(30):
                while await oom_rejections(redis) < rejections + 3:
                    await asyncio.sleep(0.05)  # sleep-ok: polling the server's count of refused commands
            assert not folding.done()
            assert await redis.get(fold_keys.checkpoint(ks)) == at
            assert await digest(redis, ks) == state
            assert any("out of memory" in r.getMessage() for r in caplog.records)

            # memory freed: the held batch commits, ingest takes events again (the refused ones are re-sent)
            await redis.config_set("maxmemory", 0)
            await asyncio.wait_for(folding, timeout=30)
            for i in refused:
                assert (await post_track(client, ws, i)).status_code == 200
            await fold_the_log()
            assert await redis.get(fold_keys.checkpoint(ks)) == (await redis.xrevrange(stream, count=1))[0][0]
            assert await stored_numbers(client, ws) == sorted(acknowledged + refused)
        await owner.release()
        assert not [r for r in caplog.records if r.exc_info], (
            "an expected failure was logged with a traceback"
        )
        await assert_every_partition_verifies(redis, settings)
        await redis.aclose()


def logged_events(fields: dict[bytes, bytes]) -> list:
    from projections.fold.fold import decode_entry

    return decode_entry(fields)[1]


# ---------------------------------------------------------------- two appliers racing for the same partitions


class HoldingProxy:
    """A TCP proxy in front of Redis for one applier. Armed, it holds everything that applier sends from the
    first MULTI on (a commit whose fence was just checked) until released: the applier is paused mid-commit
    while its lease runs out. The replies of the held connection are kept."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.armed = False
        self.holding = asyncio.Event()
        self.released = asyncio.Event()
        self.held_replies = bytearray()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/0"

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        held_here = False

        async def upstream() -> None:
            nonlocal held_here
            while data := await client_r.read(65536):
                if self.armed and not self.holding.is_set() and b"MULTI\r\n" in data:
                    self.holding.set()
                    held_here = True
                if self.holding.is_set():
                    await self.released.wait()
                server_w.write(data)
                await server_w.drain()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                if held_here:
                    self.held_replies += data
                client_w.write(data)
                await client_w.drain()

        await asyncio.gather(upstream(), downstream(), return_exceptions=True)
        for w in (server_w, client_w):
            w.close()

    async def stop(self) -> None:
        self.released.set()
        self.server.close()


def exec_reply(replies: bytes) -> bytes | None:
    """The first line of the EXEC reply among a transaction's replies (after MULTI's +OK and a +QUEUED per
    command), once it arrived: `*-1` (RESP2) or `_` (RESP3) for a transaction aborted by a WATCHed key."""
    rest = replies.removeprefix(b"+OK\r\n")
    while rest.startswith(b"+QUEUED\r\n"):
        rest = rest.removeprefix(b"+QUEUED\r\n")
    line, crlf, _ = rest.partition(b"\r\n")
    return line if crlf else None


async def test_two_appliers_racing_fold_every_event_exactly_once(settings, redis, caplog):
    settings = settings.with_(lease_ttl_ms=800, fold_batch_entries=5)
    port = redis.connection_pool.connection_kwargs["port"]
    proxy = HoldingProxy(port)
    proxy_url = await proxy.start()
    redis_a = Redis.from_url(proxy_url)
    applier_a = Applier(redis_a, settings.with_(redis_url=proxy_url))
    applier_b = Applier(redis, settings)
    workspaces = [await new_workspace(settings, redis) for _ in range(6)]
    log = EventLog(redis, settings)
    sent = {ws.id: set() for ws in workspaces}
    stop = asyncio.Event()
    appended = [0]

    async def produce() -> None:
        i = 0
        while not stop.is_set():
            ws = workspaces[i % len(workspaces)]
            events = make_events(4, seed=500 + i)
            await log.append(ws.id, events)
            sent[ws.id].update(e.message_id for e in events)
            appended[0] += 1
            i += 1
            await asyncio.sleep(0.01)  # sleep-ok: paces the producer, a steady stream of entries

    caplog.set_level(logging.WARNING, logger="streamfold.applier")
    producer = asyncio.create_task(produce())
    try:
        await applier_a.start()
        await wait_for(lambda: applier_a.owned() == list(range(settings.partitions)))
        await applier_b.start()  # waits: every lease is A's
        await wait_for(lambda: appended[0] >= 30)
        assert applier_b.owned() == []

        proxy.armed = True  # A's next commit is held after its fence check: A pauses mid-commit
        await wait_for(proxy.holding.is_set)
        # A cannot renew: its leases run out, B takes every partition (a new epoch each) and folds on
        await wait_for(lambda: applier_b.owned() == list(range(settings.partitions)))
        before = await checkpoints(redis, settings.key_prefix, settings.partitions)
        await wait_for_checkpoints_to_move(redis, settings, before)  # B folds while A is paused
        proxy.released.set()  # A resumes: its held MULTI/EXEC reaches Redis with a stale epoch watched
        await wait_for(lambda: exec_reply(bytes(proxy.held_replies)) is not None, timeout=30)
        assert exec_reply(bytes(proxy.held_replies)) in (b"*-1", b"_"), "the stale owner's commit was applied"
        await wait_for(lambda: any("lease lost" in r.getMessage() for r in caplog.records), timeout=30)
        await wait_for(lambda: appended[0] >= 120)
    finally:
        stop.set()
        await producer
    try:
        await wait_until_folded(redis, settings.key_prefix, settings.partitions, timeout=60)
        assert applier_a.owned() == []
    finally:
        await applier_a.stop()
        await applier_b.stop()
        await proxy.stop()
        await redis_a.aclose()

    await assert_every_partition_verifies(redis, settings)
    async with http_app(settings, run_appliers=False) as client:
        for ws in workspaces:
            r = await client.get(
                "/v1/events",
                params={"count_only": "true"},
                headers={"Authorization": f"Bearer {ws.read_key}"},
            )
            assert r.json()["count"] == len(sent[ws.id]), ws.id


@pytest.fixture(autouse=True)
def _quiet_faststream(caplog):
    # FastStream logs its fetch errors while Redis is away; they are expected here
    caplog.set_level(logging.CRITICAL, logger="streamfold.faststream")


async def _steal(redis: Redis, settings: Settings, partition: int, count: int) -> list[bytes]:
    """What a stale owner's read does: take the next `count` new entries from the group (its read was blocked
    in Redis when its lease ran out, so they are delivered to it, and to nobody else, ever again)."""
    from projections.fold.applier import consumer_name
    from projections.fold.fold import GROUP

    stream = log_keys.log(settings.key_prefix, partition)
    reply = await redis.xreadgroup(GROUP, consumer_name(partition), {stream: ">"}, count=count)
    return [eid for eid, _ in reply[0][1]] if reply else []


async def test_entries_a_stale_owner_took_from_the_group_are_folded_not_skipped(settings, redis):
    settings = settings.with_(lease_ttl_ms=600, partitions=1)
    log = EventLog(redis, settings)
    applier = Applier(redis, settings)
    await applier.start()
    try:
        await log.append("ws_s", make_events(5, seed=1))
        await wait_until_folded(redis, settings.key_prefix, 1, timeout=30)
        stolen_in_the_middle: list[bytes] = []
        seed = 10
        while len(stolen_in_the_middle) < 3:  # appended and taken before the owner's own read gets them
            await log.append("ws_s", make_events(5, seed=seed))
            stolen_in_the_middle += await _steal(redis, settings, 0, 1)
            seed += 1
        await log.append("ws_s", make_events(5, seed=20))  # the owner folds this one, after the stolen ones
        await wait_until_folded(redis, settings.key_prefix, 1, timeout=30)
        stolen_at_the_end: list[bytes] = []
        seed = 30
        while not stolen_at_the_end:  # nothing comes after it: the owner finds it pending a lease later
            await log.append("ws_s", make_events(5, seed=seed))
            stolen_at_the_end = await _steal(redis, settings, 0, 1)
            seed += 1
        await wait_until_folded(redis, settings.key_prefix, 1, timeout=30)
    finally:
        await applier.stop()
    await assert_every_partition_verifies(redis, settings)
    ks = Keyspace(settings.key_prefix, 0)
    assert (await redis.xpending(log_keys.log(settings.key_prefix, 0), "fold"))["pending"] == 0
    assert await redis.get(fold_keys.checkpoint(ks)) == stolen_at_the_end[0]
