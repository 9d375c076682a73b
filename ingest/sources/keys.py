"""Keys owned by the non-SDK sources."""

from __future__ import annotations


def email_signing_secrets(prefix: str, workspace_id: str) -> str:
    """HASH provider (`sendgrid`, `mailgun`) → the secret its webhooks are verified with."""
    return f"{prefix}:ws:{workspace_id}:email-signing"
