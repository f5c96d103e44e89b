"""The insight record every detector produces, and its evidence.

An insight is one plain sentence backed by numbers: the method that found it,
the baseline it was compared with, how sure we are (``score``), and an evidence
frame that a chart can draw (value, baseline band, flagged points).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

Severity = Literal["critical", "warning", "info"]
# resolved: it happened in the range and has cleared since.
Status = Literal["firing", "resolved", "ok", "no_data", "learning"]
SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
# How each status reads to a person (the app's stories and the PDF report alike).
STATUS_TEXT = {
    "firing": "active",
    "resolved": "resolved",
    "learning": "learning",
    "no_data": "no data",
    "ok": "ok",
}
# Evidence frames use these columns (missing ones are simply not drawn).
EVIDENCE_COLUMNS = (
    "bucket",
    "value",
    "baseline",
    "lower",
    "upper",
    "threshold",
    "flagged",
    "forecast",
    "unjudged",  # values of buckets with too few events to judge, drawn apart
    "events",  # the events behind each bucket's value
)


@dataclass(frozen=True)
class Insight:
    kind: str  # threshold | anomaly | trend | change | bottleneck | forecast
    area: str  # detection | performance | business
    kpi: str | None
    status: Status
    severity: Severity
    score: float  # ranking strength in [0, 1]; higher = more important/certain
    message: str  # one plain sentence, numbers included
    method: str = ""  # how it was found, e.g. "Mann-Kendall (Hamed-Rao) on daily values"
    baseline: str = ""  # what it was compared with, e.g. "previous 7 days"
    recommendation: str | None = None  # derived from this insight's own evidence
    details: dict[str, object] = field(default_factory=dict)  # the numbers behind it
    evidence: pd.DataFrame | None = field(default=None, compare=False)

    @property
    def value(self) -> object:
        return self.details.get("value")

    def as_dict(self, with_evidence: bool = True) -> dict[str, object]:
        out: dict[str, object] = {
            "kind": self.kind,
            "area": self.area,
            "kpi": self.kpi,
            "status": self.status,
            "severity": self.severity,
            "score": self.score,
            "message": self.message,
            "method": self.method,
            "baseline": self.baseline,
            "recommendation": self.recommendation,
            "details": dict(self.details),
        }
        if with_evidence:
            out["evidence"] = None if self.evidence is None else self.evidence
        return out


# Within a severity: incidents (something happened) before patterns (how things move)
# before structure (where the cost sits).
KIND_RANK = {
    "threshold": 0, "anomaly": 0, "forecast": 1, "trend": 1, "change": 1, "bottleneck": 2,
}  # fmt: skip
_STATUS_RANK = {"firing": 0, "resolved": 1, "learning": 2, "no_data": 3, "ok": 4}


def rank(insights: list[Insight]) -> list[Insight]:
    """Stories before quiet checks; then by severity, kind, active before resolved,
    and strength."""
    return sorted(
        insights,
        key=lambda i: (
            i.status in ("learning", "no_data", "ok"),
            SEVERITY_RANK[i.severity],
            KIND_RANK.get(i.kind, 3),
            _STATUS_RANK[i.status],
            -i.score,
            i.kpi or "",
        ),
    )


def evidence_frame(
    buckets: pd.Series | pd.Index,
    values: pd.Series,
    baseline: pd.Series | None = None,
    lower: pd.Series | None = None,
    upper: pd.Series | None = None,
    flagged: pd.Series | None = None,
) -> pd.DataFrame:
    frame = pd.DataFrame({"bucket": pd.Series(buckets).to_numpy(), "value": values.to_numpy()})
    for name, col in (("baseline", baseline), ("lower", lower), ("upper", upper)):
        if col is not None:
            frame[name] = pd.Series(col).to_numpy(dtype=float)
    if flagged is not None:
        frame["flagged"] = pd.Series(flagged).fillna(False).to_numpy(dtype=bool)
    return frame
