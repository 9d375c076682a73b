"""Events API contract details: parameter errors, pages past the end, summary fields, unknown ids."""

from __future__ import annotations

import pytest

from ingest.log import EventLog

from .conftest import new_workspace
from .factories import append_events, make_events


def auth(ws) -> dict[str, str]:
    return {"Authorization": f"Bearer {ws.read_key}"}


@pytest.mark.parametrize(
    ("path", "param", "value"),
    [
        ("/v1/events", "limit", "0"),
        ("/v1/events", "limit", "101"),
        ("/v1/events", "page", "0"),
        ("/v1/events", "sort_by", "url"),
        ("/v1/events", "sort_dir", "up"),
        ("/v1/events", "date_after", "yesterday"),
        ("/v1/events", "date_before", "2026-13-01"),
        ("/v1/events", "fields", "full"),
        ("/v1/events", "identified_only", "maybe"),
        ("/v1/events/stats", "group_by", "hour"),
        ("/v1/events/stats", "date_after", "not-a-date"),
    ],
)
async def test_invalid_parameters_are_400_naming_the_parameter(client, workspace, path, param, value):
    r = await client.get(path, params={param: value}, headers=auth(workspace))
    assert r.status_code == 400
    body = r.json()
    assert body["status"] == "error" and param in body["error"] and body["timestamp"]
    assert body["details"] == {"parameter": param}


async def test_a_page_past_the_end_is_empty_with_true_pagination(client, workspace, redis, settings, folded):
    await append_events(EventLog(redis, settings), workspace.id, make_events(30))
    await folded()
    r = await client.get("/v1/events", params={"page": 9, "limit": 7}, headers=auth(workspace))
    assert r.json() == {
        "status": "success",
        "events": [],
        "pagination": {"page": 9, "limit": 7, "total_pages": 5, "total_items": 30},
    }


async def test_summary_fields_are_compact(client, workspace, redis, settings, folded):
    await append_events(EventLog(redis, settings), workspace.id, make_events(3))
    await folded()
    r = await client.get("/v1/events", params={"fields": "summary", "limit": 1}, headers=auth(workspace))
    (event,) = r.json()["events"]
    assert set(event) == {"id", "event", "timestamp", "url", "contact_id"}


async def test_default_documents_carry_enrichment_fields_and_data(client, workspace, redis, settings, folded):
    await append_events(EventLog(redis, settings), workspace.id, make_events(1))
    await folded()
    (event,) = (await client.get("/v1/events", headers=auth(workspace))).json()["events"]
    assert {
        "_id",
        "event",
        "timestamp",
        "url",
        "domain",
        "data",
        "internal_contact_id",
        "contact",
        "company",
    } <= set(event)


async def test_count_only_returns_only_the_count(client, workspace, redis, settings, folded):
    await append_events(EventLog(redis, settings), workspace.id, make_events(12))
    await folded()
    r = await client.get("/v1/events", params={"count_only": "true"}, headers=auth(workspace))
    assert r.json() == {"status": "success", "count": 12}


async def test_unknown_and_foreign_event_ids_are_404_in_the_error_shape(
    client, workspace, redis, settings, folded
):
    other = await new_workspace(settings, redis)
    events = make_events(1)
    await append_events(EventLog(redis, settings), other.id, events)
    await folded()
    for event_id in ("evt_nope", events[0].id):
        r = await client.get(f"/v1/events/{event_id}", headers=auth(workspace))
        assert r.status_code == 404
        assert r.json()["status"] == "error" and event_id in r.json()["error"]
    assert (await client.get(f"/v1/events/{events[0].id}", headers=auth(other))).status_code == 200
