"""Attribution pages over many rows and across DST changes: cursor walks and workspace-timezone date ranges."""

from __future__ import annotations

import pytest

from api.workspace_settings import SettingsChange, change_workspace_settings
from ingest import keys as ingest_keys
from ingest.log import EventLog
from ingest.workspaces import WorkspaceRegistry
from projections.keyspace import Keyspace
from projections.touchpoints import AttributionQuery, read_attribution_rows

from .attribution_helpers import load, ms, track
from .conftest import make_settings

PATH = "/public-api/v1/events"
N = 20_000


@pytest.fixture
def settings(redis_url):
    return make_settings(redis_url, attribution_rate_limit_per_minute=0)


@pytest.fixture
async def key(settings, redis, workspace):
    return await WorkspaceRegistry(redis, settings).create_key(workspace.id, ["attribution:read"])


async def _many(settings, redis, workspace, folded) -> list[str]:
    t = ms("2026-03-02 00:00:00")
    evs = [track("purchase", t + (i // 3) * 1000, user=f"u{i % 50}") for i in range(N)]  # ties: 3 per ms
    await load(EventLog(redis, settings), workspace.id, evs, per_entry=2000)
    await folded(timeout=120)
    return sorted(e.id for e in evs)


async def test_cursor_walks_over_20k_rows_with_limit_4000_and_7(
    app, client, key, settings, redis, workspace, folded
):
    await _many(settings, redis, workspace, folded)
    h = {"Authorization": f"Bearer {key}"}
    for limit in (4000, 7):
        params = {"start_date": "2026-03-01 00:00:00", "end_date": "2026-03-31 00:00:00", "limit": limit}
        params["event_names[]"] = "purchase"
        seen: list[tuple[str, str]] = []
        body = (await client.get(PATH, params=params, headers=h)).json()
        pages = 1
        seen += [(r["event_time_utc"], r["id"]) for r in body["data"]]
        while body["next_cursor"]:
            body = (
                await client.get(PATH, params={**params, "cursor": body["next_cursor"]}, headers=h)
            ).json()
            assert len(body["data"]) <= limit
            seen += [(r["event_time_utc"], r["id"]) for r in body["data"]]
            pages += 1
        assert len(seen) == len(set(seen)) == N
        assert seen == sorted(seen)
        assert pages == -(-N // limit)


async def test_keyset_walk_over_20k_rows_with_limit_1_forward_and_back(
    app, settings, redis, workspace, folded
):
    ids = await _many(settings, redis, workspace, folded)
    ks = Keyspace(settings.key_prefix, ingest_keys.partition_of(workspace.id, settings.partitions))
    q = AttributionQuery(ms("2026-03-01 00:00:00"), ms("2026-03-31 00:00:00"), ("purchase",))
    forward = []
    after = None
    while True:
        (*rows,) = await read_attribution_rows(redis, ks, workspace.id, q, limit=1, after=after)
        if not rows:
            break
        forward.append(rows[0].conversion.id)
        after = rows[0].key
    assert sorted(forward) == ids and len(set(forward)) == N
    back = []
    before = (after[0] + "~", 0)  # past the last row
    for _ in range(50):  # the last 50 rows, walking backwards one at a time
        (row,) = await read_attribution_rows(redis, ks, workspace.id, q, limit=1, before=before)
        back.append(row.conversion.id)
        before = row.key
    assert back == forward[::-1][:50]


async def _tz_workspace(settings, redis, workspace, tz: str) -> None:
    reg = WorkspaceRegistry(redis, settings)
    await change_workspace_settings(reg, EventLog(redis, settings), workspace.id, SettingsChange(timezone=tz))


async def _times(client, key, start: str, end: str) -> list[str]:
    r = await client.get(
        PATH, params={"start_date": start, "end_date": end}, headers={"Authorization": f"Bearer {key}"}
    )
    assert r.status_code == 200, r.text
    return [row["event_time_utc"] for row in r.json()["data"]]


async def test_dates_are_read_in_the_workspace_zone_across_spring_forward(
    client, key, settings, redis, workspace, folded
):
    await _tz_workspace(settings, redis, workspace, "America/New_York")
    utc = [
        "2026-03-08 05:59:59",
        "2026-03-08 06:30:00",
        "2026-03-08 06:59:59",
        "2026-03-08 07:00:00",
        "2026-03-08 07:30:00",
    ]
    await load(EventLog(redis, settings), workspace.id, [track("purchase", ms(t), user="u") for t in utc])
    await folded()
    # 01:00 EST = 06:00 UTC; 03:00 EDT (the hour after 01:59:59 EST) = 07:00 UTC
    assert await _times(client, key, "2026-03-08 01:00:00", "2026-03-08 03:00:00") == utc[1:4]
    # 02:30 does not exist that night: read with the offset before the change (EST) = 07:30 UTC
    assert await _times(client, key, "2026-03-08 01:59:59", "2026-03-08 02:30:00") == utc[2:]


async def test_dates_are_read_in_the_workspace_zone_across_fall_back(
    client, key, settings, redis, workspace, folded
):
    await _tz_workspace(settings, redis, workspace, "America/New_York")
    utc = ["2026-11-01 05:00:00", "2026-11-01 05:30:00", "2026-11-01 06:30:00", "2026-11-01 07:00:01"]
    await load(EventLog(redis, settings), workspace.id, [track("purchase", ms(t), user="u") for t in utc])
    await folded()
    # 01:30 happens twice; it means the first one (EDT, 05:30 UTC). 02:00 EST = 07:00 UTC.
    assert await _times(client, key, "2026-11-01 01:30:00", "2026-11-01 02:00:00") == utc[1:3]


async def test_the_same_range_in_utc_selects_other_rows(client, key, settings, redis, workspace, folded):
    utc = ["2026-03-08 05:59:59", "2026-03-08 06:30:00"]
    await load(EventLog(redis, settings), workspace.id, [track("purchase", ms(t), user="u") for t in utc])
    await folded()
    assert await _times(client, key, "2026-03-08 01:00:00", "2026-03-08 03:00:00") == []
    await _tz_workspace(settings, redis, workspace, "Asia/Kolkata")  # +05:30
    assert await _times(client, key, "2026-03-08 11:30:00", "2026-03-08 12:00:00") == utc[1:]
