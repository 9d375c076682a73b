"""Identity fold benchmark: fold throughput with the identity projection, against the same fold with identity
stubbed out (every event anonymous), over two logs — ordinary traffic (30% of events carry a userId) and
identity churn (identifies with shared emails, aliases, groups, email events: merges and retroactive moves).

Folds straight through `fold_entries` (batches of 200 log entries, as the applier) on a private valkey-server.
Writes bench/results/identity-fold-<date>.md and .json. Only 127.0.0.1; bounded by N.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.embedded import EmbeddedValkey, free_port  # noqa: E402
from ingest import keys as log_keys  # noqa: E402
from ingest.log import EventLog  # noqa: E402
from ingest.settings import Settings  # noqa: E402
from projections import identity  # noqa: E402
from projections.fold.fold import fold_entries  # noqa: E402
from projections.identity import WorkspaceIdentity  # noqa: E402
from projections.keyspace import Keyspace  # noqa: E402
from tests.factories import make_events  # noqa: E402
from tests.test_identity_scenario import churn  # noqa: E402

BATCH = 200


async def fold_all(redis: Redis, prefix: str, view: str) -> float:
    ks = Keyspace(prefix, 0, view)
    stream = log_keys.log(prefix, 0)
    start, t0 = "-", time.perf_counter()
    while True:
        chunk = await redis.xrange(stream, start, "+", count=BATCH)
        if not chunk:
            break
        await fold_entries(redis, ks, chunk, fence=None, ack_group=None)
        start = f"({chunk[-1][0].decode()}"
    return time.perf_counter() - t0


def identity_off():  # type: ignore[no-untyped-def]
    """Stub the identity hook: no contacts, no moves (the baseline the identity cost is measured against)."""

    async def no_identity(redis: Redis, ks: Keyspace, batch: dict) -> dict:
        return {ws: WorkspaceIdentity(ks, ws) for ws in batch}

    # without contacts nothing moves either
    return mock.patch.multiple(
        identity, load_identity=no_identity, resolve_contacts=lambda state, located: [None] * len(located)
    )


async def run(n: int) -> dict:
    data_dir = tempfile.mkdtemp(prefix="sf-bench-identity-")
    server = EmbeddedValkey(data_dir, free_port(), appendonly=False)
    url = server.start()
    redis = Redis.from_url(url)
    results = {}
    try:
        traffic = make_events(n, seed=3)
        for name, entries in (
            ("traffic", [traffic[i : i + 100] for i in range(0, n, 100)]),
            ("churn", churn(n // 6, seed=9)),
        ):
            prefix = f"b{name}"
            settings = Settings(redis_url=url, key_prefix=prefix, partitions=1)
            log = EventLog(redis, settings)
            for events in entries:
                await log.append("ws_bench", events)
            events_n = sum(len(e) for e in entries)
            with identity_off():
                off = await fold_all(redis, prefix, "off")
            on = await fold_all(redis, prefix, "on")
            results[name] = {
                "events": events_n,
                "identity_on_s": round(on, 3),
                "identity_off_s": round(off, 3),
                "identity_on_events_per_s": round(events_n / on),
                "identity_off_events_per_s": round(events_n / off),
            }
    finally:
        await redis.aclose()
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=60_000)
    args = parser.parse_args()
    results = asyncio.run(run(args.n))
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    out = Path(__file__).parent / "results"
    meta = {"date": date, "python": platform.python_version(), "machine": platform.machine(), "batch": BATCH}
    (out / f"identity-fold-{date}.json").write_text(json.dumps({**meta, "results": results}, indent=2))
    lines = [
        f"# Identity fold benchmark ({date})",
        "",
        f"`python bench/identity_fold.py -n {args.n}`: fold through `fold_entries`, {BATCH} log entries per "
        "transaction, private valkey-server, one process (2-core shared machine).",
        "",
        "| log | events | identity on | identity off (stubbed) |",
        "|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['events']} | {r['identity_on_s']} s ({r['identity_on_events_per_s']}/s) "
            f"| {r['identity_off_s']} s ({r['identity_off_events_per_s']}/s) |"
        )
    (out / f"identity-fold-{date}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
