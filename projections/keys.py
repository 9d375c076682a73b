"""Every projection key, built by exactly one function here.

A `Keyspace` is one partition's projection namespace: the live view is `sf:{p}:…`, a rebuild writes to
`sf:{p}:rb:<name>:…`. Workspace keys live under `…:w:<workspace>:`; query scratch keys under `…:q:`.
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


# ---- partition level

# What a fold writes, by version: bump it whenever a projection's keys or contents change. An applier that finds
# a partition folded in another format drops that partition's projections and folds its log again from the start
# (`projections.applier.ensure_projection_format`): the log is the source of truth, projections are derived.
PROJECTION_FORMAT = "3"


def projection_format(ks: Keyspace) -> str:
    return f"{ks.base}:format"


def checkpoint(ks: Keyspace) -> str:
    return f"{ks.base}:ckpt"


def fence_owner(ks: Keyspace) -> str:
    return f"{ks.base}:owner"


def fence_epoch(ks: Keyspace) -> str:
    return f"{ks.base}:epoch"


def workspaces(ks: Keyspace) -> str:
    """Workspaces that have projection data in this partition (for digests and rebuilds)."""
    return f"{ks.base}:workspaces"


def workspace_pattern(ks: Keyspace) -> str:
    return f"{ks.base}:w:*"


def scratch(ks: Keyspace, workspace: str, name: str) -> str:
    """Short-lived query keys (intersections); never part of a digest."""
    return f"{ks.base}:q:{workspace}:{name}"


# ---- event store and indices


def _w(ks: Keyspace, workspace: str) -> str:
    return f"{ks.base}:w:{workspace}"


def message_ids(ks: Keyspace, workspace: str) -> str:
    """HASH client messageId → event ULID (dedupe)."""
    return f"{_w(ks, workspace)}:mid"


def index_all(ks: Keyspace, workspace: str) -> str:
    return f"{_w(ks, workspace)}:ix:all"


def index_type(ks: Keyspace, workspace: str, event_type: str) -> str:
    return f"{_w(ks, workspace)}:ix:t:{event_type}"


def index_domain(ks: Keyspace, workspace: str, domain: str) -> str:
    return f"{_w(ks, workspace)}:ix:d:{domain}"


def event_types(ks: Keyspace, workspace: str) -> str:
    return f"{_w(ks, workspace)}:types"


def domains(ks: Keyspace, workspace: str) -> str:
    return f"{_w(ks, workspace)}:domains"


# ---- counters


def counter_day(ks: Keyspace, workspace: str, day: str) -> str:
    """HASH 'type\\x1fdomain\\x1fidentified' → count for one UTC day (YYYY-MM-DD)."""
    return f"{_w(ks, workspace)}:cnt:{day}"


def counter_days(ks: Keyspace, workspace: str) -> str:
    """ZSET day → days since the epoch (which day hashes exist)."""
    return f"{_w(ks, workspace)}:cnt:days"


# ---- event indices by who (contact, identified, anonymous visitor) and by receipt; see projections/events.py


def index_contact(ks: Keyspace, workspace: str, contact_id: str) -> str:
    """ZSET of one contact's events (only events whose `Located.contact_id` is set)."""
    return f"{_w(ks, workspace)}:ix:c:{contact_id}"


def index_identified(ks: Keyspace, workspace: str) -> str:
    """ZSET of identified events (`projections.events.is_identified`)."""
    return f"{_w(ks, workspace)}:ix:idf"


def index_anonymous(ks: Keyspace, workspace: str, anonymous_id: str) -> str:
    """ZSET of one anonymous visitor's events, identified or not (for retroactive identification)."""
    return f"{_w(ks, workspace)}:ix:a:{anonymous_id}"


def index_received(ks: Keyspace, workspace: str) -> str:
    """ZSET (all scores 0) of all listed events in id order, which is receipt (`createdAt`) order."""
    return f"{_w(ks, workspace)}:ix:r"


# ---- touchpoints and conversions (attribution; projections/touchpoints.py)


def tp_sessions(ks: Keyspace, workspace: str) -> str:
    """HASH visitor → 'session start ms:last activity ms' (the open session of each visitor)."""
    return f"{_w(ks, workspace)}:tp:s"


def tp_docs(ks: Keyspace, workspace: str) -> str:
    """HASH touchpoint id → JSON `Touchpoint`."""
    return f"{_w(ks, workspace)}:tp:doc"


def tp_chains(ks: Keyspace, workspace: str) -> str:
    """ZSET (all scores 0) of '<visitor>\\x00<13-digit epoch ms><touchpoint id>': every visitor's chain in one
    key, so a fold batch adds its touchpoints with one command and a BYLEX range reads one visitor's window.
    Visitors are `a:<anonymous id>` or `u:<user id>`."""
    return f"{_w(ks, workspace)}:tp:chains"


def conversion_docs(ks: Keyspace, workspace: str) -> str:
    """HASH event ULID → JSON `Conversion` (every tracked event is a conversion candidate)."""
    return f"{_w(ks, workspace)}:cv:doc"


