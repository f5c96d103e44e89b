"""Incremental rollups: pre-aggregated ``rollup_*`` tables at hour, day and month grain.

- :mod:`~analytics_core.rollup.schema`: the tables (own ``MetaData``; never the contract's)
  and the read-side helpers :func:`~analytics_core.rollup.schema.watermark` and
  :func:`~analytics_core.rollup.schema.rollup_exists`.
- :mod:`~analytics_core.rollup.sketch`: the log-bucket (DDSketch-style) percentile sketch.
- :mod:`~analytics_core.rollup.refresh`: maintenance (``analytics rollup``), the only writer.

The maintenance job writes only ``rollup_*`` tables; the source (contract) tables are
never written, and the app reads the rollups through its read-only connections.
"""
