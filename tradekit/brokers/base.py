"""The broker and data feed contract.

``Broker`` holds everything every adapter shares: the order manager (client order ids, the state
machine, duplicate and late events), the checks every order passes before it leaves (the broker's
``OrderRules`` for the instrument and the session, the user's ``RiskLimits``, the rate limit),
positions derived from fills, and the listeners. An adapter subclasses it and fills in the hooks
in the table below; it never mutates ``Order`` handles itself, it reports what the broker said
through the ``_ack``/``_status``/``_fill``/``_replaced`` methods.

============================  ======================================================
hook (adapter implements)     what it must do
============================  ======================================================
``_connect()`` (async)        open sessions/sockets, load instruments, reconcile
``_close()`` (async)          close them
``_send_submit(order)``       send without blocking (schedule a task); report later
``_send_cancel(order)``       idem
``_send_replace(order, qty, limit_price)``   idem (``replace_in_place`` capability)
``_fetch_account()``          -> ``Account``
``_fetch_positions()``        -> ``dict[str, Position]``
``_fetch_open_orders()``      -> ``list[Order]`` as the broker sees them
``_fetch_instrument(symbol)`` -> ``Instrument``
============================  ======================================================
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Self

from ..calendar import MarketCalendar, get_calendar
from ..clock import Clock, WallClock, as_clock
from ..enums import OrderStatus, OrderType, RejectReason, Session, Side, TimeInForce
from ..errors import OrderRejected
from ..model import Account, Bar, Fill, Instrument, Order, OrderRequest, Position, Quote, Trade
from ..orders import ClientOrderIds, OrderManager
from ..portfolio import Portfolio
from ..reconcile import ReconciliationReport, VenueStatus
from ..risk import KillSwitch, RiskLimits, RiskManager
from ..rules import OrderRules, RuleContext, as_number
from ..throttle import RateLimiter

if TYPE_CHECKING:
    import pandas as pd

    from ..journal import Journal

log = logging.getLogger("tradekit.brokers")

Listener = Callable[[Any], None]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a broker adapter can do."""

    replace_in_place: bool = False
    fractional: bool = False
    extended_hours: bool = False
    shorting: bool = False
    depth: bool = False
    order_types: frozenset[OrderType] = field(default_factory=lambda: frozenset(OrderType))
    time_in_force: frozenset[TimeInForce] = field(default_factory=lambda: frozenset(TimeInForce))


def _as_risk(risk: Any, kill_switch: KillSwitch | None) -> RiskManager:
    if isinstance(risk, RiskManager):
        if kill_switch is not None:
            risk.kill_switch = kill_switch
        return risk
    if risk is None or isinstance(risk, RiskLimits | Mapping):
        return RiskManager(RiskLimits.from_config(risk), kill_switch)
    raise TypeError(f"risk must be RiskLimits, a dict of [risk] keys or None, not {risk!r}")


