"""tradekit: broker-integrated stock trading.

One ``Broker``/``DataFeed`` interface (Interactive Brokers, Alpaca, paper), strategies that quote
and arbitrage stocks, and the guardrails real brokers and exchanges impose. Importing tradekit
imports no broker SDK, prints nothing and reads no credentials.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__

# last: the function ``backtest`` shadows the module of the same name on the package
from .brokers.base import Broker, Capabilities, DataFeed
from .calendar import MarketCalendar
from .clock import Clock, SimClock, WallClock
from .config import Config, load_config
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
from .strategies import Strategy

if TYPE_CHECKING:
    from .backtesting import backtest
    from .results import BacktestResult

#: names loaded on first use (they bring pandas in): name -> module
_LAZY = {"backtest": ".backtesting", "BacktestResult": ".results"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tradekit' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "Account",
    "AuthError",
    "BacktestResult",
    "Bar",
    "Broker",
    "BrokerError",
    "BrokerTimeout",
    "Capabilities",
    "Clock",
    "Config",
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
    "Strategy",
    "TickRule",
    "TimeInForce",
    "Trade",
    "TradekitError",
    "TransientBrokerError",
    "WallClock",
    "__version__",
    "backtest",
    "load_config",
]
