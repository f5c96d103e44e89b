"""Threshold checks: each ``alerts:`` rule of the config against its KPI's value."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from analytics_core.config import AlertRule
from analytics_core.kpis import KPIS, format_kpi, is_missing

Status = Literal["firing", "ok", "no_data"]
_SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
_STATUS_RANK = {"firing": 0, "no_data": 1, "ok": 2}


@dataclass(frozen=True)
class Insight:
    kind: str
    kpi: str
    status: Status
    severity: str
    value: float | None
    threshold: float
    comparison: str
    message: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def check_thresholds(
    rules: tuple[AlertRule, ...], values: dict[str, float | int | None], currency: str = "USD"
) -> list[Insight]:
    """One insight per rule whose KPI is in ``values``: firing first, by severity."""
    out = []
    for rule in rules:
        if rule.kpi not in values:
            continue
        value = values[rule.kpi]
        label = KPIS[rule.kpi].label
        limit = format_kpi(rule.kpi, rule.threshold, currency)
        if is_missing(value):
            status: Status = "no_data"
            message = f"{label} ({rule.kpi}) has no data in this range; threshold {limit} unchecked"
        else:
            breached = value > rule.threshold if rule.above is not None else value < rule.threshold
            status = "firing" if breached else "ok"
            shown = format_kpi(rule.kpi, value, currency)
            word = "above" if rule.above is not None else "below"
            verb = "is" if breached else "is not"
            message = f"{label} ({rule.kpi}) {verb} {word} its threshold: {shown} vs {limit}"
        out.append(
            Insight(
                kind="threshold",
                kpi=rule.kpi,
                status=status,
                severity=rule.severity,
                value=None if is_missing(value) else float(value),  # type: ignore[arg-type]
                threshold=rule.threshold,
                comparison=rule.comparison,
                message=message,
            )
        )
    return sorted(out, key=lambda i: (_STATUS_RANK[i.status], _SEVERITY_RANK[i.severity], i.kpi))
