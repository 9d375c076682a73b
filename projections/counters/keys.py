"""Keys of the counters projection: the cube per UTC day and its rollups.

Cube fields are 'type\\x1fdomain\\x1f0|1' (identified); rollup fields end in `\\x1fa` (every event) or `\\x1fi`
(identified ones). Events without a domain count under the domain ''.
"""

from __future__ import annotations

from ..keyspace import Keyspace, workspace_base


def counter_day(ks: Keyspace, workspace: str, day: str) -> str:
    """HASH 'type\\x1fdomain\\x1fidentified' → count for one UTC day (YYYY-MM-DD)."""
    return f"{workspace_base(ks, workspace)}:cnt:{day}"


def counter_days(ks: Keyspace, workspace: str) -> str:
    """ZSET day → days since the epoch (which day hashes exist)."""
    return f"{workspace_base(ks, workspace)}:cnt:days"


def counter_totals(ks: Keyspace, workspace: str) -> str:
    """HASH 'type\\x1fdomain\\x1fa|i' → count over the whole history."""
    return f"{workspace_base(ks, workspace)}:cnt:all"


def counter_all_types(ks: Keyspace, workspace: str) -> str:
    """HASH 'type\\x1fa|i' → count over the whole history."""
    return f"{workspace_base(ks, workspace)}:cnt:at"


def counter_all_domains(ks: Keyspace, workspace: str) -> str:
    """HASH 'domain\\x1fa|i' → count over the whole history."""
    return f"{workspace_base(ks, workspace)}:cnt:ad"


def counter_day_types(ks: Keyspace, workspace: str, day: str) -> str:
    """HASH 'type\\x1fa|i' → count for one UTC day."""
    return f"{workspace_base(ks, workspace)}:cnt:t:{day}"


def counter_day_domains(ks: Keyspace, workspace: str, day: str) -> str:
    """HASH 'domain\\x1fa|i' → count for one UTC day."""
    return f"{workspace_base(ks, workspace)}:cnt:d:{day}"


def counter_day_totals(ks: Keyspace, workspace: str) -> str:
    """HASH 'YYYY-MM-DD\\x1fa|i' → count per UTC day."""
    return f"{workspace_base(ks, workspace)}:cnt:bd"
