"""Query benchmark: the Events API over HTTP at N events, beside DuckDB over a Parquet export of the same events.

One run: a private valkey-server (no persistence, `maxmemory` bounded), N synthetic events (12 skewed types,
200 domains, ~4k URLs, 365 days, 30% of visitors identified) appended straight into the log in time order, one
entry per simulated request of 1–40 events,
then `streamfold fold` folds them (the fold rate is measured), then `streamfold serve --no-fold` answers
≥ 200 requests of each query type, sequentially over keep-alive HTTP (p50/p99 client-side). The same events
go to a Parquet file; DuckDB (in-process) answers the same queries over the Parquet file and over a table
loaded from it, and chdb (embedded ClickHouse, in-process) over a MergeTree table loaded from it, sorted by
(event, domain, ts); both tables' rows are checked equal. The API is compared with the faster of the two
tables, query by query. Writes bench/results/query-<N>-<date>.md and .json. Only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import msgspec
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import load_average, machine, server_env, spawn, wait_http  # noqa: E402
from memory import memory_by_kind, per_event  # noqa: E402

from api.embedded import EmbeddedValkey, free_port  # noqa: E402
from ingest.ids import event_id, ulids  # noqa: E402
from ingest.log import EventLog, entry_fields  # noqa: E402
from ingest.redis_client import connect_redis  # noqa: E402
from ingest.schema import Event  # noqa: E402
from ingest.settings import Settings  # noqa: E402
from ingest.workspaces import WorkspaceRegistry  # noqa: E402
from projections.fold.progress import log_heads, wait_until_folded  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DAY = 86_400_000
END_MS = 1_793_491_200_000  # 2026-11-01T00:00Z
START_MS = END_MS - 365 * DAY
MEAN_ENTRY = 20
TYPES = {
    "page_view": 50, "button_click": 12, "link_click": 8, "scroll": 5, "form_submit": 5, "video_play": 4,
    "first_visit": 4, "email_opened": 4, "file_download": 3, "email_clicked": 2, "signed_up": 2, "purchase": 1,
}  # fmt: skip
NO_URL = {"email_opened", "email_clicked", "purchase"}
WORDS = [
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "vandelay",
    "stark",
    "wayne",
    "tyrell",
    "cyberdyne",
]
DOMAINS = [f"{WORDS[i % 10]}{i}.{['com', 'io', 'org', 'net'][i % 4]}" for i in range(200)]
DOMAIN_W = [1 / (i + 1) ** 0.8 for i in range(200)]
PATHS = ["/", "/pricing", "/signup", "/careers", "/about", "/contact"] + [
    f"/{s}/{k}" for s in ("blog", "docs", "features") for k in ("intro", "setup", "api", "faq", "guide")
]  # 21 paths per domain


def visitors_for(n: int) -> int:
    return max(1000, n // 25)


def generate(n: int, seed: int = 1):  # type: ignore[no-untyped-def]
    """Yield (events of one log entry, their Parquet rows as columns)."""
    rng = random.Random(seed)
    names, weights = list(TYPES), list(TYPES.values())
    n_visitors = visitors_for(n)
    received = 0
    made = 0
    while made < n:
        # a request of 1–40 events (what trackers and SDK batches send), in time order like live traffic
        k = min(rng.randint(1, 2 * MEAN_ENTRY), n - made)
        now = START_MS + (365 * DAY * made) // n
        received = max(received + 1, now + 1000)
        ids = ulids(k, received)
        events = []
        cols: dict[str, list[Any]] = {
            c: [] for c in ("id", "event", "ts", "created", "url", "domain", "identified")
        }
        types = rng.choices(names, weights, k=k)
        doms = rng.choices(DOMAINS, DOMAIN_W, k=k)
        for i in range(k):
            name = types[i]
            v = int(rng.paretovariate(1.2)) % n_visitors if rng.random() < 0.5 else rng.randrange(n_visitors)
            identified = v % 10 < 3
            ts = now - rng.randrange(3_600_000)  # up to an hour old when it arrives
            domain = url = path = None
            if name not in NO_URL:
                domain = doms[i]
                path = rng.choice(PATHS)
                url = f"https://{domain}{path}"
            e = Event(
                id=event_id(ids[i]),
                kind="page" if name == "page_view" else "track",
                event=name,
                message_id=f"m{made + i}",
                timestamp=ts,
                received_at=received,
                anonymous_id=f"anon-{v}",
                user_id=f"user-{v}" if identified else None,
                url=url,
                path=path,
                title=f"{path} · {domain}" if name == "page_view" else None,
                domain=domain,
                properties={"plan": "pro"} if name == "signed_up" else {},
                library_name="analytics.js",
                library_version="2.1.0",
            )
            events.append(e)
            for c, val in zip(cols, (e.id, name, ts, received, url, domain, identified), strict=True):
                cols[c].append(val)
        made += k
        yield events, cols


def wire_json(e: Event) -> bytes:
    """The Segment message a browser SDK would have sent for this event (for the raw-size baseline)."""
    msg: dict[str, Any] = {
        "type": e.kind,
        "messageId": f"ajs-next-{e.message_id}-0123456789abcdef",
        "anonymousId": e.anonymous_id,
        "timestamp": datetime.fromtimestamp(e.timestamp / 1000, UTC).isoformat(),
        "properties": {**e.properties, **({"url": e.url, "path": e.path, "title": e.title} if e.url else {})},
        "context": {"library": {"name": e.library_name, "version": e.library_version}},
    }
    if e.kind == "track":
        msg["event"] = e.event
    if e.user_id:
        msg["userId"] = e.user_id
    return msgspec.json.encode(msg)


async def load(redis: Redis, settings: Settings, workspace: str, n: int, parquet: Path) -> dict[str, float]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    log = EventLog(redis, settings)
    stream = log.stream(workspace)
    schema = pa.schema(
        [("id", pa.string()), ("event", pa.string()), ("ts", pa.int64()), ("created", pa.int64()),
         ("url", pa.string()), ("domain", pa.string()), ("identified", pa.bool_())]
    )  # fmt: skip
    writer = pq.ParquetWriter(parquet, schema)
    pending: dict[str, list[Any]] = {c: [] for c in schema.names}
    pipe = redis.pipeline(transaction=False)
    queued = 0
    raw_sizes: list[int] = []
    t0 = time.perf_counter()
    for events, cols in generate(n):
        # the entry id carries the receipt millisecond, as a live append does (the server clock at XADD)
        pipe.xadd(stream, entry_fields(workspace, events), id=f"{events[0].received_at}-*")  # type: ignore[arg-type]
        queued += 1
        if len(raw_sizes) < 2000:
            raw_sizes.extend(len(wire_json(e)) for e in events[:50])
        for c in schema.names:
            pending[c].extend(cols[c])
        if queued == 500:
            await pipe.execute()
            pipe = redis.pipeline(transaction=False)
            queued = 0
        if len(pending["id"]) >= 500_000:
            writer.write_table(pa.table(pending, schema=schema))
            pending = {c: [] for c in schema.names}
    if queued:
        await pipe.execute()
    if pending["id"]:
        writer.write_table(pa.table(pending, schema=schema))
    writer.close()
    return {"load_s": time.perf_counter() - t0, "raw_json_bytes": statistics.mean(raw_sizes)}


# ---------------------------------------------------------------- the queries: API parameters and SQL


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def q(v: str) -> str:
    return "'" + v.replace("'", "''") + "'"


COLS = "id, event, ts, url, domain"
ORDER = "ORDER BY ts DESC, id DESC"


@dataclass(frozen=True)
class Dialect:
    """What differs between the two engines' SQL; everything else is written once, for both."""

    name: str
    contains: Callable[[str, str], str]  # (column, lower-case needle) → "the column contains it, any case"
    day: Callable[[str], str]  # a column of epoch ms → its UTC day number


