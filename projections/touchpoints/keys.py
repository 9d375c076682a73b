"""Keys of the touchpoints projection: open sessions, visitors' touchpoint chains and their ad hierarchy
documents, the conversion index by event name, and the dictionary of conversion page URLs.

Chains and the conversion index are chunked sorted sets (`chunks.py`): a `ChunkedSets` names a family's keys.
Members are binary (`records.py`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..keyspace import Keyspace, workspace_base


@dataclass(frozen=True, slots=True)
class ChunkedSets:
    """The keys of a family of chunked sorted sets, one set per name (a visitor, an event name). Set `name` is
    the key `first + name` while it is small, and its first chunk once split; its chunks 1…n are
    `chunk(name, n)`; its directory, a ZSET (all scores 0) of `<first member's key><n>` for chunks 1…n, is
    `directory + name`; `split` is a SET of the names whose set has chunks. The name comes last, so no set's
    keys can be another's."""

    first: str
    directory: str
    chunk_stem: str
    split: str

    def first_key(self, name: str) -> str:
        return f"{self.first}{name}"

    def directory_key(self, name: str) -> str:
        return f"{self.directory}{name}"

    def chunk_key(self, name: str, n: int) -> str:
        return (
            f"{self.chunk_stem}{n}:{name}"  # the chunk scripts build the same: chunk_stem .. n .. ':' .. name
        )


def _chunked(base: str, kind: str) -> ChunkedSets:
    return ChunkedSets(f"{base}:{kind}:", f"{base}:{kind}d:", f"{base}:{kind}c:", f"{base}:{kind}s")


def tp_sessions(ks: Keyspace, workspace: str) -> str:
    """HASH visitor → 'session start ms:last activity ms' (the open session of each visitor)."""
    return f"{workspace_base(ks, workspace)}:tp:s"


def tp_chains(ks: Keyspace, workspace: str) -> ChunkedSets:
    """Each visitor's touchpoints (`records.touch_member`), in (time, id) order: `tp:c:<visitor>`, chunks
    `tp:cc:<n>:<visitor>`, directory `tp:cd:<visitor>`, split visitors `tp:cs`. Visitors are
    `a:<anonymous id>`, `u:<user id>` or `e:<email>`."""
    return _chunked(workspace_base(ks, workspace), "tp:c")


def tp_ad_docs(ks: Keyspace, workspace: str) -> str:
    """HASH touchpoint ULID → JSON `records.AdFields`, for the touchpoints that have any ad field."""
    return f"{workspace_base(ks, workspace)}:tp:doc"


def conversions_by_name(ks: Keyspace, workspace: str) -> ChunkedSets:
    """Each event name's tracked events (`records.conversion_member`), in (time, id) order: `cv:n:<name>`,
    chunks `cv:nc:<n>:<name>`, directory `cv:nd:<name>`, split names `cv:ns`."""
    return _chunked(workspace_base(ks, workspace), "cv:n")


def conversion_docs(ks: Keyspace, workspace: str) -> str:
    """HASH event ULID → JSON `records.ConversionRecord`, for the conversions too big for a member."""
    return f"{workspace_base(ks, workspace)}:cv:doc"


def conversion_url_ids(ks: Keyspace, workspace: str) -> str:
    """HASH page URL → its id (1, 2, … in the order the fold first met them): the conversion URL dictionary."""
    return f"{workspace_base(ks, workspace)}:cv:url"


def conversion_urls(ks: Keyspace, workspace: str) -> str:
    """HASH id → page URL: the dictionary read back."""
    return f"{workspace_base(ks, workspace)}:cv:urls"
