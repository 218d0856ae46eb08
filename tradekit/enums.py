"""Enumerations shared by every part of tradekit (all ``StrEnum``: they compare equal to their
lower-case string values, so ``Side.BUY == "buy"``)."""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    """Order side."""

    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class TimeInForce(StrEnum):
    """Time in force. OPG: at the opening auction; CLS: at the closing auction."""

    DAY = "day"
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"
    OPG = "opg"
    CLS = "cls"


class OrderStatus(StrEnum):
    """Order status. PENDING_NEW: sent, not yet acknowledged by the broker."""

    PENDING_NEW = "pending_new"
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    PENDING_CANCEL = "pending_cancel"
    PENDING_REPLACE = "pending_replace"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    LOST = "lost"

    @property
    def is_done(self) -> bool:
        return self in _DONE

    @property
    def is_open(self) -> bool:
        return self not in _DONE


_DONE = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.REJECTED,
        OrderStatus.EXPIRED,
        OrderStatus.LOST,
    }
)


class Liquidity(StrEnum):
    MAKER = "maker"
    TAKER = "taker"


class Session(StrEnum):
    """Trading session of a US equity venue at an instant (times America/New_York)."""

    CLOSED = "closed"
    PRE = "pre"  # 04:00-09:30
    REGULAR = "regular"  # 09:30-16:00 (13:00 on early-close days)
    POST = "post"  # 16:00-20:00 (17:00 on early-close days)

    @property
    def is_extended(self) -> bool:
        return self is Session.PRE or self is Session.POST


class RejectReason(StrEnum):
    """Why an order was refused, locally or by the broker."""

    TICK_SIZE = "tick_size"
    LOT_SIZE = "lot_size"
    MIN_QTY = "min_qty"
    MIN_NOTIONAL = "min_notional"
    FRACTIONAL = "fractional"
    SESSION_CLOSED = "session_closed"
    EXTENDED_HOURS = "extended_hours"
    ORDER_TYPE = "order_type"
    TIME_IN_FORCE = "time_in_force"
    SHORTING = "shorting"
    WASH_TRADE = "wash_trade"
    FAT_FINGER = "fat_finger"
    INSUFFICIENT_BUYING_POWER = "insufficient_buying_power"
    INSUFFICIENT_QTY = "insufficient_qty"
    RISK_LIMIT = "risk_limit"
    MAX_POSITION = "max_position"
    MAX_ORDER_QTY = "max_order_qty"
    MAX_ORDER_NOTIONAL = "max_order_notional"
    MAX_OPEN_ORDERS = "max_open_orders"
    DAILY_LOSS = "daily_loss"
    RATE_LIMIT = "rate_limit"
    KILL_SWITCH = "kill_switch"
    INVALID = "invalid"
    UNKNOWN_SYMBOL = "unknown_symbol"
    DUPLICATE_ID = "duplicate_id"
    NOT_OPEN = "not_open"
    HALTED = "halted"
    BROKER = "broker"
