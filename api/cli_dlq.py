"""`streamfold dlq list|show|replay|drop`: the dead letters of the fold (`projections.fold.dead_letters`), each named
`PARTITION/ID` (its id in the partition's dead-letter stream), with the reason the fold gave up on it."""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
from typing import Any

import msgspec

from ingest.errors import StreamfoldError
from projections.errors import PoisonEntry
from projections.fold.dead_letters import (
    DeadLetter,
    drop_dead_letter,
    list_dead_letters,
    read_dead_letter,
    replay_dead_letter,
)
from projections.fold.fold import decode_entry

from .cli import UsageError, _command, _connected, _group, _run, exit_code_of

_REF = re.compile(r"^(?P<partition>\d+)/(?P<id>\d+(?:-\d+)?)$")


def _refs(values: list[str], partitions: int) -> list[tuple[int, str]]:
    out = []
    for value in values:
        m = _REF.match(value)
        if not m:
            raise UsageError(f"{value!r}: name a dead letter as PARTITION/ID, as `dlq list` prints it")
        p = int(m["partition"])
        if p >= partitions:
            raise UsageError(f"{value!r}: partition {p} is outside 0..{partitions - 1}")
        out.append((p, m["id"]))
    return out


def _partitions(args: argparse.Namespace, partitions: int) -> list[int]:
    if args.partition is None:
        return list(range(partitions))
    if not 0 <= args.partition < partitions:
        raise UsageError(f"--partition {args.partition}: outside 0..{partitions - 1}")
    return [args.partition]


def _field_text(raw: bytes) -> str:
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(raw).decode()
    return text if text.isprintable() else "base64:" + base64.b64encode(raw).decode()


def _document(letter: DeadLetter, *, with_events: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "ref": letter.ref,
        "partition": letter.partition,
        "id": letter.id,
        "entry": letter.entry,
        "reason": letter.reason,
        "workspace": letter.workspace,
    }
    if with_events:
        doc["fields"] = {k.decode(errors="replace"): _field_text(v) for k, v in letter.fields.items()}
        try:
            _, events = decode_entry(letter.fields)
        except PoisonEntry as exc:
            doc["events"], doc["decode_error"] = None, exc.message
        else:
            doc["events"], doc["decode_error"] = (
                msgspec.to_builtins([msgspec.structs.asdict(e) for e in events]),
                None,
            )
    return doc


def cmd_dlq_list(args: argparse.Namespace) -> int:
    settings = _connected(args)
    parts = _partitions(args, settings.partitions)
    letters = _run(settings, lambda _reg, r: list_dead_letters(r, settings.key_prefix, parts))
    if args.json:
        print(json.dumps([_document(x, with_events=False) for x in letters]))
        return 0
    for x in letters:
        print(f"{x.ref}  entry {x.entry}  workspace {x.workspace or '-'}  {x.reason}")
    if not letters:
        print("no dead letters")
    return 0


def cmd_dlq_show(args: argparse.Namespace) -> int:
    settings = _connected(args)
    ((p, ident),) = _refs([args.ref], settings.partitions)
    letter = _run(settings, lambda _reg, r: read_dead_letter(r, settings.key_prefix, p, ident))
    doc = _document(letter, with_events=True)
    if args.json:
        print(json.dumps(doc))
        return 0
    for name in ("ref", "entry", "reason", "workspace"):
        print(f"{name:<10} {doc[name] if doc[name] is not None else '-'}")
    for name, value in doc["fields"].items():
        shown = value if len(value) <= 120 else f"{value[:117]}… ({len(letter.fields[name.encode()])} bytes)"
        print(f"field {name:<4} {shown}")
    if doc["events"] is None:
        print(f"events     cannot be decoded by this version: {doc['decode_error']}")
    else:
        print(f"events     {len(doc['events'])}")
        for event in doc["events"]:
            print(json.dumps(event))
    return 0


