"""Fold rules: the deployment settings that change what the fold writes (today the dedupe window).

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

    @classmethod
    def of(cls, settings: Settings) -> FoldRules:
        return cls(dedupe_window_days=settings.dedupe_window_days)

    @property
    def stamp(self) -> str:
        """What a partition folded under these rules is stamped with (`keys.projection_format`)."""
        return f"{keys.PROJECTION_FORMAT}/dedupe={self.dedupe_window_days}d"


DEFAULT_RULES = FoldRules()
