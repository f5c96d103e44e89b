"""One story per incident: overlapping episode stories of one incident merged into
one, and previous-period changes those episodes already tell left out."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from analytics_core.insights.model import SEVERITY_RANK, Insight
from analytics_core.insights.stories.common import WATCHED
from analytics_core.kpis import KPIS, format_kpi

# One slow or failing dependency shows in p95, p99 and the error rate at once, and the
# threshold rules on error rate and availability see the same burst: anomaly episodes of
# these and threshold episodes on them (availability as the error rate's mirror) that
# overlap in time (on the same endpoint, where one is singled out) are one incident and
# one story.
REQUEST_PATH = ("p95_ms", "p99_ms", "error_rate")
# A KPI shown as its mirror, with the direction flipped when the mirror is its complement.
MIRROR = {"availability": ("error_rate", True), "avg_response_ms": ("avg_ms", False),
          "api_calls": ("requests", False)}  # fmt: skip
_NEVER_ENDED = pd.Timestamp.max.tz_localize("UTC")


def _span(insight: Insight) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The episode a story tells: an anomaly's, or a threshold story's latest one."""
    if insight.kind == "threshold":
        last = insight.details["episodes"][-1]  # type: ignore[index]
        start, end = last["start"], last["end"]
    else:
        start, end = insight.details["episode_start"], insight.details.get("episode_end")
    return (
        pd.Timestamp(start),  # type: ignore[arg-type]
        _NEVER_ENDED if end is None else pd.Timestamp(end),  # type: ignore[arg-type]
    )


def _same_incident(a: Insight, b: Insight) -> bool:
    (a0, a1), (b0, b1) = _span(a), _span(b)
    ea, eb = a.details.get("endpoint"), b.details.get("endpoint")
    return a0 < b1 and b0 < a1 and (ea is None or eb is None or ea == eb)


def _episode_kpi(insight: Insight) -> str | None:
    """The KPI an episode story is about (a mirror as its original), or None when the
    story tells no episode."""
    if insight.status not in ("firing", "resolved") or insight.kpi is None:
        return None
    kpi = MIRROR.get(insight.kpi, (insight.kpi, False))[0]
    if insight.kind == "anomaly":
        return kpi
    if insight.kind == "threshold" and insight.details.get("episodes"):
        return kpi  # an info-level story about unjudged buckets has no episode: left alone
    return None


def _family(kpi: str) -> str:
    """Metrics whose overlapping episodes are one incident: the request path's, or one
    KPI with itself (its threshold and its anomaly stories)."""
    return "request path" if kpi in REQUEST_PATH else kpi


def merge_incidents(insights: list[Insight]) -> list[Insight]:
    """Overlapping episode stories of one incident become one story: anomalies and
    threshold alerts of the same KPI, and those of the :data:`REQUEST_PATH` metrics."""
    groups: list[tuple[str, list[Insight]]] = []
    rest = []
    for insight in insights:
        kpi = _episode_kpi(insight)
        if kpi is None:
            rest.append(insight)
            continue
        family = _family(kpi)
        # An episode overlapping two groups joins them: overlap chains are one incident.
        touching = [
            g for f, g in groups if f == family and any(_same_incident(insight, o) for o in g)
        ]
        merged = [insight, *(o for g in touching for o in g)]
        groups = [(f, g) for f, g in groups if not any(g is t for t in touching)]
        groups.append((family, merged))
    # Input order breaks severity ties, so the same stories always merge the same way.
    position = {id(insight): n for n, insight in enumerate(insights)}
    return rest + [_merged(sorted(g, key=lambda i: position[id(i)])) for _, g in groups]


def _path_order(insight: Insight) -> int:
    kpi = _episode_kpi(insight)
    return REQUEST_PATH.index(kpi) if kpi in REQUEST_PATH else 0


def _in_the_same_episode(insight: Insight) -> str:
    if insight.kind == "threshold":  # its own first clause says what, when and how bad
        return _mid_sentence(insight.message.split("; ")[0])
    return (
        f"{_label(insight.kpi)} was {format_kpi(insight.kpi, insight.details['value'])} "  # type: ignore[arg-type]
        f"against an expected {format_kpi(insight.kpi, insight.details['expected'])} "  # type: ignore[arg-type]
        f"({_when(insight)})"
    )


