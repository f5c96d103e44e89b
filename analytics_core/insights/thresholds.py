"""Threshold alerts from the config's ``alerts:`` section.

Rates, means and percentiles are checked bucket by bucket with hysteresis: an alert
fires once the breach has lasted the rule's ``for`` duration and clears only when the
value is back past its ``clear`` level, so a value hovering at the threshold does not
flap. Partial buckets (see ``queries.common.fill_buckets``) are never judged. Buckets
with too few events to mean anything (``kpis.MIN_BUCKET_EVENTS``) are not judged
either, but the story says how many there were, and a breach in one of them is still
told, at info level, rather than reported as "ok".

Counts are thresholds per day: the range's total divided by the days of it that have
happened, so the same daily rate gives the same answer at 7, 30 and 90 days.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import pandas as pd

from analytics_core.config import AlertRule
from analytics_core.insights.model import Insight, Status
from analytics_core.kpis import (
    KPIS,
    TREND_COLUMN,
    area_of,
    bucket_values,
    format_kpi,
    is_missing,
    min_events,
)


@dataclass(frozen=True)
class Episode:
    start: pd.Timestamp
    end: pd.Timestamp | None  # None: still firing at the end of the series
    peak: float


def _breached(rule: AlertRule, value: float) -> bool:
    return rule.breached(value)


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


# Counts whose range value is a sum of events, so that per day is total / days.
# active_users is a distinct count (not additive): it stays a range check.
_NOT_ADDITIVE = {"active_users"}


def check_thresholds(
    rules: tuple[AlertRule, ...],
    values: dict[str, float | int | None],
    series: dict[str, pd.DataFrame] | None = None,
    currency: str = "USD",
    step: timedelta = timedelta(hours=1),
    observed_days: float | None = None,
) -> list[Insight]:
    """One insight per rule whose KPI is in ``values``; ``series`` buckets are ``step``
    wide; ``observed_days`` is how much of the range has happened (count rules need it)."""
    out = []
    for rule in rules:
        if rule.kpi not in values:
            continue
        trend = TREND_COLUMN.get(rule.kpi)
        if KPIS[rule.kpi].unit == "count" and rule.kpi not in _NOT_ADDITIVE:
            if observed_days is None:
                raise ValueError(f"count threshold {rule.kpi} needs observed_days (per day)")
            out.append(_daily_check(rule, values[rule.kpi], observed_days, currency))
        elif (
            KPIS[rule.kpi].unit != "count"
            and series is not None
            and trend is not None
            and trend[0] in series
        ):
            frame = series[trend[0]]
            partial = 0
            if "partial" in frame.columns:  # incomplete buckets never alarm
                partial = int(frame["partial"].sum())
                frame = frame[~frame["partial"].astype(bool)].reset_index(drop=True)
            out.append(_series_check(rule, frame, values, currency, step, partial))
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
    label = KPIS[rule.kpi].label  # the label people read, not the config key
    word = "above" if rule.above is not None else "below"
    return label, word, format_kpi(rule.kpi, rule.threshold, currency)


def _insight(
    rule: AlertRule, status: Status, message: str, severity: str | None = None, **kw
) -> Insight:
    score = 1.0 if status == "firing" else 0.5 if status == "resolved" else 0.0
    return Insight(
        kind="threshold",
        area=area_of(rule.kpi),
        kpi=rule.kpi,
        status=status,
        severity=severity or rule.severity,  # type: ignore[arg-type]
        score=score if severity is None else score / 2,  # a downgraded story ranks lower
        message=message,
        **kw,
    )


def _days(days: float) -> str:
    return f"{days:,.1f} days" if days >= 1 else f"{days * 24:,.1f} hours"


def _daily_check(rule: AlertRule, value: float | int | None, days: float, currency: str) -> Insight:
    """A count rule read as a daily rate: the total over the observed days."""
    label, word, limit = _describe(rule, currency)
    method = f"Range total per observed day {word} {limit} per day"
    if is_missing(value) or days <= 0:
        details = {"value": None, "threshold": rule.threshold, "per": "day"}
        return _insight(rule, "no_data", f"{label} has no data in this range; threshold {limit} "
                        "per day unchecked", method=method, details=details)  # fmt: skip
    rate = float(value) / days  # type: ignore[arg-type]
    breached = _breached(rule, rate)
    details = {"value": float(value), "per_day": rate, "observed_days": days,  # type: ignore
               "threshold": rule.threshold, "comparison": rule.comparison,
               "per": "day"}  # fmt: skip
    verb = "is" if breached else "is not"
    return _insight(
        rule,
        "firing" if breached else "ok",
        f"{label} {verb} {word} its threshold of {limit} per day: {rate:,.1f} per day "
        f"({format_kpi(rule.kpi, value, currency)} over {_days(days)})",
        method=method,
        baseline="the range's observed days",
        details=details,
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


_BUCKET_WORD = {
    timedelta(hours=1): "hourly",
    timedelta(days=1): "daily",
    timedelta(days=7): "weekly",
    timedelta(days=28): "monthly",
}


def _unjudged(n: int, step: timedelta, support: str, minimum: int) -> str:
    """ "2 hourly buckets under 50 requests were not judged"."""
    word = _BUCKET_WORD.get(step, f"{_human(step)}")
    return (
        f"{n} {word} bucket{'s' if n != 1 else ''} under {minimum} {support} "
        f"{'were' if n != 1 else 'was'} not judged"
    )


def _series_check(
    rule: AlertRule,
    frame: pd.DataFrame,
    values: dict[str, float | int | None],
    currency: str,
    step: timedelta,
    partial: int = 0,
) -> Insight:
    """``frame``: the complete buckets of the KPI's trend; ``partial``: how many were left out."""
    buckets = frame["bucket"]
    column = bucket_values(frame, rule.kpi)  # NaN where too few events back the value
    raw = frame[TREND_COLUMN[rule.kpi][1]].astype(float)
    need = min_events(rule.kpi)
    support_col, minimum = need if need and need[0] in frame.columns else (None, 0)
    events = frame[support_col] if support_col else pd.Series(math.nan, index=frame.index)
    small = (raw.notna() & column.isna()).to_numpy()  # a value, but too few events to judge
    # dtype=bool: an empty frame (no complete bucket yet) maps to an object array.
    breached = raw.map(lambda v: not is_missing(v) and _breached(rule, v)).to_numpy(dtype=bool)
    small_breach = small.astype(bool) & breached
    label, word, limit = _describe(rule, currency)
    found = episodes(buckets, column, rule, step)
    clear = rule.clear if rule.clear is not None else rule.threshold
    lasting = f" for at least {_human(rule.for_duration)}" if rule.for_duration else ""
    method = (
        f"Per bucket: fires when {word} {limit}{lasting}, clears past "
        f"{format_kpi(rule.kpi, clear, currency)}"
    )
    if support_col:
        method += f"; buckets under {minimum} {support_col} are not judged"
    evidence = pd.DataFrame(
        {
            "bucket": buckets.to_numpy(),
            "value": column.to_numpy(dtype=float),
            "threshold": rule.threshold,
            "flagged": _in_episode(buckets, found).to_numpy(),
            # The values of buckets too small to judge, drawn apart, with their counts.
            "unjudged": raw.where(small).to_numpy(dtype=float),
            "events": events.to_numpy(dtype=float),
        }
    )
    range_value = values.get(rule.kpi)
    n_small = int(small.sum())
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
        "unjudged_buckets": n_small,
        "unjudged_breaches": int(small_breach.sum()),
        "min_events": minimum or None,
        "partial_buckets": partial,
    }
    unjudged = _unjudged(n_small, step, support_col or "events", minimum) if n_small else ""
    if raw.isna().all():
        return _insight(rule, "no_data", f"{label} has no data in this range; threshold {limit} "
                        "unchecked", method=method, details=details)  # fmt: skip
    if not found and small_breach.any():
        # Too few events to alarm on, too visible to call "ok": an info-level story.
        breaching = raw.where(small_breach)
        worst_at = int(breaching.idxmax() if rule.above is not None else breaching.idxmin())
        at = buckets.iloc[worst_at]
        worst = format_kpi(rule.kpi, raw[worst_at], currency)
        n_breach = int(small_breach.sum())
        # With no bucket large enough to judge there is no "within" to claim.
        rest = "; every judged bucket stayed within it" if column.notna().any() else ""
        message = (
            f"{label}: {unjudged}, and {n_breach} of them {'was' if n_breach == 1 else 'were'} "
            f"{word} its threshold {limit} (worst {worst} at {at:%Y-%m-%d %H:%M} over "
            f"{int(events.iloc[worst_at]):,} {support_col}){rest}"
        )
        last = bool(small_breach[-1])  # still breaching in the last complete bucket
        return _insight(
            rule, "firing" if last else "resolved", message, severity="info", method=method,
            baseline="fixed threshold from the config", details=details, evidence=evidence,
        )  # fmt: skip
    if column.isna().all():
        return _insight(rule, "no_data", f"{label} could not be judged: {unjudged}",
                        method=method, details=details, evidence=evidence)  # fmt: skip
    suffix = f"; {unjudged}" if unjudged else ""
    if not found:
        shown = format_kpi(rule.kpi, range_value, currency)
        # Name the bucket width: a day within the limit can hold an hour that was not,
        # and an hourly anomaly story may tell that hour.
        kind = _BUCKET_WORD.get(step, _human(step))
        every = f"every judged {kind} bucket" if unjudged else f"every {kind} bucket"
        return _insight(
            rule, "ok", f"{label} stayed within its threshold {limit} in {every} "
            f"(range value {shown}){suffix}", method=method, details=details, evidence=evidence,
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
        rule, status, message + suffix, method=method, baseline="fixed threshold from the config",
        details=details, evidence=evidence,
    )  # fmt: skip
