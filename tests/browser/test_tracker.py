"""tracker.js in Debian's Chromium: a visit with UTM and gclid, SPA navigation, clicks, a form with secrets, a
video, identify and closing the tab — then exactly which events exist, checked through the query API.

One test stops the server mid-session: the events queued meanwhile arrive once it is back.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from typing import Any

import httpx
import uvicorn

from api.app import create_app
from api.embedded import free_port

from ..conftest import LiveServer
from .harness import query_event, query_events, screenshot, wait_for, watch_traffic

LANDING_QUERY = "utm_source=google&utm_medium=cpc&utm_campaign=launch&gclid=abc123"
CAMPAIGN = {"source": "google", "medium": "cpc", "name": "launch", "gclid": "abc123"}
SECRETS = ("hunter2-secret", "tok-secret", "4111111111111111", "cvc-secret-919")

PAGE = """<!doctype html><html><head><title>Acme home</title><link rel="icon" href="data:,">
<script>
  // the README's stub: calls made before tracker.js loads are queued
  window.streamfold = window.streamfold || {q: []};
  ["track", "identify", "page", "reset", "optOut"].forEach(function (m) {
    streamfold[m] = streamfold[m] || function () { streamfold.q.push([m].concat([].slice.call(arguments))); };
  });
  streamfold.track("early_call", {queued: true});
</script>
<script src="%(api)s/tracker.js" data-write-key="%(key)s" defer></script>
<style>body{font-family:sans-serif;margin:2em} form,video{display:block;margin:1em 0}</style>
</head><body>
<h1>Acme — tracker test site</h1>
<p><a id="docs" href="/docs" onclick="event.preventDefault()">Read the docs</a> ·
   <a id="partner" href="https://partner.example.org/offer" onclick="event.preventDefault()">Partner offer</a></p>
<button id="buy">Buy now</button>
<form id="signup" name="signup" action="/signup" onsubmit="event.preventDefault()">
  <input name="email" value="ada@example.com" data-streamfold-value>
  <input name="company" value="Acme Corp">
  <input type="password" name="password" value="hunter2-secret" data-streamfold-value>
  <input type="hidden" name="csrf" value="tok-secret" data-streamfold-value>
  <input name="cc-number" autocomplete="cc-number" value="4111111111111111" data-streamfold-value>
  <input name="card_cvc" value="cvc-secret-919" data-streamfold-value>
  <button type="submit" id="signup-button">Sign up</button>
