"""Fold benchmark: events/s of one applier process folding through `fold_entries`, this tree against a base commit.

N synthetic events (bench/query.py's generator: 12 skewed types, 200 domains, 365 days, 30% identified) go
into the log of a private valkey-server (no persistence), then are folded in-process in chunks of 500 log
entries (≈ 10k events per `fold_entries` call, as a replay does). Each variant — the base commit's fold
(`git archive` into a temp dir) and this working tree's — runs in a subprocess of its own with a fresh server,
alternately, `--repeat` times; the best run counts. Measured: wall time, client CPU (`process_time`), the
server's CPU (INFO cpu) and its per-command time (INFO commandstats). Both variants must end with the same
projection digest (`projections.rebuild.digest`) and the same contents of every other non-log key; the
benchmark fails otherwise. `--profile` prints a cProfile of this tree's fold instead.
Writes bench/results/fold-<N>-<date>.md and .json. Only 127.0.0.1; bounded by N.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import json
import os
import platform
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
CHUNK = 500
WORKSPACE = "ws_bench"
PARTITIONS = 16


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


# ---------------------------------------------------------------- worker: one variant, one fresh server


async def contents_digest(redis: Any) -> str:
    """SHA-256 of every key but the log streams: names, types, encodings and contents — in stored order where
    that order is the server's insertion order (listpack hashes and sets), else in a canonical order."""
    h = hashlib.sha256()
    for key in sorted({k async for k in redis.scan_iter(count=1000)}):
        t = (await redis.type(key)).decode()
        if t == "stream":
            continue
        enc = await redis.object("encoding", key)
        h.update(b"\x00K" + key + b"\x00" + t.encode() + b"\x00" + enc)
        if t == "hash":
            items = list((await redis.hgetall(key)).items())
            for f, v in items if enc == b"listpack" else sorted(items):
                h.update(b"\x01" + f + b"\x02" + v)
        elif t == "zset":
            for m, sc in await redis.zrange(key, 0, -1, withscores=True):
                h.update(b"\x01" + m + b"\x02" + repr(sc).encode())
        elif t == "set":
            members = await redis.eval("return redis.call('SMEMBERS', KEYS[1])", 1, key)  # stored order
            for m in members if enc == b"listpack" else sorted(members):
                h.update(b"\x01" + m)
        elif t == "string":
            h.update(b"\x01" + (await redis.get(key) or b""))
        else:
            raise ValueError(f"unexpected key type {t} for {key!r}")
    return h.hexdigest()


async def server_cpu(redis: Any) -> float:
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def write_log(n: int, path: Path) -> None:
    """The events both variants fold, made once (event and entry ids are random or time-based when generated):
    bench/query.py's N events, one log entry per simulated request, entry id = the request's receipt ms. Kept
    as JSON events: each variant writes them into its log in its own entry format."""
    sys.path.insert(0, str(ROOT / "bench"))
    from query import generate

    log = [(f"{events[0].received_at}-0", msgspec.json.encode(events)) for events, _ in generate(n)]
    path.write_bytes(msgspec.msgpack.encode(log))


