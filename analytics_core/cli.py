"""The ``analytics`` command: init-db, seed, demo, rollup, export, report,
detect-anomalies, serve, health.

Exit codes: 0 success, 2 bad input or config (the message names what was
wrong), 3 a data source unreachable, 1 anything else.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Only light modules at import time: `analytics --help` and `detect-anomalies` must not
# pay for SQLAlchemy, the statistics stack or Streamlit. Each command imports its own.
from analytics_core.config import (
    ConfigError,
    database_url,
    demo_database_path,
    demo_database_url,
    load_config,
)
from analytics_core.filters import (
    GRANULARITIES,
    RANGE_PRESETS,
    InputError,
    clip,
    make_filters,
    parse_instant,
    preset_range,
)
from analytics_core.pages import EXPORT_FORMATS, PAGES
from analytics_core.sources import SourceUnavailable

EXIT_INPUT = 2
EXIT_SOURCE = 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own exit code is already 2
        self.exit(EXIT_INPUT, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        help="config file (default: $ANALYTICS_CONFIG, else ./config/analytics.yml, "
        "else the packaged default)",
    )
    common.add_argument(
        "--db", help="database URL (default: $DATABASE_URL, the config, or the demo file)"
    )

    parser = _Parser(prog="analytics", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("init-db", parents=[common], help="create the data-contract tables")

    seed = sub.add_parser("seed", parents=[common], help="fill a database with demo data")
    seed.add_argument("--days", type=float, default=90.0)
    seed.add_argument(
        "--scale", type=float, default=None, help="1.0 = ~300k requests per 90 days (default)"
    )
    seed.add_argument("--seed", type=int, default=42)
    seed.add_argument(
        "--top-up", action="store_true", help="append data from the last event up to now"
    )
    seed.add_argument(
        "--prometheus-out",
        metavar="FILE",
        help="also write the stored requests (and resource gauges) as OpenMetrics text, "
        "for `promtool tsdb create-blocks-from openmetrics`",
    )
    seed.add_argument(
        "--scrape-interval",
        default="5m",
        help="the OpenMetrics samples' spacing (default: 5m)",
    )

    sub.add_parser(
        "demo",
        parents=[common],
        help="create the embedded demo database if missing, top it up if over an hour old",
    )

    rollup = sub.add_parser(
        "rollup",
        parents=[common],
        help="bring the rollup tables up to date (incremental; writes rollup_* tables only)",
    )
    rollup.add_argument(
        "--late-window",
        default="1h",
        help="recompute this far behind the watermark to catch late rows (default: 1h)",
    )
    rollup.add_argument(
        "--every", help="repeat at this interval (e.g. 60s) until SIGINT or SIGTERM"
    )
    rollup.add_argument(
        "--full", action="store_true", help="recompute from the earliest event (after a backfill)"
    )

    detect = sub.add_parser(
        "detect-anomalies",
        parents=[common],
        help="score a CSV series (timestamp,value) with the insights anomaly detector",
    )
    detect.add_argument("--input", required=True, help="CSV with timestamp and value columns")
    detect.add_argument("--output", required=True, help="output CSV, or - for stdout")
    detect.add_argument(
        "--sensitivity", type=float, default=None, help="flag level (default: the config's)"
    )

    serve = sub.add_parser(
        "serve", parents=[common], help="run the app (Streamlit) on this machine"
    )
    serve.add_argument("--port", type=int, default=8501)
    serve.add_argument(
        "--address", default="127.0.0.1", help="interface to listen on (default: loopback only)"
    )

    export = sub.add_parser(
        "export", parents=[common], help="write a page's data as JSON, CSV, XLSX or PDF"
    )
    export.add_argument("--page", required=True, choices=PAGES)
    export.add_argument("--start", help="ISO date or datetime (a date means midnight in --tz)")
    export.add_argument("--end", help="ISO date or datetime, exclusive")
    export.add_argument("--range", choices=[p for p in RANGE_PRESETS if p != "custom"])
    export.add_argument("--tz", default=None, help="IANA time zone (default: the config's)")
    export.add_argument("--tenant", action="append", default=[])
    export.add_argument("--algorithm", action="append", default=[])
    export.add_argument("--endpoint", action="append", default=[])
    export.add_argument("--granularity", default="auto", choices=("auto", *GRANULARITIES))
    export.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    export.add_argument("--out", required=True, help="output file, or - for stdout")

    report = sub.add_parser(
        "report",
        parents=[common],
        help="write pages for a period to one file and send it by e-mail and/or webhook",
        description="Exit codes: 0 written and delivered; 2 bad input (nothing written); "
        "3 a source unreachable (nothing written) or a delivery failed (the file is kept).",
    )
    report.add_argument(
        "--pages", required=True, help=f"all, or some of {','.join(PAGES)} (comma-separated)"
    )
    report.add_argument(
        "--period",
        required=True,
        help="last-24h, last-7d, last-30d, previous-week, previous-month, or START..END "
        "(ISO dates or datetimes, END exclusive)",
    )
    report.add_argument("--tz", default=None, help="IANA time zone (default: the config's)")
    report.add_argument("--tenant", action="append", default=[])
    report.add_argument("--algorithm", action="append", default=[])
    report.add_argument("--endpoint", action="append", default=[])
    report.add_argument("--granularity", default="auto", choices=("auto", *GRANULARITIES))
    report.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    report.add_argument("--out", required=True, help="output file (written whole, then renamed)")
    report.add_argument(
        "--email", action="append", default=[], metavar="ADDR",
        help="send the file to this address (repeatable; SMTP settings: report.smtp)",
    )  # fmt: skip
    report.add_argument(
        "--webhook", action="append", default=[], metavar="URL",
        help="post a Slack-compatible summary to this URL (repeatable)",
    )  # fmt: skip

    health = sub.add_parser(
        "health",
        parents=[common],
        help="check each data source, the data's freshness, the rollup and the cache",
        description="Exit codes: 0 healthy; 1 degraded (Prometheus or Redis down, stale "
        "data, or the rollup behind); 3 down (the primary database does not answer); "
        "2 bad input or config.",
    )
    health.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except (ConfigError, InputError) as exc:
        print(f"analytics {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except SourceUnavailable as exc:
        print(f"analytics {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_SOURCE


def _init_db(args: argparse.Namespace) -> int:
    from analytics_core.schema import create_tables
    from analytics_core.sources.database import database_errors, make_engine, redact

    url = database_url(load_config(args.config), args.db)
    engine = make_engine(url, read_only=False)
    with database_errors(engine):
        create_tables(engine)
    engine.dispose()
    print(f"tables ready in {redact(url)}")
    return 0


def _seed(args: argparse.Namespace) -> int:
    from analytics_core.demo import SeedError, seed, top_up
    from analytics_core.sources.database import database_errors, make_engine, redact

    url = database_url(load_config(args.config), args.db)
    if url.startswith("duckdb:///"):
        _make_parent(Path(url.removeprefix("duckdb:///")))
    engine = make_engine(url, read_only=False)
    try:
        with database_errors(engine):
            if args.top_up:
                counts = top_up(engine, seed=args.seed, scale=args.scale)
            else:
                scale = 1.0 if args.scale is None else args.scale
                counts = seed(engine, days=args.days, scale=scale, seed=args.seed)
    except SeedError as exc:
        raise InputError(str(exc)) from None
    finally:
        engine.dispose()
    summary = ", ".join(f"{table} {n:,}" for table, n in counts.items())
    print(f"{'topped up' if args.top_up else 'seeded'} {redact(url)}: {summary}")
    if args.prometheus_out:
        _write_openmetrics(url, Path(args.prometheus_out), args.scrape_interval)
    return 0


def _write_openmetrics(url: str, path: Path, every: str) -> None:
    from analytics_core.demo.openmetrics import write
    from analytics_core.sources.database import database_errors, make_engine

    interval = parse_duration(every, "--scrape-interval")
    if interval.total_seconds() < 1:
        raise InputError("--scrape-interval: expected at least 1s")
    engine = make_engine(url)
    try:
        with database_errors(engine):
            size = write(engine, path, interval)
    except OSError as exc:
        raise InputError(f"--prometheus-out: cannot write {path} ({exc.strerror})") from None
    finally:
        engine.dispose()
    print(f"wrote {path}: {size:,} bytes of OpenMetrics, one sample every {every}")


def _demo(args: argparse.Namespace) -> int:
    """Prepare the embedded demo file, and nothing else: never seeds a real database."""
    load_config(args.config)
    _prepare_demo()
    return 0


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"cannot create the folder {str(path.parent)!r} ({exc.strerror})"
        ) from None


def _prepare_demo() -> None:
    from analytics_core.catalog import dimensions
    from analytics_core.demo import seed, top_up
    from analytics_core.sources.database import make_engine

    url, path = demo_database_url(), demo_database_path()
    _make_parent(path)
    if not path.exists():
        engine = make_engine(url, read_only=False)
        try:
            counts = seed(engine)
        except BaseException:
            engine.dispose()
            path.unlink(missing_ok=True)  # no half-built demo file left behind
            raise
        engine.dispose()
        print(f"created demo database {path} ({counts['api_requests']:,} requests)")
        _roll_up_demo(url)
        return
    engine = make_engine(url, read_only=False)
    try:
        last = dimensions(engine).last_event
        if last is None or (datetime.now(UTC) - last).total_seconds() > 3600:
            counts = top_up(engine)
            print(f"topped up demo database ({counts.get('api_requests', 0):,} new requests)")
        else:
            print("demo database is up to date")
    finally:
        engine.dispose()
    _roll_up_demo(url)


def _roll_up_demo(url: str) -> None:
    """Roll the demo file up so the app serves from rollups; on failure it reads raw rows."""
    from analytics_core.rollup.refresh import refresh
    from analytics_core.sources.database import database_errors, make_engine

    engine = make_engine(url, read_only=False)
    try:
        with database_errors(engine):
            print(f"rolled up demo database: {_run_summary(refresh(engine))}")
    except SourceUnavailable as exc:
        print(f"analytics: warning: demo rollup failed ({exc})", file=sys.stderr)
    finally:
        engine.dispose()


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, flag: str) -> timedelta:
    """``90s``, ``15m``, ``1h``, ``2d`` (or bare seconds) as a timedelta; errors name ``flag``."""
    value = text.strip().lower()
    unit = value[-1:] if value[-1:] in _DURATION_UNITS else "s"
    number = value[:-1] if value[-1:] in _DURATION_UNITS else value
    try:
        seconds = float(number) * _DURATION_UNITS[unit]
    except ValueError:
        seconds = float("nan")
    if not 0 <= seconds < 10 * 365 * 86400:  # also rejects NaN
        raise InputError(f"{flag} {text[:40]!r} is not a duration; use e.g. 60s, 15m, 1h or 2d")
    return timedelta(seconds=seconds)


def _run_summary(result) -> str:
    def stamp(moment: datetime | None) -> str:
        return moment.strftime("%Y-%m-%dT%H:%MZ") if moment else "none"

    rows = sum(result.rows_written.values())
    return (
        f"watermark {stamp(result.old_watermark)} -> {stamp(result.new_watermark)}, "
        f"{result.hours_recomputed} hours recomputed, {rows:,} rows written, "
        f"{result.seconds:.2f}s"
    )


def _rollup(args: argparse.Namespace) -> int:
    """Bring the rollup tables up to date once, or every ``--every`` until a signal."""
    import signal
    import threading

    from analytics_core.rollup.refresh import refresh
    from analytics_core.schema import missing_tables
    from analytics_core.sources.database import database_errors, dialect_of, make_engine, redact

    url = database_url(load_config(args.config), args.db)
    late_window = parse_duration(args.late_window, "--late-window")
    every = parse_duration(args.every, "--every") if args.every is not None else None
    if every is not None and every.total_seconds() <= 0:
        raise InputError(f"--every {args.every!r} must be longer than 0s")
    if dialect_of(url) == "duckdb":
        make_engine(url).dispose()  # a missing DuckDB file is named, not created empty

    def run_once() -> None:
        # A fresh engine per run: DuckDB lets no other process open the file while a
        # writer holds it, so the app can read between runs.
        engine = make_engine(url, read_only=False)
        try:
            with database_errors(engine):
                missing = missing_tables(engine)
                if missing:
                    raise InputError(
                        f"--db {redact(url)} lacks the contract tables {', '.join(missing)}; "
                        "run `analytics init-db` or `analytics seed` first"
                    )
                result = refresh(engine, late_window=late_window, full=args.full)
        finally:
            engine.dispose()
        print(f"rollup {redact(url)}: {_run_summary(result)}", flush=True)

    if every is None:
        run_once()
        return 0
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.is_set():
        began = datetime.now(UTC)
        try:
            run_once()
        except Exception as exc:  # noqa: BLE001 - the loop outlives any one failed run
            print(f"analytics rollup: run failed, retrying in {args.every}: {exc}",
                  file=sys.stderr, flush=True)  # fmt: skip
        elapsed = (datetime.now(UTC) - began).total_seconds()
        stop.wait(max(0.0, every.total_seconds() - elapsed))
    return 0


@contextmanager
def _exporting(config, db: str | None):
    """What a file from the command line is made under: the OS user's rights (recorded
    in the audit log with its exports), the audit log, the export limit, the database."""
    from analytics_core.access import cli_identity, resolve
    from analytics_core.audit import AuditLog, check_audit_url
    from analytics_core.config import audit_url
    from analytics_core.export_limits import ExportLimiter
    from analytics_core.sources.database import make_engine

    who = resolve(cli_identity(config.auth), config.auth)
    log_url = audit_url(config)
    check_audit_url(log_url, database_url(config, db))
    log = AuditLog(log_url)
    redis, limit = config.data_sources.redis, config.auth.export_limit
    limiter = ExportLimiter(limit.count, limit.period, redis.url if redis.enabled else None)
    engine = make_engine(database_url(config, db))
    try:
        yield who, log, limiter, engine
    finally:
        engine.dispose()
        limiter.close()
        log.close()


def _hand_over(out: Path | None, content: bytes, record) -> None:
    """``content`` to ``out`` (None: standard output) once ``record()`` (the export's
    audit) has succeeded. The file is written beside its final name first: one that
    cannot be written is neither recorded nor counted, and no half file is left."""
    from analytics_core.audit import AuditUnavailable
    from analytics_core.files import stage

    staged = None if out is None else stage(out, content)
    try:
        record()
        if staged is not None:
            staged.replace(out)
    except BaseException as exc:
        if staged is not None:
            staged.unlink(missing_ok=True)
        if isinstance(exc, AuditUnavailable):
            raise SourceUnavailable(
                "The audit log", str(exc), "Exports are refused until it can record them."
            ) from None
        if isinstance(exc, OSError):
            raise InputError(
                f"cannot write --out {clip(str(out), 300)!r}: {exc.strerror}"
            ) from None
        raise


def _export(args: argparse.Namespace) -> int:
    from analytics_core.cache import page_cache
    from analytics_core.catalog import check_filters, dimensions
    from analytics_core.exports import export_bytes, row_count
    from analytics_core.guard import admit, release
    from analytics_core.page_data import load_page

    config = load_config(args.config)
    tz = args.tz or config.dashboard.default_timezone or "UTC"
    if args.range and (args.start or args.end):
        raise InputError("give either --range or --start/--end, not both")
    if args.range:
        start, end = preset_range(args.range, datetime.now(UTC))
    elif args.start and args.end:
        start = parse_instant(args.start, tz, "--start")
        end = parse_instant(args.end, tz, "--end")
    else:
        raise InputError("give --start and --end (ISO dates or datetimes), or --range")
    filters = make_filters(
        start, end, tz, args.granularity, args.tenant, args.algorithm, args.endpoint,
        **config.dashboard.range_limits(),
    )  # fmt: skip
    if args.out == "-" and args.format in ("xlsx", "pdf") and sys.stdout.isatty():
        raise InputError(f"--out - would write a binary {args.format} file to the terminal; "
                         "give a file name or redirect the output")  # fmt: skip
    with _exporting(config, args.db) as (who, log, limiter, engine):
        admit(who, args.page, filters, log)
        check_filters(filters, dimensions(engine, who.scope))
        cache = page_cache(config)  # Redis when configured, shared with the app
        try:
            data = load_page(engine, config, args.page, filters, cache, scope=who.scope)
        finally:
            cache.close()
        content = export_bytes(data, args.format, config.dashboard.title, config.exports.key())
        rows = row_count(data)
        out = None if args.out == "-" else Path(args.out)
        fmt = args.format
        _hand_over(out, content, lambda: release(who, args.page, filters, fmt, rows, limiter, log))
    if out is None and args.format in ("json", "csv"):
        sys.stdout.write(content.decode("utf-8"))
    elif out is None:  # a binary file to a pipe
        sys.stdout.flush()
        sys.stdout.buffer.write(content)
        sys.stdout.buffer.flush()
    return 0


def _report(args: argparse.Namespace) -> int:
    """A file of one or more pages for a named period, then its deliveries: every input is
    checked before anything is built, and the file is in place before any delivery."""
    from analytics_core import report
    from analytics_core.cache import page_cache
    from analytics_core.catalog import check_filters, dimensions
    from analytics_core.exports import row_count
    from analytics_core.guard import admit, release
    from analytics_core.page_data import load_page

    config = load_config(args.config)
    settings = config.report
    tz = args.tz or config.dashboard.default_timezone or "UTC"
    period = report.period_range(args.period, tz, datetime.now(UTC))
    filters = make_filters(
        period.start, period.end, tz, args.granularity, args.tenant, args.algorithm,
        args.endpoint, **config.dashboard.range_limits(),
    )  # fmt: skip
    emails = list(dict.fromkeys(report.check_address(a) for a in args.email))
    login = report.smtp_login(settings.smtp) if emails else None
    webhooks = list(dict.fromkeys(report.check_webhook_url(u) for u in args.webhook))
    out = report.check_out(args.out)
    with _exporting(config, args.db) as (who, log, limiter, engine):
        names = report.parse_pages(args.pages, who.pages, config.features.insights)
        # One file is one export: of its page, or of "dashboard" when it holds several.
        exported = names[0] if len(names) == 1 else "dashboard"
        for name in names:
            admit(who, name, filters, log)
        if not who.may_export(args.format):  # refused (and recorded) before anything is built
            release(who, exported, filters, args.format, 0, limiter, log)
        check_filters(filters, dimensions(engine, who.scope))
        cache = page_cache(config)
        try:
            pages = [
                load_page(engine, config, name, filters, cache, scope=who.scope) for name in names
            ]
        finally:
            cache.close()
        key = config.exports.key()  # the file and the messages, as `export` anonymises
        if key is not None:
            from analytics_core.anonymise import anonymised_page

            pages = [anonymised_page(data, key) for data in pages]
        content = report.report_bytes(pages, args.format, config.dashboard.title)
        rows = sum(row_count(data) for data in pages)
        fmt = args.format
        _hand_over(out, content, lambda: release(who, exported, filters, fmt, rows, limiter, log))
    print(f"wrote {out}: {len(content):,} bytes, {', '.join(names)}, {filters.describe()}")
    summary = report.summarize(
        pages, filters, period, config.dashboard.title, settings.app_url, out, len(content)
    )
    done, failed = report.deliver(summary, content, args.format, emails, webhooks, settings, login)
    for line in done:
        print(line)
    for problem in failed:
        print(f"analytics report: error: {problem} (the file {out} is kept)", file=sys.stderr)
    return EXIT_SOURCE if failed else 0


APP_DIR = Path(__file__).resolve().parent.parent / "analytics_app"


def streamlit_flags(settings_file: Path) -> list[str]:
    """The app's shipped ``.streamlit/config.toml`` as ``streamlit run`` flags: Streamlit
    reads that file only from the working directory, and ``serve`` runs from anywhere."""
    import tomllib

    flags = []
    for section, options in tomllib.loads(settings_file.read_text(encoding="utf-8")).items():
        for key, value in options.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            flags.append(f"--{section}.{key}={text}")
    return flags


def _check_listen(address: str, port: int) -> None:
    """Name a bad --address or a taken --port here rather than in Streamlit's traceback."""
    import socket

    if not 0 < port < 65536:
        raise InputError(f"--port must be between 1 and 65535 (got {port})")
    try:
        family, kind, proto, _, where = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)[
            0
        ]
    except (socket.gaierror, UnicodeError):
        raise InputError(f"--address {address[:100]!r} is not an address to listen on") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(where)
        except OSError as exc:
            raise InputError(f"cannot listen on {address}:{port} ({exc.strerror})") from None


