"""The event-driven core shared by backtests and live runs.

Market data from every source, the simulated venues' own events (acknowledgements and fills after
latency), timers and session changes meet in one time-ordered flow. In a backtest ``run_backtest``
drives it: a single-threaded loop over a merged, time-sorted iterator of market events plus a heap
of internal events, on a ``SimClock`` (no asyncio, no sleeping). Live, ``tradekit.live`` drives the
same ``Engine`` from asyncio with a wall clock, calling ``process`` and ``run_due``.

The engine is also the ``StrategyContext`` its strategies see, and it records what the results
need (fills, mark-outs, quote uptime, inventory, PnL samples) as it goes.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import msgspec

from .brokers.base import Broker
from .calendar import MarketCalendar, get_calendar
from .clock import SimClock
from .enums import OrderStatus, OrderType, Session, Side, TimeInForce
from .errors import ConfigError, DataError
from .model import Bar, Fill, MarketStatus, Order, Quote, Trade
from .reconcile import VenueStatus
from .results import RunRecord
from .risk import KillSwitch
from .strategies.base import SessionChange, Strategy, Timer
from .timeutil import NS_PER_S

log = logging.getLogger("tradekit.engine")

_K_CALL, _K_DATA, _K_TIMER, _K_SESSION, _K_CLOSING = range(5)
_ts = attrgetter("ts")
MARKOUT_HORIZONS_S = (1, 10, 60)
_FAR_FUTURE = 2**62
_LIVE = frozenset(
    (
        OrderStatus.NEW,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.PENDING_CANCEL,
        OrderStatus.PENDING_REPLACE,
    )
)
_QUOTED = {
    "regular": frozenset({Session.REGULAR}),
    "extended": frozenset({Session.PRE, Session.REGULAR, Session.POST}),
}


@dataclass(slots=True)
class _Route:
    """Where one venue's market data goes."""

    name: str
    broker: Broker
    latency_ns: int = 0
    replay: bool = False
    on_quote: list[Callable[[Quote], None]] = field(default_factory=list)
    on_trade: list[Callable[[Trade], None]] = field(default_factory=list)
    on_bar: list[Callable[[Bar], None]] = field(default_factory=list)
    on_status: list[Callable[[MarketStatus], None]] = field(default_factory=list)
    on_order: list[Callable[[Order], None]] = field(default_factory=list)
    on_fill: list[Callable[[Fill], None]] = field(default_factory=list)
    strategies: list[Strategy] = field(default_factory=list)
    pending: dict[str, list[tuple[int, int, float, float, float]]] = field(default_factory=dict)
    #: why the venue's strategies are paused now ("down": no trading connection, "stale": no
    #: fresh market data); empty: trading
    blocked: set[str] = field(default_factory=set)
    venue_quote: Callable[[Quote], None] = field(init=False)

    def __post_init__(self) -> None:
        self.venue_quote = self.broker.on_quote  # bound once: the hot path calls it per quote


class _Uptime:
    """Time with both a live bid and a live ask, per VENUE:SYMBOL, inside the quoted sessions."""

    def __init__(self) -> None:
        self.open = False
        self.open_since = 0
        self.open_total = 0
        self.counts: dict[str, list[int]] = {}  # key -> [live buys, live sells]
        self.both_since: dict[str, int] = {}
        self.acc: dict[str, int] = {}
        self.live: dict[str, tuple[str, int]] = {}  # cid -> (key, 0 buy / 1 sell)

    def _both(self, key: str) -> bool:
        c = self.counts.get(key)
        return c is not None and c[0] > 0 and c[1] > 0

    def _close_key(self, key: str, ts: int) -> None:
        since = self.both_since.pop(key, None)
        if since is not None:
            self.acc[key] = self.acc.get(key, 0) + max(0, ts - since)

    def on_order(self, order: Order, ts: int) -> None:
        cid = order.client_order_id
        rests = order.type is OrderType.LIMIT and order.tif not in (
            TimeInForce.IOC,
            TimeInForce.FOK,
        )
        live = rests and order.status in _LIVE
        was = self.live.get(cid)
        if live == (was is not None):
            return
        key = f"{order.venue}:{order.symbol}"
        c = self.counts.setdefault(key, [0, 0])
        before = c[0] > 0 and c[1] > 0
        i = 0 if order.side is Side.BUY else 1
        if live:
            self.live[cid] = (key, i)
            c[i] += 1
        else:
            del self.live[cid]
            c[i] -= 1
        after = c[0] > 0 and c[1] > 0
        if before != after and self.open:
            if after:
                self.both_since[key] = ts
            else:
                self._close_key(key, ts)

    def set_open(self, is_open: bool, ts: int) -> None:
        if is_open == self.open:
            return
        if is_open:
            self.open_since = ts
            for key in self.counts:
                if self._both(key):
                    self.both_since[key] = ts
        else:
            self.open_total += max(0, ts - self.open_since)
            for key in list(self.both_since):
                self._close_key(key, ts)
        self.open = is_open

    def result(self, ts: int) -> float | None:
        self.set_open(False, ts)
        if self.open_total <= 0 or not self.counts:
            return None if self.open_total <= 0 else 0.0
        shares = [self.acc.get(k, 0) / self.open_total for k in self.counts]
        return min(1.0, sum(shares) / len(shares))


