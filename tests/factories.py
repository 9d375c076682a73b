"""Test data: canonical events appended straight to the log (when HTTP is not what a test is about)."""

from __future__ import annotations

import random

from ingest.ids import event_id, ulids
from ingest.log import EventLog
from ingest.schema import Event

BASE_MS = 1_780_000_000_000  # 2026-05-28


def make_events(n: int, *, seed: int = 1, start_ms: int = BASE_MS, dup_every: int = 0) -> list[Event]:
    """`n` varied track/page events; every `dup_every`-th repeats an earlier messageId (a client resend)."""
    rng = random.Random(seed)
    ids = ulids(n, start_ms)
    out: list[Event] = []
    for i in range(n):
        kind = rng.choice(["track", "page", "page"])
        domain = rng.choice(["example.com", "shop.example.com", "blog.example.org"])
        name = "page_view" if kind == "page" else rng.choice(["signed_up", "button_click", "purchase"])
        mid = f"m-{seed}-{i}"
        if dup_every and i and i % dup_every == 0:
            mid = out[rng.randrange(len(out))].message_id
        ts = start_ms + rng.randrange(0, 30 * 86_400_000)
        out.append(
            Event(
                id=event_id(ids[i]),
                kind=kind,
                event=name,
                message_id=mid,
                timestamp=ts,
                received_at=ts,
                anonymous_id=f"anon-{rng.randrange(500)}",
                user_id=f"user-{rng.randrange(100)}" if rng.random() < 0.3 else None,
                url=f"https://{domain}/p/{rng.randrange(50)}",
                domain=domain,
            )
        )
    return out


async def append_events(log: EventLog, workspace_id: str, events: list[Event], per_entry: int = 100) -> None:
    for i in range(0, len(events), per_entry):
        await log.append(workspace_id, events[i : i + per_entry])
