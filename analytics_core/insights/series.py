"""Input handling shared by the detectors: any timestamps and values to one clean series."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def as_series(timestamps: Sequence | pd.Series | pd.Index, values: Sequence[float]) -> pd.Series:
    """Values indexed by time, sorted, with missing times and non-finite values dropped."""
    ts = pd.to_datetime(pd.Series(np.asarray(timestamps)))
    vals = pd.to_numeric(pd.Series(np.asarray(values, dtype=object)), errors="coerce")
    if len(ts) != len(vals):
        raise ValueError(f"timestamps ({len(ts)}) and values ({len(vals)}) differ in length")
    series = pd.Series(vals.to_numpy(dtype=float), index=pd.DatetimeIndex(ts))
    series = series[series.index.notna() & np.isfinite(series.to_numpy())]
    return series.sort_index()