async def work(log_file: Path, profile: bool) -> dict[str, Any]:
    """Load the log and fold it with whichever `projections` package is first on sys.path."""
    from api.embedded import EmbeddedValkey, free_port
    from ingest.keys import partition_of
    from ingest.log import EventLog, entry_fields
    from ingest.redis_client import connect_redis
    from ingest.schema import Event
    from ingest.settings import Settings
    from projections.fold.fold import decode_entry, fold_entries
    from projections.fold.rebuild import digest
    from projections.keyspace import Keyspace

    data_dir = tempfile.mkdtemp(prefix="sf-bench-fold-")
    server = EmbeddedValkey(data_dir, free_port(), appendonly=False)
    url = server.start()
    redis = connect_redis(url)
    try:
        settings = Settings(redis_url=url, partitions=PARTITIONS)
        stream = EventLog(redis, settings).stream(WORKSPACE)
        pipe = redis.pipeline(transaction=False)
        for entry_id, events in msgspec.msgpack.decode(log_file.read_bytes()):
            fields = entry_fields(WORKSPACE, msgspec.json.decode(events, type=list[Event]))
            pipe.xadd(stream, fields, id=entry_id)
        await pipe.execute()
        ks = Keyspace(settings.key_prefix, partition_of(WORKSPACE, PARTITIONS))
        entries = await redis.xrange(stream)
        await redis.config_resetstat()
        srv0 = await server_cpu(redis)
        prof = cProfile.Profile() if profile else None
        t0, cpu0 = time.perf_counter(), time.process_time()
        if prof:
            prof.enable()
        for i in range(0, len(entries), CHUNK):
            await fold_entries(redis, ks, entries[i : i + CHUNK], fence=None, ack_group=None)
        if prof:
            prof.disable()
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        srv = await server_cpu(redis) - srv0
        stats = await redis.info("commandstats")
        if prof:
            pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(35)
        commands = {
            name.removeprefix("cmdstat_"): {"calls": int(s["calls"]), "usec": int(s["usec"])}
            for name, s in stats.items()
        }
        return {
            "events": sum(len(decode_entry(f)[1]) for _, f in entries),
            "entries": len(entries),
            "wall_s": round(wall, 3),
            "client_cpu_s": round(cpu, 3),
            "server_cpu_s": round(srv, 3),
            "commands": commands,
            "digest": await digest(redis, ks),
            "contents": await contents_digest(redis),
        }
    finally:
        await redis.aclose()
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def worker(src: str, log_file: Path, profile: bool) -> None:
    sys.path.insert(0, src)
    result = asyncio.run(work(log_file, profile))
    folded_by = Path(sys.modules["projections.fold"].__file__ or "").resolve()
    if not folded_by.is_relative_to(Path(src).resolve()):
        raise SystemExit(f"folded with {folded_by}, not the variant in {src}")
    print(json.dumps(result))


# ---------------------------------------------------------------- driver


def run_variant(src: Path, log_file: Path, profile: bool = False) -> dict[str, Any]:
    args = [sys.executable, __file__, "--worker", str(src), "--log", str(log_file)]
    args += ["--profile"] if profile else []
    out = subprocess.run(
        args, check=True, stdout=subprocess.PIPE, cwd=src, env={**os.environ, "PYTHONPATH": ""}
    )
    return json.loads(out.stdout)


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return min(runs, key=lambda r: r["wall_s"])


def rate(r: dict[str, Any], key: str) -> int:
    return round(r["events"] / r[key]) if r[key] else 0


