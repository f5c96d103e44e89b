"""PDF reports of a page, of the whole dashboard and of one table (the audit log).

Renderer: charts are drawn by matplotlib on its Agg canvas (``FigureCanvasAgg`` on a
``Figure``, never pyplot: no display, no global backend switch) into PNG images, and the
document is laid out by fpdf2. Both are plain Python wheels from PyPI: nothing downloads
a browser or a binary at install or run time, and no other process is started. Plotly's
static export would need Kaleido driving a Chrome (its own download, or Debian's
chromium installed on every server, developer machine and CI), one browser round trip
per figure. fpdf2 rather than reportlab because it embeds OpenType fonts with CFF
outlines from a collection, with per-glyph fallback fonts (``set_fallback_fonts``):
Debian's Noto Sans CJK is such a file (.ttc), which reportlab's TTFont refuses
("postscript outlines are not supported"). Its tables repeat their header row on every
page and move a row whole to the next page.

Fonts: DejaVu Sans (regular, bold, oblique), which matplotlib ships, so every machine
with the package has it, covers Latin, Greek and Cyrillic with accents and the arrows
and signs the app writes (→ ± −). Noto Sans CJK (Debian's fonts-noto-cjk,
:data:`CJK_FONT_FILES`, else any "Noto Sans CJK" matplotlib finds) is the fallback font
for glyphs DejaVu lacks, in the PDF's text and in the charts' labels alike. Both are
embedded as subsets (every font in the file is embedded). Without a CJK font the report
is still written: CJK characters then show as empty boxes, and a warning is logged once.

Layout: A4 portrait; a table wider than :data:`LANDSCAPE_COLUMNS` columns gets landscape
pages. Times are in the filters' zone, named on every chart's x axis. Tables are printed
in full: a row never splits across pages, the header row repeats on each page, long
cells wrap, and a cell too long for one page continues in the rows below it. Footer:
"Page N of M". The file's creation date is the page's generation time, so one page
built twice gives the same bytes.
"""

from __future__ import annotations

import io
import logging
import math
import struct
import threading
import unicodedata
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import matplotlib
import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from fpdf import FPDF, FontFace
from fpdf.enums import TableCellFillMode, WrapMode
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, Formatter, MaxNLocator, PercentFormatter

from analytics_core.filters import Filters, zone
from analytics_core.insights import Insight
from analytics_core.insights.model import STATUS_TEXT
from analytics_core.kpis import (
    KPIS,
    base_column,
    column_def,
    column_label,
    format_delta,
    format_kpi,
    is_missing,
    judged,
    min_events,
    table_header,
)
from analytics_core.page_data import PageData
from analytics_core.queries.common import value_columns

log = logging.getLogger(__name__)

DEFAULT_TITLE = "Anomaly Detection Analytics"
PAGE_NAMES = {
    "overview": "Overview",
    "detection": "Detection",
    "performance": "Performance",
    "business": "Business",
    "insights": "Insights",
}
TABLE_NAMES = {"audit": "Audit log"}


# ---------------------------------------------------------------------------- charts


@dataclass(frozen=True)
class ChartSpec:
    """One chart of a page: ``columns`` of ``series`` (None: all its value columns).

    kind: line | bar (against the bucket), scatter (one bubble per row: ``columns`` are
    x, y, size, label), gauge (the KPI ``columns[0]`` of the page's figures), gauges (a
    ``label, kpi, value`` frame). ``unit`` overrides the KPI definitions' (columns that
    are component names); ``title`` may hold ``{currency}``."""

    series: str
    columns: tuple[str, ...] | None
    title: str
    kind: str = "line"
    unit: str | None = None


# What each page of the app charts (analytics_app/app_pages), in its order.
PAGE_CHARTS: dict[str, tuple[ChartSpec, ...]] = {
    "overview": (
        ChartSpec("detection_trend", ("detections",), "Detections", "bar"),
        ChartSpec("detection_trend", ("anomaly_rate",), "Anomaly rate", unit="ratio"),
        ChartSpec("performance_trend", ("p50_ms", "p95_ms", "p99_ms"), "Latency (ms)"),
        ChartSpec("business_trend", ("active_users",), "Active users"),
    ),
    "detection": (
        ChartSpec("detection_trend", ("detections", "failed"), "Detections", "bar"),
        ChartSpec("detection_trend", ("anomaly_rate",), "Anomaly rate", unit="ratio"),
        ChartSpec("detection_trend", ("avg_confidence",), "Average confidence (mean score)"),
        ChartSpec(
            "detection_trend", ("avg_execution_ms", "p95_execution_ms"), "Execution time (ms)"
        ),
        ChartSpec(
            "by_algorithm",
            ("p95_execution_ms", "anomaly_rate", "detections", "algorithm"),
            "Anomaly rate against p95 run time (size: detections)",
            "scatter",
        ),
    ),
    "performance": (
        ChartSpec("performance_trend", ("p50_ms", "p95_ms", "p99_ms"), "Latency percentiles (ms)"),
        ChartSpec("performance_trend", ("availability",), "Availability", "gauge"),
        ChartSpec("performance_trend", ("requests",), "Requests", "bar"),
        ChartSpec("performance_trend", ("error_rate",), "Error rate (5xx)", unit="ratio"),
        # CPU, memory and disk: when Prometheus answered.
        ChartSpec("resources_gauges", None, "Resources now", "gauges"),
        ChartSpec("cpu_usage", None, "CPU usage by component", unit="ratio"),
        ChartSpec("memory_bytes", None, "Peak memory by component (bytes)", unit="bytes"),
        ChartSpec("disk_used_ratio", ("disk_used_ratio",), "Disk used", unit="ratio"),
        ChartSpec("uptime", ("uptime",), "Targets up (up)", unit="ratio"),
    ),
    "business": (
        ChartSpec("business_trend", ("active_users", "new_users"), "Users"),
        ChartSpec("business_trend", ("sessions",), "Sessions", "bar"),
        ChartSpec("business_trend", ("api_calls",), "API calls", "bar"),
        ChartSpec("business_trend", ("cost",), "Cost ({currency})", "bar"),
    ),
    "insights": (),
}
# The tables each page shows, with their headings.
PAGE_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "overview": (),
    "detection": (("by_algorithm", "By algorithm"),),
    "performance": (("by_endpoint", "By endpoint"), ("resources_now", "Resources (Prometheus)")),
    "business": (("by_tenant", "By tenant"),),
    "insights": (
        ("bottleneck_endpoints", "Bottlenecks: endpoints"),
        ("bottleneck_algorithms", "Bottlenecks: algorithms"),
    ),
}

