"""The names ``tradekit`` exports (CONTRACT.md section 1), the broker registry, the model's time
twins and the error tree."""

from __future__ import annotations

import enum
import inspect
import os
import pickle
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

import tradekit
import tradekit.brokers
import tradekit.errors
from tradekit.brokers.paper import PaperBroker
from tradekit.risk import RiskRejected
from tradekit.timeutil import to_ns

T0 = to_ns("2026-11-24T10:00:00-05:00")
T0_UTC = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)

ENUMS: dict[str, list[str]] = {
    "Side": ["BUY", "SELL"],
    "OrderType": ["MARKET", "LIMIT", "STOP", "STOP_LIMIT"],
    "TimeInForce": ["DAY", "GTC", "IOC", "FOK", "OPG", "CLS"],
    "OrderStatus": ["PENDING_NEW", "NEW", "PARTIALLY_FILLED", "FILLED", "PENDING_CANCEL",
                    "CANCELED", "REJECTED", "EXPIRED"],
    "Liquidity": ["MAKER", "TAKER"],
    "Session": ["CLOSED", "PRE", "REGULAR", "POST"],
    "RejectReason": ["TICK_SIZE", "LOT_SIZE", "MIN_QTY", "MIN_NOTIONAL", "FRACTIONAL",
                     "SESSION_CLOSED", "EXTENDED_HOURS", "ORDER_TYPE", "SHORTING", "WASH_TRADE",
                     "FAT_FINGER", "INSUFFICIENT_BUYING_POWER", "INSUFFICIENT_QTY", "RISK_LIMIT",
                     "RATE_LIMIT", "KILL_SWITCH", "BROKER"],
}
# exact sets where the contract lists every member
ENUMS_EXACT = {"Side", "OrderType", "TimeInForce", "Liquidity", "Session"}

MODELS: dict[str, list[str]] = {
    "Quote": ["ts", "symbol", "bid", "bid_size", "ask", "ask_size", "venue"],
    "Trade": ["ts", "symbol", "price", "size", "venue"],
    "Bar": ["ts", "symbol", "open", "high", "low", "close", "volume", "venue"],
    "Instrument": ["symbol", "currency", "tick_size", "lot_size", "min_qty", "fractionable",
                   "shortable"],
    "Order": ["client_order_id", "broker_order_id", "venue", "symbol", "side", "qty", "type",
              "limit_price", "stop_price", "tif", "extended_hours", "status", "filled_qty",
              "avg_fill_price", "created_ts", "updated_ts", "reject_reason"],
    "Fill": ["fill_id", "client_order_id", "venue", "symbol", "side", "qty", "price", "fee",
             "liquidity", "ts"],
    "Position": ["symbol", "qty", "avg_price", "realized_pnl"],
    "Account": ["cash", "equity", "buying_power", "currency"],
}

# child -> parent, exactly as CONTRACT.md section 1 states
ERROR_TREE = {
    "ConfigError": "TradekitError",
    "DataError": "TradekitError",
    "OrderRejected": "TradekitError",
    "BrokerError": "TradekitError",
    "TransientBrokerError": "BrokerError",
    "RateLimited": "TransientBrokerError",
    "Disconnected": "TransientBrokerError",
    "BrokerTimeout": "TransientBrokerError",
    "PermanentBrokerError": "BrokerError",
    "AuthError": "PermanentBrokerError",
}

OTHERS = ["Broker", "DataFeed", "MarketCalendar", "OrderRules", "RiskLimits", "Strategy",
          "backtest", "BacktestResult", "__version__"]

CONTRACT_NAMES = sorted(
    {*ENUMS, *MODELS, "TradekitError", *ERROR_TREE, *OTHERS}
)


# ---- __all__ -----------------------------------------------------------------------------------
def test_all_is_sorted_and_unique() -> None:
    names = list(tradekit.__all__)
    assert all(isinstance(n, str) for n in names)
    assert names == sorted(set(names))


def test_every_name_in_all_exists() -> None:
    missing = [n for n in tradekit.__all__ if not hasattr(tradekit, n)]
    assert missing == []


