"""The fold's promises: exactly once across crashes, checkpoint skipping, fencing, dead letters, replay digests."""

from __future__ import annotations

import asyncio
import signal

import msgspec
import pytest

from ingest import keys as log_keys
from ingest.log import EventLog
from projections.counters import keys as counter_keys
from projections.errors import FenceLost
from projections.events import keys as event_keys
from projections.fold import keys as fold_keys
from projections.fold.applier import Applier, consumer_name, ensure_group, ensure_projection_format
from projections.fold.fold import GROUP, Fence, fold_entries, read_checkpoint
from projections.fold.progress import checkpoints, log_heads, wait_until_folded
from projections.fold.rebuild import digest, rebuild_and_compare
from projections.fold.rules import DEFAULT_RULES
from projections.keyspace import Keyspace

from .conftest import fold_process
from .factories import append_events, make_events


def ks_of(settings, workspace_id: str) -> Keyspace:
    return Keyspace(settings.key_prefix, log_keys.partition_of(workspace_id, settings.partitions))


async def fold_until_caught_up(redis, settings, partitions: list[int] | None = None) -> None:
    """Run an applier until the fold reached every log head, then stop it."""
    applier = Applier(redis, settings, partitions=partitions)
    await applier.start()
    try:
        await wait_until_folded(redis, settings.key_prefix, settings.partitions, timeout=60)
    finally:
        await applier.stop()


async def read_all(redis, settings, ks: Keyspace):
    return await redis.xrange(log_keys.log(settings.key_prefix, ks.partition))


async def test_entries_at_or_before_the_checkpoint_are_skipped(settings, redis):
    log = EventLog(redis, settings)
    await append_events(log, "ws_a", make_events(300, seed=2))
    ks = ks_of(settings, "ws_a")
    entries = await read_all(redis, settings, ks)
    await fold_entries(redis, ks, entries, fence=None, ack_group=None)
    first = await digest(redis, ks)
    again = await fold_entries(redis, ks, entries, fence=None, ack_group=None)
    assert again.applied_entries == 0 and again.applied_events == 0
    assert await digest(redis, ks) == first
    assert await read_checkpoint(redis, ks) == entries[-1][0].decode()


async def test_a_stale_owner_cannot_commit(settings, redis):
    log = EventLog(redis, settings)
    await append_events(log, "ws_b", make_events(50, seed=3))
    ks = ks_of(settings, "ws_b")
    await redis.set(fold_keys.fence_owner(ks), "the-new-owner")
    with pytest.raises(FenceLost):
        await fold_entries(
            redis, ks, await read_all(redis, settings, ks), fence=Fence("the-old-owner"), ack_group=None
        )
    assert await read_checkpoint(redis, ks) is None
    assert await redis.exists(event_keys.index_all(ks, "ws_b")) == 0


async def test_lease_renewals_during_commits_do_not_abort_them(settings, redis):
    log = EventLog(redis, settings)
    ks = ks_of(settings, "ws_r")
    await redis.set(fold_keys.fence_owner(ks), "me")
    await redis.set(fold_keys.fence_epoch(ks), 7)
    stop = asyncio.Event()

    async def renew_constantly() -> int:
        n = 0
        while not stop.is_set():
            await redis.pexpire(fold_keys.fence_owner(ks), 60_000)
            n += 1
        return n

    renewer = asyncio.create_task(renew_constantly())
    try:
        for i in range(40):
            await append_events(log, "ws_r", make_events(20, seed=100 + i), per_entry=20)
            entries = await read_all(redis, settings, ks)
            await fold_entries(redis, ks, entries[-1:], fence=Fence("me", epoch=7), ack_group=None)
    finally:
        stop.set()
        renewals = await renewer
    assert renewals > 40
    assert await read_checkpoint(redis, ks) == (await read_all(redis, settings, ks))[-1][0].decode()


async def test_poison_entry_goes_to_dead_letters_and_the_fold_moves_on(settings, redis):
    log = EventLog(redis, settings)
    ks = ks_of(settings, "ws_c")
    stream = log_keys.log(settings.key_prefix, ks.partition)
    await append_events(log, "ws_c", make_events(10, seed=4), per_entry=10)
    await redis.xadd(stream, {b"w": b"ws_c", b"v": b"1", b"d": b"\xc1garbage"})
    await redis.xadd(stream, {b"w": b"ws_c", b"v": b"99", b"d": msgspec.msgpack.encode([])})
    await append_events(log, "ws_c", make_events(10, seed=5), per_entry=10)
    result = await fold_entries(redis, ks, await read_all(redis, settings, ks), fence=None, ack_group=None)
    assert result.dead_letters == 2
    assert result.applied_events == 20
    dlq = await redis.xrange(log_keys.dead_letters(settings.key_prefix, ks.partition))
    reasons = [fields[b"reason"].decode() for _, fields in dlq]
    assert "cannot decode" in reasons[0] and "unknown log entry version" in reasons[1]
    assert await redis.zcard(event_keys.index_all(ks, "ws_c")) == 20


