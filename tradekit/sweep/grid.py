"""The grid file of a sweep (``GRID.toml``), the days and the intraday window, and the plan of
runs they expand to.

::

    [grid]                       # cartesian product of the strategy's parameters
    bid_spread = [0.0005, 0.001, 0.002]
    order_amount = [50, 100]
    symbols = ["AAPL", "MSFT"]   # optional: the symbol axis (the strategy's `symbol`)

    [[sets]]                     # optional: parameter sets whose values move together,
    ask_spread = 0.001           # crossed with the [grid] product (alone: just these sets)
    order_levels = 1

    [sweep]                      # optional defaults of the command-line options
    days = "2026-11-02:2026-11-06"
    window = ["09:30", "10:30"]  # New York time, each day
    seed = 1
    data = ["quotes/*.parquet"]  # relative to the grid file

    [report]
    x = "bid_spread"             # heatmap axes (default: the first two parameters)
    y = "order_amount"
    metric = "net_pnl"           # ranks best.csv (default net_pnl, i.e. net_pnl_mean)
    top = 10

Every key of ``[grid]`` and ``[[sets]]`` must be a parameter of the configured strategy; anything
else is a ``ConfigError`` naming the grid file, the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import itertools
import json
import math
import os
import re
import tomllib
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from ..config import Config, StrategyConfig, build_strategy
from ..errors import ConfigError

__all__ = [
    "GRID_TABLES",
    "Grid",
    "RunSpec",
    "load_grid",
    "param_names_of",
    "parse_days",
    "parse_window",
    "plan_runs",
    "run_config",
]

#: Tables a grid file may hold.
GRID_TABLES: Final = ("grid", "sets", "sweep", "report")
_SWEEP_KEYS: Final = ("days", "window", "seed", "data")
_REPORT_KEYS: Final = ("x", "y", "metric", "top")
_SYMBOL_KEYS: Final = ("symbols", "symbol")
#: The time zone of ``window`` times (the NYSE/NASDAQ calendars' own).
EXCHANGE_TZ: Final = ZoneInfo("America/New_York")
_HM_RE: Final = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_DATE_RE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _short_hash(doc: Any, n: int) -> str:
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def _plain(value: Any) -> Any:
    """TOML values as JSON-safe values (dates as ISO text), so in-memory and re-read records are
    the same."""
    return json.loads(json.dumps(value, default=str))


# ---------------------------------------------------------------------------------- the grid


@dataclass(frozen=True, slots=True)
class Grid:
    """A parsed grid file. ``axes``: the ``[grid]`` product (symbol axis apart, in ``symbols``);
    ``sets``: the ``[[sets]]`` tables; the rest: the ``[sweep]`` and ``[report]`` settings
    (``None``: not given). ``path``: the file (None for a dict)."""

    axes: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    sets: Sequence[Mapping[str, Any]] = ()
    symbols: Sequence[str] | None = None
    days: Any = None
    window: tuple[_dt.time, _dt.time] | None = None
    seed: int | None = None
    data: tuple[str, ...] = ()
    x: str | None = None
    y: str | None = None
    metric: str | None = None
    top: int | None = None
    path: str | None = None

    def param_names(self) -> list[str]:
        """The swept parameters, in file order (the ``[grid]`` keys, then new keys of the
        sets)."""
        names = list(self.axes)
        for s in self.sets:
            names.extend(k for k in s if k not in names)
        return names

    def param_sets(self) -> list[dict[str, Any]]:
        """Every parameter set: the ``[grid]`` product crossed with the ``[[sets]]`` (either alone
        when the other is absent; one empty set when both are)."""
        keys = list(self.axes)
        product = [
            dict(zip(keys, values, strict=True))
            for values in itertools.product(*(self.axes[k] for k in keys))
        ]
        sets = [dict(s) for s in self.sets] or [{}]
        return [{**p, **s} for p in product for s in sets]


def load_grid(source: str | os.PathLike[str] | Mapping[str, Any] | Grid) -> Grid:
    """A :class:`Grid` from a TOML file, a dict shaped like it, or a ``Grid`` (returned as is).
    Raises ``ConfigError`` naming the file and the key for anything malformed (the parameter
    names are checked against the strategy later, by :func:`plan_runs`)."""
    if isinstance(source, Grid):
        return source
    if isinstance(source, Mapping):
        return _parse_grid(source, None, None)
    if not isinstance(source, str | os.PathLike):
        raise ConfigError(
            f"a grid is a TOML file path or a dict, not {type(source).__name__}", key="grid"
        )
    path = os.path.expanduser(os.fspath(source))
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise ConfigError("grid file not found", file=path) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a grid file", file=path) from None
    except OSError as e:
        raise ConfigError(f"cannot read the grid file: {e.strerror or e}", file=path) from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text: {e}", file=path) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"invalid TOML: {e}", file=path) from None
    return _parse_grid(doc, path, Path(path).resolve().parent)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and _plain(a) == _plain(b)


def _parse_grid(doc: Mapping[str, Any], path: str | None, base: Path | None) -> Grid:
    def err(key: str, message: str) -> ConfigError:
        return ConfigError(message, file=path, key=key)

    for k in doc:
        if k not in GRID_TABLES:
            raise err(str(k), f"unknown table; allowed: {', '.join(GRID_TABLES)}")
    raw_grid = doc.get("grid", {})
    if not isinstance(raw_grid, Mapping):
        raise err("grid", "must be a table of parameter = [values]")
    axes: dict[str, list[Any]] = {}
    symbols: list[str] | None = None
    for k, v in raw_grid.items():
        key = f"grid.{k}"
        values = list(v) if isinstance(v, list) else [v]
        if not values:
            raise err(key, "an empty list of values: give at least one")
        for i, a in enumerate(values):
            if any(_same(a, b) for b in values[:i]):
                raise err(key, f"the value {a!r} is listed twice")
        if k in _SYMBOL_KEYS:
            if symbols is not None:
                raise err(key, "give the symbol axis once (symbols = [...])")
            bad = [s for s in values if not isinstance(s, str) or not s.strip()]
            if bad:
                raise err(key, f"symbols are non-empty strings, not {bad[0]!r}")
            symbols = [str(s) for s in values]
            continue
        axes[str(k)] = values
    raw_sets = doc.get("sets", [])
    if isinstance(raw_sets, Mapping):
        raw_sets = [raw_sets]
    if not isinstance(raw_sets, list) or not all(isinstance(s, Mapping) for s in raw_sets):
        raise err("sets", "must be an array of tables ([[sets]] ...)")
    sets: list[dict[str, Any]] = []
    for i, s in enumerate(raw_sets):
        for k in s:
            if k in _SYMBOL_KEYS:
                raise err(f"sets[{i}].{k}", "put the symbols in [grid] symbols = [...]")
            if k in axes:
                raise err(
                    f"sets[{i}].{k}",
                    f"{k!r} is already a [grid] axis; a parameter is either swept in [grid] "
                    "or listed in [[sets]]",
                )
        if any(_plain(s) == _plain(t) for t in sets):
            raise err(f"sets[{i}]", "the same parameter set is listed twice")
        sets.append(dict(s))

    sweep = doc.get("sweep", {})
    if not isinstance(sweep, Mapping):
        raise err("sweep", f"must be a table with keys {', '.join(_SWEEP_KEYS)}")
    for k in sweep:
        if k not in _SWEEP_KEYS:
            raise err(f"sweep.{k}", f"unknown key; allowed: {', '.join(_SWEEP_KEYS)}")
    window = None
    if "window" in sweep:
        window = parse_window(sweep["window"], file=path, key="sweep.window")
    seed = sweep.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise err("sweep.seed", f"must be a whole number >= 0, not {seed!r}")
    data: list[str] = []
    if "data" in sweep:
        items = sweep["data"] if isinstance(sweep["data"], list) else [sweep["data"]]
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item.strip():
                raise err(f"sweep.data[{i}]", f"must be a file name or URL, not {item!r}")
            if base is not None and "://" not in item and not os.path.isabs(item):
                item = str(base / os.path.expanduser(item))
            data.append(item)

    report = doc.get("report", {})
    if not isinstance(report, Mapping):
        raise err("report", f"must be a table with keys {', '.join(_REPORT_KEYS)}")
    for k in report:
        if k not in _REPORT_KEYS:
            raise err(f"report.{k}", f"unknown key; allowed: {', '.join(_REPORT_KEYS)}")
    for k in ("x", "y", "metric"):
        if k in report and not isinstance(report[k], str):
            raise err(f"report.{k}", f"must be a name (a string), not {report[k]!r}")
    top = report.get("top")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise err("report.top", f"must be a whole number >= 1, not {top!r}")
    return Grid(
        axes=axes,
        sets=sets,
        symbols=symbols,
        days=sweep.get("days"),
        window=window,
        seed=seed,
        data=tuple(data),
        x=report.get("x"),
        y=report.get("y"),
        metric=report.get("metric"),
        top=top,
        path=path,
    )


# ---------------------------------------------------------------------------------- days, window


def _date(value: Any, key: str, file: str | None) -> _dt.date:
    if isinstance(value, _dt.datetime):
        value = value.date()
    if isinstance(value, _dt.date):
        return value
    text = str(value).strip()
    if _DATE_RE.match(text):
        try:
            return _dt.date.fromisoformat(text)
        except ValueError:
            pass
    raise ConfigError(f"bad date {value!r} (give YYYY-MM-DD)", file=file, key=key)


def parse_days(
    spec: Any, calendar: str = "NYSE", *, file: str | None = None, key: str = "days"
) -> list[_dt.date]:
    """Trading days from ``"2026-11-02:2026-11-06"`` (inclusive; only the calendar's sessions),
    ``"2026-11-24"``, a comma-separated mix of both, or a list of dates / strings; sorted, without
    repeats. A single day named on its own must be a session. Raises ``ConfigError``."""
    from ..calendar import get_calendar

    cal = get_calendar(calendar)
    if isinstance(spec, str):
        parts: list[Any] = [p.strip() for p in spec.split(",") if p.strip()]
    elif isinstance(spec, _dt.date):
        parts = [spec]
    elif isinstance(spec, Iterable):
        parts = list(spec)
    else:
        raise ConfigError(
            f"days are START:END, a date or a list of dates, not {spec!r}", file=file, key=key
        )
    out: set[_dt.date] = set()
    for part in parts:
        if isinstance(part, str) and ":" in part:
            a_text, _, b_text = part.partition(":")
            a = _date(a_text, key, file)
            b = _date(b_text, key, file)
            if b < a:
                raise ConfigError(f"{part!r}: the end is before the start", file=file, key=key)
            out.update(cal.trading_days(a, b))
            continue
        d = _date(part, key, file)
        if not cal.is_trading_day(d):
            why = "a weekend" if d.weekday() >= 5 else "a holiday"
            raise ConfigError(
                f"{d.isoformat()} ({d:%A}) is not a trading day on the {cal.name} calendar ({why})",
                file=file,
                key=key,
            )
        out.add(d)
    if not out:
        raise ConfigError(
            f"{spec!r} holds no trading day of the {cal.name} calendar", file=file, key=key
        )
    return sorted(out)


def _hm(value: Any, key: str, file: str | None) -> _dt.time:
    if isinstance(value, _dt.time):
        return value
    m = _HM_RE.match(str(value).strip())
    if m:
        h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
        if h < 24 and mi < 60 and s < 60:
            return _dt.time(h, mi, s)
    raise ConfigError(f"bad time {value!r} (give HH:MM, New York time)", file=file, key=key)


def parse_window(
    spec: Any, *, file: str | None = None, key: str = "window"
) -> tuple[_dt.time, _dt.time]:
    """An intraday window, New York time: ``"09:30-10:30"`` or ``["09:30", "10:30"]``."""
    if isinstance(spec, str):
        parts: list[Any] = spec.split("-")
    elif isinstance(spec, list | tuple):
        parts = list(spec)
    else:
        parts = []
    if len(parts) != 2:
        raise ConfigError(
            f'a window is "HH:MM-HH:MM" or ["HH:MM", "HH:MM"] (New York time), not {spec!r}',
            file=file,
            key=key,
        )
    a, b = _hm(parts[0], key, file), _hm(parts[1], key, file)
    if b <= a:
        raise ConfigError(f"the window {spec!r} ends before it starts", file=file, key=key)
    return a, b


def _hm_text(t: _dt.time) -> str:
    return t.strftime("%H:%M:%S" if t.second else "%H:%M")


def _window_span(
    day: _dt.date, cfg: Config, window: tuple[_dt.time, _dt.time] | None
) -> tuple[int | None, int | None, str]:
    """(start ns, end ns, why not) of a run on ``day``: the day's session span (regular, or pre
    to post with ``hours = "extended"``), narrowed to the window."""
    from ..calendar import get_calendar
    from ..timeutil import to_ns

    info = get_calendar(cfg.session.calendar).day(day)
    if cfg.session.hours == "extended":
        lo, hi = info.pre_open_ns, info.post_close_ns
    else:
        lo, hi = info.open_ns, info.close_ns
    if lo is None or hi is None:  # pragma: no cover - days are sessions
        return None, None, f"{day.isoformat()} is not a trading day"
    if window is None:
        return lo, hi, ""
    a = to_ns(_dt.datetime.combine(day, window[0], tzinfo=EXCHANGE_TZ))
    b = to_ns(_dt.datetime.combine(day, window[1], tzinfo=EXCHANGE_TZ))
    start, end = max(lo, a), min(hi, b)
    if end <= start:

        def et(ns: int) -> str:
            return _dt.datetime.fromtimestamp(ns / 1e9, EXCHANGE_TZ).strftime("%H:%M")

        return (
            None,
            None,
            f"the window {_hm_text(window[0])}-{_hm_text(window[1])} ET is outside the "
            f"{cfg.session.hours} session of {day.isoformat()} ({et(lo)}-{et(hi)} ET"
            f"{', early close' if info.is_early_close else ''})",
        )
    return start, end, ""


# ---------------------------------------------------------------------------------- the plan


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One run of a sweep: a parameter set on a symbol on a day. ``override_symbol``: the
    symbol comes from the grid's symbol axis (set as the strategy's ``symbol`` and, for the
    synthetic market, the only symbol simulated). ``start_ns``/``end_ns``: the run's span (None:
    the data's or the day's own). ``note``: why the run cannot happen (recorded as its error)."""

    run_id: str
    set_id: str
    params: Mapping[str, Any]
    symbol: str
    override_symbol: bool
    day: _dt.date | None
    seed: int
    start_ns: int | None = None
    end_ns: int | None = None
    note: str = ""

    def record(self) -> dict[str, Any]:
        """The identifying part of the run's record."""
        return {
            "run_id": self.run_id,
            "set_id": self.set_id,
            "params": _plain(dict(self.params)),
            "symbol": self.symbol,
            "day": None if self.day is None else self.day.isoformat(),
            "seed": self.seed,
        }


