"""Single-event ingest benchmark: what browser trackers send — one message per request — acknowledged in the log.

`wrk` (Debian's package) posts one `text/plain` JSON track message per request to `/v1/t` (analytics-next's short
path), Basic auth, an `Origin` header (so CORS headers are computed), keep-alive, no preflight (a browser caches
it), a unique `messageId` per request; against `streamfold serve --no-fold` + `streamfold fold` on a private
valkey-server (append-only file, `appendfsync always`, as `streamfold serve` runs it). Beside it, in the same
run and with the same client, `/v1/batch` requests of 100 events. Afterwards every acknowledged request is
checked to be in the log. Only 127.0.0.1; bounded by duration. Writes bench/results/single-event-<date>.md/.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import server_env, spawn, stop_all, wait_http  # noqa: E402

from api.embedded import EmbeddedValkey, free_port  # noqa: E402
from ingest import keys  # noqa: E402
from ingest.settings import Settings  # noqa: E402
from ingest.workspaces import WorkspaceRegistry  # noqa: E402
from projections.fold.progress import log_heads, wait_until_folded  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
RUDDERSTACK_GATEWAY_2CORE = 1_700  # requests/s, RudderStack's published gateway figure on 2 cores / 8 GB

# One analytics-next track message (~600 bytes of JSON). Lua fills in a unique messageId per request.
MESSAGE = {
    "type": "track",
    "event": "Viewed Plans",
    "messageId": "ajs-next-MSGID",
    "anonymousId": "6f1c0f3e-8f0b-4a55-9d7e-0b7c3c1f6a11",
    "userId": None,
    "properties": {"plan": "pro", "seats": 3},
    "timestamp": "2026-11-20T10:00:00.000Z",
    "sentAt": "2026-11-20T10:00:00.050Z",
    "context": {
        "page": {
            "url": "https://www.example.com/pricing?utm_source=news&utm_medium=email",
            "path": "/pricing",
            "referrer": "https://news.example.org/",
            "search": "?utm_source=news&utm_medium=email",
            "title": "Pricing",
        },
        "campaign": {"source": "news", "medium": "email"},
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0 Safari/537.36",
        "locale": "en-US",
        "library": {"name": "analytics.js", "version": "npm:next-1.84.3"},
    },
    "integrations": {},
}

LUA = """
local counter = 0
local thread_id = 0
local prefix, suffix = %(prefix)s, %(suffix)s
function setup(thread) thread:set("tid", thread_id); thread_id = thread_id + 1 end
function init(args) tid = tonumber(wrk.thread:get("tid") or 0) end
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/plain"
wrk.headers["Authorization"] = %(auth)s
wrk.headers["Origin"] = "https://www.example.com"
function request()
  counter = counter + 1
  return wrk.format(nil, %(path)s, nil, prefix .. tid .. "-" .. counter .. suffix)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%.3f %%.3f %%.3f\\n", summary.requests,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write,
    summary.errors.timeout, summary.duration, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency.mean / 1000))
end
"""


def lua_script(path: str, auth: str, body: bytes) -> str:
    prefix, _, suffix = body.decode().partition("MSGID")
    return LUA % {
        "prefix": json.dumps(prefix),
        "suffix": json.dumps(suffix),
        "auth": json.dumps(f"Basic {auth}"),
        "path": json.dumps(path),
    }


def run_wrk(port: int, script: str, seconds: int, connections: int, threads: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", f.name,
             f"http://127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=seconds + 60, check=True,
        ).stdout  # fmt: skip
    finally:
        os.unlink(f.name)
    m = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+)", out)
    if not m:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    requests, status_err, sock_err, timeouts, duration_us = (int(m.group(i)) for i in range(1, 6))
    seconds_run = duration_us / 1e6
    ok = requests - status_err
    return {
        "requests": requests,
        "non_2xx": status_err,
        "socket_errors": sock_err,
        "timeouts": timeouts,
        "seconds": round(seconds_run, 2),
        "acked_requests_per_s": round(ok / seconds_run),
        "p50_ms": float(m.group(6)),
        "p99_ms": float(m.group(7)),
        "mean_ms": float(m.group(8)),
    }


HELLO_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"success":true}'})
"""


async def bare_uvicorn_ceiling(seconds: int, connections: int, threads: int, body: bytes) -> dict:
    """Calibration on this (shared) machine, same client and body: uvicorn answering without any app code."""
    tmp = tempfile.mkdtemp(prefix="sf-bench-hello-")
    Path(tmp, "hello_app.py").write_text(HELLO_APP)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "hello_app:app", "--app-dir", tmp, "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await wait_http(port)
        return run_wrk(port, lua_script("/v1/t", "x", body), seconds, connections, threads)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


async def log_entries(redis: Redis, settings: Settings) -> int:
    pipe = redis.pipeline(transaction=False)
    for p in range(settings.partitions):
        pipe.xlen(keys.log(settings.key_prefix, p))
    return sum(await pipe.execute())


