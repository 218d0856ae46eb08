"""The trading model: market data values, instruments, order handles, fills, positions, accounts.

Market data and fills are frozen ``msgspec.Struct`` values (cheap to create on the hot path);
``Order`` is a live-updating handle that the broker mutates in place as events arrive.
Timestamps are ``int`` nanoseconds since the epoch (UTC); each has a ``datetime`` twin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from .enums import Liquidity, OrderStatus, OrderType, RejectReason, Side, TimeInForce
from .timeutil import from_ns

__all__ = [
    "Account",
    "Bar",
    "Fill",
    "Instrument",
    "MarketStatus",
    "Order",
    "OrderRequest",
    "Position",
    "Quote",
    "TickRule",
    "Trade",
]


class Quote(msgspec.Struct, frozen=True, gc=False):
    """Top of book at ``ts``. Sizes in shares."""

    ts: int
    symbol: str
    bid: float
    bid_size: float
    ask: float
    ask_size: float
    venue: str = ""

    @property
    def time(self) -> datetime:
        return from_ns(self.ts)

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) * 0.5

    @property
    def spread(self) -> float:
        return self.ask - self.bid


class Trade(msgspec.Struct, frozen=True, gc=False):
    """A print on the tape (somebody's trade, not necessarily ours)."""

    ts: int
    symbol: str
    price: float
    size: float
    venue: str = ""

    @property
    def time(self) -> datetime:
        return from_ns(self.ts)


class Bar(msgspec.Struct, frozen=True, gc=False):
    ts: int
    symbol: str
    open: float
    high: float
    low: float
    close: float
    volume: float
    venue: str = ""

    @property
    def time(self) -> datetime:
        return from_ns(self.ts)


def _decimals(tick: float) -> int:
    exp = Decimal(repr(tick)).normalize().as_tuple().exponent
    return max(0, -int(exp))


class TickRule(msgspec.Struct, frozen=True):
    """Tick size as a function of price: ``bands`` is ``((from_price, tick), ...)`` ascending;
    a price at or above ``from_price`` uses that band's tick. Reg NMS Rule 612 is
    ``((0, 0.0001), (1, 0.01))``; a half-penny stock ``((0, 0.0001), (1, 0.005))``."""

    bands: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if not self.bands:
            raise ValueError("TickRule needs at least one (from_price, tick) band")
        last = -math.inf
        for lo, tick in self.bands:
            if not (tick > 0 and math.isfinite(tick)):
                raise ValueError(f"tick {tick!r} must be a positive number")
            if lo <= last:
                raise ValueError(f"TickRule bands must ascend: {self.bands!r}")
            last = lo

    @classmethod
    def fixed(cls, tick: float) -> TickRule:
        return cls(((0.0, float(tick)),))

    @classmethod
    def rule_612(cls, tick_at_or_above_1: float = 0.01) -> TickRule:
        return cls(((0.0, 0.0001), (1.0, float(tick_at_or_above_1))))

    @classmethod
    def coerce(cls, value: Any) -> TickRule:
        if isinstance(value, TickRule):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return cls.fixed(float(value))
        if isinstance(value, list | tuple):
            return cls(tuple((float(lo), float(t)) for lo, t in value))
        raise TypeError(f"tick_size must be a number or a TickRule, not {value!r}")

    def tick_at(self, price: float) -> float:
        bands = self.bands
        tick = bands[0][1]
        for lo, t in bands:
            if price >= lo - 1e-12:
                tick = t
            else:
                break
        return tick

    def decimals_at(self, price: float) -> int:
        return _decimals(self.tick_at(price))

    @property
    def max_decimals(self) -> int:
        return max(_decimals(t) for _, t in self.bands)


RULE_612 = TickRule.rule_612()


@dataclass(slots=True, frozen=True)
class Instrument:
    """What the broker says about a symbol. ``tick_size`` is a ``TickRule`` (a plain number is
    taken as one tick for every price); ``instrument.tick_at(price)`` gives the tick there."""

    symbol: str
    currency: str = "USD"
    tick_size: TickRule = RULE_612
    lot_size: float = 1.0
    min_qty: float = 1.0
    fractionable: bool = False
    shortable: bool = True
    easy_to_borrow: bool = True
    tradable: bool = True
    min_notional: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not self.symbol:
            raise ValueError(f"symbol must be a non-empty string, not {self.symbol!r}")
        object.__setattr__(self, "tick_size", TickRule.coerce(self.tick_size))
        if not self.lot_size > 0:
            raise ValueError(f"lot_size {self.lot_size!r} must be positive")
        if self.min_qty < 0:
            raise ValueError(f"min_qty {self.min_qty!r} must not be negative")

    def tick_at(self, price: float) -> float:
        return self.tick_size.tick_at(price)


class OrderRequest(msgspec.Struct):
    """What a caller asks for; ``OrderRules.check`` takes this or an ``Order``."""

    symbol: str
    side: Side
    qty: float
    type: OrderType = OrderType.LIMIT
    limit_price: float | None = None
    stop_price: float | None = None
    tif: TimeInForce = TimeInForce.DAY
    extended_hours: bool = False
    venue: str = ""


@dataclass(slots=True, eq=False)
class Order:
    """A live order handle. The broker that returned it updates it in place as acknowledgements,
    fills, cancels and rejections arrive; ``client_order_id`` never changes (also across replaces),
    ``broker_order_id`` follows the broker's newest id."""

    client_order_id: str
    venue: str
    symbol: str
    side: Side
    qty: float
    type: OrderType
    limit_price: float | None = None
    stop_price: float | None = None
    tif: TimeInForce = TimeInForce.DAY
    extended_hours: bool = False
    status: OrderStatus = OrderStatus.PENDING_NEW
    filled_qty: float = 0.0
    avg_fill_price: float | None = None
    broker_order_id: str | None = None
    created_ts: int = 0
    updated_ts: int = 0
    accepted_ts: int | None = None
    done_ts: int | None = None
    reject_reason: RejectReason | None = None
    reject_message: str | None = None
    fees: float = 0.0
    tag: str = ""
    fills: list[Fill] = field(default_factory=list)

    @property
    def created_at(self) -> datetime:
        return from_ns(self.created_ts)

    @property
    def updated_at(self) -> datetime:
        return from_ns(self.updated_ts)

    @property
    def is_open(self) -> bool:
        return self.status.is_open

    @property
    def is_done(self) -> bool:
        return self.status.is_done

    @property
    def remaining_qty(self) -> float:
        return max(0.0, self.qty - self.filled_qty)

    @property
    def price(self) -> float | None:
        """The limit price, or the stop price of a stop order."""
        return self.limit_price if self.limit_price is not None else self.stop_price

    def __repr__(self) -> str:
        px = f" @ {self.limit_price}" if self.limit_price is not None else ""
        return (
            f"Order({self.client_order_id} {self.venue}:{self.symbol} {self.side.value} "
            f"{self.qty:g}{px} {self.type.value} {self.tif.value} {self.status.value} "
            f"filled={self.filled_qty:g})"
        )


class Fill(msgspec.Struct, frozen=True, gc=False):
    """One execution of one of our orders. ``fee`` is money paid (negative for a rebate)."""

    fill_id: str
    client_order_id: str
    venue: str
    symbol: str
    side: Side
    qty: float
    price: float
    fee: float
    liquidity: Liquidity
    ts: int

    @property
    def time(self) -> datetime:
        return from_ns(self.ts)

    @property
    def signed_qty(self) -> float:
        return self.qty if self.side is Side.BUY else -self.qty


class Position(msgspec.Struct, frozen=True):
    """A position: ``qty`` signed (negative is short), ``avg_price`` of the open quantity."""

    symbol: str
    qty: float
    avg_price: float
    realized_pnl: float = 0.0
    venue: str = ""

    def unrealized_pnl(self, mark: float) -> float:
        return self.qty * (mark - self.avg_price)


class Account(msgspec.Struct, frozen=True):
    cash: float
    equity: float
    buying_power: float
    currency: str = "USD"


class MarketStatus(msgspec.Struct, frozen=True, gc=False):
    """A trading status of a symbol from a feed: a halt, its end, or a LULD band."""

    ts: int
    symbol: str
    halted: bool
    reason: str = ""
    venue: str = ""
    lower_band: float | None = None
    upper_band: float | None = None

    @property
    def time(self) -> datetime:
        return from_ns(self.ts)
