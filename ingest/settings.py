"""One `Settings` object for the whole process, read from `STREAMFOLD_*` environment variables.

CLI flags override the environment (see `api/cli.py`); everything else receives the object it needs. A value
that cannot be used raises `InvalidSetting`, whose message names the variable (or flag) it came from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from .errors import InvalidRequest

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
LOG_FORMATS = ("text", "json")
REDIS_URL_SCHEMES = ("redis://", "rediss://", "unix://")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class InvalidSetting(InvalidRequest):
    """A setting with a value Streamfold cannot run with; `source` is the variable or flag it came from."""

    def __init__(self, name: str, value: Any, problem: str, *, source: str | None = None) -> None:
        self.name, self.value, self.problem = name, value, problem
        self.source = source or env_name(name)
        sep = " " if self.source.startswith("--") else "="
        super().__init__(f"{self.source}{sep}{value!s}: {problem}", details={"setting": name})

    def from_source(self, source: str, value: Any) -> InvalidSetting:
        return InvalidSetting(self.name, value, self.problem, source=source)


def env_name(field_name: str) -> str:
    return f"STREAMFOLD_{field_name.upper()}"


@dataclass(frozen=True, slots=True)
class Settings:
    # Redis: None means "start the embedded Valkey server" (only `streamfold serve` does that).
    redis_url: str | None = None
    # Every key starts with this prefix; tests and side-by-side deployments use their own.
    key_prefix: str = "sf"
    # Number of log partitions. Set once per deployment: changing it moves workspaces.
    partitions: int = 16
    # `streamfold serve`: listen address, HTTP worker processes, HTTP only (fold elsewhere), demo workspace.
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    no_fold: bool = False
    demo: bool = False
    data_dir: str = ".streamfold"
    embedded_port: int = 0  # 0 = pick a free port
    # Ingest limits (Segment's): per event, per request body (as sent and after decompression), events per batch.
    max_event_bytes: int = 32 * 1024
    max_request_bytes: int = 500 * 1024
    max_batch_events: int = 2500
    # A request body (as sent: compressed or not) must arrive whole within this many seconds, or 408.
    body_timeout_seconds: float = 30.0
    # Fold: entries read per batch, fence lease time, and which partitions this process folds
    # ("all", "none", or a list like "0-3,8").
    fold_batch_entries: int = 200
    lease_ttl_ms: int = 10_000
    fold_partitions: str = "all"
    # A resent messageId within this many days (log time) is stored once; changing it re-folds every partition.
    dedupe_window_days: int = 7
    # Log days older than this many days (log time) move from the Redis log to verified Parquet files under
    # `archive_dir` (0: never); the projections keep their events and read archived ones from the files.
    archive_after_days: int = 0
    archive_dir: str = ""  # default: <data_dir>/archive
    archive_interval_seconds: float = 3600.0  # how often a fold worker looks for days to archive
    # `streamfold fold`: serve its Prometheus metrics on this port (0: none; `serve` has /metrics).
    metrics_port: int = 0
    # Read API
    attribution_rate_limit_per_minute: int = 7
    key_cache_seconds: float = 5.0
    # Operating: /readyz fails when a partition this process folds is further behind (0 = no lag check);
    # logs (level, text or one JSON object per line, HTTP access log).
    ready_max_lag_seconds: float = 30.0
    log_level: str = "info"
    log_format: str = "text"
    access_log: bool = False

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            problem = _problem(self, f.name, value)
            if problem:
                raise InvalidSetting(f.name, value, problem)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from `STREAMFOLD_*` variables, then `overrides` (CLI flags, named `--flag-name`)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        sources: dict[str, tuple[str, Any]] = {}  # name → (variable or flag, value as given)
        for f in fields(cls):
            raw = env.get(env_name(f.name))
            if raw is None or raw == "":
                continue
            values[f.name] = _coerce(str(f.type), raw, f.name)
            sources[f.name] = (env_name(f.name), raw)
        for name, value in overrides.items():
            if value is not None:
                values[name] = value
                sources[name] = ("--" + name.replace("_", "-"), value)
        try:
            return cls(**values)
        except InvalidSetting as exc:
            raise exc.from_source(*sources.get(exc.name, (exc.source, exc.value))) from None

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def archive_root(self) -> str:
        """Where the archive's files live: `archive_dir`, else `<data_dir>/archive`."""
        return self.archive_dir or os.path.join(self.data_dir, "archive")

    def owned_partitions(self) -> list[int]:
        return parse_partition_set(self.fold_partitions, self.partitions)


def _coerce(type_name: str, raw: str, name: str) -> Any:
    value = raw.strip()
    if type_name.startswith("bool"):
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise InvalidSetting(name, raw, "expected true or false (1/0, yes/no, on/off)")
    try:
        if type_name.startswith("int"):
            return int(value)
        if type_name.startswith("float"):
            return float(value)
    except ValueError:
        kind = "a whole number" if type_name.startswith("int") else "a number"
        raise InvalidSetting(name, raw, f"expected {kind}") from None
    return raw


_AT_LEAST_ONE = (
    "partitions",
    "workers",
    "max_event_bytes",
    "max_request_bytes",
    "max_batch_events",
    "fold_batch_entries",
    "lease_ttl_ms",
    "dedupe_window_days",
)
_NOT_NEGATIVE = (
    "attribution_rate_limit_per_minute",
    "key_cache_seconds",
    "ready_max_lag_seconds",
    "archive_after_days",
    "archive_interval_seconds",
)


def _problem(s: Settings, name: str, value: Any) -> str | None:
    """What is wrong with one setting's value, or None."""
    if name in _AT_LEAST_ONE and value < 1:
        return "must be at least 1"
    if name in _NOT_NEGATIVE and value < 0:
        return "must not be negative"
    if name == "body_timeout_seconds" and not value > 0:
        return "must be more than 0"
    if name in ("port", "embedded_port", "metrics_port") and not 0 <= value <= 65535:
        return "must be a TCP port (0–65535)"
    if name == "log_level" and value not in LOG_LEVELS:
        return f"expected one of {', '.join(LOG_LEVELS)}"
    if name == "log_format" and value not in LOG_FORMATS:
        return f"expected one of {', '.join(LOG_FORMATS)}"
    if name == "key_prefix" and (not value or any(c in value for c in " {}")):
        return "must be non-empty, without spaces or braces"
    if name == "redis_url" and value is not None and not value.startswith(REDIS_URL_SCHEMES):
        return f"expected a URL starting with {', '.join(REDIS_URL_SCHEMES)}"
    if name == "fold_partitions" and s.partitions >= 1:
        try:
            parse_partition_set(value, s.partitions)
        except ValueError as exc:
            return str(exc)
    return None


def parse_partition_set(spec: str, partitions: int) -> list[int]:
    """'all' → every partition; 'none' → []; '0-3,8' → [0, 1, 2, 3, 8]."""
    spec = spec.strip().lower()
    if spec == "all":
        return list(range(partitions))
    if spec in ("none", ""):
        return []
    out: set[int] = set()
    for part in spec.split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            raise ValueError(f"expected all, none or partition ranges like 0-3,8; got {part!r}") from None
        if not (0 <= a <= b < partitions):
            raise ValueError(f"partition range {part.strip()!r} is outside 0..{partitions - 1}")
        out.update(range(a, b + 1))
    return sorted(out)