def conversions_by_name(ks: Keyspace, workspace: str, name: str) -> str:
    """ZSET (all scores 0) of '<13-digit epoch ms><ULID>': time order by member, for BYLEX keyset pages."""
    return f"{_w(ks, workspace)}:cv:n:{name}"


def conversion_names(ks: Keyspace, workspace: str) -> str:
    return f"{_w(ks, workspace)}:cv:names"


# ---- identity, contacts and companies (projections/identity.py, projections/contacts.py)


def identity_map(ks: Keyspace, workspace: str, kind: str) -> str:
    """HASH identifier → contact id; `kind` is `a` (anonymous id), `u` (user id), `e` (email), `x` (CRM id)."""
    return f"{_w(ks, workspace)}:id:{kind}"


def company_map(ks: Keyspace, workspace: str) -> str:
    """HASH 'g:<groupId>' | 'x:<CRM id>' | 'd:<domain>' | 'n:<name>' → company id."""
    return f"{_w(ks, workspace)}:id:co"


def event_contacts(ks: Keyspace, workspace: str) -> str:
    """HASH event ULID → contact id, for every listed event linked to a contact."""
    return f"{_w(ks, workspace)}:id:evc"


def contacts(ks: Keyspace, workspace: str) -> str:
    """HASH contact id → contact document (merged contacts stay, pointing at their survivor)."""
    return f"{_w(ks, workspace)}:ct"


def contact_list(ks: Keyspace, workspace: str) -> str:
    """ZSET live contact id → creation time (ms)."""
    return f"{_w(ks, workspace)}:ct:ix"


def companies(ks: Keyspace, workspace: str) -> str:
    """HASH company id → company document."""
    return f"{_w(ks, workspace)}:co"


def company_members(ks: Keyspace, workspace: str, membership: str) -> str:
    """ZSET contact id → creation time, per `co:<company id>` (explicit company) or `d:<email domain>`."""
    return f"{_w(ks, workspace)}:co:m:{membership}"


def company_list(ks: Keyspace, workspace: str) -> str:
    """ZSET company id → creation time (ms)."""
    return f"{_w(ks, workspace)}:co:ix"


# ---- text index: signature dictionary and trigrams; see projections/search.py


def signatures(ks: Keyspace, workspace: str) -> str:
    """HASH signature id → 'event\\x1furl\\x1fdomain' (the dictionary of distinct signatures)."""
    return f"{_w(ks, workspace)}:sig"


def signature_counts(ks: Keyspace, workspace: str) -> str:
    """HASH signature id → how many events its index holds (`ix:s:<id>` only ever grows)."""
    return f"{_w(ks, workspace)}:sig:n"


def signature_newest(ks: Keyspace, workspace: str) -> str:
    """ZSET signature id → the newest event timestamp in its index (ZADD GT)."""
    return f"{_w(ks, workspace)}:sig:new"


def signature_oldest(ks: Keyspace, workspace: str) -> str:
    """ZSET signature id → the oldest event timestamp in its index (ZADD LT)."""
    return f"{_w(ks, workspace)}:sig:old"


def index_signature(ks: Keyspace, workspace: str, signature_id: str) -> str:
    """ZSET of the events with one signature."""
    return f"{_w(ks, workspace)}:ix:s:{signature_id}"


def signature_gram(ks: Keyspace, workspace: str, gram: str) -> str:
    """SET of the signature ids whose lower-cased text contains the trigram."""
    return f"{_w(ks, workspace)}:ng:{gram}"


# ---- counter rollups (fields end in `␟a` = all events, `␟i` = identified ones); see projections/counters.py


def counter_totals(ks: Keyspace, workspace: str) -> str:
    """HASH 'type\\x1fdomain\\x1fa|i' → count over the whole history."""
    return f"{_w(ks, workspace)}:cnt:all"


def counter_all_types(ks: Keyspace, workspace: str) -> str:
    """HASH 'type\\x1fa|i' → count over the whole history."""
    return f"{_w(ks, workspace)}:cnt:at"


def counter_all_domains(ks: Keyspace, workspace: str) -> str:
    """HASH 'domain\\x1fa|i' → count over the whole history (events without a domain under '')."""
    return f"{_w(ks, workspace)}:cnt:ad"


def counter_day_types(ks: Keyspace, workspace: str, day: str) -> str:
    """HASH 'type\\x1fa|i' → count for one UTC day."""
    return f"{_w(ks, workspace)}:cnt:t:{day}"


def counter_day_domains(ks: Keyspace, workspace: str, day: str) -> str:
    """HASH 'domain\\x1fa|i' → count for one UTC day (events without a domain under '')."""
    return f"{_w(ks, workspace)}:cnt:d:{day}"


def counter_day_totals(ks: Keyspace, workspace: str) -> str:
    """HASH 'YYYY-MM-DD\\x1fa|i' → count per UTC day."""
    return f"{_w(ks, workspace)}:cnt:bd"
