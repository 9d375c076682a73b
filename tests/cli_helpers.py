"""Running `streamfold` as a subprocess, the way an operator does: no STREAMFOLD_* from the test's environment
unless given."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ingest.settings import Settings


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFOLD_")}
    return {**env, **extra}


def common_flags(settings: Settings) -> list[str]:
    """The flags that point a command at the test's Redis keys."""
    return [
        "--redis-url",
        settings.redis_url or "",
        "--key-prefix",
        settings.key_prefix,
        "--partitions",
        str(settings.partitions),
    ]


def streamfold(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        env=env if env is not None else clean_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
