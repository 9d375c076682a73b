"""Where projections live: a `Keyspace` is one partition's projection namespace.

The live view is `sf:{p}:…`, a rebuild writes to `sf:{p}:rb:<name>:…`; every workspace's projection keys sit
under `…:w:<workspace>:`. Each projection builds its own keys from `workspace_base` in its `keys.py`; the fold's
partition-level keys are in `projections/fold/keys.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Keyspace:
    prefix: str
    partition: int
    view: str = ""  # "" = live
    base: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        tag = f"{self.prefix}:{{{self.partition}}}"
        object.__setattr__(self, "base", f"{tag}:rb:{self.view}" if self.view else tag)

    def rebuild_view(self, name: str) -> Keyspace:
        return Keyspace(self.prefix, self.partition, name)


def workspace_base(ks: Keyspace, workspace: str) -> str:
    """The stem of every projection key of one workspace."""
    return f"{ks.base}:w:{workspace}"


def workspace_keys(ks: Keyspace, workspace: str) -> str:
    """Every projection key of one workspace (a pattern)."""
    return f"{workspace_base(ks, workspace)}:*"


def workspace_pattern(ks: Keyspace) -> str:
    """Every workspace projection key of the view (digests, re-folds)."""
    return f"{ks.base}:w:*"


def view_pattern(ks: Keyspace) -> str:
    """Every key of the view, partition-level keys included (dropping a rebuild view)."""
    return f"{ks.base}:*"