def param_names_of(kind: str) -> list[str] | None:
    """The parameters a strategy kind takes (the fields of the dataclass its ``__init__`` takes
    as ``params``); None when they cannot be found (a strategy then checks its own)."""
    try:
        from ..strategies import registry

        cls = registry.get(kind)
        if cls is None:
            return None
        hint = typing.get_type_hints(cls.__init__).get("params")
    except Exception:
        return None
    for tp in (hint, *typing.get_args(hint)):
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            return [f.name for f in dataclasses.fields(tp)]
    return None


def run_config(config: Config, spec: RunSpec) -> Config:
    """The config of one run: the base config with the run's parameters (and symbol) and day."""
    params = dict(spec.params)
    if spec.override_symbol:
        params["symbol"] = spec.symbol
    cfg = config.with_overrides(date=spec.day, strategy_params=params or None)
    if spec.override_symbol and spec.symbol in cfg.market.symbols:
        market = dataclasses.replace(
            cfg.market, symbols={spec.symbol: cfg.market.symbols[spec.symbol]}
        )
        cfg = dataclasses.replace(cfg, market=market)
    return cfg


def run_seed(base: int, day: _dt.date | None) -> int:
    """The seed of the runs of a day: derived from the base seed and the date (the same for every
    parameter set and symbol, so sets are compared on the same simulated markets); the base
    seed itself without a day."""
    if day is None:
        return base
    digest = hashlib.sha256(f"{base}:{day.isoformat()}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _set_key(grid: Grid, key: str, index: int | None) -> str:
    return f"grid.{key}" if index is None or key in grid.axes else f"sets[{index}].{key}"


def plan_runs(
    cfg: Config,
    grid: Grid,
    *,
    days: Sequence[_dt.date | None],
    window: tuple[_dt.time, _dt.time] | None,
    seed: int,
) -> tuple[list[RunSpec], list[dict[str, Any]], list[str]]:
    """The runs of a sweep (in plan order: set, symbol, day), the parameter sets and the
    parameter names. Checks every grid key against the strategy's parameters and builds the
    strategy of every set and symbol once, so a bad value is a ``ConfigError`` naming the grid
    file and key before anything runs."""
    strat = cfg.strategy
    if not isinstance(strat, StrategyConfig):
        raise ConfigError(
            "a sweep needs a config with a [strategy] table", file=cfg.path, key="strategy"
        )
    names = grid.param_names()
    allowed = param_names_of(strat.kind)
    if allowed is not None:
        for i, s in enumerate([dict(grid.axes), *grid.sets]):
            for k in s:
                if k not in allowed:
                    ok = ", ".join(["symbols", *sorted(a for a in allowed if a != "symbol")])
                    raise ConfigError(
                        f"{k!r} is not a parameter of the {strat.kind} strategy; allowed: {ok}",
                        file=grid.path,
                        key=_set_key(grid, k, None if i == 0 else i - 1),
                    )
    if grid.symbols is not None:
        synthetic = [v.name for v in cfg.venues.values() if getattr(v, "feed", "") == "synthetic"]
        for sym in grid.symbols:
            if synthetic and sym not in cfg.market.symbols:
                raise ConfigError(
                    f"{sym!r} has no [market.symbols.{sym}] table in the config (venue "
                    f"{synthetic[0]!r} uses the synthetic market, which needs its start_price)",
                    file=grid.path,
                    key="grid.symbols",
                )
    param_sets = grid.param_sets()
    n_sets = max(1, len(grid.sets))
    symbols: list[tuple[str, bool]] = [(s, True) for s in grid.symbols or ()]
    specs: list[RunSpec] = []
    for si, params in enumerate(param_sets):
        set_index = si % n_sets if grid.sets else None
        checked = _check_set(cfg, grid, params, set_index, symbols)
        if not grid.symbols:
            symbols = [(checked, False)]
        set_id = _short_hash(_plain(params), 10)
        for sym, override in symbols:
            for day in days:
                rseed = run_seed(seed, day)
                run_id = _short_hash(
                    {"params": _plain(params), "symbol": sym, "day": day, "seed": rseed}, 16
                )
                start = end = None
                note = ""
                if day is not None:
                    start, end, note = _window_span(day, cfg, window)
                specs.append(
                    RunSpec(run_id, set_id, params, sym, override, day, rseed, start, end, note)
                )
    return specs, param_sets, names


def _check_set(
    cfg: Config,
    grid: Grid,
    params: Mapping[str, Any],
    set_index: int | None,
    symbols: list[tuple[str, bool]],
) -> str:
    """Build the strategy of a parameter set (on each swept symbol); returns the symbol(s) the
    strategy trades ("A+B" for several). Bad values become ``ConfigError`` on the grid file."""
    label = ""
    for sym, override in symbols or [("", False)]:
        spec = RunSpec("", "", params, sym, override, None, 0)
        try:
            strategy = build_strategy(run_config(cfg, spec))
        except ConfigError as e:
            key = (e.key or "").removeprefix("strategy.")
            name = key.split(".", 1)[0]
            if name in params:
                raise ConfigError(
                    e.message, file=grid.path, key=_set_key(grid, key, set_index)
                ) from None
            if override and name == "symbol":
                raise ConfigError(e.message, file=grid.path, key="grid.symbols") from None
            raise ConfigError(
                f"with the parameters {_plain(dict(params))}: {e.message}",
                file=grid.path,
                key=f"strategy.{key}" if key else "strategy",
            ) from None
        used = getattr(strategy, "symbols_used", None)
        syms = used() if callable(used) else None
        label = "+".join(sorted(set(syms))) if syms else ""
    return label


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
