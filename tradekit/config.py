"""The TOML configuration of a bot (CONTRACT §4): loading, validation and the resolved settings.

``load_config(path_or_dict)`` returns a frozen :class:`Config`::

    [venues.NAME]   broker (paper | alpaca | ibkr | a registered name), feed, per-broker keys
    [market]        the synthetic feed: date (a trading day), seed, symbols.SYMBOL.start_price, ...
    [session]       calendar, hours (regular | extended), cancel_before_close_s, flatten_at_close,
                    stale_data_s, unknown_orders, shutdown_timeout_s, flatten_on_kill, kill_file
    [risk]          RiskLimits (every key optional)
    [strategy]      kind, venue references, then the strategy's own parameters
    data = [...]    replay files, relative to the config file

Unknown keys, wrong types and impossible values raise ``ConfigError`` naming the file (``None``
for a dict), the dotted key (``venues.nyse.latency_ms``), the value and what is allowed. Hostile
values too, never another exception: numbers anywhere must be finite and at most 1e15 in size
(latencies at most an hour, session times a day, positions 1e9 shares, prices 1e7, the synthetic
feed's rates 100 a second), tables and arrays nest at most 32 levels, venue names and symbols
are at most 64 printable characters, strings are printable, file names hold no NUL.

Credentials (``api_key``, ``secret_key`` and, for third-party brokers, any key whose name looks
like a secret) are accepted but never shown: ``to_dict()`` and every ``repr`` mask them as
``"***"``, error messages name only their type, and logs never contain them. They belong in the
environment (``APCA_API_KEY_ID`` / ``APCA_API_SECRET_KEY``); a config file holding them gets a
warning on the ``tradekit.config`` logger.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from importlib import import_module
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from .errors import ConfigError
from .risk import RiskLimits

__all__ = [
    "BROKERS",
    "FEEDS",
    "MASK",
    "STRATEGY_KINDS",
    "TOP_LEVEL_KEYS",
    "VENUE_REF_KEYS",
    "Config",
    "MarketConfig",
    "SessionConfig",
    "StrategyConfig",
    "VenueConfig",
    "build_strategy",
    "is_secret_key",
    "load_config",
    "mask_secrets",
    "strategy_kinds",
]

log = logging.getLogger("tradekit.config")

#: Tables (and the ``data`` array) allowed at the top level of a config.
TOP_LEVEL_KEYS: Final = ("venues", "market", "session", "risk", "strategy", "data")
#: Data feeds a venue may use.
FEEDS: Final = ("synthetic", "replay", "alpaca", "ibkr")
#: Brokers known to tradekit itself (users' own are found in the ``tradekit.brokers`` group).
BROKERS: Final = ("paper", "alpaca", "ibkr")
#: Strategy kinds shipped with tradekit (more may come from ``tradekit.strategies.registry``).
STRATEGY_KINDS: Final = ("pure_market_making", "arbitrage", "cross_exchange_market_making")
#: ``[strategy]`` keys that name a venue.
VENUE_REF_KEYS: Final = ("venue", "venue_a", "venue_b", "maker_venue", "taker_venue")
#: What a secret's value is replaced with wherever settings are shown.
MASK: Final = "***"

_HOURS: Final = ("regular", "extended")
_RULES: Final = ("default", "alpaca", "ibkr")
_DATA_FEEDS: Final = ("iex", "sip")
_LATENCY_KEYS: Final = ("order_ms", "cancel_ms", "data_ms")
_DEFAULT_FEED: Final = {"paper": "synthetic", "alpaca": "alpaca", "ibkr": "ibkr"}
_SECRET_KEYS: Final = frozenset({"api_key", "secret_key"})
_SECRET_RE: Final = re.compile(
    r"(secret|passw(or)?d|passphrase|token|api_?key|private_?key|credential|^key$|_key$)", re.I
)
_BARE_KEY_RE: Final = re.compile(r"^[A-Za-z0-9_-]+$")
_DATE_RE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# Sanity bounds: values beyond them only ever come from a typo or a hostile file, and would
# overflow (or exhaust memory) somewhere downstream, so they are a ConfigError here.
_MAX_DEPTH: Final = 32  # levels of nested tables and arrays
_MAX_MAGNITUDE: Final = 1e15  # any number in a config
_MAX_NAME: Final = 64  # characters of a venue name or a symbol
_MAX_PATH: Final = 4096  # characters of a file name
_MAX_SHARES: Final = 1e9  # a position
_MAX_PRICE: Final = 1e7  # a price (tradekit.rules refuses orders above it too)
_MAX_LATENCY_MS: Final = 3_600_000  # an hour
_MAX_SECONDS: Final = 86_400  # a day
_MAX_LEVERAGE: Final = 100
#: Limits of the synthetic feed's [market] / [market.symbols.SYMBOL] numbers:
#: key -> (lowest, lowest excluded, highest); the feed itself refuses unknown keys.
_MARKET_NUMBERS: Final[dict[str, tuple[float, bool, float]]] = {
    "start_price": (0.0, True, _MAX_PRICE),
    "volatility": (0.0, False, 100.0),  # annualized: 100 is 10,000 %
    "spread_ticks": (1.0, False, 10_000.0),
    "tick": (0.0, True, _MAX_PRICE),
    "quote_rate": (0.0, True, 100.0),  # per second (a day of 100/s is 2.3 M quotes)
    "trade_rate": (0.0, False, 100.0),  # per second
    "size": (0.0, True, _MAX_SHARES),
    "lead_lag_ms": (0.0, False, float(_MAX_LATENCY_MS)),
    "dislocation_rate": (0.0, False, 3_600.0),  # per hour
}
#: [strategy] keys that name a symbol.
_SYMBOL_REF_KEYS: Final = ("symbol", "symbol_a", "symbol_b", "maker_symbol", "taker_symbol")


def is_secret_key(key: str) -> bool:
    """True for a key whose value is a credential (masked in every display of the settings)."""
    return key in _SECRET_KEYS or bool(_SECRET_RE.search(key))


def mask_secrets(value: Any) -> Any:
    """A copy of ``value`` (tables and arrays, recursively) with every secret's value replaced by
    ``"***"`` (see :func:`is_secret_key`)."""
    if isinstance(value, Mapping):
        return {
            k: (
                MASK
                if isinstance(k, str) and is_secret_key(k) and v is not None
                else mask_secrets(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_secrets(v) for v in value]
    return value


# ---------------------------------------------------------------------------------- the values


@dataclass(frozen=True, slots=True)
class VenueConfig:
    """A named pair of broker and data feed. ``options``: the rest of the ``[venues.NAME]`` table
    (validated for paper, alpaca and ibkr; passed through for registered third-party brokers).
    Its ``repr`` masks credentials."""

    name: str
    broker: str = "paper"
    feed: str = "synthetic"
    options: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"VenueConfig(name={self.name!r}, broker={self.broker!r}, feed={self.feed!r}, "
            f"options={mask_secrets(self.options)!r})"
        )

    def to_dict(self) -> dict[str, Any]:
        """The venue's table as in the TOML, credentials masked."""
        return {"broker": self.broker, "feed": self.feed, **mask_secrets(self.options)}


