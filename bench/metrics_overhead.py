"""What the Prometheus metrics cost one ingest fast-path request, in-process (no network, no Redis).

Times a stand-in for `IngestFastPath` answering a one-event `POST /v1/t` (it reports one accepted event to the
`Receiver`'s observer and sends the two ASGI messages) with and without the metrics: `RequestMetrics` around it
and `IngestMetrics` as the observer. The difference is the per-request cost. Runs twice: single-process values,
and multiprocess values (`PROMETHEUS_MULTIPROC_DIR`, as under `serve --workers N`), each in a fresh interpreter
because prometheus_client picks its mode at import.

    .venv/bin/python bench/metrics_overhead.py [-n 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def measure(n: int, rounds: int) -> dict[str, float]:
    from api.metrics import IngestMetrics, RequestMetrics
    from ingest.observe import IngestObserver

    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json")],
    }
    body = {"type": "http.response.body", "body": b'{"success":true}'}
    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": "/v1/t", "headers": []}

    def fast_path(observer: IngestObserver) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            observer.received("sdk", 1)
            await send(start)
            await send(body)

        return app

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    async def per_request(app: Any) -> float:
        best = float("inf")
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(n):
                await app(scope, receive, send)
            best = min(best, (time.perf_counter() - t0) / n)
        return best

    async def run() -> dict[str, float]:
        bare = await per_request(fast_path(IngestObserver()))
        metered = await per_request(RequestMetrics(fast_path(IngestMetrics())))
        return {"bare_us": bare * 1e6, "metered_us": metered * 1e6, "cost_us": (metered - bare) * 1e6}

    return asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=200_000, help="requests per round")
    ap.add_argument("--rounds", type=int, default=5, help="rounds; the fastest counts")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.n, args.rounds)))
        return
    for mode in ("single-process", "multiprocess"):
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        with tempfile.TemporaryDirectory() as shared:
            if mode == "multiprocess":
                env["PROMETHEUS_MULTIPROC_DIR"] = shared
            out = subprocess.run(
                [sys.executable, __file__, "--child", "-n", str(args.n), "--rounds", str(args.rounds)],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        r = json.loads(out)
        print(
            f"{mode:>15}: {r['bare_us']:.2f} µs bare, {r['metered_us']:.2f} µs with metrics "
            f"→ {r['cost_us']:.2f} µs per request"
        )


if __name__ == "__main__":
    main()
