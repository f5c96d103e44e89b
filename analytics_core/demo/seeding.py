"""Seeding a database with the demo data, and topping it up to now."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, Table, bindparam, func, select

from analytics_core import schema
from analytics_core.demo.bulk_load import TABLE_NAMES, load
from analytics_core.demo.events import close_sessions, generate
from analytics_core.demo.incidents import incident_windows
from analytics_core.demo.time_model import (
    DAY,
    HOUR,
    MINUTE,
    RATE_AT_END,
    as_utc,
    expected_events,
    from_us,
    to_us,
)
from analytics_core.demo.world import (
    SESSION_ID,
    USER_ID,
    Ids,
    World,
    build_world,
    id_number,
    initial_world,
    new_users,
    seed_sequence,
)


class SeedError(ValueError):
    """Seeding was refused: bad arguments or a database that already holds data."""


def seed(
    engine: Engine,
    days: float = 90,
    scale: float = 1.0,
    seed: int = 42,
    end: datetime | None = None,
) -> dict[str, int]:
    """Create the tables if missing and fill them with ``days`` of demo data ending at ``end``.

    ``end`` defaults to now (UTC, floored to the second); naive datetimes are
    taken as UTC. The same ``seed``, ``days``, ``scale`` and ``end`` always give
    the same data. Refuses (:class:`SeedError`) when the database already holds
    data. Returns the number of rows written per table.
    """
    days, scale = _check_positive("days", days), _check_positive("scale", scale)
    end_us = to_us(as_utc(end) if end is not None else _now())
    start_us = end_us - int(round(days * DAY))
    if start_us >= end_us:
        raise SeedError(f"days={days!r} is too short: the window is empty")

    schema.create_tables(engine)
    with engine.connect() as conn:
        busy = [t.name for t in schema.TABLES if _has_rows(conn, t)]
    if busy:
        raise SeedError(
            f"refusing to seed {_where(engine)}: it already holds data in {', '.join(busy)}. "
            "Seed into an empty database, or use top_up() to extend existing demo data."
        )

    rng = np.random.default_rng(seed_sequence(seed))
    world, frames = initial_world(rng, seed, start_us, end_us, scale)
    frames.update(
        generate(
            rng,
            world,
            start_us,
            end_us,
            anchor=end_us,
            scale=scale,
            first_ids=Ids(),
            windows=incident_windows(end_us),
        )
    )
    with engine.begin() as conn:
        load(conn, frames)
    return {name: len(frames[name]) for name in TABLE_NAMES}


def top_up(
    engine: Engine,
    seed: int = 42,
    now: datetime | None = None,
    scale: float | None = None,
) -> dict[str, int]:
    """Append the activity missing between the latest stored event and ``now``.

    Reuses the stored tenants, users and detectors (adding new users at the
    usual growth rate), continues every id sequence, and closes sessions left
    open that would have ended by ``now``. ``scale`` defaults to the rate of the
    last week of stored API requests relative to scale 1. Deterministic for a
    given ``seed``, latest stored time and ``now``; a no-op returning zeros when
    less than a minute is missing. Incidents are only injected by :func:`seed`.
    """
    if scale is not None:
        scale = _check_positive("scale", scale)
    now_us = to_us(as_utc(now) if now is not None else _now())
    zeros = {name: 0 for name in TABLE_NAMES}

    schema.create_tables(engine)
    with engine.connect() as conn:
        state = _read_state(conn, seed)
    if state is None:
        raise SeedError(
            f"nothing to top up in {_where(engine)}: no detection results or API requests. "
            "Run seed() first."
        )
    world, last_us, first_us, ids = state
    start_us = last_us + 1
    if now_us - start_us < MINUTE:
        return zeros

    if scale is None:
        with engine.connect() as conn:
            scale = _detect_scale(conn, first_us, last_us)
    rng = np.random.default_rng(seed_sequence(seed, last_us, now_us))
    frames: dict[str, pd.DataFrame] = {}
    frames["users"] = new_users(rng, world, start_us, now_us, scale, ids.user)
    closed = close_sessions(rng, world.open_sessions, now_us)
    frames.update(generate(rng, world, start_us, now_us, last_us, scale, ids, windows=()))
    with engine.begin() as conn:
        load(conn, frames)
        if closed:
            t = schema.user_sessions
            conn.execute(
                t.update()
                .where(t.c.session_id == bindparam("sid"))
                .values(ended_at=bindparam("ended")),
                closed,
            )
    zeros.update({name: len(frame) for name, frame in frames.items()})
    return zeros


def _check_positive(name: str, value: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SeedError(f"{name} must be a positive number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise SeedError(f"{name} must be a positive number, got {value!r}")
    return number


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _where(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _has_rows(conn: Connection, table: Table) -> bool:
    return conn.execute(select(1).select_from(table).limit(1)).first() is not None


def _read_state(conn: Connection, seed: int) -> tuple[World, int, int, Ids] | None:
    """What a top-up continues from: the stored entities, the latest and earliest event
    times and the last ids used; None when no detection or request is stored."""
    s = schema
    last_result, first_result, last_det_id = conn.execute(
        select(
            func.max(s.detection_results.c.created_at),
            func.min(s.detection_results.c.created_at),
            func.max(s.detection_results.c.id),
        )
    ).one()
    last_req, first_req, last_req_id = conn.execute(
        select(
            func.max(s.api_requests.c.ts),
            func.min(s.api_requests.c.ts),
            func.max(s.api_requests.c.id),
        )
    ).one()
    lasts = [to_us(x) for x in (last_result, last_req) if x is not None]
    firsts = [to_us(x) for x in (first_result, first_req) if x is not None]
    if not lasts:
        return None
    last_fb = conn.execute(select(func.max(s.detection_feedback.c.id))).scalar()

    def frame(table: Table, *cols: str) -> pd.DataFrame:
        result = conn.execute(select(*(table.c[c] for c in cols)))
        return pd.DataFrame(result.fetchall(), columns=list(cols))

    tenants = frame(s.tenants, "tenant_id", "plan")
    users = frame(s.users, "user_id", "tenant_id", "created_at")
    detectors = frame(s.detectors, "detector_id", "tenant_id", "algorithm")
    session_ids = conn.execute(select(s.user_sessions.c.session_id)).scalars().all()
    open_rows = conn.execute(
        select(s.user_sessions.c.session_id, s.user_sessions.c.started_at)
        .where(s.user_sessions.c.ended_at.is_(None))
        .order_by(s.user_sessions.c.session_id)
    ).all()
    world = build_world(
        seed, tenants, users, detectors, [(sid, to_us(st)) for sid, st in open_rows]
    )
    ids = Ids(
        detection=int(last_det_id or 0),
        feedback=int(last_fb or 0),
        request=int(last_req_id or 0),
        session=max((id_number(x, SESSION_ID) for x in session_ids), default=0),
        user=max((id_number(x, USER_ID) for x in world.user_ids), default=0),
    )
    return world, max(lasts), min(firsts), ids


def _detect_scale(conn: Connection, first_us: int, last_us: int) -> float:
    """Scale of the stored data: last week's API requests over the scale-1 expectation."""
    a = max(first_us, last_us - 7 * DAY)
    if last_us - a < HOUR:
        return 1.0
    t = schema.api_requests
    observed = conn.execute(
        select(func.count()).select_from(t).where(t.c.ts >= from_us(a))
    ).scalar_one()
    kind = "api_requests"
    expected = expected_events(kind, RATE_AT_END[kind], a, last_us, last_us)
    if not observed or expected < 1:
        return 1.0
    return float(min(max(observed / expected, 0.01), 1000.0))