@dataclass(frozen=True, slots=True)
class MarketConfig:
    """The ``[market]`` table: the simulated day, the random seed, the symbols (each a table with
    at least ``start_price`` when a venue uses the synthetic feed) and ``options``, the other keys
    (``lead_lag_ms``, ``dislocation_rate``, ...) passed to the synthetic feed."""

    date: _dt.date | None = None
    seed: int = 1
    symbols: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``[market]`` table (the date as ``YYYY-MM-DD``; absent when not set)."""
        out: dict[str, Any] = {}
        if self.date is not None:
            out["date"] = self.date.isoformat()
        out["seed"] = self.seed
        out.update(_plain(self.options))
        out["symbols"] = {s: _plain(t) for s, t in self.symbols.items()}
        return out


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """The ``[session]`` table: which calendar, regular or extended hours (extended: quote in the
    pre and post sessions too), cancel our orders this many seconds before the close, flatten
    positions at the close, and treat data older than ``stale_data_s`` as stale (None: never).

    Reliability (``tradekit run``): ``unknown_orders`` is what reconciliation does with open
    orders at a broker that this bot did not place (``adopt`` or ``cancel``); on a stop (Ctrl-C,
    SIGTERM, the kill switch) the bot cancels its orders and waits up to ``shutdown_timeout_s``
    for the confirmations, and flattens its positions first when ``flatten_on_kill``; creating
    the file ``kill_file`` trips the kill switch."""

    calendar: str = "NYSE"
    hours: str = "regular"
    cancel_before_close_s: float = 60.0
    flatten_at_close: bool = False
    stale_data_s: float | None = None
    unknown_orders: str = "adopt"
    shutdown_timeout_s: float = 10.0
    flatten_on_kill: bool = False
    kill_file: str | None = None

    @property
    def extended(self) -> bool:
        """True when trading in the pre and post sessions too."""
        return self.hours == "extended"

    def to_dict(self) -> dict[str, Any]:
        """The ``[session]`` table (keys whose value is None absent)."""
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}


@dataclass(frozen=True, slots=True)
class StrategyConfig:
    """The ``[strategy]`` table: ``kind`` and ``params`` (every other key, venue references
    included; the strategy class validates them)."""

    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``[strategy]`` table."""
        return {"kind": self.kind, **mask_secrets(_plain(self.params))}


