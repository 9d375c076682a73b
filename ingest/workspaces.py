"""Workspaces and their API keys. Keys are random tokens stored only as SHA-256 hashes.

Scopes: `write` (ingest), `crm:write`, `events:read`, `contacts:read`, `attribution:read`, and `admin`
(workspace settings: timezone, custom event names, custom profile field labels; never given by default).
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from redis.asyncio import Redis

from . import keys
from .errors import Forbidden, InvalidRequest, NotFound, Unauthorized
from .ids import new_token, ulid
from .settings import Settings

SCOPES = ("write", "crm:write", "events:read", "contacts:read", "attribution:read", "admin")
WRITE_SCOPES = ("write", "crm:write")
READ_SCOPES = ("events:read", "contacts:read", "attribution:read")
MAX_INGEST_RATE = 10_000_000


@dataclass(frozen=True, slots=True)
class Workspace:
    id: str
    name: str
    timezone: str = "UTC"
    disabled: bool = False
    allowed_origins: tuple[str, ...] = ()  # empty = any origin may post events
    suppressions: int = 0  # identifiers of forgotten people whose events are dropped at ingest
    requests_per_second: int = 0  # ingest limits; 0 = no limit
    events_per_second: int = 0


@dataclass(frozen=True, slots=True)
class KeyGrant:
    workspace: Workspace
    scopes: frozenset[str]


@dataclass(slots=True)
class CreatedKey:
    key: str
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What can be shown of a stored key: its hash (never the key) and its scopes."""

    key_hash: str
    scopes: tuple[str, ...]


@dataclass(slots=True)
class CreatedWorkspace:
    workspace: Workspace
    keys: list[CreatedKey] = field(default_factory=list)


def key_from_authorization(header: str | None, *, basic: bool) -> str | None:
    """The key an `Authorization` header presents: a Bearer token, or (where `basic`) the HTTP Basic username
    with an empty password, as SDKs and webhook URLs (`https://<key>:@host/…`) send it."""
    if not header:
        return None
    scheme = header[:7].lower()
    if scheme == "bearer ":
        return header[7:].strip() or None
    if basic and scheme[:6] == "basic ":
        try:
            user = base64.b64decode(header[6:].strip()).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        return user.split(":", 1)[0] or None
    return None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def normalize_origin(origin: str) -> str:
    """`https://Shop.Example.com/` → `https://shop.example.com`; `https://*.example.com` allows subdomains."""
    text = origin.strip().rstrip("/").lower()
    scheme, sep, host = text.partition("://")
    if not sep or scheme not in ("http", "https") or not host or "/" in host or " " in host:
        raise InvalidRequest(
            f"origin {origin!r} is not scheme://host[:port] (e.g. https://www.example.com)",
            details={"field": "allowed_origins"},
        )
    return text


