"""Fold rules: the deployment settings that change what the fold writes (the dedupe window, the archive horizon).

They are stamped on each partition with the projection format: a process started with other rules finds another
stamp and folds the log again from the start, so live projections and a rebuild always follow the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from ingest.settings import Settings

from . import keys


@dataclass(frozen=True, slots=True)
class FoldRules:
    # A messageId seen again within this many days (of log time, by UTC day) is a duplicate; older ones are
    # forgotten, so the dedupe costs memory for the window only. Segment's is 24 hours.
    dedupe_window_days: int = 7
    # Events this many days older than the log leave Redis (0: never): the fold drops them from the per-event
    # projections, and the archiver moves their log entries to Parquet files.
    archive_after_days: int = 0

    @classmethod
    def of(cls, settings: Settings) -> FoldRules:
        return cls(
            dedupe_window_days=settings.dedupe_window_days, archive_after_days=settings.archive_after_days
        )

    @property
    def stamp(self) -> str:
        """What a partition folded under these rules is stamped with (`keys.projection_format`)."""
        stamp = f"{keys.PROJECTION_FORMAT}/dedupe={self.dedupe_window_days}d"
        return f"{stamp}/archive={self.archive_after_days}d" if self.archive_after_days else stamp


DEFAULT_RULES = FoldRules()
