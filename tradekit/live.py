"""``tradekit run``: the same engine in wall-clock time.

* Only paper venues on synthetic or replay data: the configured day is played from its open at
  wall-clock pace (times ``speed``), so the demo works at any hour.
* Any live venue (alpaca, ibkr, a registered broker): the real clock and calendar rule; the
  feeds push market data into the engine as it arrives.

Either way orders and fills are logged as they happen, the run stops cleanly on Ctrl-C, SIGTERM
or after ``duration`` seconds (the strategy's open orders are cancelled), and the same outputs as
a backtest are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .backtesting import _merge, _strategies, build_engine
from .brokers import get as get_broker
from .brokers.base import Broker, DataFeed
from .config import Config, load_config
from .engine import Engine
from .errors import ConfigError
from .model import Fill, Order
from .results import BacktestResult, default_out_dir
from .risk import KillSwitch
from .strategies import Strategy

log = logging.getLogger("tradekit.run")

_SIMULATED_FEEDS = ("synthetic", "replay")


def _log_event(venue: str, obj: Any) -> None:
    if isinstance(obj, Fill):
        log.info(
            "%s fill %s %s %g @ %g fee %.4f (%s) %s",
            venue,
            obj.symbol,
            obj.side.value,
            obj.qty,
            obj.price,
            obj.fee,
            obj.liquidity.value,
            obj.client_order_id,
        )
    elif isinstance(obj, Order):
        log.info(
            "%s order %s %s %s %g @ %s %s",
            venue,
            obj.client_order_id,
            obj.symbol,
            obj.side.value,
            obj.qty,
            obj.limit_price if obj.limit_price is not None else "MKT",
            obj.status.value + (f" ({obj.reject_message})" if obj.reject_message else ""),
        )


def _log_orders(engine: Engine) -> None:
    for name, r in engine.routes.items():
        r.broker.add_listener(functools.partial(_log_event, name))


def is_simulated(cfg: Config) -> bool:
    return all(
        isinstance(v, Broker) or (v.broker == "paper" and v.feed in _SIMULATED_FEEDS)
        for v in cfg.venues.values()
    )


class _Stop:
    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.reason = ""

    def set(self, reason: str) -> None:
        if not self.event.is_set():
            self.reason = reason
            log.info("stopping: %s", reason)
            self.event.set()


def _install_signals(stop: _Stop) -> list[int]:
    loop = asyncio.get_running_loop()
    installed: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set, signal.Signals(sig).name)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            pass
    return installed


async def _play_simulated(
    engine: Engine,
    events: Any,
    start_ns: int,
    end_ns: int,
    speed: float,
    stop: _Stop,
    deadline: float | None,
) -> None:
    """Play time-sorted events at ``speed`` times wall-clock pace from ``start_ns``."""
    wall0 = time.monotonic()
    ns_per_wall_s = speed * 1e9

    def sim_now() -> int:
        return start_ns + int((time.monotonic() - wall0) * ns_per_wall_s)

    async def wait_until(ts: int) -> bool:
        """Sleep (running due engine events) until sim time ``ts``; False when stopped."""
        while True:
            if stop.event.is_set():
                return False
            if deadline is not None and time.monotonic() >= deadline:
                stop.set("duration reached")
                return False
            now = sim_now()
            due = engine.next_due_ns()
            if due is not None and due <= min(ts, now):
                engine.run_due(min(ts, now))
                continue
            if ts <= now:
                return True
            nxt = ts if due is None else min(ts, due)
            delay = min(0.25, (nxt - now) / ns_per_wall_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.event.wait(), timeout=max(0.0, delay))

    for ev in events:
        if ev.ts < start_ns:
            continue
        if ev.ts > end_ns or not await wait_until(ev.ts):
            break
        engine.step(ev)
    else:
        await wait_until(end_ns)


async def _play_live(
    engine: Engine, feeds: list[DataFeed], stop: _Stop, deadline: float | None
) -> None:
    """Wall-clock run: feeds push events; timers and venue events run on time."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for f in feeds:
        f.add_listener(queue.put_nowait)
    while not stop.event.is_set():
        if deadline is not None and time.monotonic() >= deadline:
            stop.set("duration reached")
            break
        now = time.time_ns()
        due = engine.next_due_ns()
        timeout = 0.25 if due is None else max(0.0, min(0.25, (due - now) / 1e9))
        try:
            ev = await asyncio.wait_for(queue.get(), timeout=timeout)
        except TimeoutError:
            ev = None
        now = time.time_ns()
        engine.run_due(now)
        engine.clock._ns = max(engine.clock._ns, now)
        if ev is not None:
            engine.step(ev)