DUCKDB = Dialect("duckdb", lambda c, s: f"contains(lower({c}), {q(s)})", lambda c: f"({c} // {DAY})")
# positionCaseInsensitive: ASCII case folding, like lower() on this data (ASCII only); NULL in, NULL out
CHDB = Dialect(
    "chdb", lambda c, s: f"positionCaseInsensitive({c}, {q(s)}) > 0", lambda c: f"intDiv({c}, {DAY})"
)
DIALECTS = (DUCKDB, CHDB)


def list_sql(where: str, offset: int = 0, limit: int = 50) -> list[str]:
    """A list request answers the page and its total."""
    w = f"WHERE {where}" if where else ""
    return [
        f"SELECT count(*) FROM {{t}} {w}",
        f"SELECT {COLS} FROM {{t}} {w} {ORDER} LIMIT {limit} OFFSET {offset}",
    ]


def stats_sql(d: Dialect, where: str, group_by: str | None) -> list[str]:
    w = f"WHERE {where}" if where else ""
    out = [f"SELECT count(*) FROM {{t}} {w}"]
    if group_by in (None, "type"):
        out.append(f"SELECT event, count(*) c FROM {{t}} {w} GROUP BY event ORDER BY c DESC, event LIMIT 50")
    if group_by in (None, "domain"):
        dw = f"{w} AND domain IS NOT NULL" if w else "WHERE domain IS NOT NULL"
        out.append(
            f"SELECT domain, count(*) c FROM {{t}} {dw} GROUP BY domain ORDER BY c DESC, domain LIMIT 50"
        )
    if group_by in (None, "day"):
        out.append(
            f"SELECT d, count(*) FROM (SELECT {d.day('ts')} d FROM {{t}} {w}) GROUP BY d ORDER BY d DESC LIMIT 90"
        )
    return out


