"""The Performance area from Prometheus, behind the same protocol as the request log's
(:class:`analytics_core.sources.areas.PerformanceSource`), and the choice between them
(``data_sources.performance_source``): ``sql``, ``prometheus``, or ``auto`` (Prometheus
when it is enabled and answers, else the log). A Prometheus that cannot answer is never
an error on a page: the log answers instead, and the page says why."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import pandas as pd

from analytics_core.config import DataSources, PrometheusMetrics
from analytics_core.context import QueryContext, Scope
from analytics_core.prometheus import performance, resources
from analytics_core.prometheus.client import Client, PrometheusUnavailable, connect

log = logging.getLogger(__name__)
T = TypeVar("T")
LABEL = "Prometheus"
# After a failed probe, pages use the log without asking again for this long (a server
# that drops packets would otherwise cost every page the whole timeout).
RETRY_AFTER_SECONDS = 30.0
_down_until: dict[str, float] = {}


class _Asker:
    """Asks Prometheus, and on a failure part way through a page answers from the
    fallback instead: the failure is kept (:attr:`failures`: the page says it and is not
    cached) and Prometheus is not asked again for a while."""

    label = LABEL

    def __init__(self, client: Client, metrics: PrometheusMetrics):
        self.client, self.metrics = client, metrics
        self.failures: list[str] = []

    def _ask(self, name: str, ask: Callable[[], T], fallback: Callable[[], T]) -> T:
        if _down_until.get(self.client.url, 0.0) > time.monotonic():
            return fallback()  # failed earlier in this page: do not wait again
        try:
            return ask()
        except PrometheusUnavailable as exc:  # went away since the probe
            log.warning("%s; %s from the fallback", exc, name)
            _down_until[self.client.url] = time.monotonic() + RETRY_AFTER_SECONDS
            self.failures.append(str(exc))
            return fallback()


class PrometheusPerformance(_Asker):
    def __init__(self, client: Client, metrics: PrometheusMetrics, log_source):
        super().__init__(client, metrics)
        self._log = log_source

    def first_event(self, scope: Scope) -> datetime | None:
        # When the platform's history began: the request log's first request (asking
        # Prometheus for its oldest sample would scan its whole retention).
        return self._log.first_event(scope)

    def _either(self, method: str, ctx: QueryContext, *args):
        """``performance.<method>`` from Prometheus, else the log's ``<method>``. Without a
        tenant label Prometheus cannot keep to a restricted scope: the log can (its rows
        carry the tenant)."""

        def from_log():
            return getattr(self._log, method)(ctx, *args)

        if not ctx.scope.unrestricted and not self.metrics.tenant_label:
            return from_log()
        ask = getattr(performance, method)
        return self._ask(method, lambda: ask(self.client, self.metrics, ctx, *args), from_log)

    def kpis(self, ctx: QueryContext) -> dict[str, float | int | None]:
        return self._either("kpis", ctx)

    def trend(self, ctx: QueryContext) -> pd.DataFrame:
        return self._either("trend", ctx)

    def by_endpoint(self, ctx: QueryContext) -> pd.DataFrame:
        return self._either("by_endpoint", ctx)

    def endpoint_shares(self, ctx: QueryContext, p95_ms: float | None) -> pd.DataFrame:
        return self._either("endpoint_shares", ctx, p95_ms)


class PrometheusResources(_Asker):
    """CPU, memory and disk (only Prometheus has them: on a failure, none)."""

    def over_time(self, ctx: QueryContext) -> dict[str, pd.DataFrame]:
        return self._ask(
            "resources", lambda: resources.resources(self.client, self.metrics, ctx), dict
        )

    def latest(self, ctx: QueryContext) -> pd.DataFrame | None:
        at = ctx.filters.observed_end(ctx.now)
        return self._ask(
            "latest resources", lambda: resources.latest(self.client, self.metrics, at), _none
        )


def _none() -> None:
    return None


@dataclass(frozen=True)
class Choice:
    performance: object  # a PerformanceSource: Prometheus or the log's
    resources: PrometheusResources | None  # None: no Prometheus to ask
    note: str | None  # what the page says about it
    failed: bool = False  # Prometheus should have answered and did not


def choose(settings: DataSources, log_source) -> Choice:
    """The Performance source to use, the resources (when Prometheus answers, whatever
    the Performance source) and what the page should say about them."""
    mode, prometheus = settings.performance_source, settings.prometheus
    if not prometheus.enabled:
        note = None
        if mode == "prometheus":
            note = (
                "data_sources.performance_source is prometheus but data_sources.prometheus "
                f"is not enabled: {_FROM_LOG}"
            )
        return Choice(log_source, None, note)
    url = prometheus.url or ""
    if _down_until.get(url, 0.0) > time.monotonic():
        note = f"Prometheus at {url} did not answer lately: {_FROM_LOG}"
        return Choice(log_source, None, note, failed=True)
    try:
        client = connect(prometheus)
        client.scalar("vector(1)", datetime.now(UTC))
    except PrometheusUnavailable as exc:
        log.warning("%s; Performance figures from the request log", exc)
        _down_until[url] = time.monotonic() + RETRY_AFTER_SECONDS
        return Choice(log_source, None, f"{exc}: {_FROM_LOG}", failed=True)
    _down_until.pop(url, None)
    found = PrometheusResources(client, prometheus.metrics)
    if mode == "sql":
        return Choice(log_source, found, f"CPU, memory and disk from Prometheus ({url}).")
    note = f"Performance figures, CPU, memory and disk from Prometheus ({url})."
    if not prometheus.metrics.tenant_label:
        note += " The tenant filter does not apply to them (no tenant label configured)."
    return Choice(PrometheusPerformance(client, prometheus.metrics, log_source), found, note)


_FROM_LOG = "Performance figures come from the request log."
