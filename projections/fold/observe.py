"""What the appliers report as they work: each committed fold batch's result and how long it took, and each log day
archived, by partition.

The default observer reports nowhere; `serve` and `fold` give their `Applier` one that counts for Prometheus
(`api.metrics`), so the fold never imports the metrics registry of the layer above it.
"""

from __future__ import annotations

from .fold import FoldResult


class FoldObserver:
    """Called after every MULTI/EXEC an applier commits (one per chunk of a read batch)."""

    def folded(self, partition: int, result: FoldResult, seconds: float) -> None:
        """`result` counts the entries, events, duplicates and dead letters of the commit; `seconds` is the
        wall time from reading the checkpoint to the commit's acknowledgement."""

    def archived(self, partition: int, entries: int, events: int) -> None:
        """One log day of the partition went to a verified archive file and was trimmed from the log."""
