"""One `Settings` object for the whole process, read from `STREAMFOLD_*` environment variables.

CLI flags override the environment (see `api/cli.py`); everything else receives the object it needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class Settings:
    # Redis: None means "start the embedded Valkey server" (only `streamfold serve` does that).
    redis_url: str | None = None
    # Every key starts with this prefix; tests and side-by-side deployments use their own.
    key_prefix: str = "sf"
    # Number of log partitions. Set once per deployment: changing it moves workspaces.
    partitions: int = 16
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: str = ".streamfold"
    embedded_port: int = 0  # 0 = pick a free port
    # Ingest limits (Segment's): per event, per request body (after decompression), events per batch.
    max_event_bytes: int = 32 * 1024
    max_request_bytes: int = 500 * 1024
    max_batch_events: int = 2500
    # Fold: entries read per batch, fence lease time, and which partitions this process folds
    # ("all", "none", or a list like "0-3,8").
    fold_batch_entries: int = 200
    lease_ttl_ms: int = 10_000
    fold_partitions: str = "all"
    # A resent messageId within this many days (log time) is stored once; changing it re-folds every partition.
    dedupe_window_days: int = 7
    # Read API
    attribution_rate_limit_per_minute: int = 7
    key_cache_seconds: float = 5.0
    log_level: str = "info"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"STREAMFOLD_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            values[f.name] = _coerce(f.type, raw, f.name)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def owned_partitions(self) -> list[int]:
        return parse_partition_set(self.fold_partitions, self.partitions)


def _coerce(type_name: Any, raw: str, name: str) -> Any:
    t = str(type_name)
    try:
        if t.startswith("int"):
            return int(raw)
        if t.startswith("float"):
            return float(raw)
        if t.startswith("bool"):
            return raw.lower() in ("1", "true", "yes", "on")
    except ValueError as exc:
        raise ValueError(f"STREAMFOLD_{name.upper()}={raw!r} is not a valid {t}") from exc
    return raw


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
        a, b = int(lo), int(hi or lo)
        if not (0 <= a <= b < partitions):
            raise ValueError(f"partition range {part!r} is outside 0..{partitions - 1}")
        out.update(range(a, b + 1))
    return sorted(out)