@dataclass(frozen=True, slots=True)
class Config:
    """A whole, validated configuration. ``path``: the file it was read from (None for a dict or
    a config built in code); ``data``: replay files (absolute when read from a file).

    ``load_config`` always gives ``VenueConfig`` venues and a ``StrategyConfig`` (or None), as
    typed. ``tradekit.backtest`` also accepts a config built in code whose venues are ``Broker``
    objects and whose strategy is a ``Strategy`` instance (or a list); ``to_dict`` shows those
    by class name only."""

    venues: Mapping[str, VenueConfig]
    market: MarketConfig = field(default_factory=MarketConfig)
    session: SessionConfig = field(default_factory=SessionConfig)
    risk: RiskLimits = field(default_factory=RiskLimits)
    strategy: StrategyConfig | None = None
    path: str | None = None
    data: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The resolved settings shaped like the TOML (defaults filled in, unset values left out,
        credentials masked as ``"***"``). Without credentials, ``load_config(cfg.to_dict())``
        gives back an equal config (``path`` aside)."""
        out: dict[str, Any] = {
            "venues": {name: _venue_dict(v) for name, v in self.venues.items()},
            "market": self.market.to_dict(),
            "session": self.session.to_dict(),
            "risk": {
                f.name: getattr(self.risk, f.name)
                for f in fields(self.risk)
                if getattr(self.risk, f.name) is not None
            },
        }
        if isinstance(self.strategy, list | tuple):
            out["strategy"] = [_strategy_dict(s) for s in self.strategy]
        elif self.strategy is not None:
            out["strategy"] = _strategy_dict(self.strategy)
        if self.data:
            out["data"] = list(self.data)
        return out

    def with_overrides(
        self,
        *,
        seed: int | None = None,
        date: _dt.date | str | None = None,
        data: Sequence[str | os.PathLike[str]] | None = None,
        strategy_params: Mapping[str, Any] | None = None,
    ) -> Config:
        """A copy with some settings replaced (``None``: keep), validated like the file's:
        ``seed`` and ``date`` of ``[market]``, the replay ``data`` files (relative to the current
        directory) and ``strategy_params`` merged into the strategy's parameters."""
        v = _Validator(self.path)
        cfg = self
        if seed is not None or date is not None:
            market = self.market
            if seed is not None:
                market = replace(market, seed=v.seed(seed, "market.seed"))
            if date is not None:
                market = replace(market, date=v.date(date, "market.date", self.session.calendar))
            cfg = replace(cfg, market=market)
        if data is not None:
            cfg = replace(cfg, data=v.data_files(list(data), "data", base=None))
        if strategy_params is not None:
            if not isinstance(self.strategy, StrategyConfig):
                raise ConfigError(
                    "strategy parameters given but the config has no [strategy] table",
                    file=self.path,
                    key="strategy",
                )
            params = {**self.strategy.params, **strategy_params}
            strat = v.strategy({"kind": self.strategy.kind, **params}, cfg.venues)
            cfg = replace(cfg, strategy=strat)
        return cfg


def _venue_dict(venue: Any) -> dict[str, Any]:
    if isinstance(venue, VenueConfig):
        return venue.to_dict()
    # a Broker object built in code: its name and class only (never its attributes)
    return {"broker": str(getattr(venue, "name", "")), "object": type(venue).__name__}


def _strategy_dict(strategy: Any) -> dict[str, Any]:
    if isinstance(strategy, StrategyConfig):
        return strategy.to_dict()
    return {"kind": str(getattr(strategy, "kind", "")), "object": type(strategy).__name__}


# ---------------------------------------------------------------------------------- loading


