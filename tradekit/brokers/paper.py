"""The paper broker: a simulated venue that matches our orders against the market data it is
given (by the engine, or by ``on_quote``/``on_trade`` in a script).

Matching model (top of book plus a synthetic depth):

* A marketable order takes the opposite touch up to its displayed size (less what we already took
  at that price), then sweeps deeper levels one tick apart, each assumed to show the touch's size,
  up to its limit (market orders: up to ``max_sweep_levels``). The rest follows the time in force:
  IOC cancels, FOK fills all or nothing, DAY/GTC rests.
* A resting limit order keeps a queue position: joining the touch puts it behind the displayed
  size there; improving the price puts it first; behind the touch, its place is unknown until the
  touch comes to its price (then it is behind everything displayed). Trades printed at its price
  consume the queue ahead, then fill it; size reductions at the level not explained by trades
  consume the queue ahead pro rata; a trade through its price, or an opposite quote at or through
  it, fills it (as maker, at its price).
* Latency: order entry, cancels/replaces reach the venue after their latency; answers come back
  at once. Market-data latency is applied by the engine (strategies see data late).
* Fees from a ``FeeModel`` (per-share commission with a minimum, SEC fee and FINRA TAF on sells).
* The rules profile of the broker it imitates, market hours, buying power; DAY orders expire at
  the end of their session. Deterministic.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..calendar import MarketCalendar
from ..clock import Clock, SimClock, as_clock
from ..enums import (
    Liquidity,
    OrderStatus,
    OrderType,
    RejectReason,
    Session,
    Side,
    TimeInForce,
)
from ..errors import OrderRejected
from ..fees import FeeModel
from ..model import Account, Fill, Instrument, Order, Position, Quote, Trade
from ..orders import highest_suffix
from ..reconcile import ReconciliationReport
from ..risk import KillSwitch, RiskLimits, RiskManager
from ..rules import OrderRules
from ..timeutil import NS_PER_MS
from .base import Broker, Capabilities

_INF = math.inf
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class Latency:
    """One-way latencies in nanoseconds: order entry, cancel/replace, market data."""

    order_ns: int = 0
    cancel_ns: int = 0
    data_ns: int = 0

    @classmethod
    def coerce(cls, value: Any) -> Latency:
        if isinstance(value, Latency):
            return value
        if value is None:
            return cls()
        if isinstance(value, int | float) and not isinstance(value, bool):
            if value < 0 or not math.isfinite(value):
                raise ValueError(f"latency_ms {value!r} must be a number >= 0")
            ns = round(value * NS_PER_MS)
            return cls(ns, ns, ns)
        if isinstance(value, Mapping):
            allowed = {"order_ms", "cancel_ms", "data_ms"}
            bad = set(value) - allowed
            if bad:
                raise ValueError(f"unknown latency keys {sorted(bad)}; allowed: {sorted(allowed)}")
            vals = {k: float(value.get(k, 0)) for k in allowed}
            if any(v < 0 for v in vals.values()):
                raise ValueError(f"latencies must be >= 0: {dict(value)!r}")
            return cls(*(round(vals[k] * NS_PER_MS) for k in ("order_ms", "cancel_ms", "data_ms")))
        raise ValueError(f"latency_ms must be a number of ms or a table, not {value!r}")


class _DataClock:
    """The paper broker's own clock when none is given: the time of the latest market data it
    was given (the wall clock before any)."""

    __slots__ = ("_ns",)

    def __init__(self) -> None:
        self._ns = 0

    def now_ns(self) -> int:
        return self._ns or time.time_ns()

    def set(self, ns: int) -> None:
        if ns > self._ns:
            self._ns = ns


class _Rest:
    """One of our orders as the venue holds it."""

    __slots__ = (
        "ahead",
        "expire_ns",
        "live",
        "order",
        "price",
        "qty",
        "sign",
        "stop_wait",
        "traded",
        "whole",
    )

    def __init__(self, order: Order) -> None:
        self.order = order
        self.sign = 1 if order.side is Side.BUY else -1
        self.price: float | None = order.limit_price
        self.qty = order.qty
        self.ahead = _INF
        self.traded = 0.0  # tape volume at our price since the last quote
        self.live = False  # resting in the book and matchable
        self.stop_wait = order.type in (OrderType.STOP, OrderType.STOP_LIMIT)  # untriggered stop
        self.whole = float(order.qty).is_integer()  # whole-share orders fill in whole shares
        self.expire_ns: int | None = None

    @property
    def remaining(self) -> float:
        return self.qty - self.order.filled_qty


class PaperBroker(Broker):
    """A simulated broker and venue. See the module docstring for the matching model.

    ``rules``: whose order rules and fees to imitate (``default``, ``alpaca``, ``ibkr``);
    ``latency_ms``: a number (order entry, cancels and data alike) or a ``Latency``/table;
    ``positions``: starting inventory ``{symbol: signed qty}``; ``fees``: a ``FeeModel``, a broker
    name or a table (default: the imitated broker's); ``risk``: ``RiskLimits`` or a ``[risk]``
    table; ``clock``: a ``Clock`` (default: the time of the latest data given).
    """

    name = "paper"
    journal_sync = False  # the venue is in the process: the journal is its memory
    capabilities = Capabilities(
        replace_in_place=True, fractional=True, extended_hours=True, shorting=True, depth=False
    )

    def __init__(
        self,
        *,
        rules: OrderRules | str = "default",
        latency_ms: float | Latency | Mapping[str, float] = 0,
        cash: float = 100_000.0,
        positions: Mapping[str, float] | None = None,
        fees: FeeModel | str | Mapping[str, Any] | None = None,
        risk: RiskLimits | Mapping[str, Any] | RiskManager | None = None,
        seed: int = 0,
        clock: Clock | Any = None,
        venue: str | None = None,
        calendar: MarketCalendar | str | None = None,
        kill_switch: KillSwitch | None = None,
        shorting: bool = True,
        leverage: float = 2.0,
        instruments: Mapping[str, Instrument] | None = None,
        id_prefix: str | None = None,
        max_sweep_levels: int = 50,
    ) -> None:
        own = clock is None
        self._data_clock: _DataClock | SimClock | None = _DataClock() if own else None
        super().__init__(
            venue=venue,
            rules=rules,
            risk=risk,
            clock=self._data_clock if own else as_clock(clock),
            calendar=calendar,
            kill_switch=kill_switch,
            id_prefix=id_prefix,
        )
        profile = self.rules.name if isinstance(rules, OrderRules) else str(rules)
        self.fees: FeeModel = FeeModel.from_config(fees) or FeeModel.for_broker(
            profile if profile in ("default", "alpaca", "ibkr") else "default"
        )
        self.latency = Latency.coerce(latency_ms)
        if cash is None or not math.isfinite(float(cash)):
            raise ValueError(f"cash {cash!r} must be a finite number")
        self.portfolio.cash = self.portfolio.start_cash = float(cash)
        for sym, qty in (positions or {}).items():
            self.portfolio.set_position(sym, float(qty))
        self.seed = seed
        self.shorting = bool(shorting)
        self.leverage = float(leverage)
        self.max_sweep_levels = int(max_sweep_levels)
        for inst in (instruments or {}).values():
            self.rules.set_instrument(inst)
        self._events: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._pump_soon = False
        #: set by the engine: venue events then go straight into the engine's event queue
        self.scheduler: Callable[[int, Callable[..., None], tuple[Any, ...]], None] | None = None
        self._seq = 0
        self._book: dict[str, list[_Rest]] = {}
        self._rest_by_id: dict[str, _Rest] = {}
        self._taken: dict[tuple[str, int], tuple[float, float]] = {}  # (sym, side) -> (price, qty)
        self._n_fill = 0
        self._day_cache: tuple[int, int, int] | None = None
        self._sweeps: set[int] = set()
        self._n_bid = 0
        self._cancel_first: set[str] = set()  # cancels that reached the venue before their order
        self._restored_pending = False  # restored from a journal: reconcile on connect
        self._new_broker_id_on_replace = profile == "alpaca"
        if profile == "alpaca":
            from ..throttle import RateLimiter

            self.throttle = RateLimiter(200)

    # ---- time ------------------------------------------------------------------------------
    def set_clock(self, clock: Clock) -> None:
        self._data_clock = None  # the engine's clock rules now; data no longer moves it
        self.clock = clock

    def _schedule(self, due: int, fn: Callable[..., None], *args: Any) -> None:
        if self.scheduler is not None:
            self.scheduler(due, fn, args)
            return
        self._seq += 1
        heapq.heappush(self._events, (due, self._seq, fn, args))
        if not self._pump_soon:  # in a script under asyncio: what is due runs at the next yield
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._pump_soon = True
            loop.call_soon(self._pump)

    def _pump(self) -> None:
        self._pump_soon = False
        self.process()

    def next_event_ns(self) -> int | None:
        """When the venue next has something to do (for the engine's event merge)."""
        return self._events[0][0] if self._events else None

    def advance_to(self, ns: int | None = None) -> None:
        """Run the venue's events due at or before ``ns`` (default: now)."""
        if ns is None:
            ns = self.clock.now_ns()
        ev = self._events
        dc = self._data_clock
        while ev and ev[0][0] <= ns:
            due, _, fn, args = heapq.heappop(ev)
            if dc is not None:
                dc.set(due)
            fn(*args)
        if dc is not None and dc._ns:  # (before any data it reads the wall clock: not pinned)
            dc.set(ns)

    def process(self) -> None:
        """Run what is due now (a script's way to let latency-0 acknowledgements arrive)."""
        self.advance_to(self.clock.now_ns())

    # ---- market data -----------------------------------------------------------------------
    def on_quote(self, quote: Quote) -> None:
        ts = quote.ts
        if self._events and self._events[0][0] <= ts:
            self.advance_to(ts)
        elif self._data_clock is not None:
            self._data_clock.set(ts)
        sym = quote.symbol
        taken = self._taken
        if taken:  # liquidity we took at a touch that has moved away is fresh when it returns
            for key, px in (((sym, 1), quote.bid), ((sym, -1), quote.ask)):
                t = taken.get(key)
                if t is not None and abs(t[0] - px) > _EPS:
                    del taken[key]
        book = self._book.get(sym)
        if book:
            prev = self._quotes.get(sym)
            Broker.on_quote(self, quote)
            self._match_quote(quote, prev, book)
        else:
            Broker.on_quote(self, quote)

    def on_trade(self, trade: Trade) -> None:
        ts = trade.ts
        if self._events and self._events[0][0] <= ts:
            self.advance_to(ts)
        elif self._data_clock is not None:
            self._data_clock.set(ts)
        book = self._book.get(trade.symbol)
        if not book:
            return
        px = trade.price
        size = trade.size
        for r in list(book):
            if not r.live:
                if r.stop_wait:
                    self._maybe_trigger(r, px, px)
                continue
            rp = r.price
            if rp is None:
                continue
            if (r.sign > 0 and px < rp - _EPS) or (r.sign < 0 and px > rp + _EPS):
                self._fill_resting(r, r.remaining, rp, ts)  # traded through our price
            elif abs(px - rp) <= _EPS:
                r.traded += size
                if r.ahead == _INF:
                    continue
                if r.ahead >= size:
                    r.ahead -= size
                else:
                    avail = size - r.ahead
                    r.ahead = 0.0
                    qty = min(avail, r.remaining)
                    if r.whole:  # the queue ahead shrinks pro rata; our fills stay whole shares
                        qty = math.floor(qty + 1e-9)
                    if qty > 0:
                        self._fill_resting(r, qty, rp, ts)

    # ---- matching --------------------------------------------------------------------------
    def _match_quote(self, q: Quote, prev: Quote | None, book: list[_Rest]) -> None:
        ts = q.ts
        for r in list(book):
            if not r.live:
                if r.stop_wait:
                    self._maybe_trigger(r, q.ask, q.bid)
                continue
            rp = r.price
            if rp is None:
                continue
            if r.sign > 0:
                opp_px, opp_size, same_px, same_size = q.ask, q.ask_size, q.bid, q.bid_size
                prev_px = prev.bid if prev is not None else None
                prev_size = prev.bid_size if prev is not None else 0.0
                crossed = opp_px > 0 and opp_px <= rp + _EPS
                behind = same_px > rp + _EPS
            else:
                opp_px, opp_size, same_px, same_size = q.bid, q.bid_size, q.ask, q.ask_size
                prev_px = prev.ask if prev is not None else None
                prev_size = prev.ask_size if prev is not None else 0.0
                crossed = opp_px > 0 and opp_px >= rp - _EPS
                behind = 0 < same_px < rp - _EPS
            if crossed:
                avail = self._available(q.symbol, -r.sign, opp_px, opp_size)
                if avail > _EPS:
                    qty = min(avail, r.remaining)
                    self._take_note(q.symbol, -r.sign, opp_px, qty)
                    self._fill_resting(r, qty, rp, ts)
                    if r.order.is_done:
                        continue
            if behind:
                r.traded = 0.0
                continue  # the touch is better than us; our place is unchanged
            if abs(same_px - rp) <= _EPS:
                if r.ahead == _INF:
                    r.ahead = same_size  # the touch came to our price: behind all displayed
                elif prev_px is not None and abs(prev_px - rp) <= _EPS and prev_size > 0:
                    cancelled = (prev_size - same_size) - r.traded
                    if cancelled > _EPS and r.ahead > 0:
                        r.ahead = max(0.0, r.ahead - cancelled * r.ahead / prev_size)
            else:
                r.ahead = 0.0  # the level emptied or we improve on the touch: we are first
            r.traded = 0.0

    def _available(self, sym: str, side_sign: int, px: float, size: float) -> float:
        t = self._taken.get((sym, side_sign))
        if t is not None and abs(t[0] - px) <= _EPS:
            return size - t[1]
        return size

    def _take_note(self, sym: str, side_sign: int, px: float, qty: float) -> None:
        key = (sym, side_sign)
        t = self._taken.get(key)
        if t is not None and abs(t[0] - px) <= _EPS:
            self._taken[key] = (px, t[1] + qty)
        else:
            self._taken[key] = (px, qty)

    def _maybe_trigger(self, r: _Rest, up_px: float, down_px: float) -> None:
        stop = r.order.stop_price
        if (
            stop is None
            or (r.sign > 0 and up_px > 0 and up_px >= stop - _EPS)
            or (r.sign < 0 and 0 < down_px <= stop + _EPS)
        ):
            r.stop_wait = False
            self._execute(r)

    def _fill_resting(self, r: _Rest, qty: float, price: float, ts: int) -> None:
        self._fill(self._make_fill(r.order, qty, price, Liquidity.MAKER, ts))
        if r.order.is_done or r.remaining <= _EPS:
            self._unrest(r)

    def _make_fill(self, order: Order, qty: float, price: float, liq: Liquidity, ts: int) -> Fill:
        self._n_fill += 1
        before = order.filled_qty
        fee = self.fees.fee(
            order.side,
            qty,
            price,
            liq,
            order_qty_before=before,
            order_value_before=before * (order.avg_fill_price or 0.0),
        )
        return Fill(
            f"{self.venue}-F{self._n_fill}",
            order.client_order_id,
            self.venue,
            order.symbol,
            order.side,
            float(qty),
            float(price),
            fee,
            liq,
            ts,
        )

    def _take(self, r: _Rest, limit: float | None, ts: int, *, all_or_none: bool = False) -> None:
        """Take liquidity for ``r`` from the opposite touch and the synthetic levels behind it."""
        order = r.order
        sym = order.symbol
        q = self._quotes.get(sym)
        if q is None:
            return
        opp = -r.sign
        touch = q.ask if r.sign > 0 else q.bid
        size = q.ask_size if r.sign > 0 else q.bid_size
        if touch <= 0 or size <= 0:
            return
        tick = self.rules.tick_at(sym, touch)
        plan: list[tuple[float, float]] = []
        need = r.remaining
        for level in range(self.max_sweep_levels):
            px = round(touch + r.sign * level * tick, 10)
            if limit is not None and (
                (r.sign > 0 and px > limit + _EPS) or (r.sign < 0 and px < limit - _EPS)
            ):
                break
            if px <= 0:
                break
            avail = self._available(sym, opp, px, size) if level == 0 else size
            if avail > _EPS:
                take = min(avail, need)
                plan.append((px, take))
                need -= take
                if need <= _EPS:
                    break
        if all_or_none and need > _EPS:
            return
        for px, qty in plan:
            if px == touch:
                self._take_note(sym, opp, px, qty)
            self._fill(self._make_fill(order, qty, px, Liquidity.TAKER, ts))
        if order.is_done:  # filled on arrival: it never rests in the book
            self._unrest(r)

    # ---- order life at the venue -----------------------------------------------------------
    def _send_submit(self, order: Order) -> None:
        self._schedule(self.clock.now_ns() + self.latency.order_ns, self._arrive, order)

    def _send_cancel(self, order: Order) -> None:
        self._schedule(self.clock.now_ns() + self.latency.cancel_ns, self._arrive_cancel, order)

    def _send_replace(self, order: Order, qty: float, limit_price: float | None) -> None:
        self._schedule(
            self.clock.now_ns() + self.latency.cancel_ns,
            self._arrive_replace,
            order,
            qty,
            limit_price,
        )

    def _broker_id(self) -> str:
        self._n_bid += 1
        return f"P{self._n_bid}"

    def _arrive(self, order: Order) -> None:
        now = self.clock.now_ns()
        if order.client_order_id in self._cancel_first:
            # the cancel overtook the order (shorter cancel latency): it never rests
            self._cancel_first.discard(order.client_order_id)
            self._ack(order.client_order_id, self._broker_id(), now)
            self._status(order.client_order_id, OrderStatus.CANCELED, now)
            return
        if order.is_done:
            return
        if (
            order.type is OrderType.MARKET
            and order.symbol not in self._quotes
            and order.tif not in (TimeInForce.OPG, TimeInForce.CLS)
        ):
            self._status(
                order.client_order_id,
                OrderStatus.REJECTED,
                now,
                reason=RejectReason.BROKER,
                message=f"no market data for {order.symbol}: a market order cannot be priced",
            )
            return
        self._ack(order.client_order_id, self._broker_id(), now)
        r = _Rest(order)
        self._rest_by_id[order.client_order_id] = r
        self._book.setdefault(order.symbol, []).append(r)
        if order.tif is TimeInForce.OPG or order.tif is TimeInForce.CLS:
            day = self.calendar.day(now)
            at = day.open_ns if order.tif is TimeInForce.OPG else day.close_ns
            if at is None or at < now:
                self._expire(r, "no auction left today")
                return
            r.expire_ns = at  # waits for its auction, not live in the book
            self._schedule(at, self._auction, r)
            return
        if order.tif is TimeInForce.DAY:
            self._set_expiry(r, now)
        if not r.stop_wait:
            self._execute(r)

    def _session_ends(self, now: int) -> tuple[int, int] | None:
        """(regular close, post close) of the trading day around ``now`` (cached per day)."""
        c = self._day_cache
        if c is not None and c[0] <= now < c[1]:
            return c[2], c[1]
        day = self.calendar.day(now)
        if day.close_ns is None or day.pre_open_ns is None or day.post_close_ns is None:
            return None
        self._day_cache = (day.pre_open_ns, day.post_close_ns, day.close_ns)
        return day.close_ns, day.post_close_ns

    def _set_expiry(self, r: _Rest, now: int) -> None:
        ends = self._session_ends(now)
        if ends is None:
            return
        end = ends[1] if r.order.extended_hours else ends[0]
        if end > now:
            r.expire_ns = end
            if end not in self._sweeps:  # one sweep per session end, not one event per order
                self._sweeps.add(end)
                self._schedule(end, self._expire_due, end)

    def _expire_due(self, end: int) -> None:
        """The end of a session: expire the DAY orders it ends."""
        self._sweeps.discard(end)
        for r in list(self._rest_by_id.values()):
            if r.expire_ns is not None and r.expire_ns <= end and not r.order.is_done:
                self._expire(r, "end of session")

    def _expire(self, r: _Rest, why: str) -> None:
        self._unrest(r)
        self._status(r.order.client_order_id, OrderStatus.EXPIRED, self.clock.now_ns(), message=why)

    def _auction(self, r: _Rest) -> None:
        if r.order.is_done:
            return
        self._take(r, r.order.limit_price, self.clock.now_ns())
        if not r.order.is_done:
            self._expire(r, "not filled in the auction")

    def _execute(self, r: _Rest) -> None:
        """A (triggered) order acts: take what is marketable, then rest or end per TIF."""
        order = r.order
        now = self.clock.now_ns()
        limit = r.price if order.type in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None
        is_market = limit is None
        q = self._quotes.get(order.symbol)
        marketable = limit is None or (
            q is not None
            and (
                (r.sign > 0 and 0 < q.ask <= limit + _EPS)
                or (r.sign < 0 and q.bid >= limit - _EPS > 0)
            )
        )
        if marketable:
            self._take(r, limit, now, all_or_none=order.tif is TimeInForce.FOK)
        if order.is_done:
            return
        if is_market or order.tif in (TimeInForce.IOC, TimeInForce.FOK):
            self._unrest(r)
            self._status(
                order.client_order_id,
                OrderStatus.CANCELED,
                now,
                message="unfilled rest of an IOC/FOK/market order",
            )
            return
        self._place(r, q)

    def _place(self, r: _Rest, q: Quote | None) -> None:
        """Rest ``r`` in the book and give it its queue position."""
        r.live = True
        r.traded = 0.0
        if q is None or r.price is None:
            r.ahead = _INF
            return
        touch, size = (q.bid, q.bid_size) if r.sign > 0 else (q.ask, q.ask_size)
        if touch <= 0 or abs(touch - r.price) <= _EPS:
            r.ahead = size if touch > 0 else 0.0
        elif (r.sign > 0 and r.price > touch) or (r.sign < 0 and r.price < touch):
            r.ahead = 0.0  # we improve on the touch
        else:
            r.ahead = _INF  # behind the touch: place unknown until the touch comes to us

    def _unrest(self, r: _Rest) -> None:
        r.live = False
        self._rest_by_id.pop(r.order.client_order_id, None)
        book = self._book.get(r.order.symbol)
        if book is not None:
            try:
                book.remove(r)
            except ValueError:
                pass

    def _arrive_cancel(self, order: Order) -> None:
        now = self.clock.now_ns()
        r = self._rest_by_id.get(order.client_order_id)
        if r is None:
            if order.broker_order_id is None and not order.is_done:
                # the order itself has not arrived yet: it is canceled when it does
                self._cancel_first.add(order.client_order_id)
                return
            self._cancel_rejected(order.client_order_id, now, "order is no longer open")
            return
        self._unrest(r)
        self._status(order.client_order_id, OrderStatus.CANCELED, now)

    def _arrive_replace(self, order: Order, qty: float, limit_price: float | None) -> None:
        now = self.clock.now_ns()
        r = self._rest_by_id.get(order.client_order_id)
        if r is None or order.is_done:
            self._replace_rejected(order.client_order_id, now, "order is no longer open")
            return
        price_changed = limit_price is not None and limit_price != r.price
        grew = qty > r.qty
        r.qty = qty
        if limit_price is not None:
            r.price = limit_price
        new_id = self._broker_id() if self._new_broker_id_on_replace else order.broker_order_id
        self._replaced(
            order.client_order_id, now, broker_order_id=new_id, qty=qty, limit_price=limit_price
        )
        if order.is_done:
            self._unrest(r)
            return
        if price_changed or grew:  # loses its place in the queue
            r.live = False
            if not r.stop_wait:
                self._execute(r)

    # ---- account ---------------------------------------------------------------------------
    def _reserved(self, exclude: Order | None = None) -> float:
        total = 0.0
        for o in self._om.open.values():
            if o is exclude:
                continue
            px = o.limit_price or self._ref_price(o.symbol) or 0.0
            total += (o.qty - o.filled_qty) * px
        return total

    def _ref_price(self, symbol: str) -> float | None:
        q = self._quotes.get(symbol)
        if q is None or q.bid <= 0 or q.ask <= 0:
            return None
        return (q.bid + q.ask) * 0.5

    def buying_power(self, replacing: Order | None = None) -> float:
        """Equity times leverage, less the gross position and what open orders reserve
        (``replacing``: an order whose reservation is about to be replaced)."""
        equity, gross = self.portfolio.equity_and_gross()
        return max(0.0, equity * self.leverage - gross - self._reserved(replacing))

    def _check_account(self, order: Order, replacing: Order | None) -> None:
        pos = self.portfolio.qty(order.symbol)
        opening = order.qty
        if (order.side is Side.BUY and pos < 0) or (order.side is Side.SELL and pos > 0):
            opening = max(0.0, order.qty - abs(pos))
        if opening <= _EPS:
            return
        px = order.limit_price
        if px is None:
            q = self._quotes.get(order.symbol)
            if q is not None:
                px = q.ask if order.side is Side.BUY else q.bid
        if not px:
            return
        need = opening * px
        bp = self.buying_power(replacing)
        if need > bp + 1e-6:
            raise OrderRejected(
                RejectReason.INSUFFICIENT_BUYING_POWER,
                f"{order.side.value} {order.qty:g} {order.symbol} needs {need:,.2f} of buying "
                f"power; {bp:,.2f} available",
            )

    # ---- restart ---------------------------------------------------------------------------
    def _restored(self, orders: list[Order], fills: list[Fill]) -> None:
        """The venue lives in the process, so after a crash its memory is the journal: the
        acknowledged open orders rest in the book again (their queue place is lost: they wait
        until the touch comes to them); orders never acknowledged never reached it."""
        self._restored_pending = True
        self._n_bid = max(self._n_bid, highest_suffix((o.broker_order_id for o in orders), "P"))
        self._n_fill = max(
            self._n_fill, highest_suffix((f.fill_id for f in fills), f"{self.venue}-F")
        )
        for o in orders:
            if (
                o.is_open
                and o.broker_order_id is not None
                and o.client_order_id not in self._rest_by_id
            ):
                r = _Rest(o)
                self._rest_by_id[o.client_order_id] = r
                self._book.setdefault(o.symbol, []).append(r)
                if o.tif is TimeInForce.DAY:
                    self._set_expiry(r, o.created_ts)  # its own day: expired if over
                if not r.stop_wait:
                    self._place(r, None)

    def reconcile(self, reason: str = "manual") -> ReconciliationReport:
        """Our open orders against the venue's book: those it holds are matched, those it never
        received are looked up once more (the venue answers at once) and marked LOST."""
        now = self.clock.now_ns()
        matched: list[str] = []
        lost: list[str] = []
        for o in list(self._om.open.values()):
            cid = o.client_order_id
            if cid in self._rest_by_id or any(
                args and args[0] is o for _, _, _, args in self._events
            ):
                matched.append(cid)
                continue
            self._status(cid, OrderStatus.LOST, now, message=f"not at the venue ({reason})")
            lost.append(cid)
        report = ReconciliationReport(
            venue=self.venue,
            reason=reason,
            ts=now,
            matched=tuple(matched),
            lost=tuple(lost),
            positions={k: p.qty for k, p in self.portfolio.positions(self.venue).items()},
        )
        self._reconciled(report)
        return report

    # ---- queries ---------------------------------------------------------------------------
    async def _connect(self) -> None:
        self.process()
        if self._restored_pending:
            self._restored_pending = False
            self.reconcile("restart")

    async def _close(self) -> None:
        return None

    async def _fetch_account(self) -> Account:
        self.process()
        pf = self.portfolio
        return Account(pf.cash, pf.equity(), self.buying_power(), pf.currency)

    async def _fetch_positions(self) -> dict[str, Position]:
        self.process()
        return self.portfolio.positions(self.venue)

    async def _fetch_open_orders(self) -> list[Order]:
        self.process()
        return self._om.open_orders()

    async def _fetch_instrument(self, symbol: str) -> Instrument:
        return self.rules.instrument(symbol)

    def session(self) -> Session:
        return self.session_now()