async def run(seconds: int, connections: int, threads: int, workers: int, fsync: str) -> dict:
    if shutil.which("wrk") is None:
        raise SystemExit("this benchmark needs wrk: apt-get install -y wrk")
    single_body = msgspec.json.encode(MESSAGE)
    batch_body = msgspec.json.encode(
        {
            "batch": [{**MESSAGE, "messageId": f"ajs-next-MSGID-{i}"} for i in range(100)],
            "sentAt": MESSAGE["sentAt"],
        }
    )
    tmp = tempfile.mkdtemp(prefix="sf-bench-single-")
    server = EmbeddedValkey(tmp, free_port(), appendonly=True, fsync=fsync)
    url = server.start()
    port = free_port()
    settings = Settings(redis_url=url, partitions=16)
    env = server_env(url, port)
    serve = ["serve", "--no-fold"] + (["--workers", str(workers)] if workers > 1 else [])
    procs = []
    try:
        redis = Redis.from_url(url)
        created = await WorkspaceRegistry(redis, settings).create_workspace("bench")
        write_key = next(k.key for k in created.keys if "write" in k.scopes)
        auth = base64.b64encode(f"{write_key}:".encode()).decode()
        procs.append(spawn(serve, env))
        procs.append(spawn(["fold"], env))
        await wait_http(port)
        run_wrk(port, lua_script("/v1/t", auth, single_body), 2, connections, threads)  # warm-up
        before = await log_entries(redis, settings)
        single = run_wrk(port, lua_script("/v1/t", auth, single_body), seconds, connections, threads)
        stored = await log_entries(redis, settings) - before
        t0 = time.perf_counter()
        heads = await log_heads(redis, settings.key_prefix, settings.partitions)
        await wait_until_folded(redis, settings.key_prefix, settings.partitions, timeout=600, targets=heads)
        fold_catch_up = time.perf_counter() - t0
        batch = run_wrk(port, lua_script("/v1/batch", auth, batch_body), seconds, connections, threads)
        await redis.aclose()
    finally:
        stop_all(procs, server, tmp)
    ceiling = await bare_uvicorn_ceiling(seconds, connections, threads, single_body)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} · {os.cpu_count()} vCPU · {platform.processor() or platform.machine()} · "
        f"Python {platform.python_version()}",
        "client": f"wrk -t{threads} -c{connections} -d{seconds}s (keep-alive, no preflight)",
        "http_workers": workers,
        "appendfsync": fsync,
        "single_event_bytes": len(single_body),
        "single": single,
        "single_acked_and_in_log": stored,
        "fold_catch_up_seconds_after_single": round(fold_catch_up, 2),
        "batch_100": {**batch, "acked_events_per_s": batch["acked_requests_per_s"] * 100},
        "rudderstack_gateway_2core_requests_per_s": RUDDERSTACK_GATEWAY_2CORE,
        "bare_uvicorn_ceiling": ceiling,
        "load_average_after": os.getloadavg()[0],
    }


def write_results(r: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = r["date"][:10]
    stamp += f"-w{r['http_workers']}"
    (RESULTS / f"single-event-{stamp}.json").write_text(json.dumps(r, indent=2) + "\n")
    s, b = r["single"], r["batch_100"]
    ratio = s["acked_requests_per_s"] / r["rudderstack_gateway_2core_requests_per_s"]
    md = RESULTS / f"single-event-{stamp}.md"
    md.write_text(
        f"""# Single-event ingest benchmark — {r["date"]}

Machine: {r["machine"]} (shared with other agents, noisy: read ratios, not absolutes). Client and server share
the 2 cores. Client: {r["client"]}, `Origin` header, Basic auth. Server: `streamfold serve --no-fold`
({r["http_workers"]} HTTP worker(s)) + `streamfold fold` on a private valkey-server, append-only file,
`appendfsync {r["appendfsync"]}`.
Data: one analytics-next-shaped `track` message per request ({r["single_event_bytes"]} bytes of JSON, `text/plain`,
`POST /v1/t`, unique `messageId` each); batch: 100 such messages per `POST /v1/batch` (repeated ids; ingest
acknowledges before dedupe, so it costs the same).

| measure | result |
|---|---|
| single-event requests acknowledged | **{s["acked_requests_per_s"]:,} requests/s** (p50 {s["p50_ms"]} ms, p99 {s["p99_ms"]} ms; {s["requests"]:,} requests in {s["seconds"]} s, non-2xx {s["non_2xx"]}, socket errors {s["socket_errors"]}) |
| of those, found in the log | {r["single_acked_and_in_log"]:,} entries |
| fold caught up after the single-event run | {r["fold_catch_up_seconds_after_single"]} s |
| batches of 100 acknowledged (same run, same client) | {b["acked_requests_per_s"]:,} requests/s = **{b["acked_events_per_s"]:,} events/s** (p50 {b["p50_ms"]} ms, p99 {b["p99_ms"]} ms) |
| reference: RudderStack gateway, 2 cores / 8 GB (published) | {r["rudderstack_gateway_2core_requests_per_s"]:,} requests/s |
| single-event ratio to that reference | {ratio:.1f}× |
| calibration: bare uvicorn (no app code, 1 worker) on this machine in this run | {r["bare_uvicorn_ceiling"]["acked_requests_per_s"]:,} requests/s (p99 {r["bare_uvicorn_ceiling"]["p99_ms"]} ms) |
| 1-minute load average after the run (2 cores; other agents share them) | {r["load_average_after"]:.1f} |

Target (PERFORMANCE.md): ≥ 10,000 single-event requests/s acknowledged, p99 ≤ 10 ms, on the 2 cores.
"""
    )
    return md


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="HTTP worker processes of streamfold serve")
    ap.add_argument("--fsync", default="always", choices=["always", "everysec", "no"])
    args = ap.parse_args()
    result = asyncio.run(run(args.seconds, args.connections, args.threads, args.workers, args.fsync))
    print(json.dumps(result, indent=2))
    print(f"wrote {write_results(result)}")


if __name__ == "__main__":
    main()
