"""Export: a workspace's events from the archive and the live log, as Parquet (CLI) or JSON lines (CLI and
`GET /v1/export`), equal the events the API lists — resends left out, contact ids included."""

from __future__ import annotations

import asyncio
import json
import os
import time

import msgspec
import polars as pl
import pytest

from api.cli import main as cli_main
from ingest import keys as log_keys
from ingest.archive import Archive
from ingest.log import entry_fields
from projections.fold.archiver import archive_partition
from projections.fold.fold import fold_entries
from projections.keyspace import Keyspace
from projections.located import DAY_MS

from .conftest import make_settings, new_workspace
from .factories import make_events
from .test_identity_scenario import churn


@pytest.fixture
def settings(redis_url, tmp_path):
    return make_settings(redis_url, archive_dir=str(tmp_path / "archive"))


async def mixed_workspace(redis, settings):
    """12 days of traffic with resends and identity calls, the first 7 days archived; another workspace in the
    same partition whose events must not leak into the export."""
    ws = await new_workspace(settings, redis)
    other = await new_workspace(settings, redis)
    ks = Keyspace(settings.key_prefix, log_keys.partition_of(ws.id, settings.partitions))
    stream = log_keys.log(settings.key_prefix, ks.partition)
    now = time.time_ns() // 1_000_000
    for d in range(12, 0, -1):
        t = now - d * DAY_MS
        events = [
            msgspec.structs.replace(e, timestamp=t + i)
            for i, e in enumerate(make_events(8, seed=d, start_ms=t, dup_every=3))
        ]
        await redis.xadd(stream, entry_fields(ws.id, events), id=f"{t}-0")
        await redis.xadd(stream, entry_fields(ws.id, churn(1, seed=d)[0]), id=f"{t}-1")
        if log_keys.partition_of(other.id, settings.partitions) == ks.partition:
            await redis.xadd(stream, entry_fields(other.id, make_events(3, seed=99)), id=f"{t}-2")
    await fold_entries(redis, ks, await redis.xrange(stream), fence=None, ack_group=None)
    archive = Archive(settings.archive_root)
    done = await archive_partition(redis, settings.key_prefix, ks.partition, archive, after_days=4)
    assert done.days == 7
    return ws


async def listed_by_the_api(client, ws) -> dict[str, str | None]:
    """event id → contact id of every event the Events API lists."""
    out: dict[str, str | None] = {}
    page = 1
    while True:
        r = await client.get(
            "/v1/events",
            params={"limit": 100, "page": page},
            headers={"Authorization": f"Bearer {ws.read_key}"},
        )
        events = r.json()["events"]
        out.update({e["_id"]: e["internal_contact_id"] for e in events})
        if len(events) < 100:
            return out
        page += 1


async def test_an_export_of_archive_and_live_log_equals_what_the_api_lists(
    client_without_fold, redis, settings, tmp_path
):
    ws = await mixed_workspace(redis, settings)
    api = await listed_by_the_api(client_without_fold, ws)
    assert len(api) > 50
    base = [
        "--redis-url",
        settings.redis_url,
        "--key-prefix",
        settings.key_prefix,
        "--partitions",
        str(settings.partitions),
    ]
    base += ["--workspace", ws.id]
    os.environ["STREAMFOLD_ARCHIVE_DIR"] = settings.archive_dir
    try:  # the CLI runs its own event loop: in a thread of its own
        parquet = ["export", *base, "--out", str(tmp_path / "e.parquet")]
        assert await asyncio.to_thread(cli_main, parquet) == 0
        jsonl = ["export", *base, "--format", "jsonl", "--out", str(tmp_path / "e.jsonl")]
        assert await asyncio.to_thread(cli_main, jsonl) == 0
    finally:
        del os.environ["STREAMFOLD_ARCHIVE_DIR"]
    frame = pl.read_parquet(tmp_path / "e.parquet").filter(pl.col("type").is_in(["track", "page", "screen"]))
    assert dict(zip(frame["id"], frame["contact_id"], strict=True)) == api
    assert set(pl.read_parquet(tmp_path / "e.parquet")["workspace"]) == {ws.id}
    lines = [json.loads(x) for x in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert {x["id"]: x["contact_id"] for x in lines if x["type"] in ("track", "page", "screen")} == api
    assert all(isinstance(x["properties"], dict) and x["timestamp"].endswith("Z") for x in lines)
    r = await client_without_fold.get("/v1/export", headers={"Authorization": f"Bearer {ws.read_key}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    streamed = [json.loads(x) for x in r.text.splitlines()]
    assert [x["id"] for x in streamed] == [x["id"] for x in lines]


async def test_export_bounds_are_event_times(client_without_fold, redis, settings):
    ws = await mixed_workspace(redis, settings)
    now = time.time_ns() // 1_000_000
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((now - 6 * DAY_MS) / 1000))
    r = await client_without_fold.get(
        "/v1/export", params={"since": since}, headers={"Authorization": f"Bearer {ws.read_key}"}
    )
    rows = [json.loads(x) for x in r.text.splitlines()]
    assert rows and all(x["timestamp"] >= since.replace("Z", ".000Z") for x in rows)
    assert (
        await client_without_fold.get(
            "/v1/export", params={"since": "soon"}, headers={"Authorization": f"Bearer {ws.read_key}"}
        )
    ).status_code == 400
