"""`streamfold rebuild` replays every partition and compares digests; on a terminal it shows progress (entries
replayed of the log length, per partition and overall); elsewhere its output is the result lines only."""

from __future__ import annotations

import asyncio
import io

from rich.console import Console

from api.cli import _CountingReads
from api.console import job_progress
from ingest import keys as log_keys
from ingest.keys import partition_of
from projections.fold.rebuild import rebuild_and_compare

from .cli_helpers import common_flags, streamfold


async def _send(client, workspace, n: int) -> None:
    batch = [
        {"type": "track", "userId": f"u{i}", "event": "signed_up", "messageId": f"m{i}"} for i in range(n)
    ]
    for chunk in range(0, n, 10):
        r = await client.post(
            "/v1/batch", json={"batch": batch[chunk : chunk + 10]}, auth=(workspace.write_key, "")
        )
        assert r.json() == {"success": True}


async def test_rebuild_reports_each_partition_and_the_verdict(client, workspace, folded, settings):
    await _send(client, workspace, 30)
    await folded()
    result = await asyncio.to_thread(streamfold, "rebuild", *common_flags(settings))
    assert result.returncode == 0, result.stderr
    p = partition_of(workspace.id, settings.partitions)
    assert f"partition {p:>3}: 3 entries replayed" in result.stdout
    assert result.stdout.rstrip().endswith("rebuild digest equals the live digest")
    assert result.stderr == ""  # not a terminal: no bars


async def test_the_progress_counts_every_entry_the_replay_reads(client, workspace, folded, settings, redis):
    await _send(client, workspace, 50)
    await folded()
    p = partition_of(workspace.id, settings.partitions)
    counted: list[int] = []
    _, _, n = await rebuild_and_compare(_CountingReads(redis, counted.append), settings.key_prefix, p)  # type: ignore[arg-type]
    assert sum(counted) == n == await redis.xlen(log_keys.log(settings.key_prefix, p)) == 5


def test_progress_bars_show_done_of_total_on_a_terminal():
    out = io.StringIO()
    with job_progress(console=Console(file=out, force_terminal=True, width=100)) as progress:
        task = progress.task("partition 3", total=10, unit="entries")
        task.advance(4)
        task.advance(1)
    assert "partition 3" in out.getvalue() and "5/10" in out.getvalue() and "entries" in out.getvalue()


def test_no_progress_bars_when_not_a_terminal():
    out = io.StringIO()
    with job_progress(console=Console(file=out, force_terminal=False)) as progress:
        progress.task("partition 3", total=10, unit="entries").advance(10)
    assert out.getvalue() == ""
