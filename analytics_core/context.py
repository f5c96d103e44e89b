"""What every query is asked under: the filters, the clock and the caller's scope.

One :meth:`QueryContext.where` writes the range, scope and filter predicates for every
table (raw or rollup), so a query cannot forget the scope or spell the range its own
way; :meth:`QueryContext.cache_key` names a result by everything that decides it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, and_, false, true

from analytics_core.filters import Filters
from analytics_core.queries.common import in_range


@dataclass(frozen=True)
class Scope:
    """The tenants the caller may see: None is every tenant (no sign-in yet), an empty
    tuple none at all. Unlike the filters, which the user chooses within it, the scope
    is imposed, and a query without a tenant column cannot run under a restricted one."""

    tenants: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.tenants is not None:  # one spelling per scope, so one cache key
            object.__setattr__(self, "tenants", tuple(sorted(set(self.tenants))))

    @property
    def unrestricted(self) -> bool:
        return self.tenants is None

    def predicate(self, tenant: ColumnElement) -> ColumnElement[bool] | None:
        """The scope on a tenant column; None when every tenant is visible."""
        if self.tenants is None:
            return None
        if not self.tenants:
            return false()
        return tenant.in_(self.tenants)


@dataclass(frozen=True)
class QueryContext:
    filters: Filters
    now: datetime  # aware; held in UTC
    scope: Scope = field(default_factory=Scope)

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise ValueError("QueryContext.now must carry a time zone")
        object.__setattr__(self, "now", self.now.astimezone(UTC))

    def with_filters(self, filters: Filters) -> QueryContext:
        """The same clock and scope over other filters (another range or granularity)."""
        return replace(self, filters=filters)

    def previous(self) -> QueryContext:
        """The period of equal length just before this one."""
        return self.with_filters(self.filters.previous())

    def where(
        self,
        ts: ColumnElement | None,
        tenant: ColumnElement | None = None,
        algorithm: ColumnElement | None = None,
        endpoint: ColumnElement | None = None,
    ) -> ColumnElement[bool]:
        """Half-open ``[start, end)`` on ``ts``, the scope, and the filters that apply to
        the columns given (a table without an endpoint column ignores the endpoint filter).
        ``ts`` is None only for a table without time (the tenant list)."""
        f = self.filters
        preds: list[ColumnElement[bool]] = []
        if ts is not None:
            preds.append(in_range(ts, f.start, f.end))
        if tenant is None:
            if not self.scope.unrestricted:
                raise ValueError("a query under a restricted scope must give its tenant column")
        else:
            scoped = self.scope.predicate(tenant)
            if scoped is not None:
                preds.append(scoped)
            if f.tenants:
                preds.append(tenant.in_(f.tenants))
        if algorithm is not None and f.algorithms:
            preds.append(algorithm.in_(f.algorithms))
        if endpoint is not None and f.endpoints:
            preds.append(endpoint.in_(f.endpoints))
        return and_(true(), *preds)

    def cache_key(self, page: str, *extra: object) -> str:
        """A stable sha256 of what decides a page's data: the page, filters, scope, the
        clock to the minute (ranges end at the current minute, so views in one minute
        share an entry) and ``extra`` (e.g. a data version). A different scope is a
        different key: one tenant's figures must never be served to another."""
        payload = {
            "page": page,
            "filters": self.filters.as_dict(),
            "scope": None if self.scope.tenants is None else list(self.scope.tenants),
            "minute": self.now.replace(second=0, microsecond=0).isoformat(),
            "extra": list(extra),
        }
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()