class Engine:
    """One run: venues (a broker each), strategies, and the event flow between them."""

    def __init__(
        self,
        *,
        calendar: MarketCalendar | str = "NYSE",
        hours: str = "regular",
        cancel_before_close_s: float = 60.0,
        flatten_at_close: bool = False,
        sample_interval_s: float = 1.0,
        clock: SimClock | None = None,
        kill_switch: KillSwitch | None = None,
    ) -> None:
        if hours not in _QUOTED:
            raise ConfigError(
                f"hours {hours!r} must be one of regular, extended", key="session.hours"
            )
        self._calendar = (
            calendar if isinstance(calendar, MarketCalendar) else get_calendar(calendar)
        )
        self.hours = hours
        self.cancel_before_close_ns = int(cancel_before_close_s * NS_PER_S)
        self.flatten_at_close = flatten_at_close
        self.sample_interval_ns = max(1, int(sample_interval_s * NS_PER_S))
        self.clock = clock or SimClock(0)
        self.kill_switch = kill_switch or KillSwitch()
        self.routes: dict[str, _Route] = {}
        self.strategies: list[Strategy] = []
        self._heap: list[tuple[int, int, int, Any]] = []
        self._seq = 0
        self._timers: dict[tuple[int, str], int] = {}
        self._session = Session.CLOSED
        self._closings: set[int] = set()
        self._closing = False
        self._quoted = _QUOTED[hours]
        self.events = 0
        self.fills: list[Fill] = []
        self._markout_sum = dict.fromkeys(MARKOUT_HORIZONS_S, 0.0)
        self._markout_qty = dict.fromkeys(MARKOUT_HORIZONS_S, 0.0)
        self._uptime = _Uptime()
        self._max_abs_pos = 0.0
        self._pnl_curve: list[tuple[int, float]] = []
        self._samples: dict[str, list[Any]] = {
            k: [] for k in ("ts", "key", "bid", "ask", "our_bid", "our_ask", "position")
        }
        self._initial: dict[str, float] = {}
        self._started = False
        self._stopped = False
        self._replay_venues: list[str] = []
        self._next_sample = 0
        self.start_ns = 0
        self.end_ns = 0
        self._t0_wall = 0.0
        self._paused: set[int] = set()  # id() of the strategies paused now
        self._restored = False
        #: when the journal's history began (a restarted run's outputs cover all of it)
        self.history_start_ns: int | None = None
        self._restored_initial: dict[str, float] | None = None

    @classmethod
    def for_session(cls, session: Any, *, kill_switch: KillSwitch | None = None) -> Engine:
        """An engine set up from a ``[session]`` table (``tradekit.config.SessionConfig``)."""
        return cls(
            calendar=session.calendar,
            hours=session.hours,
            cancel_before_close_s=session.cancel_before_close_s,
            flatten_at_close=session.flatten_at_close,
            kill_switch=kill_switch,
        )

    # ---- building ---------------------------------------------------------------------------
    def add_venue(
        self, name: str, broker: Broker, *, data_latency_ms: float = 0.0, replay: bool = False
    ) -> None:
        if name in self.routes:
            raise ConfigError(f"venue {name!r} is defined twice", key=f"venues.{name}")
        broker.venue = name
        broker.set_clock(self.clock)
        broker.calendar = self._calendar
        if broker.risk.kill_switch is not self.kill_switch:
            broker.risk.kill_switch = self.kill_switch
            self.kill_switch.add_listener(broker._on_kill)
        if hasattr(broker, "scheduler"):
            broker.scheduler = self._call_at
        broker.add_listener(functools.partial(self._on_broker_event, name))
        broker.add_status_listener(functools.partial(self._on_venue_status, name))
        self.routes[name] = _Route(name, broker, int(data_latency_ms * 1_000_000), replay)

    def add_strategy(self, strategy: Strategy) -> None:
        self.strategies.append(strategy)

    def _wire(self) -> None:
        for s in self.strategies:
            used = s.venues_used()
            for v in used or list(self.routes):
                r = self.routes.get(v)
                if r is None:
                    raise ConfigError(
                        f"{type(s).__name__} trades venue {v!r}, which is not defined; "
                        f"defined: {', '.join(self.routes) or 'none'}",
                        key="strategy",
                    )
                r.strategies.append(s)
            s.bind(self)
        self._wire_callbacks()

    def _wire_callbacks(self) -> None:
        """Each route's callback lists: the strategies trading it, less the paused ones for
        market data (a paused strategy still learns about its orders and fills)."""
        for r in self.routes.values():
            for attr in ("on_quote", "on_trade", "on_bar", "on_status", "on_order", "on_fill"):
                lst: list[Any] = getattr(r, attr)
                lst.clear()
                data = attr not in ("on_order", "on_fill")
                for s in r.strategies:
                    if data and id(s) in self._paused:
                        continue
                    if getattr(type(s), attr) is not getattr(Strategy, attr):
                        lst.append(getattr(s, attr))

    # ---- pausing (venue down or data stale) ------------------------------------------------
    def set_blocked(self, venue: str, reason: str, blocked: bool) -> None:
        """Pause (``blocked``) or resume, for ``reason``, the strategies trading ``venue``: a
        paused strategy gets no market data and no timers, and its quotes are pulled where the
        venues take cancels. It resumes once none of its venues is blocked for any reason."""
        r = self.routes.get(venue)
        if r is None:
            return
        if blocked == (reason in r.blocked):
            return
        if blocked:
            r.blocked.add(reason)
        else:
            r.blocked.discard(reason)
        paused = {id(s) for rt in self.routes.values() if rt.blocked for s in rt.strategies}
        newly = [s for s in self.strategies if id(s) in paused and id(s) not in self._paused]
        resumed = [s for s in self.strategies if id(s) not in paused and id(s) in self._paused]
        self._paused = paused
        if newly or resumed:
            self._wire_callbacks()
        for s in newly:
            log.warning("%s paused: venue %s %s", type(s).__name__, venue, reason)
            for v in s.venues_used() or list(self.routes):
                b = self.routes[v].broker
                try:
                    b.cancel_all()
                except Exception as e:  # the venue may be unreachable: best effort
                    log.warning("%s: cannot pull the quotes: %s", v, e)
        for s in resumed:
            log.info("%s resumed: venue %s %s cleared", type(s).__name__, venue, reason)

    def positions(self) -> dict[str, float]:
        """Every venue's positions now, ``{"VENUE:SYMBOL": qty}``."""
        return {
            f"{name}:{sym}": r.broker.position(sym)
            for name, r in self.routes.items()
            for sym in r.broker.portfolio.symbols()
        }

    def paused(self, strategy: Strategy) -> bool:
        return id(strategy) in self._paused

    # ---- restart --------------------------------------------------------------------------
    def restore(self, fills: list[Fill], initial_positions: Mapping[str, float] | None) -> None:
        """A run restarted from a journal (the brokers were restored already): the history's
        fills count in the outputs, the starting inventory is the first run's, and each strategy
        gets ``on_restore`` before ``on_start``."""
        self.fills[:0] = sorted(fills, key=_ts)
        self._restored = True
        if initial_positions is not None:
            self._restored_initial = dict(initial_positions)

    # ---- StrategyContext ----------------------------------------------------------------------
    def broker(self, venue: str) -> Broker:
        try:
            return self.routes[venue].broker
        except KeyError:
            raise ConfigError(f"no venue {venue!r}; defined: {', '.join(self.routes)}") from None

    def venues(self) -> list[str]:
        return list(self.routes)

    def now_ns(self) -> int:
        return self.clock.now_ns()

    def session(self) -> Session:
        return self._session

    def quoting_allowed(self) -> bool:
        return self._session in self._quoted and not self._closing and not self.kill_switch.tripped

    def calendar(self) -> MarketCalendar:
        return self._calendar

    def schedule_timer(
        self, strategy: Strategy, name: str, at_ns: int, interval_ns: int | None
    ) -> None:
        key = (id(strategy), name)
        token = self._timers.get(key, 0) + 1
        self._timers[key] = token
        self._push(at_ns, _K_TIMER, (strategy, name, interval_ns, token))

    def cancel_timer(self, strategy: Strategy, name: str) -> None:
        key = (id(strategy), name)
        if key in self._timers:
            self._timers[key] += 1

    # ---- internal events ----------------------------------------------------------------------
    def _push(self, ts: int, kind: int, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (ts, self._seq, kind, payload))

    def _call_at(self, due: int, fn: Callable[..., None], args: tuple[Any, ...]) -> None:
        """A venue's event: run ``fn(*args)`` at ``due`` (simulated venues schedule here)."""
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, _K_CALL, (fn, args)))

    def next_due_ns(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def run_due(self, ts: int) -> None:
        """Run every internal event due at or before ``ts``, in time order."""
        heap = self._heap
        clock = self.clock
        while heap and heap[0][0] <= ts:
            due, _, kind, payload = heapq.heappop(heap)
            if due > clock._ns:
                clock._ns = due
            if kind == _K_CALL:
                payload[0](*payload[1])
            elif kind == _K_DATA:
                self._deliver(*payload)
            elif kind == _K_TIMER:
                self._fire_timer(due, *payload)
            elif kind == _K_SESSION:
                self._on_session(due, payload)
            else:
                self._on_closing(due)

    def _fire_timer(
        self, ts: int, strategy: Strategy, name: str, interval: int | None, token: int
    ) -> None:
        if self._timers.get((id(strategy), name)) != token or self._stopped:
            return
        if interval:
            self._push(ts + interval, _K_TIMER, (strategy, name, interval, token))
        if id(strategy) in self._paused:
            return
        strategy.on_timer(Timer(name, ts, interval))

    def _on_session(self, ts: int, session: Session) -> None:
        if session == self._session:
            self._schedule_next_session(ts)
            return
        self._session = session
        self._schedule_next_session(ts)
        self._closing = False
        self._uptime.set_open(session in self._quoted and not self.kill_switch.tripped, ts)
        change = SessionChange(ts, session)
        for s in self.strategies:
            s.on_session(change)

    def _on_closing(self, ts: int) -> None:
        if self._session not in self._quoted:
            return
        self._closing = True
        self._uptime.set_open(False, ts)
        for s in self.strategies:
            s.on_session(SessionChange(ts, self._session, closing=True))
        for r in self.routes.values():
            if r.strategies:
                r.broker.cancel_all()
        if self.flatten_at_close:
            self.flatten()

    def flatten(self) -> None:
        """Close every position (market orders in the regular session, marketable limit orders
        outside it); allowed through a tripped kill switch, as it only reduces positions."""
        ks = self.kill_switch
        ks.flattening = True
        try:
            self._flatten()
        finally:
            ks.flattening = False

    def _flatten(self) -> None:
        for r in self.routes.values():
            b = r.broker
            for sym in b.portfolio.symbols():
                qty = b.position(sym)
                if abs(qty) < 1e-9:
                    continue
                side = Side.SELL if qty > 0 else Side.BUY
                try:
                    if self._session is Session.REGULAR:
                        b.submit_order(sym, side, abs(qty))
                    else:
                        q = b.last_quote(sym)
                        if q is None:
                            continue
                        px = q.bid if side is Side.SELL else q.ask
                        b.submit_order(sym, side, abs(qty), limit_price=px, extended_hours=True)
                except Exception as err:  # flattening is best effort, and says so
                    log.warning("%s: could not flatten %s %g: %s", r.name, sym, qty, err)

    def _schedule_next_session(self, ts: int) -> None:
        """Sessions are scheduled one at a time, so a run needs no end known in advance."""
        nxt, sess = self._calendar.next_session_change(ts)
        self._push(nxt, _K_SESSION, sess)
        if self._session in self._quoted:
            td = self._calendar.day(ts)
            end = td.post_close_ns if self.hours == "extended" else td.close_ns
            if end is not None and end > ts:
                at = max(ts, end - self.cancel_before_close_ns)
                if at not in self._closings:
                    self._closings.add(at)
                    self._push(at, _K_CLOSING, None)

    # ---- events from brokers ------------------------------------------------------------------
    def _on_broker_event(self, venue: str, obj: Any) -> None:
        r = self.routes[venue]
        if type(obj) is Fill:
            self._record_fill(r, obj)
            for fill_cb in r.on_fill:
                fill_cb(obj)
        elif isinstance(obj, Order):
            self._uptime.on_order(obj, self.clock._ns)
            for order_cb in r.on_order:
                order_cb(obj)

    def _on_venue_status(self, venue: str, obj: Any) -> None:
        if type(obj) is VenueStatus:
            self.set_blocked(venue, "down", not obj.up)

    def _record_fill(self, r: _Route, fill: Fill) -> None:
        self.fills.append(fill)
        pos = abs(r.broker.position(fill.symbol))
        if pos > self._max_abs_pos:
            self._max_abs_pos = pos
        sign = 1.0 if fill.side is Side.BUY else -1.0
        pend = r.pending.setdefault(fill.symbol, [])
        for h in MARKOUT_HORIZONS_S:
            heapq.heappush(pend, (fill.ts + h * NS_PER_S, h, fill.qty, fill.price, sign))
        self._pnl_curve.append((fill.ts, self.net_pnl()))

    def _markouts(
        self, pend: list[tuple[int, int, float, float, float]], ts: int, mid: float
    ) -> None:
        while pend and pend[0][0] <= ts:
            _, h, qty, price, sign = heapq.heappop(pend)
            self._markout_sum[h] += qty * sign * (mid - price)
            self._markout_qty[h] += qty

    def net_pnl(self) -> float:
        return sum(r.broker.portfolio.net_pnl() for r in self.routes.values())

    # ---- market data --------------------------------------------------------------------------
    def process(self, ev: Any, venue: str) -> None:
        """Route one market event of ``venue`` (the venue first, then strategies)."""
        self._process(self.routes[venue], ev)

    def _markout_quote(
        self, r: _Route, pend: list[tuple[int, int, float, float, float]], q: Quote
    ) -> None:
        prev = r.broker.last_quote(q.symbol)
        if prev is not None and prev.bid > 0 and prev.ask > 0:
            self._markouts(pend, q.ts, (prev.bid + prev.ask) * 0.5)

    def _process(self, r: _Route, ev: Any) -> None:
        t = type(ev)
        if t is Quote:
            pend = r.pending.get(ev.symbol)
            if pend and pend[0][0] <= ev.ts:
                self._markout_quote(r, pend, ev)
            r.broker.on_quote(ev)
            cbs: list[Any] = r.on_quote
        elif t is Trade:
            r.broker.on_trade(ev)
            cbs = r.on_trade
        elif t is Bar:
            r.broker.on_bar(ev)
            cbs = r.on_bar
        elif t is MarketStatus:
            r.broker.set_halted(ev.symbol, ev.halted)
            cbs = r.on_status
        else:
            raise TypeError(f"not a market event: {ev!r}")
        if cbs:
            if r.latency_ns:
                self._push(ev.ts + r.latency_ns, _K_DATA, (cbs, ev))
            else:
                for cb in cbs:
                    cb(ev)

    @staticmethod
    def _deliver(cbs: list[Callable[[Any], None]], ev: Any) -> None:
        for cb in cbs:
            cb(ev)

    # ---- run ----------------------------------------------------------------------------------
    def start(self, start_ns: int, end_ns: int) -> None:
        """Set the clock and the session schedule; call ``on_start``."""
        self.start_ns, self.end_ns = start_ns, end_ns
        self.clock._ns = start_ns
        self._wire()
        self._session = self._calendar.session_at(start_ns)
        self._schedule_next_session(start_ns)
        self._uptime.set_open(self._session in self._quoted, start_ns)
        self._initial = (
            dict(self._restored_initial)
            if self._restored_initial is not None
            else self.positions()
        )
        self._replay_venues = [n for n, r in self.routes.items() if r.replay]
        self._next_sample = start_ns
        self._started = True
        self._t0_wall = time.perf_counter()  # after the one-off set-up (calendar tables)
        if self._restored:
            for s in self.strategies:
                mine = [self.routes[v].broker for v in s.venues_used() or self.routes]
                # (the brokers' orders: the journal's, reconciled, plus any adopted; their
                # fills: the journal's plus those recovered at reconciliation)
                orders = [o for b in mine for o in b.orders]
                s.on_restore(orders, sorted((f for o in orders for f in o.fills), key=_ts))
        for s in self.strategies:
            s.on_start()

    def run_backtest(
        self,
        events: Iterable[Any],
        start_ns: int | None = None,
        end_ns: int | None = None,
        *,
        progress: Callable[[float, int], None] | None = None,
    ) -> RunRecord:
        """Play ``events`` (time-sorted market events with ``venue`` set; "" goes to every
        replay venue) from ``start_ns`` (default: the first event) to ``end_ns`` (default: the
        last event) on the simulated clock."""
        it: Iterator[Any] = iter(events)
        if start_ns is None:
            first = next(it, None)
            if first is None:
                raise DataError("no market data to play")
            start_ns = first.ts
            it = itertools.chain((first,), it)
        open_end = end_ns is None
        if end_ns is None:
            end_ns = _FAR_FUTURE
        self.start(start_ns, end_ns)
        heap = self._heap
        clock = self.clock
        routes = self.routes
        run_due = self.run_due
        route_event = self._route_event
        span = max(1, end_ns - start_ns)
        sample_iv = self.sample_interval_ns
        next_sample = self._next_sample
        n = self.events
        last_ts = start_ns
        for ev in it:
            ts = ev.ts
            if ts < start_ns:
                continue
            if ts > end_ns:
                break
            if heap and heap[0][0] <= ts:
                run_due(ts)
            clock._ns = ts
            n += 1
            # the hot path, inlined: a quote for a named venue without data latency (what
            # ``_process`` does for it); everything else takes the general route
            r = routes.get(ev.venue)
            if r is not None and type(ev) is Quote and not r.latency_ns:
                pend = r.pending.get(ev.symbol)
                if pend and pend[0][0] <= ts:
                    self._markout_quote(r, pend, ev)
                r.venue_quote(ev)
                for cb in r.on_quote:
                    cb(ev)
            else:
                route_event(ev)
            if ts >= next_sample:
                self._sample(ts)
                next_sample = ts + sample_iv
                if progress is not None:
                    progress((ts - start_ns) / span, n)
            last_ts = ts
        self.events = n
        self._next_sample = next_sample
        if open_end:
            end_ns = last_ts
        self.end_ns = end_ns
        self.run_due(end_ns)
        return self.stop(end_ns)

    def step(self, ev: Any) -> None:
        """One market event (``venue`` set; "" goes to every replay venue): the internal events
        due before it first, then the venue, then the strategies."""
        ts = ev.ts
        heap = self._heap
        if heap and heap[0][0] <= ts:
            self.run_due(ts)
        self.clock._ns = ts
        self.events += 1
        self._route_event(ev)
        if ts >= self._next_sample:
            self._sample(ts)
            self._next_sample = ts + self.sample_interval_ns

    def _route_event(self, ev: Any) -> None:
        v = ev.venue
        if v:
            r = self.routes.get(v)
            if r is not None:
                self._process(r, ev)
        else:
            for rv in self._replay_venues:
                self._process(self.routes[rv], msgspec.structs.replace(ev, venue=rv))

    def _sample(self, ts: int) -> None:
        smp = self._samples
        for name, r in self.routes.items():
            b = r.broker
            for sym, q in b._quotes.items():
                bid = ask = math.nan
                for o in b._om.open.values():
                    if (
                        o.symbol != sym
                        or o.limit_price is None
                        or o.status is OrderStatus.PENDING_NEW
                    ):
                        continue
                    if o.side is Side.BUY:
                        if not bid >= o.limit_price:
                            bid = o.limit_price
                    elif not ask <= o.limit_price:
                        ask = o.limit_price
                smp["ts"].append(ts)
                smp["key"].append(f"{name}:{sym}")
                smp["bid"].append(q.bid)
                smp["ask"].append(q.ask)
                smp["our_bid"].append(bid)
                smp["our_ask"].append(ask)
                smp["position"].append(b.position(sym))
        self._pnl_curve.append((ts, self.net_pnl()))

    def halt(self, *, flatten: bool = False) -> None:
        """Call ``on_stop``, cancel what is still open (and flatten, if asked), and let the
        simulated venues answer. Idempotent; ``stop`` records afterwards."""
        if self._stopped:
            return
        for s in self.strategies:
            s.on_stop()
        self._stopped = True
        for r in self.routes.values():
            if r.strategies:
                r.broker.cancel_all()
        self._drain()
        if flatten:
            self.flatten()
            self._drain()

    def _drain(self, horizon_ns: int = 60 * NS_PER_S) -> None:
        """Run the venue events of the next ``horizon_ns`` (the simulated venues' answers to
        the cancels; not the session-end sweeps of a run stopped mid-day). Timers are over."""
        heap = self._heap
        until = self.clock._ns + horizon_ns
        while heap and heap[0][0] <= until:
            due, _, kind, payload = heapq.heappop(heap)
            if kind == _K_CALL:
                if due > self.clock._ns:
                    self.clock._ns = due
                payload[0](*payload[1])

    def stop(self, end_ts: int) -> RunRecord:
        """Halt (see ``halt``) and record the run."""
        self.halt()
        return self._record(end_ts)

    def _record(self, end_ts: int) -> RunRecord:
        orders: list[Order] = []
        final: dict[str, float] = dict.fromkeys(self._initial, 0.0)
        last_mid: dict[str, float] = {}
        realized = fees = 0.0
        for name, r in self.routes.items():
            b = r.broker
            orders.extend(b.orders)
            pf = b.portfolio
            realized += pf.realized_pnl
            fees += pf.fees
            for sym in pf.symbols():
                final[f"{name}:{sym}"] = pf.qty(sym)
            for sym, q in b._quotes.items():
                if q.bid > 0 and q.ask > 0:
                    last_mid[f"{name}:{sym}"] = (q.bid + q.ask) * 0.5
        orders.sort(key=lambda o: o.created_ts)
        net = self.net_pnl()
        self._pnl_curve.append((end_ts, net))
        markouts = {h: (self._markout_sum[h], self._markout_qty[h]) for h in MARKOUT_HORIZONS_S}
        kinds = ",".join(s.kind for s in self.strategies) or "none"
        return RunRecord(
            strategy=kinds,
            start_ns=self.start_ns if self.history_start_ns is None else self.history_start_ns,
            end_ns=end_ts,
            events=self.events,
            wall_seconds=time.perf_counter() - self._t0_wall,
            orders=orders,
            fills=list(self.fills),
            initial_positions=dict(self._initial),
            final_positions=final,
            last_mid=last_mid,
            realized_pnl=realized,
            fees=fees,
            net_pnl=net,
            pnl_curve=self._pnl_curve,
            samples=self._samples,
            markouts=markouts,
            quote_uptime=self._uptime.result(end_ts),
            max_abs_position=max(self._max_abs_pos, *(abs(v) for v in self._initial.values()), 0.0)
            if self._initial
            else self._max_abs_pos,
        )
