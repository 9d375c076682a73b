"""Custom profile field filters: parsing (422 rules) and the reference's semantics, operator by operator."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.custom_fields import parse_custom_field_filters, profile_matches
from api.errors import AttributionError
from api.workspace_settings import WorkspaceSettings

from .attribution_helpers import identify_event, load, ms, track

WS = WorkspaceSettings(
    timezone="America/New_York", profile_field_labels={5: "Plan", 6: "Note", 16: "Seats", 26: "Renewal"}
)
NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)


def f(slot: int, op: str, value: object = None, **extra: str):
    items = [
        ("custom_field_filters[0][field]", f"profile_field_{slot}"),
        ("custom_field_filters[0][operator]", op),
    ]
    if value is not None:
        items.append(("custom_field_filters[0][value]", str(value)))
    items += [(f"custom_field_filters[0][{k}]", v) for k, v in extra.items()]
    return parse_custom_field_filters(items, WS)


def match(value: object, slot: int, op: str, arg: object = None, **extra: str) -> bool:
    fields = {} if value is None else {slot: value}
    return profile_matches(fields, f(slot, op, arg, **extra), WS.timezone, now=NOW)


@pytest.mark.parametrize(
    ("value", "op", "arg", "expected"),
    [
        ("Premium", "equal_to", "premium", True),
        ("Premium", "not_equal_to", "Basic", True),
        (None, "not_equal_to", "Basic", False),  # unset is never "not equal"
        ("Premium plan", "contains", "um pl", True),
        ("Premium", "not_contains", "x", True),
        (None, "not_contains", "x", False),
        ("Premium", "starts_with", "Pre", True),
        ("Premium", "ends_with", "ium", True),
        ("gold tier plan", "contains_word", "tier", True),
        ("goldtier plan", "contains_word", "tier", False),
        ("a_b", "contains", "_", True),  # `_` is a literal, not a LIKE wildcard
        ("ab", "contains", "_", False),
        ("a\\b", "contains", "\\", True),
        ("x", "any", None, True),
        ("", "any", None, False),
        (None, "unknown", None, True),
        ("", "unknown", None, True),
        ("x", "unknown", None, False),
    ],
)
def test_text_operators(value, op, arg, expected):
    assert match(value, 5, op, arg) is expected


@pytest.mark.parametrize(
    ("value", "op", "arg", "expected"),
    [
        (5, "equal_to", "5", True),
        (5, "not_equal_to", "4", True),
        (None, "not_equal_to", "4", False),
        (5, "greater_than", "4.5", True),
        (5, "greater_than_or_equal_to", "5", True),
        (5, "less_than", "5", False),
        (5, "less_than_or_equal_to", "5", True),
        (3, "any", None, True),
        (0, "any", None, False),  # numeric `any` needs a value greater than 0
        (0, "unknown", None, True),
        (None, "unknown", None, True),
        (2, "unknown", None, False),
    ],
)
def test_number_operators(value, op, arg, expected):
    assert match(value, 16, op, arg) is expected


@pytest.mark.parametrize(
    ("value", "op", "arg", "expected"),
    [
        ("2026-03-10", "equal_to", "2026-03-10", True),
        ("2026-03-10", "greater_than", "2026-03-09", True),
        ("2026-03-10", "less_than", "2026-03-10", False),
        ("2026-03-10", "age_equal_to", "10", True),
        ("2026-03-10", "age_greater_than", "9", True),
        ("2026-03-10", "age_less_than", "10", False),
        ("2026-03-10", "any", None, True),
        (None, "unknown", None, True),
        (None, "equal_to", "2026-03-10", False),
    ],
)
def test_date_operators(value, op, arg, expected):
    assert match(value, 26, op, arg) is expected


def test_date_between_is_inclusive_of_whole_days():
    assert match("2026-03-10", 26, "between", start="2026-03-10", end="2026-03-10")
    assert not match("2026-03-11", 26, "between", start="2026-03-01", end="2026-03-10")


def test_a_date_time_value_compares_by_its_calendar_day_in_the_workspace_zone():
    # 02:00 UTC on the 11th is still the 10th in New York
    assert match(
        int(datetime(2026, 3, 11, 2, 0, tzinfo=UTC).timestamp() * 1000), 26, "equal_to", "2026-03-10"
    )


def test_filters_are_and_joined():
    items = [
        ("custom_field_filters[0][field]", "profile_field_5"),
        ("custom_field_filters[0][operator]", "equal_to"),
        ("custom_field_filters[0][value]", "Premium"),
        ("custom_field_filters[1][field]", "profile_field_16"),
        ("custom_field_filters[1][operator]", "greater_than"),
        ("custom_field_filters[1][value]", "3"),
    ]
    fs = parse_custom_field_filters(items, WS)
    assert profile_matches({5: "Premium", 16: 4}, fs, WS.timezone)
    assert not profile_matches({5: "Premium", 16: 2}, fs, WS.timezone)


@pytest.mark.parametrize(
    ("items", "parameter"),
    [
        ({"field": "profile_field_7", "operator": "any"}, "custom_field_filters.0.field"),  # no label
        ({"field": "profile_field_31", "operator": "any"}, "custom_field_filters.0.field"),
        ({"field": "email", "operator": "any"}, "custom_field_filters.0.field"),
        ({"operator": "any"}, "custom_field_filters.0.field"),
        (
            {"field": "profile_field_5", "operator": "greater_than", "value": "1"},
            "custom_field_filters.0.operator",
        ),
        (
            {"field": "profile_field_16", "operator": "contains", "value": "1"},
            "custom_field_filters.0.operator",
        ),
        (
            {"field": "profile_field_26", "operator": "between", "start": "2026-01-01"},
            "custom_field_filters.0.start",
        ),
        ({"field": "profile_field_5", "operator": "equal_to"}, "custom_field_filters.0.value"),
        (
            {"field": "profile_field_16", "operator": "equal_to", "value": "many"},
            "custom_field_filters.0.value",
        ),
        (
            {"field": "profile_field_26", "operator": "equal_to", "value": "soon"},
            "custom_field_filters.0.value",
        ),
        (
            {"field": "profile_field_26", "operator": "age_less_than", "value": "1.5"},
            "custom_field_filters.0.value",
        ),
    ],
)
def test_invalid_filters_are_422_naming_the_parameter(items, parameter):
    with pytest.raises(AttributionError) as err:
        parse_custom_field_filters([(f"custom_field_filters[0][{k}]", v) for k, v in items.items()], WS)
    assert err.value.status == 422 and parameter in err.value.message


def test_more_than_ten_filters_are_422():
    items = []
    for i in range(11):
        items += [
            (f"custom_field_filters[{i}][field]", "profile_field_5"),
            (f"custom_field_filters[{i}][operator]", "any"),
        ]
    with pytest.raises(AttributionError) as err:
        parse_custom_field_filters(items, WS)
    assert "10" in err.value.message


async def test_api_filters_conversions_by_their_contacts_fields(
    app, client, settings, redis, workspace, folded
):
    from api.workspace_settings import SettingsChange, change_workspace_settings
    from ingest.log import EventLog
    from ingest.workspaces import WorkspaceRegistry

    reg = WorkspaceRegistry(redis, settings)
    await change_workspace_settings(
        reg, EventLog(redis, settings), workspace.id, SettingsChange(profile_field_labels={5: "Plan"})
    )
    key = await reg.create_key(workspace.id, ["attribution:read"])
    log = EventLog(redis, settings)
    t = ms("2026-03-05 10:00:00")
    await load(log, workspace.id, [
        identify_event(t, user="u-prem", traits={"profile_field_5": "Premium"}),
        identify_event(t, user="u-basic", traits={"profile_field_5": "Basic"}),
        track("purchase", t + 1, user="u-prem"),
        track("purchase", t + 2, user="u-basic"),
        track("purchase", t + 3, user="u-none"),
    ])  # fmt: skip
    await folded()
    params = {
        "start_date": "2026-03-01 00:00:00",
        "end_date": "2026-03-31 00:00:00",
        "fields[]": "profile_id",
    }
    h = {"Authorization": f"Bearer {key}"}

    async def rows(op: str, value: str | None = None) -> int:
        extra = {"custom_field_filters[0][field]": "profile_field_5", "custom_field_filters[0][operator]": op}
        if value is not None:
            extra["custom_field_filters[0][value]"] = value
        r = await client.get("/public-api/v1/events", params={**params, **extra}, headers=h)
        assert r.status_code == 200, r.text
        return len(r.json()["data"])

    assert await rows("equal_to", "Premium") == 1
    assert await rows("not_equal_to", "Premium") == 1  # the contact without the field is left out
    assert await rows("any") == 2
    assert await rows("unknown") == 1
