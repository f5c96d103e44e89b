"""Evaluation of the anomaly detector on the labelled cloud-monitoring series.

Not a test: it measures and reports (`make eval-insights`), it asserts nothing.
Reads ``../shared/data/cloud-monitoring`` next to the project (or
``$CLOUD_MONITORING_DIR``), never copies it, and writes ``bench/INSIGHTS.md``.

Usage: python bench/eval_insights.py [--sensitivity 4.0] [--no-sweep] [--out bench/INSIGHTS.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from analytics_core.config import load_config
from analytics_core.insights.anomalies import alarms, detect

try:  # run as a script (python bench/eval_insights.py) or imported as bench.eval_insights
    from bench import nab_like
except ImportError:  # pragma: no cover
    import nab_like  # type: ignore[no-redef]

DATA_DIR = Path(
    os.environ.get(
        "CLOUD_MONITORING_DIR",
        Path(__file__).resolve().parents[2] / "shared" / "data" / "cloud-monitoring",
    )
)
OUT = Path(__file__).resolve().parent / "INSIGHTS.md"

# Event matching: a flag up to TOLERANCE points after an event's last point still finds it.
TOLERANCE = 3
# Target: overall F1 at least this much above the baseline's ...
F1_GAIN = 0.25
# ... with at most this many false alarms per 1,000 points on the unlabelled series.
MAX_FA_PER_1000 = 1.0
# The plain baseline: causal rolling median / MAD of the previous points.
BASELINE_WINDOW = 48
BASELINE_MIN_POINTS = 24
BASELINE_Z = 3.5
BASELINE_SWEEP = (3.5, 5.0, 7.0, 10.0, 15.0)
# The product's own setting (one for all series), so the evaluation measures what the
# app ships; 3.0 flags too often on these heavy-tailed metrics (see the trade-off table).
SENSITIVITY = load_config().insights.sensitivity
# Sensitivities of the trade-off table.
SWEEP = (3.0, 3.5, 4.0, 4.5, 5.0, 6.0)


@dataclass
class Counts:
    events: int = 0
    found: int = 0
    alarms: int = 0  # alarm groups on labelled series
    true_alarms: int = 0
    fa_alarms: int = 0  # alarm groups on unlabelled series
    fa_points: int = 0  # points of unlabelled series

    def add(self, other: Counts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def precision(self) -> float:
        return self.true_alarms / self.alarms if self.alarms else float("nan")

    @property
    def recall(self) -> float:
        return self.found / self.events if self.events else float("nan")

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        if np.isnan(p) or np.isnan(r):
            return 0.0 if self.events else float("nan")
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def fa_per_1000(self) -> float:
        return 1000 * self.fa_alarms / self.fa_points if self.fa_points else float("nan")


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of each run of consecutive True values."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(m.astype(np.int8)))
    return list(zip(edges[::2], edges[1::2] - 1, strict=True))


def score_series(labels: np.ndarray, flags: np.ndarray) -> Counts:
    """Event-level counts of one series (see the definitions in the report)."""
    events = runs(labels == 1)
    alarms = runs(flags)
    c = Counts()
    if not events:
        c.fa_alarms, c.fa_points = len(alarms), len(labels)
        return c
    window = np.zeros(len(labels), dtype=bool)  # event points plus the tolerance after each
    for a, b in events:
        window[a : b + TOLERANCE + 1] = True
        c.found += bool(flags[a : b + TOLERANCE + 1].any())
    c.events = len(events)
    c.alarms = len(alarms)
    c.true_alarms = sum(bool(window[a : b + 1].any()) for a, b in alarms)
    return c


def baseline_flags(values: np.ndarray, z_limit: float = BASELINE_Z) -> np.ndarray:
    return baseline_z(values) > z_limit


def baseline_z(values: np.ndarray) -> np.ndarray:
    """Plain causal rolling median / MAD of the previous BASELINE_WINDOW points."""
    padded = np.concatenate([np.full(BASELINE_WINDOW, np.nan), values[:-1]])
    windows = sliding_window_view(padded, BASELINE_WINDOW)  # row i: the points before i
    enough = (~np.isnan(windows)).sum(axis=1) >= BASELINE_MIN_POINTS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN warm-up windows
        med = np.nanmedian(windows, axis=1)
        mad = np.nanmedian(np.abs(windows - med[:, None]), axis=1)
    med, mad = np.where(enough, med, np.nan), np.where(enough, mad, np.nan)
    dev = np.abs(values - med)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = dev / (1.4826 * mad)
    z = np.where((mad == 0) & (dev == 0), 0.0, z)  # 0/0: no deviation, no flag
    return np.nan_to_num(z, nan=0.0)


# --- early-detection metric (NAB-style scoring, issue 13) -------------------------------

#: All windows of a series together cover this fraction of its points ...
NAB_WINDOW_FRACTION = 0.10
#: ... and flags in its first 15% (at most 750 points) count neither way.
NAB_PROBATION_FRACTION = 0.15
NAB_PROBATION_MAX = 750
#: Standard profile: a detected window is worth up to +1, a missed one -1, and a flag
#: outside every window -0.11 (both scaled by the sigmoid of the flag's position).
NAB_TP, NAB_FN, NAB_FP = 1.0, 1.0, 0.11


def scaled_sigmoid(y: np.ndarray | float) -> np.ndarray:
    """``2 / (1 + e^(5y)) - 1``: +0.987 at y = -1 (window start), 0 at its end, -> -1 after."""
    y = np.clip(np.asarray(y, dtype=float), -50, 50)  # exp overflow: the value is +-1 by then
    return 2.0 / (1.0 + np.exp(5.0 * y)) - 1.0


def probation(n: int) -> int:
    return min(int(NAB_PROBATION_FRACTION * n), NAB_PROBATION_MAX)


def nab_windows(labels: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of each event's window, overlapping windows merged.

    The length is 10% of the series over the number of events, centred on the event;
    an event longer than that gets a window as long as itself, so its first point is in
    it. Windows lying wholly in the probation period are dropped: no flag can count
    there, so they would score -1 for every detector, the perfect one included.
    """
    n = len(labels)
    events = runs(np.asarray(labels) == 1)
    if not events:
        return []
    length = max(int(NAB_WINDOW_FRACTION * n / len(events)), 1)
    spans = []
    for a, b in events:
        w = max(length, b - a + 1)
        start = max((a + b + 1) // 2 - w // 2, 0)
        spans.append([start, min(start + w - 1, n - 1)])
    merged = [spans[0]]
    for s, e in spans[1:]:
        if s <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    skip = probation(n)
    return [(s, e) for s, e in merged if e >= skip]


@dataclass
class Nab:
    """Raw scores of a detector, of the null detector and of the perfect one."""

    raw: float = 0.0
    null: float = 0.0
    perfect: float = 0.0
    windows: int = 0
    detected: int = 0
    false_flags: int = 0

    def add(self, other: Nab) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def score(self) -> float:
        """``100 * (raw - null) / (perfect - null)``: 100 perfect, 0 flags nothing."""
        span = self.perfect - self.null
        return 100.0 * (self.raw - self.null) / span if span else float("nan")


def nab_series(labels: np.ndarray, flags: np.ndarray) -> Nab:
    """Raw early-detection score of one series' per-point flags (see the report)."""
    n = len(labels)
    windows = nab_windows(labels)
    flags = np.asarray(flags, dtype=bool).copy()
    flags[: probation(n)] = False
    out = Nab(windows=len(windows), null=-NAB_FN * len(windows))
    # Each point's window (or -1) and the window ending last before it (or -1).
    inside = np.full(n, -1)
    before = np.full(n, -1)
    for k, (s, e) in enumerate(windows):
        inside[s : e + 1] = k
        before[e + 1 :] = k
    starts = np.array([s for s, _ in windows] + [0])
    ends = np.array([e for _, e in windows] + [0])
    width = (ends - starts + 1).astype(float)
    out.perfect = NAB_TP * float(scaled_sigmoid(-1.0)) * len(windows)
    hit = np.flatnonzero(flags)
    win = inside[hit]
    for k in range(len(windows)):
        first = hit[win == k]
        if len(first):
            y = -(ends[k] - first[0] + 1) / width[k]  # -1 on the window's first point
            out.raw += NAB_TP * float(scaled_sigmoid(y))
            out.detected += 1
        else:
            out.raw -= NAB_FN
    outside = hit[win < 0]
    prev = before[outside]
    # After a window the cost grows from 0 to 0.11 with the distance from its end;
    # before any window a flag costs the full 0.11.
    y = np.where(prev >= 0, (outside - ends[prev]) / width[prev], np.inf)
    cost = np.where(prev >= 0, -scaled_sigmoid(y), 1.0)
    out.raw -= NAB_FP * float(cost.sum())
    out.false_flags = len(outside)
    return out


#: The detector as shipped before issue 13, read from git for the comparison.
PREVIOUS_COMMIT = "48ebce17e14c337b8d17a2ee16143b0922e2a801"
#: Thresholds of the best-threshold search: on the score (in [0, 1]) ...
SCORE_THRESHOLDS = tuple(np.round(np.arange(0.30, 0.90, 0.025), 3))
# ... and on the baseline's z.
BASELINE_Z_THRESHOLDS = (2.0, 2.5, 3.0, 3.5, 4, 5, 6, 7, 8, 10, 12, 15, 20, 30)


def previous_detector():
    """``detect`` of :data:`PREVIOUS_COMMIT`, or None outside a git checkout."""
    import subprocess
    import types

    try:
        source = subprocess.run(
            ["git", "show", f"{PREVIOUS_COMMIT}:analytics_core/insights/anomalies.py"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    module = types.ModuleType("previous_anomalies")
    exec(compile(source, "previous_anomalies.py", "exec"), module.__dict__)  # noqa: S102
    return module.detect


@dataclass
class Early:
    """Early-detection scores of one method on one corpus."""

    as_flagged: Nab
    best: Nab
    best_threshold: float


def early_detection(series, runs_of, thresholds, flags_at) -> Early:
    """``runs_of[i]``: what the method returned for series i; ``flags_at(i, result, t)``
    its flags at threshold ``t`` (None: as flagged)."""
    flagged = Nab()
    for i, (_d, _n, frame) in enumerate(series):
        flagged.add(nab_series(frame["Label"].to_numpy(), flags_at(i, runs_of[i], None)))
    best, best_t = None, float("nan")
    for t in thresholds:
        total_t = Nab()
        for i, (_d, _n, frame) in enumerate(series):
            total_t.add(nab_series(frame["Label"].to_numpy(), flags_at(i, runs_of[i], t)))
        if best is None or total_t.score > best.score:
            best, best_t = total_t, t
    return Early(flagged, best, best_t)


def early_table(series, sens: float, previous) -> tuple[list[tuple[str, Early]], float]:
    """NAB-style scores of ours, the previous detector and the baseline; ours' points/s."""
    stamps = [f["TimeStamp"] for _, _, f in series]
    t0 = time.perf_counter()
    mine = [
        detect(f["TimeStamp"], f["Value"].to_numpy(dtype=float), sensitivity=sens)
        for _, _, f in series
    ]
    speed = sum(len(f) for _, _, f in series) / (time.perf_counter() - t0)

    def ours_at(i, r, t):
        if t is None:
            return r["alarm"].to_numpy()
        return alarms(stamps[i], r["score"].fillna(0).to_numpy() >= t)

    rows = [("ours: alarms", early_detection(series, mine, SCORE_THRESHOLDS, ours_at))]
    if previous is not None:
        old = [
            previous(f["TimeStamp"], f["Value"].to_numpy(dtype=float), sensitivity=sens)
            for _, _, f in series
        ]

        def old_at(i, r, t):
            return r["is_anomaly"].to_numpy() if t is None else r["score"].fillna(0) >= t

        def old_alarms_at(i, r, t):
            return alarms(stamps[i], old_at(i, r, t))

        rows.append(("previous: flags", early_detection(series, old, SCORE_THRESHOLDS, old_at)))
        rows.append(
            ("previous + alarms", early_detection(series, old, SCORE_THRESHOLDS, old_alarms_at))
        )
    zs = [baseline_z(f["Value"].to_numpy(dtype=float)) for _, _, f in series]
    rows.append(
        (
            "baseline: flags",
            early_detection(
                series,
                zs,
                BASELINE_Z_THRESHOLDS,
                lambda i, z, t: z > (BASELINE_Z if t is None else t),
            ),
        )
    )
    return rows, speed


def load_series(data_dir: Path) -> list[tuple[str, str, pd.DataFrame]]:
    files = sorted((data_dir / "series").glob("*/*.csv"))
    if not files:
        raise SystemExit(f"no series found under {data_dir / 'series'}")
    return [(f.parent.name, f.stem, pd.read_csv(f)) for f in files]


def evaluate(series, method) -> tuple[dict[str, Counts], float]:
    """Counts per domain for one method, and its total runtime in seconds."""
    per_domain: dict[str, Counts] = {}
    elapsed = 0.0
    for domain, _name, frame in series:
        values = frame["Value"].to_numpy(dtype=float)
        t0 = time.perf_counter()
        flags = method(frame["TimeStamp"], values)
        elapsed += time.perf_counter() - t0
        per_domain.setdefault(domain, Counts()).add(
            score_series(frame["Label"].to_numpy(), np.asarray(flags, dtype=bool))
        )
    return per_domain, elapsed


def ours(sensitivity: float):
    def run(timestamps, values):
        return detect(timestamps, values, sensitivity=sensitivity)["is_anomaly"].to_numpy()

    return run


def total(per_domain: dict[str, Counts]) -> Counts:
    out = Counts()
    for c in per_domain.values():
        out.add(c)
    return out


def fmt(x: float) -> str:
    return "–" if np.isnan(x) else f"{x:.2f}"


def row(label: str, method: str, c: Counts) -> str:
    found = f"{c.found}/{c.events}" if c.events else "–"
    fa = fmt(c.fa_per_1000) if c.fa_points else "–"
    return (
        f"| {label} | {method} | {fmt(c.precision)} | {fmt(c.recall)} | {fmt(c.f1)} | "
        f"{found} | {c.alarms} | {c.fa_alarms} | {fa} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensitivity", type=float, default=SENSITIVITY)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--no-sweep", action="store_true", help="skip the sensitivity table")
    args = parser.parse_args()
    sens = args.sensitivity

    t_start = time.perf_counter()
    series = load_series(DATA_DIR)
    n_points = sum(len(f) for _, _, f in series)
    ours_dom, ours_s = evaluate(series, ours(sens))
    base_dom, base_s = evaluate(series, lambda _t, v: baseline_flags(v))
    ours_all, base_all = total(ours_dom), total(base_dom)
    sweep = []
    if not args.no_sweep:
        for s in sorted({*SWEEP, sens}):
            sweep.append((s, ours_all if s == sens else total(evaluate(series, ours(s))[0])))
    previous = previous_detector()
    early_dev, speed = early_table(series, sens, previous)
    synthetic = nab_like.corpus()
    early_syn, _ = early_table(synthetic, sens, previous)
    wall = time.perf_counter() - t_start

    target_f1 = (1 + F1_GAIN) * base_all.f1
    met_f1 = ours_all.f1 >= target_f1
    met_fa = ours_all.fa_per_1000 <= MAX_FA_PER_1000
    met = met_f1 and met_fa
    labelled = [f for _, _, f in series if f["Label"].any()]
    unlabelled = [(d, n, f) for d, n, f in series if not f["Label"].any()]
    warm_up = sum(
        sum(1 for a, _b in runs(f["Label"].to_numpy() == 1) if a < BASELINE_MIN_POINTS)
        for f in labelled
    )
    gain = (ours_all.f1 / base_all.f1 - 1) * 100 if base_all.f1 else float("inf")

    lines = [
        "# Anomaly detection: evaluation",
        "",
        f"Generated by `make eval-insights` (`bench/eval_insights.py`) on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Machine: {os.cpu_count()} cores, "
        f"{platform.machine()}, Python {platform.python_version()}.",
        "",
        f"Data: the labelled cloud-monitoring development set, read in place "
        f"({len(series)} series, {n_points:,} points, hourly and per-minute): "
        f"{len(labelled)} labelled series with {ours_all.events} events, and "
        f"{len(unlabelled)} unlabelled series of "
        f"{sum(len(f) for _, _, f in unlabelled):,} points ("
        + ", ".join(f"`{d}/{n}`" for d, n, _ in unlabelled)
        + ").",
        "",
        "## Definitions",
        "",
        "- **Event**: a run of consecutive points labelled 1.",
        "- **Alarm**: a run of consecutive flagged points (one alarm however long it is).",
        f"- An event is **found** when at least one flag falls inside it or up to {TOLERANCE} "
        "points after its last point (no credit for flags before its start).",
        f"- An alarm is **true** when one of its points falls inside an event or up to "
        f"{TOLERANCE} points after one; otherwise it is a false alarm.",
        "- **Recall** = found events / events; **precision** = true alarms / alarms; "
        "**F1** = their harmonic mean. Counted on the labelled series only (series with at "
        "least one event) and pooled over series (micro average): per-domain and overall "
        "figures are ratios of summed counts.",
        "- **FA/1000**: alarms per 1,000 points on the unlabelled series (no labelled point "
        "at all, so every alarm is false), pooled over those series.",
        "- Both methods see each whole series once and are causal: a point's flag depends "
        f"only on it and earlier points. Both warm up on the first {BASELINE_MIN_POINTS} "
        f"points of a series and cannot find the {warm_up} events that start there.",
        f"- **Ours**: `analytics_core.insights.anomalies.detect(..., sensitivity={sens:g})`, "
        "the same setting for every series (no per-series or per-domain tuning); F1 and "
        "FA/1000 count its `is_anomaly` flags (every flagged point), as before issue 13.",
        f"- **Baseline**: plain rolling median / MAD of the previous {BASELINE_WINDOW} points "
        f"(scoring once {BASELINE_MIN_POINTS} of them are present); flag when "
        f"|x − median| / (1.4826·MAD) > {BASELINE_Z:g} (a zero MAD flags any deviation).",
        "",
        "## Results",
        "",
        "| domain | method | precision | recall | F1 | events found | alarms (labelled) "
        "| alarms (unlabelled) | FA/1000 (unlabelled) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for domain in sorted(ours_dom):
        lines.append(row(domain, "ours", ours_dom[domain]))
        lines.append(row(domain, "baseline", base_dom[domain]))
    lines.append(row("**overall**", "**ours**", ours_all))
    lines.append(row("**overall**", "**baseline**", base_all))
    lines += [
        "",
        f"**Target {'met' if met else 'NOT met'}** at sensitivity {sens:g}: overall F1 "
        f"{ours_all.f1:.3f} vs baseline {base_all.f1:.3f} ({gain:+.0f}%; needed ≥ "
        f"{target_f1:.3f}, +{F1_GAIN:.0%}) — {'met' if met_f1 else 'NOT met'}; "
        f"{ours_all.fa_per_1000:.2f} false alarms per 1,000 points on the unlabelled series "
        f"(needed ≤ {MAX_FA_PER_1000:g}) — {'met' if met_fa else 'NOT met'}. "
        f"The baseline has {base_all.fa_per_1000:.2f}.",
        "",
        f"Runtime: ours {ours_s:.2f} s for all {n_points:,} points "
        f"({ours_s / n_points * 1e6:.1f} µs per point, largest series "
        f"{max(len(f) for _, _, f in series):,} points); baseline {base_s:.2f} s; whole "
        f"evaluation {wall:.1f} s.",
    ]
    lines += [
        "",
        "## Early detection (NAB-style score)",
        "",
        "The issue-13 metric, on per-point flags: each event gets a window centred on it, "
        f"all windows of a series together covering {NAB_WINDOW_FRACTION:.0%} of its points "
        "(an event longer than its window gets a window as long as itself; overlapping "
        "windows merge). The earliest flag in a window scores +scaled_sigmoid(y), "
        "y = position relative to the window's end in window lengths (−1 at its start: "
        "+0.987; 0 at its end), where scaled_sigmoid(y) = 2 / (1 + e^(5y)) − 1; a window "
        f"with no flag scores −{NAB_FN:g}; a flag outside every window −{NAB_FP:g} × the "
        "sigmoid of its distance after the preceding window's end (the full 0.11 before "
        f"any window). Flags in the first {NAB_PROBATION_FRACTION:.0%} of a series (at most "
        f"{NAB_PROBATION_MAX} points) count neither way, and windows wholly inside it are "
        "dropped. Per corpus: 100 × (raw − null) / (perfect − null), null flagging nothing "
        "and perfect flagging each window's first point; the unlabelled series count too "
        "(only their false flags).",
        "",
        f"- **ours: alarms**: the `alarm` column at sensitivity {sens:g}; best threshold: "
        "`score ≥ t`, then the same alarm rule (first flag with no flag in the 3 hours, "
        "and 3 sampling steps, before it).",
        f"- **previous**: the detector before issue 13 (git `{PREVIOUS_COMMIT[:8]}`) at the "
        "same sensitivity: its `is_anomaly` flags as shipped (every flagged point), and "
        "the same flags through the new alarm rule.",
        f"- **baseline**: the rolling median/MAD above, flagged at |z| > {BASELINE_Z:g}; "
        "best threshold over its z limit.",
        "- **Synthetic NAB-like**: `bench/nab_like.py`, "
        f"{len(synthetic)} series of {len(synthetic[0][2]):,} 5-minute points "
        f"({len(nab_like.KINDS)} kinds × 4 seeds: spikes, jumps, drift, variance change, "
        "flat line, bursts in heavy-tailed counts, CPU-like level shift, a missing cycle "
        "of a 37-step period, rising spike density, and heavy-tailed counts without "
        "anomaly). A generalisation check, not tuned on.",
        "",
        "| corpus | method | as flagged | windows found | false flags | best threshold | at |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for corpus, table in (("dev set", early_dev), ("synthetic NAB-like", early_syn)):
        for method, e in table:
            lines.append(
                f"| {corpus} | {method} | {e.as_flagged.score:.1f} | "
                f"{e.as_flagged.detected}/{e.as_flagged.windows} | "
                f"{e.as_flagged.false_flags} | {e.best.score:.1f} | {e.best_threshold:g} |"
            )
    lines += [
        "",
        f"Throughput of `detect` (ours), one process on this {os.cpu_count()}-core machine: "
        f"{speed:,.0f} points/s over the dev set (target ≥ 100,000).",
        "",
        "## False alarms on the unlabelled series",
        "",
        "| series | points | ours | baseline |",
        "|---|---:|---:|---:|",
    ]
    for d, n, f in unlabelled:
        values = f["Value"].to_numpy(dtype=float)
        mine = len(runs(ours(sens)(f["TimeStamp"], values)))
        theirs = len(runs(baseline_flags(values)))
        lines.append(f"| `{d}/{n}` | {len(f):,} | {mine} | {theirs} |")
    base_sweep = [
        (z, total(evaluate(series, lambda _t, v, z=z: baseline_flags(v, z))[0]))
        for z in BASELINE_SWEEP
    ]
    lines += [
        "",
        "## Baseline at other limits",
        "",
        "For fairness, the baseline swept over its own flag limit (the limit is the only "
        "thing tuned). Its best F1 among limits within the false-alarm budget is the "
        "stricter comparison.",
        "",
        "| limit | precision | recall | F1 | alarms (labelled) | FA/1000 (unlabelled) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for z, c in base_sweep:
        lines.append(
            f"| {z:g} | {fmt(c.precision)} | {fmt(c.recall)} | {fmt(c.f1)} | {c.alarms} | "
            f"{fmt(c.fa_per_1000)} |"
        )
    within = [c for _z, c in base_sweep if c.fa_per_1000 <= MAX_FA_PER_1000]
    if within:
        best = max(within, key=lambda c: c.f1)
        lines += [
            "",
            f"Best baseline within the budget: F1 {best.f1:.3f}; ours is "
            f"{(ours_all.f1 / best.f1 - 1) * 100:+.0f}% against it."
            if best.f1
            else "",
        ]
    else:
        lines += ["", "No baseline limit tried stays within the false-alarm budget."]
    if sweep:
        lines += [
            "",
            "## Sensitivity trade-off (ours, overall)",
            "",
            "One global setting for every series; the one reported above is in bold. "
            "The score is a robust z, so under Gaussian residuals a sensitivity s flags a "
            "fraction 2·(1 − Φ(s)) of normal points: 2.7 per 1,000 at 3, 0.06 per 1,000 at 4.",
            "",
            "| sensitivity | precision | recall | F1 | alarms (labelled) | FA/1000 (unlabelled) |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for s, c in sweep:
            b = "**" if s == sens else ""
            lines.append(
                f"| {b}{s:g}{b} | {fmt(c.precision)} | {fmt(c.recall)} | {fmt(c.f1)} | "
                f"{c.alarms} | {fmt(c.fa_per_1000)} |"
            )
    meeting = [sv for sv, c in sweep if c.fa_per_1000 <= MAX_FA_PER_1000 and c.f1 >= target_f1]
    at_default = dict(sweep).get(SENSITIVITY)
    lines += [
        "",
        "## Notes",
        "",
        f"- Setting: the product default `insights.sensitivity` is {SENSITIVITY:g} "
        "(config/analytics.yml)"
        + (
            f", which gives F1 {at_default.f1:.2f} and {at_default.fa_per_1000:.2f} false "
            "alarms per 1,000 points here"
            if at_default
            else ""
        )
        + ". Of the sensitivities tried, "
        + (
            ", ".join(f"{sv:g}" for sv in meeting)
            + f" meet the target; the lowest, {min(meeting):g}, is the recommended default."
            if meeting
            else "none meets the target."
        ),
        "- Since issue 13 a point is also flagged on sustained evidence (the one-day and "
        "four-day medians of the deseasonalised values against the medians before them), "
        "which finds level shifts, drifts and flat-lined cycles that no single point "
        "shows, and the `alarm` column keeps one alarm per incident. Still weak: bursty, "
        "heavy-tailed series without anomalies (the synthetic `bursty_quiet` kind) raise "
        "several false alarms per 1,000 points; a heavier-tail correction cut them by half "
        "but cost dev-set F1 (0.53 → 0.43), whose frequent real anomalies make the tails.",
        "- Trade-off: the detector holds its scale to the 99th percentile of recent absolute "
        "residuals, so routine spikes do not alarm. The price is recall where anomalies are "
        "frequent (several events a week): after the first incidents the later ones look "
        "ordinary for a while. The baseline finds more events but raises many more alarms.",
        "- Seasons not tied to the clock are found by autocorrelation on past data (every "
        "1,000 slots, from the last 4,096): the synthetic 37-step cycle kind goes from 0 to 93 "
        "and the dev set is unchanged (its seasons are daily and weekly). An HTM-style "
        "anomaly-likelihood gate (short mean of past scores against their long-window "
        "distribution) cut false flags on bursty series but lost dev-set windows "
        "(47.4 → 28–45 as flagged, F1 down to 0.41–0.52), and longer refractory gaps "
        "(6 h–1 day) helped the synthetic set (54.6–59.0) but hurt the dev set (45.7–32.3), "
        "whose events come close together: neither is used.",
        "- The labels are partial: some large isolated spikes in labelled series carry no "
        "label, and an unlabelled series can hold visible incidents (e.g. deep drops in "
        "`data-ingress-rate/ingress-03`), so precision and FA/1000 are conservative.",
    ]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
