"""Bottleneck shares from SQL against pandas on the fixture data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics_core.context import QueryContext
from analytics_core.filters import make_filters
from analytics_core.queries import bottlenecks
from tests.fixtures import DAYS, T0

START, END = T0.to_pydatetime(), (T0 + pd.Timedelta(days=DAYS)).to_pydatetime()
CTX = QueryContext(make_filters(START, END), END)


def test_endpoint_shares_of_slow_requests_and_errors(engine, dataset):
    r = dataset.api_requests
    p95 = float(np.percentile(r.duration_ms, 95))
    table = bottlenecks.endpoints(engine, CTX, p95).set_index("endpoint")
    slow = r[r.duration_ms > p95].groupby("endpoint").size()
    errors = r[r.status_code >= 500].groupby("endpoint").size()
    for endpoint in r.endpoint.unique():
        assert table.loc[endpoint, "slow"] == slow.get(endpoint, 0)
        assert table.loc[endpoint, "slow_share"] == pytest.approx(
            slow.get(endpoint, 0) / slow.sum()
        )
        assert table.loc[endpoint, "error_share"] == pytest.approx(
            errors.get(endpoint, 0) / errors.sum()
        )
    assert table["request_share"].sum() == pytest.approx(1.0)


def test_algorithm_shares_of_time_and_failures(engine, dataset):
    d = dataset.detection_results
    table = bottlenecks.algorithms(engine, CTX).set_index("algorithm")
    time = d.groupby("algorithm").execution_time_ms.sum()
    for algorithm, total in time.items():
        assert table.loc[algorithm, "time_share"] == pytest.approx(total / time.sum(), rel=1e-9)
        failed = ((d.algorithm == algorithm) & (d.status == "failed")).sum()
        assert table.loc[algorithm, "failed"] == failed
