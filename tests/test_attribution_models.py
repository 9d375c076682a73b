"""Attribution models and windows against an independent reference evaluator (plain Python, no shared code)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.touchpoints import MODELS, WINDOWS_DAYS, attribute

DAY = 86_400_000
PAID = {"google_ads", "facebook_ads", "bing_ads", "tiktok_ads"}
SOURCE_POOL = ["google_ads", "facebook_ads", "bing_ads", "direct", "google_organic", "email", "referral"]


def reference(conv_ms, amount, touches, model, window):
    """Independent evaluator: [(touchpoint id, credit)] for one conversion."""
    earliest = -math.inf if window == 0 else conv_ms - window * DAY
    chain = sorted([t for t in touches if earliest <= t[0] <= conv_ms], key=lambda t: (t[0], t[1]))
    if not chain:
        return [(None, amount)]
    ids = [t[1] for t in chain]
    paid = [t[1] for t in chain if t[2] in PAID]
    non_direct = [t[1] for t in chain if t[2] != "direct"]
    n = len(chain)
    if model == "first_touch":
        return [(ids[0], amount)]
    if model == "last_touch":
        return [(ids[-1], amount)]
    if model == "linear":
        return [(i, amount / n) for i in ids]
    if model == "first_platform_touch":
        return [(paid[0] if paid else ids[0], amount)]
    if model == "last_platform_touch":
        return [(paid[-1] if paid else ids[-1], amount)]
    if model == "linear_paid":
        pool = paid or ids
        return [(i, amount / len(pool)) for i in pool]
    if model == "last_non_direct_touch":
        return [(non_direct[-1] if non_direct else ids[-1], amount)]
    if model == "u_shaped":
        if n == 1:
            return [(ids[0], amount)]
        if n == 2:
            return [(ids[0], amount / 2), (ids[1], amount / 2)]
        middle = [(i, amount * 0.2 / (n - 2)) for i in ids[1:-1]]
        return [(ids[0], amount * 0.4), *middle, (ids[-1], amount * 0.4)]
    raise AssertionError(model)


def run(conv_ms, amount, touches, model, window):
    rows = attribute([("c", conv_ms, amount, touches)], model, window).rows(named=True)
    return [(r["touchpoint_id"], r["credit"]) for r in rows]


T0 = 100 * DAY
CHAIN = [
    (T0 - 40 * DAY, "tp1", "google_ads"),
    (T0 - 10 * DAY, "tp2", "email"),
    (T0 - 3 * DAY, "tp3", "facebook_ads"),
    (T0 - 1 * DAY + 1, "tp4", "direct"),
]


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("first_touch", [("tp1", 100)]),
        ("last_touch", [("tp4", 100)]),
        ("linear", [("tp1", 25), ("tp2", 25), ("tp3", 25), ("tp4", 25)]),
        ("first_platform_touch", [("tp1", 100)]),
        ("last_platform_touch", [("tp3", 100)]),
        ("linear_paid", [("tp1", 50), ("tp3", 50)]),
        ("u_shaped", [("tp1", 40), ("tp2", 10), ("tp3", 10), ("tp4", 40)]),
        ("last_non_direct_touch", [("tp3", 100)]),
    ],
)
def test_each_model_on_a_four_touch_lifetime_chain(model, expected):
    got = run(T0, 100.0, CHAIN, model, 0)
    assert [t for t, _ in got] == [t for t, _ in expected]
    assert [c for _, c in got] == pytest.approx([c for _, c in expected])


@pytest.mark.parametrize(("window", "kept"), [(0, 4), (90, 4), (60, 4), (30, 3), (14, 3), (7, 2), (1, 1)])
def test_window_keeps_touchpoints_of_the_last_n_days(window, kept):
    assert len(run(T0, 100.0, CHAIN, "linear", window)) == kept


def test_window_bounds_are_inclusive_and_later_touches_never_count():
    touches = [(T0 - 7 * DAY, "edge", "email"), (T0, "same", "direct"), (T0 + 1, "after", "google_ads")]
    assert [t for t, _ in run(T0, 10.0, touches, "linear", 7)] == ["edge", "same"]


def test_conversion_without_touchpoints_is_credited_to_direct():
    rows = attribute([("c", T0, 30.0, [])], "u_shaped", 7).rows(named=True)
    assert [(r["touchpoint_id"], r["source"], r["credit"]) for r in rows] == [(None, "direct", 30.0)]


def test_paid_models_fall_back_to_all_touchpoints_without_paid_ones():
    touches = [(T0 - 2, "a", "email"), (T0 - 1, "b", "direct")]
    assert run(T0, 9.0, touches, "first_platform_touch", 0) == [("a", 9.0)]
    assert run(T0, 9.0, touches, "last_platform_touch", 0) == [("b", 9.0)]
    assert run(T0, 9.0, touches, "linear_paid", 0) == [("a", 4.5), ("b", 4.5)]
    assert run(T0, 9.0, [(T0 - 1, "b", "direct")], "last_non_direct_touch", 0) == [("b", 9.0)]


def test_credits_of_thirds_sum_to_the_amount_the_last_taking_the_remainder():
    touches = [(T0 - 3, "a", "email"), (T0 - 2, "b", "email"), (T0 - 1, "c", "email")]
    credits = [c for _, c in run(T0, 100.0, touches, "linear", 0)]
    assert credits[:2] == [33.333333, 33.333333]
    assert sum(credits) == pytest.approx(100.0, abs=1e-9)


touch = st.tuples(st.integers(0, 200 * DAY), st.integers(0, 10**6), st.sampled_from(SOURCE_POOL))
journey = st.lists(touch, max_size=12, unique_by=lambda t: t[1])


@settings(max_examples=300, deadline=None)
@given(
    touches=journey,
    conv_ms=st.integers(0, 200 * DAY),
    amount=st.floats(0, 1e6, allow_nan=False).map(lambda x: round(x, 2)),
    model=st.sampled_from(MODELS),
    window=st.sampled_from(WINDOWS_DAYS),
)
def test_models_match_the_reference_and_credits_sum_to_the_amount(touches, conv_ms, amount, model, window):
    tps = [(ts, f"tp{i:07d}", s) for ts, i, s in touches]
    got = run(conv_ms, amount, tps, model, window)
    want = reference(conv_ms, amount, tps, model, window)
    assert [t for t, _ in got] == [t for t, _ in want]
    assert [c for _, c in got] == pytest.approx([c for _, c in want], abs=1e-4)
    assert sum(c for _, c in got) == pytest.approx(amount, abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(journey, st.integers(0, 200 * DAY)), min_size=1, max_size=6), st.sampled_from(MODELS)
)
def test_many_conversions_in_one_frame_are_independent(convs, model):
    batch = [
        (f"c{i}", ms, 10.0, [(ts, f"tp{j:07d}", s) for ts, j, s in t]) for i, (t, ms) in enumerate(convs)
    ]
    got = attribute(batch, model, 30).rows(named=True)
    for key, ms, amount, tps in batch:
        mine = [(r["touchpoint_id"], r["credit"]) for r in got if r["conv"] == key]
        want = reference(ms, amount, tps, model, 30)
        assert [t for t, _ in mine] == [t for t, _ in want]
        assert sum(c for _, c in mine) == pytest.approx(amount)