Query = tuple[str, dict[str, Any], dict[str, list[str]]]  # path, params, SQL statements by dialect name


def query(path: str, params: dict[str, Any], sql: Callable[[Dialect], list[str]]) -> Query:
    """One request and its SQL in every dialect (the same parameters, drawn once)."""
    return path, params, {d.name: sql(d) for d in DIALECTS}


def make_queries(rng: random.Random) -> dict[str, Callable[[], Query]]:
    top_types = list(TYPES)[:6]

    def window(days: int) -> tuple[int, int]:
        end = START_MS + rng.randrange(days, 365) * DAY + rng.randrange(DAY)
        return end - days * DAY, end

    def type_domain_90d() -> Query:
        t, d = rng.choice(top_types), rng.choices(DOMAINS[:50], DOMAIN_W[:50])[0]
        lo, hi = window(90)
        where = f"event = {q(t)} AND domain = {q(d)} AND ts BETWEEN {lo} AND {hi}"
        params = {"event_type": t, "domain": d, "date_after": iso(lo), "date_before": iso(hi), "limit": 50}
        return query("/v1/events", params, lambda _: list_sql(where))

    def url_contains() -> Query:
        s = rng.choice(["pricing", "docs/api", "blog/", "careers", "signup", "features/faq", "hooli1"])
        return query("/v1/events", {"url_contains": s, "limit": 50}, lambda d: list_sql(d.contains("url", s)))

    def search() -> Query:
        s = rng.choice(["click", "video", "stark", "email", "setup", "download"])
        return query(
            "/v1/events",
            {"search": s, "limit": 50},
            lambda d: list_sql(" OR ".join(d.contains(c, s) for c in ("event", "url", "domain"))),
        )

    def count_type_30d() -> Query:
        t = rng.choice(list(TYPES))
        lo, hi = window(30)
        params = {"event_type": t, "date_after": iso(lo), "date_before": iso(hi), "count_only": "true"}
        sql = f"SELECT count(*) FROM {{t}} WHERE event = {q(t)} AND ts BETWEEN {lo} AND {hi}"
        return query("/v1/events", params, lambda _: [sql])

    return {
        "newest 50, no filter": lambda: query("/v1/events", {"limit": 50}, lambda _: list_sql("")),
        "page 200 (offset 9950)": lambda: query(
            "/v1/events", {"limit": 50, "page": 200}, lambda _: list_sql("", 9950)
        ),
        "type + domain + 90 days": type_domain_90d,
        "url_contains": url_contains,
        "search": search,
        "identified_only": lambda: query(
            "/v1/events", {"identified_only": "true", "limit": 50}, lambda _: list_sql("identified")
        ),
        "count_only (type, 30 days)": count_type_30d,
        "stats group_by=day": lambda: query(
            "/v1/events/stats", {"group_by": "day"}, lambda d: stats_sql(d, "", "day")
        ),
        "stats, all three": lambda: query("/v1/events/stats", {}, lambda d: stats_sql(d, "", None)),
    }


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return 1000 * s[min(len(s) - 1, int(p * (len(s) - 1) + 0.5))]


