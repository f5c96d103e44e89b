"""Causal, seasonal and robust anomaly scores for one metric series.

:func:`detect` scores every point against a baseline forecast made only from the
points before it: the result for a point never changes when later points arrive,
so it can raise a live alert.

How a point at time ``t`` is scored
-----------------------------------
1. **Grid.** The sampling step is the median gap between timestamps, snapped to a
   round duration (1 s ... 1 day) when within 25% of one. Each point is placed on
   that time grid by its timestamp, not its index, so missing points and jittered
   timestamps keep their seasonal phase (points sharing a slot are averaged for
   the history).
2. **Candidate baselines**, each from grid slots strictly before ``t``:

   - *level*: the median of the last :data:`LEVEL_WINDOW` slots (no seasonality);
   - *seasonal*, for the daily season (steps that divide a day) and the weekly one
     (from two weeks of history on), or the one season ``period``: a seasonal
     offset, the median over the last :data:`SEASONS` seasons of the same-phase
     deviation from the one-season median around it (lightly smoothed across
     neighbouring phases), plus the recent level, the median of the last
     :data:`LEVEL_WINDOW` deseasonalised values. A level shift is absorbed once it
     fills half that window; the offsets themselves are level-free.
   - *found season*: the same for a period not tied to the clock (e.g. a 37-step
     cycle), the highest clear autocorrelation peak of the last
     :data:`PERIOD_SPAN` slots, looked for every :data:`PERIOD_EVERY` slots and used
     until the next look (so from the data before, never after); one within
     :data:`PERIOD_NEAR` of a clock season is ignored as that season.

3. **Scale.** For each baseline, from its own past residuals: ``1.4826 *`` their
   median absolute value over the last :data:`SCALE_WINDOW` slots (or one season,
   if longer) -- the MAD about zero -- but never below the :data:`TAIL_QUANTILE`
   quantile of the absolute residuals over the last :data:`TAIL_WINDOW` slots
   divided by the value that quantile has for Gaussian residuals (2.58 for 0.99).
   For Gaussian residuals both estimate the standard deviation; for the
   heavy-tailed, spiky residuals of operational metrics the second keeps routine
   spikes from flagging (at the cost of less sensitivity for a while after a large
   incident). Of the baselines with a scale, the one whose MAD is smallest at
   ``t`` (the one that has forecast best lately) is used; a seasonal one competes
   once :data:`MIN_RESIDUALS_TO_SWITCH` residuals back it. The scale is floored so
   that a flat series gives no huge scores for tiny changes: never below
   :data:`RELATIVE_FLOOR` times the typical absolute level, nor below the smallest
   nonzero change between consecutive values seen so far (the data's resolution,
   e.g. 1 for counts). After an always-identical history (e.g. all zeros) any
   change scores 1.
4. **Sustained deviations** (level shifts, drifts, a cycle gone flat), which the
   fast level baseline absorbs within half a day: for each of
   :data:`SUSTAINED_WINDOWS` ``w``, the median of the last ``w`` slots against the
   median of the ``4w`` slots before them (both deseasonalised by the first season's
   offset), as a z against that difference's own past spread, divided by
   :data:`SUSTAINED_MARGIN`. Medians, so isolated spikes of bursty series do not
   move them.
5. **Score.** ``z = max(|value - expected| / scale, sustained z)``;
   ``score = z / (z + sensitivity)`` in [0, 1], so ``score >= 0.5`` exactly when
   ``z >= sensitivity``, which flags the point (``is_anomaly``). ``lower``/``upper``
   are ``expected -/+ sensitivity * scale``: every point outside is flagged; one
   inside is flagged only on sustained evidence.
6. **Alarm.** ``alarm`` marks the first flag of each episode: a flagged point with no
   flagged point within :data:`REFRACTORY` (3 h, and at least 3 sampling steps)
   before it, so one incident raises one alarm however its flags flicker.
   Under Gaussian residuals 3 flags 2.7 normal points per 1,000 and 4 flags 0.06;
   ``bench/INSIGHTS.md`` measures the trade-off on labelled production metrics.

Until :data:`MIN_HISTORY` points have been seen, and until a baseline and
:data:`MIN_RESIDUALS` past residuals exist (e.g. again right after a gap longer
than the level window), a point is ``"learning"``: no expected value, no score,
never a flag. A NaN value (or NaT timestamp) is ``"missing"``: never scored or
flagged, though ``expected``/``lower``/``upper`` still give the forecast for its
time when there is one.

Vectorised over the grid (rolling medians and quantiles), so the cost is
O(n log window); never imports streamlit.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

LEARNING, SCORED, MISSING = "learning", "scored", "missing"
COLUMNS = (
    "timestamp", "value", "expected", "lower", "upper", "score", "is_anomaly", "alarm", "state"
)  # fmt: skip

#: Points seen before the first score.
MIN_HISTORY = 24
#: Seasons of same-phase history the seasonal offset is the median of ...
SEASONS = 3
#: ... and how many of them must be present for that seasonal baseline.
MIN_SEASONS = 2
#: Smoothing of the seasonal offset across neighbouring phases, as a fraction of the period.
PHASE_SMOOTHING = 1 / 96
#: Slots of the recent level: how fast a level shift is absorbed.
LEVEL_WINDOW = 24
#: Past residuals (slots) the MAD is taken over: at least this many, and one season.
SCALE_WINDOW = 168
#: Past residuals needed before a scale (and so a score) exists.
MIN_RESIDUALS = 12
#: ... and before a seasonal baseline may replace the level baseline.
MIN_RESIDUALS_TO_SWITCH = 72
#: Heavy tails: quantile of the absolute residuals the scale is also held to ...
TAIL_QUANTILE = 0.99
#: ... over this many past slots (or the MAD window, if longer).
TAIL_WINDOW = 720
#: Sustained-deviation windows (slots): the median of the last ``w`` deseasonalised
#: values against the median of the ``SUSTAINED_REFERENCE * w`` slots before them.
#: One day and four days of hourly data; 2 h and 8 h of 5-minute data.
SUSTAINED_WINDOWS = (24, 96)
SUSTAINED_REFERENCE = 4
#: Past values of each window's statistic its own scale is taken from ...
SUSTAINED_CALIBRATION = 2000
#: ... and how much more than a single point's z it must reach: overlapping windows give
#: few independent past values, so their tail is estimated less surely.
SUSTAINED_MARGIN = 1.3
#: An alarm is a flagged point with no flagged point this long before it (and at least
#: :data:`REFRACTORY_STEPS` sampling steps): one incident, one alarm.
REFRACTORY = pd.Timedelta("3h")
REFRACTORY_STEPS = 3
#: A season found in the data (autocorrelation peak), looked for every this many slots
#: in the last PERIOD_SPAN slots before, between PERIOD_MIN and PERIOD_MAX slots long ...
PERIOD_EVERY = 1000
PERIOD_SPAN = 4096
PERIOD_MIN, PERIOD_MAX = 4, 2000
#: ... with an autocorrelation of at least this much, rising this much above the lowest
#: at smaller lags; within PERIOD_NEAR of a clock season it is that season.
PERIOD_ACF = 0.4
PERIOD_NEAR = 0.1
#: The scale is never below this fraction of the typical absolute level.
RELATIVE_FLOOR = 1e-3
MAD_TO_SIGMA = 1.4826

_NICE_STEPS = tuple(
    pd.Timedelta(s).value
    for s in (
        *("1s", "2s", "5s", "10s", "15s", "20s", "30s"),
        *("1min", "2min", "5min", "10min", "15min", "20min", "30min"),
        *("1h", "2h", "3h", "4h", "6h", "8h", "12h", "1D"),
    )
)
_DAY_NS = pd.Timedelta("1D").value
_SECOND_NS = pd.Timedelta("1s").value


def detect(
    timestamps: Iterable[Any] | pd.Series | pd.Index,
    values: Sequence[float] | np.ndarray | pd.Series,
    sensitivity: float = 3.0,
    period: int | None = None,
    step: pd.Timedelta | None = None,
) -> pd.DataFrame:
    """Score each point of a series against a causal, seasonal, robust baseline.

    Args:
        timestamps: one per value, anything :func:`pandas.to_datetime` accepts.
            They need not be sorted nor regular: each point is placed on the time
            grid by its timestamp, so the order given does not matter, and rows
            come back in input order. Time-zone-aware timestamps are placed on the
            grid in UTC; NaT rows are "missing".
        values: the metric; NaN, None and +/-inf are missing points.
        sensitivity: robust z at which a point is flagged (> 0); higher flags less.
        period: season length in sampling steps, replacing the inferred daily and
            weekly seasons (e.g. for a cycle unrelated to the clock).
        step: the sampling step when the caller knows it (e.g. the bucket width);
            otherwise it is inferred from the first :data:`MIN_HISTORY` + 1 points
            only, so that later points cannot change an earlier point's score.

    Returns:
        One row per input row, in input order, with the columns :data:`COLUMNS`:
        ``timestamp`` and ``value`` as given (value as float), ``expected`` the
        forecast from the past, ``lower``/``upper`` the band inside which the
        point is not flagged, ``score`` in [0, 1] (NaN unless scored),
        ``is_anomaly`` (``score >= 0.5``; False unless scored), ``alarm`` (the first
        flag of each episode, see the module doc) and ``state``, one
        of :data:`LEARNING`, :data:`SCORED`, :data:`MISSING`.

    Raises:
        ValueError: lengths differ, a bad ``sensitivity``/``period``, or
            timestamps so sparse for their step that the grid would be huge.
    """
    if not np.isfinite(sensitivity) or sensitivity <= 0:
        raise ValueError(f"sensitivity must be a positive number, got {sensitivity!r}")
    if period is not None and (int(period) != period or period < 2):
        raise ValueError(f"period must be an integer >= 2 (sampling steps), got {period!r}")
    ts = pd.DatetimeIndex(pd.to_datetime(timestamps))
    x = pd.to_numeric(pd.Series(values)).to_numpy(dtype=float, na_value=np.nan)
    if len(ts) != len(x):
        raise ValueError(f"{len(ts)} timestamps but {len(x)} values")
    x = np.where(np.isfinite(x), x, np.nan)

    n = len(x)
    nan = np.full(n, np.nan)
    out = pd.DataFrame(
        {
            "timestamp": ts,
            "value": x,
            "expected": nan,
            "lower": nan,
            "upper": nan,
            "score": nan,
            "is_anomaly": np.zeros(n, dtype=bool),
            "alarm": np.zeros(n, dtype=bool),
            "state": pd.array(np.where(np.isnan(x) | ts.isna(), MISSING, LEARNING), "string"),
        }
    )
    placed = np.flatnonzero(~ts.isna())
    t_ns = _utc_ns(ts[placed])
    if len(np.unique(t_ns)) < 2:
        return out

    if step is not None:
        step_ns = int(pd.Timedelta(step).as_unit("ns").value)
        if step_ns <= 0:
            raise ValueError(f"step must be a positive duration, got {step!r}")
        step = step_ns
    else:
        step = _infer_step(np.unique(t_ns)[: MIN_HISTORY + 1])
    abs_slot = np.rint(t_ns / step).astype(np.int64)
    slot = abs_slot - abs_slot.min()
    grid_len = int(slot.max()) + 1
    if grid_len > max(50 * len(placed), 2_000_000):
        raise ValueError(
            f"timestamps span {grid_len:,} steps of {pd.Timedelta(step)} for "
            f"{len(placed):,} points: too sparse to be one series"
        )
    xv = x[placed]
    g = _grid(slot, xv, grid_len)
    expected, scale, history, offset, floor = _fit(g, _periods(step, period))
    sustained = _sustained(g - offset, floor)[slot]
    expected, scale, history = expected[slot], scale[slot], history[slot]

    known = ~np.isnan(expected) & ~np.isnan(scale) & (history >= MIN_HISTORY)
    scored = known & ~np.isnan(xv)
    dev = np.abs(xv - expected)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(scale > 0, dev / scale, np.where(dev > 0, np.inf, 0.0))
        z = np.fmax(z, sustained)
        score = np.where(np.isinf(z), 1.0, z / (z + sensitivity))
    score = np.where(scored, score, np.nan)
    out.loc[placed, "expected"] = np.where(known, expected, np.nan)
    out.loc[placed, "lower"] = np.where(known, expected - sensitivity * scale, np.nan)
    out.loc[placed, "upper"] = np.where(known, expected + sensitivity * scale, np.nan)
    out.loc[placed, "score"] = score
    flags = scored & (score >= 0.5)
    out.loc[placed, "is_anomaly"] = flags
    out.loc[placed, "alarm"] = _alarms(t_ns, flags, max(REFRACTORY.value, REFRACTORY_STEPS * step))
    out.loc[placed[scored], "state"] = SCORED
    return out


def _acf_period(x: np.ndarray) -> int | None:
    """The lag (slots) of the highest autocorrelation peak of ``x``, if it is a clear one.

    A peak is a local maximum of the autocorrelation, between :data:`PERIOD_MIN` and
    :data:`PERIOD_MAX` slots and at most a third of ``x`` (three cycles seen), that
    reaches :data:`PERIOD_ACF` and rises that much above the lowest value at smaller
    lags: a trend or a level shift (slowly decaying autocorrelation) has none. Missing
    slots are filled with the median.
    """
    if np.isnan(x).all():
        return None
    x = np.where(np.isnan(x), np.nanmedian(x), x)
    n = len(x)
    hi = min(PERIOD_MAX, n // 3)
    if hi <= PERIOD_MIN + 1:
        return None
    x = x - x.mean()
    f = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(f * np.conj(f))[: hi + 2]
    if acf[0] <= 0:
        return None
    acf = acf / acf[0]
    lags = np.arange(PERIOD_MIN, hi + 1)
    peak = (acf[lags] > acf[lags - 1]) & (acf[lags] >= acf[lags + 1])
    low = np.minimum.accumulate(acf)[lags]
    good = peak & (acf[lags] >= PERIOD_ACF) & (acf[lags] - low >= PERIOD_ACF)
    if not good.any():
        return None
    cand = lags[good]
    return int(cand[np.argmax(acf[cand])])


def _found_season(g: np.ndarray, clock: list[int]) -> tuple[np.ndarray, np.ndarray] | None:
    """The seasonal baseline of a season found in the data (module doc, step 2), or None.

    Every :data:`PERIOD_EVERY` slots the period is looked for (:func:`_acf_period`) in
    the last :data:`PERIOD_SPAN` slots before that checkpoint, and used until the next
    one: a slot's baseline depends only on earlier slots. A period within
    :data:`PERIOD_NEAR` of a clock season is that season, already a candidate.
    """
    n = len(g)
    expected, offset = np.full(n, np.nan), np.full(n, np.nan)
    fitted: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for c in range(PERIOD_EVERY, n, PERIOD_EVERY):
        p = _acf_period(g[max(0, c - PERIOD_SPAN) : c])
        if p is None or any(abs(p - q) <= max(1, PERIOD_NEAR * q) for q in clock):
            continue
        if p not in fitted:
            fitted[p] = _seasonal(g, p)
        e, o = fitted[p]
        expected[c : c + PERIOD_EVERY] = e[c : c + PERIOD_EVERY]
        offset[c : c + PERIOD_EVERY] = o[c : c + PERIOD_EVERY]
    return (expected, offset) if fitted else None


def _utc_ns(ts: pd.DatetimeIndex) -> np.ndarray:
    if ts.tz is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.as_unit("ns").asi8.copy()


def _infer_step(t_ns: np.ndarray) -> int:
    """Median positive gap (ns), snapped to a round duration within 25% of it."""
    raw = float(np.median(np.diff(np.unique(t_ns))))
    nice = np.asarray(_NICE_STEPS, dtype=float)
    best = nice[np.argmin(np.abs(np.log(nice / raw)))]
    if abs(np.log(best / raw)) <= np.log(1.25):
        return int(best)
    return int(round(raw / _SECOND_NS)) * _SECOND_NS if raw >= _SECOND_NS else max(int(raw), 1)


def _periods(step: int, period: int | None) -> list[int]:
    """Season lengths in steps: ``[period]``, else daily then weekly when they fit."""
    if period is not None:
        return [int(period)]
    if step == _DAY_NS:
        return [7]
    if _DAY_NS % step or _DAY_NS // step < 4:
        return []
    return [_DAY_NS // step, 7 * (_DAY_NS // step)]


def _grid(slot: np.ndarray, xv: np.ndarray, length: int) -> np.ndarray:
    """Values on the regular grid: the mean of the points in a slot, NaN when none."""
    ok = ~np.isnan(xv)
    total = np.bincount(slot[ok], weights=xv[ok], minlength=length)
    count = np.bincount(slot[ok], minlength=length)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _shift(a: np.ndarray, k: int) -> np.ndarray:
    """``a`` delayed by ``k`` slots (position s holds a[s - k])."""
    out = np.full(len(a), np.nan)
    if k < len(a):
        out[k:] = a[: len(a) - k]
    return out


def _rolling_median(a: np.ndarray, window: int, min_periods: int, center: bool = False):
    roll = pd.Series(a).rolling(window, min_periods=min_periods, center=center)
    return roll.median().to_numpy()


def _past_median(a: np.ndarray, window: int, min_periods: int) -> np.ndarray:
    """Median of the last ``window`` slots strictly before each slot."""
    return _rolling_median(_shift(a, 1), window, min_periods)


def _seasonal(g: np.ndarray, p: int) -> np.ndarray:
    """Recent deseasonalised level plus the same-phase offset of the last seasons."""
    # The centred one-season median at slot u uses slots up to u + p/2: read only at
    # u = s - k*p (k >= 1), it stays strictly before s. Same for the phase smoothing.
    local = _rolling_median(g, p, max(p // 2, 1), center=True)
    dev = g - local
    h = min(int(round(p * PHASE_SMOOTHING)), (p - 1) // 2)
    if h:
        dev = _rolling_median(dev, 2 * h + 1, 1, center=True)
    lagged = np.vstack([_shift(dev, k * p) for k in range(1, SEASONS + 1)])
    enough = (~np.isnan(lagged)).sum(axis=0) >= MIN_SEASONS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        offset = np.where(enough, np.nanmedian(lagged, axis=0), np.nan)
    level = _past_median(g - offset, LEVEL_WINDOW, LEVEL_WINDOW // 4)
    return level + offset, offset


def _scale(resid: np.ndarray, window: int, min_residuals: int) -> tuple[np.ndarray, np.ndarray]:
    """Scale and MAD of the residuals of the slots strictly before each slot (module doc)."""
    past = pd.Series(_shift(np.abs(resid), 1))
    mad = MAD_TO_SIGMA * past.rolling(window, min_periods=min_residuals).median().to_numpy()
    tail = past.rolling(max(window, TAIL_WINDOW), min_periods=min_residuals)
    gauss = NormalDist().inv_cdf((1 + TAIL_QUANTILE) / 2)  # 2.58 for 0.99
    return np.fmax(mad, tail.quantile(TAIL_QUANTILE).to_numpy() / gauss), mad


def _fit(g: np.ndarray, periods: list[int]):
    """Expected value, floored scale, count of earlier values, seasonal offset (0 when
    there is none) and scale floor, for every slot."""
    n = len(g)
    candidates = [(_past_median(g, LEVEL_WINDOW, 1), np.zeros(n))]
    candidates += [_seasonal(g, p) for p in periods if n > MIN_SEASONS * p]
    found = _found_season(g, periods)
    if found is not None:
        candidates.append(found)
    # The sustained windows compare values across days, so they need one fixed seasonal
    # adjustment (the first season's), not whichever baseline forecast best at each slot.
    offset = np.nan_to_num(candidates[1][1], nan=0.0) if len(candidates) > 1 else np.zeros(n)
    window = max([SCALE_WINDOW, *periods[:1]])
    expected = np.full(n, np.nan)
    scale = np.full(n, np.nan)
    best = np.full(n, np.inf)  # MAD of the baseline in use: its typical recent error
    for i, (exp, _offset) in enumerate(candidates):
        # A seasonal baseline competes once its MAD rests on enough residuals: the
        # smallest of several noisy MADs would otherwise be biased low.
        sc, mad = _scale(g - exp, window, MIN_RESIDUALS if i == 0 else MIN_RESIDUALS_TO_SWITCH)
        better = ~np.isnan(exp) & (mad < best)  # NaN compares False
        best = np.where(better, mad, best)
        expected = np.where(better, exp, expected)
        scale = np.where(better, sc, scale)

    history = np.concatenate([[0], np.cumsum(~np.isnan(g))[:-1]])
    level = np.nan_to_num(_past_median(np.abs(g), window, 1))
    floor = np.maximum(RELATIVE_FLOOR * level, _past_resolution(g))
    scale = np.where(np.isnan(scale), np.nan, np.maximum(scale, floor))
    return expected, scale, history, offset, floor


def _past_resolution(g: np.ndarray) -> np.ndarray:
    """Smallest nonzero change between consecutive values before each slot (0 if none)."""
    res = np.zeros(len(g))
    pos = np.flatnonzero(~np.isnan(g))
    if len(pos) < 2:
        return res
    change = np.abs(np.diff(g[pos]))
    change[change == 0] = np.inf
    smallest = np.minimum.accumulate(change)  # smallest[j]: changes up to the value at pos[j+1]
    # The change into pos[j + 1] is known to the slots after it.
    j = np.searchsorted(pos[1:] + 1, np.arange(len(g)), side="right") - 1
    res[j >= 0] = smallest[j[j >= 0]]
    res[np.isinf(res)] = 0.0
    return res


def _sustained(y: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """Largest z of a sustained shift ending at each slot, over :data:`SUSTAINED_WINDOWS`.

    For window ``w``: ``d`` = |median of the last ``w`` slots before this one - median
    of the ``SUSTAINED_REFERENCE * w`` before those|, scaled like the point
    residuals (MAD, held to the 99th percentile) but from ``d``'s own values ending
    ``w`` slots back, so each window is calibrated to how much this series' medians
    wander. Medians, not means, so that isolated spikes do not move them: only a shift
    covering half the window does (a level shift, a drift, a flat line in a cycle).
    """
    out = np.zeros(len(y))
    gauss = NormalDist().inv_cdf((1 + TAIL_QUANTILE) / 2)
    for w in SUSTAINED_WINDOWS:
        # Slots strictly before each slot, like the baselines: a slot's own grid value
        # can still change (later points landing in the same slot are averaged into it).
        recent = _past_median(y, w, max(w // 2, 1))
        ref = _rolling_median(
            _shift(y, w + 1), SUSTAINED_REFERENCE * w, SUSTAINED_REFERENCE * w // 2
        )
        d = np.abs(recent - ref)
        roll = pd.Series(_shift(d, w)).rolling(SUSTAINED_CALIBRATION, min_periods=4 * w)
        mad = MAD_TO_SIGMA * roll.median().to_numpy()
        scale = np.fmax(np.fmax(mad, roll.quantile(TAIL_QUANTILE).to_numpy() / gauss), floor)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.where(~np.isnan(mad) & (scale > 0), d / scale, 0.0)
        out = np.fmax(out, np.nan_to_num(z, nan=0.0) / SUSTAINED_MARGIN)
    return out


def _alarms(t_ns: np.ndarray, flags: np.ndarray, gap_ns: int) -> np.ndarray:
    """First flag of each episode: flags with no flag in the ``gap_ns`` before them."""
    out = np.zeros(len(flags), dtype=bool)
    idx = np.flatnonzero(flags)
    if not len(idx):
        return out
    order = idx[np.argsort(t_ns[idx], kind="stable")]  # ties: the first given
    t = t_ns[order]
    out[order] = np.r_[True, np.diff(t) > gap_ns]
    return out


def alarms(
    timestamps: Iterable[Any] | pd.Series | pd.Index,
    flags: Sequence[bool] | np.ndarray,
    step: pd.Timedelta | None = None,
) -> np.ndarray:
    """The ``alarm`` column for other flags of the same series (e.g. another threshold on
    ``score``): ``step`` as :func:`detect` infers it unless given."""
    ts = pd.DatetimeIndex(pd.to_datetime(timestamps))
    flags = np.asarray(flags, dtype=bool) & ~ts.isna()
    t_ns = np.zeros(len(ts), dtype=np.int64)
    t_ns[~ts.isna()] = _utc_ns(ts[~ts.isna()])
    known = np.unique(t_ns[~ts.isna()])
    if step is not None:
        step_ns = int(pd.Timedelta(step).as_unit("ns").value)
    else:
        step_ns = _infer_step(known[: MIN_HISTORY + 1]) if len(known) > 1 else 1
    return _alarms(t_ns, flags, max(REFRACTORY.value, REFRACTORY_STEPS * step_ns))
