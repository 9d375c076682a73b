"""Every GET route of `/openapi.json`, fuzzed by Schemathesis with a valid key: never a 5xx, every answer matches
its declared schema, and values the schema forbids (out of range, wrong type, missing) are refused with a 4xx.

Schemathesis runs its phases per route: the schema's examples, its coverage cases (boundaries and just past them:
the largest integers, empty and over-long strings, missing and duplicated parameters) and a bounded fuzz with a
fixed seed. It runs as its command line, against the app under uvicorn on localhost (its pytest plugin cannot
take a schema from a fixture under pytest 9); nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import sys

import httpx
import pytest

from ingest.workspaces import READ_SCOPES, WorkspaceRegistry
from projections.touchpoints import MODELS, SOURCES, WINDOWS_DAYS

from .conftest import LiveServer, WorkspaceKeys

FUZZ_EXAMPLES_PER_ROUTE = 30  # per route and mode; with the coverage cases ~900 requests, ~15 s
SCHEMATHESIS = [sys.executable, "-m", "schemathesis.cli"]


@pytest.fixture
def settings(settings):
    # the attribution API's 7 requests a minute would answer most cases with 429 before parsing them
    return settings.with_(attribution_rate_limit_per_minute=1_000_000)


async def some_data(server: LiveServer, ws: WorkspaceKeys, folded) -> None:
    """Events, an identified contact and a company, so lists and lookups answer with data."""
    batch = [
        {"type": "page", "anonymousId": "a-1", "properties": {"url": "https://example.com/p?utm_source=ads"}},
        {"type": "identify", "anonymousId": "a-1", "userId": "u-1", "traits": {"email": "ada@example.com"}},
        {"type": "group", "userId": "u-1", "groupId": "acme", "traits": {"name": "Acme"}},
        {"type": "track", "userId": "u-1", "event": "signed_up", "properties": {"plan": "pro"}},
    ]
    async with httpx.AsyncClient(base_url=server.url) as client:
        r = await client.post("/v1/batch", json={"batch": batch}, auth=(ws.write_key, ""))
        assert r.json() == {"success": True}
    await folded()


@pytest.mark.timeout(900)
async def test_every_get_route_survives_fuzzing_of_its_openapi_schema(
    live_server, settings, redis, workspace, folded, tmp_path
):
    await some_data(live_server, workspace, folded)
    key = await WorkspaceRegistry(redis, settings).create_key(workspace.id, (*READ_SCOPES, "admin"))
    proc = await asyncio.create_subprocess_exec(
        *SCHEMATHESIS,
        "run",
        f"{live_server.url}/openapi.json",
        "--include-method",
        "GET",
        "--header",
        f"Authorization: Bearer {key}",
        "--phases",
        "examples,coverage,fuzzing",
        "--checks",
        "not_a_server_error,response_schema_conformance,negative_data_rejection",
        "--max-examples",
        str(FUZZ_EXAMPLES_PER_ROUTE),
        "--seed",
        "14",
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--report",
        "ndjson",
        "--report-dir",
        str(tmp_path),
        "--output-sanitize",
        "false",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    assert "Coverage" in text and "Fuzzing" in text and " failed" not in text, text


def integer_query_parameters(openapi: dict) -> list[tuple[str, str, dict]]:
    """(path with its path parameters filled in, parameter, its schema) of every GET route's integer query
    parameter the schema declares."""
    out = []
    for path, ops in openapi["paths"].items():
        op = ops.get("get")
        if op is None:
            continue
        filled = path
        for p in op.get("parameters", []):
            if p["in"] == "path":
                filled = filled.replace("{" + p["name"] + "}", "x")
        for p in op.get("parameters", []):
            schema = p.get("schema", {})
            if p["in"] == "query" and "integer" in (
                schema.get("type"),
                *(s.get("type") for s in schema.get("anyOf", [])),
            ):
                out.append((filled, p["name"], schema))
    return out


def out_of_range(schema: dict) -> list[str]:
    values = [str(10**36), str(-(10**36)), "1.5", "x", ""]
    if "maximum" in schema:
        values.append(str(schema["maximum"] + 1))
    if "minimum" in schema:
        values.append(str(schema["minimum"] - 1))
    return values


# The attribution API reads its query itself (arrays in three spellings), so its parameters are not in the schema.
ATTRIBUTION_INTEGERS = ("limit", "attribution_window")
ATTRIBUTION_QUERY = {"start_date": "2026-01-01 00:00:00", "end_date": "2026-01-31 23:59:59"}


async def test_every_integer_query_parameter_is_bounded_and_named(client, settings, redis, workspace):
    key = await WorkspaceRegistry(redis, settings).create_key(workspace.id, (*READ_SCOPES, "admin"))
    headers = {"Authorization": f"Bearer {key}"}
    openapi = (await client.get("/openapi.json")).json()
    declared = integer_query_parameters(openapi)
    assert {(path, name) for path, name, _ in declared} >= {
        ("/v1/events", "page"),
        ("/v1/contacts", "page"),
        ("/v1/companies", "page"),
        ("/v1/events", "limit"),
    }
    for path, name, schema in declared:
        assert "maximum" in schema, f"{path} {name}: no upper bound"
        for value in out_of_range(schema):
            r = await client.get(path, params={name: value}, headers=headers)
            assert r.status_code == 400, (path, name, value, r.status_code, r.text)
            body = r.json()
            assert body["status"] == "error" and body["details"] == {"parameter": name}, (
                path,
                name,
                value,
                body,
            )
        r = await client.get(path, params={name: schema["maximum"]}, headers=headers)
        assert r.status_code in (200, 404), (path, name, r.status_code, r.text)
    for name in ATTRIBUTION_INTEGERS:
        for value in [str(10**36), "-1", "1.5", "x", "0" if name == "limit" else str(max(WINDOWS_DAYS) + 1)]:
            params = {**ATTRIBUTION_QUERY, name: value}
            if name == "attribution_window":
                params.update(sources=SOURCES[0], attribution_model=MODELS[0])
            r = await client.get("/public-api/v1/events", params=params, headers=headers)
            assert r.status_code == 422 and name in r.json()["message"], (name, value, r.status_code, r.text)
