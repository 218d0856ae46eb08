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
import json
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
from .feeds.guard import MarketDataGuard
from .journal import Journal, JournalState, initial_positions, restore_brokers
from .model import Fill, Order
from .results import BacktestResult, default_out_dir
from .risk import KillSwitch
from .strategies import Strategy
from .timeutil import iso

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


def _install_signals(on_signal: Any) -> list[int]:
    loop = asyncio.get_running_loop()
    installed: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal, signal.Signals(sig).name)
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
    yield_at = wall0 + _YIELD_S

    def sim_now() -> int:
        return start_ns + int((time.monotonic() - wall0) * ns_per_wall_s)

    async def wait_until(ts: int) -> bool:
        """Sleep (running due engine events) until sim time ``ts``; False when stopped."""
        nonlocal yield_at
        while True:
            if stop.event.is_set():
                return False
            mono = time.monotonic()
            if deadline is not None and mono >= deadline:
                stop.set("duration reached")
                return False
            if mono >= yield_at:  # let the watchers (kill file, journal) run at any speed
                yield_at = mono + _YIELD_S
                await asyncio.sleep(0)
                continue
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


_YIELD_S = 0.02


class _Freshness:
    """The time of each venue's latest market data (wall clock), for the staleness limit."""

    def __init__(self, venues: list[str]) -> None:
        now = time.monotonic()
        self.last = dict.fromkeys(venues, now)

    def seen(self, engine: Engine, venue: str) -> None:
        self.last[venue] = time.monotonic()
        r = engine.routes.get(venue)
        if r is not None and "stale" in r.blocked:
            engine.set_blocked(venue, "stale", False)

    def check(self, engine: Engine, limit_s: float) -> None:
        """Pause the venues with no data for ``limit_s`` while their market should be quoted."""
        if not engine.quoting_allowed():
            for v in self.last:
                self.last[v] = time.monotonic()  # closed markets are quiet: no staleness
            return
        now = time.monotonic()
        for v, t in self.last.items():
            if now - t > limit_s:
                engine.set_blocked(v, "stale", True)


async def _play_live(
    engine: Engine,
    feeds: list[DataFeed],
    stop: _Stop,
    deadline: float | None,
    fresh: _Freshness,
) -> None:
    """Wall-clock run: feeds push events; timers and venue events run on time. Malformed
    market data is skipped with a warning (``MarketDataGuard``); an exception out of a strategy
    is logged and the run goes on."""
    guard = MarketDataGuard()
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
        if ev is not None and guard.check(ev):
            fresh.seen(engine, ev.venue)
            try:
                engine.step(ev)
            except Exception:
                log.exception("error while handling %r (the run goes on)", ev)


async def _watch(
    stop: _Stop,
    kill: KillSwitch,
    journal: Journal,
    engine: Engine,
    fresh: _Freshness | None,
    stale_s: float | None,
) -> None:
    """Every 0.1 s: the kill switch's flag file, the journal's buffered events, staleness."""
    while not stop.event.is_set():
        kill.poll()
        journal.tick()
        if fresh is not None and stale_s is not None:
            fresh.check(engine, stale_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.event.wait(), timeout=0.1)


async def _settle(brokers: list[Broker], timeout: float) -> None:
    """Wait (up to ``timeout`` seconds) until no order is open at any broker."""
    end = time.monotonic() + timeout
    while True:
        left = [o for b in brokers for o in b.open_orders()]
        if not left:
            return
        if time.monotonic() >= end:
            log.warning(
                "%d orders still open after %gs: %s",
                len(left),
                timeout,
                ", ".join(o.client_order_id for o in left[:10]),
            )
            return
        await asyncio.sleep(0.05)


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


def _restore(journal: Journal, engine: Engine, brokers: list[Broker]) -> JournalState:
    """Rebuild the brokers and the engine from the journal (nothing happens for a new one)."""
    state = journal.load()
    if "initial_positions" not in state.meta:  # a new journal: the inventory before anything
        initial = engine.positions()
        journal.set_meta("initial_positions", initial)
        state.meta["initial_positions"] = initial
    if state.empty:
        return state
    restore_brokers(state, brokers)
    engine.restore(state.fills, initial_positions(state.meta) or None)
    start = state.meta.get("start_ns")
    if isinstance(start, int):
        engine.history_start_ns = start
    n_open = sum(1 for v in state.venues.values() for o in v.orders.values() if o.is_open)
    log.info(
        "restarting from journal %s: %d orders (%d open), %d fills, %d runs, last event %s",
        journal.path,
        sum(len(v.orders) for v in state.venues.values()),
        n_open,
        len(state.fills),
        state.runs,
        iso(state.last_ts),
    )
    return state


def _attach(journal: Journal, brokers: list[Broker], cfg: Config) -> None:
    for b in brokers:
        b.unknown_orders = cfg.session.unknown_orders
        journal.attach(b)


