"""Soak benchmark: a long run at 70 % of the measured capacity, writes and reads mixed; is everything flat?

On a private valkey-server (append-only file on, `appendfsync always`, the embedded default) it starts
`streamfold serve --no-fold` and `streamfold fold`, then:

1. Capacity: sends `--capacity-events` as `/v1/batch` requests of 100 as fast as 16 connections go and times
   them until queryable (the fold caught up): the sustained end-to-end rate.
2. Soak: `--minutes` (default 10) sending 70 % of that rate open-loop (the schedule does not wait for answers),
   while readers ask the Events and contacts APIs `--reads-per-second` times. Every 10 s it samples the RSS of
   every process (server, fold, valkey-server, children included), Redis' used memory, the fold's lag, and the
   window's write and read latencies and statuses.

Flat means: process RSS at the end within a few percent of its level after warm-up, the fold's lag bounded (it
catches up within a sample or two), Redis memory growing only with the events stored (bytes per event steady),
no 5xx. Writes bench/results/soak-<date>.md and .json. Only 127.0.0.1; bounded in time; stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import random
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
from projections.fold.progress import log_heads, read_fold_lag, wait_until_folded  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PER_BATCH = 100
SAMPLE_SECONDS = 10
READS = (
    "/v1/events?limit=50",
    "/v1/events?limit=50&event_type=event_3",
    "/v1/events/stats",
    "/v1/contacts?limit=20",
    "/v1/events/types",
)


class Connection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1, raw (a client library would cost more than the server)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, headers: str, body: bytes = b"") -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Content-Length: {len(body)}\r\n\r\n"
        self.writer.write(head.encode() + body)
        status = int((await self.reader.readline()).split()[1])
        length, close = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            low = line.lower()
            if low.startswith(b"content-length:"):
                length = int(line.split(b":")[1])
            elif low.startswith(b"connection:") and b"close" in low:
                close = True
        await self.reader.readexactly(length)
        if close:
            self.writer.close()
            self.writer = None
        return status


class Events:
    """`/v1/batch` bodies of fresh events (~370 bytes of JSON each, like bench/ingest.py), timestamped now."""

    def __init__(self) -> None:
        self.n = itertools.count()

    def body(self) -> bytes:
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        batch = []
        for _ in range(PER_BATCH):
            i = next(self.n)
            batch.append(
                {
                    "type": "track" if i % 3 else "page",
                    "event": f"event_{i % 12}",
                    "messageId": str(uuid.uuid4()),
                    "userId": f"user-{i % 5000}" if i % 4 == 0 else None,
                    "anonymousId": f"anon-{random.randrange(20000)}",
                    "timestamp": now,
                    "properties": {"plan": "pro", "value": i % 100, "path": f"/p/{i % 200}"},
                    "context": {
                        "page": {"url": f"https://site{i % 200}.example.com/p/{i % 200}?utm_source=news"},
                        "library": {"name": "analytics-python", "version": "2.4.0"},
                    },
                }
            )
        return msgspec.json.encode({"batch": batch, "sentAt": now})


class Window:
    """Latencies and statuses since the last sample."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}

    def add(self, seconds: float, status: int) -> None:
        self.latencies.append(seconds)
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def take(self) -> dict:
        lat = sorted(self.latencies)
        out = {
            "n": len(lat),
            "p50_ms": round(1000 * statistics.median(lat), 1) if lat else None,
            "p99_ms": round(1000 * lat[int(0.99 * (len(lat) - 1))], 1) if lat else None,
            "statuses": dict(self.statuses),
        }
        self.latencies, self.statuses = [], {}
        return out


