"""The ``tradekit`` command (CONTRACT §6).

::

    tradekit backtest CONFIG [--data FILE]... [--start ISO] [--end ISO] [--seed N] [--out DIR]
                             [--strict] [--quiet]
    tradekit run CONFIG [--duration S] [--speed X] [--out DIR] [--journal PATH]
    tradekit check CONFIG [--format toml|json]
    tradekit calendar [DATE] [--calendar NYSE]
    tradekit sweep CONFIG --grid GRID [--data FILE_OR_GLOB]... [--days START:END]
                   [--window HH:MM-HH:MM] [--executor local|dask://HOST:PORT|ray|ray://HOST:PORT]
                   [--workers N] [--out DIR] [--metric NAME] [--top N] [--seed N]
    tradekit data download --venue alpaca|ibkr SYMBOL --start ISO --end ISO
                           --kind quotes|trades|bars --out FILE

Every command also takes ``--log-level LEVEL`` (the ``tradekit`` logger, to stderr; default INFO
for ``run``, WARNING otherwise) and ``--debug`` (tracebacks; also ``TRADEKIT_DEBUG=1``).

Exit codes: 0 success; 2 usage error, ``ConfigError`` or ``DataError`` (bad input data); 1 any
other failure (one line on stderr, the traceback only with ``--debug``); 130 on Ctrl-C.
The engine modules (backtest, live, results, data) are imported only by the command that needs
them, so ``check`` and ``calendar`` stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from ._version import __version__
from .errors import ConfigError, DataError

__all__ = ["build_parser", "main"]

PROG = "tradekit"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_ET = ZoneInfo("America/New_York")
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")

Handler = Callable[[argparse.Namespace], int]


# ---------------------------------------------------------------------------------- parsing


def _iso_arg(text: str) -> str:
    """An ISO date (``2026-11-24``) or an ISO-8601 timestamp with a UTC offset; returned as
    given (the engine interprets it)."""
    from .timeutil import parse_iso_ns

    value = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            date.fromisoformat(value)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"bad date {text!r}: {e}") from None
        return value
    try:
        parse_iso_ns(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"{e} (give a date such as 2026-11-24 or a timestamp such as 2026-11-24T14:30:00Z)"
        ) from None
    return value


def _timestamp_arg(text: str) -> str:
    """An ISO-8601 timestamp with a UTC offset (``2026-11-24T14:30:00Z``); returned as given."""
    from .timeutil import parse_iso_ns

    value = text.strip()
    try:
        parse_iso_ns(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"bad timestamp {text!r}: give ISO-8601 with a UTC offset, e.g. "
            f"2026-11-24T14:30:00Z or 2026-11-24T09:30:00-05:00"
        ) from None
    return value


def _date_arg(text: str) -> date:
    value = text.strip().lower()
    today = datetime.now(_ET).date()
    if value == "today":
        return today
    if value == "tomorrow":
        return today + timedelta(days=1)
    if value == "yesterday":
        return today - timedelta(days=1)
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError("expected YYYY-MM-DD")
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"bad date {text!r} (give YYYY-MM-DD, today, tomorrow or yesterday)"
        ) from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, not {text!r}")
    return value


def _seed_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, not {text!r}")
    return value


def _workers_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, not {text!r}")
    return value


def _level_arg(text: str) -> str:
    level = text.strip().upper()
    if level not in _LEVELS:
        raise argparse.ArgumentTypeError(
            f"unknown log level {text!r} (allowed: {', '.join(_LEVELS)})"
        )
    return level


def build_parser() -> argparse.ArgumentParser:
    """The ``tradekit`` argument parser (exposed for documentation tools and tests)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level",
        type=_level_arg,
        default=argparse.SUPPRESS,
        metavar="LEVEL",
        help="level of the 'tradekit' logger on stderr: DEBUG, INFO, WARNING, ERROR "
        "(default: INFO for run, WARNING otherwise)",
    )
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the traceback of a failure (also TRADEKIT_DEBUG=1)",
    )

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Broker-integrated stock trading: backtest, run, check configs, calendars.",
        parents=[common],
        epilog="Exit codes: 0 success, 2 usage/config/input-data error, 1 runtime failure.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "backtest",
        parents=[common],
        help="replay or simulate a day and write the results",
        description="Run a strategy over simulated (synthetic) or replayed market data.",
    )
    p.add_argument("config", metavar="CONFIG", help="TOML config file")
    p.add_argument(
        "--data",
        action="append",
        metavar="FILE",
        default=None,
        help="replay data file (CSV or Parquet); repeatable",
    )
    p.add_argument(
        "--start",
        type=_timestamp_arg,
        metavar="ISO",
        help="start, ISO-8601 with an offset (default: the data's or the day's start)",
    )
    p.add_argument(
        "--end",
        type=_timestamp_arg,
        metavar="ISO",
        help="end, ISO-8601 with an offset (default: the data's or the day's end)",
    )
    p.add_argument("--seed", type=_seed_arg, metavar="N", help="random seed (overrides [market])")
    p.add_argument(
        "--out", metavar="DIR", help="output directory (default: ./tradekit-out/<UTC timestamp>)"
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first bad data row (exit 2) instead of skipping it",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_cmd_backtest, default_log_level="WARNING")

    p = sub.add_parser(
        "run",
        parents=[common],
        help="run a strategy live (paper or real brokers)",
        description="Run the configured strategy against the configured venues.",
    )
    p.add_argument("config", metavar="CONFIG", help="TOML config file")
    p.add_argument(
        "--duration",
        type=_positive_float,
        metavar="S",
        help="stop after S seconds (default: until the session ends or Ctrl-C)",
    )
    p.add_argument(
        "--speed",
        type=_positive_float,
        metavar="X",
        default=1.0,
        help="speed factor of simulated time for synthetic/replay feeds (default: 1)",
    )
    p.add_argument(
        "--out", metavar="DIR", help="output directory (default: ./tradekit-out/<UTC timestamp>)"
    )
    p.add_argument(
        "--journal",
        metavar="PATH",
        help="SQLite journal; restarting from it resumes and reconciles",
    )
    p.set_defaults(handler=_cmd_run, default_log_level="INFO")

    p = sub.add_parser(
        "check",
        parents=[common],
        help="validate a config and print the resolved settings",
        description="Validate a config file and print its resolved settings (secrets masked).",
    )
    p.add_argument("config", metavar="CONFIG", help="TOML config file")
    p.add_argument(
        "--format", choices=("toml", "json"), default="toml", help="output format (default: toml)"
    )
    p.set_defaults(handler=_cmd_check, default_log_level="WARNING")

    p = sub.add_parser(
        "calendar",
        parents=[common],
        help="a day's sessions (pre, regular, post)",
        description="Print a day's pre, regular and post sessions in ET and UTC.",
    )
    p.add_argument(
        "date",
        nargs="?",
        type=_date_arg,
        metavar="DATE",
        help="YYYY-MM-DD (default: today in New York)",
    )
    p.add_argument("--calendar", default="NYSE", help="market calendar (default: NYSE)")
    p.set_defaults(handler=_cmd_calendar, default_log_level="WARNING")

    p = sub.add_parser(
        "sweep",
        parents=[common],
        help="backtest a grid of strategy parameters over symbols and days",
        description="Backtest every parameter set of a grid file on every symbol and trading "
        "day, in parallel (local processes, Dask or Ray), and write runs, aggregates, the best "
        "sets and a report. Restarted with the same --out, runs already done are skipped.",
    )
    p.add_argument("config", metavar="CONFIG", help="TOML config file")
    p.add_argument("--grid", required=True, metavar="GRID", help="grid TOML file (see README)")
    p.add_argument(
        "--data",
        action="append",
        metavar="FILE_OR_GLOB",
        default=None,
        help="replay data: a file, a glob or an fsspec URL (s3://...); repeatable",
    )
    p.add_argument(
        "--days",
        metavar="START:END",
        help="trading days, inclusive (2026-11-02:2026-11-06; only sessions), a day, or a "
        "comma-separated list (default: [sweep] days, else [market] date, else the whole data)",
    )
    p.add_argument(
        "--window",
        metavar="HH:MM-HH:MM",
        help="part of each day to run, New York time (default: the whole session)",
    )
    p.add_argument(
        "--executor",
        metavar="local|dask://HOST:PORT|ray|ray://HOST:PORT",
        default=None,
        help="where the runs execute (default: local processes)",
    )
    p.add_argument(
        "--workers",
        type=_workers_arg,
        metavar="N",
        help="local processes (default: one per CPU); Ray's CPUs when it starts locally",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="output directory (default: ./tradekit-out/sweep-<UTC timestamp>); restarting with "
        "the same DIR skips the runs already done",
    )
    p.add_argument(
        "--metric",
        metavar="NAME",
        help="ranks best.csv: a metric (net_pnl, sharpe, markout_10s, ...) or an aggregate.csv "
        "column (default: [report] metric, else net_pnl)",
    )
    p.add_argument("--top", type=_workers_arg, metavar="N", help="rows of best.csv (default 10)")
    p.add_argument("--seed", type=_seed_arg, metavar="N", help="base random seed")
    p.add_argument(
        "--retries",
        type=_seed_arg,
        default=2,
        metavar="N",
        help="resubmissions of a run lost with its worker (default 2)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_cmd_sweep, default_log_level="WARNING")

    p = sub.add_parser(
        "data", parents=[common], help="market data tools", description="Market data tools."
    )
    p.set_defaults(handler=None, subparser=p, default_log_level="INFO")
    data_sub = p.add_subparsers(dest="data_command", metavar="COMMAND")
    d = data_sub.add_parser(
        "download",
        parents=[common],
        help="download historical quotes, trades or bars",
        description="Download historical data from a broker into a CSV or Parquet file.",
    )
    d.add_argument("--venue", required=True, choices=("alpaca", "ibkr"), help="data source")
    d.add_argument("symbol", metavar="SYMBOL")
    d.add_argument(
        "--start",
        required=True,
        type=_iso_arg,
        metavar="ISO",
        help="a date (2026-11-24) or an ISO-8601 timestamp with an offset",
    )
    d.add_argument(
        "--end",
        required=True,
        type=_iso_arg,
        metavar="ISO",
        help="a date (2026-11-24) or an ISO-8601 timestamp with an offset",
    )
    d.add_argument("--kind", required=True, choices=("quotes", "trades", "bars"))
    d.add_argument("--out", required=True, metavar="FILE", help="output file (.csv or .parquet)")
    d.add_argument("--host", help="ibkr: TWS / IB Gateway host (127.0.0.1)")
    d.add_argument("--port", type=int, help="ibkr: TWS / IB Gateway port (7497)")
    d.add_argument("--client-id", type=int, help="ibkr: API client id (99)")
    d.add_argument("--feed", choices=("iex", "sip"), help="alpaca: data feed (iex)")
    d.set_defaults(handler=_cmd_data_download, default_log_level="INFO")
    return parser


# ---------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tradekit`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit
    code (the console script passes it to ``sys.exit``)."""
    parser = build_parser()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except SystemExit as e:  # usage errors (2), --help and --version (0)
        return _exit_code(e.code)
    debug = bool(getattr(args, "debug", False)) or _env_flag("TRADEKIT_DEBUG")
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        sub: argparse.ArgumentParser = getattr(args, "subparser", parser)
        sub.print_help(sys.stderr)
        return EXIT_USAGE
    level = getattr(args, "log_level", None) or args.default_log_level
    restore = _configure_logging(level)
    try:
        return handler(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ConfigError, DataError) as e:
        _report(e, debug, runtime=False)
        return EXIT_USAGE
    except Exception as e:
        _report(e, debug, runtime=True)
        return EXIT_FAILURE
    finally:
        restore()


def _exit_code(code: object) -> int:
    if code is None:
        return EXIT_OK
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return EXIT_FAILURE


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _report(exc: BaseException, debug: bool, *, runtime: bool) -> None:
    """One line on stderr (plus the traceback with ``--debug``)."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    text = " ".join(str(exc).split()) or type(exc).__name__
    if runtime:
        text = f"{type(exc).__name__}: {text}"
    hint = "" if debug or not runtime else " (--debug for the traceback)"
    print(f"{PROG}: error: {text}{hint}", file=sys.stderr)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to the *current* ``sys.stderr`` (so redirections made after set-up are followed)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.setStream(sys.stderr)
        super().emit(record)


def _configure_logging(level: str) -> Callable[[], None]:
    """Send the ``tradekit`` logger to stderr at ``level``; returns a function that undoes it."""
    logger = logging.getLogger("tradekit")
    old_level = logger.level
    handler = _StderrHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    )
    logger.addHandler(handler)
    logger.setLevel(getattr(logging, level))

    def restore() -> None:
        logger.removeHandler(handler)
        logger.setLevel(old_level)

    return restore


# ---------------------------------------------------------------------------------- helpers


def _import(name: str) -> ModuleType:
    """Import a tradekit submodule by name (``importlib``, so the modules load only when a
    command needs them)."""
    return importlib.import_module(name)


def _default_out_dir() -> Path:
    results = _import("tradekit.results")
    fn = getattr(results, "default_out_dir", None)
    if callable(fn):
        return Path(fn())
    return Path("tradekit-out") / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _print_summary(summary: Mapping[str, Any]) -> None:
    results = _import("tradekit.results")
    fmt = getattr(results, "format_summary", None)
    if callable(fmt):
        print(fmt(summary))
    else:  # pragma: no cover - results module without a formatter
        for k, v in summary.items():
            print(f"{k:20} {v}")


# ---------------------------------------------------------------------------------- commands


def _cmd_backtest(args: argparse.Namespace) -> int:
    from .config import load_config

    config = load_config(args.config)
    backtest = _import("tradekit.backtesting").backtest
    out = Path(args.out) if args.out else _default_out_dir()
    result = backtest(
        config,
        data=list(args.data) if args.data else None,
        start=args.start,
        end=args.end,
        seed=args.seed,
        strict=args.strict,
        progress=not args.quiet,
    )
    result.write(out)
    _print_summary(result.summary)
    print(f"outputs: {out}")
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from .config import load_config

    config = load_config(args.config)
    live = _import("tradekit.live")
    out = Path(args.out) if args.out else _default_out_dir()
    result = live.run(
        config,
        duration=args.duration,
        speed=args.speed,
        out=out,
        journal=args.journal,
    )
    _print_summary(result.summary)
    print(f"outputs: {out}")
    return EXIT_OK


def _cmd_check(args: argparse.Namespace) -> int:
    from .config import load_config

    config = load_config(args.config)
    notes = list(_check_notes(config))  # raises ConfigError for bad strategy parameters
    settings = config.to_dict()
    if args.format == "json":
        print(json.dumps(settings, indent=2, default=str))
    else:
        print(f"# {config.path}: valid; resolved settings (secrets masked)")
        print(_to_toml(settings), end="")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return EXIT_OK


def _cmd_sweep(args: argparse.Namespace) -> int:
    sweep = _import("tradekit.sweep")
    result = sweep.run_sweep(
        args.config,
        args.grid,
        data=list(args.data) if args.data else None,
        days=args.days,
        window=args.window,
        executor=args.executor,
        workers=args.workers,
        out=args.out,
        seed=args.seed,
        metric=args.metric,
        top=args.top,
        progress=not args.quiet,
        retries=args.retries,
    )
    print(sweep.format_result(result))
    print(f"outputs: {result.out}")
    if result.errors:
        print(
            f"{PROG}: error: {result.errors} of {len(result.runs)} runs failed; see "
            f"{Path(result.out) / 'runs.csv'} (status, error)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return EXIT_OK


def _check_notes(config: Any) -> Iterator[str]:
    """Validate what the loader leaves to others (the strategy's parameters, whether each broker
    adapter can be loaded); yields notes for what cannot be checked here. Raises
    ``ConfigError`` for bad strategy parameters."""
    from . import brokers
    from .config import build_strategy

    for name, venue in config.venues.items():
        try:
            brokers.get(venue.broker)
        except ConfigError as e:
            yield f"venues.{name}: {e.message}"
    if config.strategy is not None and build_strategy(config) is None:
        yield "strategy parameters not checked: the strategy registry is not available"


def _cmd_calendar(args: argparse.Namespace) -> int:
    from .calendar import get_calendar

    cal = get_calendar(args.calendar)
    day: date = args.date or datetime.now(_ET).date()
    info = cal.day(day)
    head = f"{day.isoformat()} {day:%A}, {cal.name}"
    if (
        not info.is_trading_day
        or info.pre_open is None
        or info.open is None
        or info.close is None
        or info.post_close is None
    ):
        why = "weekend" if day.weekday() >= 5 else "holiday"
        nxt = cal.trading_days(day + timedelta(days=1), day + timedelta(days=31))
        after = f"; next trading day: {nxt[0].isoformat()} {nxt[0]:%A}" if nxt else ""
        print(f"{head}: closed ({why}){after}")
        return EXIT_OK
    close_et = info.close.astimezone(_ET)
    early = f", early close at {close_et:%H:%M} ET" if info.is_early_close else ""
    print(f"{head}: open{early}")
    offset = _utc_offset(info.open.astimezone(_ET))
    rows = [
        ("pre", info.pre_open, info.open),
        ("regular", info.open, info.close),
        ("post", info.close, info.post_close),
    ]
    print(f"{'session':<9} {'ET (UTC' + offset + ')':<18} UTC")
    for label, a, b in rows:
        et = f"{a.astimezone(_ET):%H:%M}-{b.astimezone(_ET):%H:%M} ET"
        utc = f"{_hm_utc(a, day)}-{_hm_utc(b, day)} UTC"
        print(f"{label:<9} {et:<18} {utc}")
    return EXIT_OK


def _hm_utc(dt: datetime, day: date) -> str:
    """``HH:MM`` in UTC, with ``(+1d)`` when that is already the next calendar day."""
    u = dt.astimezone(UTC)
    shift = (u.date() - day).days
    return f"{u:%H:%M}" + (f"(+{shift}d)" if shift > 0 else "")


def _utc_offset(dt: datetime) -> str:
    off = dt.utcoffset() or timedelta(0)
    minutes = int(off.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    h, m = divmod(abs(minutes), 60)
    return f"{sign}{h:02d}:{m:02d}"


_SDK_EXTRAS = {"alpaca": "alpaca", "ib_async": "ibkr"}


def _cmd_data_download(args: argparse.Namespace) -> int:
    try:
        data = _import("tradekit.data")
    except ModuleNotFoundError as e:
        if e.name not in ("tradekit.data",):
            raise
        data = None
    download = getattr(data, "download", None) if data is not None else None
    if not callable(download):
        print(
            f"{PROG}: error: data download from {args.venue} is not available: the "
            f"{args.venue} data adapter (tradekit.data) is not installed in this version",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        result = download(
            venue=args.venue,
            symbol=args.symbol,
            start=args.start,
            end=args.end,
            kind=args.kind,
            out=args.out,
            **{
                k: v
                for k, v in (
                    ("host", args.host),
                    ("port", args.port),
                    ("client_id", args.client_id),
                    ("feed", args.feed),
                )
                if v is not None
            },
        )
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        if top not in _SDK_EXTRAS:
            raise
        print(
            f"{PROG}: error: the {args.venue} adapter needs {top}: "
            f"pip install 'tradekit[{_SDK_EXTRAS[top]}]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    print(f"wrote {result if isinstance(result, str | os.PathLike) else args.out}")
    return EXIT_OK


# ---------------------------------------------------------------------------------- TOML out


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        items = ", ".join(
            f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items() if v is not None
        )
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    return json.dumps(str(value))


def _to_toml(doc: Mapping[str, Any], prefix: str = "") -> str:
    """TOML text of a dict of plain values: scalars first, then each sub-table as ``[a.b]``
    (``None`` values are left out: TOML has no null)."""
    lines: list[str] = []
    scalars = [(k, v) for k, v in doc.items() if not isinstance(v, Mapping) and v is not None]
    tables = [(k, v) for k, v in doc.items() if isinstance(v, Mapping)]
    if prefix and (scalars or not tables):
        lines.append(f"\n[{prefix}]")
    for k, v in scalars:
        lines.append(f"{_toml_key(str(k))} = {_toml_value(v)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for k, v in tables:
        sub = f"{prefix}.{_toml_key(str(k))}" if prefix else _toml_key(str(k))
        out += _to_toml(v, sub)
    return out.lstrip("\n") if not prefix else out
