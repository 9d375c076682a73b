"""The test cluster itself: it forms, redis-py's cluster client works against it, a killed master's replica
takes over, a reshard keeps keys readable, and no node outlives the test run that started it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import CrossSlotTransactionError

from .cluster import SLOTS, ValkeyCluster, key_in_slot, process_gone

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parent.parent


@pytest_asyncio.fixture(loop_scope="session")
async def cluster_client(valkey_cluster: ValkeyCluster) -> AsyncIterator[RedisCluster]:
    c = RedisCluster.from_url(valkey_cluster.url, decode_responses=True)
    try:
        yield c
    finally:
        await c.aclose()


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def test_three_masters_serve_every_slot_and_every_node_says_ok(valkey_cluster):
    masters = await valkey_cluster.masters_now()
    assert len(masters) == 3
    served = [(await m.myself()).slots for m in masters]
    assert set().union(*served) == set(range(SLOTS))
    for node in valkey_cluster.nodes:
        info = await node.info("cluster")
        assert info["cluster_state"] == "ok" and info["cluster_known_nodes"] == "3"


async def test_the_cluster_client_sets_and_gets_keys_on_every_master(valkey_cluster, cluster_client):
    masters = await valkey_cluster.masters_now()
    prefix = unique("kv")
    keys = [key_in_slot(min((await m.myself()).slots), prefix=prefix) for m in masters]
    for key in keys:
        await cluster_client.set(key, f"value of {key}")
    assert [await cluster_client.get(k) for k in keys] == [f"value of {k}" for k in keys]
    assert {(await valkey_cluster.owner(k)).port for k in keys} == {m.port for m in masters}


async def test_a_transaction_on_one_slot_commits(cluster_client):
    tag = "{" + unique("tx") + "}"
    async with cluster_client.pipeline(transaction=True) as pipe:
        pipe.set(f"{tag}:a", "1")
        pipe.incrby(f"{tag}:b", 5)
        pipe.get(f"{tag}:a")
        assert await pipe.execute() == [True, 5, "1"]


async def test_a_transaction_across_slots_is_refused(cluster_client):
    first, second = key_in_slot(1, prefix=unique("x")), key_in_slot(9000, prefix=unique("y"))
    async with cluster_client.pipeline(transaction=True) as pipe:
        pipe.set(first, "1")
        pipe.set(second, "2")
        with pytest.raises(CrossSlotTransactionError):
            await pipe.execute()
    assert await cluster_client.exists(first, second) == 0


async def test_a_resharded_slot_moves_with_its_key_still_readable(valkey_cluster, cluster_client):
    source, target = (await valkey_cluster.masters_now())[:2]
    slot = min((await source.myself()).slots)
    key = key_in_slot(slot, prefix=unique("rs"))
    await cluster_client.set(key, "moved along")

    assert await valkey_cluster.reshard(1, source, target) == [slot]

    assert await valkey_cluster.owner(key) is target
    assert await target.call("CLUSTER", "COUNTKEYSINSLOT", slot) >= 1
    # the client's slot map is stale: it follows MOVED
    assert await cluster_client.get(key) == "moved along"


async def test_killing_a_master_promotes_its_replica_with_the_data(failover_cluster):
    key = "{" + unique("fo") + "}"
    client = RedisCluster.from_url(failover_cluster.url, decode_responses=True)
    try:
        await client.set(key, "kept")
        # the write reached the replica before the master dies
        assert await client.execute_command("WAIT", 1, 5000, target_nodes=client.get_node_from_key(key)) == 1
    finally:
        await client.aclose()
    master = await failover_cluster.owner(key)
    (replica,) = await failover_cluster.replicas_of(master)

    killed = await failover_cluster.kill_master(key)
    promoted = await failover_cluster.wait_for_promotion(key)

    assert killed is master and not killed.alive
    assert promoted is replica
    client = RedisCluster.from_url(promoted.url, decode_responses=True)
    try:
        assert await client.get(key) == "kept"
    finally:
        await client.aclose()


async def test_heal_brings_a_killed_master_back_as_the_replica_of_its_successor(failover_cluster):
    key = "{" + unique("heal") + "}"
    killed = await failover_cluster.kill_master(key)
    promoted = await failover_cluster.wait_for_promotion(key)

    await failover_cluster.heal()

    assert killed.alive
    assert (await killed.myself()).master_id == promoted.id
    assert (await killed.info("replication"))["master_link_status"] == "up"


async def test_stop_ends_every_node_and_removes_their_directories():
    cluster = await ValkeyCluster(masters=3).start()
    pids, data_dir = cluster.pids(), cluster.dir

    cluster.stop()

    assert len(pids) == 3 and all(process_gone(p) for p in pids)
    assert not data_dir.exists()


def test_no_node_outlives_a_test_run_killed_with_sigkill(tmp_path):
    run = subprocess.Popen(
        [sys.executable, "-m", "tests.cluster"],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # the killed run cannot remove its nodes' directories
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert run.stdout is not None
        pids = [int(p) for p in run.stdout.readline().split()]
        assert len(pids) == 3 and not any(process_gone(p) for p in pids)
    finally:
        run.kill()
        run.wait()
    deadline = time.monotonic() + 10
    while not all(process_gone(p) for p in pids):
        assert time.monotonic() < deadline, f"orphan nodes: {[p for p in pids if not process_gone(p)]}"
        time.sleep(0.05)  # sleep-ok: polling /proc until the kernel has killed the orphaned nodes
