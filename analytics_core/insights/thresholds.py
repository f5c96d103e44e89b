"""Threshold alerts from the config's ``alerts:`` section.

Rates, means and percentiles are checked bucket by bucket with hysteresis (buckets
with too few events to mean anything are skipped, see ``kpis.MIN_BUCKET_EVENTS``): an
alert fires once the breach has lasted the rule's ``for`` duration and clears only
when the value is back past its ``clear`` level, so a value hovering at the
threshold does not flap. Counts (totals over the range) are checked once, on
the range's value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import pandas as pd

from analytics_core.config import AlertRule
from analytics_core.insights.model import Insight, Status
from analytics_core.kpis import KPIS, TREND_COLUMN, area_of, bucket_values, format_kpi, is_missing


@dataclass(frozen=True)
class Episode:
    start: pd.Timestamp
    end: pd.Timestamp | None  # None: still firing at the end of the series
    peak: float


def _breached(rule: AlertRule, value: float) -> bool:
    return value > rule.threshold if rule.above is not None else value < rule.threshold


def _cleared(rule: AlertRule, value: float) -> bool:
    clear = rule.clear if rule.clear is not None else rule.threshold
    return value <= clear if rule.above is not None else value >= clear


def episodes(
    buckets: pd.Series, values: pd.Series, rule: AlertRule, step: timedelta = timedelta(hours=1)
) -> list[Episode]:
    """Firing episodes over a series of buckets ``step`` wide; NaN buckets leave the
    state unchanged. A breach fires once it has lasted ``rule.for_duration``."""
    worse = max if rule.above is not None else min
    found: list[Episode] = []
    run_start, run, firing, peak = None, 0, False, math.nan
    for bucket, value in zip(buckets, values, strict=True):
        if is_missing(value):
            continue
        value = float(value)
        if not firing:
            if _breached(rule, value):
                run_start = bucket if run == 0 else run_start
                peak = value if run == 0 else worse(peak, value)
                run += 1
                firing = run * step >= rule.for_duration
            else:
                run = 0
        elif _cleared(rule, value):
            found.append(Episode(run_start, bucket, peak))
            firing, run = False, 0
        else:
            peak = worse(peak, value)
    if firing:
        found.append(Episode(run_start, None, peak))
    return found


def _in_episode(buckets: pd.Series, found: list[Episode]) -> pd.Series:
    flagged = pd.Series(False, index=range(len(buckets)))
    b = pd.Series(buckets).reset_index(drop=True)
    for ep in found:
        mask = b >= ep.start
        if ep.end is not None:
            mask &= b < ep.end
        flagged |= mask
    return flagged


def check_thresholds(
    rules: tuple[AlertRule, ...],
    values: dict[str, float | int | None],
    series: dict[str, pd.DataFrame] | None = None,
    currency: str = "USD",
    step: timedelta = timedelta(hours=1),
) -> list[Insight]:
    """One insight per rule whose KPI is in ``values``; ``series`` buckets are ``step`` wide."""
    out = []
    for rule in rules:
        if rule.kpi not in values:
            continue
        trend = TREND_COLUMN.get(rule.kpi)
        per_bucket = (
            KPIS[rule.kpi].unit != "count"
            and series is not None
            and trend is not None
            and trend[0] in series
        )
        if per_bucket:
            frame = series[trend[0]]  # type: ignore[index]
            column = bucket_values(frame, rule.kpi)
            out.append(_series_check(rule, frame["bucket"], column, values, currency, step))
        else:
            out.append(_range_check(rule, values[rule.kpi], currency))
    return out


def _human(duration: timedelta) -> str:
    """2h, 30min, 1d: how the config wrote it, not 2:00:00."""
    seconds = int(duration.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _describe(rule: AlertRule, currency: str) -> tuple[str, str, str]:
    label = f"{KPIS[rule.kpi].label} ({rule.kpi})"
    word = "above" if rule.above is not None else "below"
    return label, word, format_kpi(rule.kpi, rule.threshold, currency)


def _insight(rule: AlertRule, status: Status, message: str, **kw) -> Insight:
    return Insight(
        kind="threshold",
        area=area_of(rule.kpi),
        kpi=rule.kpi,
        status=status,
        severity=rule.severity,  # type: ignore[arg-type]
        score=1.0 if status == "firing" else 0.5 if status == "resolved" else 0.0,
        message=message,
        **kw,
    )


def _range_check(rule: AlertRule, value: float | int | None, currency: str) -> Insight:
    label, word, limit = _describe(rule, currency)
    details = {"value": None if is_missing(value) else float(value), "threshold": rule.threshold,
               "comparison": rule.comparison}  # fmt: skip
    method = f"Range value {word} {limit}"
    if is_missing(value):
        return _insight(rule, "no_data", f"{label} has no data in this range; threshold {limit} "
                        "unchecked", method=method, details=details)  # fmt: skip
    breached = _breached(rule, float(value))  # type: ignore[arg-type]
    shown = format_kpi(rule.kpi, value, currency)
    verb = "is" if breached else "is not"
    return _insight(
        rule,
        "firing" if breached else "ok",
        f"{label} {verb} {word} its threshold: {shown} vs {limit}",
        method=method,
        baseline="the whole range",
        details=details,
    )


def _series_check(
    rule: AlertRule,
    buckets: pd.Series,
    column: pd.Series,
    values: dict[str, float | int | None],
    currency: str,
    step: timedelta,
) -> Insight:
    label, word, limit = _describe(rule, currency)
    found = episodes(buckets, column, rule, step)
    clear = rule.clear if rule.clear is not None else rule.threshold
    lasting = f" for at least {_human(rule.for_duration)}" if rule.for_duration else ""
    method = (
        f"Per bucket: fires when {word} {limit}{lasting}, clears past "
        f"{format_kpi(rule.kpi, clear, currency)}"
    )
    evidence = pd.DataFrame(
        {
            "bucket": buckets.to_numpy(),
            "value": column.to_numpy(dtype=float),
            "threshold": rule.threshold,
            "flagged": _in_episode(buckets, found).to_numpy(),
        }
    )
    range_value = values.get(rule.kpi)
    details: dict[str, object] = {
        "value": None if is_missing(range_value) else float(range_value),  # type: ignore[arg-type]
        "threshold": rule.threshold,
        "clear": clear,
        "for_seconds": rule.for_duration.total_seconds(),
        "comparison": rule.comparison,
        "episodes": [
            {
                "start": e.start.isoformat(),
                "end": None if e.end is None else e.end.isoformat(),
                "peak": e.peak,
            }
            for e in found
        ],  # fmt: skip
    }
    if column.isna().all():
        return _insight(rule, "no_data", f"{label} has no data in this range; threshold {limit} "
                        "unchecked", method=method, details=details)  # fmt: skip
    if not found:
        shown = format_kpi(rule.kpi, range_value, currency)
        return _insight(
            rule, "ok", f"{label} stayed within its threshold {limit} in every bucket "
            f"(range value {shown})", method=method, details=details, evidence=evidence,
        )  # fmt: skip
    last = found[-1]
    peak = format_kpi(rule.kpi, last.peak, currency)
    since = f"{last.start:%Y-%m-%d %H:%M}"
    if last.end is None:
        message = f"{label} has been {word} its threshold {limit} since {since} (worst {peak})"
        status: Status = "firing"
    else:
        message = (
            f"{label} was {word} its threshold {limit} from {since} to {last.end:%Y-%m-%d %H:%M} "
            f"(worst {peak}); it has cleared since"
        )
        status = "resolved"
    if len(found) > 1:
        message += f"; {len(found)} episodes in this range"
    return _insight(
        rule, status, message, method=method, baseline="fixed threshold from the config",
        details=details, evidence=evidence,
    )  # fmt: skip
