"""Insights: findings derived from the KPIs and series, each with its evidence.

``thresholds`` checks KPIs against the config's ``alerts:`` section; trend,
anomaly and forecast detectors join it as further modules.
"""

from analytics_core.insights.thresholds import Insight, check_thresholds

__all__ = ["Insight", "check_thresholds"]
