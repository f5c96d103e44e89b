"""KPI card formatting and colours, and table column formats, through AppTest where
Streamlit draws them (issue 7, problems 6, 8 and 9)."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from analytics_core.kpis import delta_color, format_delta, format_kpi


@pytest.mark.parametrize(
    ("per_second", "text"),
    [
        (2.5, "2.50 req/s"),
        (0.05, "3.00 req/min"),  # 0.05 * 60
        (0.003, "10.80 req/h"),  # 0.003 * 3600; was "0.003 req/s"
        (1 / 7200, "0.50 req/h"),
        (0.0, "0 req/s"),
    ],
)
def test_tiny_throughput_reads_in_a_unit_that_fits(per_second, text):
    assert format_kpi("throughput_rps", per_second) == text


def test_throughput_delta_in_the_value_unit():
    # 10.8 req/h against 7.2 req/h: the delta is 3.6 req/h, not "+0.001 req/s".
    assert format_delta("throughput_rps", 0.003, 0.002) == "+3.60 req/h"


def test_zero_change_has_no_sign_and_colour_is_off_unless_significant():
    assert format_delta("total_cost", 10.001, 10.0, "EUR") == "±0.00 EUR"
    assert delta_color("total_cost", significant=False) == "off"
    assert delta_color("total_cost", significant=True) == "inverse"  # a rise is bad
    assert delta_color("availability", significant=True) == "normal"
    assert delta_color("requests", significant=True) == "off"  # volumes are neutral


def _cards_app():
    from datetime import UTC, datetime

    from analytics_app.ui.cards import kpi_cards
    from analytics_core.filters import date_range, make_filters
    from analytics_core.insights.compare import Change
    from analytics_core.page_data import PageData

    start, end = date_range(datetime(2026, 3, 1).date(), datetime(2026, 3, 7).date(), "UTC")
    noise = Change(110.0, 100.0, 10.0, 0.1, 0.4, False, "test")
    real = Change(0.9, 0.99, -0.09, -0.09, 0.001, True, "test")
    page = PageData(
        page="business",
        filters=make_filters(start, end, "UTC"),
        generated_at=datetime(2026, 3, 8, tzinfo=UTC),
        kpis={"total_cost": 110.0, "availability": 0.9, "active_users": 40},
        previous={"total_cost": 100.0, "availability": 0.99, "active_users": None},
        currency="EUR",
        changes={"total_cost": noise, "availability": real},
    )
    kpi_cards(page)


def test_cards_colour_only_significant_changes_and_say_why_no_delta():
    at = AppTest.from_function(_cards_app).run()
    assert not at.exception, at.exception
    cost, availability, users = at.metric
    # Not significant: grey, although a cost rise is bad.
    assert cost.proto.delta == "+10.00 EUR" and cost.proto.color == cost.proto.GRAY
    assert cost.proto.delta_description == "not significant"
    assert "p = 0.4" in cost.proto.help
    # Significant fall of a higher-is-better figure: red, with a down arrow.
    assert availability.proto.delta == "-9.00 pp"
    assert availability.proto.color == availability.proto.RED
    assert availability.proto.direction == availability.proto.DOWN
    assert availability.proto.delta_description == "significant"
    # No previous period: a reason, no arrow, no colour.
    assert users.proto.delta == "no previous period"
    assert users.proto.direction == users.proto.NONE and users.proto.color == users.proto.GRAY


def _table_app():
    import pandas as pd

    from analytics_app.ui.tables import table

    frame = pd.DataFrame(
        {
            "endpoint": ["/v1/detect", "/v1/health"],
            "method": ["POST", "GET"],
            "requests": [12345, 67],
            "error_rate": [0.0123, 0.0],
            "availability": [0.9877, 1.0],
            "p95_ms": [1234.56, 8.0],
            "cost": [1234.5, 0.25],
        }
    )
    table(frame, currency="EUR")


def test_table_headers_are_human_and_formats_match_the_cards():
    at = AppTest.from_function(_table_app).run()
    assert not at.exception, at.exception
    [shown] = at.dataframe
    config = json.loads(shown.proto.columns)
    labels = {c: v["label"] for c, v in config.items() if "label" in v}
    assert labels == {
        "endpoint": "Endpoint",
        "method": "Method",
        "requests": "Requests",
        "error_rate": "Error rate",
        "availability": "Availability",
        "p95_ms": "p95 latency",
        "cost": "Total cost",
    }
    formats = {c: v["type_config"]["format"] for c, v in config.items() if "type_config" in v}
    # Availability and error rate both in %, as on their cards; thousands separators.
    assert formats == {
        "requests": "%,d",
        "error_rate": "percent",
        "availability": "percent",
        "p95_ms": "%,.1f ms",
        "cost": "%,.2f EUR",
    }
    assert config["endpoint"].get("pinned") is True  # a wide table keeps its row names
    # Raw values stay in the data (downloads and sorting use them).
    assert shown.value["error_rate"].tolist() == [0.0123, 0.0]


def test_phone_layout_reflows_the_cards_two_per_row():
    # The layout itself is CSS, applied by the browser (the browser suite checks it at
    # 390 px); here: the cards sit in the keyed container the style targets, the style
    # is on the page, and the significance word the phone hides is still in the help.
    from analytics_app.ui.cards import CARDS_KEY, PHONE_LAYOUT

    at = AppTest.from_function(_cards_app).run()
    assert not at.exception, at.exception
    [style] = [e for e in at.get("html") if CARDS_KEY in e.proto.body]
    assert style.proto.body == PHONE_LAYOUT
    assert "@media (max-width: 640px)" in PHONE_LAYOUT and "calc(50% " in PHONE_LAYOUT
    [cards] = [b for b in at.main.children.values() if b.proto.id.endswith(f"-{CARDS_KEY}")]
    assert len(cards.get("metric")) == 3
    assert "Change vs previous period: not significant, p = 0.4" in at.metric[0].proto.help


def _unchanged_but_tested_app():
    from datetime import UTC, datetime

    from analytics_app.ui.cards import kpi_cards
    from analytics_core.filters import date_range, make_filters
    from analytics_core.insights.compare import Change
    from analytics_core.page_data import PageData

    start, end = date_range(datetime(2026, 11, 20).date(), datetime(2026, 11, 22).date(), "UTC")
    # The per-bucket test finds a significant shift; the range's distinct users are equal.
    shifted = Change(127.0, 127.0, 0.0, 0.0, 2.43e-06, True, "Mann-Whitney U")
    page = PageData(
        page="business",
        filters=make_filters(start, end, "UTC"),
        generated_at=datetime(2026, 11, 23, tzinfo=UTC),
        kpis={"active_users": 127},
        previous={"active_users": 127},
        changes={"active_users": shifted},
    )
    kpi_cards(page)


def test_an_unchanged_figure_is_neither_coloured_nor_called_significant():
    at = AppTest.from_function(_unchanged_but_tested_app).run()
    assert not at.exception, at.exception
    [users] = at.metric
    assert users.proto.delta == "±0"
    assert users.proto.color == users.proto.GRAY and users.proto.direction == users.proto.NONE
    assert users.proto.delta_description == ""  # no "significant" beside "±0"