def rss_bytes(pid: int) -> int:
    """RSS of a process and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


async def measure_capacity(port: int, auth: str, redis: Redis, settings: Settings, n: int) -> float:
    events = Events()
    bodies = [events.body() for _ in range(n // PER_BATCH)]
    queue = list(reversed(bodies))
    t0 = time.perf_counter()

    async def worker() -> None:
        conn = Connection(port)
        while queue:
            status = await conn.request("POST", "/v1/batch", auth, queue.pop())
            assert status == 200, status

    await asyncio.gather(*(worker() for _ in range(16)))
    heads = await log_heads(redis, settings.key_prefix, settings.partitions)
    await wait_until_folded(redis, settings.key_prefix, settings.partitions, timeout=600, targets=heads)
    return len(bodies) * PER_BATCH / (time.perf_counter() - t0)


async def soak(
    port: int, auth: str, read_auth: str, redis: Redis, settings: Settings, procs: dict[str, int], *,
    rate: float, seconds: float, reads_per_second: float,
) -> list[dict]:  # fmt: skip
    events = Events()
    writes, reads = Window(), Window()
    pending: asyncio.Queue[bytes] = asyncio.Queue()
    sent = 0
    stop = asyncio.Event()
    start = time.perf_counter()

    async def schedule() -> None:  # open loop: batches are due at the rate, whatever the answers
        nonlocal sent
        while not stop.is_set():
            due = int((time.perf_counter() - start) * rate / PER_BATCH)
            while sent < due:
                pending.put_nowait(events.body())
                sent += 1
            await asyncio.sleep(0.02)  # sleep-ok: the sender's clock tick

    async def writer() -> None:
        conn = Connection(port)
        while not stop.is_set():
            try:
                body = await asyncio.wait_for(pending.get(), 0.5)
            except TimeoutError:
                continue
            t0 = time.perf_counter()
            status = await conn.request("POST", "/v1/batch", auth, body)
            writes.add(time.perf_counter() - t0, status)

    async def reader() -> None:
        conn = Connection(port)
        paths = itertools.cycle(READS)
        while not stop.is_set():
            t0 = time.perf_counter()
            status = await conn.request("GET", next(paths), read_auth)
            reads.add(time.perf_counter() - t0, status)
            await asyncio.sleep(
                max(0.0, 1 / reads_per_second * 4 - (time.perf_counter() - t0))
            )  # sleep-ok: pacing

    samples: list[dict] = []

    async def sampler() -> None:
        while not stop.is_set():
            await asyncio.sleep(SAMPLE_SECONDS)  # sleep-ok: the sampling period
            lag = await read_fold_lag(redis, settings.key_prefix, settings.partitions)
            info = await redis.info("memory")
            samples.append(
                {
                    "t_s": round(time.perf_counter() - start),
                    "events_sent": sent * PER_BATCH,
                    "queued_batches": pending.qsize(),
                    "rss_mb": {name: round(rss_bytes(pid) / 2**20, 1) for name, pid in procs.items()},
                    "redis_used_mb": round(int(info["used_memory"]) / 2**20, 1),
                    "fold_lag_entries": sum(p.lag_entries or 0 for p in lag),
                    "fold_lag_s": round(max(p.lag_seconds for p in lag), 2),
                    "writes": writes.take(),
                    "reads": reads.take(),
                    "load": load_average(),
                }
            )
            s = samples[-1]
            print(
                f"t={s['t_s']}s sent={s['events_sent']} lag={s['fold_lag_entries']} "
                f"rss={s['rss_mb']} redis={s['redis_used_mb']}MB w={s['writes']} r={s['reads']}",
                flush=True,
            )

    tasks = [asyncio.create_task(schedule()), asyncio.create_task(sampler())]
    tasks += [asyncio.create_task(writer()) for _ in range(16)]
    tasks += [asyncio.create_task(reader()) for _ in range(4)]
    await asyncio.sleep(seconds)  # sleep-ok: the soak's length
    stop.set()
    await asyncio.gather(*tasks)
    return samples


async def run(minutes: float, capacity_events: int, reads_per_second: float) -> dict:
    load_before = load_average()
    tmp = tempfile.mkdtemp(prefix="sf-soak-")
    server = EmbeddedValkey(tmp, free_port(), appendonly=True, fsync="always")
    url = server.start()
    port = free_port()
    settings = Settings(redis_url=url, partitions=16)
    env = server_env(url, port)
    procs = []
    try:
        redis = Redis.from_url(url)
        created = await WorkspaceRegistry(redis, settings).create_workspace("soak")
        write_key = next(k.key for k in created.keys if "write" in k.scopes)
        read_key = next(k.key for k in created.keys if "events:read" in k.scopes)
        auth = f"Authorization: Basic {base64.b64encode(f'{write_key}:'.encode()).decode()}\r\n"
        auth += "Content-Type: application/json\r\n"
        read_auth = f"Authorization: Bearer {read_key}\r\n"
        procs.append(spawn(["serve", "--no-fold"], env))
        procs.append(spawn(["fold"], env))
        await wait_http(port)
        capacity = await measure_capacity(port, auth, redis, settings, capacity_events)
        print(f"capacity {capacity:,.0f} events/s; soaking at 70 %", flush=True)
        pids = {"serve": procs[0].pid, "fold": procs[1].pid, "valkey": server.proc.pid}
        samples = await soak(
            port, auth, read_auth, redis, settings, pids,
            rate=0.7 * capacity, seconds=60 * minutes, reads_per_second=reads_per_second,
        )  # fmt: skip
        heads = await log_heads(redis, settings.key_prefix, settings.partitions)
        t0 = time.perf_counter()
        await wait_until_folded(redis, settings.key_prefix, settings.partitions, timeout=600, targets=heads)
        drain_s = time.perf_counter() - t0
        await redis.aclose()
    finally:
        stop_all(procs, server, tmp)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_before": load_before,
        "load_after": load_average(),
        "minutes": minutes,
        "capacity_events_per_s": round(capacity),
        "soak_events_per_s": round(0.7 * capacity),
        "reads_per_second": reads_per_second,
        "drain_after_s": round(drain_s, 2),
        "samples": samples,
        "verdict": verdict(samples, capacity_events),
    }


def verdict(samples: list[dict], capacity_events: int) -> dict:
    """Growth of each process's RSS from the first minute (warm-up done) to the end; lag; errors; Redis bytes
    per stored event at the first and the last sample."""
    warm = samples[min(5, len(samples) - 1)]
    last = samples[-1]
    growth = {
        name: round(100 * (last["rss_mb"][name] - warm["rss_mb"][name]) / warm["rss_mb"][name], 1)
        for name in last["rss_mb"]
        if name != "valkey"
    }

    def per_event(s: dict) -> float:
        return round(s["redis_used_mb"] * 2**20 / (s["events_sent"] + capacity_events))

    errors = sum(
        n for s in samples for k in ("writes", "reads") for c, n in s[k]["statuses"].items() if c >= 500
    )
    return {
        "rss_growth_pct_after_warmup": growth,
        "max_fold_lag_entries": max(s["fold_lag_entries"] for s in samples),
        "max_fold_lag_s": max(s["fold_lag_s"] for s in samples),
        "redis_bytes_per_event_first_last": [per_event(warm), per_event(last)],
        "http_5xx": errors,
    }


def write_results(r: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = r["date"][:10]
    (RESULTS / f"soak-{stamp}.json").write_text(json.dumps(r, indent=2) + "\n")
    v = r["verdict"]
    rows = "\n".join(
        f"| {s['t_s']} | {s['events_sent']:,} | {s['rss_mb']['serve']} | {s['rss_mb']['fold']} | "
        f"{s['rss_mb']['valkey']} | {s['redis_used_mb']} | {s['fold_lag_entries']} | {s['fold_lag_s']} | "
        f"{s['writes']['p50_ms']} / {s['writes']['p99_ms']} | {s['reads']['p50_ms']} / {s['reads']['p99_ms']} | "
        f"{s['load'][0]} |"
        for s in r["samples"]
    )
    md = RESULTS / f"soak-{stamp}.md"
    md.write_text(
        f"""# Soak benchmark — {r["date"]}

