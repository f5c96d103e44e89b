"""Reading what an AppTest dataframe element shows: its column labels and formats."""

from __future__ import annotations

import json


def column_config(element) -> tuple[dict[str, str], dict[str, str]]:
    """The labels and number formats the table's ``st.column_config`` gives, by column."""
    config = json.loads(element.proto.columns)
    labels = {c: v["label"] for c, v in config.items() if "label" in v}
    formats = {c: v["type_config"]["format"] for c, v in config.items() if "type_config" in v}
    return labels, formats
