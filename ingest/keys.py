"""Keys owned by the write side: the partitioned log, its dead-letter stream, workspaces, API keys and the
sources' webhook secrets.

Every partition key carries the hash tag `{p}` so a workspace's keys share one Redis Cluster slot.
"""

from __future__ import annotations

import zlib


def partition_of(workspace_id: str, partitions: int) -> int:
    return zlib.crc32(workspace_id.encode()) % partitions


def log(prefix: str, p: int) -> str:
    return f"{prefix}:{{{p}}}:log"


def dead_letters(prefix: str, p: int) -> str:
    return f"{prefix}:{{{p}}}:dlq"


def workspace(prefix: str, workspace_id: str) -> str:
    return f"{prefix}:ws:{workspace_id}"


def workspace_by_name(prefix: str, name: str) -> str:
    return f"{prefix}:wsname:{name}"


def workspace_index(prefix: str) -> str:
    return f"{prefix}:workspaces"


def api_key(prefix: str, key_hash: str) -> str:
    return f"{prefix}:key:{key_hash}"


def workspace_keys(prefix: str, workspace_id: str) -> str:
    return f"{prefix}:ws:{workspace_id}:keys"


def email_signing_secrets(prefix: str, workspace_id: str) -> str:
    """HASH provider (`sendgrid`, `mailgun`) → the secret its webhooks are verified with."""
    return f"{prefix}:ws:{workspace_id}:email-signing"


def suppressions(prefix: str, workspace_id: str) -> str:
    """HASH identifier hash → JSON {kind, deletion_id, at}: identifiers of forgotten people, suppressed at ingest."""
    return f"{prefix}:ws:{workspace_id}:suppressed"


def suppressed_events(prefix: str, workspace_id: str) -> str:
    """STRING: how many events ingest dropped for carrying a suppressed identifier."""
    return f"{prefix}:ws:{workspace_id}:suppressed:n"


def deletions(prefix: str, workspace_id: str) -> str:
    """HASH deletion id → JSON status (`ingest.deletions`): requests to forget a person and how they went."""
    return f"{prefix}:ws:{workspace_id}:deletions"


def log_rewrite(prefix: str, p: int) -> str:
    """STREAM: a partition's log being copied with a forgotten person's events tombstoned, then renamed over the
    log (`projections/fold/forget.py`)."""
    return f"{prefix}:{{{p}}}:log:rewrite"
