"""PromQL text from the config's metric and label names and the filters' values.

Names come from the config, which checks them against the PromQL grammar
(:data:`METRIC_NAME`, :data:`LABEL_NAME`); values come from users (a tenant, an endpoint)
and only ever appear inside string literals: :func:`quoted` escapes them, and a regex
alternation escapes its members (:func:`regex_literal`) first, so a hostile value can
neither end the string nor widen the match.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# RE2's metacharacters: escaped with a backslash, each matches itself.
_RE2_META = frozenset("\\.+*?()|[]{}^$")

Matcher = str | Sequence[str]  # one value (=), or any of several (=~ an alternation)


def quoted(value: str) -> str:
    """A PromQL double-quoted string literal holding exactly ``value`` (Go's escapes,
    which JSON's are a subset of). Non-ASCII stays as it is: JSON would write a character
    beyond U+FFFF as a surrogate pair, which PromQL's lexer refuses."""
    return json.dumps(value, ensure_ascii=False)


def regex_literal(value: str) -> str:
    """An RE2 pattern matching exactly ``value``."""
    return "".join("\\" + c if c in _RE2_META else c for c in value)


def selector(
    metric: str,
    matchers: Mapping[str, Matcher] | None = None,
    patterns: Mapping[str, str] | None = None,
) -> str:
    """``metric{label="value", other=~"a|b"}``; a label given no values is an error (a
    caller with nothing to match must not ask). ``patterns``: regexes written in code
    (``status=~"5.."``), never from input."""
    if not METRIC_NAME.fullmatch(metric):
        raise ValueError(f"not a Prometheus metric name: {metric!r}")
    parts = []
    for label, value in (matchers or {}).items():
        if not LABEL_NAME.fullmatch(label):
            raise ValueError(f"not a Prometheus label name: {label!r}")
        if isinstance(value, str):
            parts.append(f"{label}={quoted(value)}")
        elif not value:
            raise ValueError(f"no values to match for label {label!r}")
        else:
            alternation = "|".join(regex_literal(v) for v in sorted(set(value)))
            parts.append(f"{label}=~{quoted(alternation)}")
    for label, pattern in (patterns or {}).items():
        parts.append(f"{label}=~{quoted(pattern)}")
    return metric + ("{" + ",".join(parts) + "}" if parts else "")


def duration(seconds: float) -> str:
    """A PromQL duration of whole seconds (at least one)."""
    return f"{max(1, round(seconds))}s"
