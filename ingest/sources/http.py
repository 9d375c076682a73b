"""HTTP receivers of the non-SDK sources: `POST /v1/sources/crm/sync` and `POST /v1/sources/email/{provider}`.

The key goes in HTTP Basic (username, as webhook URLs `https://<key>:@host/…` send it), `Authorization: Bearer`,
or `?writeKey=`. CRM syncs need the scope `crm:write`, email webhooks `write`. Answers use the ingest shape:
`200 {success, accepted, rejected}`; nothing valid → `400 {success: false, code, message, errors}`.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from fastapi import APIRouter, Request, Response
from redis.asyncio import Redis

from ..errors import InvalidRequest, NotFound, StreamfoldError, Unavailable
from ..http import error_response
from ..keys import email_signing_secrets
from ..receive import Receiver, decompress
from ..redis_client import STORE_UNAVAILABLE
from ..workspaces import Workspace, key_from_authorization
from . import crm, email

_encoder = msgspec.json.Encoder()
# the codes metrics count rejected records and webhook events under (their answers name the field instead)
CRM_REJECTED, EMAIL_REJECTED = "invalid_record", "invalid_event"


async def authenticate(receiver: Receiver, request: Request, scope: str) -> Workspace:
    """The workspace of the request's key (HTTP Basic username, Bearer token or `?writeKey=`), if it holds
    `scope`."""
    key = key_from_authorization(request.headers.get("authorization"), basic=True)
    grant = await receiver.registry.authorize(
        key or request.query_params.get("writeKey") or None,
        scope,
        missing="missing key: send it as the HTTP Basic username, a Bearer token or ?writeKey=",
        unknown="unknown write key",
    )
    return grant.workspace


async def signing_secret(redis: Redis, prefix: str, workspace_id: str, provider: str) -> str | None:
    raw = await redis.hget(email_signing_secrets(prefix, workspace_id), provider)
    return raw.decode() if raw is not None else None


async def set_signing_secret(
    redis: Redis, prefix: str, workspace_id: str, provider: str, secret: str | None
) -> None:
    if provider not in email.PROVIDERS:
        raise InvalidRequest(
            f"provider must be one of {', '.join(email.PROVIDERS)}", details={"field": "provider"}
        )
    key = email_signing_secrets(prefix, workspace_id)
    if secret:
        await redis.hset(key, provider, secret)
    else:
        await redis.hdel(key, provider)


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(_encoder.encode(body), status_code=status, media_type="application/json")


def _receiver(request: Request) -> Receiver:
    return request.app.state.receiver


def decompressed(receiver: Receiver, request: Request, body: bytes) -> bytes:
    return decompress(body, request.headers.get("content-encoding"), receiver.settings.max_request_bytes)


def failed(exc: StreamfoldError, body: bytes | None) -> Response:
    """The error answer; it closes the connection when the body was not read to its end."""
    return error_response(exc, {} if body is not None else {"Connection": "close"})


async def crm_sync(request: Request) -> Response:
    """Upsert CRM contacts and companies and record CRM activities (scope `crm:write`)."""
    receiver = _receiver(request)
    sent = None
    try:
        workspace = await authenticate(receiver, request, "crm:write")
        sent = await receiver.bodies.read(request.receive, request.headers.get("content-length"))
        sync, too_deep = crm.decode_sync(decompressed(receiver, request, sent))
        total = len(sync.contacts) + len(sync.companies) + len(sync.activities)
        if total > receiver.settings.max_batch_events:
            raise InvalidRequest(
                f"sync has {total} records; the limit is {receiver.settings.max_batch_events} per request",
                details={"field": "body"},
            )
        plan = crm.plan_sync(sync, time.time_ns() // 1_000_000, too_deep)
        rejected = [r.as_dict() for r in plan.rejected]
        if not plan.events:
            receiver.observer.received("crm", 0, [CRM_REJECTED] * len(rejected))
            first = plan.rejected[0]
            raise InvalidRequest(
                f"every record was rejected; {first.list}[{first.index}].{first.field}: {first.reason}",
                details=rejected,
            )
        await receiver.store(workspace, plan.events)
    except StreamfoldError as exc:
        return failed(exc, sent)
    except STORE_UNAVAILABLE as exc:
        return failed(Unavailable(f"the event log is unavailable, retry later ({exc})"), sent)
    receiver.observer.received("crm", len(plan.events), [CRM_REJECTED] * len(rejected))
    return _json({"success": True, "accepted": plan.accepted, "rejected": rejected})


async def email_webhook(provider: str, request: Request) -> Response:
    """Receive one provider's webhook post (SendGrid Event Webhook, Mailgun webhooks)."""
    receiver = _receiver(request)
    sent = None
    try:
        if provider not in email.PROVIDERS:
            raise NotFound(
                f"unknown email provider {provider!r}; supported: {', '.join(email.PROVIDERS)}",
                details={"field": "provider"},
            )
        workspace = await authenticate(receiver, request, "write")
        sent = await receiver.bodies.read(request.receive, request.headers.get("content-length"))
        body = decompressed(receiver, request, sent)
        secret = await signing_secret(
            receiver.log.redis, receiver.settings.key_prefix, workspace.id, provider
        )
        now = time.time_ns() // 1_000_000
        if provider == "sendgrid":
            if secret is not None:
                email.verify_sendgrid(
                    secret,
                    body,
                    request.headers.get(email.SENDGRID_SIGNATURE),
                    request.headers.get(email.SENDGRID_TIMESTAMP),
                )
            plan = email.plan_sendgrid(body, now)
        else:
            payload = email.decode_mailgun(body)
            if secret is not None:
                email.verify_mailgun(secret, payload.get("signature"))
            plan = email.plan_mailgun(payload, now)
        rejected = [r.as_dict() for r in plan.rejected]
        if not plan.events:
            receiver.observer.received("email", 0, [EMAIL_REJECTED] * len(rejected))
            first = plan.rejected[0]
            raise InvalidRequest(
                f"every event was rejected; [{first.index}].{first.field}: {first.reason}", details=rejected
            )
        await receiver.store(workspace, plan.events)
    except StreamfoldError as exc:
        return failed(exc, sent)
    except STORE_UNAVAILABLE as exc:
        return failed(Unavailable(f"the event log is unavailable, retry later ({exc})"), sent)
    receiver.observer.received("email", len(plan.events), [EMAIL_REJECTED] * len(rejected))
    if rejected:
        return _json({"success": True, "accepted": len(plan.events), "rejected": rejected})
    return _json({"success": True})


def build_router() -> APIRouter:
    router = APIRouter(tags=["sources"])
    router.add_api_route("/v1/sources/crm/sync", crm_sync, methods=["POST"])
    router.add_api_route("/v1/sources/email/{provider}", email_webhook, methods=["POST"])
    return router
