"""`GET /public-api/v1/events`: auth, validation, rows and amounts, custom events, identity, cursor pages."""

from __future__ import annotations

import pytest

from api.workspace_settings import CustomEventName, SettingsChange, change_workspace_settings
from ingest.log import EventLog
from ingest.workspaces import WorkspaceRegistry
from projections.fold.rebuild import rebuild_and_compare
from projections.touchpoints import AD_FIELDS

from .attribution_helpers import event, load, ms, page, track
from .conftest import make_settings

PATH = "/public-api/v1/events"
RANGE = {"start_date": "2026-03-01 00:00:00", "end_date": "2026-03-31 23:59:59"}


@pytest.fixture
def settings(redis_url):
    return make_settings(redis_url, attribution_rate_limit_per_minute=0)


async def attribution_key(settings, redis, workspace) -> str:
    return await WorkspaceRegistry(redis, settings).create_key(workspace.id, ["attribution:read"])


async def get(client, key, **params):
    return await client.get(PATH, params=params, headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
async def key(settings, redis, workspace):
    return await attribution_key(settings, redis, workspace)


@pytest.fixture
def log(settings, redis):
    return EventLog(redis, settings)


# ---------------------------------------------------------------- auth


async def test_missing_and_invalid_keys_are_401_with_message(client, workspace):
    r = await client.get(PATH, params=RANGE)
    assert r.status_code == 401 and set(r.json()) == {"message"}
    r = await client.get(PATH, params=RANGE, headers={"Authorization": "Bearer rk_nope"})
    assert r.status_code == 401 and r.json() == {"message": "invalid API key"}


async def test_key_without_attribution_scope_is_403(client, settings, redis, workspace):
    k = await WorkspaceRegistry(redis, settings).create_key(workspace.id, ["events:read"])
    r = await get(client, k, **RANGE)
    assert r.status_code == 403 and "attribution:read" in r.json()["message"]


async def test_disabled_workspace_is_403(client, settings, redis, workspace, key):
    await WorkspaceRegistry(redis, settings).update_workspace(workspace.id, disabled="1")
    r = await get(client, key, **RANGE)
    assert r.status_code == 403 and r.json() == {"message": "this workspace is disabled"}


# ---------------------------------------------------------------- validation


S = {**RANGE, "sources[]": "google_ads", "attribution_model": "linear", "attribution_window": "30"}


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"end_date": "2026-03-31 23:59:59"}, "start_date"),
        ({"start_date": "2026-03-01 00:00:00"}, "end_date"),
        ({**RANGE, "start_date": "2026-03-01"}, "start_date"),
        ({**RANGE, "end_date": "2026-02-30 10:00:00"}, "end_date"),
        ({**RANGE, "end_date": "2026-03-01 00:00:00"}, "end_date"),
        ({**RANGE, "end_date": "2026-02-01 00:00:00"}, "end_date"),
        ({**RANGE, "query_mode": "person"}, "query_mode"),
        ({**RANGE, "event_names[]": "page_view"}, "event_names"),
        ({**RANGE, "event_names[]": "custom_event_51"}, "event_names"),
        ({**RANGE, "event_names[]": ""}, "event_names"),
        ({**RANGE, "sources[]": "altavista"}, "sources"),
        ({**RANGE, "sources[]": "google_ads", "attribution_window": "7"}, "attribution_model"),
        ({**RANGE, "sources[]": "google_ads", "attribution_model": "linear"}, "attribution_window"),
        ({**S, "attribution_model": "time_decay"}, "attribution_model"),
        ({**S, "attribution_window": "3"}, "attribution_window"),
        ({**S, "attribution_window": "seven"}, "attribution_window"),
        ({**RANGE, "fields[]": "ad_name"}, "fields"),
        ({**RANGE, "fields[]": "campaign_id"}, "fields"),
        ({**RANGE, "fields[]": "colour"}, "fields"),
        ({**RANGE, "limit": "0"}, "limit"),
        ({**RANGE, "limit": "4001"}, "limit"),
        ({**RANGE, "limit": "ten"}, "limit"),
        ({**RANGE, "cursor": "not-a-cursor"}, "cursor"),
        ({**RANGE, "custom_field_filters[0][field]": "profile_field_5"}, "custom_field_filters.0.operator"),
        (
            {
                **RANGE,
                "custom_field_filters[0][field]": "profile_field_9",
                "custom_field_filters[0][operator]": "any",
            },
            "custom_field_filters.0.field",
        ),
    ],
)
async def test_invalid_parameters_are_422_naming_the_parameter(
    client, key, settings, redis, workspace, params, parameter
):
    await _label(settings, redis, workspace, {5: "Plan"})
    r = await get(client, key, **params)
    assert r.status_code == 422, r.text
    body = r.json()
    assert set(body) == {"message"}
    assert parameter.split(".")[0] in body["message"]


