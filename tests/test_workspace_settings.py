"""Workspace settings: timezone, custom event names, profile field labels — by admin endpoint and by CLI."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

from api.cli import main as cli_main
from api.workspace_settings import read_workspace_settings
from ingest.workspaces import WorkspaceRegistry


async def admin_key(settings, redis, workspace) -> str:
    return await WorkspaceRegistry(redis, settings).create_key(workspace.id, ["admin"])


async def test_default_settings_are_utc_and_empty(client, settings, redis, workspace):
    key = await admin_key(settings, redis, workspace)
    r = await client.get("/v1/admin/settings", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    assert r.json()["settings"] == {
        "timezone": "UTC",
        "custom_events": {},
        "profile_field_labels": {},
        "retention_days": None,
    }


async def test_patch_sets_timezone_custom_events_and_labels(client, settings, redis, workspace):
    key = await admin_key(settings, redis, workspace)
    body = {
        "timezone": "America/New_York",
        "custom_events": {"3": {"event": "Demo Booked", "configured_name": "Demo"}},
        "profile_field_labels": {"5": "Plan", "16": "Seats"},
    }
    r = await client.patch("/v1/admin/settings", json=body, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    assert r.json()["settings"] == {
        "timezone": "America/New_York",
        "custom_events": {"custom_event_3": {"event": "Demo Booked", "configured_name": "Demo"}},
        "profile_field_labels": {"profile_field_5": "Plan", "profile_field_16": "Seats"},
        "retention_days": None,
    }
    stored = await read_workspace_settings(redis, settings.key_prefix, workspace.id)
    assert stored.timezone == "America/New_York"
    assert stored.custom_event_slot_of("Demo Booked") == 3


async def test_null_clears_a_slot(client, settings, redis, workspace):
    key = await admin_key(settings, redis, workspace)
    h = {"Authorization": f"Bearer {key}"}
    await client.patch(
        "/v1/admin/settings", json={"profile_field_labels": {"5": "Plan", "6": "Tier"}}, headers=h
    )
    r = await client.patch("/v1/admin/settings", json={"profile_field_labels": {"6": None}}, headers=h)
    assert r.json()["settings"]["profile_field_labels"] == {"profile_field_5": "Plan"}


async def test_invalid_settings_are_400_naming_the_field(client, settings, redis, workspace):
    h = {"Authorization": f"Bearer {await admin_key(settings, redis, workspace)}"}
    for body, field in [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"custom_events": {"51": {"event": "x", "configured_name": "x"}}}, "custom_events"),
        ({"profile_field_labels": {"0": "x"}}, "profile_field_labels"),
        ({"profile_field_labels": {"3": " "}}, "profile_field_labels"),
        ({"retention_days": -3}, "retention_days"),
        ({"colour": "red"}, "body"),
    ]:
        r = await client.patch("/v1/admin/settings", json=body, headers=h)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["details"]["field"] == field


async def test_admin_endpoint_needs_the_admin_scope(client, workspace):
    r = await client.get("/v1/admin/settings", headers={"Authorization": f"Bearer {workspace.read_key}"})
    assert r.status_code == 403
    r = await client.get("/v1/admin/settings")
    assert r.status_code == 401


async def test_cli_sets_and_shows_settings(settings, redis, workspace):
    ws_name = (await WorkspaceRegistry(redis, settings).get_workspace(workspace.id)).name
    common = ["--redis-url", settings.redis_url, "--key-prefix", settings.key_prefix]
    common += ["--partitions", str(settings.partitions)]
    out = io.StringIO()
    args = ["workspace", "settings", ws_name, *common, "--timezone", "Europe/Berlin"]
    args += ["--custom-event", "1=Demo Booked=Demo", "--profile-field", "26=Renewal date"]
    with redirect_stdout(out):
        assert await _run_cli(args) == 0
    shown = json.loads(out.getvalue())
    assert shown["timezone"] == "Europe/Berlin"
    assert shown["custom_events"]["custom_event_1"] == {"event": "Demo Booked", "configured_name": "Demo"}
    assert shown["profile_field_labels"] == {"profile_field_26": "Renewal date"}


async def _run_cli(args: list[str]) -> int:
    import asyncio

    return await asyncio.to_thread(cli_main, args)
