"""Reading what an AppTest dataframe element shows: its column labels and formats."""

from __future__ import annotations

import json


def column_config(element) -> tuple[dict[str, str], dict[str, str]]:
    """The labels and number formats the table's ``st.column_config`` gives, by column."""
    config = json.loads(element.proto.columns)
    labels = {c: v["label"] for c, v in config.items() if "label" in v}
    formats = {c: v["type_config"]["format"] for c, v in config.items() if "type_config" in v}
    return labels, formats


def only_table(app) -> tuple[object, dict[str, str], dict[str, str]]:
    """Run ``app`` (a function AppTest can run) and return its one dataframe element with
    its column labels and formats; fails if the script raised or shows another count."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(app).run()
    assert not at.exception, at.exception
    [element] = at.dataframe
    return element, *column_config(element)
