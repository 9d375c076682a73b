"""The `streamfold` command: serve, fold, workspaces and keys, rebuild, verify and digest.

Every command takes `--redis-url` (or STREAMFOLD_REDIS_URL); without it, commands other than `serve`
use the embedded server a running `streamfold serve` recorded in its data dir. Common flags go before or after
the command. A failure is one line `error: …` on stderr: exit 2 when what was asked is wrong (usage,
configuration, an unknown workspace or key), 1 when doing it failed (Redis unreachable, a digest mismatch).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ingest.errors import InvalidRequest, NotFound, StreamfoldError, Unavailable
from ingest.settings import LOG_FORMATS, LOG_LEVELS, Settings
from ingest.workspaces import SCOPES, CreatedWorkspace, WorkspaceRegistry

from . import __version__

DEMO_WORKSPACE = "demo"
REDIS_CHECK_TIMEOUT_SECONDS = 3.0
log = logging.getLogger("streamfold.cli")


class UsageError(InvalidRequest):
    """The command line asks for something that cannot be done as asked."""


class RedisUnreachable(Unavailable):
    """Redis did not answer PING (refused, timed out, wrong password…)."""


class ServerFailed(StreamfoldError):
    """A server this command starts (the embedded Valkey, the HTTP listener) could not start."""


class DigestMismatch(StreamfoldError):
    """A replay of the log did not give the live projections' digest."""


def exit_code_of(exc: StreamfoldError) -> int:
    """2 for what the user asked wrongly (the 4xx errors), 1 for what failed while doing it."""
    return 2 if 400 <= exc.status < 500 else 1


def _settings(args: argparse.Namespace) -> Settings:
    """The environment, overridden by every flag given that names a setting."""
    return Settings.from_env(**{f.name: getattr(args, f.name, None) for f in fields(Settings)})


