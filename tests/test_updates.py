"""`Updates` against a real server: what a batch queues is what the keys hold, however the commands are split."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from ingest.settings import Settings
from projections import updates
from projections.updates import MAX_COMMAND_ARGS, Updates


async def test_queued_updates_land_as_written(
    redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(updates, "MAX_SCRIPT_ARGS", 1000)  # several script calls in one transaction
    p = settings.key_prefix
    u = Updates()
    scores = {f"m{i:05d}": 1_780_000_000_000 + i for i in range(MAX_COMMAND_ARGS + 7)}  # split ZADD
    scores["frac"] = 2.5
    u.zadd[f"{p}:t:z"].update(scores)
    u.hset[f"{p}:t:h"].update({f"f{i}": f"v{i}" for i in range(1500)})
    u.hincr[f"{p}:t:c"].update({"b": 3, "zero": 0, "a": -2})
    u.sadd[f"{p}:t:s"].update({"y", "x"})
    u.zrem[f"{p}:t:none"]  # an empty update sends nothing
    async with redis.pipeline(transaction=True) as pipe:
        u.queue(pipe)
        await pipe.execute()
    stored = await redis.zrange(f"{p}:t:z", 0, -1, withscores=True)
    assert stored == sorted(
        ((m.encode(), float(s)) for m, s in scores.items()), key=lambda ms: (ms[1], ms[0])
    )
    assert await redis.hlen(f"{p}:t:h") == 1500
    assert await redis.hget(f"{p}:t:h", "f1499") == b"v1499"
    assert await redis.hgetall(f"{p}:t:c") == {b"a": b"-2", b"b": b"3"}
    assert await redis.smembers(f"{p}:t:s") == {b"x", b"y"}

    more = Updates()
    more.hincr[f"{p}:t:c"]["a"] += 2
    more.hdel[f"{p}:t:c"].add("b")
    async with redis.pipeline(transaction=True) as pipe:
        more.queue(pipe)
        await pipe.execute()
    assert await redis.hgetall(f"{p}:t:c") == {b"a": b"0"}


def test_commands_are_sorted_by_kind_then_key() -> None:
    u = Updates()
    u.sadd["k2"].add("b")
    u.zadd["k1"]["m"] = 1
    u.hincr["k0"]["f"] += 1
    u.hset["k3"]["f"] = "v"
    assert [c[:2] for c in u.commands()] == [
        ["HSET", "k3"],
        ["ZADD", "k1"],
        ["SADD", "k2"],
        ["HINCRBY", "k0"],
    ]


async def test_newest_and_oldest_scores_only_move_outward(redis: Redis, settings: Settings) -> None:
    p = settings.key_prefix
    for batch in ({"a": 10, "b": 5}, {"a": 7, "b": 9}):
        u = Updates()
        u.zadd_gt[f"{p}:t:new"].update(batch)
        u.zadd_lt[f"{p}:t:old"].update(batch)
        async with redis.pipeline(transaction=True) as pipe:
            u.queue(pipe)
            await pipe.execute()
    assert await redis.zrange(f"{p}:t:new", 0, -1, withscores=True) == [(b"b", 9.0), (b"a", 10.0)]
    assert await redis.zrange(f"{p}:t:old", 0, -1, withscores=True) == [(b"b", 5.0), (b"a", 7.0)]
