"""Asking Prometheus through ``prometheus-api-client``, with the config's timeout, auth
and TLS settings, every failure turned into one :class:`PrometheusUnavailable` that says
what went wrong (the caller falls back to the request log and shows the message)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import datetime

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from requests import RequestException
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import Timeout
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util.retry import Retry

from analytics_core.config import Prometheus


class PrometheusUnavailable(Exception):
    """Prometheus could not answer: unreachable, slower than the timeout, or an error."""


@dataclass(frozen=True)
class Client:
    """One Prometheus server and how to ask it."""

    url: str
    timeout_seconds: float
    connection: PrometheusConnect

    def vector(self, promql: str, at: datetime) -> list[dict]:
        """The instant vector of ``promql`` evaluated at ``at``."""
        return self._ask(
            lambda: self.connection.custom_query(promql, params={"time": at.timestamp()})
        )

    def scalar(self, promql: str, at: datetime) -> float | None:
        """The one value of ``promql`` at ``at`` (an aggregate), None when it has none
        (no series matched, or NaN: nothing to divide)."""
        result = self.vector(promql, at)
        if not result:
            return None
        value = float(result[0]["value"][1])
        return value if math.isfinite(value) else None  # NaN, ±Inf: nothing to say

    def series(
        self, promql: str, first: datetime, last: datetime, step_seconds: int, by: tuple = ()
    ) -> dict[tuple[str, ...], dict[float, float]]:
        """The values of ``promql`` at ``first``, ``first + step`` ... ``last``: per series
        (its ``by`` label values), keyed by Unix time (absent where it has none)."""
        result = self._ask(
            lambda: self.connection.custom_query_range(promql, first, last, f"{step_seconds}s")
        )
        out: dict[tuple[str, ...], dict[float, float]] = {}
        for series in result or []:
            key = tuple(series["metric"].get(label, "") for label in by)
            # Keyed by whole seconds: the client sends start and end rounded to them.
            values = {round(float(t)): float(v) for t, v in series["values"]}
            out[key] = {t: v for t, v in values.items() if math.isfinite(v)}
        return out

    def _ask(self, call):
        try:
            return call()
        except (Timeout, RequestsConnectionError) as exc:
            if isinstance(exc, RequestsConnectionError) and not _timed_out(exc):
                raise PrometheusUnavailable(
                    f"Prometheus at {self.url} is unreachable ({_reason(exc)})"
                ) from None
            raise PrometheusUnavailable(
                f"Prometheus at {self.url} did not answer within {self.timeout_seconds:g} s"
            ) from None
        except _PartialAnswer as exc:
            raise PrometheusUnavailable(
                f"Prometheus at {self.url} gave a partial answer ({exc})"
            ) from None
        except PrometheusApiClientException as exc:
            raise PrometheusUnavailable(f"Prometheus at {self.url} answered {exc}") from None
        except (RequestException, ValueError, KeyError) as exc:
            raise PrometheusUnavailable(
                f"Prometheus at {self.url} gave no usable answer ({exc})"
            ) from None


def _timed_out(exc: Exception) -> bool:
    """Whether a connection error is a timeout (with no retries, urllib3's timeout comes
    wrapped in a MaxRetryError)."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    # A refused connection is a NewConnectionError, which urllib3 derives from its timeout.
    return isinstance(reason, Urllib3Timeout) and not isinstance(reason, NewConnectionError)


def _reason(exc: Exception) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    return text.rsplit(": ", 1)[-1].rstrip("')\"") or type(exc).__name__


def connect(settings: Prometheus) -> Client:
    """A client for ``settings`` (the URL must be set: the config requires it when
    Prometheus is enabled). One try per question: a fallback must not wait for retries."""
    if not settings.url:
        raise PrometheusUnavailable("data_sources.prometheus.url is not set")
    headers = None
    if settings.bearer_token_env:
        headers = {"Authorization": f"Bearer {os.environ.get(settings.bearer_token_env, '')}"}
    auth = None
    if settings.basic_auth_user_env:
        auth = (
            os.environ.get(settings.basic_auth_user_env, ""),
            os.environ.get(settings.basic_auth_password_env or "", ""),
        )
    session = requests.Session()
    session.verify = settings.verify_tls
    # The client library returns a partial answer's data and drops its warnings.
    session.hooks["response"].append(_refuse_partial_answers)
    connection = PrometheusConnect(
        url=settings.url.rstrip("/"),
        headers=headers,
        auth=auth,
        retry=Retry(total=0),
        session=session,
        timeout=settings.timeout_seconds,
    )
    return Client(settings.url, settings.timeout_seconds, connection)


class _PartialAnswer(Exception):
    pass


def _refuse_partial_answers(response: requests.Response, *args, **kwargs) -> None:
    """A successful answer with ``warnings`` about its data (a partial result: a remote
    storage or a shard that did not answer) is not taken as the whole truth. Notes on
    the query's own evaluation ("PromQL info: ..." / "PromQL warning: ...", e.g. a
    histogram fixed for monotonicity) are not about missing data and pass."""
    if response.status_code != 200 or b'"warnings"' not in response.content:
        return
    try:
        warnings = response.json().get("warnings") or []
    except ValueError:
        return
    partial = [str(w) for w in warnings if not str(w).startswith("PromQL ")]
    if partial:
        raise _PartialAnswer("; ".join(partial))