SERIES_COLORS = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#0891b2", "#ca8a04")
FLAGGED, BAND, BASELINE, OK_GREEN = "#dc2626", "#6495ed", "#6495ed", "#2e7d32"
CHART_DPI = 150
# Inches: about the size they are printed at (half the page's width), so 8 pt reads 8 pt.
CHART_SIZE = (3.9, 2.3)
EVIDENCE_SIZE = (5.6, 2.2)
# A too-small bucket more than this many times the highest judged value is drawn off
# scale (as in the app's charts).
OFF_SCALE = 1.5
_BUCKET_DAYS = {"hour": 1 / 24, "day": 1.0, "week": 7.0, "month": 30.0}

# Debian's fonts-noto-cjk; the first that exists is used.
CJK_FONT_FILES = (
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"),
)
# matplotlib's rcParams and font manager are process-wide, and Streamlit serves each
# session on a thread of its own: one chart drawn at a time.
_MPL_LOCK = threading.RLock()


@dataclass(frozen=True)
class _Fonts:
    latin: dict[str, Path]  # style ("", "B", "I") -> file
    cjk: dict[str, Path]  # style -> file (face 0 of a collection); empty when absent
    cjk_family: str | None  # its name for matplotlib


@cache
def fonts() -> _Fonts:
    """The report's font files: DejaVu Sans from matplotlib's data, Noto Sans CJK where
    the machine has it (registered with matplotlib too, whose font cache may predate
    the package's install)."""
    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    latin = {
        "": ttf / "DejaVuSans.ttf",
        "B": ttf / "DejaVuSans-Bold.ttf",
        "I": ttf / "DejaVuSans-Oblique.ttf",
    }
    regular, bold = CJK_FONT_FILES
    if not regular.exists():
        try:
            found = font_manager.findfont("Noto Sans CJK JP", fallback_to_default=False)
            regular, bold = Path(found), Path(found)
        except ValueError:
            regular = bold = None  # type: ignore[assignment]
    if regular is None or not regular.exists():
        log.warning(
            "no CJK font found (Debian: apt-get install fonts-noto-cjk); PDF reports show "
            "Chinese, Japanese and Korean characters as empty boxes"
        )
        return _Fonts(latin, {}, None)
    bold = bold if bold is not None and bold.exists() else regular
    with _MPL_LOCK:
        for path in {regular, bold}:
            font_manager.fontManager.addfont(str(path))
        family = font_manager.FontProperties(fname=str(regular)).get_name()
    return _Fonts(latin, {"": regular, "B": bold}, family)


def _rc() -> dict[str, object]:
    family = ["DejaVu Sans"] + ([fonts().cjk_family] if fonts().cjk_family else [])
    return {
        "font.family": family,
        "font.size": 8,
        "axes.titlesize": 9,
        "axes.titleweight": "bold",
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "legend.fontsize": 7,
        "legend.frameon": False,
    }


def _render(draw: Callable[[Figure], None], size: tuple[float, float]) -> bytes:
    """A figure of ``size`` inches drawn by ``draw``, as PNG bytes (no metadata that
    varies between runs)."""
    settings = _rc()
    with _MPL_LOCK, matplotlib.rc_context(settings), warnings.catch_warnings():
        if not fonts().cjk:  # missing glyphs were reported once already (fonts())
            warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig = Figure(figsize=size, layout="constrained")
        FigureCanvasAgg(fig)
        draw(fig)
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=CHART_DPI, metadata={"Software": None})
    return out.getvalue()


def _unit_of(column: str, percent: bool = False) -> str | None:
    if percent:
        return "ratio"
    found = column_def(column)
    return found.unit if found else None


class _UnitFormatter(Formatter):
    """Tick labels in a KPI unit's words (``1,200 ms``), with as many decimals as the
    ticks' spacing needs (0.2 ms steps do not all read "0 ms")."""

    def __init__(self, digits: int, suffix: str):
        self.digits, self.suffix = digits, suffix

    def __call__(self, value: float, pos: int | None = None) -> str:
        steps = np.diff(np.asarray(self.axis.get_majorticklocs(), dtype=float))
        step = float(np.min(np.abs(steps[steps != 0]))) if (steps != 0).any() else 1.0
        digits = max(self.digits, math.ceil(-math.log10(step)) if 0 < step < 1 else 0)
        return f"{value:,.{digits}f}{self.suffix}"


def _format_axis(axis, unit: str | None, currency: str) -> None:
    """Ticks of a KPI unit, as the cards write its values."""
    if unit == "ratio":
        axis.set_major_formatter(PercentFormatter(xmax=1, decimals=None))
        return
    if unit == "bytes":
        axis.set_major_formatter(EngFormatter(unit="B"))
        return
    if unit == "count":
        axis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    suffix = {"ms": " ms", "minutes": " min", "gb": " GB", "rps": " req/s", "money": f" {currency}"}
    digits = {"count": 0, "ms": 0, "minutes": 1, "gb": 2, "rps": 3, "money": 2}
    axis.set_major_formatter(_UnitFormatter(digits.get(unit or "", 0), suffix.get(unit or "", "")))