def validate_timezone(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidRequest(
            f"timezone {tz!r} is not an IANA time zone name", details={"field": "timezone"}
        ) from exc
    return tz


class WorkspaceRegistry:
    """Creates workspaces and keys; resolves a presented key to its workspace and scopes (cached briefly)."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.prefix = settings.key_prefix
        self.cache_seconds = settings.key_cache_seconds
        self._cache: dict[str, tuple[float, KeyGrant | None]] = {}

    async def create_workspace(self, name: str, timezone: str = "UTC") -> CreatedWorkspace:
        if not name or len(name) > 100:
            raise InvalidRequest("workspace name must be 1–100 characters", details={"field": "name"})
        validate_timezone(timezone)
        ws_id = f"ws_{ulid().lower()}"
        claimed = await self.redis.set(keys.workspace_by_name(self.prefix, name), ws_id, nx=True)
        if not claimed:
            raise InvalidRequest(f"a workspace named {name!r} already exists", details={"field": "name"})
        await self.redis.hset(
            keys.workspace(self.prefix, ws_id),
            mapping={"name": name, "timezone": timezone, "created_at": int(time.time()), "disabled": 0},
        )
        await self.redis.sadd(keys.workspace_index(self.prefix), ws_id)
        ws = Workspace(id=ws_id, name=name, timezone=timezone)
        created = CreatedWorkspace(ws)
        created.keys.append(CreatedKey(await self.create_key(ws_id, WRITE_SCOPES), WRITE_SCOPES))
        created.keys.append(CreatedKey(await self.create_key(ws_id, READ_SCOPES), READ_SCOPES))
        return created

    async def create_key(self, workspace_id: str, scopes: tuple[str, ...] | list[str]) -> str:
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown or not scopes:
            raise InvalidRequest(
                f"unknown scope(s) {unknown}; known: {', '.join(SCOPES)}", details={"field": "scope"}
            )
        await self.get_workspace(workspace_id)
        kind = "wk" if set(scopes) <= set(WRITE_SCOPES) else "rk"
        key = f"{kind}_{new_token()}"
        h = hash_key(key)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(
            keys.api_key(self.prefix, h), mapping={"workspace": workspace_id, "scopes": " ".join(scopes)}
        )
        pipe.sadd(keys.workspace_keys(self.prefix, workspace_id), h)
        await pipe.execute()
        return key

    async def revoke_key(self, key: str) -> bool:
        h = hash_key(key)
        ws_id = await self.redis.hget(keys.api_key(self.prefix, h), "workspace")
        if ws_id is None:
            return False
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(keys.api_key(self.prefix, h))
        pipe.srem(keys.workspace_keys(self.prefix, ws_id.decode()), h)
        await pipe.execute()
        self._cache.pop(h, None)
        return True

    async def list_keys(self, workspace_id: str) -> list[KeyInfo]:
        """The workspace's keys, by hash, sorted by hash."""
        await self.get_workspace(workspace_id)
        hashes = sorted(
            h.decode() for h in await self.redis.smembers(keys.workspace_keys(self.prefix, workspace_id))
        )
        pipe = self.redis.pipeline(transaction=False)
        for h in hashes:
            pipe.hget(keys.api_key(self.prefix, h), "scopes")
        return [
            KeyInfo(h, tuple(scopes.decode().split()))
            for h, scopes in zip(hashes, await pipe.execute(), strict=True)
            if scopes is not None
        ]

    async def set_disabled(self, workspace_id: str, disabled: bool) -> Workspace:
        """A disabled workspace's keys are refused (403) for ingest and queries; its data stays."""
        return await self.update_workspace(workspace_id, disabled="1" if disabled else "0")

    async def get_workspace(self, workspace_id: str) -> Workspace:
        raw = await self.redis.hgetall(keys.workspace(self.prefix, workspace_id))
        if not raw:
            raise NotFound(f"workspace {workspace_id!r} does not exist", details={"field": "workspace"})
        d = {k.decode(): v.decode() for k, v in raw.items()}
        origins = tuple(o for o in d.get("allowed_origins", "").split() if o)
        return Workspace(
            id=workspace_id,
            name=d["name"],
            timezone=d.get("timezone", "UTC"),
            disabled=d.get("disabled", "0") == "1",
            allowed_origins=origins,
            suppressions=int(d.get("suppressions", "0")),
            requests_per_second=int(d.get("requests_per_second", "0")),
            events_per_second=int(d.get("events_per_second", "0")),
        )

    async def find_workspace(self, name_or_id: str) -> Workspace:
        if name_or_id.startswith("ws_"):
            return await self.get_workspace(name_or_id)
        ws_id = await self.redis.get(keys.workspace_by_name(self.prefix, name_or_id))
        if ws_id is None:
            raise NotFound(f"workspace {name_or_id!r} does not exist", details={"field": "workspace"})
        return await self.get_workspace(ws_id.decode())

    async def list_workspaces(self) -> list[Workspace]:
        ids = sorted(m.decode() for m in await self.redis.smembers(keys.workspace_index(self.prefix)))
        return [await self.get_workspace(i) for i in ids]

    async def update_workspace(self, workspace_id: str, **fields: str) -> Workspace:
        await self.get_workspace(workspace_id)
        if "timezone" in fields:
            validate_timezone(fields["timezone"])
        await self.redis.hset(keys.workspace(self.prefix, workspace_id), mapping=fields)
        self.forget_cached()
        return await self.get_workspace(workspace_id)

    async def set_allowed_origins(self, workspace_id: str, origins: list[str]) -> Workspace:
        """Restrict which website origins may post events (an empty list allows any origin)."""
        normalized = " ".join(dict.fromkeys(normalize_origin(o) for o in origins))
        return await self.update_workspace(workspace_id, allowed_origins=normalized)

    async def set_ingest_limits(
        self, workspace_id: str, *, requests_per_second: int | None, events_per_second: int | None
    ) -> Workspace:
        """Limit how fast the workspace may send (0 lifts a limit, None leaves it): over a limit, ingest answers
        429 with `Retry-After` and stores nothing of that request."""
        fields = {}
        for name, value in (
            ("requests_per_second", requests_per_second),
            ("events_per_second", events_per_second),
        ):
            if value is None:
                continue
            if not 0 <= value <= MAX_INGEST_RATE:
                raise InvalidRequest(
                    f"{name} must be 0 (no limit) to {MAX_INGEST_RATE}, got {value}", details={"field": name}
                )
            fields[name] = str(value)
        return await self.update_workspace(workspace_id, **fields)

    def forget_cached(self) -> None:
        """Drop the cached grants, after a change to a workspace (this process sees it at once; others within
        `key_cache_seconds`)."""
        self._cache.clear()

    async def resolve(self, key: str) -> KeyGrant | None:
        """The grant of a presented key, or None. Cached for `key_cache_seconds` (revocation delay)."""
        h = hash_key(key)
        now = time.monotonic()
        hit = self._cache.get(h)
        if hit is not None and hit[0] > now:
            return hit[1]
        grant: KeyGrant | None = None
        raw = await self.redis.hgetall(keys.api_key(self.prefix, h))
        if raw:
            try:
                ws = await self.get_workspace(raw[b"workspace"].decode())
                grant = KeyGrant(ws, frozenset(raw[b"scopes"].decode().split()))
            except NotFound:
                grant = None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[h] = (now + self.cache_seconds, grant)
        return grant

    async def authorize(
        self, key: str | None, scope: str | tuple[str, ...], *, missing: str, unknown: str
    ) -> KeyGrant:
        """The grant of a presented key that holds `scope` (or one of several): 401 with `missing` when there is
        no key, 401 with `unknown` for a key we do not know, 403 for a key without the scope or of a disabled
        workspace."""
        if not key:
            raise Unauthorized(missing)
        grant = await self.resolve(key)
        if grant is None:
            raise Unauthorized(unknown)
        wanted = (scope,) if isinstance(scope, str) else scope
        if grant.scopes.isdisjoint(wanted):
            raise Forbidden(f"this key lacks the scope {' or '.join(repr(s) for s in wanted)}")
        if grant.workspace.disabled:
            raise Forbidden("this workspace is disabled")
        return grant
