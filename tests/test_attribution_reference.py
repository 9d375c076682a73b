"""Property test: random journeys go through the log and the fold; every model × window × source filter
served by the API equals an independent evaluator over the raw events (no code shared with the projection:
it sessionizes by sorting, classifies with its own small table, and credits with the models' reference)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from ingest.log import EventLog
from ingest.workspaces import WorkspaceRegistry

from .attribution_helpers import identify_event, load, ms, page, track
from .conftest import make_settings, new_workspace
from .test_attribution_models import reference

T0 = ms("2026-03-01 00:00:00")
MIN = 60_000
LANDINGS = {  # landing URL / referrer → source, the evaluator's own table
    ("https://s.example.com/?gclid=1", None): "google_ads",
    ("https://s.example.com/?fbclid=1", None): "facebook_ads",
    ("https://s.example.com/", "https://www.google.com/"): "google_organic",
    ("https://s.example.com/?utm_source=news&utm_medium=email", None): "email",
    ("https://s.example.com/", None): "direct",
    ("https://s.example.com/", "https://blog.other.org/a"): "referral",
}
LANDING_LIST = sorted(LANDINGS, key=str)
SOURCES = sorted(set(LANDINGS.values()))


@pytest.fixture
def settings(redis_url):
    return make_settings(redis_url, attribution_rate_limit_per_minute=0)


visit = st.tuples(st.integers(0, 40 * 24 * 60), st.sampled_from(range(len(LANDING_LIST))))
visitor = st.tuples(st.lists(visit, min_size=1, max_size=5), st.booleans())  # (visits, identified?)
journey = st.tuples(
    st.lists(visitor, min_size=1, max_size=3),
    st.lists(
        st.tuples(st.integers(0, 41 * 24 * 60), st.integers(0, 2), st.integers(1, 500)),
        min_size=1,
        max_size=3,
    ),
)


def evaluate(visitors, conversions, model, window, sources, page_ids):
    """Rows (conversion index, source, amount) the reference model credits, in the API's order."""
    sessions: dict[str, list[tuple[int, str]]] = {}
    for i, (visits, _) in enumerate(visitors):
        times = sorted({m for m, _ in visits})
        landing = {}
        for m, li in sorted(visits):
            landing.setdefault(m, li)  # the first visit at a minute is the one in the log
        entries, last = [], None
        for m in times:
            if last is None or (m - last) * MIN > 30 * MIN:
                entries.append((T0 + m * MIN, LANDINGS[LANDING_LIST[landing[m]]], page_ids[i, m]))
            last = m
        sessions[f"a{i}"] = entries
    identified = {f"a{i}" for i, (_, ident) in enumerate(visitors) if ident}
    rows = []
    for ci, (m, who, amount) in sorted(enumerate(conversions), key=lambda x: (x[1][0], x[0])):
        owner = who % len(visitors)
        anon = f"a{owner}"
        pool = sorted(identified) if anon in identified else [anon]
        # equal times are ordered by touchpoint id: `tp_` + the ULID of the session's first event
        touches = [(ts, "tp_" + eid[4:], src) for v in pool for ts, src, eid in sessions[v]]
        by_id = {t[1]: t[2] for t in touches}
        for tp, credit in reference(T0 + m * MIN + ci, float(amount), touches, model, window):
            src = by_id.get(tp, "direct")
            if src in sources:
                rows.append((ci, src, round(credit, 4)))
    return rows


@hypothesis_settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(journey=journey, sources=st.lists(st.sampled_from(SOURCES), min_size=1, max_size=4, unique=True))
async def test_api_rows_equal_the_independent_evaluator(
    app, client, settings, redis, folded, journey, sources
):
    visitors, conversions = journey
    ws = await new_workspace(settings, redis)
    key = await WorkspaceRegistry(redis, settings).create_key(ws.id, ["attribution:read"])
    events, page_ids = [], {}
    # every visitor's visits in time order; all identified visitors belong to one user ("buyer")
    for i, (visits, ident) in enumerate(visitors):
        for m, li in sorted(visits):
            if (i, m) in page_ids:
                continue
            url, ref = LANDING_LIST[li]
            events.append(page(T0 + m * MIN, f"a{i}", url, referrer=ref))
            page_ids[i, m] = events[-1].id
        if ident:
            events.append(identify_event(T0, anon=f"a{i}", user="buyer"))
    conv_ids = []
    for ci, (m, who, amount) in enumerate(conversions):
        owner = who % len(visitors)
        anon = f"a{owner}"
        kw = {"user": "buyer"} if visitors[owner][1] else {"anon": anon}
        e = track("purchase", T0 + m * MIN + ci, properties={"revenue": amount}, **kw)
        conv_ids.append(e.id)
        events.append(e)
    await load(EventLog(redis, settings), ws.id, events)
    await folded()
    h = {"Authorization": f"Bearer {key}"}
    for model in ("first_touch", "last_touch", "linear", "first_platform_touch", "last_platform_touch",
                  "linear_paid", "u_shaped", "last_non_direct_touch"):  # fmt: skip
        for window in (0, 1, 7, 30):
            params = {"start_date": "2026-02-01 00:00:00", "end_date": "2026-05-01 00:00:00",
                      "attribution_model": model, "attribution_window": window, "sources[]": sources,
                      "fields[]": ["amount", "ad_id"], "limit": 4000}  # fmt: skip
            r = await client.get("/public-api/v1/events", params=params, headers=h)
            assert r.status_code == 200, r.text
            got = [(conv_ids.index(x["id"]), x["source"], round(x["amount"], 4)) for x in r.json()["data"]]
            want = evaluate(visitors, conversions, model, window, set(sources), page_ids)
            assert sorted(got) == sorted(want), (model, window)
            assert [g[0] for g in got] == [w[0] for w in want]  # rows in event-time order
