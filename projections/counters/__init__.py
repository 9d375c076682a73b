"""The counters projection: the cube per UTC day × type × domain × identified and its rollups (`cube`), and the
stats and counts read from them (`stats`).

What other packages use is imported here; the rest is the package's own.
"""

from .cube import apply_counters, day_of, move_to_identified
from .stats import GroupBy, Stats, StatsQuery, list_count, read_count, read_stats

__all__ = [
    "GroupBy",
    "Stats",
    "StatsQuery",
    "apply_counters",
    "day_of",
    "list_count",
    "move_to_identified",
    "read_count",
    "read_stats",
]