def _chosen(args: argparse.Namespace, settings: Any, redis_client: Any) -> Any:
    """The dead letters a replay or drop names: its refs, or with --all every one (of --partition)."""
    if args.all == bool(args.refs):
        raise UsageError(
            "name dead letters as PARTITION/ID, or pass --all (with --partition P for one partition)"
        )

    async def run() -> list[tuple[int, str]]:
        if args.refs:
            return _refs(args.refs, settings.partitions)
        letters = await list_dead_letters(
            redis_client, settings.key_prefix, _partitions(args, settings.partitions)
        )
        return [(x.partition, x.id) for x in letters]

    return run()


def _report(failures: list[StreamfoldError], done: int, verb: str) -> int:
    for exc in failures:
        print(f"error: {exc.message}", file=sys.stderr)
    if not done and not failures:
        print(f"no dead letters to {verb}")
    return max((exit_code_of(exc) for exc in failures), default=0)


def cmd_dlq_replay(args: argparse.Namespace) -> int:
    settings = _connected(args)

    async def run(_reg: Any, redis_client: Any) -> int:
        chosen = await _chosen(args, settings, redis_client)
        failures: list[StreamfoldError] = []
        for p, ident in chosen:
            try:
                new_id = await replay_dead_letter(
                    redis_client, settings.key_prefix, p, ident, force=args.force
                )
            except StreamfoldError as exc:
                failures.append(exc)
                continue
            print(f"replayed {p}/{ident} as log entry {p}/{new_id}: the fold folds it next", flush=True)
        return _report(failures, len(chosen) - len(failures), "replay")

    return int(_run(settings, run))


def cmd_dlq_drop(args: argparse.Namespace) -> int:
    settings = _connected(args)

    async def run(_reg: Any, redis_client: Any) -> int:
        chosen = await _chosen(args, settings, redis_client)
        if chosen and not args.yes:
            if not sys.stdin.isatty():
                raise UsageError(
                    "dropping dead letters deletes them for good: pass --yes (no terminal to ask)"
                )
            answer = input(f"drop {len(chosen)} dead letter(s) for good? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing dropped")
                return 0
        failures: list[StreamfoldError] = []
        for p, ident in chosen:
            try:
                await drop_dead_letter(redis_client, settings.key_prefix, p, ident)
            except StreamfoldError as exc:
                failures.append(exc)
                continue
            print(f"dropped {p}/{ident}", flush=True)
        return _report(failures, len(chosen) - len(failures), "drop")

    return int(_run(settings, run))


def add_dlq_commands(sub: Any) -> None:
    d = _group(sub, "dlq", "list, show, replay and drop the fold's dead letters (entries it could not read)")
    ls = _command(
        d, "list", cmd_dlq_list, "list dead letters: PARTITION/ID, the log entry, workspace, reason"
    )
    ls.add_argument("--partition", type=int, metavar="P", help="only this partition (default: all)")
    ls.add_argument("--json", action="store_true", help="print one JSON array")
    sh = _command(d, "show", cmd_dlq_show, "show one dead letter: its fields and, when readable, its events")
    sh.add_argument("ref", metavar="PARTITION/ID", help="a dead letter, as `dlq list` prints it")
    sh.add_argument("--json", action="store_true", help="print one JSON object")
    rp = _command(
        d,
        "replay",
        cmd_dlq_replay,
        "append dead letters to the log again (as new entries) and remove them, so the fold folds them",
    )
    dr = _command(d, "drop", cmd_dlq_drop, "delete dead letters for good")
    for parser in (rp, dr):
        parser.add_argument(
            "refs", nargs="*", metavar="PARTITION/ID", help="dead letters, as `dlq list` prints them"
        )
        parser.add_argument("--all", action="store_true", help="every dead letter (of --partition, if given)")
        parser.add_argument("--partition", type=int, metavar="P", help="with --all: only this partition")
    rp.add_argument(
        "--force", action="store_true", help="replay even entries this version cannot read (they come back)"
    )
    dr.add_argument("--yes", action="store_true", help="do not ask for confirmation")