@pytest.mark.parametrize("name", CONTRACT_NAMES)
def test_contract_name_exported(name: str) -> None:
    assert name in tradekit.__all__
    assert getattr(tradekit, name) is not None


def test_star_import_gives_the_contract_names() -> None:
    ns: dict[str, Any] = {}
    exec("from tradekit import *", ns)
    for name in CONTRACT_NAMES:
        assert name in ns, name


def test_public_classes_and_functions_are_in_all() -> None:
    """Classes and functions of tradekit that the package namespace shows are exported."""
    unexported = []
    for name in dir(tradekit):
        if name.startswith("_"):
            continue
        obj = getattr(tradekit, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if not getattr(obj, "__module__", "").startswith("tradekit"):
            continue
        if name not in tradekit.__all__:
            unexported.append(name)
    assert unexported == []


def test_exported_objects_come_from_their_modules() -> None:
    from tradekit.brokers.base import Broker, DataFeed
    from tradekit.calendar import MarketCalendar
    from tradekit.risk import RiskLimits
    from tradekit.rules import OrderRules

    assert tradekit.Broker is Broker
    assert tradekit.DataFeed is DataFeed
    assert tradekit.MarketCalendar is MarketCalendar
    assert tradekit.RiskLimits is RiskLimits
    assert tradekit.OrderRules is OrderRules
    from tradekit.strategies import Strategy

    assert tradekit.Strategy is Strategy


def test_backtest_is_a_function_and_version_a_string() -> None:
    assert inspect.isfunction(tradekit.backtest)
    params = inspect.signature(tradekit.backtest).parameters
    assert next(iter(params)) == "config"
    for kw in ("data", "start", "end", "seed"):
        assert params[kw].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[kw].default is None
    assert inspect.isclass(tradekit.BacktestResult)
    assert isinstance(tradekit.__version__, str) and tradekit.__version__
    assert tradekit.__version__[0].isdigit()


# ---- enums -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ENUMS))
def test_enum(name: str) -> None:
    cls = getattr(tradekit, name)
    assert issubclass(cls, enum.StrEnum)
    members = [m.name for m in cls]
    for m in ENUMS[name]:
        assert m in members, f"{name}.{m}"
    if name in ENUMS_EXACT:
        assert members == ENUMS[name]
    for m in cls:
        assert m.value == m.name.lower()
        assert m == m.value and str(m) == m.value
        assert cls(m.value) is m


def test_side_compares_to_strings() -> None:
    assert tradekit.Side.BUY == "buy" and tradekit.Side("sell") is tradekit.Side.SELL


# ---- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("child", "parent"), sorted(ERROR_TREE.items()))
def test_error_hierarchy(child: str, parent: str) -> None:
    c = getattr(tradekit, child)
    p = getattr(tradekit, parent)
    assert c.__bases__ == (p,), f"{child} > {c.__bases__}"
    assert issubclass(c, tradekit.TradekitError)


def test_tradekit_error_is_an_exception() -> None:
    assert issubclass(tradekit.TradekitError, Exception)
    assert not issubclass(tradekit.ConfigError, tradekit.BrokerError)
    assert not issubclass(tradekit.OrderRejected, tradekit.BrokerError)
    assert not issubclass(tradekit.PermanentBrokerError, tradekit.TransientBrokerError)


def test_order_rejected_fields() -> None:
    err = tradekit.OrderRejected("tick_size", "price 190.005 is off the tick")  # type: ignore[arg-type]
    assert err.reason is tradekit.RejectReason.TICK_SIZE
    assert isinstance(err.reason, tradekit.RejectReason)
    assert isinstance(err.message, str) and err.message == "price 190.005 is off the tick"
    assert "190.005" in str(err)


def _errors() -> list[BaseException]:
    RR = tradekit.RejectReason
    return [
        tradekit.TradekitError("base"),
        tradekit.ConfigError("must be positive", file="bot.toml", key="risk.max_position"),
        tradekit.ConfigError("no file"),
        tradekit.DataError("bad row"),
        tradekit.OrderRejected(RR.KILL_SWITCH, "kill switch tripped"),
        RiskRejected(RR.RISK_LIMIT, "qty 5 exceeds max_order_qty 4", "max_order_qty"),
        tradekit.BrokerError("failed"),
        tradekit.TransientBrokerError("again"),
        tradekit.RateLimited("slow down", retry_after=2.5),
        tradekit.Disconnected("down"),
        tradekit.BrokerTimeout("late"),
        tradekit.PermanentBrokerError("never"),
        tradekit.AuthError("bad key"),
    ]


@pytest.mark.parametrize("err", _errors(), ids=lambda e: type(e).__name__)
def test_errors_pickle(err: BaseException) -> None:
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert str(back) == str(err)
    for attr in ("reason", "message", "limit", "file", "key", "retry_after"):
        if hasattr(err, attr):
            assert getattr(back, attr) == getattr(err, attr), attr
    if isinstance(err, tradekit.OrderRejected):
        assert isinstance(back.reason, tradekit.RejectReason)  # type: ignore[attr-defined]


def test_every_error_class_is_covered_by_the_pickle_test() -> None:
    classes = {
        obj for obj in vars(tradekit.errors).values()
        if inspect.isclass(obj) and issubclass(obj, tradekit.TradekitError)
    }
    assert classes <= {type(e) for e in _errors()}


# ---- importing tradekit ------------------------------------------------------------------------
_PROBE = r"""
import os, sys
seen = []
class Spy(type(os.environ)):
    def __getitem__(self, key):
        seen.append(key)
        return super().__getitem__(key)
    def __contains__(self, key):
        seen.append(key)
        return super().__contains__(key)
    def get(self, key, default=None):
        seen.append(key)
        return super().get(key, default)
os.environ.__class__ = Spy
_real_getenv = os.getenv
def _getenv(key, default=None):
    seen.append(key)
    return _real_getenv(key, default)
os.getenv = _getenv
import io, contextlib
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    import tradekit
    import tradekit.brokers
    import tradekit.brokers.paper
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("alpaca", "ib_async", "matplotlib"))
creds = sorted({k for k in seen if k.startswith("APCA") or "SECRET" in k or "KEY" in k})
sys.__stdout__.write(repr((out.getvalue(), err.getvalue(), bad, creds)))
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["APCA_API_KEY_ID"] = "PKTESTKEYSHOULDNOTBEREAD"
    env["APCA_API_SECRET_KEY"] = "SECRETSHOULDNOTBEREAD"
    env["APCA_API_BASE_URL"] = "https://example.invalid"
    env.pop("PYTHONWARNINGS", None)
    return env


def test_import_prints_nothing() -> None:
    r = subprocess.run(
        [sys.executable, "-c", "import tradekit"],
        capture_output=True, text=True, env=_env(), timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert r.stderr == ""


def test_import_loads_no_sdk_and_reads_no_credentials() -> None:
    r = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True, text=True, env=_env(), timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    out, err, bad, creds = eval(r.stdout)  # our own repr of a tuple of str/lists
    assert out == "" and err == ""
    assert bad == [], f"importing tradekit imported {bad}"
    assert creds == [], f"importing tradekit read {creds}"
    assert "PKTESTKEY" not in r.stdout and "SECRETSHOULD" not in r.stdout


# ---- the broker registry -----------------------------------------------------------------------
def test_get_paper() -> None:
    assert tradekit.brokers.get("paper") is PaperBroker
    assert issubclass(tradekit.brokers.get("paper"), tradekit.Broker)


def test_get_unknown_lists_registered_names() -> None:
    with pytest.raises(tradekit.ConfigError) as ei:
        tradekit.brokers.get("no-such-broker")
    msg = str(ei.value)
    assert "no-such-broker" in msg
    for name in ("paper", "alpaca", "ibkr"):
        assert name in msg
    assert {"paper", "alpaca", "ibkr"} <= set(tradekit.brokers.names())


def test_register_then_get(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tradekit.brokers, "_registered", dict(tradekit.brokers._registered))

    class MyBroker(PaperBroker):
        name = "mybroker-test"

    tradekit.brokers.register("mybroker-test", MyBroker)
    assert tradekit.brokers.get("mybroker-test") is MyBroker
    assert "mybroker-test" in tradekit.brokers.names()
    with pytest.raises(tradekit.ConfigError) as ei:
        tradekit.brokers.get("mybroker-tset")
    assert "mybroker-test" in str(ei.value)
    with pytest.raises(TypeError):
        tradekit.brokers.register("notabroker", dict)  # type: ignore[arg-type]


# ---- the models --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_fields(name: str) -> None:
    cls = getattr(tradekit, name)
    params = inspect.signature(cls).parameters
    for f in MODELS[name]:
        assert f in params, f"{name}.{f}"


def _check_time(obj: Any, ts: int, expected: datetime) -> None:
    t = obj.time
    assert isinstance(t, datetime)
    assert t.tzinfo is not None and t.utcoffset() is not None
    assert t.utcoffset().total_seconds() == 0
    assert t == expected
    assert to_ns(t) == ts


def test_market_data_and_fill_time_twins() -> None:
    ts = T0 + 123_456_000
    expected = T0_UTC.replace(microsecond=123456)
    _check_time(tradekit.Quote(ts, "AAPL", 190.0, 500, 190.02, 500), ts, expected)
    _check_time(tradekit.Trade(ts, "AAPL", 190.01, 100), ts, expected)
    _check_time(tradekit.Bar(ts, "AAPL", 1.0, 2.0, 0.5, 1.5, 1000), ts, expected)
    f = tradekit.Fill("F1", "C1", "paper", "AAPL", tradekit.Side.BUY, 10, 190.02, 0.0,
                      tradekit.Liquidity.TAKER, ts)
    _check_time(f, ts, expected)


def test_order_handle() -> None:
    b = PaperBroker(latency_ms=5)
    b.on_quote(tradekit.Quote(T0, "AAPL", 190.00, 500, 190.02, 500))
    o = b.submit_order("AAPL", "buy", 10, limit_price=189.90)
    assert isinstance(o, tradekit.Order)
    assert o.status is tradekit.OrderStatus.PENDING_NEW
    assert o.type is tradekit.OrderType.LIMIT and o.tif is tradekit.TimeInForce.DAY
    assert o.is_open and not o.is_done
    assert o.created_ts == T0 and o.created_at == T0_UTC
    assert o.updated_at.tzinfo is not None and o.updated_at.utcoffset().total_seconds() == 0
    b.advance_to(T0 + 5_000_000)
    assert o.status is tradekit.OrderStatus.NEW and o.is_open
    assert o.updated_ts == T0 + 5_000_000
    assert to_ns(o.updated_at) == T0 + 5_000_000
    b.cancel_order(o)
    b.advance_to(T0 + 10_000_000)
    assert o.status is tradekit.OrderStatus.CANCELED
    assert o.is_done and not o.is_open
    assert o.created_at == T0_UTC  # unchanged


def test_default_order_type() -> None:
    b = PaperBroker()
    b.on_quote(tradekit.Quote(T0, "AAPL", 190.00, 500, 190.02, 500))
    assert b.submit_order("AAPL", "buy", 1).type is tradekit.OrderType.MARKET
    assert b.submit_order("AAPL", "buy", 1, limit_price=189.0).type is tradekit.OrderType.LIMIT


async def test_position_qty_signed() -> None:
    b = PaperBroker(positions={"MSFT": 20})
    b.on_quote(tradekit.Quote(T0, "AAPL", 190.00, 500, 190.02, 500))
    o = b.submit_order("AAPL", tradekit.Side.SELL, 30, limit_price=190.00)  # shorts into the bid
    b.process()
    assert o.status is tradekit.OrderStatus.FILLED
    positions = await b.get_positions()
    assert isinstance(positions["AAPL"], tradekit.Position)
    assert positions["AAPL"].qty == -30
    assert positions["AAPL"].symbol == "AAPL"
    assert positions["AAPL"].avg_price == pytest.approx(190.00)
    assert positions["MSFT"].qty == 20
    acct = await b.get_account()
    assert isinstance(acct, tradekit.Account) and acct.currency == "USD"
