"""The filter value object every query takes, and the parsing that builds it.

A range is half-open, ``[start, end)``, held as aware UTC datetimes; the time
zone only decides bucket boundaries and how date-only input is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

GRANULARITIES = ("hour", "day", "week", "month")
RANGE_PRESETS: dict[str, timedelta | None] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "custom": None,
}
# A chart with more points than this is unreadable and slow; ask for coarser buckets.
MAX_BUCKETS = 5000
_BUCKET_SECONDS = {"hour": 3600, "day": 86400, "week": 7 * 86400, "month": 28 * 86400}


class InputError(ValueError):
    """Bad user input (sidebar, URL, CLI); the message names what was wrong."""


@dataclass(frozen=True)
class Filters:
    start: datetime
    end: datetime
    tz: str = "UTC"
    granularity: str = "day"
    tenants: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    def observed_end(self, now: datetime) -> datetime:
        """``min(end, now)``, never before ``start``: where the range's data can end. Time
        after it has not happened, so it is neither drawn nor scored."""
        return min(self.end, max(now, self.start))

    def previous(self) -> Filters:
        """The period of equal length just before this one."""
        return replace(self, start=self.start - self.length, end=self.start)

    def describe(self, tenant_names: Mapping[str, str] | None = None) -> str:
        """Every active filter in one line, times in the filter's zone, so a caption or an
        export says what it covers (e.g. that it is one tenant only)."""
        z = zone(self.tz)
        start, end = self.start.astimezone(z), self.end.astimezone(z)
        span = f"{start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} ({self.tz})"
        parts = [f"{span}, by {self.granularity}"]
        names = tenant_names or {}
        tenants = [f"{names[t]} ({t})" if t in names else t for t in self.tenants]
        for label, values in (
            ("tenant", tenants),
            ("algorithm", self.algorithms),
            ("endpoint", self.endpoints),
        ):
            if values:
                plural = "s" if len(values) > 1 else ""
                parts.append(f"{label}{plural} {', '.join(values)} only")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, object]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "tz": self.tz,
            "granularity": self.granularity,
            "tenants": list(self.tenants),
            "algorithms": list(self.algorithms),
            "endpoints": list(self.endpoints),
        }


# Longer echoed input is cut: a pasted 3,000-character value must not push the page away.
CLIP_LENGTH = 60


def clip(value: object, limit: int = CLIP_LENGTH) -> str:
    """``value`` as text, cut to ``limit`` characters plus "…" when longer."""
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "…"


# Files in the zone database that are not zones the databases know.
_PSEUDO_ZONES = {"localtime", "posixrules", "Factory"}


def zone(name: str) -> ZoneInfo:
    if name in _PSEUDO_ZONES or name.startswith(("posix/", "right/")):
        raise InputError(f"time zone {clip(name)!r} is not an IANA zone name (e.g. Europe/Paris)")
    try:
        return ZoneInfo(name)
    # OSError: a name too long for the file system (e.g. a pasted 3,000-character value).
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InputError(
            f"time zone {clip(name)!r} is not an IANA zone name (e.g. Europe/Paris)"
        ) from None


def auto_granularity(start: datetime, end: datetime) -> str:
    days = (end - start).total_seconds() / 86400
    if days <= 3:
        return "hour"
    if days <= 120:
        return "day"
    if days <= 730:
        return "week"
    return "month"


def parse_instant(text: str, tz: str, name: str) -> datetime:
    """ISO date or datetime to aware UTC; a date alone, or no offset, is read in ``tz``."""
    text = text.strip()
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            local = datetime.combine(d, time.min)
        else:
            local = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"{name} {clip(text)!r} is not an ISO date or datetime (e.g. 2026-11-01 or "
            "2026-11-01T12:00:00+00:00)"
        ) from None
    if local.tzinfo is None:
        local = local.replace(tzinfo=zone(tz))
    try:
        return local.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:00-05:00 is past the calendar in UTC
        raise InputError(f"{name} {clip(text)!r} is outside the calendar's range") from None


def make_filters(
    start: datetime,
    end: datetime,
    tz: str = "UTC",
    granularity: str | None = None,
    tenants: tuple[str, ...] | list[str] = (),
    algorithms: tuple[str, ...] | list[str] = (),
    endpoints: tuple[str, ...] | list[str] = (),
    *,
    max_days: int | None = None,
    max_buckets: int = MAX_BUCKETS,
) -> Filters:
    """Validate and build a :class:`Filters`; ``granularity`` None or "auto" picks one.
    ``max_days`` and ``max_buckets`` bound the range and its points (the config's)."""
    zone(tz)
    if start.tzinfo is None or end.tzinfo is None:
        raise InputError("start and end must carry a time zone")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        raise InputError(
            f"the range is empty or reversed: end {end.isoformat()} is not after "
            f"start {start.isoformat()}"
        )
    try:
        start - (end - start)  # the previous period must exist on the calendar too
    except OverflowError:
        raise InputError(
            f"start {start.date()} is too early: the previous period of equal length would "
            "begin before year 1"
        ) from None
    if max_days is not None and end - start > timedelta(days=max_days):
        raise InputError(
            f"the range spans {(end - start).days:,} days; at most {max_days:,} "
            "(dashboard.max_range_days)"
        )
    if granularity in (None, "", "auto"):
        granularity = auto_granularity(start, end)
    if granularity not in GRANULARITIES:
        raise InputError(
            f"granularity {granularity!r} is not one of auto, {', '.join(GRANULARITIES)}"
        )
    buckets = (end - start).total_seconds() / _BUCKET_SECONDS[granularity]
    if buckets > max_buckets:
        raise InputError(
            f"granularity {granularity!r} gives about {int(buckets):,} points for this range "
            f"(at most {max_buckets:,}); choose a coarser one"
        )
    return Filters(
        start=start,
        end=end,
        tz=tz,
        granularity=granularity,
        tenants=tuple(sorted(set(tenants))),
        algorithms=tuple(sorted(set(algorithms))),
        endpoints=tuple(sorted(set(endpoints))),
    )


def preset_range(preset: str, now: datetime) -> tuple[datetime, datetime]:
    """``[now - length, now)`` for a preset, with ``now`` floored to the minute
    so that reruns within a minute share one cache entry."""
    length = RANGE_PRESETS.get(preset)
    if length is None:
        raise InputError(f"range preset {preset!r} is not one of 24h, 7d, 30d, 90d")
    end = now.astimezone(UTC).replace(second=0, microsecond=0)
    return end - length, end


def date_range(first: date, last: date, tz: str) -> tuple[datetime, datetime]:
    """Whole local days ``first`` to ``last`` inclusive, as a half-open UTC range."""
    if last < first:
        raise InputError(f"end date {last} is before start date {first}")
    z = zone(tz)
    try:
        start = datetime.combine(first, time.min, tzinfo=z)
        end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=z)
        return start.astimezone(UTC), end.astimezone(UTC)
    except OverflowError:
        raise InputError(f"the dates {first} to {last} are outside the calendar's range") from None
