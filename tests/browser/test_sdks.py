"""Websites switch from Segment or RudderStack by changing one host: the real browser SDKs, unchanged.

Each SDK's pinned npm bundle runs in Debian's Chromium on a test site whose origin differs from the API's;
we call page/track/identify and check through the query API that every event is stored exactly once.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from .harness import query_event, query_events, require_sdk_bundles, screenshot, wait_for, watch_traffic

UTM = "utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale"
CAMPAIGN = {"source": "newsletter", "medium": "email", "name": "spring_sale"}

SEGMENT_PAGE = """<!doctype html><html><head><title>Pricing</title><link rel="icon" href="data:,">
<script src="/node_modules/@segment/analytics-next/dist/umd/index.js"></script>
<script>
  const writeKey = %(key)s;
  // The one change from a Segment install: cdnSettings pointing Segment.io at Streamfold.
  const analytics = AnalyticsNext.AnalyticsBrowser.load({
    writeKey,
    cdnSettings: {integrations: {"Segment.io": {apiKey: writeKey, apiHost: %(api_host)s, protocol: "http"}}},
  });
  window.analytics = analytics;
</script></head><body><h1>Segment analytics-next on a Streamfold site</h1></body></html>"""

RUDDERSTACK_PAGE = """<!doctype html><html><head><title>Pricing</title><link rel="icon" href="data:,">
<script src="/node_modules/@rudderstack/analytics-js/dist/npm/modern/bundled/umd/index.js"></script>
<script>
  const analytics = new rudderanalytics.RudderAnalytics();
  // The one change from a RudderStack install: Streamfold's URL and a local source config.
  analytics.load(%(key)s, %(api)s, {
    getSourceConfig: () => ({source: {id: "streamfold", enabled: true, config: {}, destinations: []}}),
  });
  window.analytics = analytics;
</script></head><body><h1>RudderStack JS on a Streamfold site</h1></body></html>"""


async def local_storage(page: Any) -> dict[str, str]:
    return await page.evaluate("() => Object.fromEntries(Object.entries(localStorage))")


def queued_items(storage: dict[str, str]) -> dict[str, Any]:
    """SDK retry-queue entries still holding messages (both SDKs keep their queues in localStorage)."""
    left = {}
    for key, value in storage.items():
        if "queue" not in key.lower():
            continue
        parsed: Any = value
        for _ in range(2):  # RudderStack stores JSON inside a JSON string
            try:
                parsed = json.loads(parsed) if isinstance(parsed, str) else parsed
            except ValueError:
                break
        if parsed not in ([], {}, None, ""):
            left[key] = parsed
    return left


async def run_sdk_session(page, site, live_server, workspace, html: str, name: str) -> list[dict[str, Any]]:
    url = site.add_page(f"/{name}.html", html) + f"?{UTM}"
    traffic = watch_traffic(page, live_server.url)
    await page.goto(url)
    await page.evaluate("() => analytics.page()")
    await page.evaluate("() => analytics.track('Viewed Plans', {plan: 'pro', seats: 3})")
    await page.evaluate("() => analytics.identify('user-42', {email: 'ada@example.com'})")
    await page.evaluate("() => analytics.track('Signed Up', {plan: 'pro'})")

    async def stored() -> list[dict[str, Any]] | None:
        events = await query_events(live_server.url, workspace.read_key)
        return events if len(events) >= 3 else None

    events = await wait_for(stored, f"{name}: 3 events stored")
    await wait_for(lambda: _async_value(len(traffic.message_ids()) >= 4), f"{name}: 4 messages posted")
    await screenshot(page, f"sdk-{name}")
    storage = await local_storage(page)
    assert queued_items(storage) == {}, f"{name} left messages in its retry queue"
    ids = traffic.message_ids()
    assert len(ids) == len(set(ids)) == 4, f"{name} retried a request: {ids}"
    assert not traffic.failures, traffic.failures
    assert not [m for m in traffic.console if m.startswith(("error", "pageerror"))], traffic.console
    assert not any(
        "x-retry-count" in r["headers"] or "rsa-retry-attempt" in r["headers"] for r in traffic.posts()
    )
    return events


async def _async_value(value: Any) -> Any:
    return value


async def check_stored(live_server, workspace, events: list[dict[str, Any]], site_origin: str) -> None:
    by_name: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_name.setdefault(e["event"], []).append(e)
    assert sorted(by_name) == ["Signed Up", "Viewed Plans", "page_view"]
    assert all(len(v) == 1 for v in by_name.values()), by_name
    for e in events:
        doc = await query_event(live_server.url, workspace.read_key, e["_id"])
        assert doc["url"].startswith(site_origin) and doc["url"].endswith(UTM), doc
        assert doc["domain"] == "localhost"
        assert doc["campaign"] == CAMPAIGN, doc
    viewed = await query_event(live_server.url, workspace.read_key, by_name["Viewed Plans"][0]["_id"])
    assert viewed["properties"] == {"plan": "pro", "seats": 3}
    signed = await query_event(live_server.url, workspace.read_key, by_name["Signed Up"][0]["_id"])
    assert signed["user_id"] == "user-42" and signed["anonymous_id"] == viewed["anonymous_id"]
    assert viewed["user_id"] is None
    # identify linked the earlier anonymous events to the contact (retroactive identification)
    async with httpx.AsyncClient(base_url=live_server.url, headers={"X-API-Key": workspace.read_key}) as c:
        r = await c.get("/v1/contacts")
    assert r.status_code == 200, r.text
    (contact,) = r.json()["contacts"]
    assert contact["user_ids"] == ["user-42"] and contact["email"] == "ada@example.com"
    assert viewed["anonymous_id"] in contact["anonymous_ids"]
    assert contact["events_count"] == 3


async def test_segment_analytics_next_delivers_unchanged_except_its_host(
    browser_page, site, live_server, workspace, folded
):
    require_sdk_bundles()
    html = SEGMENT_PAGE % {
        "key": json.dumps(workspace.write_key),
        "api_host": json.dumps(f"127.0.0.1:{live_server.port}/v1"),
    }
    events = await run_sdk_session(browser_page, site, live_server, workspace, html, "segment")
    await folded()
    await check_stored(live_server, workspace, events, site.origin)


async def test_rudderstack_js_delivers_unchanged_except_its_host(
    browser_page, site, live_server, workspace, folded
):
    require_sdk_bundles()
    html = RUDDERSTACK_PAGE % {"key": json.dumps(workspace.write_key), "api": json.dumps(live_server.url)}
    events = await run_sdk_session(browser_page, site, live_server, workspace, html, "rudderstack")
    await folded()
    await check_stored(live_server, workspace, events, site.origin)
