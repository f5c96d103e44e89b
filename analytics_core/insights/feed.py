"""The insights feed: every detector run over one range, ranked.

Threshold alerts, anomalies on metric series, significant trends, significant
changes against the previous period, bottlenecks and capacity forecasts each
become :class:`Insight` records with their evidence. Nothing is appended when
nothing happened: an empty feed is an honest answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import timedelta

import numpy as np
import pandas as pd

from analytics_core.config import Config
from analytics_core.context import QueryContext
from analytics_core.filters import Filters
from analytics_core.insights import anomalies, compare, forecast, trends
from analytics_core.insights.model import (
    SEVERITY_RANK,
    Insight,
    Severity,
    evidence_frame,
    rank,
)
from analytics_core.insights.thresholds import check_thresholds
from analytics_core.kpis import KPIS, TREND_COLUMN, area_of, bucket_values, format_kpi, is_missing
from analytics_core.queries.common import bucket_end
from analytics_core.sources.areas import Sources


@dataclass(frozen=True)
class Metric:
    """A metric series the anomaly and trend detectors watch."""

    kpi: str
    label: str
    per_bucket: bool = False  # a volume: its value depends on the bucket width

    @property
    def series(self) -> str:
        return TREND_COLUMN[self.kpi][0]


WATCHED = (
    Metric("anomaly_rate", "anomaly rate"),
    Metric("p95_ms", "p95 latency"),
    Metric("p99_ms", "p99 latency"),
    Metric("error_rate", "error rate"),
    Metric("requests", "request volume", per_bucket=True),
    Metric("active_users", "active users", per_bucket=True),
    Metric("total_cost", "cost", per_bucket=True),
    Metric("data_processed_gb", "data processed", per_bucket=True),
)
# How much history before the range the anomaly detector learns from.
HOURLY_HISTORY = timedelta(days=28)
DAILY_HISTORY = timedelta(days=180)
CAPACITY_HISTORY = timedelta(days=90)
BUCKET_WIDTH = {
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(days=7),
    "month": timedelta(days=28),  # the shortest month: a breach all month lasts at least this
}
# A previous-period change must be significant and at least this large to be told.
MIN_RELEVANT_CHANGE = 0.10


def build_insights(
    sources: Sources,
    config: Config,
    ctx: QueryContext,
    current: dict[str, float | int | None],
    previous: dict[str, float | int | None],
    series: dict[str, pd.DataFrame],
    changes: dict[str, compare.Change],
    tables: dict[str, pd.DataFrame] | None = None,
) -> list[Insight]:
    """``series`` are the range's trends at its granularity, up to ``ctx.now``; ``tables``
    the bottleneck tables when the caller already has them. Every detector sees the range
    only up to ``min(end, now)`` and skips partial buckets. Any further figures (anomaly
    history, daily trends, episodes, capacity) come from ``sources`` under ``ctx``."""
    currency = config.costs.currency
    filters = ctx.filters
    if tables is None:
        tables = bottleneck_tables(sources, ctx, current, previous)
    found: list[Insight] = []
    observed_days = (filters.observed_end(ctx.now) - filters.start).total_seconds() / 86400
    found += check_thresholds(
        config.alerts,
        current,
        series,
        currency,
        BUCKET_WIDTH[filters.granularity],
        observed_days=observed_days,
    )
    found += metric_anomalies(sources, config, ctx, current, tables["bottleneck_endpoints"])
    found += metric_trends(sources, config, ctx, series)
    found += significant_changes(current, previous, changes, currency)
    found += bottleneck_insights(tables)
    found += capacity_insights(sources, config, ctx)
    return rank(drop_restated_changes(merge_incidents(found)))


# --- one story per incident -------------------------------------------------------------

# One slow or failing dependency shows in p95, p99 and the error rate at once, and the
# threshold rules on error rate and availability see the same burst: anomaly episodes of
# these and threshold episodes on them (availability as the error rate's mirror) that
# overlap in time (on the same endpoint, where one is singled out) are one incident and
# one story.
REQUEST_PATH = ("p95_ms", "p99_ms", "error_rate")
# A KPI shown as its mirror, with the direction flipped when the mirror is its complement.
MIRROR = {"availability": ("error_rate", True), "avg_response_ms": ("avg_ms", False),
          "api_calls": ("requests", False)}  # fmt: skip
_NEVER_ENDED = pd.Timestamp.max.tz_localize("UTC")


def _span(insight: Insight) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The episode a story tells: an anomaly's, or a threshold story's latest one."""
    if insight.kind == "threshold":
        last = insight.details["episodes"][-1]  # type: ignore[index]
        start, end = last["start"], last["end"]
    else:
        start, end = insight.details["episode_start"], insight.details.get("episode_end")
    return (
        pd.Timestamp(start),  # type: ignore[arg-type]
        _NEVER_ENDED if end is None else pd.Timestamp(end),  # type: ignore[arg-type]
    )