@pytest.mark.parametrize("name", ["event_names", "sources", "fields"])
async def test_duplicates_and_too_many_items_are_422(client, key, name):
    value = {"event_names": "purchase", "sources": "email", "fields": "amount"}[name]
    extra = {"attribution_model": "linear", "attribution_window": "7"} if name == "sources" else {}
    r = await client.get(
        PATH,
        params=[*RANGE.items(), *extra.items(), (f"{name}[]", value), (f"{name}[]", value)],
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 422 and name in r.json()["message"] and "duplicate" in r.json()["message"]
    most = {"event_names": 10, "sources": 15, "fields": 20}[name]
    pool = {
        "event_names": [f"custom_event_{i}" for i in range(1, 12)],
        "sources": [
            "email",
            "sms",
            "referral",
            "direct",
            "g2",
            "yelp",
            "capterra",
            "substack",
            "trustpilot",
            "shop_app",
            "google_ads",
            "bing_ads",
            "x_ads",
            "x_organic",
            "ai_claude",
            "ai_grok",
        ],
        "fields": [
            "profile_id",
            "company_id",
            "space_id",
            "event_name",
            "configured_name",
            "amount",
            "is_upsell",
            "order_id",
            "order_name",
            "event_url",
            "ad_id",
            "ad_name",
            "adset_id",
            "adset_name",
            "campaign_id",
            "campaign_name",
            "account_id",
            "account_name",
            "source",
            "touchpoint_id",
            "id",
        ],
    }[name][: most + 1]
    extra = (
        {"sources[]": "email", "attribution_model": "linear", "attribution_window": "7"}
        if name == "fields"
        else extra
    )
    params = [*RANGE.items(), *extra.items(), *[(f"{name}[]", v) for v in pool]]
    if name == "fields":
        params = [p for p in params if p[0] != "sources[]"] + [("sources[]", "email")]
    r = await client.get(PATH, params=params, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 422 and name in r.json()["message"] and str(most) in r.json()["message"], r.text


async def _label(settings, redis, workspace, labels, **kw):
    reg = WorkspaceRegistry(redis, settings)
    await change_workspace_settings(
        reg, EventLog(redis, settings), workspace.id, SettingsChange(profile_field_labels=labels, **kw)
    )


# ---------------------------------------------------------------- rows


async def _journey(log, workspace):
    t = ms("2026-03-10 12:00:00")
    await load(
        log,
        workspace.id,
        [
            page(t - 5 * 86_400_000, "a1", "https://shop.example.com/?gclid=g1&utm_campaign=Brand&utm_content=ad-7"),
            page(t - 2 * 86_400_000, "a1", "https://shop.example.com/", referrer="https://news.ycombinator.com/"),
            page(t - 1_200_000, "a1", "https://shop.example.com/?fbclid=f1&campaign_id=c-9"),
            page(t - 60_000, "a1", "https://shop.example.com/cart"),  # same session: no new touchpoint
            track("purchase", t, anon="a1", url="https://shop.example.com/thanks",
                  properties={"revenue": 120.0, "order_id": "o-1", "order_name": "#1001"}),
        ],
    )  # fmt: skip
    return t


async def test_without_sources_one_row_per_event_with_fields(client, key, log, workspace, folded):
    await _journey(log, workspace)
    await folded()
    r = await get(
        client,
        key,
        **RANGE,
        **{
            "fields[]": [
                "event_name",
                "configured_name",
                "amount",
                "order_id",
                "order_name",
                "event_url",
                "space_id",
            ]
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["per_page"] == 100 and body["next_cursor"] is None and body["prev_cursor"] is None
    assert body["path"].endswith(PATH)
    (row,) = body["data"]
    assert row == {
        "id": row["id"],
        "event_time_utc": "2026-03-10 12:00:00",
        "event_name": "purchase",
        "configured_name": "purchase",
        "amount": 120.0,
        "order_id": "o-1",
        "order_name": "#1001",
        "event_url": "https://shop.example.com/thanks",
        "space_id": workspace.id,
    }


async def test_by_default_only_id_and_event_time_are_returned(client, key, log, workspace, folded):
    await _journey(log, workspace)
    await folded()
    (row,) = (await get(client, key, **RANGE)).json()["data"]
    assert set(row) == {"id", "event_time_utc"}


async def test_linear_gives_one_row_per_touchpoint_with_partial_amounts(client, key, log, workspace, folded):
    await _journey(log, workspace)
    await folded()
    params = {**RANGE, "attribution_model": "linear", "attribution_window": "30",
              "sources[]": ["google_ads", "referral", "facebook_ads"], "fields[]": ["amount", "campaign_name", "ad_name", "campaign_id"]}  # fmt: skip
    rows = (await get(client, key, **params)).json()["data"]
    assert [(r["source"], r["amount"]) for r in rows] == [
        ("google_ads", 40.0),
        ("referral", 40.0),
        ("facebook_ads", 40.0),
    ]
    assert rows[0]["campaign_name"] == "Brand" and rows[0]["ad_name"] == "ad-7"
    assert rows[2]["campaign_id"] == "c-9"
    assert all(r["touchpoint_id"].startswith("tp_") for r in rows)


async def test_long_ids_urls_and_ad_fields_come_back_whole(client, key, log, workspace, folded):
    # too long for the compact members: the conversion's record and the touchpoint's ad fields go to documents
    t = ms("2026-03-10 12:00:00")
    anon, user = "3f0c1e9a-5b7d-4c2e-9a1f-0e8d7c6b5a49", "someone.with.a.long.address@example.com"
    landing = (
        "https://shop.example.com/?fbclid=f1&hsa_acc=1234567890&account_name=Example%20Shop%20EU"
        "&campaign_id=120210000000000001&utm_campaign=Spring%20Sale%202026%20Retargeting"
        "&adset_id=120210000000000002&utm_adset=Lookalike%201%25&ad_id=120210000000000003&utm_ad=Blue%20Banner"
    )
    thanks = "https://shop.example.com/checkout/thank-you?order=o-123456789&utm_source=newsletter"
    await load(
        log,
        workspace.id,
        [
            page(t - 86_400_000, anon, landing),
            track("purchase", t, anon=anon, user=user, url=thanks,
                  properties={"revenue": 99.5, "order_id": "o-123456789", "order_name": "#123456789", "is_upsell": True}),
        ],
    )  # fmt: skip
    await folded()
    fields = ["amount", "order_id", "order_name", "is_upsell", "event_url", *AD_FIELDS]
    params = {**RANGE, "attribution_model": "first_touch", "attribution_window": "30",
              "sources[]": "facebook_ads", "fields[]": fields}  # fmt: skip
    (row,) = (await get(client, key, **params)).json()["data"]
    assert {f: row[f] for f in fields} == {
        "amount": 99.5, "order_id": "o-123456789", "order_name": "#123456789", "is_upsell": True,
        "event_url": thanks, "account_id": "1234567890", "account_name": "Example Shop EU",
        "campaign_id": "120210000000000001", "campaign_name": "Spring Sale 2026 Retargeting",
        "adset_id": "120210000000000002", "adset_name": "Lookalike 1%", "ad_id": "120210000000000003",
        "ad_name": "Blue Banner",
    }  # fmt: skip


async def test_source_filter_keeps_only_matching_credited_rows(client, key, log, workspace, folded):
    await _journey(log, workspace)
    await folded()
    base = {**RANGE, "attribution_window": "30", "fields[]": "amount"}
    rows = (
        await get(client, key, **base, attribution_model="last_touch", **{"sources[]": "facebook_ads"})
    ).json()["data"]
    assert [(r.get("source"), r["amount"]) for r in rows] == [(None, 120.0)]
    assert (
        await get(client, key, **base, attribution_model="first_touch", **{"sources[]": "facebook_ads"})
    ).json()["data"] == []
    rows = (await get(client, key, **base, attribution_model="u_shaped", **{"sources[]": "referral"})).json()[
        "data"
    ]
    assert [r["amount"] for r in rows] == [24.0]  # 3 touches: 40 / 20 / 40 → middle gets 20%
    rows = (
        await get(
            client,
            key,
            **{**base, "attribution_window": "1"},
            attribution_model="linear",
            **{"sources[]": "google_ads"},
        )
    ).json()["data"]
    assert rows == []  # the gclid visit is 5 days old


async def test_custom_event_maps_to_its_tracked_name_and_configured_name(
    client, key, log, settings, redis, workspace, folded
):
    await _label(settings, redis, workspace, {}, custom_events={3: CustomEventName("Demo Booked", "Demo")})
    t = ms("2026-03-05 10:00:00")
    await load(log, workspace.id, [track("Demo Booked", t, user="u1"), track("Other", t, user="u1")])
    await folded()
    rows = (await get(client, key, **RANGE, **{"fields[]": ["event_name", "configured_name"]})).json()["data"]
    assert [(r["event_name"], r["configured_name"]) for r in rows] == [("custom_event_3", "Demo")]
    rows = (await get(client, key, **RANGE, **{"event_names[]": "custom_event_3"})).json()["data"]
    assert len(rows) == 1
    assert (await get(client, key, **RANGE, **{"event_names[]": "purchase"})).json()["data"] == []


async def test_identified_visitor_brings_earlier_sessions_to_the_contact(client, key, log, workspace, folded):
    t = ms("2026-03-10 12:00:00")
    await load(log, workspace.id, [page(t - 86_400_000, "anon-9", "https://shop.example.com/?gclid=x")])
    await load(log, workspace.id, [track("purchase", t, user="user-9", properties={"value": 50})])
    await folded()
    params = {**RANGE, "attribution_model": "last_touch", "attribution_window": "7",
              "sources[]": ["google_ads", "direct"], "fields[]": ["amount", "profile_id"]}  # fmt: skip
    (row,) = (await get(client, key, **params)).json()["data"]
    assert row["touchpoint_id"] is None  # not linked yet: credited to direct
    await load(log, workspace.id, [event("identify", "identify", t + 1000, anon="anon-9", user="user-9")])
    await folded()
    (row,) = (await get(client, key, **params)).json()["data"]
    assert row["touchpoint_id"] is not None and row["profile_id"].startswith("ct_") and row["amount"] == 50


async def test_rebuild_gives_the_live_digest_with_touchpoints(app, log, workspace, folded, redis, settings):
    await _journey(log, workspace)
    await load(
        log, workspace.id, [page(ms("2026-03-12 00:00:00") + i * 40 * 60_000, "a2") for i in range(30)]
    )
    await folded()
    for p in range(settings.partitions):
        live, rebuilt, _ = await rebuild_and_compare(redis, settings.key_prefix, p)
        assert live == rebuilt


# ---------------------------------------------------------------- cursor pages


async def test_tampered_cursor_is_422(client, key, log, workspace, folded):
    await load(
        log, workspace.id, [track("purchase", ms("2026-03-02 00:00:00") + i, user="u") for i in range(3)]
    )
    await folded()
    body = (await get(client, key, **RANGE, limit=1)).json()
    cur = body["next_cursor"]
    bad = cur[:-2] + ("A" if cur[-2] != "A" else "B") + cur[-1]
    r = await get(client, key, **RANGE, limit=1, cursor=bad)
    assert r.status_code == 422 and "cursor" in r.json()["message"]
    r = await get(client, key, **RANGE, limit=2, cursor=cur)  # same cursor, another query
    assert r.status_code == 422 and "cursor" in r.json()["message"]


async def test_next_then_prev_returns_the_same_pages(client, key, log, workspace, folded):
    t = ms("2026-03-02 00:00:00")
    evs = []
    for i in range(23):
        evs.append(page(t + i * 3_600_000, f"v{i % 5}", f"https://s.example.com/?gclid={i}"))
        evs.append(track("purchase", t + i * 3_600_000 + 1, anon=f"v{i % 5}", properties={"amount": 10}))
    await load(log, workspace.id, evs)
    await folded()
    q = {
        **RANGE,
        "attribution_model": "linear",
        "attribution_window": "90",
        "sources[]": "google_ads",
        "limit": 4,
    }
    pages = [(await get(client, key, **q)).json()]
    while pages[-1]["next_cursor"]:
        pages.append((await get(client, key, **q, cursor=pages[-1]["next_cursor"])).json())
    back = [pages[-1]]
    while back[-1]["prev_cursor"]:
        back.append((await get(client, key, **q, cursor=back[-1]["prev_cursor"])).json())
    assert [p["data"] for p in reversed(back)] == [p["data"] for p in pages]
    rows = [(r["id"], r["touchpoint_id"]) for p in pages for r in p["data"]]
    assert len(rows) == len(set(rows)) == sum(min(i // 5 + 1, 99) for i in range(23))
    assert pages[-1]["next_page_url"] is None and pages[0]["prev_page_url"] is None
    assert "cursor=" in pages[0]["next_page_url"] and "limit=4" in pages[0]["next_page_url"]


async def test_new_events_during_a_walk_neither_repeat_nor_skip_rows(client, key, log, workspace, folded):
    t = ms("2026-03-02 00:00:00")
    await load(log, workspace.id, [track("purchase", t + i * 1000, user="u") for i in range(0, 40, 2)])
    await folded()
    first = (await get(client, key, **RANGE, limit=5)).json()
    # arrivals before and after the cursor, while walking
    await load(log, workspace.id, [track("purchase", t + i * 1000, user="u") for i in range(1, 40, 2)])
    await folded()
    seen = [r["id"] for r in first["data"]]
    cur = first["next_cursor"]
    while cur:
        body = (await get(client, key, **RANGE, limit=5, cursor=cur)).json()
        seen += [r["id"] for r in body["data"]]
        cur = body["next_cursor"]
    assert len(seen) == len(set(seen)) == 20


async def test_company_mode_credits_touchpoints_of_every_contact_of_the_company(
    client, key, log, workspace, folded
):
    t = ms("2026-03-10 12:00:00")
    await load(
        log,
        workspace.id,
        [
            page(t - 86_400_000, "anon-a", "https://shop.example.com/?gclid=1"),
            event("identify", "identify", t - 86_000_000, anon="anon-a", user="alice"),
            event("identify", "identify", t - 86_000_000, user="bob"),
            event("group", "group", t - 85_000_000, user="alice", group="acme"),
            event("group", "group", t - 85_000_000, user="bob", group="acme"),
            track("purchase", t, user="bob", properties={"amount": 80}),
        ],
    )
    await folded()
    q = {**RANGE, "attribution_model": "first_touch", "attribution_window": "7",
         "sources[]": ["google_ads", "direct"], "fields[]": ["amount", "profile_id", "company_id", "source"]}  # fmt: skip
    (row,) = (await get(client, key, **q)).json()["data"]
    assert row["source"] == "direct" and row["touchpoint_id"] is None  # bob alone never clicked an ad
    (row,) = (await get(client, key, **q, query_mode="company")).json()["data"]
    assert row["source"] == "google_ads" and row["amount"] == 80
    assert row["company_id"].startswith("co_") and row["profile_id"].startswith("ct_")


async def test_an_email_webhook_click_is_an_email_touchpoint_of_the_contact(client, key, workspace, folded):
    """SendGrid click (by email address) → later purchase by the same person: `email` earns the credit."""
    auth = (workspace.write_key, "")
    r = await client.post(
        "/v1/identify",
        json={"userId": "u-ada", "traits": {"email": "ada@engines.io"}, "timestamp": "2026-03-10T09:00:00Z"},
        auth=auth,
    )
    assert r.status_code == 200
    click = {
        "email": "Ada@Engines.io", "timestamp": ms("2026-03-10 10:00:00") // 1000, "event": "click",
        "sg_event_id": "sg-click-1", "sg_message_id": "m-1", "url": "https://engines.io/pricing",
    }  # fmt: skip
    r = await client.post("/v1/sources/email/sendgrid", json=[click], auth=auth)
    assert r.status_code == 200, r.text
    r = await client.post(
        "/v1/track",
        json={"userId": "u-ada", "event": "purchase", "properties": {"revenue": 120},
              "timestamp": "2026-03-11T10:00:00Z"},
        auth=auth,
    )  # fmt: skip
    assert r.status_code == 200
    await folded()
    params = {**RANGE, "sources[]": "email", "attribution_model": "last_touch", "attribution_window": "7",
              "event_names[]": "purchase", "fields[]": ["amount", "event_name", "profile_id"]}  # fmt: skip
    r = await get(client, key, **params)
    assert r.status_code == 200, r.text
    (row,) = r.json()["data"]
    assert row["event_name"] == "purchase" and row["amount"] == 120
    assert row["profile_id"].startswith("ct_") and row["touchpoint_id"]