def _local_instants(buckets: pd.Series, tz: str) -> list[datetime]:
    """Bucket starts as aware datetimes in ``tz`` (instants: the two 01:00 buckets of a
    fall-back night stay apart)."""
    stamps = pd.to_datetime(pd.Series(buckets).reset_index(drop=True))
    if stamps.dt.tz is None:
        stamps = stamps.dt.tz_localize("UTC")
    return list(stamps.dt.tz_convert(tz).dt.to_pydatetime())


def _time_axis(ax, tz: str) -> None:
    z = zone(tz)
    locator = mdates.AutoDateLocator(tz=z, minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=z, show_offset=True))
    ax.set_xlabel(f"Bucket start ({tz})", fontsize=7)


def _no_data(ax) -> None:
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def _bucket_width(x: np.ndarray, granularity: str) -> float:
    steps = np.diff(np.sort(x))
    steps = steps[steps > 0]
    return float(np.median(steps)) if len(steps) else _BUCKET_DAYS.get(granularity, 1.0)


def trend_png(
    frame: pd.DataFrame,
    columns: Sequence[str],
    title: str,
    tz: str,
    kind: str = "line",
    unit: str | None = None,
    currency: str = "USD",
    granularity: str = "day",
    size: tuple[float, float] = CHART_SIZE,
) -> bytes:
    """``columns`` against the bucket, as the app's trend charts draw them: partial
    buckets faded (bars) or dashed (lines), rates of buckets with too few events as gaps
    with their values as faded open markers, the axis in the KPIs' units."""

    def draw(fig: Figure) -> None:
        ax = fig.subplots()
        ax.set_title(title, loc="left")
        if frame is None or frame.empty or "bucket" not in frame.columns:
            _no_data(ax)
            return
        when = _local_instants(frame["bucket"], tz)
        x = mdates.date2num(when)
        partial = (
            frame["partial"].astype(bool).to_numpy()
            if "partial" in frame.columns
            else np.zeros(len(frame), dtype=bool)
        )
        units = {unit or _unit_of(c) for c in columns}
        width = _bucket_width(x, granularity) * 0.8
        judged_top = 0.0
        few_points = []
        for n, column in enumerate(columns):
            color = SERIES_COLORS[n % len(SERIES_COLORS)]
            label = column_label(column)
            values = judged(frame, column).to_numpy(dtype=float)
            if kind == "bar":
                bar_w = width / len(columns)
                offset = (n - (len(columns) - 1) / 2) * bar_w
                heights = np.nan_to_num(values)
                ax.bar(x[~partial] + offset, heights[~partial], bar_w, color=color, label=label)
                if partial.any():
                    ax.bar(x[partial] + offset, heights[partial], bar_w, color=color,
                           alpha=0.35, hatch="//", edgecolor=color, label="_partial")  # fmt: skip
                continue
            ax.plot(x, np.where(partial, np.nan, values), color=color, label=label, lw=1.4)
            if partial.any():
                before = np.concatenate([[False], partial[:-1]])
                after = np.concatenate([partial[1:], [False]])
                near = partial | before | after
                ax.plot(x, np.where(near, values, np.nan), color=color, ls="--", lw=1.2,
                        alpha=0.6)  # fmt: skip
                ax.plot(x[partial], values[partial], "o", mfc="none", color=color, alpha=0.6)
            top = np.nanmax(values) if np.isfinite(values).any() else 0.0
            judged_top = max(judged_top, float(top))
            need = min_events(column) if column in KPIS else None
            raw = frame[column].astype(float).to_numpy()
            few = ~np.isnan(raw) & np.isnan(values)
            if need and few.any():
                few_points.append((x[few], raw[few], color, f"{label} (<{need[1]} {need[0]})"))
        cap = judged_top * OFF_SCALE if judged_top > 0 else math.inf
        for xs, ys, color, label in few_points:
            above = ys > cap
            ax.plot(xs[~above], ys[~above], "o", mfc="none", color=color, alpha=0.5, label=label)
            if above.any():
                ax.plot(xs[above], np.full(above.sum(), cap), "^", mfc="none", color=color,
                        alpha=0.5)  # fmt: skip
        if partial.any():
            first = np.flatnonzero(partial)[0]
            ax.annotate("partial", (x[first], 0), xytext=(0, 2), textcoords="offset points",
                        fontsize=6, color="grey", ha="center", va="bottom")  # fmt: skip
        _time_axis(ax, tz)
        pad = _bucket_width(x, granularity) / 2
        ax.set_xlim(x.min() - pad, x.max() + pad)
        drawn = [judged(frame, c).to_numpy(dtype=float) for c in columns]
        drawn += [ys for _, ys, *_ in few_points]
        highest = max((float(np.nanmax(v)) for v in drawn if np.isfinite(v).any()), default=None)
        if highest is None:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes,
                    color="grey")  # fmt: skip
        if not highest:  # nothing, or only zeros: an axis from 0 rather than ±0.05
            ax.set_ylim(0, 1)
        else:
            ax.set_ylim(bottom=0)
        if math.isfinite(cap) and few_points and any((ys > cap).any() for _, ys, *_ in few_points):
            ax.set_ylim(0, cap * 1.05)
        _format_axis(ax.yaxis, units.pop() if len(units) == 1 else None, currency)
        if len(columns) > 1 or few_points:
            labels = ax.get_legend_handles_labels()[1]
            wide = max(len(label) for label in labels) > 16
            fig.legend(loc="outside lower center", ncols=min(2 if wide else 3, len(labels)))

    return _render(draw, size)


