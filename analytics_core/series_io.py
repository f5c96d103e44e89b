"""Reading a metric series from CSV and writing its anomaly scores, for the CLI.

Input: a header with ``timestamp`` and ``value`` columns (any case; other columns
are ignored); an empty value is a missing point. Output: one row per input row,
in order: ``timestamp,value,score,is_anomaly,alarm`` (the timestamp text as given;
score empty while the detector is still learning; ``is_anomaly`` 1 on every flagged
point, ``alarm`` 1 only on the first point of each alarm episode, the one to page on).
"""

from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analytics_core.filters import InputError


@dataclass(frozen=True)
class Series:
    raw_timestamps: list[str]
    timestamps: pd.Series
    values: pd.Series


def read_series(path: str) -> Series:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read --input {path!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"--input {path!r} is not UTF-8 text (save the CSV as UTF-8)") from None
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"--input {path!r} is not a CSV file with a header ({exc})") from None
    columns = {str(c).strip().lower(): c for c in frame.columns}
    missing = [name for name in ("timestamp", "value") if name not in columns]
    if missing:
        raise InputError(
            f"--input {path!r} has no {' or '.join(repr(m) for m in missing)} column "
            f"(columns: {', '.join(map(str, frame.columns)) or 'none'})"
        )
    raw_ts = frame[columns["timestamp"]].astype(str).str.strip()
    timestamps = pd.to_datetime(raw_ts, errors="coerce", format="mixed", utc=True)
    bad = timestamps.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"--input {path!r} line {row + 2}: timestamp {raw_ts.iloc[row]!r} is not a date/time"
        )
    raw_values = frame[columns["value"]].astype(str).str.strip()
    values = pd.to_numeric(raw_values.replace("", np.nan), errors="coerce")
    bad = values.isna() & (raw_values != "")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"--input {path!r} line {row + 2}: value {raw_values.iloc[row]!r} is not a number"
        )
    if not np.isfinite(values.dropna()).all():
        row = int(np.flatnonzero(~np.isfinite(values.fillna(0)).to_numpy())[0])
        raise InputError(f"--input {path!r} line {row + 2}: value {raw_values.iloc[row]!r} "
                         "is not a finite number")  # fmt: skip
    return Series(raw_ts.tolist(), timestamps.reset_index(drop=True), values.astype(float))


def write_scores(path: str, raw_timestamps: list[str], values: pd.Series, scored: pd.DataFrame):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["timestamp", "value", "score", "is_anomaly", "alarm"])
    for ts, value, score, flag, alarm in zip(
        raw_timestamps, values, scored["score"], scored["is_anomaly"], scored["alarm"], strict=True
    ):
        writer.writerow(
            [
                ts,
                "" if pd.isna(value) else repr(float(value)),
                "" if pd.isna(score) else f"{float(score):.6f}",
                int(bool(flag)),
                int(bool(alarm)),
            ]
        )
    if path == "-":
        sys.stdout.write(buffer.getvalue())
        return
    try:
        Path(path).write_text(buffer.getvalue(), encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write --output {path!r}: {exc.strerror}") from None
