"""Insights: findings derived from the KPIs and series, each with its evidence.

``model`` is the record; ``thresholds`` (config alerts with hysteresis),
``anomalies`` (seasonal robust detector), ``trends``, ``compare`` (previous
period), ``forecast`` (capacity) are the detectors; ``stories/`` turns their findings
into stories, one module per kind; ``feed`` runs them all.
"""

from analytics_core.insights.model import Insight, rank
from analytics_core.insights.thresholds import check_thresholds

__all__ = ["Insight", "check_thresholds", "rank"]
