"""Keys of the identity projection: identifier maps, contacts, companies, company members, event → contact."""

from __future__ import annotations

from ..keyspace import Keyspace, workspace_base


def identity_map(ks: Keyspace, workspace: str, kind: str) -> str:
    """HASH identifier → contact id; `kind` is `a` (anonymous id), `u` (user id), `e` (email), `x` (CRM id)."""
    return f"{workspace_base(ks, workspace)}:id:{kind}"


def company_map(ks: Keyspace, workspace: str) -> str:
    """HASH 'g:<groupId>' | 'x:<CRM id>' | 'd:<domain>' | 'n:<name>' → company id."""
    return f"{workspace_base(ks, workspace)}:id:co"


def event_contacts(ks: Keyspace, workspace: str) -> str:
    """HASH event ULID → contact id, for every listed event linked to a contact."""
    return f"{workspace_base(ks, workspace)}:id:evc"


def contacts(ks: Keyspace, workspace: str) -> str:
    """HASH contact id → contact document (merged contacts stay, pointing at their survivor)."""
    return f"{workspace_base(ks, workspace)}:ct"


def contact_list(ks: Keyspace, workspace: str) -> str:
    """ZSET live contact id → creation time (ms)."""
    return f"{workspace_base(ks, workspace)}:ct:ix"


def companies(ks: Keyspace, workspace: str) -> str:
    """HASH company id → company document."""
    return f"{workspace_base(ks, workspace)}:co"


def company_members(ks: Keyspace, workspace: str, membership: str) -> str:
    """ZSET contact id → creation time, per membership (`projections.identity.docs.membership_of`):
    `co:<company id>` (explicit company) or `d:<email domain>`."""
    return f"{workspace_base(ks, workspace)}:co:m:{membership}"


def company_list(ks: Keyspace, workspace: str) -> str:
    """ZSET company id → creation time (ms)."""
    return f"{workspace_base(ks, workspace)}:co:ix"
