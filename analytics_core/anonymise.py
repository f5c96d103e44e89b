"""Pseudonyms for user-level identifiers in exports: a keyed hash (HMAC-SHA256) of each
value, the same for the same value in every export of one deployment (one key), so an
analyst can still count distinct users and join exports, but not read who they are.

The key comes from the environment variable the config names; without one, a random key
is made once and kept in the per-user data directory (mode 0600), so the pseudonyms
stay stable on that machine. Deployments with several machines set the variable.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import replace

import pandas as pd
import platformdirs

from analytics_core.config import ConfigError, config_path
from analytics_core.page_data import PageData

# Columns holding who someone is: platform users, the app's own users (the audit log's
# `user`) and their client addresses.
USER_COLUMNS = ("user_id", "user", "user_name", "client")
KEY_FILE = "anonymise.key"


def deployment_key(env_name: str) -> bytes:
    """The key in ``$env_name``, else this machine's kept key (made on first use)."""
    if value := os.environ.get(env_name):
        return value.encode("utf-8")
    path = platformdirs.user_data_path("anomaly-analytics") / KEY_FILE
    try:
        try:
            return bytes.fromhex(path.read_text(encoding="ascii").strip())
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # O_EXCL: of two first uses at once, one writes and both read its key
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return bytes.fromhex(path.read_text(encoding="ascii").strip())
        key = secrets.token_bytes(32)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(key.hex())
        return key
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(
            config_path(), "exports.anonymise_key_env",
            f"${env_name} set (no key could be kept in {path}: {reason})",
        ) from None  # fmt: skip


def pseudonym(value: object, key: bytes) -> str:
    return "u_" + hmac.new(key, str(value).encode("utf-8"), hashlib.sha256).hexdigest()[:16]


# Free text that may name the users of the columns above (the audit log's refusal
# reasons and recorded selections): their names in it are replaced too.
TEXT_COLUMNS = ("detail", "filters")


def anonymised_frame(frame: pd.DataFrame, key: bytes) -> pd.DataFrame:
    """``frame`` with every user-level column's values replaced by their pseudonyms
    (missing values stay missing), and those values wherever free text names them."""
    columns = [c for c in frame.columns if c in USER_COLUMNS]
    if not columns:
        return frame
    out = frame.copy()
    named = {str(v) for c in columns for v in frame[c].dropna().unique() if str(v)}
    for column in columns:
        out[column] = out[column].map(lambda v: None if pd.isna(v) else pseudonym(v, key))
    # Longest first, so "ann@x.org" is not half-replaced as "ann".
    ordered = sorted(named, key=len, reverse=True)
    for column in (c for c in TEXT_COLUMNS if c in frame.columns):
        out[column] = out[column].map(lambda t: _replaced(t, ordered, key))
    return out


def _replaced(text: object, names: list[str], key: bytes) -> object:
    if not isinstance(text, str):
        return text
    for name in names:
        if name in text:
            text = text.replace(name, pseudonym(name, key))
    return text


def anonymised_page(data: PageData, key: bytes) -> PageData:
    """``data`` with user-level identifiers in its series and insight evidence replaced."""
    series = {name: anonymised_frame(frame, key) for name, frame in data.series.items()}
    insights = [
        i if i.evidence is None else replace(i, evidence=anonymised_frame(i.evidence, key))
        for i in data.insights
    ]
    return replace(data, series=series, insights=insights)
