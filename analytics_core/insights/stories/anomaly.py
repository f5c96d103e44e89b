"""Anomaly stories: each watched metric's episodes of unusual values against its
seasonal baseline, with what drove them."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial

import numpy as np
import pandas as pd

from analytics_core.config import Config
from analytics_core.context import QueryContext
from analytics_core.filters import Filters
from analytics_core.insights import anomalies
from analytics_core.insights.model import Insight, evidence_frame
from analytics_core.insights.stories.common import (
    BUCKET_WIDTH,
    WATCHED,
    WATCHED_RESOURCES,
    Metric,
    capitalized,
    complete_buckets,
    since_first_activity,
)
from analytics_core.kpis import KPIS, area_of, bucket_values, format_kpi, is_missing
from analytics_core.queries.common import bucket_end
from analytics_core.runtime import offload
from analytics_core.sources.areas import Sources

# How much history before the range the anomaly detector learns from.
HOURLY_HISTORY = timedelta(days=28)
DAILY_HISTORY = timedelta(days=180)


def _start(filters: Filters) -> pd.Timestamp:
    return pd.Timestamp(filters.start)


def history_filters(filters: Filters) -> Filters:
    """The range with the history its anomalies are judged against: 28 days by hour for
    ranges up to 31 days, else 180 days by day."""
    hourly = filters.length <= timedelta(days=31)
    return replace(
        filters,
        start=filters.start - (HOURLY_HISTORY if hourly else DAILY_HISTORY),
        granularity="hour" if hourly else "day",
    )


@dataclass(frozen=True)
class Scoring:
    """One watched metric's complete history buckets, their values and anomaly scores."""

    metric: Metric
    frame: pd.DataFrame
    values: pd.Series
    scored: pd.DataFrame


def score(metric: Metric, frame: pd.DataFrame, sensitivity: float, step: pd.Timedelta) -> Scoring:
    """The anomaly scores of ``metric`` over its trend ``frame`` (complete buckets only,
    from the first activity on): a module-level function of plain values, so that it can
    run on the worker process."""
    frame = since_first_activity(complete_buckets(frame), metric.series)
    values = bucket_values(frame, metric.kpi)
    scored = anomalies.detect(frame["bucket"], values, sensitivity=sensitivity, step=step)
    return Scoring(metric, frame, values, scored)


def start_scoring(
    config: Config, ctx: QueryContext, frames: dict[str, pd.DataFrame]
) -> list[Future[Scoring]]:
    """:func:`score` for every watched metric over ``frames`` (the trends over
    :func:`history_filters`), handed to the worker process where one runs
    (:func:`analytics_core.runtime.offload`): a page starts them as soon as its history
    is read, while its other queries run. Only buckets complete by ``ctx.now`` are
    scored or used as history."""
    step = BUCKET_WIDTH[history_filters(ctx.filters).granularity]
    sensitivity = config.insights.sensitivity
    watched = [*WATCHED, *(WATCHED_RESOURCES if frames.get("resources_trend") is not None else ())]
    return [offload(score, metric, frames[metric.series], sensitivity, step) for metric in watched]


def metric_anomalies(
    sources: Sources,
    ctx: QueryContext,
    current: dict[str, float | int | None],
    endpoints: pd.DataFrame,
    scorings: list[Future[Scoring]],
) -> list[Insight]:
    """The anomaly stories of :func:`start_scoring`'s scores; ``endpoints``: the range's
    endpoint shares, the usual picture an episode is set against."""
    filters = ctx.filters
    history = history_filters(filters)
    out: list[Insight] = []
    pending: list[tuple[Insight, Callable[[], tuple[str | None, str | None]]]] = []
    learning: dict[str, list[str]] = {}
    for scoring in scorings:
        done = scoring.result()
        metric, frame, values, scored = done.metric, done.frame, done.values, done.scored
        in_range = (frame["bucket"] >= _start(filters)).to_numpy()
        window = scored[in_range].reset_index(drop=True)
        buckets = frame["bucket"][in_range].reset_index(drop=True)
        if window.empty or (window["state"] != anomalies.SCORED).all():
            if values[in_range].notna().any():
                learning.setdefault(area_of(metric.kpi), []).append(metric.label)
            continue
        story = _anomaly_insight(sources, metric, ctx, history, window, buckets, current, endpoints)
        if story is not None:
            pending.append(story)
    # Each story's recommendation reads its episode's own breakdown: those queries at once.
    answers = sources.run_all([recommend for _, recommend in pending])
    for (insight, _), (recommendation, endpoint) in zip(pending, answers, strict=True):
        details = {**insight.details, "endpoint": endpoint}
        out.append(replace(insight, recommendation=recommendation, details=details))
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
) -> tuple[Insight, Callable[[], tuple[str | None, str | None]]] | None:
    """The metric's strongest episode in ``window`` as an insight without its
    recommendation, and the call that reads the episode's breakdown and gives the
    recommendation with the endpoint it singles out (run by the caller, alongside the
    other stories' calls)."""
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
        f"{capitalized(metric.label)} was unusually {'high' if higher else 'low'} "
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
    recommend = partial(
        _anomaly_recommendation,
        sources,
        metric,
        ctx.with_filters(episode),
        ctx,
        higher,
        current.get("p95_ms"),
        endpoints,
    )
    story = Insight(
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
        recommendation=None,  # filled in by the caller, from recommend()
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
            "endpoint": None,  # the endpoint that drove it, when one did (from recommend())
        },
        evidence=evidence,
    )
    return story, recommend


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