def http_latencies(port: int, read_key: str, plans: list[Query]) -> list[float]:
    """Client-side latency of each request, sequential over one keep-alive connection. The client is the
    standard library's `http.client` (a thin one), so the figures are the server's, not a client's."""
    out = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {read_key}"}

    def get(path: str, params: dict[str, Any]) -> None:
        conn.request("GET", f"{path}?{urlencode(params)}", headers=headers)
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"{path} {params}: {r.status} {body[:200]!r}")

    try:
        for path, params, _ in plans[:10]:  # warm-up
            get(path, params)
        for path, params, _ in plans:
            t0 = time.perf_counter()
            get(path, params)
            out.append(time.perf_counter() - t0)
    finally:
        conn.close()
    return out


def sql_latencies(fetch: Callable[[str], Any], d: Dialect, table: str, plans: list[Query]) -> list[float]:
    """Seconds each plan's statements take in-process, sequentially, every row fetched into Python; `fetch`
    runs one statement and returns its rows (the same measure for each engine)."""
    out = []
    for _, _, sqls in plans[:3]:  # warm-up
        for sql in sqls[d.name]:
            fetch(sql.format(t=table))
    for _, _, sqls in plans:
        t0 = time.perf_counter()
        for sql in sqls[d.name]:
            fetch(sql.format(t=table))
        out.append(time.perf_counter() - t0)
    return out


# The Parquet columns; url and domain hold NULLs (events without a page), as in DuckDB. event and domain as
# LowCardinality (ClickHouse's dictionary encoding; DuckDB compresses its table by dictionary on its own).
CHDB_TABLE = (
    "CREATE TABLE ev (id String, event LowCardinality(String), ts Int64, created Int64, url Nullable(String),"
    " domain LowCardinality(Nullable(String)), identified Bool)"
    " ENGINE = MergeTree ORDER BY (event, domain, ts) SETTINGS allow_nullable_key = 1"
)


def chdb_load(path: Path, parquet: Path) -> Any:
    """A chdb (embedded ClickHouse) connection whose database, on disk at `path`, holds the Parquet file's events
    in table `ev`: a MergeTree sorted by (event, domain, ts), merged into one part."""
    import chdb

    conn = chdb.connect(str(path))
    conn.query(CHDB_TABLE)
    conn.query(f"INSERT INTO ev SELECT * FROM file({q(str(parquet))}, Parquet)")
    conn.query("OPTIMIZE TABLE ev FINAL")
    return conn


def chdb_fetch(conn: Any) -> Callable[[str], list[tuple[Any, ...]]]:
    """Runs one statement on chdb and returns its rows as tuples, like DuckDB's fetchall()."""

    def rows(sql: str) -> list[tuple[Any, ...]]:
        raw = conn.query(
            sql, "JSONCompactEachRow"
        ).bytes()  # one JSON array a line (newlines in strings escaped)
        return [tuple(r) for r in msgspec.json.decode(b"[" + raw.rstrip().replace(b"\n", b",") + b"]")]

    return rows


def check_same(name: str, plan: Query, duck: Callable[[str], Any], ch: Callable[[str], Any]) -> None:
    """DuckDB's table and chdb answer the plan's statements with the same rows, or the run stops here."""
    for d_sql, c_sql in zip(plan[2][DUCKDB.name], plan[2][CHDB.name], strict=True):
        c_sql = c_sql.format(t="ev")
        want, got = [tuple(r) for r in duck(d_sql.format(t="tb"))], ch(c_sql)
        if got != want:
            raise RuntimeError(
                f"{name}: chdb and DuckDB disagree on {c_sql!r} ({len(got)} rows against {len(want)}):"
                f" {got[:3]} … against {want[:3]} …"
            )