def load_config(source: str | os.PathLike[str] | Mapping[str, Any] | Config) -> Config:
    """A validated :class:`Config` from a TOML file, a dict shaped like the TOML, or a ``Config``
    (returned as is). Raises ``ConfigError`` (with ``file`` and ``key``) for a missing or
    unreadable file, a TOML syntax error, and every unknown key, wrong type or impossible
    value."""
    if isinstance(source, Config):
        return source
    if isinstance(source, Mapping):
        return _Validator(None).config(source, base=None)
    if not isinstance(source, str | os.PathLike):
        raise ConfigError(
            f"a config is a TOML file path, a dict or a tradekit.Config, not "
            f"{type(source).__name__}"
        )
    path = os.path.expanduser(os.fspath(source))
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise ConfigError("config file not found", file=path) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a config file", file=path) from None
    except OSError as e:
        raise ConfigError(f"cannot read the config file: {e.strerror or e}", file=path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text: {e}", file=path) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"invalid TOML: {e}", file=path) from None
    except RecursionError:
        raise ConfigError(
            f"invalid TOML: arrays or tables nested too deeply (at most {_MAX_DEPTH} levels)",
            file=path,
        ) from None
    base = Path(path).expanduser().resolve().parent
    return _Validator(path).config(doc, base=base)


def strategy_kinds() -> list[str]:
    """Strategy kinds a ``[strategy]`` table may name: tradekit's own plus those in
    ``tradekit.strategies.registry`` when it exists."""
    kinds = set(STRATEGY_KINDS)
    reg = _strategy_registry()
    if reg is not None:
        kinds.update(_registry_names(reg))
    return sorted(kinds)


def build_strategy(config: Config) -> Any | None:
    """Build the configured strategy to validate its parameters, through
    ``tradekit.strategies.build(kind, params, file=)`` or else the class found in
    ``tradekit.strategies.registry`` (``cls.from_config(params, file=)``). ``None`` when the
    config has no ``[strategy]`` or the strategies package is not available. Bad parameters raise
    ``ConfigError`` (a ``TypeError``/``ValueError`` from the strategy becomes one, on the
    ``strategy`` key)."""
    strat = config.strategy
    if not isinstance(strat, StrategyConfig):
        return strat
    pkg = _optional_module("tradekit.strategies")
    if pkg is None:
        return None
    params = dict(strat.params)
    try:
        build = getattr(pkg, "build", None)
        if callable(build):
            return build(strat.kind, params, file=config.path)
        reg = _strategy_registry()
        cls = _registry_lookup(reg, strat.kind) if reg is not None else None
        if cls is None:
            return None
        factory = getattr(cls, "from_config", None)
        if callable(factory):
            return factory(params, file=config.path)
        return cls(**params)
    except ConfigError as e:
        if e.file is None and config.path is not None:
            raise ConfigError(e.message, file=config.path, key=e.key) from e
        raise
    except (TypeError, ValueError, ArithmeticError, LookupError) as e:
        # a strategy that chokes on a hostile value: still a config error, on its table
        raise ConfigError(
            f"{type(e).__name__}: {e}" if isinstance(e, ArithmeticError | LookupError) else str(e),
            file=config.path,
            key="strategy",
        ) from e


def _optional_module(name: str) -> ModuleType | None:
    """``import name``; None when that module does not exist (or is broken: logged)."""
    try:
        return import_module(name)
    except ModuleNotFoundError as e:
        if e.name is not None and name.startswith(e.name):
            return None
        log.warning("%s cannot be imported: %s", name, e)
        return None
    except Exception as e:  # a broken optional module must not stop config loading
        log.warning("%s cannot be imported: %s", name, e)
        return None


def _strategy_registry() -> Any | None:
    """``tradekit.strategies.registry`` (a mapping of kind -> class, or a module offering
    ``names()``/``get()`` or such a mapping); None when absent."""
    pkg = _optional_module("tradekit.strategies")
    if pkg is None:
        return None
    reg = getattr(pkg, "registry", None)
    if reg is None:
        reg = _optional_module("tradekit.strategies.registry")
    return reg


def _registry_mapping(reg: Any) -> Mapping[str, Any] | None:
    if isinstance(reg, Mapping):
        return reg
    for attr in ("REGISTRY", "STRATEGIES", "registry", "strategies"):
        table = getattr(reg, attr, None)
        if isinstance(table, Mapping):
            return table
    return None


def _registry_names(reg: Any) -> list[str]:
    """Strategy kinds a registry offers."""
    table = _registry_mapping(reg)
    if table is not None:
        return [str(n) for n in table]
    names = getattr(reg, "names", None)
    if callable(names):
        try:
            return [str(n) for n in names()]
        except Exception as e:
            log.warning("tradekit.strategies.registry.names() failed: %s", e)
    return []


def _registry_lookup(reg: Any, kind: str) -> Any | None:
    table = _registry_mapping(reg)
    if table is not None:
        return table.get(kind)
    get = getattr(reg, "get", None)
    return get(kind) if callable(get) else None


# ---------------------------------------------------------------------------------- helpers


def _plain(value: Any) -> Any:
    """Mappings as dicts, tuples as lists, dates as ISO strings (recursively)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, _dt.date | _dt.time):
        return value.isoformat()
    return value


def _join(prefix: str, key: Any) -> str:
    """Dotted key path, quoting a key that is not a bare TOML key."""
    k = str(key)
    part = k if _BARE_KEY_RE.match(k) else json.dumps(k)
    return f"{prefix}.{part}" if prefix else part


def _leaf(key: str) -> str:
    return key.rsplit(".", 1)[-1].strip('"')


_TYPE_NAMES: Final[dict[type, str]] = {
    bool: "boolean",
    int: "integer",
    float: "float",
    str: "string",
    _dt.datetime: "datetime",
    _dt.date: "date",
    _dt.time: "time",
}


def _type_name(value: Any) -> str:
    if isinstance(value, Mapping):
        return "table"
    if isinstance(value, list | tuple):
        return "array"
    for t, name in _TYPE_NAMES.items():
        if isinstance(value, t):
            return name
    return type(value).__name__


def _show(value: Any, key: str) -> str:
    """``value (type)`` for a message, or only the type for a secret."""
    if is_secret_key(_leaf(key)):
        name = _type_name(value)
        return f"{'an' if name[0] in 'aeiou' else 'a'} {name} (value hidden)"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value)
    elif isinstance(value, _dt.date | _dt.time):
        text = value.isoformat()
    else:
        text = repr(_plain(value))
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({_type_name(value)})"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _good_name(value: Any) -> bool:
    """A venue name or a symbol: a non-empty str of at most 64 printable characters without
    surrounding spaces."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= _MAX_NAME
        and value.isprintable()
        and value == value.strip()
    )


_NAME_RULE: Final = (
    f"a non-empty string of at most {_MAX_NAME} printable characters without surrounding spaces"
)