def _merged(group: list[Insight]) -> Insight:
    if len(group) == 1:
        return group[0]
    # An anomaly leads where there is one: it dates the episode to the bucket and says
    # what was expected; a threshold rule judges coarser buckets with hysteresis. The
    # story keeps the gravest severity of its members.
    anomalies = [i for i in group if i.kind == "anomaly"]
    lead = min(anomalies or group, key=lambda i: (SEVERITY_RANK[i.severity], -i.score))
    severity = min((i.severity for i in group), key=lambda s: SEVERITY_RANK[s])
    others = sorted(
        (i for i in group if i is not lead),
        key=lambda i: (_path_order(i), i.kind),
    )
    kpis = list(dict.fromkeys(i.kpi for i in [lead, *others]))
    also = "; ".join(_in_the_same_episode(i) for i in others)
    what = f"One incident in {_and([_label(k) for k in kpis])}. " if len(kpis) > 1 else ""
    spans = [_span(i) for i in group if i.kind == lead.kind]
    end = max(e for _, e in spans)
    told = sorted({t for i in group for t in _told_directions(i)})
    return replace(
        lead,
        severity=severity,
        status="firing" if any(i.status == "firing" for i in group) else "resolved",
        message=f"{what}{lead.message}. In the same episode, {also}",
        recommendation=next((i.recommendation for i in [lead, *others] if i.recommendation), None),
        details={
            **lead.details,
            "metrics": kpis,
            "episode_start": min(s for s, _ in spans).isoformat(),
            "episode_end": None if end == _NEVER_ENDED else end.isoformat(),
            "merged": [
                {k: i.details.get(k) for k in ("value", "expected", "episode_start", "episode_end")}
                | {"kpi": i.kpi, "kind": i.kind, "severity": i.severity}
                | ({"episodes": i.details["episodes"]} if i.kind == "threshold" else {})
                for i in others
            ],
            "told": [list(t) for t in told],
        },
    )


def _mid_sentence(text: str) -> str:
    """``Error rate was…`` → ``error rate was…`` (``P95…`` and acronyms stay as they are)."""
    return text[0].lower() + text[1:] if text[1:2].islower() else text


def _label(kpi: str | None) -> str:
    watched = next((m for m in WATCHED if m.kpi == kpi), None)
    if watched is not None:
        return watched.label
    if kpi not in KPIS:
        return str(kpi)
    return _mid_sentence(KPIS[kpi].label)  # as the watched metrics' labels


def _when(insight: Insight) -> str:
    start, end = _span(insight)
    since = f"{start:%Y-%m-%d %H:%M}"
    return f"since {since}" if end == _NEVER_ENDED else f"{since} to {end:%Y-%m-%d %H:%M}"


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _told_directions(insight: Insight) -> set[tuple[str, bool]]:
    """(KPI, went up) pairs an incident story already tells."""
    if "told" in insight.details:  # a merged incident: what each of its episodes told
        return {(k, bool(up)) for k, up in insight.details["told"]}  # type: ignore[union-attr]
    if insight.kind == "anomaly" and "value" in insight.details:
        up = insight.details["value"] > insight.details["expected"]  # type: ignore[operator]
        kpis = insight.details.get("metrics") or [insight.kpi]
        return {(k, up) for k in kpis}  # type: ignore[misc]
    if insight.kind == "threshold" and insight.kpi is not None:
        up = insight.details.get("comparison") == ">"
        kpi, flip = MIRROR.get(insight.kpi, (insight.kpi, False))
        return {(kpi, up != flip)}
    return set()


def drop_restated_changes(insights: list[Insight]) -> list[Insight]:
    """A previous-period change in a KPI that an episode story in this range already
    tells, in the same direction, restates that episode (the burst moves the range's
    figure): the episode says when and how much, so the change is not told again."""
    told: set[tuple[str, bool]] = set()
    for insight in insights:
        if insight.status in ("firing", "resolved"):
            told |= _told_directions(insight)
    out = []
    for insight in insights:
        if insight.kind == "change" and insight.kpi is not None:
            up = (insight.details.get("abs_change") or 0) > 0  # type: ignore[operator]
            kpi, flip = MIRROR.get(insight.kpi, (insight.kpi, False))
            if (kpi, up != flip) in told:
                continue
        out.append(insight)
    return out
