"""Pseudonymised exports: no raw user id leaves, the same id reads the same everywhere."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import stat
from datetime import UTC, datetime

import pandas as pd

from analytics_core.anonymise import anonymised_frame, deployment_key
from analytics_core.exports import table_export
from analytics_core.filters import make_filters

FILTERS = make_filters(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 8, tzinfo=UTC))
USERS = ["alice@example.com", "bob", "alice@example.com", None, "ïñ 東京"]


def audit_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "at": pd.date_range("2026-11-02", periods=5, freq="h", tz="UTC"),
            "user": USERS,
            "action": ["view", "export", "export", "denied", "view"],
            "client": ["10.0.0.1", "10.0.0.2", "10.0.0.1", None, "10.0.0.3"],
            "rows": [None, 12, 40, None, None],
            "filters": [None, '{"users": ["bob"]}', None, None, None],
            "detail": [None, None, None, "the business page is not open to bob", None],
        }
    )


def test_exports_carry_no_raw_user_and_the_same_pseudonym_for_the_same_user():
    key = b"deployment key"
    csv = table_export("audit", audit_frame(), FILTERS, "csv", key).decode()
    js = table_export("audit", audit_frame(), FILTERS, "json", key).decode()
    for raw in ("alice@example.com", "bob", "東京", "10.0.0.1", "10.0.0.2"):
        assert raw not in csv and raw not in js
    table = pd.read_csv(io.StringIO(csv), comment="#")
    want = "u_" + hmac.new(key, b"alice@example.com", hashlib.sha256).hexdigest()[:16]
    assert list(table["user"])[:3] == [want, table["user"][1], want]
    assert table["user"].nunique() == 3 and table["user"].isna().sum() == 1  # counts survive
    rows = json.loads(js)["rows"]
    assert [r["user"] for r in rows] == [None if pd.isna(u) else u for u in table["user"]]
    # Other columns are untouched, but free text naming a user names its pseudonym.
    assert list(table["action"]) == ["view", "export", "export", "denied", "view"]
    bob = "u_" + hmac.new(key, b"bob", hashlib.sha256).hexdigest()[:16]
    assert table["detail"][3] == f"the business page is not open to {bob}"
    assert json.loads(table["filters"][1]) == {"users": [bob]}


def test_without_a_key_nothing_is_replaced_and_another_key_gives_other_pseudonyms():
    plain = table_export("audit", audit_frame(), FILTERS, "csv").decode()
    assert "alice@example.com" in plain
    one = anonymised_frame(audit_frame(), b"k1")["user"].tolist()
    two = anonymised_frame(audit_frame(), b"k2")["user"].tolist()
    assert one[0] != two[0] and one[0] == one[2]


def test_the_deployment_key_comes_from_its_variable_else_a_kept_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_KEY", "from-env")
    assert deployment_key("MY_KEY") == b"from-env"
    monkeypatch.delenv("MY_KEY")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setattr(
        "platformdirs.user_data_path", lambda app: tmp_path / app
    )  # the per-user directory, here
    first = deployment_key("MY_KEY")
    assert len(first) == 32 and deployment_key("MY_KEY") == first  # stable across exports
    kept = tmp_path / "anomaly-analytics" / "anonymise.key"
    assert stat.S_IMODE(os.stat(kept).st_mode) == 0o600