def _same_incident(a: Insight, b: Insight) -> bool:
    (a0, a1), (b0, b1) = _span(a), _span(b)
    ea, eb = a.details.get("endpoint"), b.details.get("endpoint")
    return a0 < b1 and b0 < a1 and (ea is None or eb is None or ea == eb)


def _episode_kpi(insight: Insight) -> str | None:
    """The KPI an episode story is about (a mirror as its original), or None when the
    story tells no episode."""
    if insight.status not in ("firing", "resolved") or insight.kpi is None:
        return None
    kpi = MIRROR.get(insight.kpi, (insight.kpi, False))[0]
    if insight.kind == "anomaly":
        return kpi
    if insight.kind == "threshold" and insight.details.get("episodes"):
        return kpi  # an info-level story about unjudged buckets has no episode: left alone
    return None


def _family(kpi: str) -> str:
    """Metrics whose overlapping episodes are one incident: the request path's, or one
    KPI with itself (its threshold and its anomaly stories)."""
    return "request path" if kpi in REQUEST_PATH else kpi


def merge_incidents(insights: list[Insight]) -> list[Insight]:
    """Overlapping episode stories of one incident become one story: anomalies and
    threshold alerts of the same KPI, and those of the :data:`REQUEST_PATH` metrics."""
    groups: list[tuple[str, list[Insight]]] = []
    rest = []
    for insight in insights:
        kpi = _episode_kpi(insight)
        if kpi is None:
            rest.append(insight)
            continue
        family = _family(kpi)
        # An episode overlapping two groups joins them: overlap chains are one incident.
        touching = [
            g for f, g in groups if f == family and any(_same_incident(insight, o) for o in g)
        ]
        merged = [insight, *(o for g in touching for o in g)]
        groups = [(f, g) for f, g in groups if not any(g is t for t in touching)]
        groups.append((family, merged))
    # Input order breaks severity ties, so the same stories always merge the same way.
    position = {id(insight): n for n, insight in enumerate(insights)}
    return rest + [_merged(sorted(g, key=lambda i: position[id(i)])) for _, g in groups]


def _path_order(insight: Insight) -> int:
    kpi = _episode_kpi(insight)
    return REQUEST_PATH.index(kpi) if kpi in REQUEST_PATH else 0


def _in_the_same_episode(insight: Insight) -> str:
    if insight.kind == "threshold":  # its own first clause says what, when and how bad
        return _mid_sentence(insight.message.split("; ")[0])
    return (
        f"{_label(insight.kpi)} was {format_kpi(insight.kpi, insight.details['value'])} "  # type: ignore[arg-type]
        f"against an expected {format_kpi(insight.kpi, insight.details['expected'])} "  # type: ignore[arg-type]
        f"({_when(insight)})"
    )


def _merged(group: list[Insight]) -> Insight:
    if len(group) == 1:
        return group[0]
    # An anomaly leads where there is one: it dates the episode to the bucket and says
    # what was expected; a threshold rule judges coarser buckets with hysteresis. The
    # story keeps the gravest severity of its members.
    anomalies = [i for i in group if i.kind == "anomaly"]
    lead = min(anomalies or group, key=lambda i: (SEVERITY_RANK[i.severity], -i.score))
    severity = min((i.severity for i in group), key=lambda s: SEVERITY_RANK[s])
    others = sorted(
        (i for i in group if i is not lead),
        key=lambda i: (_path_order(i), i.kind),
    )
    kpis = list(dict.fromkeys(i.kpi for i in [lead, *others]))
    also = "; ".join(_in_the_same_episode(i) for i in others)
    what = f"One incident in {_and([_label(k) for k in kpis])}. " if len(kpis) > 1 else ""
    spans = [_span(i) for i in group if i.kind == lead.kind]
    end = max(e for _, e in spans)
    told = sorted({t for i in group for t in _told_directions(i)})
    return replace(
        lead,
        severity=severity,
        status="firing" if any(i.status == "firing" for i in group) else "resolved",
        message=f"{what}{lead.message}. In the same episode, {also}",
        recommendation=next((i.recommendation for i in [lead, *others] if i.recommendation), None),
        details={
            **lead.details,
            "metrics": kpis,
            "episode_start": min(s for s, _ in spans).isoformat(),
            "episode_end": None if end == _NEVER_ENDED else end.isoformat(),
            "merged": [
                {k: i.details.get(k) for k in ("value", "expected", "episode_start", "episode_end")}
                | {"kpi": i.kpi, "kind": i.kind, "severity": i.severity}
                | ({"episodes": i.details["episodes"]} if i.kind == "threshold" else {})
                for i in others
            ],
            "told": [list(t) for t in told],
        },
    )