class _Endpoint:
    """What brokers and feeds share: connect/close (and ``async with``) around the adapter's
    ``_connect``/``_close``, and listeners that one failing callback cannot silence."""

    _listeners: list[Listener]
    connected: bool

    async def connect(self) -> None:
        await self._connect()
        self.connected = True

    async def close(self) -> None:
        try:
            await self._close()
        finally:
            self.connected = False

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def add_listener(self, callback: Listener) -> None:
        """``callback`` receives every event (a broker: each ``Order`` update and ``Fill``; a
        feed: each ``Quote``, ``Trade``, ``Bar`` and ``MarketStatus``)."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Listener) -> None:
        self._listeners.remove(callback)

    def _publish(self, item: Any) -> None:
        for cb in self._listeners:
            try:
                cb(item)
            except Exception:
                where = getattr(self, "venue", type(self).__name__)
                log.exception("%s: listener %r failed on %r", where, cb, item)

    async def _connect(self) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError


class Broker(_Endpoint, ABC):
    """A trading account at one broker (a venue). See the module docstring for the adapter hooks.

    Orders are commands: ``submit_order`` returns an ``Order`` handle at once (PENDING_NEW);
    acknowledgements, fills and rejections arrive later and update the handle in place.
    """

    #: name under which the class is registered in the ``tradekit.brokers`` entry-point group
    name: ClassVar[str] = "broker"
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: the ``OrderRules`` profile used when none is given
    rules_profile: ClassVar[str] = "default"
    #: the broker's request budget per minute (None: none known)
    requests_per_minute: ClassVar[int | None] = None
    #: commit each command to the journal before sending it (False only for a venue that lives
    #: in the process, like the paper broker: see ``tradekit.journal``)
    journal_sync: ClassVar[bool] = True

    def __init__(
        self,
        *,
        venue: str | None = None,
        rules: OrderRules | str | None = None,
        risk: RiskLimits | Mapping[str, Any] | RiskManager | None = None,
        clock: Clock | Any = None,
        calendar: MarketCalendar | str | None = None,
        kill_switch: KillSwitch | None = None,
        id_prefix: str | None = None,
    ) -> None:
        self._venue = venue or self.name
        self.rules: OrderRules = (
            rules
            if isinstance(rules, OrderRules)
            else OrderRules.for_broker(rules or self.rules_profile)
        )
        self.risk = _as_risk(risk, kill_switch)
        self.clock: Clock = as_clock(clock) or WallClock()
        self.calendar: MarketCalendar = (
            calendar if isinstance(calendar, MarketCalendar) else get_calendar(calendar or "NYSE")
        )
        self._listeners: list[Listener] = []
        self._status_listeners: list[Listener] = []
        self._om = OrderManager(self._venue, self._publish, ids=ClientOrderIds(id_prefix))
        self._om.on_fill_hook = self._on_fill_applied
        self.portfolio = Portfolio()
        self._quotes: dict[str, Quote] = {}
        self._halted: set[str] = set()
        self.connected = False
        self.shorting = self.capabilities.shorting
        rpm = self.requests_per_minute
        self.throttle: RateLimiter | None = RateLimiter(rpm) if rpm else None
        self.risk.kill_switch.add_listener(self._on_kill)
        #: False while the trading connection is down or not yet reconciled after a reconnect
        self.trading_up = True
        #: what reconciliation does with open orders at the broker that we did not place:
        #: "adopt" (manage them as ours) or "cancel"
        self.unknown_orders = "adopt"
        self.last_reconciliation: ReconciliationReport | None = None
        #: the bot's journal (``tradekit.journal.Journal.attach``), or None
        self.journal: Journal | None = None

    # ---- building from a config ----------------------------------------------------------
    @classmethod
    def from_venue_config(
        cls,
        name: str,
        options: Mapping[str, Any],
        *,
        risk: Any = None,
        kill_switch: KillSwitch | None = None,
    ) -> Broker:
        """The broker of a ``[venues.NAME]`` table (``options``: its keys but ``broker`` and
        ``feed``). Adapters whose constructor differs override this."""
        return cls(**dict(options), venue=name, risk=risk, kill_switch=kill_switch)

    @classmethod
    def feed_from_venue_config(cls, name: str, options: Mapping[str, Any]) -> DataFeed | None:
        """The broker's own live data feed for a ``[venues.NAME]`` table (None: it has none)."""
        return None

    # ---- identity -------------------------------------------------------------------------
    @property
    def venue(self) -> str:
        return self._venue

    @venue.setter
    def venue(self, value: str) -> None:
        self._venue = value
        self._om.venue = value

    def set_clock(self, clock: Clock) -> None:
        """Use ``clock`` from now on (the engine gives every broker its own clock)."""
        self.clock = clock

    @property
    def kill_switch(self) -> KillSwitch:
        return self.risk.kill_switch

    def __repr__(self) -> str:
        return f"{type(self).__name__}(venue={self._venue!r})"

    def _dispatch(self, obj: Any) -> None:
        """Tell the listeners about ``obj`` (an ``Order`` or a ``Fill``)."""
        self._publish(obj)

    # ---- market data the broker should know (latest quotes for checks and marks) ----------
    def on_quote(self, quote: Quote) -> None:
        sym = quote.symbol
        self._quotes[sym] = quote
        if sym in self.portfolio.by_symbol and quote.bid > 0 and quote.ask > 0:
            self.portfolio.mark(sym, (quote.bid + quote.ask) * 0.5)
            if self.risk.limits.max_daily_loss is not None:
                self.risk.on_pnl(self.portfolio.net_pnl(), quote.ts)

    def on_trade(self, trade: Trade) -> None:
        pass

    def on_bar(self, bar: Bar) -> None:
        pass

    def set_halted(self, symbol: str, halted: bool) -> None:
        """Halted symbols get no new orders (HALTED)."""
        if halted:
            self._halted.add(symbol)
        else:
            self._halted.discard(symbol)

    def is_halted(self, symbol: str) -> bool:
        return symbol in self._halted

    def last_quote(self, symbol: str) -> Quote | None:
        return self._quotes.get(symbol)

    def session_now(self) -> Session:
        return self.calendar.session_at(self.clock.now_ns())

    # ---- orders ---------------------------------------------------------------------------
    def submit_order(
        self,
        symbol: str,
        side: Side | str,
        qty: float,
        *,
        limit_price: float | None = None,
        stop_price: float | None = None,
        type: OrderType | str | None = None,
        tif: TimeInForce | str = TimeInForce.DAY,
        extended_hours: bool = False,
        client_order_id: str | None = None,
    ) -> Order:
        """Check and send an order; returns its handle at once (PENDING_NEW). Raises
        ``OrderRejected`` (nothing sent) when the broker's rules, the session, the risk limits or
        the rate limit refuse it. Prices are never changed: an off-tick price is refused."""
        now = self.clock.now_ns()
        order = self._om.create(
            symbol,
            side,
            qty,
            type=type,
            limit_price=limit_price,
            stop_price=stop_price,
            tif=tif,
            extended_hours=extended_hours,
            client_order_id=client_order_id,
            ts=now,
        )
        try:
            self._check_new(order, now)
        except OrderRejected as err:
            self._om.reject_local(order, err)
            raise
        self._om.register(order)
        self.risk.on_sent(now)
        if self.journal is not None:
            self.journal.command(self, "submit", order)
        self._send_submit(order)
        return order

    def _check_new(self, order: Order, now: int, *, replacing: Order | None = None) -> None:
        sym = order.symbol
        if sym in self._halted:
            raise OrderRejected(RejectReason.HALTED, f"{sym} is halted at {self._venue}")
        others = [o for o in self._om.open.values() if o.symbol == sym and o is not replacing]
        quote = self._quotes.get(sym)
        ctx = RuleContext(
            session=self.calendar.session_at(now),
            quote=quote,
            position=self.portfolio.qty(sym),
            open_orders=others,
            shorting=self.shorting,
        )
        self.rules.check(order, ctx)
        self._check_account(order, replacing)
        if self.risk.active:
            side = order.side
            same = 0.0
            for o in others:
                if o.side is side:
                    same += o.qty - o.filled_qty
            self.risk.check(
                sym,
                side,
                order.qty,
                order.limit_price,
                position=ctx.position,
                open_same_side=same,
                open_orders=len(self._om.open),
                mid=quote.mid if quote and quote.bid > 0 else None,
                now_ns=now,
                replacing=replacing is not None,
            )
        if self.throttle is not None and not self.throttle.try_acquire(now):
            raise OrderRejected(
                RejectReason.RATE_LIMIT,
                f"{self._venue} request budget of {self.throttle.limit}/min is spent",
            )

    def _check_account(self, order: Order, replacing: Order | None) -> None:
        """Buying power and the like; adapters that know their account override it
        (``replacing``: the open order this one replaces)."""

    def cancel_order(self, order_or_client_order_id: Order | str) -> None:
        """Ask to cancel; the outcome arrives as an event. A done order or one whose cancel is
        already pending is left alone."""
        order = self._resolve(order_or_client_order_id)
        if self._om.request_cancel(order, self.clock.now_ns()):
            if self.throttle is not None:
                self.throttle.try_acquire(self.clock.now_ns(), cancel=True)
            if self.journal is not None:
                self.journal.command(self, "cancel", order)
            self._send_cancel(order)

    def cancel_all(self, symbol: str | None = None) -> int:
        """Cancel every open order (of ``symbol``); returns how many cancels were sent."""
        n = 0
        for o in self._om.open_orders(symbol):
            if o.status is not OrderStatus.PENDING_CANCEL:
                self.cancel_order(o)
                n += 1
        return n

    def replace_order(
        self, order: Order | str, *, qty: float | None = None, limit_price: float | None = None
    ) -> Order:
        """Change an open order's quantity and/or limit price. Returns the same handle (its
        ``client_order_id`` is kept); the new values show once the broker confirms."""
        order = self._resolve(order)
        if order.is_done or order.status in (
            OrderStatus.PENDING_CANCEL,
            OrderStatus.PENDING_REPLACE,
        ):
            raise OrderRejected(
                RejectReason.NOT_OPEN,
                f"order {order.client_order_id} is {order.status.value}; it cannot be replaced now",
            )
        new_qty = order.qty if qty is None else as_number(qty, "qty", order.symbol)
        new_px = (
            order.limit_price
            if limit_price is None
            else as_number(limit_price, "limit price", order.symbol)
        )
        if new_qty == order.qty and new_px == order.limit_price:
            return order
        if new_qty <= order.filled_qty:
            raise OrderRejected(
                RejectReason.INVALID,
                f"new qty {new_qty:g} must exceed the {order.filled_qty:g} already filled",
            )
        now = self.clock.now_ns()
        # the checks see what the replaced order can still trade: its remaining quantity
        probe = OrderRequest(
            order.symbol,
            order.side,
            new_qty - order.filled_qty,
            order.type,
            new_px,
            order.stop_price,
            order.tif,
            order.extended_hours,
            order.venue,
        )
        self._check_new(probe, now, replacing=order)  # type: ignore[arg-type]
        self.risk.on_sent(now)
        self._om.request_replace(order, new_qty, new_px, now)
        if self.journal is not None:
            self.journal.command(self, "replace", order, (new_qty, new_px))
        self._send_replace(order, new_qty, new_px)
        return order

    def _resolve(self, order_or_id: Order | str) -> Order:
        if isinstance(order_or_id, Order):
            return order_or_id
        order = self._om.get(order_or_id) or self._om.by_broker_id(order_or_id)
        if order is None:
            raise OrderRejected(RejectReason.NOT_OPEN, f"no order {order_or_id!r} at {self._venue}")
        return order

    def pending_replace(self, order: Order) -> tuple[float, float | None] | None:
        """(qty, limit price) a replace of ``order`` asked for and the broker has not yet
        confirmed, or None."""
        return self._om.pending_replace(order.client_order_id)

    def get_order(self, client_order_id: str) -> Order | None:
        return self._om.get(client_order_id)

    @property
    def orders(self) -> list[Order]:
        """Every order of this broker in this process, open and done, oldest first."""
        return list(self._om.all_orders())

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Our open orders as known locally (no broker call)."""
        return self._om.open_orders(symbol)

    def sell_capacity(self, symbol: str, exclude: Order | Iterable[Order] | None = None) -> float:
        """The most shares a new sell of ``symbol`` may have now without being refused for short
        selling or held quantity (``inf`` when unbounded); ``exclude``: open orders about to be
        replaced (their quantity is not counted as committed)."""
        skip = {id(exclude)} if isinstance(exclude, Order) else {id(o) for o in exclude or ()}
        committed = 0.0
        for o in self._om.open.values():
            if o.symbol == symbol and o.side is Side.SELL and id(o) not in skip:
                committed += o.qty - o.filled_qty
        return self.rules.sell_capacity(
            symbol, self.portfolio.qty(symbol), committed, shorting=self.shorting
        )

    def position(self, symbol: str) -> float:
        """Signed shares held, as known locally from fills."""
        return self.portfolio.qty(symbol)

    # ---- events from the adapter ----------------------------------------------------------
    def _now(self, ts: int | None) -> int:
        return self.clock.now_ns() if ts is None else ts

    def _ack(
        self, client_order_id: str | None, broker_order_id: str | None, ts: int | None = None
    ) -> Order | None:
        return self._om.on_accepted(client_order_id, broker_order_id, self._now(ts))

    def _status(
        self,
        client_order_id: str | None,
        status: OrderStatus,
        ts: int | None = None,
        *,
        broker_order_id: str | None = None,
        reason: RejectReason | None = None,
        message: str | None = None,
    ) -> Order | None:
        return self._om.on_status(
            client_order_id,
            status,
            self._now(ts),
            broker_order_id=broker_order_id,
            reason=reason,
            message=message,
        )

    def _fill(self, fill: Fill) -> Order | None:
        return self._om.on_fill(fill)

    def _replaced(
        self,
        client_order_id: str | None,
        ts: int | None = None,
        *,
        broker_order_id: str | None = None,
        old_broker_order_id: str | None = None,
        qty: float | None = None,
        limit_price: float | None = None,
    ) -> Order | None:
        return self._om.on_replaced(
            client_order_id,
            self._now(ts),
            broker_order_id=broker_order_id,
            old_broker_order_id=old_broker_order_id,
            qty=qty,
            limit_price=limit_price,
        )

    def _replace_rejected(
        self, client_order_id: str, ts: int | None = None, message: str = ""
    ) -> Order | None:
        return self._om.on_replace_rejected(client_order_id, self._now(ts), message)

    def _cancel_rejected(
        self, client_order_id: str, ts: int | None = None, message: str = ""
    ) -> Order | None:
        return self._om.on_cancel_rejected(client_order_id, self._now(ts), message)

    # ---- restart -----------------------------------------------------------------------------
    def restore(self, orders: Iterable[Order], fills: Iterable[Fill]) -> None:
        """Rebuild this broker's local state from a journal before it connects: the orders
        (open and done; a cancel or replace that was not confirmed counts as not applied: the
        broker's answer comes with reconciliation), the fills into the books (on top of the
        starting inventory), and the client order id counter. The adapter's ``_restored`` hook
        then rebuilds its own maps; ``connect`` reconciles with the broker."""
        orders = list(orders)
        fills = sorted(fills, key=lambda f: f.ts)
        self._om.restore(orders, fills)
        for f in fills:
            self.portfolio.apply(f)
        self._restored(orders, fills)

    def _restored(self, orders: list[Order], fills: list[Fill]) -> None:
        """Adapter hook: rebuild adapter-side maps (broker ids, ...) for restored orders."""

    # ---- connection state (adapters report; the engine pauses strategies meanwhile) ---------
    def _venue_down(self, reason: str) -> None:
        """Adapter: the trading connection is lost (orders can be neither sent nor confirmed)."""
        if self.trading_up:
            self.trading_up = False
            log.warning("%s: trading connection down: %s", self._venue, reason)
            self._publish_status(VenueStatus(self._venue, self.clock.now_ns(), False, reason))

    def _venue_up(self, reason: str) -> None:
        """Adapter: the connection is back and reconciliation is done; trading may resume."""
        if not self.trading_up:
            self.trading_up = True
            log.info("%s: trading connection up: %s", self._venue, reason)
            self._publish_status(VenueStatus(self._venue, self.clock.now_ns(), True, reason))

    def _reconciled(self, report: ReconciliationReport) -> None:
        """Adapter: record, log and publish (to the status listeners: the journal, the engine) a
        reconciliation."""
        self.last_reconciliation = report
        if report.clean:
            log.info("%s", report)
        else:
            log.warning("%s", report)
        self._publish_status(report)

    def add_status_listener(self, callback: Listener) -> None:
        """``callback`` receives the broker's connection changes (``VenueStatus``) and each
        ``ReconciliationReport`` (``add_listener``'s callbacks get orders and fills only)."""
        self._status_listeners.append(callback)

    def _publish_status(self, item: Any) -> None:
        for cb in self._status_listeners:
            try:
                cb(item)
            except Exception:
                log.exception("%s: status listener %r failed on %r", self._venue, cb, item)

    def _on_fill_applied(self, fill: Fill, order: Order) -> None:
        if self.risk.limits.max_daily_loss is None:
            self.portfolio.apply(fill)
            return
        # the PnL before the fill first: the first fill of a day counts against that day
        self.risk.on_pnl(self.portfolio.net_pnl(), fill.ts)
        self.portfolio.apply(fill)
        self.risk.on_pnl(self.portfolio.net_pnl(), fill.ts)

    def _on_kill(self, reason: str) -> None:
        n = self.cancel_all()
        log.warning("%s: kill switch (%s): %d cancels sent", self._venue, reason, n)

    # ---- queries --------------------------------------------------------------------------
    async def get_account(self) -> Account:
        return await self._fetch_account()

    async def get_positions(self) -> dict[str, Position]:
        return await self._fetch_positions()

    async def get_open_orders(self) -> list[Order]:
        return await self._fetch_open_orders()

    async def get_instrument(self, symbol: str) -> Instrument:
        inst = await self._fetch_instrument(symbol)
        self.rules.set_instrument(inst)
        return inst

    # ---- adapter hooks --------------------------------------------------------------------
    @abstractmethod
    async def _connect(self) -> None: ...

    @abstractmethod
    async def _close(self) -> None: ...

    @abstractmethod
    def _send_submit(self, order: Order) -> None: ...

    @abstractmethod
    def _send_cancel(self, order: Order) -> None: ...

    @abstractmethod
    def _send_replace(self, order: Order, qty: float, limit_price: float | None) -> None: ...

    @abstractmethod
    async def _fetch_account(self) -> Account: ...

    @abstractmethod
    async def _fetch_positions(self) -> dict[str, Position]: ...

    @abstractmethod
    async def _fetch_open_orders(self) -> list[Order]: ...

    @abstractmethod
    async def _fetch_instrument(self, symbol: str) -> Instrument: ...


class DataFeed(_Endpoint, ABC):
    """A source of market data: live subscriptions pushed to listeners, and history as pandas
    DataFrames in the replay file columns (``ts`` int ns UTC, ``symbol``, ...)."""

    name: ClassVar[str] = "feed"

    def __init__(self, *, venue: str | None = None) -> None:
        self.venue = venue or self.name
        self._listeners: list[Listener] = []
        self.subscriptions: dict[str, set[str]] = {"quotes": set(), "trades": set(), "bars": set()}
        self.connected = False

    def subscribe(
        self,
        symbols: Iterable[str] | str,
        *,
        quotes: bool = True,
        trades: bool = True,
        bars: bool = False,
    ) -> None:
        syms = {symbols} if isinstance(symbols, str) else set(symbols)
        for kind, on in (("quotes", quotes), ("trades", trades), ("bars", bars)):
            if on:
                self.subscriptions[kind] |= syms
        self._on_subscribe(syms, quotes=quotes, trades=trades, bars=bars)

    def unsubscribe(self, symbols: Iterable[str] | str) -> None:
        syms = {symbols} if isinstance(symbols, str) else set(symbols)
        for s in self.subscriptions.values():
            s -= syms
        self._on_unsubscribe(syms)

    def _on_subscribe(self, symbols: set[str], *, quotes: bool, trades: bool, bars: bool) -> None:
        """Adapter hook: start streaming these symbols."""

    def _on_unsubscribe(self, symbols: set[str]) -> None:
        """Adapter hook: stop streaming these symbols."""

    async def get_quotes(self, symbol: str, start: Any, end: Any) -> pd.DataFrame:
        return await self.history(symbol, start, end, kind="quotes")

    async def get_trades(self, symbol: str, start: Any, end: Any) -> pd.DataFrame:
        return await self.history(symbol, start, end, kind="trades")

    async def get_bars(
        self, symbol: str, start: Any, end: Any, timeframe: str = "1Min"
    ) -> pd.DataFrame:
        return await self.history(symbol, start, end, kind="bars", timeframe=timeframe)

    async def history(
        self, symbol: str, start: Any, end: Any, *, kind: str = "bars", timeframe: str = "1Min"
    ) -> pd.DataFrame:
        raise NotImplementedError(f"{type(self).__name__} has no historical {kind}")

    @abstractmethod
    async def _connect(self) -> None: ...

    @abstractmethod
    async def _close(self) -> None: ...
