"""Bottleneck stories: an endpoint or algorithm carrying far more of the slow
requests, errors, execution time or failures than of the traffic, or a share that grew
since the previous period."""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import Future

import pandas as pd

from analytics_core.context import QueryContext
from analytics_core.insights import compare
from analytics_core.insights.model import Insight
from analytics_core.kpis import is_missing
from analytics_core.runtime import run_now
from analytics_core.sources.areas import Sources

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
    now, before = run_now(lambda: current), run_now(lambda: previous)
    return combine_shares(*(f.result() for f in share_queries(run_now, sources, ctx, now, before)))


def share_queries(
    run: Callable[..., Future],
    sources: Sources,
    ctx: QueryContext,
    current: Future,
    previous: Future | None,
) -> tuple[Future, Future, Future, Future]:
    """The four share queries behind :func:`combine_shares` (endpoints now and before,
    algorithms now and before), submitted to ``run`` (a pool's ``submit``, or
    :func:`run_now`). The endpoint shares count requests above their period's p95, from
    the ``current`` and ``previous`` KPIs (futures submitted before: no deadlock on a FIFO
    pool); no previous KPIs, no threshold."""
    perf, det, before = sources.performance, sources.detection, ctx.previous()

    def endpoints(period: QueryContext, kpis: Future | None) -> pd.DataFrame:
        p95 = kpis.result().get("p95_ms") if kpis is not None else None
        return perf.endpoint_shares(period, p95)  # type: ignore[arg-type]

    # The algorithm shares first: they wait for nothing, so a worker free early runs them.
    algos, algos_before = run(det.algorithm_shares, ctx), run(det.algorithm_shares, before)
    return (run(endpoints, ctx, current), run(endpoints, before, previous), algos, algos_before)


def combine_shares(
    endpoints: pd.DataFrame,
    endpoints_before: pd.DataFrame,
    algos: pd.DataFrame,
    algos_before: pd.DataFrame,
) -> dict[str, pd.DataFrame]:
    """The bottleneck tables from the four frames of :func:`share_queries`."""
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
        # Column names as in the bottleneck tables: the UI labels them, exports stay
        # machine-readable.
        evidence = tables[table_name][[key, traffic, share, f"{share}_before"]]
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
                evidence=evidence.reset_index(drop=True),
            )
        )
    return out