Machine: {r["machine"]}; load average before {r["load_before"]}, after {r["load_after"]}.
Setup: `streamfold serve --no-fold` + `streamfold fold` (16 partitions) on a private valkey-server, append-only
file on, `appendfsync always`; one workspace; `/v1/batch` requests of {PER_BATCH} events (~370 bytes of JSON each).

Capacity (sustained HTTP → queryable): **{r["capacity_events_per_s"]:,} events/s**. Soak: {r["minutes"]} minutes
at 70 % of it, **{r["soak_events_per_s"]:,} events/s** open-loop, plus {r["reads_per_second"]} reads/s (events
list, filtered list, stats, contacts, event types). The fold drained {r["drain_after_s"]} s after the load stopped.

| verdict | |
|---|---|
| process RSS growth after warm-up (1 min) to end | {v["rss_growth_pct_after_warmup"]} % |
| fold lag, max | {v["max_fold_lag_entries"]} entries, {v["max_fold_lag_s"]} s |
| Redis bytes per stored event (at 1 min, at end) | {v["redis_bytes_per_event_first_last"]} |
| HTTP 5xx | {v["http_5xx"]} |

Every {SAMPLE_SECONDS} s (RSS in MB, process and its children; latencies p50 / p99 in ms over the window):

| t (s) | events sent | serve | fold | valkey | Redis used MB | lag (entries) | lag (s) | writes | reads | load |
|---|---|---|---|---|---|---|---|---|---|---|
{rows}
"""
    )
    return md


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--capacity-events", type=int, default=100_000)
    ap.add_argument("--reads-per-second", type=float, default=20)
    args = ap.parse_args()
    result = asyncio.run(run(args.minutes, args.capacity_events, args.reads_per_second))
    print(json.dumps(result["verdict"], indent=2))
    print(f"wrote {write_results(result)}")


if __name__ == "__main__":
    main()
