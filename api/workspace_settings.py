"""Workspace settings of the attribution API: timezone, custom event names (`custom_event_1`–`_50`) and custom
profile field labels (`profile_field_1`–`_30`), changed with an `admin` key or the CLI.

Read at query time only: no projection depends on them, so changing them needs no log event and a rebuild stays
deterministic.
"""

from __future__ import annotations

import json

import msgspec
from redis.asyncio import Redis

from ingest import keys as ingest_keys
from ingest.errors import InvalidRequest
from ingest.workspaces import WorkspaceRegistry, validate_timezone

from . import keys

CUSTOM_EVENT_SLOTS = 50
PROFILE_FIELD_SLOTS = 30


class CustomEventName(msgspec.Struct, frozen=True):
    """What `custom_event_N` stands for: the tracked event name, and the name shown as `configured_name`."""

    event: str
    configured_name: str


class WorkspaceSettings(msgspec.Struct):
    timezone: str = "UTC"
    custom_events: dict[int, CustomEventName] = {}  # slot 1–50
    profile_field_labels: dict[int, str] = {}  # slot 1–30

    def custom_event_slot_of(self, event: str) -> int | None:
        for slot, ce in sorted(self.custom_events.items()):
            if ce.event == event:
                return slot
        return None


class SettingsChange(msgspec.Struct, forbid_unknown_fields=True):
    """A partial update: `null` in `custom_events` / `profile_field_labels` clears that slot."""

    timezone: str | None = None
    custom_events: dict[int, CustomEventName | None] = {}
    profile_field_labels: dict[int, str | None] = {}


def _check_slot(kind: str, slot: int, top: int) -> None:
    if not 1 <= slot <= top:
        raise InvalidRequest(f"{kind} slot {slot} is outside 1–{top}", details={"field": kind})


def validate_settings_change(change: SettingsChange) -> None:
    if change.timezone is not None:
        validate_timezone(change.timezone)
    for slot, ce in change.custom_events.items():
        _check_slot("custom_events", slot, CUSTOM_EVENT_SLOTS)
        if ce is not None and (not ce.event.strip() or not ce.configured_name.strip()):
            raise InvalidRequest(
                f"custom_event_{slot}: event and configured_name must not be empty",
                details={"field": "custom_events"},
            )
    for slot, label in change.profile_field_labels.items():
        _check_slot("profile_field_labels", slot, PROFILE_FIELD_SLOTS)
        if label is not None and not label.strip():
            raise InvalidRequest(
                f"profile_field_{slot}: a label must not be empty", details={"field": "profile_field_labels"}
            )


async def read_workspace_settings(redis: Redis, prefix: str, workspace_id: str) -> WorkspaceSettings:
    pipe = redis.pipeline(transaction=False)
    pipe.hget(ingest_keys.workspace(prefix, workspace_id), "timezone")
    pipe.hgetall(keys.workspace_settings(prefix, workspace_id))
    tz, raw = await pipe.execute()
    out = WorkspaceSettings(timezone=tz.decode() if tz else "UTC")
    for f, v in sorted(raw.items()):
        kind, _, slot = f.decode().partition(":")
        if kind == "custom_event":
            d = json.loads(v)
            out.custom_events[int(slot)] = CustomEventName(d["event"], d["configured_name"])
        elif kind == "profile_field":
            out.profile_field_labels[int(slot)] = v.decode()
    return out


async def change_workspace_settings(
    registry: WorkspaceRegistry, workspace_id: str, change: SettingsChange
) -> WorkspaceSettings:
    """Apply a partial settings change atomically (MULTI/EXEC) and return the settings after it."""
    validate_settings_change(change)
    await registry.get_workspace(workspace_id)
    prefix, redis = registry.prefix, registry.redis
    key = keys.workspace_settings(prefix, workspace_id)
    sets: dict[str, str] = {}
    dels: list[str] = []
    for slot, ce in sorted(change.custom_events.items()):
        if ce is None:
            dels.append(f"custom_event:{slot}")
        else:
            sets[f"custom_event:{slot}"] = json.dumps(
                {"event": ce.event, "configured_name": ce.configured_name}
            )
    for slot, label in sorted(change.profile_field_labels.items()):
        if label is None:
            dels.append(f"profile_field:{slot}")
        else:
            sets[f"profile_field:{slot}"] = label
    pipe = redis.pipeline(transaction=True)
    if change.timezone is not None:
        pipe.hset(ingest_keys.workspace(prefix, workspace_id), "timezone", change.timezone)
    if dels:
        pipe.hdel(key, *dels)
    if sets:
        pipe.hset(key, mapping=sets)
    await pipe.execute()
    registry.forget_cached()
    return await read_workspace_settings(redis, prefix, workspace_id)
