"""Keys of the events projection: the time-ordered indices, the type and domain sets, and the text index.

Index members and scores are described in `projections/events/indices.py`; the text index (signatures and
trigrams) in `projections/events/search.py`.
"""

from __future__ import annotations

from ..keyspace import Keyspace, workspace_base

# ---- indices


def index_all(ks: Keyspace, workspace: str) -> str:
    """ZSET of every listed event by timestamp."""
    return f"{workspace_base(ks, workspace)}:ix:all"


def index_type(ks: Keyspace, workspace: str, event_type: str) -> str:
    return f"{workspace_base(ks, workspace)}:ix:t:{event_type}"


def index_domain(ks: Keyspace, workspace: str, domain: str) -> str:
    return f"{workspace_base(ks, workspace)}:ix:d:{domain}"


def index_contact(ks: Keyspace, workspace: str, contact_id: str) -> str:
    """ZSET of one contact's events (only events whose `Located.contact_id` is set)."""
    return f"{workspace_base(ks, workspace)}:ix:c:{contact_id}"


def index_identified(ks: Keyspace, workspace: str) -> str:
    """ZSET of identified events (`projections.located.is_identified`)."""
    return f"{workspace_base(ks, workspace)}:ix:idf"


def index_anonymous(ks: Keyspace, workspace: str, anonymous_id: str) -> str:
    """ZSET of one anonymous visitor's events, identified or not (for retroactive identification)."""
    return f"{workspace_base(ks, workspace)}:ix:a:{anonymous_id}"


def index_received(ks: Keyspace, workspace: str) -> str:
    """ZSET (all scores 0) of all listed events in id order, which is receipt (`createdAt`) order."""
    return f"{workspace_base(ks, workspace)}:ix:r"


def event_types(ks: Keyspace, workspace: str) -> str:
    return f"{workspace_base(ks, workspace)}:types"


def domains(ks: Keyspace, workspace: str) -> str:
    return f"{workspace_base(ks, workspace)}:domains"


# ---- text index: signature dictionary and trigrams


def signatures(ks: Keyspace, workspace: str) -> str:
    """HASH signature id → 'url\\x1fdomain' (the dictionary of distinct signatures)."""
    return f"{workspace_base(ks, workspace)}:sig"


def signature_counts(ks: Keyspace, workspace: str) -> str:
    """HASH signature id → how many events its index holds (`ix:s:<id>` only ever grows)."""
    return f"{workspace_base(ks, workspace)}:sig:n"


def signature_newest(ks: Keyspace, workspace: str) -> str:
    """ZSET signature id → the newest event timestamp in its index (ZADD GT)."""
    return f"{workspace_base(ks, workspace)}:sig:new"


def signature_oldest(ks: Keyspace, workspace: str) -> str:
    """ZSET signature id → the oldest event timestamp in its index (ZADD LT)."""
    return f"{workspace_base(ks, workspace)}:sig:old"


def index_signature(ks: Keyspace, workspace: str, signature_id: str) -> str:
    """ZSET of the events with one signature."""
    return f"{workspace_base(ks, workspace)}:ix:s:{signature_id}"


def signature_gram(ks: Keyspace, workspace: str, gram: str) -> str:
    """SET of the signature ids whose lower-cased text contains the trigram."""
    return f"{workspace_base(ks, workspace)}:ng:{gram}"
