"""The strategy base class.

A strategy is a set of synchronous callbacks that never block and never await; it acts by
commands (``buy``, ``sell``, ``cancel``, ``replace``) whose results arrive later as ``on_order``
and ``on_fill`` events. The same strategy object runs in a backtest, on paper and live: the engine
gives it a ``StrategyContext`` (venues, clock, calendar, timers) when it starts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..enums import OrderType, Session, Side, TimeInForce
from ..errors import ConfigError, OrderRejected, TradekitError
from ..model import Bar, Fill, MarketStatus, Order, Quote, Trade
from ..timeutil import NS_PER_S, from_ns

if TYPE_CHECKING:
    from ..brokers.base import Broker
    from ..calendar import MarketCalendar

log = logging.getLogger("tradekit.strategy")


class StrategyContext(Protocol):
    """What the engine offers a running strategy."""

    hours: str  # "regular" | "extended"

    def broker(self, venue: str) -> Broker: ...
    def venues(self) -> list[str]: ...
    def now_ns(self) -> int: ...
    def session(self) -> Session: ...
    def quoting_allowed(self) -> bool: ...
    def calendar(self) -> MarketCalendar: ...
    def schedule_timer(
        self, strategy: Strategy, name: str, at_ns: int, interval_ns: int | None
    ) -> None: ...
    def cancel_timer(self, strategy: Strategy, name: str) -> None: ...


@dataclass(slots=True)
class Timer:
    """A timer event: ``name`` as given to ``set_timer``, ``ts`` when it fired."""

    name: str
    ts: int
    interval_ns: int | None = None

    @property
    def time(self) -> datetime:
        return from_ns(self.ts)


@dataclass(slots=True)
class SessionChange:
    """The market moved to ``session`` at ``ts``; ``closing`` is True at the engine's
    cancel-before-close point (quoting stops until the next session)."""

    ts: int
    session: Session
    closing: bool = False


@dataclass(slots=True)
class Rejection:
    """A command the strategy gave that was refused locally."""

    venue: str
    symbol: str
    error: OrderRejected
    ts: int = 0
    order: Order | None = None


@dataclass(slots=True)
class StrategyStats:
    rejected: int = 0
    last_rejections: list[Rejection] = field(default_factory=list)


class Strategy:
    """Subclass and override the callbacks you need. Helpers:

    * ``buy``/``sell(symbol, qty, price=None, *, venue=None, ...)`` -> ``Order | None``: a limit
      order when a price is given (snapped to the tick in the passive direction: a buy down, a
      sell up), else a market order; ``None`` when it was refused locally (logged, counted in
      ``self.stats``, passed to ``on_reject``).
    * ``cancel(order)``, ``replace(order, *, qty=None, price=None)``, ``cancel_all(venue=None)``
    * ``position(symbol, venue=None)``, ``quote(symbol, venue=None)``, ``session()``, ``now()``
      (tz-aware UTC ``datetime``), ``now_ns()``, ``set_timer(name, interval_s)``
    """

    #: the ``kind`` under which the class is known to configs
    kind: ClassVar[str] = "strategy"

    def __init__(self) -> None:
        self._ctx: StrategyContext | None = None
        self.stats = StrategyStats()
        self.log = logging.getLogger(f"tradekit.strategy.{self.kind}")

    # ---- configuration -------------------------------------------------------------------
    @classmethod
    def from_config(cls, params: Mapping[str, Any], *, file: str | None = None) -> Strategy:
        """Build from a ``[strategy]`` table (``kind`` removed). Subclasses with parameters
        override this; unknown keys are a ``ConfigError``."""
        if params:
            raise ConfigError(
                f"{cls.kind} takes no parameters; got {', '.join(sorted(params))}",
                file=file,
                key=f"strategy.{next(iter(params))}",
            )
        return cls()

    def venues_used(self) -> list[str] | None:
        """The venues this strategy trades (None: every venue of the run)."""
        return None

    def symbols_used(self) -> list[str] | None:
        """The symbols this strategy needs data for (None: every symbol)."""
        return None

    # ---- callbacks -----------------------------------------------------------------------
    def on_start(self) -> None:
        """Called once, before the first market event."""

    def on_quote(self, quote: Quote) -> None:
        """A top-of-book update (``quote.venue`` names the venue)."""

    def on_trade(self, trade: Trade) -> None:
        """A print on the tape."""

    def on_bar(self, bar: Bar) -> None:
        """A bar."""

    def on_status(self, status: MarketStatus) -> None:
        """A halt, its end, or a LULD band for a symbol."""

    def on_order(self, order: Order) -> None:
        """One of our orders changed (acknowledged, filled, canceled, rejected, expired...)."""

    def on_fill(self, fill: Fill) -> None:
        """One of our orders traded."""

    def on_reject(self, rejection: Rejection) -> None:
        """A command of ours was refused locally (before anything reached the broker)."""

    def on_timer(self, timer: Timer) -> None:
        """A timer set with ``set_timer`` fired."""

    def on_session(self, change: SessionChange) -> None:
        """The market session changed, or the engine's cancel-before-close point came."""

    def on_restore(self, orders: list[Order], fills: list[Fill]) -> None:
        """A run restarted from a journal, before ``on_start``: ``orders`` are this
        strategy's venues' orders rebuilt from the journal and reconciled with the brokers (open
        and done), ``fills`` their fills; positions already include them. The default cancels
        the restored open orders, so the strategy starts quoting afresh; override it to claim
        them instead."""
        for o in orders:
            if o.is_open:
                self.cancel(o)

    def on_stop(self) -> None:
        """Called once at the end of the run (open orders are cancelled by the engine after)."""

    # ---- context -------------------------------------------------------------------------
    def bind(self, ctx: StrategyContext) -> None:
        self._ctx = ctx

    @property
    def ctx(self) -> StrategyContext:
        if self._ctx is None:
            raise TradekitError(f"{type(self).__name__} is not running (no engine bound)")
        return self._ctx

    def _venue(self, venue: str | None) -> str:
        if venue is not None:
            return venue
        vs = self.venues_used() or self.ctx.venues()
        if len(vs) != 1:
            raise TradekitError(f"name the venue: this run has several ({', '.join(vs)})")
        return vs[0]

    def broker(self, venue: str | None = None) -> Broker:
        return self.ctx.broker(self._venue(venue))

    def now_ns(self) -> int:
        return self.ctx.now_ns()

    def now(self) -> datetime:
        return from_ns(self.ctx.now_ns())

    def session(self) -> Session:
        return self.ctx.session()

    def quoting_allowed(self) -> bool:
        """False when the session is closed for our hours, or after the cancel-before-close
        point until the next session."""
        return self.ctx.quoting_allowed()

    def position(self, symbol: str, venue: str | None = None) -> float:
        return self.broker(venue).position(symbol)

    def quote(self, symbol: str, venue: str | None = None) -> Quote | None:
        return self.broker(venue).last_quote(symbol)

    def open_orders(self, symbol: str | None = None, venue: str | None = None) -> list[Order]:
        return self.broker(venue).open_orders(symbol)

    # ---- commands ------------------------------------------------------------------------
    def buy(self, symbol: str, qty: float, price: float | None = None, **kw: Any) -> Order | None:
        return self.order(Side.BUY, symbol, qty, price, **kw)

    def sell(self, symbol: str, qty: float, price: float | None = None, **kw: Any) -> Order | None:
        return self.order(Side.SELL, symbol, qty, price, **kw)

    def order(
        self,
        side: Side,
        symbol: str,
        qty: float,
        price: float | None = None,
        *,
        venue: str | None = None,
        tif: TimeInForce | str = TimeInForce.DAY,
        extended_hours: bool | None = None,
        type: OrderType | str | None = None,
        stop_price: float | None = None,
        snap: bool = True,
    ) -> Order | None:
        """Submit; ``extended_hours=None`` sets the flag when the run quotes extended hours and
        the market is in pre or post. Returns None when refused locally."""
        v = self._venue(venue)
        broker = self.ctx.broker(v)
        if price is not None and snap:
            price = broker.rules.snap_price(symbol, price, side)
        if extended_hours is None:
            extended_hours = self.ctx.hours == "extended" and self.ctx.session().is_extended
        try:
            return broker.submit_order(
                symbol,
                side,
                qty,
                limit_price=price,
                stop_price=stop_price,
                type=type,
                tif=tif,
                extended_hours=extended_hours,
            )
        except OrderRejected as err:
            self._rejected(v, symbol, err, None)
            return None

    def cancel(self, order: Order) -> None:
        self.ctx.broker(order.venue).cancel_order(order)

    def cancel_all(self, venue: str | None = None, symbol: str | None = None) -> int:
        venues: Iterable[str] = [venue] if venue else (self.venues_used() or self.ctx.venues())
        return sum(self.ctx.broker(v).cancel_all(symbol) for v in venues)

    def replace(
        self, order: Order, *, qty: float | None = None, price: float | None = None
    ) -> Order | None:
        broker = self.ctx.broker(order.venue)
        if price is not None:
            price = broker.rules.snap_price(order.symbol, price, order.side)
        try:
            return broker.replace_order(order, qty=qty, limit_price=price)
        except OrderRejected as err:
            self._rejected(order.venue, order.symbol, err, order)
            return None

    def _rejected(self, venue: str, symbol: str, err: OrderRejected, order: Order | None) -> None:
        self.stats.rejected += 1
        rej = Rejection(venue, symbol, err, self.ctx.now_ns(), order)
        last = self.stats.last_rejections
        last.append(rej)
        if len(last) > 100:
            del last[:50]
        self.log.debug("%s:%s refused: %s", venue, symbol, err)
        self.on_reject(rej)

    def set_timer(
        self,
        name: str | float,
        interval_s: float | str | None = None,
        *,
        repeat: bool = True,
        first_in_s: float | None = None,
    ) -> None:
        """Call ``on_timer`` after ``first_in_s`` (default ``interval_s``) and then every
        ``interval_s`` seconds while ``repeat``. Either order works: ``set_timer("refresh", 5)``
        or ``set_timer(5, "refresh")``; ``set_timer(5)`` names the timer ``"timer"``."""
        if isinstance(name, int | float) and not isinstance(name, bool):
            name, interval_s = (interval_s if isinstance(interval_s, str) else "timer"), name
        if not isinstance(name, str):
            raise TypeError(f"timer name {name!r} must be a string")
        if (
            isinstance(interval_s, bool)
            or not isinstance(interval_s, int | float)
            or not (interval_s > 0)
        ):
            raise ValueError(f"timer interval {interval_s!r} must be a number of seconds > 0")
        iv = int(interval_s * NS_PER_S)
        first = iv if first_in_s is None else int(first_in_s * NS_PER_S)
        self.ctx.schedule_timer(self, name, self.ctx.now_ns() + first, iv if repeat else None)

    def cancel_timer(self, name: str) -> None:
        self.ctx.cancel_timer(self, name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
