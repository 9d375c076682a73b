"""`streamfold import FILE… --workspace W`: Segment-shaped JSONL (plain or gzip) into a workspace's log through the
write path (`ingest.importer`), with a progress bar per file and a summary of accepted and rejected lines."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ingest.errors import Forbidden
from ingest.importer import BATCH_LINES, ImportResult, import_lines, open_jsonl
from ingest.log import EventLog
from ingest.receive import Receiver
from ingest.workspaces import WorkspaceRegistry

from .cli import UsageError, _command, _connected, _run
from .console import job_progress


class WorkspaceDisabled(Forbidden):
    """The workspace to import into is disabled (its keys are refused too)."""


def cmd_import(args: argparse.Namespace) -> int:
    files = [Path(f) for f in args.files]
    for f in files:
        if not f.is_file():
            raise UsageError(f"{f}: no such file")
    if args.batch_lines < 1 or args.show_rejected < 0:
        raise UsageError("--batch-lines must be at least 1 and --show-rejected not negative")
    settings = _connected(args)

    async def run(
        registry: WorkspaceRegistry, redis_client: Any
    ) -> tuple[Any, list[tuple[Path, ImportResult]]]:
        ws = await registry.find_workspace(args.workspace)
        if ws.disabled:
            raise WorkspaceDisabled(f"workspace {ws.name} is disabled; `workspace enable {ws.name}` first")
        receiver = Receiver(registry, EventLog(redis_client, settings), settings)
        results: list[tuple[Path, ImportResult]] = []
        kept = args.show_rejected
        with job_progress() as progress:
            for f in files:
                bar = progress.task(f.name, total=f.stat().st_size, unit="bytes")
                with open_jsonl(f) as (stream, position):
                    read = 0

                    def advance(_lines: int, bar: Any = bar, position: Any = position) -> None:
                        nonlocal read
                        now = position()
                        bar.advance(now - read)
                        read = now

                    result = await import_lines(
                        receiver,
                        ws,
                        str(f),
                        stream,
                        ImportResult(),
                        keep_rejected=kept,
                        batch_lines=args.batch_lines,
                        on_lines=advance,
                    )
                bar.finish()
                results.append((f, result))
                kept = max(kept - len(result.first_rejected), 0)
        return ws, results

    ws, results = _run(settings, run)
    for f, r in results:
        print(f"{f}: {r.lines} lines, {r.accepted} accepted, {r.rejected} rejected")
        for bad in r.first_rejected:
            print(f"  line {bad.line}: {bad.reason}")
    shown = sum(len(r.first_rejected) for _, r in results)
    rejected = sum(r.rejected for _, r in results)
    if rejected > shown:
        print(f"  … and {rejected - shown} more rejected lines (--show-rejected N lists more)")
    accepted = sum(r.accepted for _, r in results)
    print(
        f"imported {accepted} of {sum(r.lines for _, r in results)} lines into workspace {ws.name} ({ws.id}); "
        f"messageIds already stored are kept once"
    )
    return 0


def add_import_command(sub: Any) -> None:
    i = _command(
        sub,
        "import",
        cmd_import,
        "import Segment-shaped JSONL (a Segment or RudderStack export; gzip too) through the ingest path",
    )
    i.add_argument(
        "files", nargs="+", metavar="FILE", help="JSONL files, one message per line (.gz or gzip data)"
    )
    i.add_argument("--workspace", required=True, help="workspace name or id to import into")
    i.add_argument(
        "--batch-lines",
        type=int,
        default=BATCH_LINES,
        metavar="N",
        help=f"messages per log entry, at most (default {BATCH_LINES}; fewer when over the request size limit)",
    )
    i.add_argument(
        "--show-rejected",
        type=int,
        default=20,
        metavar="N",
        help="list the first N rejected lines with their line number and reason (default 20)",
    )