async def test_pending_entries_of_a_crashed_consumer_are_drained_first(settings, redis):
    log = EventLog(redis, settings)
    await append_events(log, "ws_d", make_events(500, seed=6))
    ks = ks_of(settings, "ws_d")
    stream = log_keys.log(settings.key_prefix, ks.partition)
    await ensure_group(redis, settings.key_prefix, ks.partition)
    # a previous owner read (was delivered) entries and died before committing them
    delivered = await redis.xreadgroup(GROUP, consumer_name(ks.partition), {stream: ">"}, count=3)
    assert len(delivered[0][1]) == 3
    await fold_until_caught_up(redis, settings, partitions=[ks.partition])
    assert await redis.zcard(event_keys.index_all(ks, "ws_d")) == len(
        {e.message_id for e in make_events(500, seed=6)}
    )
    assert (await redis.xpending(stream, GROUP))["pending"] == 0


async def test_rebuild_gives_the_live_digest(settings, redis):
    log = EventLog(redis, settings)
    await append_events(log, "ws_e", make_events(2000, seed=7, dup_every=13))
    await fold_until_caught_up(redis, settings)
    ks = ks_of(settings, "ws_e")
    live, rebuilt, n = await rebuild_and_compare(redis, settings.key_prefix, ks.partition)
    assert n == 20 and live == rebuilt


async def test_projections_of_an_older_format_are_folded_again_from_the_log(settings, redis):
    log = EventLog(redis, settings)
    await append_events(log, "ws_f", make_events(600, seed=8, dup_every=11))
    ks = ks_of(settings, "ws_f")
    await fold_until_caught_up(redis, settings, partitions=[ks.partition])
    expected = await digest(redis, ks)
    # what an older version left: no format stamp, a key this version no longer writes, one index damaged
    await redis.delete(fold_keys.projection_format(ks))
    stale = f"{ks.base}:w:ws_f:evt"
    await redis.hset(stale, "01AAAAAAAAAAAAAAAAAAAAAAAA", "1-0:0")
    await redis.zremrangebyrank(event_keys.index_all(ks, "ws_f"), 0, 9)
    assert await digest(redis, ks) != expected
    applier = Applier(redis, settings, partitions=[ks.partition])
    await applier.start()
    try:
        await wait_until_folded(redis, settings.key_prefix, settings.partitions, timeout=60)
        assert await redis.get(fold_keys.projection_format(ks)) == DEFAULT_RULES.stamp.encode()
        assert not await redis.exists(stale)
        assert await digest(redis, ks) == expected
        # stamped now: the next owner keeps what is there
        assert await ensure_projection_format(redis, ks) is False
    finally:
        await applier.stop()


async def test_sigkill_mid_fold_then_restart_equals_a_run_without_the_kill(settings, redis):
    workspaces = ["ws_k1", "ws_k2", "ws_k3"]
    expected_unique = 0
    for i, ws in enumerate(workspaces):
        events = make_events(50_000 // len(workspaces) + (2 if i == 0 else 0), seed=10 + i, dup_every=97)
        expected_unique += len({e.message_id for e in events})
        await append_events(EventLog(redis, settings), ws, events)
    heads = await log_heads(redis, settings.key_prefix, settings.partitions)

    proc = fold_process(settings, batch_entries=5)
    try:
        # kill it once it has committed part of the log but not all of it
        for _ in range(6000):
            ck = await checkpoints(redis, settings.key_prefix, settings.partitions)
            if sum(1 for p in heads if ck.get(p)) >= 1:
                break
            await asyncio.sleep(0.005)  # sleep-ok: polling the checkpoint, the condition we wait for
        else:
            pytest.fail("the applier never committed")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    ck = await checkpoints(redis, settings.key_prefix, settings.partitions)
    assert any(ck.get(p) != heads[p] for p in heads), "the kill came after the fold had finished"

    proc = fold_process(settings, batch_entries=5)
    try:
        await wait_until_folded(redis, settings.key_prefix, settings.partitions, timeout=120, targets=heads)
    finally:
        proc.terminate()
        proc.wait(timeout=20)

    total = 0
    for p in heads:
        live, rebuilt, _ = await rebuild_and_compare(redis, settings.key_prefix, p)
        assert live == rebuilt, f"partition {p}: crash-and-restart differs from a clean replay"
    for ws in workspaces:
        ks = ks_of(settings, ws)
        n = await redis.zcard(event_keys.index_all(ks, ws))
        total += n
        counted = 0
        for day in await redis.zrange(counter_keys.counter_days(ks, ws), 0, -1):
            counted += sum(
                int(v) for v in (await redis.hgetall(counter_keys.counter_day(ks, ws, day.decode()))).values()
            )
        assert counted == n
    assert total == expected_unique
