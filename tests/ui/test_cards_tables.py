"""KPI card formatting, colours and layout, and table column formats, through AppTest
where Streamlit draws them (issue 7)."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from analytics_core.kpis import delta_color, format_delta, format_kpi
from tests.ui.shown import only_table


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
    shown, labels, formats = only_table(_table_app)
    assert labels == {
        "endpoint": "Endpoint",
        "method": "Method",
        "requests": "Requests",
        "error_rate": "Error rate",
        "availability": "Availability",
        "p95_ms": "p95 latency",
        "cost": "Total cost",
    }
    # Availability and error rate both in %, as on their cards; thousands separators.
    assert formats == {
        "requests": "%,d",
        "error_rate": "percent",
        "availability": "percent",
        "p95_ms": "%,.1f ms",
        "cost": "%,.2f EUR",
    }
    # A wide table keeps its row names in view.
    assert json.loads(shown.proto.columns)["endpoint"].get("pinned") is True
    # Raw values stay in the data (downloads and sorting use them).
    assert shown.value["error_rate"].tolist() == [0.0123, 0.0]


def test_phone_layout_reflows_the_cards_two_per_row():
    # The layout itself is CSS, applied by the browser (the browser suite checks it at
    # 390 px); here: the cards sit in the keyed container the style targets, the style
    # is on the page, and the significance word the phone hides is still in the help.
    from analytics_app.ui.cards import CARDS_KEY, card_layout

    at = AppTest.from_function(_cards_app).run()
    assert not at.exception, at.exception
    [style] = [e for e in at.get("html") if CARDS_KEY in e.proto.body]
    assert style.proto.body == card_layout(4)
    phone = style.proto.body.split("@media (max-width: 640px)")[1]
    assert "calc(50% - 0.25rem)" in phone and "stMetricDeltaDescription" in phone
    [cards] = [b for b in at.main.children.values() if b.proto.id.endswith(f"-{CARDS_KEY}")]
    assert len(cards.get("metric")) == 3
    assert "Change vs previous period: not significant, p = 0.4" in at.metric[0].proto.help


# The cards container's width on common screens with the sidebar open: the viewport
# less the 300 px sidebar and the main block's 2 x 80 px padding (measured in Chromium).
def _container(viewport: int) -> int:
    return viewport - 300 - 160


def test_four_card_rows_wrap_to_two_on_a_laptop_with_the_sidebar_open():
    # At 1200-1366 px four cards of about 173-214 px cut "2.63 req/min", "1,807.…" and
    # "not significant". The container itself is queried, so the sidebar counts.
    from analytics_app.ui.cards import CARD_MIN_WIDTH_PX, CARDS_KEY, card_layout, reflow_width

    at = AppTest.from_function(_cards_app).run()  # per_row=4, as on Performance and Detection
    assert not at.exception, at.exception
    [style] = [e for e in at.get("html") if CARDS_KEY in e.proto.body]
    css = style.proto.body
    assert f".st-key-{CARDS_KEY} {{ container: {CARDS_KEY} / inline-size; }}" in css
    laptop = css.split(f"@container {CARDS_KEY} (max-width: {reflow_width(4) - 1}px)")[1]
    laptop = laptop.split("@media")[0]
    assert "flex-wrap: wrap" in laptop and "width: calc(50% - 8px)" in laptop
    # Laptops wrap; 1536 px and wider keep four cards a row, as before.
    for viewport in (1200, 1280, 1366, 1440):
        assert _container(viewport) < reflow_width(4), viewport
    for viewport in (1536, 1920):
        assert _container(viewport) >= reflow_width(4), viewport
    # Room for the widest value and delta line seen (about 200 px) inside the card's
    # 15 px padding and 1 px border.
    assert CARD_MIN_WIDTH_PX - 2 * 16 >= 200
    # A delta line too long anyway wraps the significance word instead of cutting it,
    # outside any width query; nothing else applies on a wide screen.
    wide = css.split("@container")[0]
    assert 'stMetricDeltaDescription"]) { flex-wrap: wrap; }' in wide
    assert "stColumn" not in wide
    # The Overview's three a row fit a 1200 px laptop (236 px cards) and keep their layout.
    assert reflow_width(3) <= _container(1200)
    assert "@container" not in card_layout(2)  # two a row is what the reflow makes


def _bottleneck_tables_app():
    import pandas as pd

    from analytics_app.ui.tables import table

    # As the Insights page's "Bottlenecks" expander gets them (bottleneck_tables).
    table(
        pd.DataFrame(
            {
                "algorithm": ["iforest", "lof"],
                "runs": [3641, 15705],
                "failed": [12, 3],
                "total_ms": [5813592.803, 1234.5],
                "run_share": [0.1882, 0.8118],
                "time_share": [0.2771, 0.7229],
                "runs_before": [3500.0, None],  # an algorithm new this period
                "time_share_before": [0.25, None],
            }
        ),
        currency="EUR",
    )


def test_bottleneck_table_has_human_headers_and_per_column_formats():
    shown, labels, formats = only_table(_bottleneck_tables_app)
    assert labels == {
        "algorithm": "Algorithm",
        "runs": "Runs",
        "failed": "Failed detections",
        "total_ms": "Total time",
        "run_share": "Share of runs",
        "time_share": "Share of time",
        "runs_before": "Runs (previous period)",
        "time_share_before": "Share of time (previous period)",
    }
    assert formats == {
        "runs": "%,d",  # 3,641 beside 15,705, not 3641
        "failed": "%,d",
        "total_ms": "%,.0f ms",  # 5,813,593 ms, not 5813592.803
        "run_share": "percent",  # 27.71%, not 0.2771
        "time_share": "percent",
        "runs_before": "%,d",
        "time_share_before": "percent",
    }
    # Raw values stay in the data: downloads and sorting use them.
    assert shown.value["time_share"].tolist() == [0.2771, 0.7229]
    assert shown.value["total_ms"].tolist() == [5813592.803, 1234.5]


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
