"""tradekit: broker-integrated stock trading.

One ``Broker``/``DataFeed`` interface (Interactive Brokers, Alpaca, paper), strategies that quote
and arbitrage stocks, and the guardrails real brokers and exchanges impose. Importing tradekit
imports no broker SDK, prints nothing and reads no credentials.
"""

from __future__ import annotations

from ._version import __version__
from .brokers.base import Broker, Capabilities, DataFeed
from .calendar import MarketCalendar
from .clock import Clock, SimClock, WallClock
from .enums import (
    Liquidity,
    OrderStatus,
    OrderType,
    RejectReason,
    Session,
    Side,
    TimeInForce,
)
from .errors import (
    AuthError,
    BrokerError,
    BrokerTimeout,
    ConfigError,
    DataError,
    Disconnected,
    OrderRejected,
    PermanentBrokerError,
    RateLimited,
    TradekitError,
    TransientBrokerError,
)
from .fees import FeeModel
from .model import (
    Account,
    Bar,
    Fill,
    Instrument,
    MarketStatus,
    Order,
    OrderRequest,
    Position,
    Quote,
    TickRule,
    Trade,
)
from .risk import KillSwitch, RiskLimits
from .rules import OrderRules

__all__ = [
    "Account",
    "AuthError",
    "Bar",
    "Broker",
    "BrokerError",
    "BrokerTimeout",
    "Capabilities",
    "Clock",
    "ConfigError",
    "DataError",
    "DataFeed",
    "Disconnected",
    "FeeModel",
    "Fill",
    "Instrument",
    "KillSwitch",
    "Liquidity",
    "MarketCalendar",
    "MarketStatus",
    "Order",
    "OrderRejected",
    "OrderRequest",
    "OrderRules",
    "OrderStatus",
    "OrderType",
    "PermanentBrokerError",
    "Position",
    "Quote",
    "RateLimited",
    "RejectReason",
    "RiskLimits",
    "Session",
    "Side",
    "SimClock",
    "TickRule",
    "TimeInForce",
    "Trade",
    "TradekitError",
    "TransientBrokerError",
    "WallClock",
    "__version__",
]
