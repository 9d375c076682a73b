"""Metrics shared by the processes of one `serve --workers N`: the HTTP workers and the fold child each write
their counters to files in one directory (`PROMETHEUS_MULTIPROC_DIR`), and the worker a scrape reaches sums them.

Set up here, before any of those processes imports `prometheus_client` (which picks its mode at import), and
without importing it: the directory is emptied at start, so counters begin at 0 with the processes counting them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(path: Path) -> Path:
    """Create `path` and remove an earlier run's value files from it (nothing else)."""
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
    return path


@contextmanager
def shared_metrics(workers: int) -> Iterator[Path | None]:
    """Multiprocess metrics for the block when `workers` > 1 or the operator set `PROMETHEUS_MULTIPROC_DIR`: that
    directory, else a fresh temporary one (removed afterwards), exported to the child processes."""
    given = os.environ.get(MULTIPROC_ENV)
    if workers <= 1 and not given:
        yield None
        return
    path = prepare(Path(given)) if given else Path(tempfile.mkdtemp(prefix="streamfold-metrics-"))
    os.environ[MULTIPROC_ENV] = str(path)
    try:
        yield path
    finally:
        if not given:
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(path, ignore_errors=True)