def _too_deep(doc: Any, limit: int) -> str | None:
    """The dotted key of the first table or array nested deeper than ``limit`` (None when none
    is); iterative, so neither deep nesting nor a cycle in a dict can blow the stack."""
    stack: list[tuple[Any, str, int]] = [(doc, "", 0)]
    while stack:
        value, key, depth = stack.pop()
        if isinstance(value, Mapping):
            children = [(v, _join(key, k)) for k, v in value.items()]
        elif isinstance(value, list | tuple):
            children = [(v, f"{key}[{i}]") for i, v in enumerate(value)]
        else:
            continue
        if depth >= limit:
            return key or "(top level)"
        stack.extend((v, k, depth + 1) for v, k in children)
    return None


class _Validator:
    """Validation of one config document; ``file`` goes into every error."""

    def __init__(self, file: str | None) -> None:
        self.file = file

    # -- primitives --------------------------------------------------------------------------

    def error(self, key: str | None, message: str) -> ConfigError:
        return ConfigError(message, file=self.file, key=key)

    def table(self, value: Any, key: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(key, f"must be a table, not {_show(value, key)}")
        return value

    def known_keys(self, table: Mapping[str, Any], key: str, allowed: Sequence[str]) -> None:
        for k in table:
            if k not in allowed:
                raise self.error(_join(key, k), f"unknown key; allowed: {', '.join(allowed)}")

    def number(
        self,
        value: Any,
        key: str,
        *,
        minimum: float | None = None,
        positive: bool = False,
        maximum: float = _MAX_MAGNITUDE,
    ) -> float | int:
        want = "a number"
        if positive:
            want = "a number > 0"
        elif minimum is not None:
            want = f"a number >= {minimum:g}"
        if minimum is None and not positive:
            want += f" from {-maximum:g} to {maximum:g}"
        else:
            want += f" and <= {maximum:g}"
        # (an int may be too large for a float: compare, never convert)
        if not _is_number(value) or (isinstance(value, float) and not math.isfinite(value)):
            raise self.error(key, f"must be {want}, not {_show(value, key)}")
        if (
            (positive and value <= 0)
            or (minimum is not None and value < minimum)
            or not -maximum <= value <= maximum
        ):
            raise self.error(key, f"must be {want}, not {_show(value, key)}")
        return value

    def sane(self, value: Any, key: str) -> Any:
        """Check data passed through to another component (strategy parameters, the synthetic
        feed's settings, a third-party broker's keys): every number finite and at most
        1e15 in size, every key a string. Returns ``value``."""
        if isinstance(value, Mapping):
            for k, v in value.items():
                if not isinstance(k, str):
                    raise self.error(_join(key, k), f"a key must be a string, not {_show(k, key)}")
                self.sane(v, _join(key, k))
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                self.sane(v, f"{key}[{i}]")
        elif _is_number(value):
            self.number(value, key)
        return value

    def integer(self, value: Any, key: str, *, lo: int | None = None, hi: int | None = None) -> int:
        if lo is not None and hi is not None:
            want = f"an integer from {lo} to {hi}"
        elif lo is not None:
            want = f"an integer >= {lo}"
        else:
            want = "an integer"
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(key, f"must be {want}, not {_show(value, key)}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self.error(key, f"must be {want}, not {_show(value, key)}")
        return value

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(key, f"must be a boolean (true or false), not {_show(value, key)}")
        return value

    def string(self, value: Any, key: str, choices: Sequence[str] | None = None) -> str:
        want = "one of " + " | ".join(choices) if choices is not None else "a non-empty string"
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"must be {want}, not {_show(value, key)}")
        if not value.isprintable():
            raise self.error(
                key, f"must be {want} of printable characters, not {_show(value, key)}"
            )
        if choices is not None and value not in choices:
            raise self.error(key, f"must be {want}, not {_show(value, key)}")
        return value

    def url(self, value: Any, key: str, schemes: Sequence[str]) -> str:
        text = self.string(value, key)
        scheme = text.split("://", 1)[0].lower() if "://" in text else ""
        if scheme not in schemes:
            raise self.error(
                key,
                f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}, "
                f"not {_show(value, key)}",
            )
        return text

    # -- the document ------------------------------------------------------------------------

    def config(self, doc: Mapping[str, Any], *, base: Path | None) -> Config:
        doc = self.table(doc, "")
        deep = _too_deep(doc, _MAX_DEPTH)
        if deep is not None:
            raise self.error(
                deep, f"nested too deeply (at most {_MAX_DEPTH} levels of tables and arrays)"
            )
        for k in doc:
            if k not in TOP_LEVEL_KEYS:
                raise self.error(
                    _join("", k), f"unknown top-level key; allowed: {', '.join(TOP_LEVEL_KEYS)}"
                )
        if "venues" not in doc:
            raise self.error("venues", "at least one [venues.NAME] table is required")
        venues = self.venues(doc["venues"])
        session = self.session(doc.get("session", {}))
        market = self.market(doc.get("market", {}), venues, session)
        risk = self.risk(doc.get("risk", {}))
        strategy = None
        if "strategy" in doc:
            strategy = self.strategy(doc["strategy"], venues)
        data: tuple[str, ...] = ()
        if "data" in doc:
            data = self.data_files(doc["data"], "data", base=base)
        return Config(
            venues=venues,
            market=market,
            session=session,
            risk=risk,
            strategy=strategy,
            path=self.file,
            data=data,
        )

    # -- [risk] ------------------------------------------------------------------------------

    def risk(self, value: Any) -> RiskLimits:
        table = self.table(value, "risk")
        for k, v in table.items():
            if _is_number(v):  # RiskLimits judges the rest; an int too large for a float first
                self.number(v, _join("risk", k))
        try:
            return RiskLimits.from_config(table, file=self.file)
        except (TypeError, ValueError, ArithmeticError) as e:
            raise self.error("risk", f"{type(e).__name__}: {e}") from None

    # -- [venues] ----------------------------------------------------------------------------

    def venues(self, value: Any) -> dict[str, VenueConfig]:
        table = self.table(value, "venues")
        if not table:
            raise self.error("venues", "at least one [venues.NAME] table is required")
        out: dict[str, VenueConfig] = {}
        for name, body in table.items():
            key = _join("venues", name)
            if not _good_name(name) or ":" in name:
                raise self.error(key, f"a venue name must be {_NAME_RULE}, without ':'")
            out[name] = self.venue(name, body, key)
        return out

    def venue(self, name: str, value: Any, key: str) -> VenueConfig:
        body = self.table(value, key)
        broker = body.get("broker", "paper")
        if not isinstance(broker, str) or not broker:
            bkey = _join(key, "broker")
            raise self.error(bkey, f"must be a broker name (a string), not {_show(broker, bkey)}")
        # (the entry points are scanned only for a name that is not built in: it takes ms)
        known = BROKERS if broker in BROKERS else self._broker_names()
        if broker not in known:
            raise self.error(
                _join(key, "broker"),
                f"unknown broker {broker!r}; allowed: {', '.join(known)} "
                f"(or a broker registered in the 'tradekit.brokers' entry-point group)",
            )
        feed = body.get("feed", _DEFAULT_FEED.get(broker, "synthetic"))
        feed = self.string(feed, _join(key, "feed"), FEEDS)
        options = {k: v for k, v in body.items() if k not in ("broker", "feed")}
        if broker in _DEFAULT_FEED:
            checks = self._broker_checks(broker)
            # a venue fed by another broker's data may carry that feed's settings
            if feed != broker and feed in ("alpaca", "ibkr"):
                checks = {**self._feed_checks(feed), **checks}
            allowed = ["broker", "feed", *checks]
            self.known_keys(body, key, allowed)
            options = {k: checks[k](v, _join(key, k)) for k, v in options.items()}
        else:  # a third-party broker validates its own keys (numbers must still be sane)
            options = _copy(self.sane(options, key))
        for k in options:
            if k in _SECRET_KEYS:
                log.warning(
                    "%s: credentials in a config file; prefer the environment "
                    "(APCA_API_KEY_ID / APCA_API_SECRET_KEY for Alpaca)%s",
                    _join(key, k),
                    f" ({self.file})" if self.file else "",
                )
        return VenueConfig(name=name, broker=broker, feed=feed, options=options)

    def _broker_names(self) -> list[str]:
        from . import brokers

        try:
            return sorted(set(brokers.names()) | set(BROKERS))
        except Exception as e:  # broken entry-point metadata must not hide the builtin ones
            log.warning("cannot list the 'tradekit.brokers' entry points: %s", e)
            return list(BROKERS)

    def _broker_checks(self, broker: str) -> dict[str, Callable[[Any, str], Any]]:
        if broker == "paper":
            return {
                "rules": lambda v, k: self.string(v, k, _RULES),
                "latency_ms": self.latency,
                "cash": lambda v, k: self.number(v, k, positive=True),  # <= 1e15
                "positions": self.positions,
                "shorting": self.boolean,
                "fees": self.fees,
                "leverage": lambda v, k: self.number(v, k, positive=True, maximum=_MAX_LEVERAGE),
            }
        if broker == "alpaca":
            return {
                "paper": self.boolean,
                "base_url": lambda v, k: self.url(v, k, ("https", "http")),
                "trading_stream_url": lambda v, k: self.url(v, k, ("wss", "ws", "https", "http")),
                **self._feed_checks("alpaca"),
            }
        return {  # ibkr
            **self._feed_checks("ibkr"),
            "account": self.string,
            "route": self.string,
            "currency": self.currency,
        }

    def _feed_checks(self, feed: str) -> dict[str, Callable[[Any, str], Any]]:
        if feed == "alpaca":
            return {
                "data_feed": lambda v, k: self.string(v, k, _DATA_FEEDS),
                "data_url": lambda v, k: self.url(v, k, ("https", "http")),
                "data_stream_url": lambda v, k: self.url(v, k, ("wss", "ws", "https", "http")),
                "api_key": self.string,
                "secret_key": self.string,
            }
        return {  # ibkr
            "host": self.string,
            "port": lambda v, k: self.integer(v, k, lo=1, hi=65535),
            "client_id": lambda v, k: self.integer(v, k, lo=-(2**31), hi=2**31 - 1),
        }

    def latency(self, value: Any, key: str) -> float | dict[str, float]:
        if isinstance(value, Mapping):
            self.known_keys(value, key, _LATENCY_KEYS)
            return {
                k: self.number(v, _join(key, k), minimum=0, maximum=_MAX_LATENCY_MS)
                for k, v in value.items()
            }
        if not _is_number(value):
            raise self.error(
                key,
                f"must be a number of milliseconds >= 0 or a table "
                f"{{{', '.join(_LATENCY_KEYS)}}}, not {_show(value, key)}",
            )
        return self.number(value, key, minimum=0, maximum=_MAX_LATENCY_MS)

    def positions(self, value: Any, key: str) -> dict[str, float]:
        table = self.table(value, key)
        for sym in table:
            if not _good_name(sym):
                raise self.error(_join(key, sym), f"a symbol must be {_NAME_RULE}")
        return {
            sym: self.number(qty, _join(key, sym), maximum=_MAX_SHARES)  # may be negative (short)
            for sym, qty in table.items()
        }

    def fees(self, value: Any, key: str) -> Any:
        from .fees import FeeModel

        if not isinstance(value, str | Mapping):
            raise self.error(
                key, f"must be a fee schedule name or a table, not {_show(value, key)}"
            )
        self.sane(value, key)
        try:
            FeeModel.from_config(value)
        except ConfigError as e:
            sub = e.key[len("fees") :] if e.key and e.key.startswith("fees") else ""
            raise self.error(key + sub, e.message) from None
        except (TypeError, ValueError, ArithmeticError) as e:
            raise self.error(key, f"{type(e).__name__}: {e}") from None
        return _copy(value)

    def currency(self, value: Any, key: str) -> str:
        text = self.string(value, key)
        if not re.fullmatch(r"[A-Z]{3}", text):
            raise self.error(
                key,
                f'must be a 3-letter ISO currency code such as "USD", not {_show(value, key)}',
            )
        return text

    # -- [session] ---------------------------------------------------------------------------

    def session(self, value: Any) -> SessionConfig:
        body = self.table(value, "session")
        self.known_keys(body, "session", [f.name for f in fields(SessionConfig)])
        d = SessionConfig()
        calendar = d.calendar
        if "calendar" in body:
            calendar = self.calendar_name(body["calendar"], "session.calendar")
        hours = self.string(body.get("hours", d.hours), "session.hours", _HOURS)
        cbc = self.number(
            body.get("cancel_before_close_s", d.cancel_before_close_s),
            "session.cancel_before_close_s",
            minimum=0,
            maximum=_MAX_SECONDS,
        )
        flatten = self.boolean(
            body.get("flatten_at_close", d.flatten_at_close), "session.flatten_at_close"
        )
        stale = body.get("stale_data_s")
        if stale is not None:
            stale = float(
                self.number(stale, "session.stale_data_s", positive=True, maximum=_MAX_SECONDS)
            )
        unknown = self.string(
            body.get("unknown_orders", d.unknown_orders),
            "session.unknown_orders",
            ("adopt", "cancel"),
        )
        shutdown = self.number(
            body.get("shutdown_timeout_s", d.shutdown_timeout_s),
            "session.shutdown_timeout_s",
            minimum=0,
        )
        flatten_kill = self.boolean(
            body.get("flatten_on_kill", d.flatten_on_kill), "session.flatten_on_kill"
        )
        kill_file = body.get("kill_file")
        if kill_file is not None:
            kill_file = self.string(kill_file, "session.kill_file")
        return SessionConfig(
            calendar,
            hours,
            float(cbc),
            flatten,
            stale,
            unknown,
            float(shutdown),
            flatten_kill,
            kill_file,
        )

    def calendar_name(self, value: Any, key: str) -> str:
        from .calendar import get_calendar

        if not isinstance(value, str):
            raise self.error(
                key, f"must be a calendar name (NYSE, NASDAQ), not {_show(value, key)}"
            )
        try:
            return get_calendar(value).name
        except ConfigError as e:
            raise self.error(key, e.message) from None

    # -- [market] ----------------------------------------------------------------------------

    def market(
        self, value: Any, venues: Mapping[str, VenueConfig], session: SessionConfig
    ) -> MarketConfig:
        body = self.table(value, "market")
        date = None
        if "date" in body:
            date = self.date(body["date"], "market.date", session.calendar)
        seed = self.seed(body.get("seed", 1), "market.seed")
        synthetic = [v.name for v in venues.values() if v.feed == "synthetic"]
        symbols: dict[str, dict[str, Any]] = {}
        raw = self.table(body.get("symbols", {}), "market.symbols")
        for sym, spec in raw.items():
            skey = _join("market.symbols", sym)
            if not _good_name(sym):
                raise self.error(skey, f"a symbol must be {_NAME_RULE}")
            spec = self.table(spec, skey)
            self.market_numbers(spec, skey)
            if "start_price" in spec:
                self.number(
                    spec["start_price"],
                    _join(skey, "start_price"),
                    positive=True,
                    maximum=_MAX_PRICE,
                )
            elif synthetic:
                raise self.error(
                    _join(skey, "start_price"),
                    f"required (a number > 0): venue {synthetic[0]!r} uses the synthetic feed",
                )
            symbols[sym] = _copy(spec)
        if synthetic and not symbols:
            raise self.error(
                "market.symbols",
                f"venue {synthetic[0]!r} uses the synthetic feed, which needs at least one "
                f"[market.symbols.SYMBOL] table with a start_price",
            )
        options = {k: _copy(v) for k, v in body.items() if k not in ("date", "seed", "symbols")}
        self.market_numbers(options, "market")
        return MarketConfig(date=date, seed=seed, symbols=symbols, options=options)

    def market_numbers(self, table: Mapping[str, Any], key: str) -> None:
        """The synthetic feed's numbers within their limits (its other checks are its own)."""
        for k, v in table.items():
            limits = _MARKET_NUMBERS.get(k)
            if limits is None or not _is_number(v):
                continue  # the feed refuses unknown keys and non-numbers itself
            low, strict, high = limits
            if strict and low == 0:
                self.number(v, _join(key, k), positive=True, maximum=high)
            else:
                self.number(v, _join(key, k), minimum=low, maximum=high)
        self.sane(table, key)

    def seed(self, value: Any, key: str) -> int:
        return self.integer(value, key, lo=0)

    def date(self, value: Any, key: str, calendar: str) -> _dt.date:
        from .calendar import get_calendar

        day: _dt.date | None = None
        if isinstance(value, _dt.date) and not isinstance(value, _dt.datetime):
            day = value
        elif isinstance(value, str) and _DATE_RE.match(value.strip()):
            try:
                day = _dt.date.fromisoformat(value.strip())
            except ValueError:
                day = None
        if day is None:
            raise self.error(
                key,
                f'must be a date YYYY-MM-DD (2026-11-24 or "2026-11-24"), not {_show(value, key)}',
            )
        cal = get_calendar(calendar)
        try:
            if cal.is_trading_day(day):
                return day
            nxt = cal.trading_days(day + _dt.timedelta(days=1), day + _dt.timedelta(days=31))
        except ValueError as e:
            raise self.error(key, f"{day.isoformat()}: {e}") from None
        hint = f"; next trading day: {nxt[0].isoformat()} ({nxt[0]:%A})" if nxt else ""
        why = "a weekend" if day.weekday() >= 5 else "a holiday"
        raise self.error(
            key,
            f"{day.isoformat()} ({day:%A}) is not a trading day on the {cal.name} calendar "
            f"({why}){hint}",
        )

    # -- [strategy] --------------------------------------------------------------------------

    def strategy(self, value: Any, venues: Mapping[str, Any]) -> StrategyConfig:
        body = self.table(value, "strategy")
        if "kind" not in body:
            raise self.error("strategy.kind", f"required; one of {' | '.join(strategy_kinds())}")
        kind = body["kind"]
        kinds = strategy_kinds()
        if not isinstance(kind, str) or kind not in kinds:
            raise self.error(
                "strategy.kind",
                f"unknown strategy {_show(kind, 'strategy.kind')}; allowed: {', '.join(kinds)}",
            )
        for ref in VENUE_REF_KEYS:
            if ref in body:
                v = body[ref]
                if not isinstance(v, str) or v not in venues:
                    raise self.error(
                        f"strategy.{ref}",
                        f"unknown venue {_show(v, ref)}; defined venues: {', '.join(venues)}",
                    )
        for ref in _SYMBOL_REF_KEYS:
            if ref in body and not _good_name(body[ref]):
                raise self.error(
                    f"strategy.{ref}",
                    f"a symbol must be {_NAME_RULE}, not {_show(body[ref], ref)}",
                )
        self.sane(body, "strategy")
        params = {k: _copy(v) for k, v in body.items() if k != "kind"}
        return StrategyConfig(kind=kind, params=params)

    # -- data --------------------------------------------------------------------------------

    def data_files(self, value: Any, key: str, *, base: Path | None) -> tuple[str, ...]:
        items = [value] if isinstance(value, str | os.PathLike) else value
        if not isinstance(items, list | tuple):
            raise self.error(key, f"must be an array of file names, not {_show(value, key)}")
        out: list[str] = []
        for i, item in enumerate(items):
            if not isinstance(item, str | os.PathLike) or not os.fspath(item).strip():
                raise self.error(f"{key}[{i}]", f"must be a file name, not {_show(item, key)}")
            text = os.fspath(item)
            if not isinstance(text, str) or "\x00" in text or len(text) > _MAX_PATH:
                raise self.error(
                    f"{key}[{i}]",
                    f"must be a file name (text without NUL characters, at most {_MAX_PATH} "
                    f"characters), not {_show(item, key)}",
                )
            p = Path(os.fspath(item)).expanduser()
            if base is not None and not p.is_absolute():
                p = base / p
            out.append(str(p))
        return tuple(out)


def _copy(value: Any) -> Any:
    """A deep copy of TOML-shaped data (tables as dicts, arrays as lists)."""
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