</form>
<video id="intro" src="/intro.webm" width="320" height="90"></video>
</body></html>"""


def tracker_page(site, api: str, write_key: str) -> str:
    return site.add_page("/index.html", PAGE % {"api": api, "key": write_key}) + "?" + LANDING_QUERY


async def stored_names(api: str, read_key: str) -> Counter[str]:
    return Counter(e["event"] for e in await query_events(api, read_key))


async def wait_for_events(api: str, read_key: str, expected: Counter[str], what: str) -> list[dict[str, Any]]:
    async def check() -> list[dict[str, Any]] | None:
        events = await query_events(api, read_key)
        names = Counter(e["event"] for e in events)
        return events if all(names[k] >= n for k, n in expected.items()) else None

    events: list[dict[str, Any]] = await wait_for(check, what, timeout=45)
    return events


async def test_a_visit_is_tracked_exactly_with_campaign_and_no_secret_leaves_the_page(
    browser_page, site, live_server, workspace, folded
):
    page, api = browser_page, live_server.url
    traffic = watch_traffic(page, api)
    await page.goto(tracker_page(site, api, workspace.write_key))
    await page.wait_for_function("() => window.streamfold && window.streamfold.loaded")
    # single-page-app navigation, by the history API and by the hash
    await page.evaluate("() => history.pushState({}, '', '/pricing')")
    await page.evaluate("() => { location.hash = 'faq'; }")
    await page.wait_for_function("() => location.hash === '#faq'")
    await page.click("#buy")
    await page.click("#partner")
    await page.click("#docs")
    await page.click("#signup-button")
    await page.evaluate(
        """() => { const v = document.getElementById('intro');
                   for (const t of ['play', 'pause', 'play', 'ended']) v.dispatchEvent(new Event(t)); }"""
    )
    await page.evaluate("() => streamfold.identify('user-7', {email: 'ada@example.com'})")
    await page.evaluate("() => streamfold.track('plan_chosen', {plan: 'pro'})")
    expected = Counter(
        {"page_view": 3, "first_visit": 1, "early_call": 1, "button_click": 2, "link_click": 2,
         "form_submit": 1, "video_play": 2, "video_pause": 1, "video_complete": 1, "plan_chosen": 1}
    )  # fmt: skip
    events = await wait_for_events(api, workspace.read_key, expected, "every automatic and manual event")
    await screenshot(page, "tracker-site")

    # closing the tab: what is still queued leaves with sendBeacon on page hide
    await page.evaluate("() => streamfold.track('goodbye', {})")
    await page.close(run_before_unload=True)
    expected["goodbye"] = 1
    events = await wait_for_events(api, workspace.read_key, expected, "the event sent on closing the tab")
    await folded()
    events = await query_events(api, workspace.read_key)
    assert Counter(e["event"] for e in events) == expected  # exactly these, each once

    docs = {e["_id"]: await query_event(api, workspace.read_key, e["_id"]) for e in events}
    by_name: dict[str, list[dict[str, Any]]] = {}
    for doc in docs.values():
        by_name.setdefault(doc["event"], []).append(doc)
        assert doc["campaign"] == CAMPAIGN, doc  # kept for the session, on every event
        assert doc["domain"] == "localhost"
        assert doc["library"]["name"] == "streamfold-tracker"
    urls = sorted(d["url"].removeprefix(site.origin) for d in by_name["page_view"])
    assert urls == [f"/index.html?{LANDING_QUERY}", "/pricing", "/pricing#faq"]
    links = {d["properties"]["text"]: d["properties"] for d in by_name["link_click"]}
    assert links["Partner offer"]["outbound"] is True
    assert links["Partner offer"]["href"] == "https://partner.example.org/offer"
    assert links["Read the docs"]["outbound"] is False
    assert {d["properties"]["text"] for d in by_name["button_click"]} == {"Buy now", "Sign up"}
    (form,) = by_name["form_submit"]
    assert form["properties"]["form_id"] == "signup" and form["properties"]["action"] == "/signup"
    assert form["properties"]["fields"] == ["email", "company", "password", "csrf", "cc-number", "card_cvc"]
    assert form["properties"]["values"] == {"email": "ada@example.com"}
    assert by_name["early_call"][0]["properties"] == {"queued": True}
    (plan,) = by_name["plan_chosen"]
    assert plan["user_id"] == "user-7" and plan["properties"] == {"plan": "pro"}
    assert len({d["anonymous_id"] for d in docs.values()}) == 1
    assert len({d["context"]["session"]["id"] for d in docs.values()}) == 1

    sent = json.dumps([r["body"] for r in traffic.requests])
    assert traffic.posts() and not [s for s in SECRETS if s in sent], "a secret form value left the page"
    assert all(r["path"] == "/v1/batch" for r in traffic.posts())

    # identify linked the visitor's earlier anonymous events to the contact
    async with httpx.AsyncClient(base_url=api, headers={"X-API-Key": workspace.read_key}) as c:
        (contact,) = (await c.get("/v1/contacts")).json()["contacts"]
    assert contact["user_ids"] == ["user-7"] and contact["email"] == "ada@example.com"
    assert contact["events_count"] == sum(expected.values())


class ServerOnPort(LiveServer):
    """The real app on a given port, so a second one can take over where a stopped one listened."""

    def __init__(self, settings: Any, port: int) -> None:
        self.port = port
        self.settings = settings.with_(port=port)
        config = uvicorn.Config(create_app(self.settings), host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)


async def test_events_queued_while_the_server_is_down_arrive_after_it_restarts(
    browser_page, site, settings, redis, workspace, folded
):
    page, port = browser_page, free_port()
    server = await asyncio.to_thread(lambda: ServerOnPort(settings, port).start())
    api = server.url
    try:
        await page.goto(tracker_page(site, api, workspace.write_key))
        await wait_for_events(api, workspace.read_key, Counter({"page_view": 1}), "the landing page view")
        await asyncio.to_thread(server.stop)
        for _ in range(3):
            await page.click("#buy")

        async def queued() -> int:
            q = await page.evaluate("() => JSON.parse(localStorage.getItem('sf_queue') || '[]')")
            return sum(1 for m in q if m.get("event") == "button_click") == 3

        await wait_for(queued, "three clicks kept in the local queue while the server is down")
        server = await asyncio.to_thread(lambda: ServerOnPort(settings, port).start())
        await wait_for_events(
            api, workspace.read_key, Counter({"button_click": 3}), "queued clicks after restart"
        )
        await wait_for(
            lambda: page.evaluate("() => localStorage.getItem('sf_queue') === null"),
            "the local queue to drain",
        )
        await folded()
        names = await stored_names(api, workspace.read_key)
        assert names["button_click"] == 3 and names["page_view"] == 1
    finally:
        await asyncio.to_thread(server.stop)


async def test_opted_out_visitors_send_nothing(browser_page, site, live_server, workspace, folded):
    page, api = browser_page, live_server.url
    traffic = watch_traffic(page, api)
    await page.goto(tracker_page(site, api, workspace.write_key))
    await wait_for_events(api, workspace.read_key, Counter({"page_view": 1}), "the landing page view")
    await page.evaluate("() => streamfold.optOut()")
    posts_before = len(traffic.posts())
    await page.click("#buy")
    await page.evaluate("() => streamfold.track('should_not_exist', {})")
    await page.evaluate("() => streamfold.flush()")
    await folded()
    assert "should_not_exist" not in await stored_names(api, workspace.read_key)
    assert len(traffic.posts()) == posts_before