def timed_cli(args: list[str], env: dict[str, str]) -> float:
    """Seconds one `streamfold` command takes (it must succeed)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "api.cli", *args], env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


async def history(redis: Redis, env: dict[str, str], tmp: Path, n: int, base_mem: int) -> dict[str, Any]:
    """Export (Parquet, JSON lines) from the live log, archive every log day older than 30 days, export again
    (now mostly from the archive): events/s and MB/s of each, and Redis memory once the log is trimmed."""
    out: dict[str, Any] = {}

    def rate(name: str, seconds: float, path: Path) -> None:
        size = (
            sum(f.stat().st_size for f in path.rglob("*.parquet")) if path.is_dir() else path.stat().st_size
        )
        out[name] = {
            "seconds": round(seconds, 1),
            "events_per_s": round(n / seconds),
            "mb_per_s": round(size / 2**20 / seconds, 1),
            "bytes_per_event": round(size / n, 1),
        }
        print(f"{name}: {json.dumps(out[name])}", flush=True)

    for fmt in ("parquet", "jsonl"):
        path = tmp / f"export-live.{fmt}"
        rate(f"export_{fmt}_from_log", timed_cli(["export", "--workspace", "bench", "--format", fmt, "--out", str(path)], env), path)  # fmt: skip
        path.unlink()
    archive_dir = Path(env["STREAMFOLD_DATA_DIR"]) / "archive"
    rate("archive", timed_cli(["archive", "--after-days", "30"], env), archive_dir)
    out["redis_bytes_per_event_after_archive"] = round(
        (int((await redis.info("memory"))["used_memory"]) - base_mem) / n
    )
    path = tmp / "export-archived.parquet"
    rate("export_parquet_from_archive", timed_cli(["export", "--workspace", "bench", "--out", str(path)], env), path)  # fmt: skip
    return out


async def run(
    n: int, requests: int, duck_runs: int, max_memory_gb: float, with_history: bool
) -> dict[str, Any]:
    import chdb
    import duckdb

    load_before = load_average()
    tmp = Path(tempfile.mkdtemp(prefix="sf-qbench-"))
    server = EmbeddedValkey(tmp / "valkey", free_port(), appendonly=False)
    url = server.start()
    port = free_port()
    settings = Settings(redis_url=url, partitions=16)
    env = {
        **server_env(url, port),
        "STREAMFOLD_FOLD_BATCH_ENTRIES": "500",
        "STREAMFOLD_DATA_DIR": str(tmp / "data"),
        "STREAMFOLD_PARTITIONS": str(settings.partitions),
    }
    procs: list[subprocess.Popen[bytes]] = []
    result: dict[str, Any] = {}
    try:
        redis = connect_redis(url)
        await redis.config_set("maxmemory", str(int(max_memory_gb * 2**30)))
        await redis.config_set("maxmemory-policy", "noeviction")
        created = await WorkspaceRegistry(redis, settings).create_workspace("bench")
        read_key = next(k.key for k in created.keys if "events:read" in k.scopes)
        base_mem = int((await redis.info("memory"))["used_memory"])
        parquet = tmp / "events.parquet"
        loaded = await load(redis, settings, created.workspace.id, n, parquet)
        log_mem = int((await redis.info("memory"))["used_memory"]) - base_mem
        print(f"loaded {n:,} events in {loaded['load_s']:.0f}s", flush=True)

        heads = await log_heads(redis, settings.key_prefix, settings.partitions)
        t0 = time.perf_counter()
        procs.append(spawn(["fold"], env))
        await wait_until_folded(redis, settings.key_prefix, settings.partitions, timeout=3600, targets=heads)
        fold_s = time.perf_counter() - t0
        procs[-1].terminate()
        procs[-1].wait(timeout=30)
        mem = int((await redis.info("memory"))["used_memory"]) - base_mem
        print(f"folded in {fold_s:.0f}s ({n / fold_s:,.0f} events/s)", flush=True)
        breakdown = per_event(await memory_by_kind(redis), n)
        print(json.dumps(breakdown), flush=True)

        procs.append(spawn(["serve", "--no-fold"], env))
        await wait_http(port)
        con = duckdb.connect()
        con.execute(f"CREATE VIEW pq AS SELECT * FROM read_parquet({q(str(parquet))})")
        t0 = time.perf_counter()
        con.execute("CREATE TABLE tb AS SELECT * FROM pq")
        duckdb_load_s = time.perf_counter() - t0

        def duck_rows(sql: str) -> list[tuple[Any, ...]]:
            return con.execute(sql).fetchall()

        t0 = time.perf_counter()
        ch_conn = chdb_load(tmp / "chdb", parquet)
        chdb_load_s = time.perf_counter() - t0
        ch_rows = chdb_fetch(ch_conn)
        print(f"tables loaded: DuckDB {duckdb_load_s:.1f}s, chdb {chdb_load_s:.1f}s", flush=True)
        rows = []
        for name, make in make_queries(random.Random(5)).items():
            plans = [make() for _ in range(requests)]
            api = http_latencies(port, read_key, plans)
            tb = sql_latencies(duck_rows, DUCKDB, "tb", plans[:duck_runs])
            pqt = sql_latencies(duck_rows, DUCKDB, "pq", plans[:duck_runs])
            check_same(name, plans[0], duck_rows, ch_rows)
            ch = sql_latencies(ch_rows, CHDB, "ev", plans[:duck_runs])
            row = {
                "query": name,
                "api_p50_ms": pct(api, 0.5), "api_p99_ms": pct(api, 0.99),
                "duckdb_table_p50_ms": pct(tb, 0.5), "duckdb_table_p99_ms": pct(tb, 0.99),
                "duckdb_parquet_p50_ms": pct(pqt, 0.5), "duckdb_parquet_p99_ms": pct(pqt, 0.99),
                "chdb_p50_ms": pct(ch, 0.5), "chdb_p99_ms": pct(ch, 0.99),
            }  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
        con.close()
        ch_conn.close()
        load_after_queries = load_average()
        extra = {"history": await history(redis, env, tmp, n, base_mem)} if with_history else {}
        await redis.aclose()
        result = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "load_average_before": load_before,
            "load_average_after_queries": load_after_queries,
            "events": n,
            "requests_per_query": requests,
            "duckdb_runs_per_query": duck_runs,
            "duckdb_version": duckdb.__version__,
            "chdb_version": f"{chdb.__version__} (ClickHouse {chdb.engine_version})",
            "chdb_table": "MergeTree table ORDER BY (event, domain, ts), merged into one part",
            "duckdb_table_load_s": round(duckdb_load_s, 2),
            "chdb_table_load_s": round(chdb_load_s, 2),
            "load_events_per_s": round(n / loaded["load_s"]),
            "fold_events_per_s": round(n / fold_s),
            "raw_json_bytes_per_event": round(loaded["raw_json_bytes"]),
            "redis_bytes_per_event": round(mem / n),
            "redis_log_bytes_per_event": round(log_mem / n),
            "parquet_bytes_per_event": round(parquet.stat().st_size / n),
            "redis_bytes_per_event_by_key_kind": breakdown,
            "queries": rows,
            **extra,
        }
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=30)
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def faster_than_baseline(row: dict[str, Any]) -> str:
    """How many times faster the API is than the faster of DuckDB's table and chdb, at p50 / p99 (which one)."""
    ratios = []
    for p in ("p50", "p99"):
        ms, name = min((row[f"duckdb_table_{p}_ms"], "DuckDB"), (row[f"chdb_{p}_ms"], "chdb"))
        ratios.append((ms / row[f"api_{p}_ms"], name))
    (x50, b50), (x99, b99) = ratios
    return f"{x50:.1f}× / {x99:.1f}× ({b50})" if b50 == b99 else f"{x50:.1f}× ({b50}) / {x99:.1f}× ({b99})"


