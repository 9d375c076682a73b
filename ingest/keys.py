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