def report(
    n: int, base: str, head: str, dirty: bool, runs: dict[str, list[dict[str, Any]]], new_format: str | None
) -> None:
    repeat = len(runs["head"])
    results = {name: best(rs) for name, rs in runs.items()}
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    b, h = results["base"], results["head"]
    meta = {
        "date": date,
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores (shared)",
        "python": platform.python_version(),
        "events": n,
        "entries": h["entries"],
        "chunk_entries": CHUNK,
        "base_commit": base,
        "head_commit": head + (" (uncommitted changes)" if dirty else ""),
        "repeat": repeat,
        "new_format": new_format,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    RESULTS.mkdir(exist_ok=True)
    every = {
        name: [{k: r[k] for k in ("wall_s", "client_cpu_s", "server_cpu_s")} for r in rs]
        for name, rs in runs.items()
    }
    (RESULTS / f"fold-{n}-{date}.json").write_text(
        json.dumps({**meta, "results": results, "runs": every}, indent=2) + "\n"
    )
    lines = [
        f"# Fold benchmark ({date})",
        "",
        f"`python bench/fold.py -n {n} --base {base[:12]}`: {n} events ({h['entries']} log entries) of "
        f"bench/query.py's generator folded in-process through `fold_entries`, {CHUNK} entries per call, on a "
        f"private valkey-server; best of {repeat} alternating runs per variant. Machine: {meta['machine']}, "
        f"Python {meta['python']}, load average {meta['load_average']} at the end: read the ratios, not the "
        "absolute numbers.",
        "",
        f"- base: `{base}`",
        f"- head: `{meta['head_commit']}`",
        "",
        "| variant | wall | events/s (wall) | client CPU | events/s (client CPU) | server CPU |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in (("base", b), ("head", h)):
        lines.append(
            f"| {name} | {r['wall_s']} s | {rate(r, 'wall_s')} | {r['client_cpu_s']} s | "
            f"{rate(r, 'client_cpu_s')} | {r['server_cpu_s']} s |"
        )
    lines += [
        "",
        f"Speed-up (wall): {b['wall_s'] / h['wall_s']:.2f}×; client CPU: {b['client_cpu_s'] / h['client_cpu_s']:.2f}×; "
        f"server CPU: {b['server_cpu_s'] / h['server_cpu_s']:.2f}×.",
        "Every run's wall time: "
        + "; ".join(f"{name} " + ", ".join(f"{r['wall_s']} s" for r in rs) for name, rs in runs.items())
        + ".",
        (
            f"Projection digest, both variants: `{h['digest']}`; every non-log key: `{h['contents']}` (identical)."
            if new_format is None
            else f"The projections differ by design ({new_format}): base digest `{b['digest']}`, head digest "
            f"`{h['digest']}`; each variant's repeated runs gave the same state."
        ),
        "",
        "Server time by command (head; nested: EXEC's time includes the EVALs in it, an EVAL's the commands",
        "its script runs, which also count under their own name):",
        "",
        "| command | calls | time |",
        "|---|---|---|",
    ]
    top = sorted(h["commands"].items(), key=lambda kv: -kv[1]["usec"])[:10]
    lines += [f"| {name} | {c['calls']} | {c['usec'] / 1e6:.2f} s |" for name, c in top]
    (RESULTS / f"fold-{n}-{date}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--base", help="commit to compare against (default: the merge base of main and HEAD)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--profile", action="store_true", help="print a cProfile of this tree's fold, no report"
    )
    parser.add_argument(
        "--new-format",
        metavar="WHY",
        help="the projection format changed between base and head on purpose: compare speed, not output",
    )
    parser.add_argument("--worker", metavar="SRC", help=argparse.SUPPRESS)
    parser.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.log, args.profile)
        return
    work_dir = Path(tempfile.mkdtemp(prefix="sf-bench-fold-"))
    log_file = work_dir / "log.msgpack"
    try:
        write_log(args.n, log_file)
        if args.profile:
            print(json.dumps({k: v for k, v in run_variant(ROOT, log_file, True).items() if k != "commands"}))
        else:
            compare(args.n, args.base, args.repeat, work_dir, log_file, args.new_format)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def compare(
    n: int, base_rev: str | None, repeat: int, work_dir: Path, log_file: Path, new_format: str | None
) -> None:
    base = git("rev-parse", base_rev) if base_rev else git("merge-base", "main", "HEAD")
    head = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    base_dir = work_dir / "base"
    base_dir.mkdir()
    archive = subprocess.run(["git", "archive", base], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(base_dir)], input=archive, check=True)
    runs: dict[str, list[dict[str, Any]]] = {"base": [], "head": []}
    for _ in range(repeat):  # alternating, so a busy moment of the shared machine hits both
        runs["base"].append(run_variant(base_dir, log_file))
        runs["head"].append(run_variant(ROOT, log_file))
    for name, rs in runs.items():  # every run of a variant folds to the same state
        for key in ("digest", "contents"):
            if len({r[key] for r in rs}) != 1:
                raise SystemExit(f"the {name} variant's fold output differs between runs ({key})")
    for key in ("digest", "contents"):
        found = {r[key] for rs in runs.values() for r in rs}
        if len(found) != 1 and new_format is None:
            raise SystemExit(
                f"fold output differs between base and head ({key}): {sorted(found)}; when the projection "
                "format changed on purpose, say why with --new-format"
            )
    report(n, base, head, dirty, runs, new_format)


if __name__ == "__main__":
    main()
