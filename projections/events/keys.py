"""Keys of the events projection: the time-ordered indices, the receipt-ordered records, the type and domain
sets, and the text index.

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


def index_contact(ks: Keyspace, workspace: str, contact_id: str) -> str:
    """ZSET of one contact's events (only events whose `Located.contact_id` is set)."""
    return f"{workspace_base(ks, workspace)}:ix:c:{contact_id}"


def index_identified(ks: Keyspace, workspace: str) -> str:
    """ZSET of identified events (`projections.located.is_identified`)."""
    return f"{workspace_base(ks, workspace)}:ix:idf"


def anonymous_events(ks: Keyspace, workspace: str, anonymous_id: str) -> str:
    """STRING of waiting records (`projections.located.WAITING`: receipt record and timestamp) of one anonymous
    visitor's events that have no contact yet, kept until the visitor is linked to one (retroactive
    identification moves them, then drops it)."""
    return f"{workspace_base(ks, workspace)}:ax:{anonymous_id}"


def received(ks: Keyspace, workspace: str, day: int) -> str:
    """STRING of the receipt records of the listed events received on one UTC day (days since the epoch, of the
    event id's millisecond), sorted by event id, which is receipt (`createdAt`) order."""
    return f"{workspace_base(ks, workspace)}:rx:{day}"


def received_days(ks: Keyspace, workspace: str) -> str:
    """ZSET day → day: which `received` strings exist."""
    return f"{workspace_base(ks, workspace)}:rx:days"


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


def domain_signatures(ks: Keyspace, workspace: str, domain: str) -> str:
    """SET of the signature ids of one domain: the domain filter is the union of their indices."""
    return f"{workspace_base(ks, workspace)}:sig:d:{domain}"


def index_signature(ks: Keyspace, workspace: str, signature_id: str) -> str:
    """ZSET of the events with one signature."""
    return f"{workspace_base(ks, workspace)}:ix:s:{signature_id}"


def signature_gram(ks: Keyspace, workspace: str, gram: str) -> str:
    """SET of the signature ids whose lower-cased text contains the trigram."""
    return f"{workspace_base(ks, workspace)}:ng:{gram}"


# ---- expiry (retention and archive): see projections/events/expiry.py


def expiry_index(ks: Keyspace, workspace: str) -> str:
    """ZSET index reference (`all`, `idf`, `t:<type>`, `s:<signature>`, `c:<contact>`, `a:<anonymous id>`) → the
    oldest event timestamp it holds: which keys an expiry has to trim."""
    return f"{workspace_base(ks, workspace)}:exp"


def index_pattern(ks: Keyspace, workspace: str) -> str:
    """Every sorted-set index of a workspace (`ix:*`)."""
    return f"{workspace_base(ks, workspace)}:ix:*"


def anonymous_pattern(ks: Keyspace, workspace: str) -> str:
    """Every waiting-records string of a workspace (`ax:*`)."""
    return f"{workspace_base(ks, workspace)}:ax:*"


def ref_of_key(ks: Keyspace, workspace: str, key: str) -> str | None:
    """The expiry-index reference of an index key (`expiry.key_of_ref` the other way round); None for others."""
    stem = f"{workspace_base(ks, workspace)}:"
    if not key.startswith(stem):
        return None
    rest = key[len(stem) :]
    if rest in ("ix:all", "ix:idf"):
        return rest[3:]
    for prefix, kind in (("ix:t:", "t"), ("ix:s:", "s"), ("ix:c:", "c"), ("ax:", "a")):
        if rest.startswith(prefix):
            return f"{kind}:{rest[len(prefix) :]}"
    return None