def _check_reachable(url: str) -> None:
    """An unreachable database exits 3 here, before a browser ever sees the app."""
    from analytics_core.sources.database import database_errors, make_engine

    engine = make_engine(url)
    try:
        with database_errors(engine), engine.connect():
            pass
    finally:
        engine.dispose()


def _serve(args: argparse.Namespace) -> int:
    """Run the packaged app through Streamlit, replacing this process (so its pid is the
    server's): the demo file is prepared first when it is the database being served."""
    from analytics_core.access import open_refused
    from analytics_core.config import config_path
    from analytics_core.sources.database import dialect_of

    config = load_config(args.config)
    _check_listen(args.address, args.port)
    refusal = open_refused(config.auth, args.address)
    if refusal:
        raise InputError(refusal)
    url = database_url(config, args.db)
    dialect_of(url)  # a bad --db is named here, not in the browser
    env = dict(os.environ, ANALYTICS_CONFIG=str(config_path(args.config).resolve()))
    if args.db:
        env["DATABASE_URL"] = args.db
    if url == demo_database_url():
        env["ANALYTICS_DEMO_DB"] = str(demo_database_path().resolve())
        _prepare_demo()
    _check_reachable(url)
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_DIR / "Home.py"),
        *streamlit_flags(APP_DIR / ".streamlit" / "config.toml"),
        f"--server.port={args.port}",
        f"--server.address={args.address}",
        f"--theme.base={config.dashboard.theme}",
    ]
    print(f"serving http://{args.address}:{args.port}", flush=True)
    os.execve(sys.executable, command, env)
    return 0  # not reached: exec replaced this process