def write_results(r: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    tag = (
        f"query-{r['events'] // 1_000_000}M-{r['date'][:10]}"
        if r["events"] >= 1_000_000
        else f"query-{r['events']}-{r['date'][:10]}"
    )
    (RESULTS / f"{tag}.json").write_text(json.dumps(r, indent=2) + "\n")
    lines = [
        f"# Query benchmark — {r['events']:,} events — {r['date']}",
        "",
        f"Machine: {r['machine']}; load average {r.get('load_average_before')} before, "
        f"{r.get('load_average_after_queries')} after the queries (nothing else running).",
        f"Data: {r['events']:,} synthetic events, 12 skewed types, 200 domains, ~4k URLs, 365 days, 30% of visitors",
        f"identified; appended straight into the log ({r['load_events_per_s']:,} events/s), folded by one `streamfold fold`",
        f"process at **{r['fold_events_per_s']:,} events/s**. API: `streamfold serve --no-fold`, one uvicorn worker, private",
        f"valkey-server; {r['requests_per_query']} sequential keep-alive requests per query, varied parameters, client-side",
        f"latency. Baselines, in-process, same events, same parameters ({r['duckdb_runs_per_query']} runs per query each):",
        f"DuckDB {r['duckdb_version']} over a table and over the Parquet file; chdb {r['chdb_version']}, embedded",
        f"ClickHouse, over a {r['chdb_table']}, loaded from the same file.",
        "A list query runs its count and its page, like the API; chdb's rows equal DuckDB's (checked on the first",
        "request of each query). The last column compares the API with the faster of DuckDB's table and chdb, for",
        "that query and percentile.",
        "",
        "| query | API p50 | API p99 | DuckDB table p50 / p99 | DuckDB Parquet p50 / p99 | chdb p50 / p99 | API faster than the faster table, p50 / p99 |",
        "|---|---|---|---|---|---|---|",
    ]
    for q_ in r["queries"]:
        lines.append(
            f"| {q_['query']} | {q_['api_p50_ms']:.1f} ms | {q_['api_p99_ms']:.1f} ms | "
            f"{q_['duckdb_table_p50_ms']:.1f} / {q_['duckdb_table_p99_ms']:.1f} ms | "
            f"{q_['duckdb_parquet_p50_ms']:.1f} / {q_['duckdb_parquet_p99_ms']:.1f} ms | "
            f"{q_['chdb_p50_ms']:.1f} / {q_['chdb_p99_ms']:.1f} ms | {faster_than_baseline(q_)} |"
        )
    lines += [
        "",
        f"Redis memory: **{r['redis_bytes_per_event']:,} bytes/event** in all (log {r['redis_log_bytes_per_event']:,} + projections);"
        f" the event's Segment JSON is ~{r['raw_json_bytes_per_event']} bytes; Parquet {r['parquet_bytes_per_event']} bytes/event.",
        "By kind of key (MEMORY USAGE, bytes/event): "
        + ", ".join(f"`{k}` {v:g}" for k, v in r["redis_bytes_per_event_by_key_kind"].items()),
        "",
    ]
    h = r.get("history")
    if h:
        lines += [
            "History at this size (`--history`): `streamfold export` of the workspace from the live log, `streamfold",
            "archive --after-days 30` (every partition, verified Parquet files, log trimmed), export again.",
            "",
            "| job | time | events/s | MB/s | bytes/event written |",
            "|---|---|---|---|---|",
        ]
        for name in (
            "export_parquet_from_log",
            "export_jsonl_from_log",
            "archive",
            "export_parquet_from_archive",
        ):
            x = h[name]
            lines.append(
                f"| {name.replace('_', ' ')} | {x['seconds']} s | {x['events_per_s']:,} | {x['mb_per_s']} | "
                f"{x['bytes_per_event']} |"
            )
        lines += [
            "",
            f"Redis memory once the archived days left the log: {h['redis_bytes_per_event_after_archive']:,} "
            "bytes/event (projections; the events projection reads archived events from the files).",
            "",
        ]
    md = RESULTS / f"{tag}.md"
    md.write_text("\n".join(lines))
    return md


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--duckdb-runs", type=int, default=50)
    ap.add_argument(
        "--max-memory-gb", type=float, default=16.0, help="valkey maxmemory (noeviction): a bound"
    )
    ap.add_argument(
        "--history", action="store_true", help="then export, archive and export again, timing each (rates)"
    )
    args = ap.parse_args()
    result = asyncio.run(run(args.events, args.requests, args.duckdb_runs, args.max_memory_gb, args.history))
    print(f"wrote {write_results(result)}")


if __name__ == "__main__":
    main()
