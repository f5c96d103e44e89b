"""Figures from a real Prometheus (``data_sources.prometheus``): PromQL built from the
config's metric names (:mod:`.promql`), asked through ``prometheus-api-client``
(:mod:`.client`)."""