def redacted(url: str | None) -> str:
    """The URL without its password."""
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def require_redis(url: str) -> None:
    """PING once, no retries: an unreachable server is one line, in seconds, not a retry loop's traceback."""
    client = redis.Redis.from_url(
        url,
        socket_connect_timeout=REDIS_CHECK_TIMEOUT_SECONDS,
        socket_timeout=REDIS_CHECK_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        raise RedisUnreachable(f"cannot reach Redis at {redacted(url)}: {exc}") from None
    finally:
        client.close()


def _connected(args: argparse.Namespace) -> Settings:
    """Settings with a Redis URL that answers (given, or the one a running `streamfold serve` recorded)."""
    settings = _settings(args)
    if not settings.redis_url:
        url_file = Path(settings.data_dir) / "redis.url"
        if not url_file.exists():
            raise UsageError(
                "no Redis to talk to: pass --redis-url (or set STREAMFOLD_REDIS_URL), "
                f"or start `streamfold serve` first (none runs on --data-dir {settings.data_dir})"
            )
        settings = settings.with_(redis_url=url_file.read_text().strip())
    assert settings.redis_url is not None
    require_redis(settings.redis_url)
    return settings


def _print_keys(created: CreatedWorkspace, as_json: bool, out: Any = sys.stdout) -> None:
    ws = created.workspace
    if as_json:
        payload = {
            "workspace": {"id": ws.id, "name": ws.name, "timezone": ws.timezone},
            "keys": [{"key": k.key, "scopes": list(k.scopes)} for k in created.keys],
        }
        print(json.dumps(payload), file=out)
        return
    print(f"workspace  {ws.id}  name={ws.name}  timezone={ws.timezone}", file=out)
    for k in created.keys:
        label = "write_key" if "write" in k.scopes else "read_key "
        print(f"{label}  {k.key}  scopes: {' '.join(k.scopes)}", file=out)


async def _with_registry(settings: Settings, fn: Any) -> Any:
    from api.app import connect

    redis_client = connect(settings)
    try:
        return await fn(WorkspaceRegistry(redis_client, settings), redis_client)
    finally:
        await redis_client.aclose()


def _run(settings: Settings, fn: Any) -> Any:
    return asyncio.run(_with_registry(settings, fn))


# ---------------------------------------------------------------- workspaces and keys


def cmd_workspace_create(args: argparse.Namespace) -> int:
    settings = _connected(args)
    created = _run(settings, lambda reg, _r: reg.create_workspace(args.name, args.timezone))
    _print_keys(created, args.json)
    return 0


def cmd_workspace_list(args: argparse.Namespace) -> int:
    settings = _connected(args)
    for ws in _run(settings, lambda reg, _r: reg.list_workspaces()):
        limits = f"  limits={_limits_text(ws)}" if ws.requests_per_second or ws.events_per_second else ""
        print(
            f"{ws.id}  name={ws.name}  timezone={ws.timezone}{limits}{'  (disabled)' if ws.disabled else ''}"
        )
    return 0


def _set_disabled(args: argparse.Namespace, disabled: bool) -> int:
    settings = _connected(args)

    async def run(reg: WorkspaceRegistry, _r: Any) -> Any:
        ws = await reg.find_workspace(args.workspace)
        return await reg.set_disabled(ws.id, disabled)

    ws = _run(settings, run)
    if disabled:
        print(
            f"{ws.id}  name={ws.name}  disabled: its keys are refused (403) within "
            f"{settings.key_cache_seconds:g}s; its data is kept"
        )
    else:
        print(f"{ws.id}  name={ws.name}  enabled")
    return 0


def cmd_workspace_disable(args: argparse.Namespace) -> int:
    return _set_disabled(args, True)


def cmd_workspace_enable(args: argparse.Namespace) -> int:
    return _set_disabled(args, False)


def cmd_workspace_set_origins(args: argparse.Namespace) -> int:
    if not args.any and not args.origins:
        raise UsageError("give one or more origins (https://www.example.com), or --any")
    settings = _connected(args)

    async def run(reg: WorkspaceRegistry, _r: Any) -> Any:
        ws = await reg.find_workspace(args.workspace)
        return await reg.set_allowed_origins(ws.id, [] if args.any else args.origins)

    ws = _run(settings, run)
    print(f"{ws.id}  allowed origins: {' '.join(ws.allowed_origins) or 'any'}")
    return 0


def _limits_text(ws: Any) -> str:
    shown = [
        f"{rate} {what}/s"
        for rate, what in ((ws.requests_per_second, "requests"), (ws.events_per_second, "events"))
        if rate
    ]
    return ", ".join(shown) or "none"


def cmd_workspace_set_limits(args: argparse.Namespace) -> int:
    """Set a workspace's ingest limits: over one, ingest answers 429 with Retry-After and stores nothing."""
    if args.requests_per_second is None and args.events_per_second is None:
        raise UsageError("give --requests-per-second N and/or --events-per-second N (0 lifts a limit)")
    settings = _connected(args)

    async def run(reg: WorkspaceRegistry, _r: Any) -> Any:
        ws = await reg.find_workspace(args.workspace)
        return await reg.set_ingest_limits(
            ws.id, requests_per_second=args.requests_per_second, events_per_second=args.events_per_second
        )

    ws = _run(settings, run)
    print(
        f"{ws.id}  ingest limits: {_limits_text(ws)} (every process applies them within "
        f"{settings.key_cache_seconds:g}s)"
    )
    return 0


def _slot_assignments(values: list[str] | None, what: str) -> dict[int, str | None]:
    """`N=VALUE` → {N: VALUE}; `N=` clears slot N."""
    out: dict[int, str | None] = {}
    for v in values or []:
        slot, sep, rest = v.partition("=")
        if not sep or not slot.strip().isdigit():
            raise UsageError(f"--{what} expects N=VALUE (N=  clears slot N), got {v!r}")
        out[int(slot)] = rest or None
    return out


def cmd_workspace_settings(args: argparse.Namespace) -> int:
    """Show (and with options, change) a workspace's timezone, custom event names, profile field labels and
    retention."""
    import msgspec

    from api.routers.admin import settings_document
    from api.workspace_settings import (
        CustomEventName,
        SettingsChange,
        change_workspace_settings,
        read_workspace_settings,
    )
    from ingest.log import EventLog

    events: dict[int, CustomEventName | None] = {}
    for slot, spec in _slot_assignments(args.custom_event, "custom-event").items():
        if spec is None:
            events[slot] = None
        else:
            event, _, configured = spec.partition("=")
            events[slot] = CustomEventName(event, configured or event)
    change = SettingsChange(
        timezone=args.timezone,
        custom_events=events,
        profile_field_labels=_slot_assignments(args.profile_field, "profile-field"),
        retention_days=args.retention_days if args.retention_days is not None else msgspec.UNSET,
    )
    settings = _connected(args)

    async def run(reg: WorkspaceRegistry, redis_client: Any) -> Any:
        ws = await reg.find_workspace(args.workspace)
        if change.is_empty:
            return await read_workspace_settings(redis_client, settings.key_prefix, ws.id)
        return await change_workspace_settings(reg, EventLog(redis_client, settings), ws.id, change)

    print(json.dumps(settings_document(_run(settings, run)), indent=2))
    return 0


def cmd_workspace_email_signing(args: argparse.Namespace) -> int:
    from ingest.sources.http import set_signing_secret

    if not args.clear and not args.secret:
        raise UsageError("give the provider's signing secret (SendGrid: the verification key), or --clear")
    settings = _connected(args)

    async def run(reg: WorkspaceRegistry, redis_client: Any) -> Any:
        ws = await reg.find_workspace(args.workspace)
        await set_signing_secret(
            redis_client, settings.key_prefix, ws.id, args.provider, None if args.clear else args.secret
        )
        return ws

    ws = _run(settings, run)
    state = (
        "cleared (webhooks accepted with the write key alone)" if args.clear else "set (signatures required)"
    )
    print(f"{ws.id}  {args.provider} signing secret {state}")
    return 0


def cmd_key_create(args: argparse.Namespace) -> int:
    settings = _connected(args)

    async def run(reg: WorkspaceRegistry, _r: Any) -> str:
        ws = await reg.find_workspace(args.workspace)
        return await reg.create_key(ws.id, args.scope)

    key = _run(settings, run)
    print(f"{key}  scopes: {' '.join(args.scope)}")
    return 0


def cmd_key_list(args: argparse.Namespace) -> int:
    """Keys are stored hashed: list them by the start of their SHA-256, never the key itself."""
    settings = _connected(args)

    async def run(reg: WorkspaceRegistry, _r: Any) -> Any:
        ws = await reg.find_workspace(args.workspace)
        return ws, await reg.list_keys(ws.id)

    ws, keys = _run(settings, run)
    if args.json:
        doc = [{"sha256_prefix": k.key_hash[:12], "scopes": list(k.scopes)} for k in keys]
        print(json.dumps({"workspace": ws.id, "keys": doc}))
        return 0
    for k in keys:
        print(f"sha256:{k.key_hash[:12]}  scopes: {' '.join(k.scopes)}")
    return 0


def cmd_key_revoke(args: argparse.Namespace) -> int:
    settings = _connected(args)
    if not _run(settings, lambda reg, _r: reg.revoke_key(args.key)):
        raise NotFound("no such key (give the key itself, as `key create` printed it)")
    print("revoked")
    return 0


# ---------------------------------------------------------------- rebuild and digest


class _CountingReads:
    """A Redis client that reports how many log entries each XRANGE returned: the replay reads the log with
    XRANGE, so the bar follows `rebuild_and_compare` without it knowing about bars. Everything else is the
    client's own."""

    def __init__(self, client: Any, on_entries: Callable[[int], None]) -> None:
        self._client = client
        self._on_entries = on_entries

    async def xrange(self, *args: Any, **kwargs: Any) -> Any:
        entries = await self._client.xrange(*args, **kwargs)
        self._on_entries(len(entries))
        return entries

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def cmd_contact_delete(args: argparse.Namespace) -> int:
    """Ask the fold to forget a contact; with --wait, until it is done."""
    from ingest import keys as log_keys
    from ingest.deletions import DeletionRequests
    from ingest.log import EventLog
    from ingest.suppression import hash_kinds
    from projections.identity import identifiers_of_people, read_merge_group
    from projections.keyspace import Keyspace

    settings = _connected(args)

    async def run(reg: WorkspaceRegistry, redis_client: Any) -> dict[str, Any]:
        ws = await reg.find_workspace(args.workspace)
        ks = Keyspace(settings.key_prefix, log_keys.partition_of(ws.id, settings.partitions))
        people = await read_merge_group(redis_client, ks, ws.id, args.contact_id)
        if not people:
            raise NotFound(f"contact {args.contact_id!r} not found in workspace {ws.name}")
        requests = DeletionRequests(redis_client, settings.key_prefix)
        deletion_id = await requests.request(
            EventLog(redis_client, settings),
            ws.id,
            people[0].id,
            suppress=not args.no_suppress,
            hashes=hash_kinds(ws.id, identifiers_of_people(people)),
        )
        status = await requests.status(ws.id, deletion_id)
        while args.wait and status["status"] != "done":
            await asyncio.sleep(0.2)
            status = await requests.status(ws.id, deletion_id)
        return status

    print(json.dumps(_run(settings, run), indent=2))
    return 0


def cmd_archive(args: argparse.Namespace) -> int:
    """Archive every partition's (or one's) old log days now, with progress; what the fold workers also do
    every `STREAMFOLD_ARCHIVE_INTERVAL_SECONDS`."""
    from ingest.archive import Archive
    from projections.fold.archiver import archive_partition

    from .console import job_progress

    settings = _connected(args)
    after = args.after_days if args.after_days is not None else settings.archive_after_days
    if after < 1:
        raise UsageError("nothing to archive: give --after-days N (≥ 1) or set STREAMFOLD_ARCHIVE_AFTER_DAYS")
    if args.partition is not None and not 0 <= args.partition < settings.partitions:
        raise UsageError(f"--partition {args.partition}: outside 0..{settings.partitions - 1}")
    parts = [args.partition] if args.partition is not None else list(range(settings.partitions))
    archive = Archive(settings.archive_root)

    async def run(_reg: Any, redis_client: Any) -> tuple[int, int]:
        days = events = 0
        with job_progress() as progress:
            bar = progress.task("archived", total=None, unit="events")
            for p in parts:
                done = await archive_partition(
                    redis_client, settings.key_prefix, p, archive, after, on_day=lambda _e, n: bar.advance(n)
                )
                days, events = days + done.days, events + done.events
        return days, events

    days, events = _run(settings, run)
    print(f"archived {days} partition-days ({events} events) to {settings.archive_root}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write a workspace's events to a Parquet or JSON-lines file, with progress."""
    from api.export import ExportQuery, export_to_file
    from api.routers.events import parse_when
    from ingest.archive import Archive

    from .console import job_progress

    settings = _connected(args)
    since, until = parse_when(args.since, "--since"), parse_when(args.until, "--until")
    out = Path(args.out)
    if not out.parent.is_dir():
        raise UsageError(f"--out {args.out}: no directory {out.parent}")

    async def run(reg: WorkspaceRegistry, redis_client: Any) -> int:
        ws = await reg.find_workspace(args.workspace)
        with job_progress() as progress:
            bar = progress.task("exported", total=None, unit="events")
            return await export_to_file(
                redis_client,
                settings,
                Archive(settings.archive_root),
                ExportQuery(ws.id, since, until),
                out,
                args.format,
                on_rows=bar.advance,
            )

    n = _run(settings, run)
    print(f"exported {n} events to {out}")
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    from ingest import keys as log_keys
    from ingest.archive import Archive
    from projections.fold.rebuild import rebuild_and_compare
    from projections.fold.rules import FoldRules

    from .console import job_progress

    settings = _connected(args)
    if args.partition is not None and not 0 <= args.partition < settings.partitions:
        raise UsageError(f"--partition {args.partition}: outside 0..{settings.partitions - 1}")
    parts = [args.partition] if args.partition is not None else list(range(settings.partitions))

    async def run(_reg: Any, redis_client: Any) -> bool:
        pipe = redis_client.pipeline(transaction=False)
        for p in parts:
            pipe.xlen(log_keys.log(settings.key_prefix, p))
        lengths = dict(zip(parts, await pipe.execute(), strict=True))
        same = True
        with job_progress() as progress:
            overall = progress.task("all partitions", total=sum(lengths.values()), unit="entries")
            for p in parts:
                bar = progress.task(f"partition {p}", total=lengths[p], unit="entries")

                def advance(n: int, bar: Any = bar) -> None:
                    bar.advance(n)
                    overall.advance(n)

                counting = _CountingReads(redis_client, advance)
                live, rebuilt, n = await rebuild_and_compare(
                    counting,  # type: ignore[arg-type]
                    settings.key_prefix,
                    p,
                    rules=FoldRules.of(settings),
                    archive=Archive(settings.archive_root),
                    lease_ttl_ms=settings.lease_ttl_ms,
                )
                progress.remove(bar)
                if n or live != rebuilt:
                    mark = "ok" if live == rebuilt else "MISMATCH"
                    print(
                        f"partition {p:>3}: {n} entries replayed  live={live[:16]}  rebuilt={rebuilt[:16]}  {mark}",
                        flush=True,
                    )
                same &= live == rebuilt
            overall.finish()
        return same

    same = _run(settings, run)
    if not same:
        raise DigestMismatch("rebuild digest DIFFERS from the live digest")
    print("rebuild digest equals the live digest")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Per partition: the checkpoint, the live digest and the digest of the log replayed up to it, both taken
    at that checkpoint (the partition's fold pauses for the live digest)."""
    from ingest.archive import Archive
    from projections.fold.rebuild import verify_partition
    from projections.fold.rules import FoldRules

    settings = _connected(args)
    if args.partition is not None and not 0 <= args.partition < settings.partitions:
        raise UsageError(f"--partition {args.partition}: outside 0..{settings.partitions - 1}")
    parts = [args.partition] if args.partition is not None else list(range(settings.partitions))

    async def run(_reg: Any, redis_client: Any) -> list[int]:
        differ = []
        for p in parts:
            v = await verify_partition(
                redis_client,
                settings.key_prefix,
                p,
                lease_ttl_ms=settings.lease_ttl_ms,
                rules=FoldRules.of(settings),
                archive=Archive(settings.archive_root),
            )
            mark = "ok" if v.same else "MISMATCH"
            print(
                f"partition {p:>3}  checkpoint {v.checkpoint or '-'}  live {v.live}  rebuilt {v.rebuilt}  {mark}",
                flush=True,
            )
            if not v.same:
                differ.append(p)
        return differ

    differ = _run(settings, run)
    if differ:
        raise DigestMismatch(f"MISMATCH in partitions {' '.join(map(str, differ))}")
    print("every partition's rebuilt digest equals its live digest")
    return 0


def cmd_digest(args: argparse.Namespace) -> int:
    from projections.fold.rebuild import digest
    from projections.keyspace import Keyspace

    settings = _connected(args)

    async def run(_reg: Any, redis_client: Any) -> None:
        for p in range(settings.partitions):
            print(f"{p} {await digest(redis_client, Keyspace(settings.key_prefix, p))}")

    _run(settings, run)
    return 0


# ---------------------------------------------------------------- serve and fold


def tune_gc() -> None:
    """Long-lived servers allocate many short-lived dicts per request; fewer cyclic-GC passes over the
    (frozen) start-up heap cost nothing in correctness and measurably cut CPU per event."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def cmd_fold(args: argparse.Namespace) -> int:
    """Run appliers only (scale-out: give each process a disjoint --fold-partitions set)."""
    from api.app import connect
    from projections.fold.applier import Applier

    from .logs import configure_logging
    from .metrics import FoldMetrics, serve_metrics

    settings = _connected(args)
    configure_logging(settings)
    tune_gc()
    if settings.metrics_port:
        try:
            serve_metrics(settings.host, settings.metrics_port)
        except OSError as exc:
            raise UsageError(f"--metrics-port {settings.metrics_port}: {exc.strerror or exc}") from None
        log.info("metrics on http://%s:%s/metrics", settings.host, settings.metrics_port)

    async def run() -> None:
        redis_client = connect(settings)
        applier = Applier(redis_client, settings, observer=FoldMetrics())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await applier.start()
            log.info("folding partitions %s of %s", settings.fold_partitions, settings.partitions)
            await stop.wait()
            log.info("stopping: finishing the batches in flight")
        finally:
            await applier.stop()
            await redis_client.aclose()

    asyncio.run(run())
    return 0


async def _ensure_demo(settings: Settings) -> dict[str, Any] | None:
    """Create the demo workspace on first start; its keys are kept in the data dir for local use only."""
    keys_file = Path(settings.data_dir) / "demo-keys.json"

    async def run(reg: WorkspaceRegistry, _r: Any) -> dict[str, Any] | None:
        try:
            await reg.find_workspace(DEMO_WORKSPACE)
        except StreamfoldError:
            created = await reg.create_workspace(DEMO_WORKSPACE)
            payload = {
                "workspace": created.workspace.id,
                "keys": [{"key": k.key, "scopes": list(k.scopes)} for k in created.keys],
            }
            keys_file.parent.mkdir(parents=True, exist_ok=True)
            keys_file.write_text(json.dumps(payload, indent=2))
            keys_file.chmod(0o600)
            return payload
        return json.loads(keys_file.read_text()) if keys_file.exists() else None

    result: dict[str, Any] | None = await _with_registry(settings, run)
    return result


def _banner(settings: Settings, demo: dict[str, Any] | None) -> str:
    base = f"http://{settings.host}:{settings.port}"
    fold = (
        "no (--no-fold: run `streamfold fold`)"
        if settings.no_fold
        else f"partitions {settings.fold_partitions} of {settings.partitions}"
    )
    lines = [
        "",
        "Streamfold is running",
        f"  API         {base}",
        f"  OpenAPI     {base}/docs  ({base}/openapi.json)",
        f"  tracker.js  {base}/tracker.js",
        f"  health      {base}/healthz  {base}/readyz  {base}/metrics",
        f"  Redis       {redacted(settings.redis_url)}",
        f"  folding     {fold}",
    ]
    if demo:
        write = next(k["key"] for k in demo["keys"] if "write" in k["scopes"])
        read = next(k["key"] for k in demo["keys"] if "events:read" in k["scopes"])
        lines += [
            "",
            f"Demo workspace {demo['workspace']}",
            f"  write key  {write}   (scopes: write crm:write)",
            f"  read key   {read}   (scopes: events:read contacts:read attribution:read)",
            "",
            "Try it:",
            f"  curl -s -u '{write}:' {base}/v1/track -H 'Content-Type: application/json' \\",
            """    -d '{"userId": "user-1", "event": "signed_up", "properties": {"plan": "pro"}}'""",
            f"  curl -s -H 'Authorization: Bearer {read}' '{base}/v1/events?limit=5'",
        ]
    lines.append("")
    return "\n".join(lines)


def require_free_port(host: str, port: int) -> None:
    """Fail before anything starts when the address is taken (uvicorn would log it after the start-up)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ServerFailed(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as STREAMFOLD_* variables, for child processes."""
    from ingest.settings import env_name

    return {
        env_name(f.name): str(getattr(settings, f.name))
        for f in fields(settings)
        if getattr(settings, f.name) is not None
    }


def _serve_in_process(settings: Settings, log_config: dict[str, Any], on_started: Callable[[], None]) -> None:
    import uvicorn

    from api.app import create_app

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                on_started()

    app = create_app(settings, run_appliers=not settings.no_fold)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=log_config,
        log_level=settings.log_level,
        access_log=settings.access_log,
    )
    tune_gc()
    Server(config).run()


def _serve_in_workers(settings: Settings, log_config: dict[str, Any], on_started: Callable[[], None]) -> None:
    """uvicorn worker processes serve HTTP; one child process folds. Settings travel as environment variables."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from api.embedded import dies_with_this_process

    class Workers(Multiprocess):
        def init_processes(self) -> None:
            super().init_processes()
            ready = [getattr(p, "wait_until_ready", None) for p in self.processes]
            if all(r is None or r(60, self.should_exit) for r in ready):
                on_started()

    env = settings_env(settings)
    os.environ.update(env)
    fold = None
    if not settings.no_fold:
        fold = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "fold"],
            env={**os.environ, **env},
            preexec_fn=dies_with_this_process(),
        )
    try:
        config = uvicorn.Config(
            "api.app:create_app_from_env",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_config=log_config,
            log_level=settings.log_level,
            access_log=settings.access_log,
        )
        Workers(config, sockets=[config.bind_socket()]).run()
    finally:
        if fold is not None:
            fold.terminate()
            fold.wait(timeout=30)


def cmd_serve(args: argparse.Namespace) -> int:
    from .multiprocess import shared_metrics

    settings = _settings(args)
    with shared_metrics(settings.workers):  # before any process of this serve imports prometheus_client
        return _serve(settings)


def _serve(settings: Settings) -> int:
    from api.embedded import EmbeddedValkey

    from .logs import configure_logging

    log_config = configure_logging(settings)
    embedded = None
    try:
        if settings.redis_url:
            require_redis(settings.redis_url)
        else:
            # started from the main thread, so that it gets the parent-death signal (see api/embedded.py)
            embedded = EmbeddedValkey(settings.data_dir, settings.embedded_port)
            try:
                settings = settings.with_(redis_url=embedded.start())
            except RuntimeError as exc:
                raise ServerFailed(f"the embedded Valkey did not start: {exc}") from None
        require_free_port(settings.host, settings.port)
        demo = asyncio.run(_ensure_demo(settings)) if settings.demo else None
        banner = _banner(settings, demo)

        def announce() -> None:
            print(banner, flush=True)

        serve = _serve_in_workers if settings.workers > 1 else _serve_in_process
        serve(settings, log_config, announce)
    except KeyboardInterrupt:
        pass  # Ctrl-C or SIGTERM: the server has shut down; stop Valkey below
    finally:
        # a second Ctrl-C must not cut the shutdown short and leave Valkey running
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        if embedded is not None:
            embedded.stop()
    return 0


# ---------------------------------------------------------------- the command line


class _Parser(argparse.ArgumentParser):
    """Misuse is one line on stderr (raised, so `main` reports every error the same way)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _common_flags(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The flags every command takes, before or after the command name. Below the top level they default to
    'not given', so a flag given before the command is not overwritten by the command's own default."""
    default: Any = None if top else argparse.SUPPRESS
    g = parser.add_argument_group("common options (before or after the command)")
    g.add_argument(
        "--redis-url",
        default=default,
        metavar="URL",
        help="Redis ≥ 7 / Valkey ≥ 7.2 (env STREAMFOLD_REDIS_URL); without it `serve` starts an embedded "
        "Valkey and the other commands use the one a running `serve` recorded in --data-dir",
    )
    g.add_argument(
        "--partitions",
        type=int,
        default=default,
        metavar="N",
        help="log partitions, set once per deployment (env STREAMFOLD_PARTITIONS, default 16)",
    )
    g.add_argument(
        "--data-dir",
        default=default,
        metavar="DIR",
        help="the embedded Valkey's data (env STREAMFOLD_DATA_DIR, default ./.streamfold)",
    )
    g.add_argument(
        "--key-prefix",
        default=default,
        metavar="PREFIX",
        help="prefix of every Redis key (env STREAMFOLD_KEY_PREFIX, default sf)",
    )
    g.add_argument(
        "--log-level",
        default=default,
        choices=LOG_LEVELS,
        help="log level (env STREAMFOLD_LOG_LEVEL, default info)",
    )
    g.add_argument(
        "--log-format",
        default=default,
        choices=LOG_FORMATS,
        help="text lines or one JSON object per line (env STREAMFOLD_LOG_FORMAT, default text)",
    )


def _command(
    sub: Any, name: str, func: Callable[[argparse.Namespace], int], help_text: str
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    _common_flags(parser, top=False)
    parser.set_defaults(func=func)
    return parser


def _group(sub: Any, name: str, help_text: str) -> Any:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    _common_flags(parser, top=False)
    return parser.add_subparsers(dest="action", required=True, metavar="ACTION")


def _serve_flags(s: argparse.ArgumentParser) -> None:
    s.add_argument("--host", help="listen address (env STREAMFOLD_HOST, default 127.0.0.1)")
    s.add_argument("--port", type=int, help="listen port (env STREAMFOLD_PORT, default 8080)")
    s.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="HTTP worker processes; above 1 the fold runs in one child process (env STREAMFOLD_WORKERS, default 1)",
    )
    s.add_argument(
        "--fold-partitions",
        metavar="SET",
        help="partitions this process folds: all | none | 0-7,9 (env STREAMFOLD_FOLD_PARTITIONS, default all)",
    )
    s.add_argument(
        "--no-fold",
        action="store_true",
        default=None,
        help="HTTP only; run `streamfold fold` elsewhere (env STREAMFOLD_NO_FOLD)",
    )
    s.add_argument(
        "--demo",
        action=argparse.BooleanOptionalAction,
        help="create the demo workspace on first start and print its keys (env STREAMFOLD_DEMO)",
    )
    s.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        help="log every HTTP request (env STREAMFOLD_ACCESS_LOG, default off)",
    )
    s.add_argument(
        "--max-event-bytes",
        type=int,
        metavar="N",
        help="ingest limit per event (env STREAMFOLD_MAX_EVENT_BYTES, default 32768)",
    )
    s.add_argument(
        "--max-request-bytes",
        type=int,
        metavar="N",
        help="ingest limit per request, decompressed (env STREAMFOLD_MAX_REQUEST_BYTES, default 512000)",
    )
    s.add_argument(
        "--max-batch-events",
        type=int,
        metavar="N",
        help="ingest limit of events per batch (env STREAMFOLD_MAX_BATCH_EVENTS, default 2500)",
    )


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="streamfold", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"streamfold {__version__}")
    _common_flags(p, top=True)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = _command(sub, "serve", cmd_serve, "run the HTTP app and the appliers (embedded Valkey by default)")
    _serve_flags(s)

    f = _command(
        sub, "fold", cmd_fold, "run appliers only (scale-out: disjoint --fold-partitions per process)"
    )
    f.add_argument(
        "--fold-partitions",
        metavar="SET",
        help="partitions to fold: all | 0-7,9 (env STREAMFOLD_FOLD_PARTITIONS, default all)",
    )
    f.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve this process's Prometheus metrics (fold batches, events, archive) at "
        "http://HOST:PORT/metrics (env STREAMFOLD_METRICS_PORT, default 0: none)",
    )
    f.add_argument("--host", help="address of the metrics port (env STREAMFOLD_HOST, default 127.0.0.1)")

    w = _group(sub, "workspace", "create, list, disable and configure workspaces")
    wc = _command(w, "create", cmd_workspace_create, "create a workspace and print its keys")
    wc.add_argument("name", help="the workspace's name (unique)")
    wc.add_argument("--timezone", default="UTC", help="IANA time zone (default UTC)")
    wc.add_argument("--json", action="store_true", help="print one JSON object")
    _command(w, "list", cmd_workspace_list, "list workspaces")
    for name, func, text in (
        (
            "disable",
            cmd_workspace_disable,
            "refuse the workspace's keys (ingest and queries); its data stays",
        ),
        ("enable", cmd_workspace_enable, "accept the workspace's keys again"),
    ):
        _command(w, name, func, text).add_argument("workspace", help="workspace name or id")
    wo = _command(
        w,
        "set-origins",
        cmd_workspace_set_origins,
        "restrict the website origins that may send events from browsers (default: any)",
    )
    wo.add_argument("workspace", help="workspace name or id")
    wo.add_argument("origins", nargs="*", help="e.g. https://www.example.com https://*.example.com")
    wo.add_argument("--any", action="store_true", help="allow any origin again")
    wl = _command(
        w,
        "set-limits",
        cmd_workspace_set_limits,
        "limit how fast a workspace may send events (429 with Retry-After over it; default: no limit)",
    )
    wl.add_argument("workspace", help="workspace name or id")
    wl.add_argument(
        "--requests-per-second", type=int, metavar="N", help="ingest requests per second (0 = no limit)"
    )
    wl.add_argument("--events-per-second", type=int, metavar="N", help="events per second (0 = no limit)")
    ws_ = _command(
        w,
        "settings",
        cmd_workspace_settings,
        "show or change timezone, custom event names, profile field labels",
    )
    ws_.add_argument("workspace", help="workspace name or id")
    ws_.add_argument("--timezone", help="IANA time zone, e.g. Europe/Berlin")
    ws_.add_argument(
        "--custom-event",
        action="append",
        metavar="N=EVENT[=CONFIGURED_NAME]",
        help="custom_event_N stands for the tracked EVENT (N= clears the slot); repeatable",
    )
    ws_.add_argument(
        "--profile-field",
        action="append",
        metavar="N=LABEL",
        help="label profile_field_N (N= clears); repeatable",
    )
    ws_.add_argument(
        "--retention-days",
        type=int,
        metavar="DAYS",
        help="keep events queryable for DAYS days of log time (0: keep every event); stats keep their history",
    )
    we = _command(
        w,
        "email-signing",
        cmd_workspace_email_signing,
        "require signed email webhooks: SendGrid's verification key or Mailgun's webhook signing key",
    )
    we.add_argument("workspace", help="workspace name or id")
    we.add_argument("provider", choices=["sendgrid", "mailgun"], help="the email provider")
    we.add_argument("secret", nargs="?", help="the provider's verification / signing key")
    we.add_argument("--clear", action="store_true", help="stop requiring signatures")

    k = _group(sub, "key", "create, list and revoke API keys")
    kc = _command(k, "create", cmd_key_create, "add a key to a workspace and print it (shown only now)")
    kc.add_argument("workspace", help="workspace name or id")
    kc.add_argument(
        "--scope", action="append", required=True, choices=SCOPES, help="a scope of the key; repeatable"
    )
    kl = _command(k, "list", cmd_key_list, "list a workspace's keys: hash prefix and scopes, never the key")
    kl.add_argument("workspace", help="workspace name or id")
    kl.add_argument("--json", action="store_true", help="print one JSON object")
    kr = _command(k, "revoke", cmd_key_revoke, "revoke a key")
    kr.add_argument("key", help="the key, as `key create` or `workspace create` printed it")

    c = _group(sub, "contact", "contacts: forget one")
    cd = _command(c, "delete", cmd_contact_delete, "forget a contact: projections, log, archive; suppress it")
    cd.add_argument("workspace", help="workspace name or id")
    cd.add_argument("contact_id", help="the contact (ct_…); a merged one forgets its whole merge group")
    cd.add_argument(
        "--no-suppress", action="store_true", help="do not drop later events carrying their identifiers"
    )
    cd.add_argument("--wait", action="store_true", help="wait until the deletion is done (a fold must run)")

    a = _command(
        sub, "archive", cmd_archive, "move whole log days past the archive horizon to Parquet files now"
    )
    a.add_argument("--partition", type=int, metavar="P", help="only this partition (default: all)")
    a.add_argument(
        "--after-days",
        type=int,
        metavar="N",
        help="archive log days at least N days old (default: STREAMFOLD_ARCHIVE_AFTER_DAYS)",
    )
    x = _command(sub, "export", cmd_export, "write a workspace's events (archive + live log) to a file")
    x.add_argument("--workspace", required=True, help="workspace name or id")
    x.add_argument("--since", metavar="WHEN", help="events at or after this ISO 8601 date or date-time")
    x.add_argument("--until", metavar="WHEN", help="events at or before this ISO 8601 date or date-time")
    x.add_argument("--format", choices=["parquet", "jsonl"], default="parquet", help="default parquet")
    x.add_argument("--out", required=True, metavar="PATH", help="the file to write")

    r = _command(sub, "rebuild", cmd_rebuild, "replay the log into a fresh namespace and compare digests")
    r.add_argument("--partition", type=int, metavar="P", help="only this partition (default: all)")
    v = _command(
        sub,
        "verify",
        cmd_verify,
        "per partition: checkpoint, live and rebuilt digests (exit 1 on a mismatch)",
    )
    v.add_argument("--partition", type=int, metavar="P", help="only this partition (default: all)")
    _command(sub, "digest", cmd_digest, "print each partition's projection digest")

    from .cli_dlq import add_dlq_commands
    from .cli_import import add_import_command

    add_import_command(sub)
    add_dlq_commands(sub)
    return p


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C: servers shut down, Valkey stops


def main(argv: Sequence[str] | None = None) -> int:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupted)
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except StreamfoldError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exit_code_of(exc)
    except redis.RedisError as exc:
        print(f"error: Redis failed: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if _debugging(argv):
            traceback.print_exc()
        print(
            f"error: unexpected {type(exc).__name__}: {exc} (--log-level debug shows where)",
            file=sys.stderr,
        )
        return 1


def _debugging(argv: Sequence[str] | None) -> bool:
    args = sys.argv[1:] if argv is None else list(argv)
    flag = any(a in ("--log-level=debug",) for a in args) or any(
        a == "--log-level" and b == "debug" for a, b in zip(args, args[1:], strict=False)
    )
    return flag or os.environ.get("STREAMFOLD_LOG_LEVEL", "").lower() == "debug"


if __name__ == "__main__":
    sys.exit(main())
