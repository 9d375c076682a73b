"""Attribution benchmark: `GET /public-api/v1/events` at 1M events / 100k contacts, beside DuckDB.

One run: a private valkey-server (no persistence) on a free 127.0.0.1 port; synthetic data — N_CONTACTS
contacts, each a browser (anonymous id) identified to a user id, page views landing from a pool of campaign
URLs and referrers over 60 days, and purchases sent server-side by user id — appended straight into the log,
folded in-process (fold rate measured). Then the 30-day query with `sources` (all 15 sources seen) +
`linear` + `attribution_window=30` + `limit=4000` is walked page by page through the app (in-process ASGI:
no network, one client) for p50/p99 per page. The same computation — sessionize page views (30-minute
inactivity), link browsers to users, take each conversion's touchpoints in its 30 days, split its amount
linearly, keep the sources — runs in DuckDB on the same events in the same run.
Writes bench/results/attribution-<date>.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.app import create_app  # noqa: E402
from api.embedded import EmbeddedValkey, free_port  # noqa: E402
from ingest import keys as log_keys  # noqa: E402
from ingest.ids import ulid  # noqa: E402
from ingest.log import EventLog  # noqa: E402
from ingest.redis_client import connect_redis  # noqa: E402
from ingest.schema import Event  # noqa: E402
from ingest.settings import Settings  # noqa: E402
from ingest.workspaces import WorkspaceRegistry  # noqa: E402
from projections.fold.fold import fold_entries  # noqa: E402
from projections.keyspace import Keyspace  # noqa: E402
from projections.touchpoints.classify import classify  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DAY = 86_400_000
MIN = 60_000
T0 = 1_772_323_200_000  # 2026-03-01T00:00Z
LANDINGS = [
    ("https://shop.example.com/?gclid=g{n}&utm_campaign=brand&utm_content=ad{n}", None),
    ("https://shop.example.com/?fbclid=f{n}&campaign_id=c{n}&ad_id=a{n}", None),
    ("https://shop.example.com/?msclkid=m{n}", None),
    ("https://shop.example.com/?ttclid=t{n}", None),
    ("https://shop.example.com/?li_fat_id=l{n}", None),
    ("https://shop.example.com/blog/{n}", "https://www.google.com/"),
    ("https://shop.example.com/blog/{n}", "https://www.bing.com/"),
    ("https://shop.example.com/?utm_source=newsletter&utm_medium=email&utm_campaign=w{n}", None),
    ("https://shop.example.com/", "https://chatgpt.com/"),
    ("https://shop.example.com/", "https://www.perplexity.ai/"),
    ("https://shop.example.com/", "https://news.ycombinator.com/"),
    ("https://shop.example.com/", "https://www.reddit.com/r/x"),
    ("https://shop.example.com/", "https://www.facebook.com/"),
    ("https://shop.example.com/pricing", None),
    ("https://shop.example.com/?utm_source=sms&utm_medium=sms", None),
]


def generate(n_events: int, n_contacts: int, seed: int) -> tuple[list[Event], list[tuple]]:
    """Events in time order, and rows (kind, id, ts, anon, user, source, amount) for DuckDB."""
    rng = random.Random(seed)
    rows: list[tuple] = []
    n_purchases = n_events // 12
    n_pages = n_events - n_contacts - n_purchases
    raw: list[tuple[int, int, str]] = []  # (ts, contact, kind)
    for c in range(n_contacts):
        raw.append((T0 - DAY + rng.randrange(DAY), c, "identify"))
    for _ in range(n_pages):
        raw.append(
            (
                T0 + rng.randrange(60 * DAY // MIN) * MIN + rng.randrange(MIN),
                rng.randrange(n_contacts),
                "page",
            )
        )
    for _ in range(n_purchases):
        raw.append((T0 + rng.randrange(60 * DAY), rng.randrange(n_contacts), "purchase"))
    raw.sort()
    events = []
    for i, (ts, c, kind) in enumerate(raw):
        eid = f"evt_{ulid()}"
        anon, user = f"anon-{c}", f"user-{c}"
        if kind == "identify":
            e = Event(id=eid, kind="identify", event="identify", message_id=eid, timestamp=ts, received_at=ts,
                      anonymous_id=anon, user_id=user)  # fmt: skip
            rows.append(("identify", eid, ts, anon, user, None, None))
        elif kind == "page":
            url_t, ref = LANDINGS[rng.randrange(len(LANDINGS))]
            url = url_t.format(n=rng.randrange(50))
            e = Event(id=eid, kind="page", event="page_view", message_id=eid, timestamp=ts, received_at=ts,
                      anonymous_id=anon, url=url, referrer=ref)  # fmt: skip
            rows.append(("page", eid, ts, anon, None, classify(url, ref).source, None))
        else:
            amount = float(rng.randrange(10, 500))
            e = Event(id=eid, kind="track", event="purchase", message_id=eid, timestamp=ts, received_at=ts,
                      user_id=user, properties={"revenue": amount})  # fmt: skip
            rows.append(("purchase", eid, ts, None, user, None, amount))
        events.append(e)
        del i
    return events, rows


DUCK_SQL = """
WITH p AS (
  SELECT id, ts, anon, source,
         ts - lag(ts) OVER (PARTITION BY anon ORDER BY ts, id) AS gap
  FROM ev WHERE kind = 'page'
), tp AS (
  SELECT 'tp_' || substr(id, 5) AS tp_id, ts, anon, source FROM p WHERE gap IS NULL OR gap > 1800000
), links AS (
  SELECT DISTINCT anon, "user" FROM ev WHERE kind = 'identify'
), conv AS (
  SELECT id, ts, "user", amount FROM ev
  WHERE kind = 'purchase' AND ts BETWEEN $start AND $end
), touches AS (
  SELECT c.id, c.ts, c.amount, tp.tp_id, tp.ts AS tts, tp.source
  FROM conv c JOIN links l ON l."user" = c."user" JOIN tp ON tp.anon = l.anon
  WHERE tp.ts BETWEEN c.ts - 2592000000 AND c.ts
), credited AS (
  SELECT id, ts, tp_id, tts, source, amount / count(*) OVER (PARTITION BY id) AS credit FROM touches
  UNION ALL
  SELECT c.id, c.ts, NULL, NULL, 'direct', c.amount FROM conv c
  WHERE NOT EXISTS (SELECT 1 FROM touches t WHERE t.id = c.id)
)
SELECT id, ts, tp_id, source, credit FROM credited WHERE source IN ({sources})
ORDER BY ts, id, tts, tp_id
"""


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


async def run(args: argparse.Namespace) -> dict:
    data_dir = tempfile.mkdtemp(prefix="sf-bench-attr-")
    server = EmbeddedValkey(data_dir, free_port(), appendonly=False)
    url = server.start()
    out: dict = {"events": args.events, "contacts": args.contacts}
    try:
        settings = Settings(
            redis_url=url, key_prefix="bench", partitions=4, attribution_rate_limit_per_minute=0
        )
        redis = connect_redis(url)
        reg = WorkspaceRegistry(redis, settings)
        created = await reg.create_workspace("bench")
        ws = created.workspace.id
        key = await reg.create_key(ws, ["attribution:read"])
        t = time.perf_counter()
        events, rows = generate(args.events, args.contacts, args.seed)
        out["generate_s"] = round(time.perf_counter() - t, 1)
        log = EventLog(redis, settings)
        t = time.perf_counter()
        for i in range(0, len(events), 500):
            await log.append(ws, events[i : i + 500])
        out["append_s"] = round(time.perf_counter() - t, 1)
        ks = Keyspace("bench", log_keys.partition_of(ws, 4))
        stream = log_keys.log("bench", ks.partition)
        t = time.perf_counter()
        start = "-"
        while True:
            chunk = await redis.xrange(stream, start, "+", count=4)
            if not chunk:
                break
            await fold_entries(redis, ks, chunk, fence=None, ack_group=None)
            start = "(" + chunk[-1][0].decode()
        fold_s = time.perf_counter() - t
        out["fold_s"] = round(fold_s, 1)
        out["fold_events_per_s"] = round(len(events) / fold_s)
        out["redis_used_memory_mb"] = round((await redis.info("memory"))["used_memory"] / 2**20)

        app = create_app(settings, run_appliers=False)
        sources = sorted({r[5] for r in rows if r[5]} | {"direct"})[:15]
        params = {"start_date": "2026-03-20 00:00:00", "end_date": "2026-04-18 23:59:59",
                  "attribution_model": "linear", "attribution_window": "30", "limit": "4000",
                  "sources[]": sources, "fields[]": ["amount", "source", "profile_id"]}  # fmt: skip
        lat: list[float] = []
        api_rows = 0
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=120) as client:
                h = {"Authorization": f"Bearer {key}"}
                cursor = None
                while True:
                    p = dict(params, cursor=cursor) if cursor else params
                    t = time.perf_counter()
                    r = await client.get("/public-api/v1/events", params=p, headers=h)
                    lat.append((time.perf_counter() - t) * 1000)
                    body = r.json()
                    assert r.status_code == 200, r.text
                    api_rows += len(body["data"])
                    cursor = body["next_cursor"]
                    if not cursor or len(lat) >= args.max_pages:
                        break
        out["api"] = {"pages": len(lat), "rows": api_rows, "p50_ms": round(statistics.median(lat), 1),
                      "p99_ms": round(pct(lat, 0.99), 1), "max_ms": round(max(lat), 1),
                      "total_s": round(sum(lat) / 1000, 2)}  # fmt: skip
        await redis.aclose()

        import duckdb

        con = duckdb.connect()
        import pyarrow as pa

        cols = list(zip(*rows, strict=True))
        names = ["kind", "id", "ts", "anon", "user", "source", "amount"]
        con.register("ev_arrow", pa.table(dict(zip(names, [list(c) for c in cols], strict=True))))
        con.execute("CREATE TABLE ev AS SELECT * FROM ev_arrow")
        start_ms = int(datetime(2026, 3, 20, tzinfo=UTC).timestamp() * 1000)
        end_ms = int(datetime(2026, 4, 18, 23, 59, 59, tzinfo=UTC).timestamp() * 1000) + 999
        sql = DUCK_SQL.replace("$start", str(start_ms)).replace("$end", str(end_ms))
        sql = sql.replace("{sources}", ", ".join(f"'{s}'" for s in sources))
        times_full, times_first = [], []
        for _ in range(args.duck_runs):
            t = time.perf_counter()
            n_full = len(con.execute(sql).fetchall())
            times_full.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            con.execute(sql + " LIMIT 4000").fetchall()
            times_first.append((time.perf_counter() - t) * 1000)
        out["duckdb"] = {"rows": n_full, "full_result_median_ms": round(statistics.median(times_full), 1),
                         "first_page_median_ms": round(statistics.median(times_first), 1), "runs": args.duck_runs}  # fmt: skip
        out["rows_match"] = n_full == api_rows if len(lat) < args.max_pages else None
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--contacts", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--max-pages", type=int, default=200)
    ap.add_argument("--duck-runs", type=int, default=5)
    args = ap.parse_args()
    res = asyncio.run(run(args))
    res["machine"] = f"{platform.processor() or platform.machine()}, Python {platform.python_version()}"
    res["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"attribution-{args.events}-{datetime.now(UTC):%Y-%m-%d}"
    stem.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    a, d = res["api"], res["duckdb"]
    md = [
        f"# Attribution benchmark — {res['events']:,} events, {res['contacts']:,} contacts ({res['date']})",
        "",
        "30-day query, all sources seen, `linear`, 30-day window, `limit=4000`, walked page by page (in-process ASGI).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| fold | {res['fold_events_per_s']:,} events/s ({res['fold_s']} s) |",
        f"| Redis memory | {res['redis_used_memory_mb']} MB |",
        f"| API pages / rows | {a['pages']} / {a['rows']:,} |",
        f"| API per page p50 / p99 / max | {a['p50_ms']} / {a['p99_ms']} / {a['max_ms']} ms |",
        f"| API whole walk | {a['total_s']} s |",
        f"| DuckDB same computation, full result ({d['rows']:,} rows), median of {d['runs']} | {d['full_result_median_ms']} ms |",
        f"| DuckDB first 4000 rows, median | {d['first_page_median_ms']} ms |",
        f"| row counts equal | {res['rows_match']} |",
        "",
        f"Machine: {res['machine']}; shared 2 vCPU, noisy — read ratios, not absolutes.",
    ]
    stem.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