def _mid_sentence(text: str) -> str:
    """``Error rate was…`` → ``error rate was…`` (``P95…`` and acronyms stay as they are)."""
    return text[0].lower() + text[1:] if text[1:2].islower() else text


def _label(kpi: str | None) -> str:
    watched = next((m for m in WATCHED if m.kpi == kpi), None)
    if watched is not None:
        return watched.label
    if kpi not in KPIS:
        return str(kpi)
    return _mid_sentence(KPIS[kpi].label)  # as the watched metrics' labels


def _metric(kpi: str) -> Metric:
    return next(m for m in WATCHED if m.kpi == kpi)


def _when(insight: Insight) -> str:
    start, end = _span(insight)
    since = f"{start:%Y-%m-%d %H:%M}"
    return f"since {since}" if end == _NEVER_ENDED else f"{since} to {end:%Y-%m-%d %H:%M}"


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _told_directions(insight: Insight) -> set[tuple[str, bool]]:
    """(KPI, went up) pairs an incident story already tells."""
    if "told" in insight.details:  # a merged incident: what each of its episodes told
        return {(k, bool(up)) for k, up in insight.details["told"]}  # type: ignore[union-attr]
    if insight.kind == "anomaly" and "value" in insight.details:
        up = insight.details["value"] > insight.details["expected"]  # type: ignore[operator]
        kpis = insight.details.get("metrics") or [insight.kpi]
        return {(k, up) for k in kpis}  # type: ignore[misc]
    if insight.kind == "threshold" and insight.kpi is not None:
        up = insight.details.get("comparison") == ">"
        kpi, flip = MIRROR.get(insight.kpi, (insight.kpi, False))
        return {(kpi, up != flip)}
    return set()


def drop_restated_changes(insights: list[Insight]) -> list[Insight]:
    """A previous-period change in a KPI that an episode story in this range already
    tells, in the same direction, restates that episode (the burst moves the range's
    figure): the episode says when and how much, so the change is not told again."""
    told: set[tuple[str, bool]] = set()
    for insight in insights:
        if insight.status in ("firing", "resolved"):
            told |= _told_directions(insight)
    out = []
    for insight in insights:
        if insight.kind == "change" and insight.kpi is not None:
            up = (insight.details.get("abs_change") or 0) > 0  # type: ignore[operator]
            kpi, flip = MIRROR.get(insight.kpi, (insight.kpi, False))
            if (kpi, up != flip) in told:
                continue
        out.append(insight)
    return out


# --- anomalies -------------------------------------------------------------------------


def _start(filters: Filters) -> pd.Timestamp:
    return pd.Timestamp(filters.start)


# The count that says whether a series' source had any events in a bucket.
ACTIVITY = {
    "detection_trend": "detections",
    "performance_trend": "requests",
    "business_trend": "api_calls",
}


def _since_first_activity(frame: pd.DataFrame, series: str) -> pd.DataFrame:
    """Drop the buckets before the data begins: zero-filled, they would read as a quiet
    history that never happened."""
    active = (frame[ACTIVITY[series]] > 0).to_numpy()
    if not active.any():
        return frame.iloc[:0]
    return frame.iloc[int(active.argmax()) :].reset_index(drop=True)