def scatter_png(
    frame: pd.DataFrame,
    x: str,
    y: str,
    size_column: str,
    label: str,
    title: str,
    currency: str = "USD",
    size: tuple[float, float] = CHART_SIZE,
) -> bytes:
    """One labelled bubble per row (area by ``size_column``)."""

    def draw(fig: Figure) -> None:
        ax = fig.subplots()
        ax.set_title(title, loc="left")
        rows = frame.dropna(subset=[x, y]) if frame is not None and len(frame) else frame
        if rows is None or rows.empty:
            _no_data(ax)
            return
        sizes = rows[size_column].astype(float).fillna(0).to_numpy()
        area = 600 * sizes / sizes.max() if sizes.max() > 0 else np.full(len(rows), 60.0)
        ax.scatter(rows[x], rows[y], s=np.maximum(area, 12), color=SERIES_COLORS[0], alpha=0.6)
        for xv, yv, text in zip(rows[x], rows[y], rows[label], strict=True):
            ax.annotate(_clean(text), (xv, yv), xytext=(0, 6), textcoords="offset points",
                        ha="center", fontsize=7)  # fmt: skip
        ax.set_xlabel(column_label(x))
        ax.set_ylabel(column_label(y))
        _format_axis(ax.xaxis, _unit_of(x), currency)
        _format_axis(ax.yaxis, _unit_of(y), currency)
        ax.margins(0.15)

    return _render(draw, size)


def gauges_png(
    dials: Sequence[tuple[str, str, float | None]],
    title: str,
    low: float = 0.0,
    size: tuple[float, float] = CHART_SIZE,
) -> bytes:
    """Ratio KPIs as horizontal dials from ``low`` to 100%: (label, kpi, value) each, the
    value written as the cards write it."""

    def draw(fig: Figure) -> None:
        ax = fig.subplots()
        ax.set_title(title, loc="left")
        if not dials:
            _no_data(ax)
            return
        start = min([low] + [v - 0.01 for *_, v in dials if not is_missing(v)])
        start = max(0.0, start)
        ys = np.arange(len(dials))[::-1]
        for yv, (_name, key, value) in zip(ys, dials, strict=True):
            ax.barh(yv, 1 - start, left=start, color="#e5e7eb", height=0.6)
            if not is_missing(value):
                ax.barh(yv, float(value) - start, left=start, color=OK_GREEN, height=0.6)
            ax.text(1.0, yv, f"  {format_kpi(key, value)}", va="center", ha="left", fontsize=8)
        # One dial: the title names it.
        ax.set_yticks(ys, [_clean(d[0]) for d in dials] if len(dials) > 1 else [""])
        ax.set_xlim(start, 1.0)
        ax.xaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=1))
        ax.grid(False)

    return _render(draw, size)


def evidence_png(
    evidence: pd.DataFrame,
    kpi: str | None,
    kind: str,
    tz: str,
    currency: str = "USD",
    size: tuple[float, float] = EVIDENCE_SIZE,
) -> bytes:
    """An insight's evidence as the app draws it: the value over its time column, the
    expected range as a band, baseline or fitted trend, forecast, threshold, flagged
    points red and buckets with too few events to judge as grey open markers."""
    known = kpi in KPIS
    label = KPIS[kpi].label if known else (kind.capitalize() or "Value")  # type: ignore[index]
    unit = KPIS[kpi].unit if known else None  # type: ignore[index]
    time_col = _time_column(evidence)
    value_col = "value" if "value" in evidence.columns else _numeric_columns(evidence)[0]

    def col(name: str) -> np.ndarray:
        return pd.to_numeric(evidence[name], errors="coerce").to_numpy(dtype=float)

    def draw(fig: Figure) -> None:
        ax = fig.subplots()
        ax.set_title(label, loc="left")
        x = mdates.date2num(_local_instants(evidence[time_col], tz))
        floor = 0.0 if known else -np.inf
        if {"lower", "upper"} <= set(evidence.columns) and evidence["upper"].notna().any():
            ax.fill_between(x, np.maximum(col("lower"), floor), np.maximum(col("upper"), floor),
                            color=BAND, alpha=0.18, lw=0, label="expected range")  # fmt: skip
        if "baseline" in evidence.columns:
            name = "trend (Theil-Sen fit)" if kind == "trend" else "baseline"
            ax.plot(x, col("baseline"), ls=":", color=BASELINE, label=name)
        ax.plot(x, col(value_col), color=SERIES_COLORS[0], label=label, lw=1.4)
        if "forecast" in evidence.columns:
            ax.plot(x, col("forecast"), ls="--", color=BAND, label="forecast")
        if "threshold" in evidence.columns:
            ax.plot(x, col("threshold"), ls="--", color=FLAGGED, lw=1, label="threshold")
        if "unjudged" in evidence.columns and evidence["unjudged"].notna().any():
            small = evidence["unjudged"].notna().to_numpy()
            ax.plot(x[small], col("unjudged")[small], "o", mfc="none", color="#9ca3af",
                    label="too few events to judge")  # fmt: skip
        if "flagged" in evidence.columns and evidence["flagged"].fillna(False).any():
            hits = evidence["flagged"].fillna(False).astype(bool).to_numpy()
            ax.plot(x[hits], col(value_col)[hits], "o", color=FLAGGED, ms=4, label="flagged")
        _time_axis(ax, tz)
        if known:
            ax.set_ylim(bottom=0)
        _format_axis(ax.yaxis, unit, currency)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))

    return _render(draw, size)


def _time_column(frame: pd.DataFrame) -> str | None:
    if "bucket" in frame.columns:
        return "bucket"
    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            return column
    return None


def _numeric_columns(frame: pd.DataFrame) -> list[str]:
    return [
        c
        for c in frame.columns
        if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
    ]


def _charts_evidence(evidence: pd.DataFrame | None) -> bool:
    """True when an insight's evidence is a time series a chart can draw."""
    return (
        evidence is not None
        and len(evidence) > 0
        and _time_column(evidence) is not None
        and ("value" in evidence.columns or bool(_numeric_columns(evidence)))
    )


