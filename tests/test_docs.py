"""README.md documents every config key and every KPI (in the spirit of Datasette's
test_docs.py): the keys come from the config models, so a new one fails until written up."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, get_args, get_origin

import pytest
from pydantic import BaseModel

from analytics_core.config import AlertRule, Config
from analytics_core.kpis import KPIS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def readme_section(heading: str) -> str:
    """The text under ``## <heading>...`` up to the next level-2 heading."""
    match = re.search(rf"^## {re.escape(heading)}.*?$(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"README.md has no '## {heading}' section"
    return match.group(1)


def expand_braces(key: str) -> list[str]:
    """``costs.{currency,compute_hour}`` -> ``costs.currency``, ``costs.compute_hour``."""
    match = re.search(r"\{([^{}]*)\}", key)
    if not match:
        return [key]
    head, tail = key[: match.start()], key[match.end() :]
    return [k for part in match.group(1).split(",") for k in expand_braces(head + part + tail)]


def documented_rows() -> dict[str, str]:
    """Each key of the configuration table (braces expanded) -> the text of its row."""
    rows = {}
    for line in readme_section("Configuration").splitlines():
        cell = re.match(r"\|\s*`([^`]+)`\s*\|", line)
        if cell:
            rows.update(dict.fromkeys(expand_braces(cell.group(1)), line))
    return rows


def config_keys(model: type[BaseModel] = Config, prefix: str = "") -> Iterator[str]:
    """Every key a config file may set, as dotted paths, from the models themselves.

    A mapping-typed section (``alerts``, ``insights.capacity``) yields its own key, plus
    one key per allowed name when its keys are a fixed set (the capacity series)."""
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from config_keys(annotation, key + ".")
            continue
        yield key
        if get_origin(annotation) is dict:
            key_type = get_args(annotation)[0]
            if get_origin(key_type) is Literal:
                yield from (f"{key}.{allowed}" for allowed in get_args(key_type))


def is_documented(key: str, rows: dict[str, str]) -> bool:
    # A mapping section is documented by the keys inside it: `alerts.<kpi>` for `alerts`.
    return key in rows or any(row.startswith(f"{key}.") for row in rows)


def test_the_readme_table_is_read():
    rows = documented_rows()
    assert "dashboard.title" in rows and "costs.per_1000_api_calls" in rows
    assert expand_braces("a.{b,c}.{d,e}") == ["a.b.d", "a.b.e", "a.c.d", "a.c.e"]
    assert not is_documented("dashboard.no_such_key", rows)


def test_config_keys_come_from_the_models():
    keys = list(config_keys())
    assert "data_sources.redis.ttl_seconds" in keys and "alerts" in keys
    assert {"insights.capacity", "insights.capacity.requests_per_day"} <= set(keys)
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("key", list(config_keys()))
def test_config_key_is_documented(key):
    assert is_documented(key, documented_rows()), (
        f"config key {key} is missing from README.md's configuration table"
    )


@pytest.mark.parametrize(
    "field", [f.alias or n for n, f in AlertRule.model_fields.items() if not f.exclude]
)
def test_alert_rule_field_is_documented(field):
    [row] = [row for key, row in documented_rows().items() if key.startswith("alerts.")]
    assert re.search(rf"\b{field}\b", row), f"alert rule field {field!r} not in README's row"


@pytest.mark.parametrize("kpi", list(KPIS))
def test_kpi_is_defined_in_the_readme(kpi):
    assert f"`{kpi}`" in readme_section("KPI definitions"), (
        f"KPI {kpi} is missing from README.md's KPI definitions"
    )
