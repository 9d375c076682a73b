"""The dashboard in Debian's Chromium: the real app on a live port, real events ingested over HTTP and folded, a
real read key pasted into the page. What it shows must equal the read APIs; the live tail must show an event
sent during the test and stop while paused; fold lag and dead letters come from `/v1/status`.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from ingest import keys as log_keys

from .harness import query_events, wait_for, watch_traffic

TYPES = {  # name → weight: eight types, so the chart stacks the top six and "other types"
    "page_view": 30,
    "button_click": 12,
    "form_submit": 8,
    "signed_up": 6,
    "video_play": 5,
    "first_visit": 4,
    "purchase": 3,
    # user data the page must show as text, never parse
    '<img src=x onerror="window.__pwned=1">': 2,
}
DOMAINS = ["example.com", "shop.example.com", "blog.example.org", "docs.example.net"]


def message(name: str, when: datetime, rng: random.Random) -> dict[str, Any]:
    domain = rng.choice(DOMAINS)
    return {
        "type": "track",
        "event": name,
        "messageId": f"m-{uuid.uuid4().hex}",
        "anonymousId": f"anon-{rng.randrange(40)}",
        "timestamp": when.isoformat().replace("+00:00", "Z"),
        "context": {"page": {"url": f'https://{domain}/p/{rng.randrange(9)}?q=<b>"x"</b>'}},
    }


async def send(api: str, write_key: str, messages: list[dict[str, Any]]) -> None:
    async with httpx.AsyncClient(base_url=api, auth=(write_key, ""), timeout=10) as c:
        r = await c.post("/v1/batch", json={"batch": messages})
        assert r.status_code == 200, r.text


async def read_api(api: str, read_key: str, path: str, **params: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(
        base_url=api, headers={"Authorization": f"Bearer {read_key}"}, timeout=10
    ) as c:
        r = await c.get(path, params=params)
        r.raise_for_status()
        body: dict[str, Any] = r.json()
        return body


def number(text: str) -> int:
    return int(text.replace(",", ""))


async def table(page: Any, selector: str) -> list[list[str]]:
    rows: list[list[str]] = await page.eval_on_selector_all(
        f"{selector} tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent.trim()))"
    )
    return rows


async def test_the_dashboard_shows_the_apis_numbers_a_live_tail_and_the_fold(
    browser_page, live_server, workspace, settings, redis, folded, tmp_path
):
    page, api = browser_page, live_server.url
    traffic = watch_traffic(page, api)
    rng = random.Random(18)
    now = datetime.now(UTC).replace(microsecond=0)
    names = list(TYPES)
    history = [
        message(
            rng.choices(names, weights=list(TYPES.values()))[0],
            now - timedelta(days=d, hours=rng.randrange(6)),
            rng,
        )
        for d in range(8)
        for _ in range(rng.randrange(4, 16))
    ]
    await send(api, workspace.write_key, history)
    partition = log_keys.partition_of(workspace.id, settings.partitions)
    poison = {b"w": workspace.id.encode(), b"v": b"1", b"d": b"\xc1garbage"}
    await redis.xadd(log_keys.log(settings.key_prefix, partition), poison)
    await folded()

    await page.set_viewport_size({"width": 1280, "height": 900})
    await page.goto(api + "/dashboard")
    await page.fill("#key-input", workspace.write_key)  # refused (the one console error expected)
    await page.click("#key-form button")
    await page.wait_for_function("document.getElementById('key-error').textContent.includes('events:read')")
    await page.fill("#key-input", workspace.read_key)
    await page.click("#key-form button")
    await page.wait_for_selector("#board[data-stats-loaded=true]")
    assert await page.evaluate("sessionStorage.getItem('streamfold.readKey')") == workspace.read_key
    assert await page.evaluate("localStorage.length") == 0

    # totals, top types and domains, and every day of the stacked chart equal /v1/events/stats
    stats = (await read_api(api, workspace.read_key, "/v1/events/stats"))["stats"]
    assert stats["total"] == len(history)
    assert number(await page.text_content("#total")) == stats["total"]
    types = await read_api(api, workspace.read_key, "/v1/events/types")
    assert number(await page.text_content("#type-count")) == types["total_items"] == len(TYPES)
    shown_types = await table(page, "#top-types tbody")
    assert [(r[0], number(r[1])) for r in shown_types] == [
        (t["type"], t["count"]) for t in stats["by_type"][:10]
    ]
    shown_domains = await table(page, "#top-domains tbody")
    assert [(r[0], number(r[1])) for r in shown_domains] == [
        (d["domain"], d["count"]) for d in stats["by_domain"]
    ]
    header, *days = await table(page, "#per-day-table")
    top6 = [t["type"] for t in stats["by_type"][:6]]
    assert header == ["Day", *top6, "other types", "Total"]
    by_day = {d["date"]: d["count"] for d in stats["by_day"]}
    assert {row[0]: number(row[-1]) for row in days if number(row[-1])} == by_day
    for i, name in enumerate(top6, start=1):
        per_type = await read_api(
            api, workspace.read_key, "/v1/events/stats", event_type=name, group_by="day"
        )
        expected = {d["date"]: d["count"] for d in per_type["stats"]["by_day"]}
        assert {row[0]: number(row[i]) for row in days if number(row[i])} == expected, name
    assert await page.locator("#chart canvas").count() == 1
    assert await page.evaluate("window.__pwned") is None

    # fold lag and dead letters: every partition as /v1/status says, the poison entry a dead letter
    await page.wait_for_function(
        f"document.querySelectorAll('#fold-rows tr').length === {settings.partitions}"
    )
    status = await read_api(api, workspace.read_key, "/v1/status")
    fold_rows = await table(page, "#fold-rows")
    assert [(number(r[3]), number(r[5])) for r in fold_rows] == [
        (p["lag_entries"], p["dead_letters"]) for p in status["partitions"]
    ]
    assert fold_rows[partition][5] == "1" and "this workspace" in fold_rows[partition][0]
    assert await page.text_content("#dead-total") == "1" and await page.text_content("#lag-total") == "0"

    # the live tail shows an event sent now
    probe = f"tail_probe_{uuid.uuid4().hex[:8]}"
    await send(api, workspace.write_key, [message(probe, now, rng)])
    await page.locator("#tail-rows td.event", has_text=probe).wait_for()

    # paused, it asks for nothing and shows nothing new, while the rest of the page keeps refreshing
    await page.click("#tail-toggle")
    assert await page.get_attribute("#tail-toggle", "aria-pressed") == "true"
    tail_requests_before = len(tail_requests(traffic))
    unseen = f"while_paused_{uuid.uuid4().hex[:8]}"
    await send(api, workspace.write_key, [message(unseen, now, rng)])
    await wait_for(
        lambda: _listed(api, workspace.read_key, unseen), f"{unseen} listed by the API", timeout=30
    )
    status_polls = len(status_requests(traffic))

    async def two_more_status_polls() -> bool:  # ≥ one status interval (5 s) > the tail's interval (2 s)
        return len(status_requests(traffic)) >= status_polls + 2

    await wait_for(two_more_status_polls, "two status polls while the tail is paused", timeout=30)
    assert len(tail_requests(traffic)) == tail_requests_before
    assert await page.locator("#tail-rows td.event", has_text=unseen).count() == 0
    assert await page.text_content("#tail-state") == "paused"

    await page.click("#tail-toggle")
    await page.locator("#tail-rows td.event", has_text=unseen).wait_for()
    await page.locator("#top-types td.name", has_text="onerror").first.wait_for()
    assert await page.evaluate("window.__pwned") is None
    shot = tmp_path / "dashboard.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    print(f"dashboard screenshot: {shot}")
    assert not traffic.failures, traffic.failures
    errors = [m for m in traffic.console if m.startswith(("error", "pageerror"))]
    assert errors == ["error: Failed to load resource: the server responded with a status of 403 (Forbidden)"]


async def test_a_key_is_asked_for_once_per_tab_and_forgotten_on_request(browser_page, live_server, workspace):
    page, api = browser_page, live_server.url
    await page.goto(api + "/dashboard")
    await page.fill("#key-input", workspace.read_key)
    await page.click("#key-form button")
    await page.wait_for_selector("#board[data-stats-loaded=true]")
    await page.reload()
    await page.wait_for_selector("#board[data-stats-loaded=true]")
    assert await page.is_hidden("#login")
    await page.click("#forget")
    assert await page.is_visible("#login")
    assert await page.evaluate("sessionStorage.getItem('streamfold.readKey')") is None


def tail_requests(traffic: Any) -> list[dict[str, Any]]:
    return [r for r in traffic.requests if r["path"] == "/v1/events" and r["method"] == "GET"]


def status_requests(traffic: Any) -> list[dict[str, Any]]:
    return [r for r in traffic.requests if r["path"] == "/v1/status"]


async def _listed(api: str, read_key: str, name: str) -> bool:
    return any(e["event"] == name for e in await query_events(api, read_key, sort_by="createdAt", limit=20))
