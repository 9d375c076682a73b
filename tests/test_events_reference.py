"""The Events API against a plain in-memory evaluation of the same filters over the same ~20k events.

Events go straight into the log (one entry per simulated request); hundreds of seeded random parameter
combinations of `/v1/events` and `/v1/events/stats` must answer exactly what the reference computes, and a
rebuild of the projections must give the live digest.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from ingest import keys as log_keys
from ingest.ids import event_id, ulids
from ingest.log import EventLog, entry_fields
from ingest.schema import Event
from projections.fold.rebuild import rebuild_and_compare
from projections.identity import keys as identity_keys
from projections.keyspace import Keyspace

T0 = 1_776_000_000_000  # 2026-04-12T13:20Z
HOUR = 3_600_000
DAY = 86_400_000
N_EVENTS = 20_000
PER_ENTRY = 200
DOMAINS = ["example.com", "shop.example.com", "blog.example.org", "docs.acme.io", "acme.io"]
PATHS = [
    "/",
    "/pricing",
    "/Pricing/Enterprise",
    "/blog/how-to-price",
    "/docs/api",
    "/docs/api/events",
    "/signup",
]
TRACK_NAMES = ["button_click", "form_submit", "video_play", "signed_up", "Email Opened", "purchase"]


@dataclass(frozen=True, slots=True)
class Row:
    id: str
    event: str
    timestamp: int
    received_at: int
    url: str | None
    domain: str | None
    contact: str | None  # filled from the identity projection's event → contact map after the fold


def generate(seed: int = 7) -> tuple[list[list[Event]], list[Row]]:
    """Requests (lists of events, one log entry each) and the listed events as reference rows."""
    rng = random.Random(seed)
    entries: list[list[Event]] = []
    rows: list[Row] = []
    made = 0
    while made < N_EVENTS:
        n = rng.randint(1, PER_ENTRY)
        received = (
            T0 + rng.randrange(0, 45 * DAY // HOUR) * HOUR + rng.choice([0, 0, 7])
        )  # ties across requests
        ids = ulids(n, received)
        batch = []
        for i in range(n):
            kind = rng.choices(["page", "track", "identify"], weights=[6, 3, 1])[0]
            name = {"page": "page_view", "identify": "identify"}.get(kind) or rng.choice(TRACK_NAMES)
            domain = rng.choice(DOMAINS) if kind == "page" or rng.random() < 0.5 else None
            url = f"https://{domain}{rng.choice(PATHS)}" if domain else None
            # many equal timestamps: whole hours, a few fixed offsets
            ts = (
                T0
                + rng.randrange(-2 * DAY // HOUR, 45 * DAY // HOUR) * HOUR
                + rng.choice([0, 0, 0, 1, 59_999])
            )
            user = f"user-{rng.randrange(300)}" if rng.random() < 0.35 else None
            e = Event(
                id=event_id(ids[i]),
                kind=kind,
                event=name,
                message_id=f"m-{made + i}",
                timestamp=ts,
                received_at=received,
                anonymous_id=f"anon-{rng.randrange(2000)}",
                user_id=user,
                url=url,
                domain=domain,
                title="Pricing" if url and "ricing" in url else None,
                path=url.split(domain, 1)[1] if url and domain else None,
            )
            batch.append(e)
            if kind != "identify":
                rows.append(Row(e.id, name, ts, received, url, domain, None))
        entries.append(batch)
        made += n
    return entries, rows


# ---------------------------------------------------------------- the reference evaluation


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=UTC).timestamp() * 1000)


def bounds(p: dict[str, Any]) -> tuple[int, int]:
    lo = parse_ms(p["date_after"]) if "date_after" in p else -(2**62)
    hi = parse_ms(p["date_before"]) if "date_before" in p else 2**62
    return lo, hi


def keep(r: Row, p: dict[str, Any], lo: int, hi: int) -> bool:
    if "event_type" in p and r.event != p["event_type"]:
        return False
    if "domain" in p and r.domain != p["domain"].lower():
        return False
    if "contact_id" in p and r.contact != p["contact_id"]:
        return False
    if "url_contains" in p and (r.url is None or p["url_contains"].lower() not in r.url.lower()):
        return False
    if "search" in p:
        s = p["search"].lower()
        if not any(s in (f or "").lower() for f in (r.event, r.url, r.domain)):
            return False
    if not lo <= r.timestamp <= hi:
        return False
    return not (p.get("identified_only") == "true" and r.contact is None)


def reference_list(rows: list[Row], p: dict[str, Any]) -> tuple[int, list[str]]:
    lo, hi = bounds(p)
    hits = [r for r in rows if keep(r, p, lo, hi)]
    sort_by = p.get("sort_by", "timestamp")
    if sort_by == "timestamp":
        hits.sort(key=lambda r: (r.timestamp, r.id))
    elif sort_by == "event":
        hits.sort(key=lambda r: (r.event, r.timestamp, r.id))
    else:
        hits.sort(key=lambda r: (r.received_at, r.id))
    if p.get("sort_dir", "desc") == "desc":
        hits.reverse()
    limit = int(p.get("limit", 20))
    offset = (int(p.get("page", 1)) - 1) * limit
    return len(hits), [r.id for r in hits[offset : offset + limit]]


def reference_stats(rows: list[Row], p: dict[str, Any]) -> dict[str, Any]:
    lo, hi = bounds(p)
    hits = [r for r in rows if keep(r, p, lo, hi)]
    by_type: dict[str, int] = {}
    by_domain: dict[str, int] = {}
    by_day: dict[str, int] = {}
    for r in hits:
        by_type[r.event] = by_type.get(r.event, 0) + 1
        if r.domain:
            by_domain[r.domain] = by_domain.get(r.domain, 0) + 1
        day = iso(r.timestamp)[:10]
        by_day[day] = by_day.get(day, 0) + 1

    def top(counts: dict[str, int], name: str) -> list[dict[str, Any]]:
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:50]
        return [{name: k, "count": c} for k, c in ordered]

    stats: dict[str, Any] = {"total": len(hits)}
    group_by = p.get("group_by")
    if group_by in (None, "type"):
        stats["by_type"] = top(by_type, "type")
    if group_by in (None, "domain"):
        stats["by_domain"] = top(by_domain, "domain")
    if group_by in (None, "day"):
        stats["by_day"] = [{"date": d, "count": by_day[d]} for d in sorted(by_day, reverse=True)[:90]]
    return stats


# ---------------------------------------------------------------- random parameters


def random_time(rng: random.Random, rows: list[Row]) -> str:
    pick = rng.random()
    if pick < 0.4:
        return iso(rng.choice(rows).timestamp)  # exactly an event's time: bounds are inclusive
    if pick < 0.7:
        return iso(T0 + rng.randrange(-3 * DAY, 46 * DAY))
    return iso(T0 + rng.randrange(-3, 46) * DAY)[:10]  # a date alone: its UTC midnight


def random_filters(rng: random.Random, rows: list[Row]) -> dict[str, Any]:
    p: dict[str, Any] = {}
    if rng.random() < 0.3:
        p["event_type"] = rng.choice(["page_view", *TRACK_NAMES, "never_seen"])
    if rng.random() < 0.3:
        d = rng.choice([*DOMAINS, "nowhere.test"])
        p["domain"] = d.upper() if rng.random() < 0.2 else d
    if rng.random() < 0.25:
        p["url_contains"] = rng.choice(
            ["pricing", "PRICING", "/docs/", "api/ev", "acme", "io/", "zzz", "p", "/"]
        )
    if rng.random() < 0.2:
        p["search"] = rng.choice(
            ["click", "email", "shop", "example.org", "price", "o", "view", "nothing-here"]
        )
    if rng.random() < 0.35:
        p["date_after"] = random_time(rng, rows)
    if rng.random() < 0.35:
        p["date_before"] = random_time(rng, rows)
    if rng.random() < 0.3:
        p["identified_only"] = "true"
    if rng.random() < 0.15:
        contacts = [r.contact for r in rows if r.contact]
        p["contact_id"] = rng.choice(contacts) if contacts and rng.random() < 0.9 else "ct_nobody"
    return p


# ---------------------------------------------------------------- tests


@pytest.fixture
async def loaded(app, redis, settings, workspace, folded) -> list[Row]:
    entries, rows = generate()
    log = EventLog(redis, settings)
    pipe = redis.pipeline(transaction=False)
    for batch in entries:
        pipe.xadd(log.stream(workspace.id), entry_fields(workspace.id, batch))
    await pipe.execute()
    await folded(timeout=120)
    # Which contact each event belongs to is the identity projection's call (tested on its own); the reference
    # takes it as given and checks that every index, filter and counter agrees with it.
    ks = Keyspace(settings.key_prefix, log.partition(workspace.id))
    contact_of = {
        k.decode(): v.decode()
        for k, v in (await redis.hgetall(identity_keys.event_contacts(ks, workspace.id))).items()
    }
    rows = [replace(r, contact=contact_of.get(r.id[4:])) for r in rows]
    assert sum(r.contact is not None for r in rows) > len(rows) // 10
    return rows


async def test_list_answers_equal_the_reference(client, workspace, loaded):
    rng = random.Random(11)
    rows = loaded
    headers = {"Authorization": f"Bearer {workspace.read_key}"}
    for _ in range(300):
        p = random_filters(rng, rows)
        if rng.random() < 0.5:
            p["sort_by"] = rng.choice(["timestamp", "event", "createdAt"])
        if rng.random() < 0.5:
            p["sort_dir"] = rng.choice(["asc", "desc"])
        p["limit"] = rng.choice([1, 7, 20, 100])
        p["page"] = rng.choice([1, 1, 2, 3, 17, 400])
        count_only = rng.random() < 0.1
        if count_only:
            p["count_only"] = "true"
        r = await client.get("/v1/events", params=p, headers=headers)
        assert r.status_code == 200, (p, r.text)
        total, ids = reference_list(rows, p)
        body = r.json()
        if count_only:
            assert body == {"status": "success", "count": total}, p
            continue
        assert [e["_id"] for e in body["events"]] == ids, p
        limit = p["limit"]
        assert body["pagination"] == {
            "page": p["page"],
            "limit": limit,
            "total_pages": -(-total // limit),
            "total_items": total,
        }, p


async def test_stats_answers_equal_the_reference(client, workspace, loaded):
    rng = random.Random(12)
    rows = loaded
    headers = {"Authorization": f"Bearer {workspace.read_key}"}
    for _ in range(150):
        p = {
            k: v
            for k, v in random_filters(rng, rows).items()
            if k not in ("url_contains", "search", "contact_id")
        }
        if rng.random() < 0.5:
            p["group_by"] = rng.choice(["type", "domain", "day"])
        r = await client.get("/v1/events/stats", params=p, headers=headers)
        assert r.status_code == 200, (p, r.text)
        assert r.json() == {"status": "success", "stats": reference_stats(rows, p)}, p


async def test_types_and_single_events_equal_the_reference(client, workspace, loaded):
    rows = loaded
    headers = {"Authorization": f"Bearer {workspace.read_key}"}
    body = (await client.get("/v1/events/types", headers=headers)).json()
    names = sorted({r.event for r in rows})
    assert body == {"status": "success", "types": names, "total_items": len(names)}
    for row in random.Random(13).sample(rows, 20):
        e = (await client.get(f"/v1/events/{row.id}", headers=headers)).json()["event"]
        assert (e["_id"], e["event"], e["timestamp"], e["url"]) == (
            row.id,
            row.event,
            iso(row.timestamp),
            row.url,
        )


async def test_rebuild_of_the_reference_data_gives_the_live_digest(redis, settings, workspace, loaded):
    partition = log_keys.partition_of(workspace.id, settings.partitions)
    live, rebuilt, n = await rebuild_and_compare(redis, settings.key_prefix, partition)
    assert n > 0 and live == rebuilt