def page_charts(data: PageData) -> list[tuple[ChartSpec, bytes]]:
    """The page's charts (those of :data:`PAGE_CHARTS` whose series it has), drawn."""
    out = []
    tz, currency = data.filters.tz, data.currency
    for spec in PAGE_CHARTS.get(data.page, ()):
        title = spec.title.format(currency=data.currency)
        if spec.kind == "gauge":
            key = spec.columns[0]  # type: ignore[index]
            if key not in data.kpis:
                continue
            png = gauges_png([(KPIS[key].label, key, data.kpis[key])], title, low=0.95)
            out.append((spec, png))
            continue
        frame = data.series.get(spec.series)
        if frame is None:
            continue
        if spec.kind == "gauges":
            dials = [(str(r.label), str(r.kpi), r.value) for r in frame.itertuples()]
            out.append((spec, gauges_png(dials, title)))
        elif spec.kind == "scatter":
            x, y, size, label = spec.columns  # type: ignore[misc]
            out.append((spec, scatter_png(frame, x, y, size, label, title, currency)))
        else:
            columns = spec.columns or tuple(value_columns(frame))
            columns = tuple(c for c in columns if c in frame.columns)
            if not columns:
                continue
            png = trend_png(frame, columns, title, tz, spec.kind, spec.unit, currency,
                            data.filters.granularity)  # fmt: skip
            out.append((spec, png))
    return out


# ---------------------------------------------------------------------------- tables

# Headers for key columns whose snake_case name is not a KPI (as the app's tables).
_FORMATS = {"compute_hours": "{:,.2f} h", "total_ms": "{:,.0f} ms"}
_UNIT_FORMATS = {
    "count": "{:,.0f}",
    "ms": "{:,.1f} ms",
    "rps": "{:,.3f} req/s",
    "gb": "{:,.3f} GB",
    "bytes": "{:,.0f} B",
    "minutes": "{:,.1f} min",
}
MISSING = "—"
# Wider tables get landscape pages.
LANDSCAPE_COLUMNS = 11
# A cell is cut into rows of at most this many lines (of its column's width): a row
# taller than a page cannot be placed.
CELL_LINES = 18


def _clean(value: object) -> str:
    """Text safe to print: control characters (other than new lines) as spaces."""
    text = str(value)
    return "".join(
        " " if unicodedata.category(ch) == "Cc" and ch != "\n" else ch for ch in text
    ).replace("\r", "")


def header_label(column: str) -> str:
    return table_header(column)


def _stamp(value: datetime, tz: str, seconds: bool) -> str:
    local = pd.Timestamp(value)
    local = local.tz_localize("UTC") if local.tzinfo is None else local
    local = local.tz_convert(tz)
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M{':%S' if seconds else ''}} {offset[:3]}:{offset[3:]}"


def format_cell(column: str, value: object, tz: str, currency: str = "USD") -> str:
    """A table cell as the app's tables show it: KPI units, times in ``tz``."""
    if value is None or (not isinstance(value, str) and _isna(value)):
        return MISSING
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return _stamp(value, tz, seconds=bool(pd.Timestamp(value).second))
    if isinstance(value, int | float | np.integer | np.floating):
        v = float(value)
        base = base_column(column)
        found = column_def(column)
        if base in _FORMATS:
            return _FORMATS[base].format(v)
        if found is not None:
            if found.unit == "ratio":
                return f"{v * 100:,.2f}%"
            if found.unit == "money":
                return f"{v:,.2f} {currency}"
            return _UNIT_FORMATS[found.unit].format(v)
        if v.is_integer():
            return f"{int(v):,}"
        return f"{v:,.2f}" if abs(v) >= 1000 else f"{v:.4g}"
    return _clean(value)


