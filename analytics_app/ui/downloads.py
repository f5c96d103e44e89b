"""The downloads of a page: exactly what it shows, with the filters recorded."""

from __future__ import annotations

import streamlit as st

from analytics_core.exports import file_stem, to_csv, to_json
from analytics_core.page_data import PageData


def downloads(data: PageData) -> None:
    """CSV and JSON of exactly what the page shows, with the filters recorded."""
    from analytics_app.ui.data import config

    if not config().features.exports:
        return
    stem = file_stem(data)  # the page's zone and offsets, not UTC
    left, right, _ = st.columns([1, 1, 4])
    with left:
        st.download_button(
            "Download CSV",
            to_csv(data),
            file_name=f"{stem}.csv",
            mime="text/csv",
            on_click="ignore",
            icon=":material/download:",
        )
    with right:
        st.download_button(
            "Download JSON",
            to_json(data),
            file_name=f"{stem}.json",
            mime="application/json",
            on_click="ignore",
            icon=":material/download:",
        )