def _live_parts(
    cfg: Config, strategies: list[Strategy], kill: KillSwitch
) -> tuple[Engine, list[Broker], list[DataFeed]]:
    engine = Engine.for_session(cfg.session, kill_switch=kill)
    brokers: list[Broker] = []
    feeds: list[DataFeed] = []
    for name, vc in cfg.venues.items():
        if isinstance(vc, Broker):
            broker: Broker = vc
        else:
            cls = get_broker(vc.broker)
            broker = cls.from_venue_config(name, vc.options, risk=cfg.risk, kill_switch=kill)
            feed = None
            if vc.feed not in _SIMULATED_FEEDS:
                feed = get_broker(vc.feed).feed_from_venue_config(name, vc.options)
            if feed is None:
                raise ConfigError(
                    f'venue {name!r}: a live run needs a live feed (feed = "alpaca" or '
                    f'"ibkr"), not {vc.feed!r}',
                    file=cfg.path,
                    key=f"venues.{name}.feed",
                )
            feeds.append(feed)
        engine.add_venue(name, broker)
        brokers.append(broker)
    for s in strategies:
        engine.add_strategy(s)
    return engine, brokers, feeds


async def run_async(
    config: str | os.PathLike[str] | Mapping[str, Any] | Config,
    *,
    duration: float | None = None,
    speed: float = 1.0,
    out: str | os.PathLike[str] | None = None,
    journal: str | os.PathLike[str] | None = None,
) -> BacktestResult:
    cfg = load_config(config)
    if journal is not None:
        raise ConfigError("--journal is not available yet in this version", key="journal")
    if not speed > 0:
        raise ConfigError(f"--speed {speed!r} must be > 0", key="speed")
    if duration is not None and not duration > 0:
        raise ConfigError(f"--duration {duration!r} must be > 0 seconds", key="duration")
    stop = _Stop()
    installed = _install_signals(stop)
    deadline = None if duration is None else time.monotonic() + duration
    try:
        if is_simulated(cfg):
            engine, sources, span = build_engine(cfg)
            events = _merge(sources, span[0], span[1])
            start_ns = span[0]
            if start_ns is None:  # replay only: from the first event
                first = next(events, None)
                if first is None:
                    raise ConfigError("the replay files hold no market data", key="data")
                start_ns = first.ts
                events = itertools.chain((first,), events)
            end_ns = span[1] if span[1] is not None else 2**62
            _log_orders(engine)
            engine.start(start_ns, end_ns)
            await _play_simulated(engine, events, start_ns, end_ns, speed, stop, deadline)
            rec = engine.stop(engine.clock.now_ns())
        else:
            strategies = _strategies(cfg, None)
            engine, brokers, feeds = _live_parts(cfg, strategies, KillSwitch())
            _log_orders(engine)
            for b in brokers:
                await b.connect()
            for f in feeds:
                await f.connect()
                syms = sorted({x for s in strategies for x in (s.symbols_used() or [])})
                if syms:
                    f.subscribe(syms)
            now = time.time_ns()
            engine.start(now, now + 10**18)
            engine.clock._ns = now
            try:
                await _play_live(engine, feeds, stop, deadline)
            finally:
                rec = engine.stop(time.time_ns())
                await asyncio.sleep(0.5)  # let cancel confirmations arrive
                for f in feeds:
                    await f.close()
                for b in brokers:
                    await b.close()
    finally:
        loop = asyncio.get_running_loop()
        for sig in installed:
            loop.remove_signal_handler(sig)
    result = BacktestResult(rec)
    out_dir = Path(out) if out is not None else default_out_dir()
    result.write(out_dir)
    log.info("outputs written to %s", out_dir)
    return result


def run(
    config: str | os.PathLike[str] | Mapping[str, Any] | Config,
    *,
    duration: float | None = None,
    speed: float = 1.0,
    out: str | os.PathLike[str] | None = None,
    journal: str | os.PathLike[str] | None = None,
) -> BacktestResult:
    """Blocking ``run_async``: run a config in wall-clock time and write its outputs."""
    return asyncio.run(run_async(config, duration=duration, speed=speed, out=out, journal=journal))
