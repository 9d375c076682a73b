"""Workspace settings: timezone, custom event names (`custom_event_1`–`_50`) and custom profile field labels
(`profile_field_1`–`_30`) of the attribution API, and the retention of events, changed with an `admin` key or the
CLI.

The attribution settings are read at query time only: no projection depends on them, so changing them needs no
log event. The retention changes what the fold keeps, so a change of it is appended to the log
(`EventLog.append_settings`) and folded in order: a rebuild applies it at the same point.
"""

from __future__ import annotations

import json

import msgspec
from redis.asyncio import Redis

from ingest import keys as ingest_keys
from ingest.errors import InvalidRequest
from ingest.log import EventLog
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
    retention_days: int | None = None  # None: keep every event

    def custom_event_slot_of(self, event: str) -> int | None:
        for slot, ce in sorted(self.custom_events.items()):
            if ce.event == event:
                return slot
        return None


class SettingsChange(msgspec.Struct, forbid_unknown_fields=True):
    """A partial update: `null` in `custom_events` / `profile_field_labels` clears that slot; `retention_days`
    0 or `null` keeps every event again."""

    timezone: str | None = None
    custom_events: dict[int, CustomEventName | None] = {}
    profile_field_labels: dict[int, str | None] = {}
    retention_days: int | None | msgspec.UnsetType = msgspec.UNSET

    @property
    def is_empty(self) -> bool:
        return (
            self.timezone is None
            and not self.custom_events
            and not self.profile_field_labels
            and self.retention_days is msgspec.UNSET
        )


def _check_slot(kind: str, slot: int, top: int) -> None:
    if not 1 <= slot <= top:
        raise InvalidRequest(f"{kind} slot {slot} is outside 1–{top}", details={"field": kind})


def validate_settings_change(change: SettingsChange) -> None:
    if change.timezone is not None:
        validate_timezone(change.timezone)
    days = change.retention_days
    if days is not msgspec.UNSET and days is not None and not 0 <= days <= 36_500:
        raise InvalidRequest(
            "retention_days must be a number of days (1–36500), or 0 / null to keep every event",
            details={"field": "retention_days"},
        )
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
    pipe.hmget(ingest_keys.workspace(prefix, workspace_id), ["timezone", "retention_days"])
    pipe.hgetall(keys.workspace_settings(prefix, workspace_id))
    (tz, retention), raw = await pipe.execute()
    out = WorkspaceSettings(
        timezone=tz.decode() if tz else "UTC", retention_days=int(retention) if retention else None
    )
    for f, v in sorted(raw.items()):
        kind, _, slot = f.decode().partition(":")
        if kind == "custom_event":
            d = json.loads(v)
            out.custom_events[int(slot)] = CustomEventName(d["event"], d["configured_name"])
        elif kind == "profile_field":
            out.profile_field_labels[int(slot)] = v.decode()
    return out


async def change_workspace_settings(
    registry: WorkspaceRegistry, log: EventLog, workspace_id: str, change: SettingsChange
) -> WorkspaceSettings:
    """Apply a partial settings change and return the settings after it: a retention change first goes to the
    log (what the fold follows), then everything shown here changes atomically (MULTI/EXEC)."""
    validate_settings_change(change)
    await registry.get_workspace(workspace_id)
    prefix, redis = registry.prefix, registry.redis
    retention = change.retention_days
    if retention is not msgspec.UNSET:
        await log.append_settings(workspace_id, retention_days=retention or None)
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
    if retention is not msgspec.UNSET:
        if retention:
            pipe.hset(ingest_keys.workspace(prefix, workspace_id), "retention_days", str(retention))
        else:
            pipe.hdel(ingest_keys.workspace(prefix, workspace_id), "retention_days")
    if dels:
        pipe.hdel(key, *dels)
    if sets:
        pipe.hset(key, mapping=sets)
    await pipe.execute()
    registry.forget_cached()
    return await read_workspace_settings(redis, prefix, workspace_id)
