"""Tests of tradekit.rules: ticks, formatting, every reject reason of OrderRules.check."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradekit.enums import OrderStatus, OrderType, RejectReason, Session, Side, TimeInForce
from tradekit.errors import ConfigError, OrderRejected
from tradekit.model import Instrument, Order, OrderRequest, Quote, TickRule
from tradekit.rules import PROFILES, OrderRules, RuleContext, RulesProfile

HALF_PENNY = TickRule.rule_612(0.005)
REG = RuleContext(Session.REGULAR)


def req(
    symbol: str = "AAPL",
    side: Side | str = Side.BUY,
    qty: float = 100.0,
    type: OrderType | str = OrderType.LIMIT,
    limit_price: float | None = 190.01,
    stop_price: float | None = None,
    tif: TimeInForce | str = TimeInForce.DAY,
    extended_hours: bool = False,
) -> OrderRequest:
    return OrderRequest(
        symbol,
        side,  # type: ignore[arg-type]
        qty,
        type,  # type: ignore[arg-type]
        limit_price,
        stop_price,
        tif,  # type: ignore[arg-type]
        extended_hours,
    )


def market(side: Side = Side.BUY, qty: float = 100.0, **kw: object) -> OrderRequest:
    return req(side=side, qty=qty, type=OrderType.MARKET, limit_price=None, **kw)  # type: ignore[arg-type]


_ids = iter(range(1, 1_000_000))


def order(
    side: Side,
    price: float | None,
    *,
    qty: float = 100.0,
    type: OrderType = OrderType.LIMIT,
    symbol: str = "AAPL",
    filled: float = 0.0,
    status: OrderStatus = OrderStatus.NEW,
    stop_price: float | None = None,
    cid: str | None = None,
) -> Order:
    return Order(
        client_order_id=cid or f"c-{next(_ids)}",
        venue="v",
        symbol=symbol,
        side=side,
        qty=qty,
        type=type,
        limit_price=price,
        stop_price=stop_price,
        status=status,
        filled_qty=filled,
    )


def rejected(rules: OrderRules, o: OrderRequest | Order, ctx: RuleContext = REG) -> OrderRejected:
    with pytest.raises(OrderRejected) as ei:
        rules.check(o, ctx)
    return ei.value


@pytest.fixture
def default() -> OrderRules:
    return OrderRules.for_broker("default")


@pytest.fixture
def alpaca() -> OrderRules:
    return OrderRules.for_broker("alpaca")


@pytest.fixture
def ibkr() -> OrderRules:
    return OrderRules.for_broker("ibkr")


# -- construction -------------------------------------------------------------------------------


def test_for_broker_bad_name() -> None:
    with pytest.raises(ConfigError) as ei:
        OrderRules.for_broker("robinhood")
    msg = str(ei.value)
    assert "robinhood" in msg
    for name in ("default", "alpaca", "ibkr"):
        assert name in msg


def test_for_broker_names_and_new_instances() -> None:
    for name in ("default", "alpaca", "ibkr"):
        assert OrderRules.for_broker(name).name == name
    a, b = OrderRules.for_broker("alpaca"), OrderRules.for_broker("alpaca")
    assert a is not b
    a.set_instrument(Instrument("AAPL", tick_size=HALF_PENNY))
    assert a.tick_at("AAPL", 190.0) == 0.005
    assert b.tick_at("AAPL", 190.0) == 0.01


def test_custom_profile() -> None:
    prof = dataclasses.replace(PROFILES["alpaca"], name="mine", wash_trade_guard=False)
    rules = OrderRules(prof)
    assert rules.name == "mine" and rules.profile.wash_trade_guard is False
    p2 = RulesProfile(name="x", order_types=["limit"], tifs=["day", "ioc"])  # type: ignore[arg-type]
    assert p2.order_types == frozenset({OrderType.LIMIT})
    assert p2.tifs == frozenset({TimeInForce.DAY, TimeInForce.IOC})
    with pytest.raises(ConfigError, match="trailing_stop"):
        RulesProfile(name="x", order_types=["trailing_stop"])  # type: ignore[arg-type]


def test_profiles_describe_brokers(alpaca: OrderRules, ibkr: OrderRules) -> None:
    assert alpaca.profile.extended_hours_order_types == {OrderType.LIMIT}
    assert alpaca.profile.extended_hours_tifs == {TimeInForce.DAY}
    assert alpaca.profile.short_requires_easy_to_borrow
    assert alpaca.profile.fractional_tifs == {TimeInForce.DAY}
    assert ibkr.profile.extended_hours_tifs == {TimeInForce.DAY, TimeInForce.GTC}
    assert not ibkr.profile.fractional
    assert all(p.wash_trade_guard for p in PROFILES.values())


def test_default_instrument(default: OrderRules) -> None:
    inst = default.instrument("MSFT")
    assert inst.symbol == "MSFT" and inst.lot_size == 1 and inst.min_qty == 1
    assert not inst.fractionable and inst.shortable
    assert default.instrument("MSFT") is inst
    mine = Instrument("MSFT", fractionable=True, min_qty=0.0)
    default.set_instrument(mine)
    assert default.instrument("MSFT") is mine


# -- ticks and formatting -----------------------------------------------------------------------


def test_tick_at(default: OrderRules) -> None:
    assert default.tick_at("AAPL", 190.0) == 0.01
    assert default.tick_at("AAPL", 1.0) == 0.01
    assert default.tick_at("AAPL", 0.9999) == 0.0001
    default.set_instrument(Instrument("SPY", tick_size=HALF_PENNY))
    assert default.tick_at("SPY", 500.0) == 0.005


def test_snap_price(default: OrderRules) -> None:
    assert default.snap_price("AAPL", 190.013, Side.BUY) == 190.01
    assert default.snap_price("AAPL", 190.013, Side.SELL) == 190.02
    assert default.snap_price("AAPL", 190.01, Side.SELL) == 190.01
    assert default.snap_price("AAPL", 190.01, "buy") == 190.01
    assert default.snap_price("AAPL", 0.1 + 0.2, Side.SELL) == 0.3
    assert default.snap_price("AAPL", 0.51234, Side.BUY) == 0.5123
    assert default.snap_price("AAPL", 0.99995, Side.SELL) == 1.0
    assert default.snap_price("AAPL", 1.005, Side.BUY) == 1.0
    default.set_instrument(Instrument("SPY", tick_size=HALF_PENNY))
    assert default.snap_price("SPY", 500.0071, Side.BUY) == 500.005
    assert default.snap_price("SPY", 500.0071, Side.SELL) == 500.01


def test_snap_price_bad_input(default: OrderRules) -> None:
    with pytest.raises(OrderRejected) as ei:
        default.snap_price("AAPL", math.nan, Side.BUY)
    assert ei.value.reason is RejectReason.INVALID and "nan" in ei.value.message
    with pytest.raises(OrderRejected) as ei:
        default.snap_price("AAPL", 10.0, "hold")
    assert ei.value.reason is RejectReason.INVALID and "hold" in ei.value.message


def test_snap_across_uneven_bands(default: OrderRules) -> None:
    # Band edge 1.005 is not a multiple of the upper band's tick.
    default.set_instrument(Instrument("ODD", tick_size=TickRule(((0.0, 0.01), (1.005, 0.05)))))
    assert default.snap_price("ODD", 1.02, Side.BUY) == 1.0
    assert default.snap_price("ODD", 1.003, Side.SELL) == 1.05
    assert default.nearest_valid_prices("ODD", 1.06) == (1.05, 1.1)
    assert not default.is_on_tick("ODD", 1.01)
    assert default.is_on_tick("ODD", 1.0)


def test_nearest_valid_prices(default: OrderRules) -> None:
    assert default.nearest_valid_prices("AAPL", 190.013) == (190.01, 190.02)
    assert default.nearest_valid_prices("AAPL", 190.01) == (190.01, 190.01)


def test_format_price(default: OrderRules) -> None:
    assert default.format_price("AAPL", 190.01) == "190.01"
    assert default.format_price("AAPL", 190.0) == "190.00"
    assert default.format_price("AAPL", 0.1 + 0.2) == "0.3000"
    assert default.format_price("AAPL", 0.5123) == "0.5123"
    assert default.format_price("AAPL", 0.0001) == "0.0001"
    assert default.format_price("AAPL", 1.1 * 3) == "3.30"  # 3.3000000000000003
    default.set_instrument(Instrument("SPY", tick_size=HALF_PENNY))
    assert default.format_price("SPY", 190.005) == "190.005"
    assert default.format_price("SPY", 190.01) == "190.010"
    assert default.format_price("SPY", 0.5123) == "0.5123"
    default.set_instrument(Instrument("NICKEL", tick_size=TickRule.fixed(0.05)))
    assert default.format_price("NICKEL", 190.05) == "190.05"
    default.set_instrument(Instrument("WHOLE", tick_size=TickRule.fixed(1.0)))
    assert default.format_price("WHOLE", 190.0) == "190"


def test_format_price_off_tick(default: OrderRules) -> None:
    with pytest.raises(OrderRejected) as ei:
        default.format_price("AAPL", 190.013)
    assert ei.value.reason is RejectReason.TICK_SIZE
    assert "190.013" in ei.value.message and "190.01" in ei.value.message
    assert "190.02" in ei.value.message


def test_format_qty(default: OrderRules) -> None:
    assert default.format_qty("AAPL", 100.0) == "100"
    assert default.format_qty("AAPL", 100) == "100"
    assert default.format_qty("AAPL", 0.5) == "0.5"
    assert default.format_qty("AAPL", 0.1 + 0.2) == "0.3"
    assert default.format_qty("AAPL", 1.123456789) == "1.123456789"
    with pytest.raises(OrderRejected):
        default.format_qty("AAPL", 1 / 3)
    with pytest.raises(OrderRejected) as ei:
        default.format_qty("AAPL", -1.0)
    assert ei.value.reason is RejectReason.INVALID


# -- check: the happy path ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["default", "alpaca", "ibkr"])
def test_plain_orders_pass(name: str) -> None:
    rules = OrderRules.for_broker(name)
    rules.check(req(), REG)
    rules.check(req(side=Side.SELL, limit_price=190.05), RuleContext(Session.REGULAR, position=100))
    rules.check(market(), REG)
    rules.check(req(type=OrderType.STOP, limit_price=None, stop_price=180.0), REG)
    rules.check(req(type="stop_limit", limit_price=180.0, stop_price=181.0), REG)
    rules.check(req(side="buy", type="limit", tif="gtc"), REG)  # plain strings work too
    rules.check(req(qty=100), REG)  # an int qty
    rules.check(req(limit_price=0.5123), REG)
    rules.check(req(extended_hours=True), RuleContext(Session.PRE))
    rules.check(req(extended_hours=True), RuleContext(Session.POST))
    rules.check(req(tif=TimeInForce.OPG), RuleContext(Session.PRE))
    rules.check(market(tif=TimeInForce.CLS), REG)


def test_check_accepts_order(default: OrderRules) -> None:
    default.check(order(Side.BUY, 190.01), REG)


# -- 1. sanity ----------------------------------------------------------------------------------


@pytest.mark.parametrize("qty", [0.0, -5.0, math.nan, math.inf])
def test_invalid_qty(default: OrderRules, qty: float) -> None:
    e = rejected(default, req(qty=qty))
    assert e.reason is RejectReason.INVALID
    assert repr(qty) in e.message


@pytest.mark.parametrize("px", [0.0, -1.0, math.nan, math.inf])
def test_invalid_price(default: OrderRules, px: float) -> None:
    e = rejected(default, req(limit_price=px))
    assert e.reason is RejectReason.INVALID
    assert repr(px) in e.message
    e = rejected(default, req(type=OrderType.STOP, limit_price=None, stop_price=px))
    assert e.reason is RejectReason.INVALID and repr(px) in e.message


def test_invalid_side_and_qty_type(default: OrderRules) -> None:
    e = rejected(default, req(side="hold"))
    assert e.reason is RejectReason.INVALID and "hold" in e.message
    e = rejected(default, req(qty="100"))  # type: ignore[arg-type]
    assert e.reason is RejectReason.INVALID and "'100'" in e.message
    e = rejected(default, req(qty=True))
    assert e.reason is RejectReason.INVALID


def test_not_tradable(default: OrderRules) -> None:
    default.set_instrument(Instrument("XYZ", tradable=False))
    e = rejected(default, req(symbol="XYZ"))
    assert e.reason is RejectReason.INVALID and "XYZ" in e.message


@pytest.mark.parametrize(
    ("kw", "bad"),
    [
        ({"type": OrderType.LIMIT, "limit_price": None}, "limit_price=None"),
        ({"type": OrderType.LIMIT, "stop_price": 180.0}, "stop_price=180.0"),
        ({"type": OrderType.MARKET}, "limit_price=190.01"),
        ({"type": OrderType.STOP, "limit_price": None}, "stop_price=None"),
        ({"type": OrderType.STOP, "stop_price": 180.0}, "limit_price=190.01"),
        ({"type": OrderType.STOP_LIMIT}, "stop_price=None"),
    ],
)
def test_type_price_mismatch(default: OrderRules, kw: dict[str, object], bad: str) -> None:
    e = rejected(default, req(**kw))  # type: ignore[arg-type]
    assert e.reason is RejectReason.ORDER_TYPE
    assert bad in e.message


def test_type_or_tif_not_allowed() -> None:
    rules = OrderRules(
        RulesProfile(
            name="lim", order_types=frozenset({OrderType.LIMIT}), tifs=frozenset({TimeInForce.DAY})
        )
    )
    e = rejected(rules, market())
    assert e.reason is RejectReason.ORDER_TYPE
    assert "market" in e.message and "allowed: limit" in e.message
    e = rejected(rules, req(tif=TimeInForce.GTC))
    assert e.reason is RejectReason.ORDER_TYPE
    assert "gtc" in e.message and "allowed: day" in e.message
    e = rejected(rules, req(type="iceberg"))
    assert e.reason is RejectReason.ORDER_TYPE and "iceberg" in e.message


def test_auction_tif_needs_market_or_limit(default: OrderRules) -> None:
    e = rejected(
        default,
        req(type=OrderType.STOP, limit_price=None, stop_price=180.0, tif=TimeInForce.OPG),
        RuleContext(Session.PRE),
    )
    assert e.reason is RejectReason.ORDER_TYPE and "stop" in e.message


# -- 2. ticks -----------------------------------------------------------------------------------


def test_tick_size_limit(default: OrderRules) -> None:
    e = rejected(default, req(limit_price=190.013))
    assert e.reason is RejectReason.TICK_SIZE
    assert e.message == (
        "limit price 190.013 for AAPL is not on the 0.01 tick; nearest valid prices 190.01 and "
        "190.02"
    )


def test_tick_size_stop_and_sub_dollar(default: OrderRules) -> None:
    e = rejected(default, req(type=OrderType.STOP, limit_price=None, stop_price=180.005))
    assert e.reason is RejectReason.TICK_SIZE
    assert "stop price 180.005" in e.message and "180.00" in e.message
    assert "180.01" in e.message
    e = rejected(default, req(limit_price=0.51234))
    assert e.reason is RejectReason.TICK_SIZE
    assert "0.51234" in e.message and "0.0001 tick" in e.message
    assert "0.5123" in e.message and "0.5124" in e.message


def test_tick_size_half_penny(default: OrderRules) -> None:
    default.set_instrument(Instrument("SPY", tick_size=HALF_PENNY))
    default.check(req(symbol="SPY", limit_price=500.005), REG)
    e = rejected(default, req(symbol="SPY", limit_price=500.003))
    assert e.reason is RejectReason.TICK_SIZE
    assert "500.003" in e.message and "0.005 tick" in e.message
    assert "500.000" in e.message and "500.005" in e.message


def test_tick_checked_before_session(default: OrderRules) -> None:
    e = rejected(default, req(limit_price=190.013), RuleContext(Session.CLOSED))
    assert e.reason is RejectReason.TICK_SIZE


# -- 3. quantity --------------------------------------------------------------------------------


def test_fractional_not_fractionable(alpaca: OrderRules) -> None:
    e = rejected(alpaca, market(qty=0.5))
    assert e.reason is RejectReason.FRACTIONAL
    assert "0.5" in e.message and "not fractionable" in e.message


def test_fractional_ibkr_whole_shares(ibkr: OrderRules) -> None:
    ibkr.set_instrument(Instrument("AAPL", fractionable=True, min_qty=0.0))
    e = rejected(ibkr, market(qty=2.5))
    assert e.reason is RejectReason.FRACTIONAL
    assert "2.5" in e.message and "whole shares" in e.message


def test_fractional_alpaca_types(alpaca: OrderRules) -> None:
    alpaca.set_instrument(Instrument("AAPL", fractionable=True, min_qty=0.0))
    alpaca.check(market(qty=0.5), REG)
    alpaca.check(req(qty=1.25), REG)
    e = rejected(alpaca, req(qty=1.25, tif=TimeInForce.GTC))
    assert e.reason is RejectReason.FRACTIONAL
    assert "1.25" in e.message and "GTC" in e.message
    e = rejected(alpaca, req(qty=1.25, type=OrderType.STOP, limit_price=None, stop_price=180.0))
    assert e.reason is RejectReason.FRACTIONAL and "stop" in e.message
    e = rejected(alpaca, req(qty=1.25, extended_hours=True), RuleContext(Session.PRE))
    assert e.reason is RejectReason.FRACTIONAL and "extended_hours" in e.message


def test_fractional_short(alpaca: OrderRules, default: OrderRules) -> None:
    for rules in (alpaca, default):
        rules.set_instrument(Instrument("AAPL", fractionable=True, min_qty=0.0))
        rules.check(market(Side.SELL, qty=0.5), RuleContext(Session.REGULAR, position=1.0))
        e = rejected(rules, market(Side.SELL, qty=0.5), RuleContext(Session.REGULAR))
        assert e.reason is RejectReason.FRACTIONAL
        assert "0.5" in e.message and "short" in e.message


def test_lot_size(default: OrderRules) -> None:
    default.set_instrument(Instrument("LOT", lot_size=100.0))
    default.check(req(symbol="LOT", qty=300.0), REG)
    e = rejected(default, req(symbol="LOT", qty=150.0))
    assert e.reason is RejectReason.LOT_SIZE
    assert "150" in e.message and "100" in e.message


def test_min_qty(default: OrderRules) -> None:
    default.set_instrument(Instrument("MQ", min_qty=10.0))
    default.check(req(symbol="MQ", qty=10.0), REG)
    e = rejected(default, req(symbol="MQ", qty=5.0))
    assert e.reason is RejectReason.MIN_QTY
    assert "5" in e.message and "10" in e.message


def test_min_notional(default: OrderRules) -> None:
    default.set_instrument(Instrument("MN", min_notional=1000.0))
    default.check(req(symbol="MN", qty=10.0, limit_price=100.0), REG)
    e = rejected(default, req(symbol="MN", qty=5.0, limit_price=100.0))
    assert e.reason is RejectReason.MIN_NOTIONAL
    assert "500.00" in e.message and "1000" in e.message
    # A market order is valued at the quote when one is known (ask for a buy) ...
    q = Quote(0, "MN", bid=99.0, bid_size=100, ask=101.0, ask_size=100)
    e = rejected(
        default, _with_symbol(market(qty=9.0), "MN"), RuleContext(Session.REGULAR, quote=q)
    )
    assert e.reason is RejectReason.MIN_NOTIONAL and "909.00" in e.message
    # ... and not checked without one.
    default.check(_with_symbol(market(qty=9.0), "MN"), REG)


def _with_symbol(r: OrderRequest, symbol: str) -> OrderRequest:
    r.symbol = symbol
    return r


# -- 4. extended hours --------------------------------------------------------------------------


def test_extended_hours_needs_limit_day(alpaca: OrderRules) -> None:
    e = rejected(alpaca, market(extended_hours=True), RuleContext(Session.PRE))
    assert e.reason is RejectReason.EXTENDED_HOURS
    assert "market" in e.message and "limit" in e.message
    e = rejected(alpaca, req(tif=TimeInForce.GTC, extended_hours=True), RuleContext(Session.PRE))
    assert e.reason is RejectReason.EXTENDED_HOURS and "GTC" in e.message


def test_extended_hours_ibkr_gtc(ibkr: OrderRules) -> None:
    ibkr.check(req(tif=TimeInForce.GTC, extended_hours=True), RuleContext(Session.POST))
    e = rejected(ibkr, req(tif=TimeInForce.IOC, extended_hours=True), RuleContext(Session.POST))
    assert e.reason is RejectReason.EXTENDED_HOURS and "IOC" in e.message


def test_extended_hours_flag_checked_in_regular_session(default: OrderRules) -> None:
    e = rejected(default, market(extended_hours=True), REG)
    assert e.reason is RejectReason.EXTENDED_HOURS and "market" in e.message


# -- 5. session ---------------------------------------------------------------------------------


def test_session_closed(default: OrderRules) -> None:
    e = rejected(default, req(), RuleContext(Session.CLOSED))
    assert e.reason is RejectReason.SESSION_CLOSED and "closed" in e.message
    e = rejected(default, req(extended_hours=True), RuleContext(Session.CLOSED))
    assert e.reason is RejectReason.SESSION_CLOSED


@pytest.mark.parametrize("session", [Session.PRE, Session.POST])
def test_pre_post_need_extended_hours(alpaca: OrderRules, session: Session) -> None:
    e = rejected(alpaca, req(), RuleContext(session))
    assert e.reason is RejectReason.SESSION_CLOSED
    assert session.value in e.message
    assert "only limit DAY orders with extended_hours=True" in e.message
    e = rejected(alpaca, market(), RuleContext(session))
    assert e.reason is RejectReason.SESSION_CLOSED


def test_opg_and_cls_timing(default: OrderRules) -> None:
    for session in (Session.REGULAR, Session.POST):
        e = rejected(default, req(tif=TimeInForce.OPG), RuleContext(session))
        assert e.reason is RejectReason.ORDER_TYPE
        assert "OPG" in e.message and session.value in e.message
    e = rejected(default, req(tif=TimeInForce.OPG), RuleContext(Session.CLOSED))
    assert e.reason is RejectReason.SESSION_CLOSED
    for session in (Session.PRE, Session.POST):
        e = rejected(default, market(tif=TimeInForce.CLS), RuleContext(session))
        assert e.reason is RejectReason.ORDER_TYPE
        assert "CLS" in e.message and session.value in e.message


# -- 6. short selling ---------------------------------------------------------------------------


def test_alpaca_insufficient_qty(alpaca: OrderRules) -> None:
    resting = order(Side.SELL, 190.05, qty=80.0, filled=20.0)
    ctx = RuleContext(Session.REGULAR, position=100.0, open_orders=[resting])
    alpaca.check(req(side=Side.SELL, qty=40.0, limit_price=190.06), ctx)
    e = rejected(alpaca, req(side=Side.SELL, qty=50.0, limit_price=190.06), ctx)
    assert e.reason is RejectReason.INSUFFICIENT_QTY
    assert "insufficient qty available for order" in e.message
    assert "50" in e.message and "40 available" in e.message


def test_alpaca_replace_excludes_itself(alpaca: OrderRules) -> None:
    resting = order(Side.SELL, 190.05, qty=100.0, cid="mine")
    ctx = RuleContext(Session.REGULAR, position=100.0, open_orders=[resting])
    alpaca.check(resting, ctx)  # the order itself does not commit its own shares
    copy = dataclasses.replace(resting, limit_price=190.04)
    alpaca.check(copy, ctx)  # nor does a copy with the same client_order_id


def test_default_sells_through_into_short(default: OrderRules) -> None:
    resting = order(Side.SELL, 190.05, qty=100.0)
    ctx = RuleContext(Session.REGULAR, position=100.0, open_orders=[resting])
    default.check(req(side=Side.SELL, qty=50.0, limit_price=190.06), ctx)
    ctx.shorting = False
    e = rejected(default, req(side=Side.SELL, qty=50.0, limit_price=190.06), ctx)
    assert e.reason is RejectReason.SHORTING
    assert "50" in e.message and "disabled" in e.message


def test_shorting_disabled(default: OrderRules) -> None:
    e = rejected(
        default,
        req(side=Side.SELL, qty=30.0, limit_price=190.02),
        RuleContext(Session.REGULAR, position=10.0, shorting=False),
    )
    assert e.reason is RejectReason.SHORTING
    assert "sell 30 AAPL would sell 20 short" in e.message


def test_not_shortable(ibkr: OrderRules) -> None:
    ibkr.set_instrument(Instrument("GME", shortable=False))
    e = rejected(ibkr, req(symbol="GME", side=Side.SELL, qty=10.0, limit_price=20.0))
    assert e.reason is RejectReason.SHORTING
    assert "GME" in e.message and "not shortable" in e.message


def test_alpaca_needs_easy_to_borrow(alpaca: OrderRules, ibkr: OrderRules) -> None:
    htb = Instrument("HTB", easy_to_borrow=False)
    alpaca.set_instrument(htb)
    ibkr.set_instrument(htb)
    sell = req(symbol="HTB", side=Side.SELL, qty=10.0, limit_price=20.0)
    e = rejected(alpaca, sell)
    assert e.reason is RejectReason.SHORTING
    assert "HTB" in e.message and "easy to borrow" in e.message
    ibkr.check(sell, REG)  # IB locates the shares itself


def test_buys_and_covered_sells_are_not_shorts(alpaca: OrderRules) -> None:
    alpaca.set_instrument(Instrument("HTB", shortable=False, easy_to_borrow=False))
    alpaca.check(
        req(symbol="HTB", side=Side.BUY, limit_price=20.0),
        RuleContext(Session.REGULAR, position=-100.0),
    )
    alpaca.check(
        req(symbol="HTB", side=Side.SELL, limit_price=20.0),
        RuleContext(Session.REGULAR, position=100.0),
    )


# -- 7. wash trades -----------------------------------------------------------------------------


def test_wash_limit_buy_crossing_our_sell(alpaca: OrderRules) -> None:
    sell = order(Side.SELL, 190.05, cid="ask-1")
    ctx = RuleContext(Session.REGULAR, position=100.0, open_orders=[sell])
    alpaca.check(req(limit_price=190.04), ctx)
    for px in (190.05, 190.10):
        e = rejected(alpaca, req(limit_price=px), ctx)
        assert e.reason is RejectReason.WASH_TRADE
        assert "190.05" in e.message and "ask-1" in e.message and repr(px) in e.message


def test_wash_limit_sell_crossing_our_buy(default: OrderRules) -> None:
    buys = [order(Side.BUY, 189.95, cid="bid-1"), order(Side.BUY, 189.97, cid="bid-2")]
    ctx = RuleContext(Session.REGULAR, position=100.0, open_orders=buys)
    default.check(req(side=Side.SELL, limit_price=189.98), ctx)
    e = rejected(default, req(side=Side.SELL, limit_price=189.96), ctx)
    assert e.reason is RejectReason.WASH_TRADE
    assert "189.97" in e.message and "bid-2" in e.message  # names our highest buy


def test_wash_market_orders(ibkr: OrderRules) -> None:
    ctx = RuleContext(
        Session.REGULAR, position=100.0, open_orders=[order(Side.SELL, 250.0, cid="far-ask")]
    )
    e = rejected(ibkr, market(Side.BUY), ctx)
    assert e.reason is RejectReason.WASH_TRADE
    assert "far-ask" in e.message and "250.0" in e.message
    # An open opposite market order crosses anything.
    ctx = RuleContext(
        Session.REGULAR, open_orders=[order(Side.BUY, None, type=OrderType.MARKET, cid="mkt")]
    )
    e = rejected(ibkr, req(side=Side.SELL, limit_price=999.0), ctx)
    assert e.reason is RejectReason.WASH_TRADE and "mkt" in e.message


def test_wash_ignores_stops_other_symbols_same_side_and_done(default: OrderRules) -> None:
    opens = [
        order(Side.SELL, None, type=OrderType.STOP, stop_price=180.0),
        order(Side.SELL, 179.0, type=OrderType.STOP_LIMIT, stop_price=180.0),
        order(Side.SELL, 100.0, symbol="MSFT"),
        order(Side.BUY, 195.0),
        order(Side.SELL, 150.0, status=OrderStatus.CANCELED),
        order(Side.SELL, 150.0, status=OrderStatus.FILLED, filled=100.0),
    ]
    ctx = RuleContext(Session.REGULAR, position=1000.0, open_orders=opens)
    default.check(req(limit_price=190.0), ctx)
    default.check(market(), ctx)


def test_wash_new_stop_orders_count_when_triggered(default: OrderRules) -> None:
    ctx = RuleContext(
        Session.REGULAR, position=100.0, open_orders=[order(Side.BUY, 185.0, cid="bid")]
    )
    e = rejected(
        default, req(side=Side.SELL, type=OrderType.STOP, limit_price=None, stop_price=180.0), ctx
    )
    assert e.reason is RejectReason.WASH_TRADE and "bid" in e.message
    default.check(
        req(side=Side.SELL, type=OrderType.STOP_LIMIT, limit_price=186.0, stop_price=187.0), ctx
    )


def test_wash_replace_excludes_itself(alpaca: OrderRules) -> None:
    ask = order(Side.SELL, 190.05, cid="ask")
    ctx = RuleContext(Session.REGULAR, position=100.0, open_orders=[ask])
    moved = dataclasses.replace(ask, side=Side.BUY, limit_price=190.06)  # same client id
    alpaca.check(moved, ctx)


def test_wash_guard_off() -> None:
    rules = OrderRules(dataclasses.replace(PROFILES["default"], wash_trade_guard=False))
    ctx = RuleContext(Session.REGULAR, open_orders=[order(Side.SELL, 190.0)])
    rules.check(req(limit_price=191.0), ctx)


def test_short_checked_before_wash(alpaca: OrderRules) -> None:
    ctx = RuleContext(
        Session.REGULAR, position=0.0, shorting=False, open_orders=[order(Side.BUY, 190.0)]
    )
    e = rejected(alpaca, req(side=Side.SELL, limit_price=189.0), ctx)
    assert e.reason is RejectReason.SHORTING


# -- properties ---------------------------------------------------------------------------------

prices = st.floats(
    min_value=0.0001,
    max_value=100_000.0,
    exclude_min=True,
    exclude_max=True,
    allow_nan=False,
    allow_infinity=False,
)
RULES = {"612": TickRule.rule_612(), "half_penny": HALF_PENNY}


def _rules(kind: str) -> OrderRules:
    r = OrderRules.for_broker("default")
    r.set_instrument(Instrument("X", tick_size=RULES[kind]))
    return r


def _decimals_of(s: str) -> int:
    return len(s.partition(".")[2])


@settings(max_examples=300, deadline=None)
@given(price=prices, kind=st.sampled_from(sorted(RULES)), side=st.sampled_from(list(Side)))
def test_snap_properties(price: float, kind: str, side: Side) -> None:
    r = _rules(kind)
    snap = r.snap_price("X", price, side)
    tick = r.tick_at("X", price)
    tol = 1e-9 * price
    assert r.is_on_tick("X", snap)
    if side is Side.BUY:
        assert snap <= price + tol
        assert price - snap < tick + tol
    else:
        assert snap >= price - tol
        assert snap - price < tick + tol
    assert r.snap_price("X", snap, side) == snap
    assert r.snap_price("X", snap, side.opposite) == snap
    s = r.format_price("X", snap)
    assert float(s) == snap
    assert _decimals_of(s) == r.instrument("X").tick_size.decimals_at(snap)
    lo, hi = r.nearest_valid_prices("X", price)
    assert lo <= price + tol and hi >= price - tol


@settings(max_examples=300, deadline=None)
@given(price=prices, kind=st.sampled_from(sorted(RULES)), side=st.sampled_from(list(Side)))
def test_on_tick_price_never_refused(price: float, kind: str, side: Side) -> None:
    r = _rules(kind)
    on = r.snap_price("X", price, side)
    for s in Side:
        r.check(OrderRequest("X", s, 1.0, OrderType.LIMIT, limit_price=on), REG)
    r.check(OrderRequest("X", side, 1.0, OrderType.STOP, stop_price=on), REG)


@settings(max_examples=300, deadline=None)
@given(k=st.integers(min_value=1, max_value=20_000_000), kind=st.sampled_from(sorted(RULES)))
def test_prices_computed_as_multiples_are_on_tick(k: int, kind: str) -> None:
    # k ticks of the upper band, computed the float way (k * tick): never refused for TICK_SIZE.
    r = _rules(kind)
    tick = RULES[kind].bands[-1][1]
    price = k * tick
    if price < 1.0:
        price = k * 0.0001
    r.check(OrderRequest("X", Side.BUY, 1.0, OrderType.LIMIT, limit_price=price), REG)
    assert float(r.format_price("X", price)) == r.snap_price("X", price, Side.BUY)


@settings(max_examples=300, deadline=None)
@given(price=st.floats(min_value=0.5, max_value=2.0), side=st.sampled_from(list(Side)))
def test_snap_properties_uneven_bands(price: float, side: Side) -> None:
    r = OrderRules.for_broker("default")
    r.set_instrument(Instrument("X", tick_size=TickRule(((0.0, 0.01), (1.005, 0.05)))))
    snap = r.snap_price("X", price, side)
    assert r.is_on_tick("X", snap)
    assert (snap <= price + 1e-12) if side is Side.BUY else (snap >= price - 1e-12)
    assert r.snap_price("X", snap, side) == snap
    assert float(r.format_price("X", snap)) == snap