def _isna(value: object) -> bool:
    try:
        return bool(pd.isna(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def table_rows(
    frame: pd.DataFrame, tz: str, currency: str = "USD"
) -> tuple[list[str], list[list[str]], list[str]]:
    """(headers, text rows, alignment per column) of ``frame``, every row and column."""
    headers = [header_label(str(c)) for c in frame.columns]
    align = []
    columns = []
    for n, name in enumerate(frame.columns):
        series = frame.iloc[:, n]  # by position: column names may repeat
        numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        align.append("RIGHT" if numeric else "LEFT")
        if isinstance(series.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(series):
            stamps = pd.to_datetime(series)
            seconds = bool((stamps.dropna().dt.second != 0).any())
            columns.append([MISSING if pd.isna(v) else _stamp(v, tz, seconds) for v in stamps])
        else:
            columns.append([format_cell(str(name), v, tz, currency) for v in series.tolist()])
    rows = [list(row) for row in zip(*columns, strict=True)] if columns else []
    return headers, rows, align


# ---------------------------------------------------------------------------- document


class _Report(FPDF):
    """A4, the report's fonts, "Page N of M" in the footer (under ``running``)."""

    def __init__(self, title: str):
        super().__init__(orientation="P", unit="mm", format="A4")
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(True, margin=16)
        self.running = title
        for style, path in fonts().latin.items():
            self.add_font("Sans", style, str(path))
        # The CJK font is loaded on the first glyph DejaVu lacks (get_fallback_font): it
        # takes a third of a second to parse. Until then DejaVu is its own "fallback", so
        # that fpdf2 asks for one at all.
        self._cjk_loaded = False
        self.set_fallback_fonts(["Sans"], exact_match=False)
        self.set_font("Sans", size=9)

    def get_fallback_font(self, char: str, style: str = "") -> str | None:
        if not self._cjk_loaded:
            self._cjk_loaded = True
            for font_style, path in fonts().cjk.items():
                self.add_font("CJK", font_style, str(path))
            if fonts().cjk:
                self.set_fallback_fonts(["CJK"], exact_match=False)
        return super().get_fallback_font(char, style)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Sans", size=7)
        self.set_text_color(110)
        width = self.epw / 2
        self.cell(width, 5, self.running[:120], align="L")
        self.cell(width, 5, f"Page {self.page_no()} of {{nb}}", align="R")
        self.set_text_color(0)

    # -- text blocks

    def heading(self, text: str, size: float = 16, space: float = 40) -> None:
        """A heading kept with ``space`` mm of what follows it."""
        if self.will_page_break(space):
            self.add_page(same=True)
        self.set_font("Sans", "B", size)
        self.multi_cell(0, size * 0.5, _clean(text), align="L", new_x="LMARGIN", new_y="NEXT")
        self.ln(1.5)
        self.set_font("Sans", size=9)

    def para(self, text: str, size: float = 9, style: str = "", grey: bool = False) -> None:
        self.set_font("Sans", style, size)
        if grey:
            self.set_text_color(90)
        self.multi_cell(0, size * 0.48, _clean(text), align="L", new_x="LMARGIN", new_y="NEXT")
        self.set_text_color(0)
        self.set_font("Sans", size=9)

    def text_height(self, text: str, size: float = 9, style: str = "", width: float = 0) -> float:
        self.set_font("Sans", style, size)
        lines = self.multi_cell(width or self.epw, size * 0.48, _clean(text), dry_run=True,
                                output="LINES")  # fmt: skip
        self.set_font("Sans", size=9)
        return len(lines) * size * 0.48

    # -- images

    def images(self, pngs: Sequence[bytes], per_row: int = 2) -> None:
        """Charts ``per_row`` across the page, a row moved whole to the next page."""
        gap = 4
        width = (self.epw - gap * (per_row - 1)) / per_row
        for start in range(0, len(pngs), per_row):
            height = width * max(_aspect(png) for png in pngs[start : start + per_row])
            if self.will_page_break(height + 2):
                self.add_page(same=True)
            y = self.y
            for n, png in enumerate(pngs[start : start + per_row]):
                self.image(io.BytesIO(png), x=self.l_margin + n * (width + gap), y=y, w=width)
            self.set_xy(self.l_margin, y + height + 3)

    # -- tables

    def table_of(
        self,
        headers: Sequence[str],
        rows: Sequence[Sequence[str]],
        align: Sequence[str] | None = None,
        widths: Sequence[float] | None = None,
        size: float | None = None,
    ) -> None:
        """Every row, the header repeated on each page, long cells wrapped; a cell too
        tall for a page continues in extra rows below (other cells blank)."""
        n = len(headers)
        size = size or (8 if n <= 6 else 7 if n <= LANDSCAPE_COLUMNS else 6.5)
        align = list(align or ["LEFT"] * n)
        self.set_font("Sans", size=size)
        # Characters of "n" width that fit the page's width, less each cell's padding.
        capacity = (self.epw - 2.4 * n) / (self.get_string_width("n") or 1.0)
        widths = list(widths or _column_widths(headers, rows, capacity))
        line = size * 0.42
        total = sum(widths)
        mm = [w / total * self.epw for w in widths]
        with self.table(
            col_widths=widths,
            width=self.epw,
            text_align=align,
            line_height=line,
            padding=(0.8, 1.2),
            repeat_headings=1,
            headings_style=FontFace(emphasis="BOLD", fill_color=(232, 236, 244)),
            cell_fill_color=(247, 248, 250),
            cell_fill_mode=TableCellFillMode.ROWS,
            wrapmode=WrapMode.WORD,
        ) as table:
            heading = table.row()
            for text in headers:
                heading.cell(_clean(text), align="LEFT")
            char = self.get_string_width("0") or 1.0
            for row in rows:
                parts = [
                    _pieces(text, max(8, int((w - 2.4) / char)), CELL_LINES)
                    for text, w in zip(row, mm, strict=True)
                ]
                for k in range(max(len(p) for p in parts)):
                    cells = table.row()
                    for p in parts:
                        cells.cell(p[k] if k < len(p) else "")
        self.set_font("Sans", size=9)
        self.ln(3)


def _column_widths(
    headers: Sequence[str], rows: Sequence[Sequence[str]], capacity: float
) -> list[float]:
    """Widths in characters: each column its typical text (up to 40 characters) and at
    least its header's longest word (bold); when they do not fit in ``capacity``, the
    widest columns give up width first (a cap on every width, as high as fits), so
    times, numbers and names stay on one line while free text wraps."""
    least, want = [], []
    for n, header in enumerate(headers):
        word = max((len(w) for w in header.split()), default=4) * 1.3 + 1.5
        lengths = sorted(len(r[n]) for r in rows[:2000]) if rows else [0]
        typical = lengths[int(len(lengths) * 0.9)] if len(lengths) > 1 else lengths[0]
        least.append(min(word, 16.0))
        want.append(max(least[-1], min(40.0, typical * 1.1 + 1)))
    if sum(want) <= capacity or sum(least) >= capacity:
        return want

    def capped(cap: float) -> list[float]:
        return [min(hi, max(lo, cap)) for lo, hi in zip(least, want, strict=True)]

    low, high = 0.0, max(want)
    for _ in range(40):  # the highest cap whose widths fit
        middle = (low + high) / 2
        low, high = (middle, high) if sum(capped(middle)) <= capacity else (low, middle)
    return capped(low)


def _aspect(png: bytes) -> float:
    """Height / width of a PNG, from its header."""
    width, height = struct.unpack(">II", png[16:24])
    return height / width


def _pieces(text: str, per_line: int, lines: int) -> list[str]:
    """``text`` in pieces of at most about ``lines`` lines of ``per_line`` characters
    (cut at spaces or new lines where there are some); one piece when it fits."""
    limit = per_line * lines
    if len(text) <= limit and text.count("\n") < lines:
        return [text]
    out: list[str] = []
    rest = text
    while rest:
        head = rest[:limit]
        if head.count("\n") >= lines:
            cut = [i for i, ch in enumerate(head) if ch == "\n"][lines - 1]
        elif len(rest) <= limit:
            cut = len(rest)
        else:
            space = max(head.rfind(" "), head.rfind("\n"))
            cut = space if space > limit // 2 else limit
        out.append(rest[:cut].strip("\n"))
        rest = rest[cut:].lstrip(" \n")
    return out or [""]


# ---------------------------------------------------------------------------- sections


def _local(moment: datetime, tz: str) -> str:
    local = moment.astimezone(zone(tz))
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()} (UTC{offset[:3]}:{offset[3:]})"


def _zone_line(filters: Filters, moment: datetime) -> str:
    local = moment.astimezone(zone(filters.tz))
    offset = local.strftime("%z")
    return (
        f"Time zone: {filters.tz} (UTC{offset[:3]}:{offset[3:]} at generation); every time "
        "and chart axis in this report is in this zone."
    )


def _front_matter(
    pdf: _Report,
    heading: str,
    filters: Filters,
    generated_at: datetime,
    tenant_names: Mapping[str, str] | None,
    notes: Iterable[str] = (),
) -> None:
    pdf.heading(heading, 16)
    pdf.para(f"Filters: {filters.describe(tenant_names)}")
    pdf.para(_zone_line(filters, generated_at))
    pdf.para(f"Generated at: {_local(generated_at, filters.tz)}")
    for note in notes:
        if note:
            pdf.para(note, 8, grey=True)
    pdf.ln(3)


def _significance(key: str, data: PageData) -> str:
    change = data.changes.get(key)
    if change is None or is_missing(data.previous.get(key)) or is_missing(data.kpis.get(key)):
        return MISSING  # the change column says why
    if change.p_value is None:
        return change.method or MISSING
    word = "significant" if change.significant else "not significant"
    return f"{word} (p = {change.p_value:.3g})"


def significance_notes(data: PageData) -> str | None:
    """Which test gave each KPI's p-value: one line under the KPI table."""
    by_method: dict[str, list[str]] = {}
    for key in data.kpis:
        change = data.changes.get(key)
        if change is not None and change.p_value is not None and change.method:
            by_method.setdefault(change.method, []).append(KPIS[key].label)
    if not by_method:
        return None
    parts = [f"{method} ({', '.join(labels)})" for method, labels in by_method.items()]
    return "Significance tests: " + "; ".join(parts) + "."


def _change_text(key: str, data: PageData) -> str:
    current, previous = data.kpis.get(key), data.previous.get(key)
    if is_missing(current):
        return MISSING
    text = format_delta(key, current, previous, data.currency)
    if text is None:
        return "no previous period"
    change = data.changes.get(key)
    if change is not None and change.pct_change is not None and KPIS[key].unit != "ratio":
        text += f" ({change.pct_change * 100:+.1f}%)"
    return text


def kpi_rows(data: PageData) -> list[list[str]]:
    """KPI, value, previous period, change and its significance, as the cards say them."""
    rows = []
    for key, value in data.kpis.items():
        rows.append(
            [
                KPIS[key].label,
                format_kpi(key, value, data.currency),
                format_kpi(key, data.previous.get(key), data.currency),
                _change_text(key, data),
                _significance(key, data),
            ]
        )
    return rows


EVIDENCE_WIDTH = 140  # mm


def _insight(
    pdf: _Report, insight: Insight, tz: str, currency: str, heading: str | None = None
) -> None:
    """Severity, status, kind and area; the sentence; the recommendation; the evidence
    chart (or table); method and baseline. Kept on one page with ``heading`` above it."""
    badge = (
        f"{insight.severity.upper()} · {STATUS_TEXT.get(insight.status, insight.status)} · "
        f"{insight.kind} · {insight.area}"
    )
    extra = [f"Recommendation: {insight.recommendation}"] if insight.recommendation else []
    method = f"Method: {insight.method or 'n/a'}. Baseline: {insight.baseline or 'n/a'}."
    evidence = insight.evidence
    chart = _charts_evidence(evidence)
    chart_w = min(EVIDENCE_WIDTH, pdf.epw)
    chart_h = chart_w * EVIDENCE_SIZE[1] / EVIDENCE_SIZE[0] if chart else 0
    needed = (
        (12 if heading else 0)
        + pdf.text_height(badge, 8, "B")
        + pdf.text_height(insight.message, 9)
        + sum(pdf.text_height(t, 8.5, "I") for t in extra)
        + pdf.text_height(method, 7.5)
        + chart_h
        + 6
    )
    if pdf.will_page_break(min(needed, pdf.eph * 0.8)):
        pdf.add_page(same=True)
    if heading:
        pdf.heading(heading, 12, 0)
    pdf.para(badge, 8, "B", grey=True)
    pdf.para(insight.message, 9)
    for text in extra:
        pdf.para(text, 8.5, "I")
    if chart:
        png = evidence_png(evidence, insight.kpi, insight.kind, tz, currency)  # type: ignore[arg-type]
        pdf.image(io.BytesIO(png), x=pdf.l_margin, y=pdf.y + 1, w=chart_w)
        pdf.set_y(pdf.y + chart_h + 2)
    elif evidence is not None and len(evidence):
        headers, rows, align = table_rows(evidence, tz, currency)
        pdf.table_of(headers, rows, align)
    pdf.para(method, 7.5, grey=True)
    pdf.ln(4)


def _table_section(pdf: _Report, heading: str, frame: pd.DataFrame, tz: str, currency: str) -> None:
    headers, rows, align = table_rows(frame, tz, currency)
    if len(headers) > LANDSCAPE_COLUMNS and pdf.cur_orientation.value != "L":
        pdf.add_page(orientation="L")
    pdf.heading(f"{heading} ({len(rows):,} rows)", 12, 30)
    if not rows:
        pdf.para("No rows.", grey=True)
        return
    pdf.table_of(headers, rows, align)


def _page_body(
    pdf: _Report,
    data: PageData,
    title: str,
    tenant_names: Mapping[str, str] | None,
    front: bool = True,
) -> None:
    tz = data.filters.tz
    name = PAGE_NAMES.get(data.page, data.page.capitalize())
    notes = [
        "Compared with the previous period of equal length.",
        data.source_note or "",
        "A source failed while this page was built: some figures may be missing."
        if data.degraded
        else "",
        "No data in this range for these filters." if data.is_empty else "",
    ]
    if front:
        _front_matter(pdf, f"{name} — {title}", data.filters, data.generated_at, tenant_names,
                      notes)  # fmt: skip
    else:
        pdf.heading(f"{name} — {title}", 16)
        pdf.para(f"Generated at: {_local(data.generated_at, tz)}")
        for note in notes:
            if note:
                pdf.para(note, 8, grey=True)
        pdf.ln(3)

    pdf.heading("Key figures", 12, 30)
    pdf.table_of(
        ["KPI", "Value", "Previous period", "Change", "Significance"],
        kpi_rows(data),
        ["LEFT", "RIGHT", "RIGHT", "RIGHT", "LEFT"],
        widths=[30, 18, 18, 26, 30],
        size=8,
    )
    notes = significance_notes(data)
    if notes:
        pdf.para(notes, 7.5, grey=True)
        pdf.ln(2)

    charts = page_charts(data)
    if charts:
        pdf.heading("Charts", 12, 70)
        pdf.images([png for _, png in charts])

    if data.insights:
        stories = [i for i in data.insights if i.status in ("firing", "resolved", "learning")]
        quiet = [i for i in data.insights if i not in stories]
        for heading, group in (("Insights", stories), ("Checks with nothing to report", quiet)):
            for n, insight in enumerate(group):
                _insight(pdf, insight, tz, data.currency, heading if n == 0 else None)
    elif data.page in ("overview", "insights"):
        pdf.heading("Insights", 12, 20)
        pdf.para("Nothing unusual found in this range for these filters.")

    for series, heading in PAGE_TABLES.get(data.page, ()):
        frame = data.series.get(series)
        if frame is not None:
            _table_section(pdf, heading, frame, tz, data.currency)


def _finish(pdf: _Report, title: str, subject: str, created: datetime) -> bytes:
    pdf.set_title(title)
    pdf.set_subject(subject)
    pdf.set_author(DEFAULT_TITLE)
    pdf.set_creator(DEFAULT_TITLE)
    pdf.set_lang("en")
    pdf.set_creation_date(created.astimezone(UTC))
    return bytes(pdf.output())


def page_report(
    data: PageData,
    *,
    title: str = DEFAULT_TITLE,
    tenant_names: Mapping[str, str] | None = None,
) -> bytes:
    """One page of the dashboard as a PDF: title, filters, zone and generation time, the
    KPI table, every chart, each insight with its evidence, every table in full.
    ``tenant_names`` (id -> name) name the tenant filter as the app's caption does."""
    name = PAGE_NAMES.get(data.page, data.page.capitalize())
    pdf = _Report(f"{name} — {title}")
    pdf.add_page()
    _page_body(pdf, data, title, tenant_names)
    return _finish(pdf, f"{name} — {title}", data.filters.describe(tenant_names), data.generated_at)


def dashboard_report(
    pages: Sequence[PageData],
    *,
    title: str = DEFAULT_TITLE,
    tenant_names: Mapping[str, str] | None = None,
) -> bytes:
    """Several pages for the same filters in one PDF: a first page with the filters, zone,
    generation time and contents, then one section per page, each from a new page."""
    if not pages:
        raise ValueError("a dashboard report needs at least one page")
    filters = pages[0].filters
    if any(p.filters != filters for p in pages):
        raise ValueError("the pages of a dashboard report must share one set of filters")
    generated = min(p.generated_at for p in pages)
    pdf = _Report(f"Dashboard — {title}")
    pdf.add_page()
    notes = ["Compared with the previous period of equal length."]
    notes += sorted({p.source_note for p in pages if p.source_note})
    _front_matter(pdf, f"Dashboard — {title}", filters, generated, tenant_names, notes)
    pdf.heading("Contents", 12, 30)
    pdf.insert_toc_placeholder(_contents, pages=1)  # breaks the page: the first section's
    for n, data in enumerate(pages):
        name = PAGE_NAMES.get(data.page, data.page.capitalize())
        if n:
            pdf.add_page(orientation="P")
        pdf.running = f"{name} — {title}"  # this page's footer on, not the one closed
        pdf.start_section(name)
        _page_body(pdf, data, title, tenant_names, front=False)
    return _finish(pdf, f"Dashboard — {title}", filters.describe(tenant_names), generated)


def _contents(pdf: FPDF, outline: list) -> None:
    """The dashboard's sections and their first pages (fpdf2 calls it at the end)."""
    # The page's font state was saved with the placeholder: select the font anew.
    pdf.current_font_is_set_on_page = False
    pdf.set_font("Sans", size=10)
    pdf.set_x(pdf.l_margin)  # the placeholder keeps y only
    for section in outline:
        if section.level != 0:
            continue
        link = pdf.add_link(page=section.page_number)
        pdf.cell(pdf.epw - 20, 7, section.name, link=link)
        pdf.cell(20, 7, str(section.page_number), align="R", link=link,
                 new_x="LMARGIN", new_y="NEXT")  # fmt: skip


def table_report(
    name: str,
    frame: pd.DataFrame,
    filters: Filters,
    note: str | None = None,
    *,
    title: str = DEFAULT_TITLE,
    generated_at: datetime | None = None,
    tenant_names: Mapping[str, str] | None = None,
) -> bytes:
    """One table (e.g. the audit log) as a PDF: every row, the header on every page,
    times in the filters' zone; ``generated_at`` defaults to now."""
    generated_at = generated_at or datetime.now(UTC)
    heading = TABLE_NAMES.get(name, name.replace("_", " ").capitalize())
    pdf = _Report(f"{heading} — {title}")
    headers, rows, align = table_rows(frame, filters.tz)
    pdf.add_page(orientation="L" if len(headers) > LANDSCAPE_COLUMNS else "P")
    _front_matter(pdf, f"{heading} — {title}", filters, generated_at, tenant_names,
                  [note or ""])  # fmt: skip
    pdf.heading(f"{heading} ({len(rows):,} rows)", 12, 30)
    if rows:
        pdf.table_of(headers, rows, align)
    else:
        pdf.para("No rows.", grey=True)
    return _finish(pdf, f"{heading} — {title}", filters.describe(tenant_names), generated_at)


__all__ = [
    "PAGE_CHARTS",
    "PAGE_TABLES",
    "ChartSpec",
    "dashboard_report",
    "page_report",
    "table_report",
]
