"""Keys the fold itself owns: per partition its checkpoint, lease, fencing epoch, projection format and the set
of workspaces with data; per workspace the messageId dedupe hash."""

from __future__ import annotations

from ..keyspace import Keyspace, workspace_base

# What a fold writes, by version: bump it whenever a projection's keys or contents change. An applier that finds
# a partition folded in another format drops that partition's projections and folds its log again from the start
# (`projections.fold.applier.ensure_projection_format`): the log is the source of truth, projections are derived.
PROJECTION_FORMAT = "6"


def projection_format(ks: Keyspace) -> str:
    return f"{ks.base}:format"


def checkpoint(ks: Keyspace) -> str:
    """STRING: the id of the last log entry folded into this view."""
    return f"{ks.base}:ckpt"


def fence_owner(ks: Keyspace) -> str:
    """STRING with a TTL: the lease token of the applier that owns the partition."""
    return f"{ks.base}:owner"


def fence_epoch(ks: Keyspace) -> str:
    """STRING: incremented by every acquisition of the lease; commits are guarded by it."""
    return f"{ks.base}:epoch"


def workspaces(ks: Keyspace) -> str:
    """SET of the workspaces that have projection data in this partition (for digests and rebuilds)."""
    return f"{ks.base}:workspaces"


def message_ids(ks: Keyspace, workspace: str, day: int) -> str:
    """HASH client messageId → the log day (days since the epoch, UTC, of the log entry's time) it was first
    folded on, for the log days `day` … `day + window − 1`: one workspace's dedupe, a bucket per dedupe window of
    days, kept while the window of the newest log day reaches into it."""
    return f"{workspace_base(ks, workspace)}:mid:{day}"


def message_id_days(ks: Keyspace, workspace: str) -> str:
    """ZSET first day → first day: which `message_ids` buckets exist."""
    return f"{workspace_base(ks, workspace)}:mid:days"


def workspace_rules(ks: Keyspace, workspace: str) -> str:
    """HASH of what the log said about how to fold this workspace: `retention_days` (absent: keep every event),
    and `expiry` = 1 once the events projection keeps its expiry index (`projections/events/expiry.py`)."""
    return f"{workspace_base(ks, workspace)}:rules"


def expired_day(ks: Keyspace) -> str:
    """STRING: the log day (days since the epoch) up to which every workspace of the partition has had its old
    events expired."""
    return f"{ks.base}:expired"


def forgetting(ks: Keyspace) -> str:
    """HASH deletion id → JSON job: people the partition's fold has been asked to forget and has not finished
    forgetting (`forget.py` resumes them)."""
    return f"{ks.base}:forget"
