"""The eight attribution models and the lookback windows, as pure functions over polars frames.

Input: one row per (conversion, touchpoint in its window), ordered by touchpoint time within a conversion
(`pos` 0..n-1), with the conversion's `amount`. Output: the credited rows with `credit`; the credits of one
conversion always sum to its amount (the last credited row takes the rounding remainder).
"""

from __future__ import annotations

import polars as pl

from ..located import DAY_MS
from .classify import DIRECT, PAID_SOURCES

MODELS = (
    "first_touch",
    "last_touch",
    "linear",
    "first_platform_touch",
    "last_platform_touch",
    "linear_paid",
    "u_shaped",
    "last_non_direct_touch",
)
WINDOWS_DAYS = (0, 1, 7, 14, 30, 60, 90)  # 0 = lifetime (every earlier touchpoint)
CREDIT_DECIMALS = 6


def window_start_ms(conversion_ms: int, window_days: int) -> int | None:
    """Earliest touchpoint time that counts for a conversion; None = no lower bound (lifetime).

    A window of N days is the N × 24 hours before the conversion, both ends inclusive."""
    return None if window_days == 0 else conversion_ms - window_days * DAY_MS


def _weights(model: str) -> pl.Expr:
    conv = "conv"
    n = pl.len().over(conv)
    pos = pl.col("pos")
    paid = pl.col("source").is_in(list(PAID_SOURCES))
    n_paid = paid.cast(pl.Int64).sum().over(conv)
    paid_rank = paid.cast(pl.Int64).cum_sum().over(conv)  # 1-based among paid rows, ordered by pos
    non_direct = pl.col("source") != DIRECT
    n_nd = non_direct.cast(pl.Int64).sum().over(conv)
    nd_rank = non_direct.cast(pl.Int64).cum_sum().over(conv)
    first = (pos == 0).cast(pl.Float64)
    last = (pos == n - 1).cast(pl.Float64)
    linear = 1.0 / n
    if model == "first_touch":
        return first
    if model == "last_touch":
        return last
    if model == "linear":
        return linear
    # Paid-only models fall back to their all-touchpoint form when the window holds no paid touchpoint.
    if model == "first_platform_touch":
        return pl.when(n_paid > 0).then((paid & (paid_rank == 1)).cast(pl.Float64)).otherwise(first)
    if model == "last_platform_touch":
        return pl.when(n_paid > 0).then((paid & (paid_rank == n_paid)).cast(pl.Float64)).otherwise(last)
    if model == "linear_paid":
        return pl.when(n_paid > 0).then(paid.cast(pl.Float64) / n_paid).otherwise(linear)
    if model == "u_shaped":
        return (
            pl.when(n == 1)
            .then(1.0)
            .when(n == 2)
            .then(0.5)
            .when((pos == 0) | (pos == n - 1))
            .then(0.4)
            .otherwise(0.2 / (n - 2))
        )
    if model == "last_non_direct_touch":
        return pl.when(n_nd > 0).then((non_direct & (nd_rank == n_nd)).cast(pl.Float64)).otherwise(last)
    raise ValueError(f"unknown attribution model {model!r}")


def credit(touches: pl.DataFrame, model: str) -> pl.DataFrame:
    """Credited rows of `touches` (columns conv, pos, amount, source, …) under `model`, with `credit`.

    `touches` must be sorted by (conv, pos) and hold at least one row per conversion."""
    weighted = touches.with_columns(_weights(model).alias("weight")).filter(pl.col("weight") > 0)
    raw = (pl.col("amount") * pl.col("weight")).round(CREDIT_DECIMALS)
    is_last = pl.int_range(pl.len()).over("conv") == pl.len().over("conv") - 1
    return (
        weighted.with_columns(raw.alias("credit"))
        .with_columns(
            pl.when(is_last)
            .then(pl.col("amount") - (pl.col("credit").sum().over("conv") - pl.col("credit")))
            .otherwise(pl.col("credit"))
            .alias("credit")
        )
        .drop("weight")
    )


def touches_frame(
    conversions: list[tuple[str, int, float, list[tuple[int, str, str]]]], window_days: int
) -> pl.DataFrame:
    """Frame for `credit` from (conversion key, conversion ms, amount, [(touch ms, touchpoint id, source)]).

    Keeps the touchpoints inside the window (at or before the conversion), orders them by (time, id), and
    gives a conversion without any the single row (touchpoint None, `direct`), so its amount stays credited."""
    conv_col: list[str] = []
    pos_col: list[int] = []
    amount_col: list[float] = []
    tp_col: list[str | None] = []
    source_col: list[str] = []
    ts_col: list[int | None] = []
    for key, conv_ms, amount, touches in conversions:
        lo = window_start_ms(conv_ms, window_days)
        inside = sorted(
            (t for t in touches if t[0] <= conv_ms and (lo is None or t[0] >= lo)), key=lambda t: (t[0], t[1])
        )
        chain: list[tuple[int | None, str | None, str]] = list(inside) or [(None, None, DIRECT)]
        for i, (ts, tp, source) in enumerate(chain):
            conv_col.append(key)
            pos_col.append(i)
            amount_col.append(float(amount))
            tp_col.append(tp)
            source_col.append(source)
            ts_col.append(ts)
    return pl.DataFrame(
        {
            "conv": conv_col,
            "pos": pos_col,
            "amount": amount_col,
            "touchpoint_id": tp_col,
            "source": source_col,
            "touch_ms": ts_col,
        },
        schema={
            "conv": pl.String,
            "pos": pl.Int64,
            "amount": pl.Float64,
            "touchpoint_id": pl.String,
            "source": pl.String,
            "touch_ms": pl.Int64,
        },
    )


def attribute(
    conversions: list[tuple[str, int, float, list[tuple[int, str, str]]]], model: str, window_days: int
) -> pl.DataFrame:
    """Credited rows (conv, pos, amount, touchpoint_id, source, touch_ms, credit) in (conv input order, pos)."""
    if model not in MODELS:
        raise ValueError(f"unknown attribution model {model!r}")
    return credit(touches_frame(conversions, window_days), model)
