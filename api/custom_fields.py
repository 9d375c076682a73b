"""Custom profile field filters (`custom_field_filters[i][field|operator|value|start|end]`): parsing with the
422 rules of the attribution reference, and evaluation against one contact's field values.

Slots 1–15 are text, 16–25 numbers, 26–30 dates; a slot must carry a label in the workspace settings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import msgspec

from ingest.errors import InvalidRequest

from .errors import AttributionError
from .workspace_settings import PROFILE_FIELD_SLOTS, WorkspaceSettings

MAX_FILTERS = 10
TEXT_OPS = ("equal_to", "not_equal_to", "contains", "not_contains", "starts_with", "ends_with",
            "contains_word", "any", "unknown")  # fmt: skip
NUMBER_OPS = ("equal_to", "not_equal_to", "greater_than", "greater_than_or_equal_to", "less_than",
              "less_than_or_equal_to", "any", "unknown")  # fmt: skip
DATE_OPS = ("equal_to", "between", "greater_than", "less_than", "age_greater_than", "age_equal_to",
            "age_less_than", "any", "unknown")  # fmt: skip
_KEY = re.compile(r"custom_field_filters\[(\d+)\]\[(field|operator|value|start|end)\]")


def slot_type(slot: int) -> str:
    return "text" if slot <= 15 else "number" if slot <= 25 else "date"


class FieldFilter(msgspec.Struct, frozen=True):
    slot: int
    kind: str  # text | number | date
    operator: str
    value: str | float | int | None = None  # text, number, date ISO string, or age in days
    start: str | None = None
    end: str | None = None


def _bad(message: str, parameter: str) -> AttributionError:
    return AttributionError(InvalidRequest(message, details={"parameter": parameter}), status=422)


def _date_value(raw: str, param: str) -> str:
    text = raw.strip()
    for fmt in ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    raise _bad(f"The {param} field must be a date (Y-m-d).", param)


def parse_custom_field_filters(items: Iterable[tuple[str, str]], ws: WorkspaceSettings) -> list[FieldFilter]:
    raw: dict[int, dict[str, str]] = {}
    for k, v in items:
        if not k.startswith("custom_field_filters"):
            continue
        m = _KEY.fullmatch(k)
        if m is None:
            raise _bad(f"The custom_field_filters parameter {k!r} is malformed.", "custom_field_filters")
        raw.setdefault(int(m.group(1)), {})[m.group(2)] = v
    if len(raw) > MAX_FILTERS:
        raise _bad(
            f"The custom_field_filters field must not have more than {MAX_FILTERS} items.",
            "custom_field_filters",
        )
    out = []
    for i in sorted(raw):
        c = raw[i]
        p = f"custom_field_filters.{i}"
        field = c.get("field")
        if not field:
            raise _bad(f"The {p}.field field is required.", f"{p}.field")
        m = re.fullmatch(r"profile_field_(\d+)", field)
        if m is None or not 1 <= int(m.group(1)) <= PROFILE_FIELD_SLOTS:
            raise _bad(f"The {p}.field field must be profile_field_1 … profile_field_30.", f"{p}.field")
        slot = int(m.group(1))
        if slot not in ws.profile_field_labels:
            raise _bad(f"The {p}.field {field} is not configured with a label in this space.", f"{p}.field")
        kind = slot_type(slot)
        op = c.get("operator")
        ops = {"text": TEXT_OPS, "number": NUMBER_OPS, "date": DATE_OPS}[kind]
        if not op:
            raise _bad(f"The {p}.operator field is required.", f"{p}.operator")
        if op not in ops:
            raise _bad(
                f"The {p}.operator {op!r} is invalid for a {kind} field ({', '.join(ops)}).", f"{p}.operator"
            )
        if op in ("any", "unknown"):
            out.append(FieldFilter(slot, kind, op))
            continue
        if op == "between":
            if not c.get("start") or not c.get("end"):
                raise _bad(f"The {p}.start and {p}.end fields are required for between.", f"{p}.start")
            s, e = _date_value(c["start"], f"{p}.start"), _date_value(c["end"], f"{p}.end")
            if e < s:
                raise _bad(f"The {p}.end field must be a date after or equal to start.", f"{p}.end")
            out.append(FieldFilter(slot, kind, op, start=s, end=e))
            continue
        value = c.get("value")
        if value is None or value == "":
            raise _bad(f"The {p}.value field is required.", f"{p}.value")
        if kind == "number":
            try:
                num = float(value)
            except ValueError as exc:
                raise _bad(f"The {p}.value field must be a number.", f"{p}.value") from exc
            out.append(FieldFilter(slot, kind, op, value=num))
        elif kind == "date" and op.startswith("age_"):
            if not re.fullmatch(r"\d+", value.strip()):
                raise _bad(f"The {p}.value field must be a whole number of days.", f"{p}.value")
            out.append(FieldFilter(slot, kind, op, value=int(value)))
        elif kind == "date":
            out.append(FieldFilter(slot, kind, op, value=_date_value(value, f"{p}.value")))
        else:
            out.append(FieldFilter(slot, kind, op, value=value))
    return out


# ---------------------------------------------------------------- evaluation


def _unset(v: object) -> bool:
    return v is None or (isinstance(v, str) and v.strip() == "")


def _local_date(v: object, tz: ZoneInfo) -> date | None:
    """A stored date field as a calendar day in the workspace zone (date strings are already local days)."""
    if isinstance(v, bool) or _unset(v):
        return None
    if isinstance(v, int | float):
        return datetime.fromtimestamp(v / 1000, UTC).astimezone(tz).date()
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=UTC)).astimezone(tz).date()
    if isinstance(v, date):
        return v
    text = str(v).strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return date.fromisoformat(text)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(tz).date()


def _number(v: object) -> float | None:
    if isinstance(v, bool) or _unset(v):
        return None
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"\W+", text.lower()) if w]


def condition_matches(v: object, f: FieldFilter, tz: ZoneInfo, today: date) -> bool:
    if f.kind == "text":
        if f.operator == "any":
            return not _unset(v)
        if f.operator == "unknown":
            return _unset(v)
        if _unset(v):
            return False  # not_equal_to / not_contains leave unset fields out too
        text, want = str(v).lower(), str(f.value).lower()  # plain string tests: `_` and `\` are literal
        return {
            "equal_to": text == want,
            "not_equal_to": text != want,
            "contains": want in text,
            "not_contains": want not in text,
            "starts_with": text.startswith(want),
            "ends_with": text.endswith(want),
            "contains_word": _words(want) != [] and _is_sublist(_words(want), _words(text)),
        }[f.operator]
    if f.kind == "number":
        n = _number(v)
        if f.operator == "any":
            return n is not None and n > 0
        if f.operator == "unknown":
            return n is None or n == 0
        if n is None:
            return False
        x = float(f.value)  # type: ignore[arg-type]
        return {
            "equal_to": n == x,
            "not_equal_to": n != x,
            "greater_than": n > x,
            "greater_than_or_equal_to": n >= x,
            "less_than": n < x,
            "less_than_or_equal_to": n <= x,
        }[f.operator]
    d = _local_date(v, tz)
    if f.operator == "any":
        return d is not None
    if f.operator == "unknown":
        return d is None
    if d is None:
        return False
    if f.operator == "between":
        return date.fromisoformat(f.start or "") <= d <= date.fromisoformat(f.end or "")
    if f.operator.startswith("age_"):
        age, n = (today - d).days, int(f.value)  # type: ignore[arg-type]
        return {"age_greater_than": age > n, "age_equal_to": age == n, "age_less_than": age < n}[f.operator]
    want = date.fromisoformat(str(f.value))
    return {"equal_to": d == want, "greater_than": d > want, "less_than": d < want}[f.operator]


def _is_sublist(needle: list[str], hay: list[str]) -> bool:
    k = len(needle)
    return any(hay[i : i + k] == needle for i in range(len(hay) - k + 1))


def profile_matches(
    fields: dict[int, object], filters: list[FieldFilter], timezone: str, now: datetime | None = None
) -> bool:
    """Whether one contact's custom fields (slot → value) satisfy every filter (AND)."""
    tz = ZoneInfo(timezone)
    today = (now or datetime.now(UTC)).astimezone(tz).date()
    return all(condition_matches(fields.get(f.slot), f, tz, today) for f in filters)
