"""`verify` and `rebuild` compare a partition's live projections with a replay of its log at one checkpoint: equal
while appliers fold a log that keeps growing, different only where a projection really diverged."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

from ingest import keys as log_keys
from ingest.log import EventLog
from projections.counters import keys as counter_keys
from projections.fold.applier import Applier
from projections.fold.progress import checkpoints, wait_until_folded
from projections.fold.rebuild import verify_partition
from projections.keyspace import Keyspace
from projections.located import stream_id

from .cli_helpers import clean_env, common_flags
from .factories import append_events, make_events

WORKSPACES = [f"ws_v{i}" for i in range(8)]


def partitions_of(settings, workspaces: list[str]) -> list[int]:
    return sorted({log_keys.partition_of(ws, settings.partitions) for ws in workspaces})


@contextlib.asynccontextmanager
async def producing(redis, settings) -> AsyncIterator[list[int]]:
    """Appends to every workspace's log until the block ends; yields the count of entries appended so far."""
    log = EventLog(redis, settings)
    appended = [0]
    stop = asyncio.Event()

    async def produce() -> None:
        i = 0
        while not stop.is_set():
            ws = WORKSPACES[i % len(WORKSPACES)]
            await append_events(log, ws, make_events(5, seed=1000 + i), per_entry=5)
            appended[0] += 1
            i += 1
            await asyncio.sleep(0.03)  # sleep-ok: paces the producer (~150 events/s), a steady stream

    task = asyncio.create_task(produce())
    try:
        yield appended
    finally:
        stop.set()
        await task


@contextlib.asynccontextmanager
async def folding(redis, settings) -> AsyncIterator[Applier]:
    applier = Applier(redis, settings)
    await applier.start()
    try:
        yield applier
    finally:
        await applier.stop()


async def wait_for_entries(appended: list[int], n: int) -> None:
    while appended[0] < n:
        await asyncio.sleep(0.01)  # sleep-ok: polling the producer's count, the condition we wait for


async def run_cli(settings, *args: str) -> tuple[int, str, str]:
    """`streamfold ARGS` in a child process, without blocking the event loop the applier and producer run on."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "api.cli",
        *args,
        *common_flags(settings),
        env=clean_env(STREAMFOLD_LEASE_TTL_MS=str(settings.lease_ttl_ms)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return int(proc.returncode or 0), out.decode(), err.decode()


async def wait_for_fold_past(redis, settings, verified: dict[int, str]) -> None:
    """Until every partition's fold went on past the checkpoint it was verified at."""
    while True:
        now = await checkpoints(redis, settings.key_prefix, settings.partitions)
        if all(stream_id(now[p] or "0-0") > stream_id(c) for p, c in verified.items()):
            return
        await asyncio.sleep(0.01)  # sleep-ok: polling the checkpoints, the condition we wait for


async def test_verify_under_traffic_gives_equal_digests_every_time(settings, redis):
    parts = partitions_of(settings, WORKSPACES)
    assert len(parts) >= 2
    verified: dict[int, str] = {}
    async with folding(redis, settings), producing(redis, settings) as appended:
        await wait_for_entries(appended, 10)
        for round_ in range(3):
            # each round digests checkpoints the fold reached after the last round: it resumed and moved on
            await asyncio.wait_for(wait_for_fold_past(redis, settings, verified), timeout=60)
            for p in parts:
                v = await verify_partition(redis, settings.key_prefix, p, lease_ttl_ms=settings.lease_ttl_ms)
                assert v.same, f"round {round_}, partition {p}: live {v.live} != rebuilt {v.rebuilt}"
                assert v.checkpoint is not None
                verified[p] = v.checkpoint


async def test_verify_and_rebuild_commands_under_traffic_exit_0(settings, redis):
    parts = partitions_of(settings, WORKSPACES)
    async with folding(redis, settings), producing(redis, settings) as appended:
        for i in range(2):
            await wait_for_entries(appended, 15 * (i + 1))
            code, out, err = await run_cli(settings, "verify")
            assert code == 0, out + err
            lines = [line for line in out.splitlines() if line.startswith("partition")]
            assert len(lines) == settings.partitions
            for line in lines:
                words = line.split()
                p, live, rebuilt = int(words[1]), words[5], words[7]
                assert live == rebuilt and len(live) == 64 and words[-1] == "ok", out
                assert (words[3] != "-") == (p in parts), out
            code, out, err = await run_cli(settings, "rebuild")
            assert code == 0 and "MISMATCH" not in out, out + err


async def test_a_corrupted_live_key_is_a_mismatch_of_its_partition_only(settings, redis):
    log = EventLog(redis, settings)
    for i, ws in enumerate(WORKSPACES):
        await append_events(log, ws, make_events(50, seed=i), per_entry=10)
    async with folding(redis, settings):
        await wait_until_folded(redis, settings.key_prefix, settings.partitions, timeout=60)
    victim = WORKSPACES[0]
    ks = Keyspace(settings.key_prefix, log_keys.partition_of(victim, settings.partitions))
    day = (await redis.zrange(counter_keys.counter_days(ks, victim), 0, 0))[0].decode()
    await redis.hset(counter_keys.counter_day(ks, victim, day), "forged", 1)

    code, out, err = await run_cli(settings, "verify")
    assert code == 1, out + err
    marks = {
        int(line.split()[1]): line.split()[-1] for line in out.splitlines() if line.startswith("partition")
    }
    assert marks == {p: "MISMATCH" if p == ks.partition else "ok" for p in range(settings.partitions)}, out
    assert err.strip() == f"error: MISMATCH in partitions {ks.partition}"
    code, out, err = await run_cli(settings, "rebuild")
    assert code == 1 and "MISMATCH" in out and "DIFFERS" in err, out + err
    ck = await checkpoints(redis, settings.key_prefix, settings.partitions)
    assert ck[ks.partition] is not None