def _detect_anomalies(args: argparse.Namespace) -> int:
    from analytics_core.series_io import read_series, write_scores

    config = load_config(args.config)
    sensitivity = args.sensitivity if args.sensitivity is not None else config.insights.sensitivity
    if not sensitivity > 0:
        raise InputError(f"--sensitivity must be a number > 0 (got {args.sensitivity})")
    import pandas as pd

    from analytics_core.insights.anomalies import detect

    series = read_series(args.input)
    try:
        scored = detect(series.timestamps, series.values, sensitivity=sensitivity)
    except (ValueError, OverflowError, pd.errors.OutOfBoundsDatetime) as exc:
        raise InputError(f"--input {args.input!r}: cannot score this series: {exc}") from None
    write_scores(args.output, series.raw_timestamps, series.values, scored)
    return 0


def _health(args: argparse.Namespace) -> int:
    """Report every source's state; the exit code is the status (a down source is
    reported, never raised)."""
    import json

    from analytics_core.health import check, format_text

    config = load_config(args.config)
    health = check(config, database_url(config, args.db))
    print(json.dumps(health.as_dict(), indent=2) if args.json else format_text(health))
    return health.exit_code


_COMMANDS = {
    "init-db": _init_db,
    "seed": _seed,
    "demo": _demo,
    "rollup": _rollup,
    "export": _export,
    "report": _report,
    "detect-anomalies": _detect_anomalies,
    "serve": _serve,
    "health": _health,
}

if __name__ == "__main__":
    raise SystemExit(main())
