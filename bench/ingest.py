"""Ingest benchmark: HTTP → acknowledged → queryable, beside the raw XADD baseline, in one run.

Sends N events (default 200k) as `/v1/batch` requests of 100 events over 32 keep-alive connections to a
`streamfold serve --no-fold` process, with a `streamfold fold` process folding, all on a private
valkey-server (append-only file on, fsync always — the embedded default). Then, on a fresh server, the
same events XADDed one per entry from one Python process in pipelines of 100 (the PERFORMANCE.md anchor).
Writes bench/results/ingest-<date>.md and .json. Only 127.0.0.1; bounded by N and timeouts.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import load_average, machine, server_env, spawn, stop_all, wait_http  # noqa: E402

from api.embedded import EmbeddedValkey, free_port  # noqa: E402
from ingest.settings import Settings  # noqa: E402
from ingest.workspaces import WorkspaceRegistry  # noqa: E402
from projections.fold.progress import log_heads, wait_until_folded  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def make_bodies(n_events: int, per_batch: int) -> tuple[list[bytes], list[dict]]:
    """Pre-encoded `/v1/batch` bodies with unique messageIds (~400 bytes per event, like the anchor)."""
    events = []
    for i in range(n_events):
        events.append(
            {
                "type": "track" if i % 3 else "page",
                "event": f"event_{i % 12}",
                "messageId": str(uuid.UUID(int=i + 1)),
                "userId": f"user-{i % 5000}" if i % 4 == 0 else None,
                "anonymousId": f"anon-{i % 20000}",
                "timestamp": "2026-11-20T10:00:00.000Z",
                "properties": {"plan": "pro", "value": i % 100, "path": f"/p/{i % 200}"},
                "context": {
                    "page": {
                        "url": f"https://site{i % 200}.example.com/p/{i % 200}?utm_source=news",
                        "title": "Page",
                    },
                    "library": {"name": "analytics-python", "version": "2.4.0"},
                },
            }
        )
    bodies = [
        msgspec.json.encode({"batch": events[i : i + per_batch], "sentAt": "2026-11-20T10:00:00.000Z"})
        for i in range(0, n_events, per_batch)
    ]
    return bodies, events


async def http_load(port: int, write_key: str, bodies: list[bytes], connections: int) -> dict:
    auth = base64.b64encode(f"{write_key}:".encode()).decode()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                try:
                    body = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                head = (
                    f"POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode()
                t0 = time.perf_counter()
                writer.write(head + body)
                status_line = await reader.readline()
                length = 0
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - t0)
                code = int(status_line.split()[1])
                statuses[code] = statuses.get(code, 0) + 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - t0
    latencies.sort()
    return {
        "seconds": elapsed,
        "requests": len(bodies),
        "statuses": statuses,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


async def xadd_baseline(url: str, events: list[dict], per_pipe: int) -> float:
    redis = Redis.from_url(url)
    payloads = [msgspec.json.encode(e) for e in events]
    t0 = time.perf_counter()
    for i in range(0, len(payloads), per_pipe):
        pipe = redis.pipeline(transaction=False)
        for p in payloads[i : i + per_pipe]:
            pipe.xadd("bench:xadd", {"e": p})
        await pipe.execute()
    elapsed = time.perf_counter() - t0
    await redis.aclose()
    return len(payloads) / elapsed


async def run(n_events: int, per_batch: int, connections: int, fsync: str, workers: int) -> dict:
    bodies, events = make_bodies(n_events, per_batch)
    raw_bytes = sum(len(msgspec.json.encode(e)) for e in events) / len(events)
    tmp = tempfile.mkdtemp(prefix="sf-bench-")
    server = EmbeddedValkey(tmp, free_port(), appendonly=True, fsync=fsync)
    url = server.start()
    port = free_port()
    settings = Settings(redis_url=url, partitions=16)
    env = server_env(url, port)
    procs = []
    try:
        redis = Redis.from_url(url)
        created = await WorkspaceRegistry(redis, settings).create_workspace("bench")
        write_key = next(k.key for k in created.keys if "write" in k.scopes)
        procs.append(spawn(["serve", "--no-fold", "--workers", str(workers)], env))
        procs.append(spawn(["fold"], env))
        await wait_http(port)
        t0 = time.perf_counter()
        load = await http_load(port, write_key, bodies, connections)
        heads = await log_heads(redis, settings.key_prefix, settings.partitions)
        await wait_until_folded(redis, settings.key_prefix, settings.partitions, timeout=600, targets=heads)
        queryable_s = time.perf_counter() - t0
        info = await redis.info("memory")
        await redis.aclose()
    finally:
        stop_all(procs, server, tmp)

    tmp = tempfile.mkdtemp(prefix="sf-bench-")
    server = EmbeddedValkey(tmp, free_port(), appendonly=True, fsync=fsync)
    try:
        xadd_rate = await xadd_baseline(server.start(), events, 100)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average": load_average(),
        "events": n_events,
        "batch": per_batch,
        "connections": connections,
        "avg_event_json_bytes": round(raw_bytes),
        "appendfsync": fsync,
        "http_workers": workers,
        "http_ack_events_per_s": round(n_events / load["seconds"]),
        "http_requests_per_s": round(load["requests"] / load["seconds"]),
        "http_p50_ms": round(load["p50_ms"], 2),
        "http_p99_ms": round(load["p99_ms"], 2),
        "statuses": load["statuses"],
        "queryable_events_per_s": round(n_events / queryable_s),
        "raw_xadd_events_per_s": round(xadd_rate),
        "redis_used_memory_bytes": int(info["used_memory"]),
    }


def write_results(r: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = f"{r['date'][:10]}-w{r['http_workers']}"
    (RESULTS / f"ingest-{stamp}.json").write_text(json.dumps(r, indent=2) + "\n")
    md = RESULTS / f"ingest-{stamp}.md"
    md.write_text(
        f"""# Ingest benchmark — {r["date"]}

Machine: {r["machine"]}; load average {r["load_average"]} at the end (shared, noisy: read ratios, not absolutes).
Data: {r["events"]:,} events (~{r["avg_event_json_bytes"]} bytes of JSON each), `/v1/batch` requests of {r["batch"]},
{r["connections"]} keep-alive connections; `streamfold serve --no-fold --workers {r["http_workers"]}` + `streamfold fold`
(all 16 partitions) on a private valkey-server, append-only file on, `appendfsync {r["appendfsync"]}`.

| measure | result |
|---|---|
| HTTP acknowledged (in the log) | **{r["http_ack_events_per_s"]:,} events/s** ({r["http_requests_per_s"]:,} requests/s; p50 {r["http_p50_ms"]} ms, p99 {r["http_p99_ms"]} ms) |
| HTTP → queryable (fold caught up) | **{r["queryable_events_per_s"]:,} events/s** |
| baseline: raw XADD, one event per entry, pipelines of 100, one Python process | {r["raw_xadd_events_per_s"]:,} events/s |
| ratio acknowledged / baseline | {r["http_ack_events_per_s"] / r["raw_xadd_events_per_s"]:.2f}× |
| statuses | {r["statuses"]} |
"""
    )
    return md


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--fsync", default="always", choices=["always", "everysec", "no"])
    ap.add_argument("--workers", type=int, default=1, help="HTTP worker processes of the server")
    args = ap.parse_args()
    result = asyncio.run(run(args.events, args.batch, args.connections, args.fsync, args.workers))
    print(json.dumps(result, indent=2))
    print(f"wrote {write_results(result)}")


if __name__ == "__main__":
    main()
