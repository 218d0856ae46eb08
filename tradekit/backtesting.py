"""Backtests (``tradekit.backtest``): build a run from a config (a TOML path, a dict shaped like
it, or a ``tradekit.Config`` with strategy instances and brokers built in code) and play it on
the simulated clock. The ``tradekit backtest`` command is a thin layer over this."""

from __future__ import annotations

import heapq
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from operator import attrgetter
from typing import Any

from .brokers.base import Broker
from .brokers.paper import Latency, PaperBroker
from .config import Config, StrategyConfig, VenueConfig, load_config
from .engine import Engine
from .errors import ConfigError
from .results import BacktestResult
from .risk import KillSwitch
from .strategies import Strategy, build
from .timeutil import to_ns

log = logging.getLogger("tradekit.backtesting")

_PAPER_KEYS = ("rules", "latency_ms", "cash", "positions", "fees", "shorting", "leverage")


def paper_broker_for(
    vc: VenueConfig, cfg: Config, *, seed: int, kill_switch: KillSwitch | None
) -> PaperBroker:
    """The simulated broker of a venue. A venue configured for a live broker is simulated with
    that broker's rules and fees."""
    opts = dict(vc.options)
    kw: dict[str, Any] = {k: opts[k] for k in _PAPER_KEYS if k in opts}
    if "rules" not in kw:
        kw["rules"] = vc.broker if vc.broker in ("alpaca", "ibkr") else "default"
    return PaperBroker(
        **kw,
        risk=cfg.risk,
        seed=seed,
        venue=vc.name,
        kill_switch=kill_switch,
        calendar=cfg.session.calendar,
        id_prefix=vc.name,
    )


def _strategies(cfg: Config, extra: Any) -> list[Strategy]:
    src = extra if extra is not None else cfg.strategy
    if src is None:
        raise ConfigError("no [strategy] table: nothing to run", file=cfg.path, key="strategy")
    items = src if isinstance(src, list | tuple) else [src]
    out: list[Strategy] = []
    for s in items:
        if isinstance(s, Strategy):
            out.append(s)
        elif isinstance(s, StrategyConfig):
            out.append(build(s.kind, s.params, file=cfg.path))
        elif isinstance(s, Mapping):
            params = dict(s)
            kind = params.pop("kind", None)
            if not isinstance(kind, str):
                raise ConfigError("a strategy table needs kind", file=cfg.path, key="strategy.kind")
            out.append(build(kind, params, file=cfg.path))
        else:
            raise ConfigError(f"not a strategy: {s!r}", file=cfg.path, key="strategy")
    return out


def _progress_bar(enabled: bool) -> Callable[[float, int], None] | None:
    if not enabled:
        return None
    t0 = time.perf_counter()
    last = [0.0]

    def show(frac: float, n: int) -> None:
        now = time.perf_counter()
        if now - last[0] < 0.2 and frac < 1.0:
            return
        last[0] = now
        frac = min(1.0, max(0.0, frac))
        width = 30
        done = int(frac * width)
        rate = n / max(now - t0, 1e-9)
        sys.stderr.write(
            f"\r[{'#' * done}{'.' * (width - done)}] {frac:6.1%} {n:>10,} events {rate:>11,.0f}/s"
        )
        sys.stderr.flush()
        if frac >= 1.0:
            sys.stderr.write("\n")

    return show


