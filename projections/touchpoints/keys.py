"""Keys of the touchpoints projection: open sessions, touchpoint documents and chains, conversions."""

from __future__ import annotations

from ..keyspace import Keyspace, workspace_base


def tp_sessions(ks: Keyspace, workspace: str) -> str:
    """HASH visitor → 'session start ms:last activity ms' (the open session of each visitor)."""
    return f"{workspace_base(ks, workspace)}:tp:s"


def tp_docs(ks: Keyspace, workspace: str) -> str:
    """HASH touchpoint id → JSON `Touchpoint`."""
    return f"{workspace_base(ks, workspace)}:tp:doc"


def tp_chains(ks: Keyspace, workspace: str) -> str:
    """ZSET (all scores 0) of '<visitor>\\x00<13-digit epoch ms><touchpoint id>': every visitor's chain in one
    key, so a fold batch adds its touchpoints with one command and a BYLEX range reads one visitor's window.
    Visitors are `a:<anonymous id>`, `u:<user id>` or `e:<email>`."""
    return f"{workspace_base(ks, workspace)}:tp:chains"


def conversion_docs(ks: Keyspace, workspace: str) -> str:
    """HASH event ULID → JSON `Conversion` (every tracked event is a conversion candidate)."""
    return f"{workspace_base(ks, workspace)}:cv:doc"


def conversions_by_name(ks: Keyspace, workspace: str, name: str) -> str:
    """ZSET (all scores 0) of '<13-digit epoch ms><ULID>': time order by member, for BYLEX keyset pages."""
    return f"{workspace_base(ks, workspace)}:cv:n:{name}"
