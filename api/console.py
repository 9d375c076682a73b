"""Progress of long CLI jobs (rebuild; later import, export, re-fold): bars on stderr when it is a terminal,
nothing otherwise, so stdout stays the job's result and logs stay clean.

    with job_progress() as progress:
        task = progress.task("partition 3", total=log_length, unit="entries")
        task.advance(len(chunk))
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class ProgressTask:
    """One bar: `advance` as work is done; `finish` when the real total turned out different."""

    def __init__(self, progress: Progress, task_id: TaskID) -> None:
        self._progress = progress
        self._id = task_id

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._id, n)

    def finish(self, total: int | None = None) -> None:
        task = self._progress.tasks[self._progress.task_ids.index(self._id)]
        done = total if total is not None else int(task.completed)
        self._progress.update(self._id, total=done, completed=done)


class JobProgress:
    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def task(self, description: str, *, total: int | None, unit: str = "") -> ProgressTask:
        return ProgressTask(self._progress, self._progress.add_task(description, total=total, unit=unit))

    def remove(self, task: ProgressTask) -> None:
        self._progress.remove_task(task._id)


@contextmanager
def job_progress(*, console: Console | None = None) -> Iterator[JobProgress]:
    console = console or Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    with progress:
        yield JobProgress(progress)
