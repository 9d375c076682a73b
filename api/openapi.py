"""What `/openapi.json` says beyond what FastAPI infers: how each endpoint takes its key (security schemes, so
"Authorize" and "Try it out" on `/docs` work) and the bodies of the ingest endpoints, which read raw bytes to stay
fast. Documentation only: nothing here runs per request.
"""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from ingest.http import INGEST_ROUTES
from ingest.schema import WireBatch, WireMessage
from ingest.sources.crm import CrmSync

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "bearerKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key as `Authorization: Bearer <key>`: a read key for the query APIs, a write key "
        "for the sources.",
    },
    "apiKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "A read key in the `X-API-Key` header.",
    },
    "writeKeyBasic": {
        "type": "http",
        "scheme": "basic",
        "description": "The write key as the HTTP Basic username with an empty password (as Segment SDKs send "
        "it). A `writeKey` field in the body works as well.",
    },
    "writeKeyQuery": {
        "type": "apiKey",
        "in": "query",
        "name": "writeKey",
        "description": "The write key in the query string (beacons and webhooks cannot send headers).",
    },
}
READ_SECURITY = [{"bearerKey": []}, {"apiKeyHeader": []}]
SOURCE_SECURITY = [{"writeKeyBasic": []}, {"bearerKey": []}, {"writeKeyQuery": []}]

_EXAMPLES: dict[str | None, dict[str, Any]] = {
    "track": {"userId": "user-1", "event": "signed_up", "properties": {"plan": "pro"}},
    "page": {
        "anonymousId": "anon-1",
        "name": "Pricing",
        "properties": {"url": "https://example.com/pricing"},
    },
    "screen": {"userId": "user-1", "name": "Settings"},
    "identify": {"userId": "user-1", "anonymousId": "anon-1", "traits": {"email": "ada@example.com"}},
    "group": {"userId": "user-1", "groupId": "acme", "traits": {"name": "Acme Inc."}},
    "alias": {"userId": "user-1", "previousId": "anon-1"},
}
_BATCH_EXAMPLE = {
    "batch": [{"type": "track", **_EXAMPLES["track"], "messageId": "m-1"}],
    "sentAt": "2026-01-01T00:00:00.000Z",
}
_INGEST_ANSWER = {
    "type": "object",
    "description": "`{success: true}`; when some messages of a batch were rejected, also `accepted` and "
    "`rejected` (each with its index in the batch, field, code and message).",
    "properties": {
        "success": {"type": "boolean"},
        "accepted": {"type": "integer"},
        "rejected": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "field": {"type": "string"},
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
    },
    "required": ["success"],
}


def _body_schemas() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        [WireMessage, WireBatch, CrmSync], ref_template="#/components/schemas/{name}"
    )
    # messages and records stay raw in the decoders (each is judged on its own); say what they are
    components["WireBatch"]["properties"]["batch"] = {
        "type": "array",
        "items": {"$ref": "#/components/schemas/WireMessage"},
    }
    components["IngestAnswer"] = _INGEST_ANSWER
    return components


def _json_body(schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"required": True, "content": {"application/json": content}}


def _document_ingest(path: str, op: dict[str, Any]) -> None:
    route = INGEST_ROUTES[path]
    if route.batch:
        op["requestBody"] = _json_body({"$ref": "#/components/schemas/WireBatch"}, _BATCH_EXAMPLE)
    else:
        op["requestBody"] = _json_body(
            {"$ref": "#/components/schemas/WireMessage"}, _EXAMPLES.get(route.kind_hint)
        )
    op["security"] = [{"writeKeyQuery": []}] if route.beacon else [{"writeKeyBasic": []}]
    ok = op.setdefault("responses", {}).setdefault("200", {"description": "Accepted"})
    ok["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/IngestAnswer"}}}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes, tags=app.openapi_tags
    )
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {}).update(_body_schemas())
    components["securitySchemes"] = SECURITY_SCHEMES
    for path, ops in schema.get("paths", {}).items():
        for method, op in ops.items():
            tags = op.get("tags", [])
            if "ingest" in tags and method == "post" and path in INGEST_ROUTES:
                _document_ingest(path, op)
            elif "sources" in tags:
                op["security"] = SOURCE_SECURITY
                if path.endswith("/crm/sync"):
                    op["requestBody"] = _json_body({"$ref": "#/components/schemas/CrmSync"})
                else:
                    op["requestBody"] = _json_body(
                        {"type": "object", "description": "the provider's webhook payload, as it sends it"}
                    )
            elif path.startswith(("/v1/", "/public-api/")):
                op["security"] = READ_SECURITY
    return schema


def install(app: FastAPI) -> None:
    """Serve `build_openapi` at `/openapi.json` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
