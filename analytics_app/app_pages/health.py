"""Health: whether each source answers, how current the data is, the rollup and the cache."""

import streamlit as st

from analytics_app.ui import access, data
from analytics_core.config import config_path
from analytics_core.health import describe_age

data.allow_page("health")
cfg = data.config()
access.require_every_tenant(cfg, "health")  # the newest rows are every tenant's
st.title("Health")
health = data.health(data.db_url(), str(config_path()))
st.caption(
    f"Checked {health.checked_at:%Y-%m-%d %H:%M:%S} UTC in {health.seconds:.2f} s, at most "
    "every 5 seconds whoever asks. `analytics health` reports the same for monitoring "
    "(exit 0 healthy, 1 degraded, 3 down)."
)
st.button("Check again", on_click=data.health.clear, icon=":material/refresh:")

problems = "\n".join(f"- {problem}" for problem in health.problems)
if health.status == "healthy":
    st.success("**Healthy:** every source answers and the data is fresh.", icon=":material/check:")
elif health.status == "degraded":
    st.warning(f"**Degraded:**\n{problems}", icon=":material/warning:")
else:
    st.error(f"**Down:** no page can be built.\n{problems}", icon=":material/error:")

st.subheader("Sources")
ICONS = {
    "up": ":material/check_circle:",
    "down": ":material/cloud_off:",
    "disabled": ":material/block:",
}
for column, source in zip(st.columns(len(health.sources)), health.sources, strict=True):
    with column:
        latency = (
            f"{source.latency_ms:.1f} ms round trip" if source.latency_ms is not None else None
        )
        st.metric(source.name, source.status, latency, "off", icon=ICONS[source.status],
                  delta_arrow="off", border=True)  # fmt: skip
        if source.error:
            st.error(source.error, icon=":material/cloud_off:")
        elif source.detail:
            st.caption(source.detail)

st.subheader("Data freshness")
limit = describe_age(health.freshness_limit)
if not health.database_up:
    st.info("Not measured: the primary database is down.")
else:
    if health.stale_tables:
        st.warning(
            f"Stale (newest row older than {limit}, or none): "
            f"{', '.join(health.stale_tables)}. Is the platform still writing them?",
            icon=":material/schedule:",
        )
    st.dataframe(health.freshness_rows(), hide_index=True, width="stretch")
    st.caption(
        f"The age of each event table's newest row; older than {limit} "
        "(`dashboard.freshness_limit`) is stale."
    )

st.subheader("Rollups")
rollup = health.rollup
if not health.database_up:
    st.info("Not measured: the primary database is down.")
elif rollup is None:
    st.info("Not built: pages read the raw tables. `analytics rollup` builds them.")
else:
    st.metric("Watermark lag", describe_age(rollup.lag), border=True)
    last = f"{rollup.refreshed_at:%Y-%m-%d %H:%M} UTC" if rollup.refreshed_at else "unknown"
    st.caption(
        f"Rolled up to {rollup.watermark:%Y-%m-%d %H:%M} UTC (last run {last}); newer rows "
        f"are read raw. The watermark moves in whole hours: behind past "
        f"{describe_age(rollup.limit)}."
    )
    if rollup.behind:
        st.warning("The rollup is behind: is `analytics rollup` running?", icon=":material/update:")

st.subheader("Cache")
cache = health.cache
if not cache.enabled:
    st.info("The Redis page cache is off (`data_sources.redis.enabled`).")
else:
    server, process = st.columns(2)
    with server:
        ratio = cache.hit_ratio
        unknown = "not measured" if cache.hits is None else "no reads yet"
        st.metric("Redis hit ratio", f"{ratio:.1%}" if ratio is not None else unknown, border=True)
        if ratio is not None:
            st.caption(
                f"{cache.hits:,} hits, {cache.misses:,} misses: every key on the Redis "
                "server since it started."
            )
    with process:
        ratio = cache.process_hit_ratio
        st.metric(
            "This app process", f"{ratio:.1%}" if ratio is not None else "no reads yet", border=True
        )
        if cache.process_hits is not None:
            st.caption(
                f"{cache.process_hits:,} pages from Redis, {cache.process_misses:,} built, "
                f"{cache.process_errors:,} Redis errors."
            )

# Recorded like every page view (it has no filters: it runs without the sidebar).
access.record_view(cfg, access.caller(), "health", None)
