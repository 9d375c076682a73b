"""Keys the read side owns: rate-limit windows, the cursor-signing secret, and workspace settings."""

from __future__ import annotations


def rate_limit(prefix: str, name: str, workspace_id: str) -> str:
    """Per limited API and workspace: the attribution API's ZSET of request times (ms) in the current sliding
    window; ingest's HASH of token-bucket levels."""
    return f"{prefix}:rl:{name}:{workspace_id}"


def cursor_secret(prefix: str) -> str:
    """STRING: the deployment's key for signing pagination cursors (made once, shared by all replicas)."""
    return f"{prefix}:secret:cursor"


def workspace_settings(prefix: str, workspace_id: str) -> str:
    """HASH `custom_event:N` → JSON {event, configured_name}; `profile_field:N` → label."""
    return f"{prefix}:ws:{workspace_id}:settings"
