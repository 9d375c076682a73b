"""`GET /v1/status`: fold lag and dead letters per partition, for any key of the workspace but a write key."""

from __future__ import annotations

import httpx

from ingest import keys as log_keys
from ingest.log import EventLog
from projections.fold.applier import Applier
from projections.fold.progress import wait_until_folded
from projections.located import stream_id

from .conftest import WorkspaceKeys
from .factories import append_events, make_events


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def fold_until_caught_up(redis, settings) -> None:
    applier = Applier(redis, settings)
    await applier.start()
    try:
        await wait_until_folded(redis, settings.key_prefix, settings.partitions, timeout=60)
    finally:
        await applier.stop()


async def partition_status(client: httpx.AsyncClient, ws: WorkspaceKeys) -> dict:
    r = await client.get("/v1/status", headers=auth(ws.read_key))
    assert r.status_code == 200, r.text
    body = r.json()
    return body["partitions"][body["workspace_partition"]]


def ms(entry_id: str) -> int:
    return stream_id(entry_id)[0]


async def test_status_needs_a_key_that_is_not_a_write_key(client_without_fold, workspace):
    assert (await client_without_fold.get("/v1/status")).status_code == 401
    assert (await client_without_fold.get("/v1/status", headers=auth("rk_nope"))).status_code == 401
    r = await client_without_fold.get("/v1/status", headers=auth(workspace.write_key))
    assert r.status_code == 403 and "events:read" in r.json()["error"]
    assert (await client_without_fold.get("/v1/status", headers=auth(workspace.read_key))).status_code == 200


async def test_every_partition_is_listed_with_the_callers_marked(client_without_fold, workspace, settings):
    body = (await client_without_fold.get("/v1/status", headers=auth(workspace.read_key))).json()
    assert [p["partition"] for p in body["partitions"]] == list(range(settings.partitions))
    assert body["workspace_partition"] == log_keys.partition_of(workspace.id, settings.partitions)
    assert body["lag_entries"] == 0 and body["dead_letters"] == 0
    assert all(p["log_head"] is None and p["lag_seconds"] == 0 for p in body["partitions"])


async def test_lag_rises_while_no_applier_runs_and_returns_to_zero_after_folding(
    client_without_fold, workspace, settings, redis
):
    log = EventLog(redis, settings)
    stream = log_keys.log(settings.key_prefix, log_keys.partition_of(workspace.id, settings.partitions))

    await append_events(log, workspace.id, make_events(50, seed=1), per_entry=10)
    entries = await redis.xrange(stream)
    never_folded = await partition_status(client_without_fold, workspace)
    assert never_folded["checkpoint"] is None
    assert never_folded["lag_entries"] == 5
    assert never_folded["log_head"] == entries[-1][0].decode()
    assert never_folded["lag_seconds"] == (ms(entries[-1][0].decode()) - ms(entries[0][0].decode())) / 1000

    await fold_until_caught_up(redis, settings)
    caught_up = await partition_status(client_without_fold, workspace)
    assert caught_up["checkpoint"] == caught_up["log_head"] == entries[-1][0].decode()
    assert caught_up["lag_entries"] == 0 and caught_up["lag_seconds"] == 0

    await append_events(log, workspace.id, make_events(30, seed=2), per_entry=10)
    behind = await partition_status(client_without_fold, workspace)
    head = (await redis.xrevrange(stream, count=1))[0][0].decode()
    assert behind["lag_entries"] == 3
    assert behind["log_head"] == head and behind["checkpoint"] == caught_up["checkpoint"]
    assert behind["lag_seconds"] == (ms(head) - ms(caught_up["checkpoint"])) / 1000

    await fold_until_caught_up(redis, settings)
    again = await partition_status(client_without_fold, workspace)
    assert again["lag_entries"] == 0 and again["lag_seconds"] == 0 and again["checkpoint"] == head


async def test_a_poison_entry_shows_as_a_dead_letter_of_its_partition(
    client, workspace, settings, redis, folded
):
    p = log_keys.partition_of(workspace.id, settings.partitions)
    await append_events(EventLog(redis, settings), workspace.id, make_events(10, seed=3), per_entry=10)
    await redis.xadd(
        log_keys.log(settings.key_prefix, p), {b"w": workspace.id, b"v": b"1", b"d": b"\xc1garbage"}
    )
    await folded()
    body = (await client.get("/v1/status", headers=auth(workspace.read_key))).json()
    assert body["dead_letters"] == 1 and body["lag_entries"] == 0
    assert [x["dead_letters"] for x in body["partitions"]] == [
        int(i == p) for i in range(settings.partitions)
    ]


async def test_the_openapi_schema_declares_the_status_response(client_without_fold):
    schema = (await client_without_fold.get("/openapi.json")).json()
    ok = schema["paths"]["/v1/status"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/StatusResponse"}
    partition = schema["components"]["schemas"]["PartitionStatus"]["properties"]
    assert {"partition", "log_head", "checkpoint", "lag_entries", "lag_seconds", "dead_letters"} <= set(
        partition
    )