def build_engine(
    cfg: Config,
    *,
    data: Sequence[str | os.PathLike[str]] = (),
    seed: int | None = None,
    strict: bool = False,
    strategies: Any = None,
    report_bad_row: Callable[[str], None] | None = None,
) -> tuple[Engine, list[Any], tuple[int | None, int | None]]:
    """The engine of a backtest, its market data sources and the natural time span."""
    from .feeds import ReplaySource, SyntheticMarket

    seed = cfg.market.seed if seed is None else seed
    kill = KillSwitch()
    engine = Engine.for_session(cfg.session, kill_switch=kill)
    files = [os.fspath(f) for f in (*cfg.data, *data)]
    synthetic: list[str] = []
    replay: list[str] = []
    for name, vc in cfg.venues.items():
        if isinstance(vc, Broker):
            broker: Broker = vc
            feed = "replay" if files else "synthetic"
            latency_ms = getattr(broker, "latency", Latency()).data_ns / 1e6
        else:
            broker = paper_broker_for(vc, cfg, seed=seed, kill_switch=kill)
            feed = vc.feed
            latency_ms = Latency.coerce(vc.options.get("latency_ms", 0)).data_ns / 1e6
            if feed not in ("synthetic", "replay"):
                if not files:
                    raise ConfigError(
                        f"venue {name!r} takes its data from {feed!r}, which a backtest cannot "
                        'reach: give replay files (--data) or set feed = "synthetic"',
                        file=cfg.path,
                        key=f"venues.{name}.feed",
                    )
                feed = "replay"
        (synthetic if feed == "synthetic" else replay).append(name)
        engine.add_venue(name, broker, data_latency_ms=latency_ms, replay=feed == "replay")
    for s in _strategies(cfg, strategies):
        engine.add_strategy(s)
    sources: list[Any] = []
    span: tuple[int | None, int | None] = (None, None)
    if synthetic:
        if cfg.market.date is None:
            raise ConfigError(
                "the synthetic market needs [market] date", file=cfg.path, key="market.date"
            )
        mkt = SyntheticMarket(
            date=cfg.market.date,
            symbols=dict(cfg.market.symbols),
            venues=synthetic,
            seed=seed,
            calendar=cfg.session.calendar,
            hours=cfg.session.hours,
            **dict(cfg.market.options),
        )
        sources.append(mkt)
        day = engine.calendar().day(cfg.market.date)
        if cfg.session.hours == "extended":
            span = (day.pre_open_ns, day.post_close_ns)
        else:
            span = (day.open_ns, day.close_ns)
    if replay:
        if not files:
            raise ConfigError(
                f"venue(s) {', '.join(replay)} replay files, but none were given (--data or "
                "data = [...] in the config)",
                file=cfg.path,
                key="data",
            )
        # with one replay venue, rows without a venue are built for it directly (no copies)
        sources.append(
            ReplaySource(
                files,
                strict=strict,
                report=report_bad_row,
                default_venue=replay[0] if len(replay) == 1 else "",
            )
        )
    return engine, sources, span


def _merge(sources: list[Any], start_ns: int | None, end_ns: int | None) -> Iterator[Any]:
    streams = [s.events(start_ns, end_ns) for s in sources]
    if len(streams) == 1:
        return iter(streams[0])
    return heapq.merge(*streams, key=attrgetter("ts"))


def backtest(
    config: str | os.PathLike[str] | Mapping[str, Any] | Config,
    *,
    data: Iterable[str | os.PathLike[str]] | str | None = None,
    start: Any = None,
    end: Any = None,
    seed: int | None = None,
    strict: bool = False,
    progress: bool = False,
    strategies: Any = None,
    journal: str | os.PathLike[str] | None = None,
) -> BacktestResult:
    """Run a backtest and return its result (``.summary``, ``.orders``, ``.fills``,
    ``.write(dir)``, ``.report(path)``).

    ``config``: a TOML path, a dict shaped like the TOML, or a ``tradekit.Config`` (whose
    ``strategy`` may be a ``Strategy`` instance and whose venues may be ``PaperBroker`` objects).
    ``data``: replay files; ``start``/``end``: ISO-8601 with an offset, tz-aware datetimes or
    ns; ``seed`` overrides ``[market] seed``; ``strict`` makes the first bad data row fatal;
    ``journal``: also journal every command and event to this file (``tradekit.journal``).
    """
    cfg = load_config(config)
    if isinstance(data, str | os.PathLike):
        data = [data]
    engine, sources, span = build_engine(
        cfg,
        data=list(data or ()),
        seed=seed,
        strict=strict,
        strategies=strategies,
    )
    start_ns = to_ns(start) if start is not None else span[0]
    end_ns = to_ns(end) if end is not None else span[1]
    if start_ns is not None and end_ns is not None and end_ns <= start_ns:
        raise ConfigError(f"end {end!r} must be after start {start!r}", key="end")
    events = _merge(sources, start_ns, end_ns)
    bar = _progress_bar(progress)
    jr = None
    if journal is not None:
        from .journal import Journal

        jr = Journal(journal)
        for r in engine.routes.values():
            jr.attach(r.broker)
    try:
        rec = engine.run_backtest(events, start_ns, end_ns, progress=bar)
    finally:
        if jr is not None:
            jr.close()
    if bar is not None:
        bar(1.0, rec.events)
    return BacktestResult(rec)