def _journal_started(journal: Journal, engine: Engine, state: JournalState, cfg: Config) -> None:
    if "start_ns" not in state.meta:
        journal.set_meta("start_ns", engine.start_ns)
        journal.set_meta("strategy", ",".join(s.kind for s in engine.strategies))
    journal.record(
        "run",
        engine.clock.now_ns(),
        {
            "event": "start" if state.empty else "restart",
            "pid": os.getpid(),
            "config": None if cfg.path is None else str(cfg.path),
        },
    )


async def run_async(
    config: str | os.PathLike[str] | Mapping[str, Any] | Config,
    *,
    duration: float | None = None,
    speed: float = 1.0,
    out: str | os.PathLike[str] | None = None,
    journal: str | os.PathLike[str] | None = None,
) -> BacktestResult:
    """Run a config in wall-clock time with a journal (``journal``, default
    ``OUT/journal.sqlite``): a journal holding a history is restarted from (see the module
    docstring); Ctrl-C, SIGTERM, the kill switch's flag file or its daily loss limit stop the run
    cleanly (cancel all, flatten if ``flatten_on_kill``, wait for the confirmations up to
    ``shutdown_timeout_s``, close the journal, write the outputs)."""
    cfg = load_config(config)
    if not speed > 0:
        raise ConfigError(f"--speed {speed!r} must be > 0", key="speed")
    if duration is not None and not duration > 0:
        raise ConfigError(f"--duration {duration!r} must be > 0 seconds", key="duration")
    out_dir = Path(out) if out is not None else default_out_dir()
    jr = Journal(Path(journal) if journal is not None else out_dir / "journal.sqlite")
    stop = _Stop()
    kill: KillSwitch | None = None

    def on_signal(name: str) -> None:
        if kill is not None:
            kill.trip(name)  # cancels everything at once; the kill listener stops the run
        stop.set(name)

    installed = _install_signals(on_signal)
    deadline = None if duration is None else time.monotonic() + duration
    watcher: asyncio.Task[None] | None = None
    feeds: list[DataFeed] = []
    brokers: list[Broker] = []
    simulated = is_simulated(cfg)
    try:
        if simulated:
            engine, sources, span = build_engine(cfg)
            brokers = [r.broker for r in engine.routes.values()]
        else:
            engine, brokers, feeds = _live_parts(cfg, _strategies(cfg, None), KillSwitch())
        kill = engine.kill_switch
        kill.add_listener(lambda reason: stop.set(f"kill switch: {reason}"))
        if cfg.session.kill_file:
            kill.watch_file(cfg.session.kill_file)
        state = _restore(jr, engine, brokers)
        _attach(jr, brokers, cfg)
        _log_orders(engine)
        fresh = (
            _Freshness([f.venue for f in feeds])
            if feeds and cfg.session.stale_data_s is not None
            else None
        )
        watcher = asyncio.create_task(
            _watch(stop, kill, jr, engine, fresh, cfg.session.stale_data_s)
        )
        if simulated:
            events = _merge(sources, span[0], span[1])
            start_ns = span[0]
            if start_ns is None:  # replay only: from the first event
                first = next(events, None)
                if first is None:
                    raise ConfigError("the replay files hold no market data", key="data")
                start_ns = first.ts
                events = itertools.chain((first,), events)
            if not state.empty:  # resume where the journal ends
                start_ns = max(start_ns, state.last_ts + 1)
            end_ns = span[1] if span[1] is not None else 2**62
            engine.clock._ns = start_ns
            for b in brokers:
                await b.connect()  # (a restored paper venue reconciles)
            engine.start(start_ns, end_ns)
            _journal_started(jr, engine, state, cfg)
            if not stop.event.is_set():
                await _play_simulated(engine, events, start_ns, end_ns, speed, stop, deadline)
        else:
            for b in brokers:
                await b.connect()  # reconciles (a restored journal's orders included)
            for f in feeds:
                await f.connect()
                syms = sorted({x for s in engine.strategies for x in (s.symbols_used() or [])})
                if syms:
                    f.subscribe(syms)
            now = time.time_ns()
            engine.clock._ns = now
            engine.start(now, now + 10**18)
            _journal_started(jr, engine, state, cfg)
            if not stop.event.is_set():
                await _play_live(engine, feeds, stop, deadline, fresh or _Freshness([]))
        engine.halt(flatten=kill.tripped and cfg.session.flatten_on_kill)
        await _settle(brokers, cfg.session.shutdown_timeout_s)
        rec = engine.stop(engine.clock.now_ns() if simulated else time.time_ns())
        jr.record("run", rec.end_ns, {"event": "stop", "reason": stop.reason})
        reports = [body for _, _, _, kind, _, body in jr.rows() if kind == "recon"]
    finally:
        stop.set(stop.reason or "finished")
        if watcher is not None:
            await watcher
        for endpoint in (*feeds, *brokers):  # also after an error: sessions and sockets closed
            try:
                await endpoint.close()
            except Exception as e:
                log.warning("closing %r: %s", endpoint, e)
        jr.close()
        loop = asyncio.get_running_loop()
        for sig in installed:
            loop.remove_signal_handler(sig)
    result = BacktestResult(rec)
    result.write(out_dir)
    if reports:
        (out_dir / "reconciliations.json").write_text(json.dumps(reports, indent=2))
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
