"""Tables of PageData frames."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import streamlit as st


def table(frame: pd.DataFrame, percent_columns: Sequence[str] = ()) -> None:
    config = {
        c: st.column_config.NumberColumn(format="percent")
        for c in percent_columns
        if c in frame.columns
    }
    st.dataframe(frame, hide_index=True, column_config=config, width="stretch")
