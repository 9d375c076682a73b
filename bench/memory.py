"""Memory benchmark: Redis bytes per event by kind of key, for a workspace folded from synthetic events.

One run: a private valkey-server (no persistence), N events of `bench/query.py`'s generator (`--data query`:
12 skewed types, 200 domains, 365 days) or of `bench/attribution.py`'s (`--data attribution`: campaign landings
with ad hierarchy fields, purchases by user id) appended straight into the log and folded in-process, then
`MEMORY USAGE` (exact: `SAMPLES 0`) of every key, grouped by kind (`memory_by_kind`: the key's name after the
workspace with its variable parts dropped, e.g. `ix:t`, `tp:doc`, `cnt:<day>`; the log is `log`).
Writes bench/results/memory-<data>-<N>-<date>[-<label>].md and .json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.embedded import EmbeddedValkey, free_port  # noqa: E402
from ingest import keys as log_keys  # noqa: E402
from ingest.log import EventLog, entry_fields  # noqa: E402
from ingest.redis_client import connect_redis  # noqa: E402
from ingest.settings import Settings  # noqa: E402
from ingest.workspaces import WorkspaceRegistry  # noqa: E402
from projections.fold.fold import fold_entries  # noqa: E402
from projections.keyspace import Keyspace  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
GROUPED = ("ix", "tp", "cv", "id", "co", "ct", "cnt")  # kinds named by their first two parts
BATCH_ENTRIES = 500  # log entries per fold batch, as `streamfold fold` with STREAMFOLD_FOLD_BATCH_ENTRIES=500


def kind_of(key: str) -> str:
    """The kind of a key: `log`, or its name after `…:w:<workspace>:` cut to the part that names the kind."""
    if key.endswith(":log"):
        return "log"
    rest = key.partition(":w:")[2].partition(":")[2]
    if not rest:
        return key
    parts = rest.split(":")
    kind = ":".join(parts[:2]) if parts[0] in GROUPED else parts[0]
    return "cnt:<day>" if kind[4:5].isdigit() else kind


async def memory_by_kind(redis: Redis) -> dict[str, tuple[int, int]]:
    """kind → (bytes, keys): MEMORY USAGE of every key of the server (pipelined, exact), grouped by `kind_of`,
    largest first."""
    sizes: dict[str, list[int]] = {}
    batch: list[bytes] = []

    async def measure() -> None:
        pipe = redis.pipeline(transaction=False)
        for k in batch:
            pipe.memory_usage(k, samples=0)
        for k, used in zip(batch, await pipe.execute(), strict=True):
            s = sizes.setdefault(kind_of(k.decode(errors="replace")), [0, 0])
            s[0] += used or 0
            s[1] += 1
        batch.clear()

    async for key in redis.scan_iter(count=5000):
        batch.append(key)
        if len(batch) == 2000:
            await measure()
    await measure()
    return {k: (b, n) for k, (b, n) in sorted(sizes.items(), key=lambda kv: -kv[1][0])}


def per_event(sizes: dict[str, tuple[int, int]], n: int, floor: float = 0.5) -> dict[str, float]:
    """Bytes per event by kind (kinds under `floor` bytes/event left out), as `bench/query.py` reports them."""
    return {k: round(b / n, 1) for k, (b, _) in sizes.items() if b / n >= floor}


async def append_query_events(redis: Redis, settings: Settings, workspace: str, n: int) -> int:
    from query import generate

    stream = EventLog(redis, settings).stream(workspace)
    pipe = redis.pipeline(transaction=False)
    made = 0
    for events, _ in generate(n):
        pipe.xadd(stream, entry_fields(workspace, events), id=f"{events[0].received_at}-*")  # type: ignore[arg-type]
        made += len(events)
        if len(pipe) == 500:
            await pipe.execute()
    await pipe.execute()
    return made


async def append_attribution_events(redis: Redis, settings: Settings, workspace: str, n: int) -> int:
    from attribution import generate

    events, _ = generate(n, max(1, n // 10), 7)
    log = EventLog(redis, settings)
    for i in range(0, len(events), 500):
        await log.append(workspace, events[i : i + 500])
    return len(events)


async def run(data: str, n: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="sf-membench-"))
    server = EmbeddedValkey(tmp / "valkey", free_port(), appendonly=False)
    url = server.start()
    try:
        redis = connect_redis(url)
        settings = Settings(redis_url=url, partitions=16)
        ws = (await WorkspaceRegistry(redis, settings).create_workspace("bench")).workspace.id
        append = append_query_events if data == "query" else append_attribution_events
        made = await append(redis, settings, ws, n)
        ks = Keyspace(settings.key_prefix, log_keys.partition_of(ws, settings.partitions))
        stream = log_keys.log(settings.key_prefix, ks.partition)
        t = time.perf_counter()
        start = "-"
        while chunk := await redis.xrange(stream, start, "+", count=BATCH_ENTRIES):
            await fold_entries(redis, ks, chunk, fence=None, ack_group=None)
            start = "(" + chunk[-1][0].decode()
        fold_s = time.perf_counter() - t
        sizes = await memory_by_kind(redis)
        await redis.aclose()
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} · {os.cpu_count()} vCPU · {platform.machine()} · Python {platform.python_version()}",
        "data": data,
        "events": made,
        "fold_events_per_s": round(made / fold_s),
        "bytes_per_event": round(sum(b for b, _ in sizes.values()) / made, 1),
        "by_kind": {k: {"bytes_per_event": round(b / made, 2), "keys": c} for k, (b, c) in sizes.items()},
    }


def write_results(r: dict[str, Any], label: str | None, total: list[str]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stem = f"memory-{r['data']}-{r['events']}-{r['date'][:10]}" + (f"-{label}" if label else "")
    (RESULTS / f"{stem}.json").write_text(json.dumps(r, indent=2) + "\n")
    kinds = r["by_kind"]
    lines = [
        f"# Memory by kind of key — {r['events']:,} events (`--data {r['data']}`){f' — {label}' if label else ''}"
        f" — {r['date']}",
        "",
        f"Machine: {r['machine']}. Folded in-process at {r['fold_events_per_s']:,} events/s (noisy, shared).",
        f"Redis memory of every key: **{r['bytes_per_event']:,} bytes/event**, log included (MEMORY USAGE, exact).",
        "",
        "| kind | bytes/event | keys |",
        "|---|---|---|",
    ]
    lines += [f"| `{k}` | {v['bytes_per_event']:g} | {v['keys']:,} |" for k, v in kinds.items()]
    if total:
        picked = {k: v for k, v in kinds.items() if k in total}
        s = sum(v["bytes_per_event"] for v in picked.values())
        lines += ["", f"{' + '.join(f'`{k}`' for k in picked)}: **{s:.1f} bytes/event**."]
    md = RESULTS / f"{stem}.md"
    md.write_text("\n".join(lines) + "\n")
    return md


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--data", choices=("query", "attribution"), default="query")
    ap.add_argument("--label", help="appended to the result file names (e.g. before / after)")
    ap.add_argument("--total", nargs="*", default=[], help="kinds to sum in the report (e.g. tp:doc cv:n)")
    args = ap.parse_args()
    result = asyncio.run(run(args.data, args.events))
    md = write_results(result, args.label, args.total)
    print(md.read_text())


if __name__ == "__main__":
    main()
