"""Helpers for the attribution tests: build events and load them straight into the log."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from ingest.ids import ulid
from ingest.log import EventLog
from ingest.schema import Event

_seq = itertools.count()


def ms(text: str) -> int:
    """'YYYY-MM-DD HH:MM:SS' in UTC → epoch ms."""
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp() * 1000)


def event(
    kind: str,
    name: str,
    ts: int,
    *,
    anon: str | None = None,
    user: str | None = None,
    url: str | None = None,
    referrer: str | None = None,
    properties: dict | None = None,
    traits: dict | None = None,
    group: str | None = None,
) -> Event:
    eid = f"evt_{ulid()}"
    return Event(
        id=eid,
        kind=kind,
        event=name,
        message_id=f"m-{next(_seq)}-{eid}",
        timestamp=ts,
        received_at=ts,
        anonymous_id=anon,
        user_id=user,
        group_id=group,
        url=url,
        referrer=referrer,
        properties=properties or {},
        traits=traits or {},
    )


def page(
    ts: int, anon: str, url: str = "https://shop.example.com/", referrer: str | None = None, **kw
) -> Event:
    return event("page", "page_view", ts, anon=anon, url=url, referrer=referrer, **kw)


def track(name: str, ts: int, **kw) -> Event:
    return event("track", name, ts, **kw)


async def load(log: EventLog, workspace_id: str, events: list[Event], per_entry: int = 500) -> None:
    for i in range(0, len(events), per_entry):
        await log.append(workspace_id, events[i : i + per_entry])


def identify_event(ts: int, *, user: str, anon: str | None = None, traits: dict | None = None) -> Event:
    return event("identify", "identify", ts, anon=anon, user=user, traits=traits)
