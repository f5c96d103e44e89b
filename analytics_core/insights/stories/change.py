"""Change stories: each KPI against the previous period of equal length, told when
the change is significant and large enough to act on."""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd

from analytics_core.insights import compare
from analytics_core.insights.model import Insight, Severity
from analytics_core.insights.stories.common import complete_buckets
from analytics_core.kpis import KPIS, TREND_COLUMN, area_of, format_kpi, is_missing

# A previous-period change must be significant and at least this large to be told.
MIN_RELEVANT_CHANGE = 0.10


def not_comparable(value: float | int | None) -> compare.Change:
    """No previous period to compare with (it predates the stored history)."""
    current = None if is_missing(value) else float(value)  # type: ignore[arg-type]
    return compare.Change(
        current,
        None,
        None,
        None,
        None,
        False,
        "no comparison: the previous period predates the data",
    )


def kpi_changes(
    current: dict[str, float | int | None],
    previous: dict[str, float | int | None],
    series: dict[str, pd.DataFrame],
    previous_series: dict[str, pd.DataFrame],
    alpha: float,
) -> dict[str, compare.Change]:
    """Every KPI against the previous period, with a test fitting its kind."""
    out: dict[str, compare.Change] = {}
    perf, prev_perf = series.get("performance_trend"), previous_series.get("performance_trend")
    for key, now_value in current.items():
        before = previous.get(key)
        unit = KPIS[key].unit
        if key in ("error_rate", "availability") and perf is not None and prev_perf is not None:
            out[key] = compare.compare_proportions(
                int(perf["errors"].sum()),
                int(perf["requests"].sum()),
                int(prev_perf["errors"].sum()),
                int(prev_perf["requests"].sum()),
                alpha,
            )
            if key == "availability":  # the same test, stated as 1 - error rate
                same = out[key]
                pct = (
                    None
                    if is_missing(now_value) or is_missing(before) or not before
                    else float(now_value) / float(before) - 1  # type: ignore[arg-type]
                )
                out[key] = replace(
                    same,
                    current=now_value,  # type: ignore[arg-type]
                    previous=before,  # type: ignore[arg-type]
                    abs_change=None if same.abs_change is None else -same.abs_change,
                    pct_change=pct,
                )
        elif unit == "count" and key not in ("active_users",):
            out[key] = compare.compare_counts(
                int(now_value or 0), None if before is None else int(before), alpha
            )
        else:
            trend = TREND_COLUMN.get(key)
            cur_values = prev_values = []
            if trend and trend[0] in series and trend[0] in previous_series:
                # Partial buckets hold part of a bucket's events: not a sample of it.
                cur_values = complete_buckets(series[trend[0]])[trend[1]].dropna().tolist()
                prev_values = (
                    complete_buckets(previous_series[trend[0]])[trend[1]].dropna().tolist()
                )
            out[key] = compare.compare_samples(
                cur_values,
                prev_values,
                None if is_missing(now_value) else float(now_value),  # type: ignore[arg-type]
                None if is_missing(before) else float(before),  # type: ignore[arg-type]
                alpha,
            )
    return out


def significant_changes(
    current: dict[str, float | int | None],
    previous: dict[str, float | int | None],
    changes: dict[str, compare.Change],
    currency: str,
) -> list[Insight]:
    out = []
    for key, change in changes.items():
        if not change.significant or key in ("availability", "avg_response_ms", "api_calls"):
            continue  # mirrors of error_rate / avg_ms / requests say the same thing twice
        better = KPIS[key].higher_is_better
        up = (change.abs_change or 0) > 0
        harmful = better is not None and up != better
        pct = change.pct_change
        if pct is not None and math.isfinite(pct) and abs(pct) < MIN_RELEVANT_CHANGE:
            continue  # significant with lots of data, but too small to act on
        size = f" ({pct:+.0%})" if pct is not None and math.isfinite(pct) else ""
        message = (
            f"{KPIS[key].label} {'rose' if up else 'fell'} to "
            f"{format_kpi(key, current[key], currency)} from "
            f"{format_kpi(key, previous.get(key), currency)} in the previous period{size}"
        )
        severity: Severity = (
            "warning" if harmful and pct is not None and abs(pct) >= 0.25 else "info"
        )
        out.append(
            Insight(
                kind="change",
                area=area_of(key),
                kpi=key,
                status="firing",
                severity=severity,
                score=float(1 - (change.p_value or 0.0)),
                message=message,
                method=change.method,
                baseline="the previous period of equal length",
                details={
                    "value": change.current,
                    "previous": change.previous,
                    "abs_change": change.abs_change,
                    "pct_change": pct,
                    "p_value": change.p_value,
                },
            )
        )
    return out
