"""Keys of the touchpoints projection: open sessions, visitors' touchpoint chains and their ad hierarchy
documents, the conversion index by event name, and the dictionary of conversion page URLs.

Chains and the conversion index are chunked sorted sets (`chunks.py`): a `ChunkedSet` names a set's keys.
Members are binary (`records.py`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..keyspace import Keyspace, workspace_base


@dataclass(frozen=True, slots=True)
class ChunkedSet:
    """The keys of one chunked sorted set. `first` is the set while it is small (and, once split, its first
    chunk); `directory` is a ZSET (all scores 0) of `<first member's key><n>` for chunks 1…n, each the key
    `chunk(n)`. The variable part (visitor, event name) comes last, so no set's keys can be another's."""

    first: str
    directory: str
    stem: str
    tail: str

    def chunk(self, n: int) -> str:
        return f"{self.stem}{n}{self.tail}"  # `chunk_add-1.lua` builds the same: stem .. n .. tail


def _chunked(base: str, kind: str, name: str) -> ChunkedSet:
    return ChunkedSet(f"{base}:{kind}:{name}", f"{base}:{kind}d:{name}", f"{base}:{kind}c:", f":{name}")


def tp_sessions(ks: Keyspace, workspace: str) -> str:
    """HASH visitor → 'session start ms:last activity ms' (the open session of each visitor)."""
    return f"{workspace_base(ks, workspace)}:tp:s"


def tp_chain(ks: Keyspace, workspace: str, visitor: str) -> ChunkedSet:
    """One visitor's touchpoints (`records.touch_member`), in (time, id) order: `tp:c:<visitor>`, chunks
    `tp:cc:<n>:<visitor>`, directory `tp:cd:<visitor>`. Visitors are `a:<anonymous id>`, `u:<user id>` or
    `e:<email>`."""
    return _chunked(workspace_base(ks, workspace), "tp:c", visitor)


def tp_ad_docs(ks: Keyspace, workspace: str) -> str:
    """HASH touchpoint ULID → JSON `records.AdFields`, for the touchpoints that have any ad field."""
    return f"{workspace_base(ks, workspace)}:tp:doc"


def conversions_by_name(ks: Keyspace, workspace: str, name: str) -> ChunkedSet:
    """Every tracked event of one name (`records.conversion_member`), in (time, id) order: `cv:n:<name>`,
    chunks `cv:nc:<n>:<name>`, directory `cv:nd:<name>`."""
    return _chunked(workspace_base(ks, workspace), "cv:n", name)


def conversion_docs(ks: Keyspace, workspace: str) -> str:
    """HASH event ULID → JSON `records.ConversionRecord`, for the conversions too big for a member."""
    return f"{workspace_base(ks, workspace)}:cv:doc"


def conversion_url_ids(ks: Keyspace, workspace: str) -> str:
    """HASH page URL → its id (1, 2, … in the order the fold first met them): the conversion URL dictionary."""
    return f"{workspace_base(ks, workspace)}:cv:url"


def conversion_urls(ks: Keyspace, workspace: str) -> str:
    """HASH id → page URL: the dictionary read back."""
    return f"{workspace_base(ks, workspace)}:cv:urls"