def _complete(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop partial buckets (the running hour or day, a first or last bucket the range
    cuts): their counts are not all in, and a half-counted bucket reads as a drop."""
    if "partial" not in frame.columns:
        return frame
    return frame[~frame["partial"].astype(bool)].reset_index(drop=True)


def _episodes(flags: pd.Series) -> list[tuple[int, int]]:
    """(first, last) positions of runs of consecutive flags."""
    runs, start = [], None
    for i, flag in enumerate(flags.to_numpy()):
        if flag and start is None:
            start = i
        if not flag and start is not None:
            runs.append((start, i - 1))
            start = None
    if start is not None:
        runs.append((start, len(flags) - 1))
    return runs


def metric_anomalies(
    sources: Sources,
    config: Config,
    ctx: QueryContext,
    current: dict[str, float | int | None],
    endpoints: pd.DataFrame,
) -> list[Insight]:
    """``endpoints``: the range's endpoint shares, the usual picture an episode is set against.
    Only buckets complete by ``ctx.now`` are scored or used as history."""
    filters = ctx.filters
    hourly = filters.length <= timedelta(days=31)
    history = replace(
        filters,
        start=filters.start - (HOURLY_HISTORY if hourly else DAILY_HISTORY),
        granularity="hour" if hourly else "day",
    )
    frames = sources.trends(ctx.with_filters(history), config.costs)
    sensitivity = config.insights.sensitivity
    out: list[Insight] = []
    learning: dict[str, list[str]] = {}
    for metric in WATCHED:
        frame = _since_first_activity(_complete(frames[metric.series]), metric.series)
        values = bucket_values(frame, metric.kpi)
        scored = anomalies.detect(
            frame["bucket"], values, sensitivity=sensitivity, step=BUCKET_WIDTH[history.granularity]
        )
        in_range = (frame["bucket"] >= _start(filters)).to_numpy()
        window = scored[in_range].reset_index(drop=True)
        buckets = frame["bucket"][in_range].reset_index(drop=True)
        if window.empty or (window["state"] != anomalies.SCORED).all():
            if values[in_range].notna().any():
                learning.setdefault(area_of(metric.kpi), []).append(metric.label)
            continue
        insight = _anomaly_insight(
            sources, metric, ctx, history, window, buckets, current, endpoints
        )
        if insight is not None:
            out.append(insight)
    for area, labels in learning.items():
        out.append(
            Insight(
                kind="anomaly",
                area=area,
                kpi=None,
                status="learning",
                severity="info",
                score=0.0,
                message=(
                    f"Still learning the normal pattern of {', '.join(labels)}: not enough "
                    "history before this range to score it, so no anomalies are claimed."
                ),
                method="Seasonal robust baseline; scores need enough past points",
            )
        )
    return out


def _anomaly_insight(
    sources: Sources,
    metric: Metric,
    ctx: QueryContext,
    history: Filters,
    window: pd.DataFrame,
    buckets: pd.Series,
    current: dict[str, float | int | None],
    endpoints: pd.DataFrame,
) -> Insight | None:
    filters = ctx.filters
    flags = window["is_anomaly"].fillna(False).astype(bool)
    # Stories are built from alarms (one per incident, the detector's refractory gap
    # merging flags close together): an episode runs from an alarm to the last flag
    # before the next one. Flags at the range's start continue an episode alarmed
    # before it.
    alarm = window["alarm"].fillna(False).astype(bool).to_numpy()
    flagged = np.flatnonzero(flags.to_numpy())
    if not len(flagged):
        return None
    starts = sorted({*np.flatnonzero(alarm).tolist(), int(flagged[0])})
    ends = [int(flagged[flagged < nxt].max()) for nxt in [*starts[1:], len(flags)]]
    runs = list(zip(starts, ends, strict=True))
    # The strongest episode carries the message.
    strength = [window["score"].iloc[a : b + 1].max() for a, b in runs]
    a, b = runs[int(np.argmax(strength))]
    worst = a + int(np.argmax((window["value"] - window["expected"]).abs().iloc[a : b + 1]))
    value, expected = window["value"].iloc[worst], window["expected"].iloc[worst]
    # Every watched metric is non-negative: a forecast below 0 is the model's noise
    # ("expected -0.00%", a band to -1,000 ms), so what is told and drawn stops at 0.
    told = window[["expected", "lower", "upper"]].clip(lower=0.0)
    higher = value > expected
    # Where the deviation began: the first bucket of the run, ending at the alarm, of
    # values on the alarm's side of the forecast by over a quarter of the band's half
    # width (one robust z at the default sensitivity 4).
    side = (window["value"] - window["expected"]).to_numpy() * (1 if higher else -1)
    quarter = ((window["upper"] - window["expected"]) / 4).to_numpy()
    began = a
    while began > 0 and side[began - 1] > 0 and side[began - 1] >= quarter[began - 1]:
        began -= 1  # NaN (learning, missing) compares False and stops the walk
    bad = KPIS[metric.kpi].higher_is_better
    harmful = bad is not None and (higher != bad)
    start = buckets.iloc[a]
    end = bucket_end(buckets.iloc[b : b + 1], history.granularity).iloc[0]
    ongoing = b == len(window) - 1  # flagged up to the last complete bucket
    fmt = lambda v: format_kpi(metric.kpi, v)  # noqa: E731
    expected = told["expected"].iloc[worst]
    message = (
        f"{_sentence(metric.label)} was unusually {'high' if higher else 'low'} "
        f"{'since' if ongoing else 'from'} {start:%Y-%m-%d %H:%M}"
        f"{'' if ongoing else f' to {end:%Y-%m-%d %H:%M}'}: {fmt(value)} against an expected "
        f"{fmt(expected)}"
    )
    lead = a - began  # buckets from the start of the deviation to the alarm
    if not alarm[a]:
        message += "; alarmed before this range"
    elif lead == 0:
        message += "; alarmed on the first deviating bucket"
    else:
        message += (
            f"; alarmed {lead} {history.granularity}{'s' if lead > 1 else ''} after the "
            f"deviation began ({buckets.iloc[began]:%Y-%m-%d %H:%M})"
        )
    if len(runs) > 1:
        message += f" ({len(runs)} alarms in this range)"
    evidence = evidence_frame(
        buckets,
        window["value"],
        baseline=told["expected"],
        lower=told["lower"],
        upper=told["upper"],
        flagged=flags,
    )
    episode = replace(
        filters,
        start=start.tz_convert("UTC").to_pydatetime(),
        end=end.tz_convert("UTC").to_pydatetime(),
    )
    recommendation, endpoint = _anomaly_recommendation(
        sources, metric, ctx.with_filters(episode), ctx, higher, current.get("p95_ms"), endpoints
    )
    return Insight(
        kind="anomaly",
        area=area_of(metric.kpi),
        kpi=metric.kpi,
        status="firing" if ongoing else "resolved",
        severity="warning" if harmful else "info",
        score=float(max(strength)),
        message=message,
        method=(
            "Seasonal robust baseline (same hour/day in past weeks, median/MAD score), "
            "scored only from earlier points"
        ),
        baseline=f"{'hourly' if history.granularity == 'hour' else 'daily'} values since "
        f"{pd.Timestamp(history.start).tz_convert(filters.tz):%Y-%m-%d}",
        recommendation=recommendation,
        details={
            "value": float(value),
            "expected": float(expected),
            "episode_start": start.isoformat(),
            "episode_end": None if ongoing else end.isoformat(),
            "episodes": len(runs),
            "alarm_at": start.isoformat() if alarm[a] else None,
            "deviation_start": buckets.iloc[began].isoformat(),
            "alarm_delay_buckets": int(lead),
            "max_score": float(max(strength)),
            "endpoint": endpoint,  # the endpoint that drove it, when one did
        },
        evidence=evidence,
    )


# An endpoint's share during an episode this far above its usual share singles it out.
CONCENTRATED = 0.15


def _anomaly_recommendation(
    sources: Sources,
    metric: Metric,
    episode: QueryContext,
    ctx: QueryContext,
    higher: bool,
    p95_ms: float | int | None,
    usual: pd.DataFrame,
) -> tuple[str | None, str | None]:
    """Point at the endpoint or detector that drove the episode, from its own numbers;
    with the endpoint when one was singled out."""
    if metric.kpi in ("p95_ms", "p99_ms", "error_rate") and higher:
        # "Slow" means slower than the range's p95, during the episode as over the range.
        during = sources.performance.endpoint_shares(episode, p95_ms)  # type: ignore[arg-type]
        share = "slow_share" if metric.kpi != "error_rate" else "error_share"
        what = "slow requests" if share == "slow_share" else "server errors"
        if during.empty or during[share].isna().all():
            return None, None
        top = during.loc[during[share].idxmax()]
        before = usual.set_index("endpoint")[share].get(top["endpoint"], float("nan"))
        if is_missing(before):
            return (
                f"Start with {top['endpoint']}: it produced {top[share]:.0%} of {what} during "
                "the episode, and none over the rest of the range.",
                top["endpoint"],
            )
        if top[share] - before >= CONCENTRATED:
            return (
                f"Start with {top['endpoint']}: it produced {top[share]:.0%} of {what} during "
                f"the episode, against {before:.0%} over the whole range.",
                top["endpoint"],
            )
        return (
            f"The {what} were spread across endpoints as usual (largest: {top['endpoint']} at "
            f"{top[share]:.0%}), which points at something they share: the database, the "
            "network or a dependency, rather than one endpoint.",
            None,
        )
    if metric.kpi == "anomaly_rate":
        during = sources.detection.by_detector(episode)
        usual = sources.detection.by_detector(ctx).set_index("detector_id")
        if during.empty:
            return None, None
        during = during.assign(
            usual=during["detector_id"].map(usual["anomaly_rate"]),
        )
        during["lift"] = during["anomaly_rate"] - during["usual"]
        top = during.loc[during["lift"].abs().idxmax()]
        if is_missing(top["usual"]):
            return None, None
        return (
            f"Review detector {top['detector_id']} ({top['algorithm']}): its anomaly rate was "
            f"{top['anomaly_rate']:.1%} during the episode against {top['usual']:.1%} over the "
            "range; check its threshold and the datasets it scored.",
            None,
        )
    return None, None


# --- trends ----------------------------------------------------------------------------


def metric_trends(
    sources: Sources,
    config: Config,
    ctx: QueryContext,
    series: dict[str, pd.DataFrame],
) -> list[Insight]:
    filters = ctx.filters
    if filters.length < timedelta(days=8):
        return []
    # Daily values: the page's own series when it is already by day.
    frames = (
        series
        if filters.granularity == "day"
        else sources.trends(ctx.with_filters(replace(filters, granularity="day")), config.costs)
    )
    out = []
    for metric in WATCHED:
        # Partial first/last days would bias a daily trend.
        frame = _since_first_activity(_complete(frames[metric.series]), metric.series)
        values = bucket_values(frame, metric.kpi)
        found = trends.detect_trend(frame["bucket"], values, alpha=config.insights.trend_alpha)
        if found is None or not found.significant:
            continue
        up = found.slope_per_day > 0
        better = KPIS[metric.kpi].higher_is_better
        harmful = better is not None and up != better
        pct = found.pct_change
        change = f" ({pct:+.0%} over the range)" if pct is not None and math.isfinite(pct) else ""
        label = _daily_label(metric)
        message = (
            f"{label} is {'rising' if up else 'falling'} by about "
            f"{format_kpi(metric.kpi, abs(found.slope_per_week))} per week{change}; "
            f"{_p(found.p_value)}"
        )
        out.append(
            Insight(
                kind="trend",
                area=area_of(metric.kpi),
                kpi=metric.kpi,
                status="firing",
                severity="warning" if harmful and pct is not None and abs(pct) >= 0.2 else "info",
                score=float(1 - found.p_value),
                message=message,
                method=found.method,
                baseline=f"{found.n} complete days in the range",
                recommendation=_trend_recommendation(metric, found, harmful, label),
                details={
                    "slope_per_day": found.slope_per_day,
                    "slope_per_week": found.slope_per_week,
                    "pct_change": pct,
                    "p_value": found.p_value,
                    "n": found.n,
                },
                evidence=evidence_frame(
                    frame["bucket"],
                    values,
                    baseline=pd.Series(trends.fitted_line(found, frame["bucket"])),
                ),
            )
        )
    return out


def _p(p_value: float) -> str:
    """p-values below what floats resolve read as a bound, never as 0."""
    return "p < 1e-6" if p_value < 1e-6 else f"p = {p_value:.2g}"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _daily_label(metric: Metric) -> str:
    """Daily values of a volume are per day; say so."""
    return _sentence(f"{metric.label} per day" if metric.per_bucket else metric.label)


def _trend_recommendation(
    metric: Metric, found: trends.Trend, harmful: bool, label: str
) -> str | None:
    if not harmful:
        return None
    weeks = 4
    ahead = found.fitted_end + found.slope_per_week * weeks
    return (
        f"If the trend holds, {label.lower()} reaches about "
        f"{format_kpi(metric.kpi, max(ahead, 0.0))} in {weeks} weeks; it has been building "
        f"across the whole range, so look for a gradual cause (growth, data size, a slow leak) "
        "rather than one event."
    )


# --- previous-period changes ------------------------------------------------------------


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
                cur_values = _complete(series[trend[0]])[trend[1]].dropna().tolist()
                prev_values = _complete(previous_series[trend[0]])[trend[1]].dropna().tolist()
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


# --- bottlenecks ------------------------------------------------------------------------

# A contributor is a bottleneck when its share of the cost is this many times its
# share of the traffic, or when its share grew by this many points.
DISPROPORTION = 1.5
SHARE_JUMP = 0.10
# Shares of fewer events than this are anecdotes.
MIN_CONTRIBUTING_EVENTS = 20


def bottleneck_tables(
    sources: Sources,
    ctx: QueryContext,
    current: dict[str, float | int | None],
    previous: dict[str, float | int | None],
) -> dict[str, pd.DataFrame]:
    """Endpoint and algorithm contributions, now and in the previous period."""
    before = ctx.previous()
    perf, det = sources.performance, sources.detection
    endpoints = perf.endpoint_shares(ctx, current.get("p95_ms"))  # type: ignore[arg-type]
    endpoints_before = perf.endpoint_shares(before, previous.get("p95_ms"))  # type: ignore[arg-type]
    algos = det.algorithm_shares(ctx)
    algos_before = det.algorithm_shares(before)
    share_cols = ["slow", "errors", "slow_share", "error_share", "time_share", "request_share"]
    endpoints = endpoints.merge(
        endpoints_before[["endpoint", *share_cols]].rename(
            columns={c: f"{c}_before" for c in share_cols}
        ),
        on="endpoint",
        how="left",
    )
    algo_cols = ["runs", "failed", "time_share", "failure_share", "run_share"]
    algos = algos.merge(
        algos_before[["algorithm", *algo_cols]].rename(
            columns={c: f"{c}_before" for c in algo_cols}
        ),
        on="algorithm",
        how="left",
    )
    return {
        "bottleneck_endpoints": endpoints.sort_values("slow_share", ascending=False),
        "bottleneck_algorithms": algos.sort_values("time_share", ascending=False),
    }


def bottleneck_insights(tables: dict[str, pd.DataFrame]) -> list[Insight]:
    """Disproportionate or grown contributors in :func:`bottleneck_tables`."""
    out = []
    checks = (
        ("bottleneck_endpoints", "endpoint", "slow", "slow_share", "request_share",
         "of requests slower than the p95", "of requests", "p95_ms", "performance"),
        ("bottleneck_endpoints", "endpoint", "errors", "error_share", "request_share",
         "of server errors", "of requests", "error_rate", "performance"),
        ("bottleneck_algorithms", "algorithm", "runs", "time_share", "run_share",
         "of detector execution time", "of runs", "avg_execution_ms", "detection"),
        ("bottleneck_algorithms", "algorithm", "failed", "failure_share", "run_share",
         "of failed runs", "of runs", "failed_detections", "detection"),
    )  # fmt: skip
    for table_name, key, events, share, traffic, what, traffic_what, kpi, area in checks:
        table = tables[table_name].dropna(subset=[share])
        if table.empty or table[events].sum() < MIN_CONTRIBUTING_EVENTS:
            continue
        top = table.loc[table[share].idxmax()]
        before = top.get(f"{share}_before")
        ratio = top[share] / top[traffic] if top[traffic] else math.inf
        jump = (top[share] - before) if before is not None and not is_missing(before) else 0.0
        if jump >= SHARE_JUMP:
            # A bigger share of few events can be luck: keep the jump only if it is significant.
            test = compare.compare_proportions(
                int(top[events]),
                int(table[events].sum()),
                int(top.get(f"{events}_before") or 0),
                int(table[f"{events}_before"].sum()),
            )
            jump = jump if test.significant else 0.0
        if ratio < DISPROPORTION and jump < SHARE_JUMP:
            continue
        was = "" if is_missing(before) else f" (previous period {before:.0%})"
        message = (
            f"{top[key]} accounts for {top[share]:.0%} {what}{was} while carrying "
            f"{top[traffic]:.0%} {traffic_what}"
        )
        out.append(
            Insight(
                kind="bottleneck",
                area=area,
                kpi=kpi,
                status="firing",
                severity="warning" if jump >= SHARE_JUMP else "info",
                score=float(top[share]),
                message=message,
                method=f"Share {what} by {key}, against its share {traffic_what}",
                baseline="the previous period of equal length",
                recommendation=f"Profile {top[key]} first: it is the largest contributor {what}.",
                details={
                    key: top[key],
                    "share": float(top[share]),
                    "share_before": None if is_missing(before) else float(before),
                    "traffic_share": float(top[traffic]),
                },
                evidence=tables[table_name][[key, traffic, share, f"{share}_before"]]
                .rename(columns={f"{share}_before": f"{share} (previous period)"})
                .reset_index(drop=True),
            )
        )
    return out


# --- capacity ---------------------------------------------------------------------------

CAPACITY_METRICS = {
    "requests_per_day": ("api_calls", "daily request volume", "api_calls"),
    "gb_per_day": ("data_processed_gb", "daily GB processed", "data_processed_gb"),
}


def capacity_insights(sources: Sources, config: Config, ctx: QueryContext) -> list[Insight]:
    end = ctx.filters.observed_end(ctx.now)
    span = replace(ctx.filters, start=end - CAPACITY_HISTORY, end=end, granularity="day")
    frame = _since_first_activity(
        _complete(sources.business.trend(ctx.with_filters(span), config.costs)), "business_trend"
    )
    out = []
    for name, (column, label, kpi) in CAPACITY_METRICS.items():
        limit = config.insights.capacity.get(name)
        result = forecast.forecast(
            frame["bucket"],
            frame[column].astype(float),
            horizon=config.insights.forecast_horizon_days,
            level=config.insights.forecast_level,
            limit=limit,
        )
        if result is None:
            continue
        fc = result.frame
        level = f"{result.level:.0%}"
        last = fc.iloc[-1]
        digits = 0 if column == "api_calls" else 2

        def fmt(v: float, digits: int = digits) -> str:
            return f"{v:,.{digits}f}"

        recent = frame.tail(7)
        peak_at = recent[column].idxmax() if len(recent) else None
        if limit is not None and peak_at is not None and recent[column].max() >= limit:
            message = (
                f"{_sentence(label)} already reached the limit of {fmt(limit)}: "
                f"{fmt(recent.loc[peak_at, column])} on {recent.loc[peak_at, 'bucket']:%Y-%m-%d}"
            )
            status, severity = "firing", "critical"
            recommendation = f"Raise the {label} limit or add capacity now."
        elif limit is not None and result.crossing is not None:
            days = (result.crossing - frame["bucket"].iloc[-1]).days
            earliest = result.crossing_upper or result.crossing
            message = (
                f"{_sentence(label)} is forecast to reach the limit of {fmt(limit)} around "
                f"{result.crossing:%Y-%m-%d} (in about {days} days; earliest plausible "
                f"{earliest:%Y-%m-%d} at the {level} upper bound)"
            )
            status, severity = "firing", ("critical" if days <= 7 else "warning")
            recommendation = f"Raise the {label} limit or add capacity before {earliest:%Y-%m-%d}."
        else:
            horizon = config.insights.forecast_horizon_days
            bound = (
                f"; the limit of {fmt(limit)} is not expected within {horizon} days"
                if limit is not None
                else ""
            )
            crossing_upper = result.crossing_upper
            if limit is not None and crossing_upper is not None:
                bound = (
                    f"; the limit of {fmt(limit)} is not expected within {horizon} days, "
                    f"though the {level} upper bound reaches it by {crossing_upper:%Y-%m-%d}"
                )
            message = (
                f"{_sentence(label)} forecast for {last['timestamp']:%Y-%m-%d}: "
                f"{fmt(last['forecast'])} ({level} interval {fmt(last['lower'])} to "
                f"{fmt(last['upper'])}){bound}"
            )
            status, severity, recommendation = "ok", "info", None
        history = pd.DataFrame({"bucket": frame["bucket"], "value": frame[column].astype(float)})
        future = pd.DataFrame(
            {
                "bucket": fc["timestamp"],
                "forecast": fc["forecast"],
                "lower": fc["lower"],
                "upper": fc["upper"],
            }
        )
        evidence = pd.concat([history, future], ignore_index=True)
        if limit is not None:
            evidence["threshold"] = limit
        out.append(
            Insight(
                kind="forecast",
                area="business" if column == "data_processed_gb" else "performance",
                kpi=kpi,
                status=status,  # type: ignore[arg-type]
                severity=severity,  # type: ignore[arg-type]
                score=0.9 if status == "firing" else 0.1,
                message=message,
                method=result.method,
                baseline=f"{result.history_points} complete days of history",
                recommendation=recommendation,
                details={
                    "limit": limit,
                    "crossing": None if result.crossing is None else result.crossing.isoformat(),
                    "crossing_upper": None
                    if result.crossing_upper is None
                    else result.crossing_upper.isoformat(),
                    "level": result.level,
                },
                evidence=evidence,
            )
        )
    return out
