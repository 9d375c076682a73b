"""Keys owned by the write side: the partitioned log, its dead-letter stream, workspaces and API keys.

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


def workspace_settings(prefix: str, workspace_id: str) -> str:
    """HASH `custom_event:N` → JSON {event, configured_name}; `profile_field:N` → label."""
    return f"{prefix}:ws:{workspace_id}:settings"


def rate_limit(prefix: str, name: str, workspace_id: str) -> str:
    """ZSET of request times (ms) in the current sliding minute, per limited API and workspace."""
    return f"{prefix}:rl:{name}:{workspace_id}"


def cursor_secret(prefix: str) -> str:
    """STRING: the deployment's key for signing pagination cursors (made once, shared by all replicas)."""
    return f"{prefix}:secret:cursor"
