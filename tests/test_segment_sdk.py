"""The real segment-analytics-python client, pointed at a live server, delivers unchanged."""

from __future__ import annotations

import asyncio

import httpx
from segment.analytics.client import Client


def _send_with_segment(url: str, write_key: str, n: int) -> tuple[int, list[str]]:
    errors: list[str] = []
    client = Client(write_key, host=url, on_error=lambda e, batch: errors.append(repr(e)), max_retries=0)
    for i in range(n):
        if i % 10 == 0:
            client.page(
                anonymous_id=f"anon-{i % 37}",
                name="Pricing",
                properties={"url": f"https://example.com/p/{i % 5}"},
            )
        else:
            client.track(user_id=f"user-{i % 50}", event=f"event_{i % 7}", properties={"i": i})
    client.identify(user_id="user-1", traits={"email": "a@example.com"})
    client.flush()
    client.join()
    return n, errors


async def test_segment_client_events_are_all_queryable(live_server, workspace, folded):
    n, errors = await asyncio.to_thread(_send_with_segment, live_server.url, workspace.write_key, 1000)
    assert errors == []
    await folded()
    async with httpx.AsyncClient(base_url=live_server.url, headers={"X-API-Key": workspace.read_key}) as http:
        count = (await http.get("/v1/events", params={"count_only": "true"})).json()["count"]
        stats = (await http.get("/v1/events/stats")).json()["stats"]
        types = (await http.get("/v1/events/types")).json()
        pages = (
            await http.get("/v1/events", params={"event_type": "page_view", "count_only": "true"})
        ).json()
    assert count == n
    assert stats["total"] == n
    assert sum(t["count"] for t in stats["by_type"]) == n
    assert pages["count"] == 100
    assert types["types"] == sorted(["page_view", *(f"event_{k}" for k in range(7))])
