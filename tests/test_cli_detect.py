"""``analytics detect-anomalies``: output shape and order, and every bad input named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics_core.cli import main


def write_series(path, spike_at: int, n: int = 24 * 21, header=("TimeStamp", "Value")):
    rng = np.random.default_rng(3)
    ts = pd.date_range("2026-01-05", periods=n, freq="h")
    values = 100 + 30 * np.sin(2 * np.pi * np.arange(n) / 24) + rng.normal(0, 3, n)
    values[spike_at] += 150
    frame = pd.DataFrame({header[0]: ts.strftime("%Y-%m-%d %H:%M:%S"), header[1]: values})
    frame["Label"] = 0  # extra columns are ignored
    frame.to_csv(path, index=False)
    return frame


def test_scores_every_row_in_order_and_finds_the_spike(tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    frame = write_series(src, spike_at=24 * 18 + 5)
    assert main(["detect-anomalies", "--input", str(src), "--output", str(out)]) == 0
    result = pd.read_csv(out)
    assert list(result.columns) == ["timestamp", "value", "score", "is_anomaly", "alarm"]
    assert result["timestamp"].tolist() == frame["TimeStamp"].tolist()
    np.testing.assert_allclose(result["value"], frame["Value"])
    assert set(result["is_anomaly"].unique()) <= {0, 1}
    assert result.loc[24 * 18 + 5, "is_anomaly"] == 1
    # The start of the series has no history: no score, no flag, rather than a guess.
    assert pd.isna(result.loc[0, "score"]) and result.loc[0, "is_anomaly"] == 0
    scored = result.dropna(subset=["score"])
    assert ((scored["score"] >= 0.5) == (scored["is_anomaly"] == 1)).all()
    # One incident, one alarm: on the spike, the first (and only) flagged point.
    assert result.index[result["alarm"] == 1].tolist() == [24 * 18 + 5]


def test_alarm_is_the_first_point_of_each_episode_round_trip(tmp_path):
    # Two incidents two days apart, each several hours long: two alarms, on their first
    # hours, while is_anomaly marks every anomalous hour of the first.
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    frame = write_series(src, spike_at=24 * 15)
    frame.loc[24 * 15 : 24 * 15 + 3, "Value"] += 150
    frame.loc[24 * 17 : 24 * 17 + 2, "Value"] -= 150
    frame.to_csv(src, index=False)
    assert main(["detect-anomalies", "--input", str(src), "--output", str(out)]) == 0
    result = pd.read_csv(out)
    assert set(result["alarm"].unique()) <= {0, 1}
    assert result.index[result["alarm"] == 1].tolist() == [24 * 15, 24 * 17]
    assert (result.loc[24 * 15 : 24 * 15 + 3, "is_anomaly"] == 1).all()
    assert (result.loc[result["alarm"] == 1, "is_anomaly"] == 1).all()


def test_sensitivity_changes_how_much_is_flagged(tmp_path):
    src = tmp_path / "in.csv"
    write_series(src, spike_at=400)
    counts = []
    for s in ("1.5", "6"):
        out = tmp_path / f"out{s}.csv"
        assert main(["detect-anomalies", "--input", str(src), "--output", str(out),
                     "--sensitivity", s]) == 0  # fmt: skip
        counts.append(pd.read_csv(out)["is_anomaly"].sum())
    assert counts[0] > counts[1] >= 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("time,value\n2026-01-01,1\n", "no 'timestamp' column"),
        ("timestamp,amount\n2026-01-01,1\n", "no 'value' column"),
        ("timestamp,value\n2026-01-01,1\nsoon,2\n", "line 3: timestamp 'soon'"),
        ("timestamp,value\n2026-01-01,1\n2026-01-02,lots\n", "line 3: value 'lots'"),
        ("", "not a CSV file"),
    ],
)
def test_bad_input_is_named_with_exit_2(tmp_path, capsys, content, message):
    src = tmp_path / "in.csv"
    src.write_text(content)
    code = main(["detect-anomalies", "--input", str(src), "--output", str(tmp_path / "o.csv")])
    assert code == 2
    assert message in capsys.readouterr().err


def test_missing_input_file_and_bad_sensitivity(tmp_path, capsys):
    assert main(["detect-anomalies", "--input", str(tmp_path / "nope.csv"), "--output", "-"]) == 2
    assert "cannot read --input" in capsys.readouterr().err
    src = tmp_path / "in.csv"
    write_series(src, spike_at=5, n=30)
    assert main(["detect-anomalies", "--input", str(src), "--output", "-",
                 "--sensitivity", "0"]) == 2  # fmt: skip
    assert "--sensitivity" in capsys.readouterr().err


def test_empty_values_are_missing_points(tmp_path, capsys):
    src = tmp_path / "in.csv"
    frame = write_series(src, spike_at=300)
    frame.loc[[100, 200], "Value"] = np.nan
    frame.to_csv(src, index=False)
    assert main(["detect-anomalies", "--input", str(src), "--output", "-"]) == 0
    out = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert len(out) == len(frame)
    assert out.loc[[100, 200], "score"].isna().all()
    assert (out.loc[[100, 200], "is_anomaly"] == 0).all()


def test_utf16_and_unscorable_series_are_named(tmp_path, capsys):
    utf16 = tmp_path / "excel.csv"
    utf16.write_text("timestamp,value\n2026-01-01,1\n", encoding="utf-16")
    assert main(["detect-anomalies", "--input", str(utf16), "--output", "-"]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    far = tmp_path / "far.csv"
    rows = [f"2026-01-01T00:00:{s:02d},1" for s in range(30)] + ["3000-01-01T00:00:00,2"]
    far.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    assert main(["detect-anomalies", "--input", str(far), "--output", "-"]) == 2
    assert "cannot score this series" in capsys.readouterr().err
