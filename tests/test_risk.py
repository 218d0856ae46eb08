"""The user's risk limits and the kill switch, driven through a ``PaperBroker`` the way a script
drives it: quotes given with ``on_quote`` (the broker's clock is the time of the latest data),
``process``/``advance_to`` to let the venue's events happen."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tradekit.brokers.paper import PaperBroker
from tradekit.enums import OrderStatus, RejectReason, Side
from tradekit.errors import ConfigError, OrderRejected
from tradekit.model import Fill, Order, Quote
from tradekit.risk import KillSwitch, RiskLimits, RiskManager, RiskRejected
from tradekit.timeutil import to_ns

SYM = "AAPL"
T0 = to_ns("2026-11-24T10:00:00-05:00")  # a Tuesday, regular session
DAY2 = to_ns("2026-11-25T10:00:00-05:00")  # the next trading day (Wednesday)
MS = 1_000_000
S = 1_000_000_000


# ---- helpers -----------------------------------------------------------------------------------
class Recorder:
    """Every event a broker's listeners receive."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def __call__(self, item: Any) -> None:
        self.events.append(
            (item.client_order_id, item.status) if isinstance(item, Order) else item
        )

    def statuses(self, cid: str) -> list[OrderStatus]:
        return [e[1] for e in self.events if isinstance(e, tuple) and e[0] == cid]

    def fills(self) -> list[Fill]:
        return [e for e in self.events if isinstance(e, Fill)]


def quote(
    b: PaperBroker,
    ts: int,
    bid: float = 190.00,
    ask: float = 190.02,
    bid_size: float = 500,
    ask_size: float = 500,
) -> None:
    b.on_quote(Quote(ts, SYM, bid, bid_size, ask, ask_size))


def broker(risk: Any = None, **kw: Any) -> tuple[PaperBroker, Recorder]:
    kw.setdefault("id_prefix", "r")
    b = PaperBroker(risk=risk, **kw)
    rec = Recorder()
    b.add_listener(rec)
    quote(b, T0)
    return b, rec


def rest(b: PaperBroker, side: Side, qty: float, price: float) -> Order:
    """A passive limit order that is acknowledged and rests."""
    o = b.submit_order(SYM, side, qty, limit_price=price)
    b.process()
    assert o.status is OrderStatus.NEW, o
    return o


def refused(
    b: PaperBroker, rec: Recorder, reason: RejectReason, side: Side | str, qty: float, **kw: Any
) -> OrderRejected:
    """Submit an order that must be refused at once with ``reason``; check nothing reached the
    venue (no ack, no fill, no open order, nothing scheduled at the venue)."""
    open_before = {o.client_order_id for o in b.open_orders()}
    known_before = {o.client_order_id for o in b.orders}
    fills_before = len(rec.fills())
    pending_before = b.next_event_ns()
    with pytest.raises(OrderRejected) as ei:
        b.submit_order(SYM, side, qty, **kw)
    err = ei.value
    assert err.reason is reason, err
    assert isinstance(err.message, str) and err.message
    assert b.next_event_ns() == pending_before  # nothing was sent to the venue
    b.process()
    assert {o.client_order_id for o in b.open_orders()} == open_before
    new = [o for o in b.orders if o.client_order_id not in known_before]
    for o in new:  # kept for the reports, but as refused: never acknowledged, never open
        assert o.status is OrderStatus.REJECTED
        assert o.reject_reason is reason
        assert o.broker_order_id is None and o.accepted_ts is None
        assert o.filled_qty == 0 and o.fills == []
        assert OrderStatus.NEW not in rec.statuses(o.client_order_id)
        assert OrderStatus.PENDING_NEW not in rec.statuses(o.client_order_id)
    assert len(rec.fills()) == fills_before
    return err


def names_number(text: str, x: float) -> bool:
    """Whether ``text`` shows the number ``x`` in a usual format."""
    forms = {f"{x:g}", f"{x:,.2f}", f"{x:.2f}", f"{x:,.0f}", f"{x:.0f}", f"{x:,g}", repr(x)}
    if float(x).is_integer():
        forms.add(str(int(x)))
    return any(f in text for f in forms)


# ---- the limits, one by one --------------------------------------------------------------------
class TestMaxOrderQty:
    def test_refused_at_once_naming_value_and_limit(self) -> None:
        b, rec = broker({"max_order_qty": 200})
        err = refused(b, rec, RejectReason.RISK_LIMIT, Side.BUY, 201, limit_price=190.00)
        assert isinstance(err, RiskRejected) and err.limit == "max_order_qty"
        assert "max_order_qty" in err.message
        assert names_number(err.message, 201) and names_number(err.message, 200)
        # market orders and sells too
        refused(b, rec, RejectReason.RISK_LIMIT, Side.SELL, 201)

    def test_at_the_limit_is_allowed(self) -> None:
        b, _ = broker({"max_order_qty": 200})
        rest(b, Side.BUY, 200, 190.00)


class TestMaxOrderNotional:
    def test_limit_order_notional_at_its_price(self) -> None:
        b, rec = broker({"max_order_notional": 20_000})
        err = refused(b, rec, RejectReason.RISK_LIMIT, Side.BUY, 106, limit_price=190.00)
        assert isinstance(err, RiskRejected) and err.limit == "max_order_notional"
        assert "max_order_notional" in err.message
        assert names_number(err.message, 106 * 190.00)  # 20,140
        assert names_number(err.message, 20_000)
        rest(b, Side.BUY, 105, 190.00)  # 19,950

    def test_market_order_notional_at_the_mid(self) -> None:
        b, rec = broker({"max_order_notional": 20_000})
        # 106 x 190.01 = 20,141 > 20,000
        err = refused(b, rec, RejectReason.RISK_LIMIT, Side.BUY, 106)
        assert isinstance(err, RiskRejected) and err.limit == "max_order_notional"
        o = b.submit_order(SYM, Side.BUY, 105)  # 19,951
        b.process()
        assert o.status is OrderStatus.FILLED


class TestMaxPosition:
    def test_counts_open_same_side_orders(self) -> None:
        b, rec = broker({"max_position": 300})
        rest(b, Side.BUY, 200, 190.00)
        err = refused(b, rec, RejectReason.RISK_LIMIT, Side.BUY, 150, limit_price=189.99)
        assert isinstance(err, RiskRejected) and err.limit == "max_position"
        assert "max_position" in err.message
        assert names_number(err.message, 300)  # the limit
        assert names_number(err.message, 350)  # where it could take the position
        rest(b, Side.BUY, 100, 189.99)  # 200 + 100 = 300: at the limit
        refused(b, rec, RejectReason.RISK_LIMIT, Side.BUY, 1, limit_price=189.98)
        # the other side does not add to the buys
        rest(b, Side.SELL, 300, 190.05)
        refused(b, rec, RejectReason.RISK_LIMIT, Side.SELL, 1, limit_price=190.06)

    def test_counts_the_position_held(self) -> None:
        b, rec = broker({"max_position": 300})
        o = b.submit_order(SYM, Side.BUY, 250, limit_price=190.02)  # takes the ask
        b.process()
        assert o.status is OrderStatus.FILLED and b.position(SYM) == 250
        err = refused(b, rec, RejectReason.RISK_LIMIT, Side.BUY, 51, limit_price=190.00)
        assert names_number(err.message, 301) and names_number(err.message, 300)
        rest(b, Side.BUY, 50, 190.00)
        # a sell that reduces is fine; one that flips beyond the limit is not
        refused(b, rec, RejectReason.RISK_LIMIT, Side.SELL, 601, limit_price=190.05)
        rest(b, Side.SELL, 250, 190.05)

    def test_short_side(self) -> None:
        b, rec = broker({"max_position": 300})
        err = refused(b, rec, RejectReason.RISK_LIMIT, Side.SELL, 301, limit_price=190.05)
        assert isinstance(err, RiskRejected) and err.limit == "max_position"
        rest(b, Side.SELL, 300, 190.05)

    def test_replace_that_grows_beyond_the_limit_is_refused(self) -> None:
        b, _ = broker({"max_position": 300})
        o = rest(b, Side.BUY, 200, 190.00)
        with pytest.raises(OrderRejected) as ei:
            b.replace_order(o, qty=301)
        assert ei.value.reason is RejectReason.RISK_LIMIT
        b.process()
        assert o.qty == 200 and o.status is OrderStatus.NEW
        b.replace_order(o, qty=300)
        b.process()
        assert o.qty == 300 and o.status is OrderStatus.NEW


class TestMaxOpenOrders:
    def test_refused_at_the_limit_and_allowed_after_a_cancel(self) -> None:
        b, rec = broker({"max_open_orders": 3})
        orders = [rest(b, Side.BUY, 10, p) for p in (189.90, 189.91, 189.92)]
        err = refused(b, rec, RejectReason.RISK_LIMIT, Side.SELL, 10, limit_price=190.10)
        assert isinstance(err, RiskRejected) and err.limit == "max_open_orders"
        assert "max_open_orders" in err.message and names_number(err.message, 3)
        # a replace is not a new open order
        b.replace_order(orders[0], limit_price=189.89)
        b.process()
        assert orders[0].limit_price == 189.89 and orders[0].is_open
        b.cancel_order(orders[1])
        b.process()
        assert orders[1].status is OrderStatus.CANCELED
        rest(b, Side.SELL, 10, 190.10)


class TestMaxOrdersPerMinute:
    def test_rate_limit_then_allowed_after_a_minute_of_market_time(self) -> None:
        b, rec = broker({"max_orders_per_minute": 3})
        for p in (189.90, 189.91, 189.92):
            rest(b, Side.BUY, 10, p)
        err = refused(b, rec, RejectReason.RATE_LIMIT, Side.BUY, 10, limit_price=189.93)
        assert "max_orders_per_minute" in err.message and names_number(err.message, 3)
        quote(b, T0 + 30 * S)
        refused(b, rec, RejectReason.RATE_LIMIT, Side.BUY, 10, limit_price=189.93)
        quote(b, T0 + 59 * S)
        refused(b, rec, RejectReason.RATE_LIMIT, Side.BUY, 10, limit_price=189.93)
        quote(b, T0 + 60 * S + 1 * MS)
        rest(b, Side.BUY, 10, 189.93)

    def test_refused_orders_do_not_use_the_budget(self) -> None:
        b, rec = broker({"max_orders_per_minute": 2, "max_order_qty": 100})
        for _ in range(5):
            refused(b, rec, RejectReason.RISK_LIMIT, Side.BUY, 101, limit_price=189.90)
        rest(b, Side.BUY, 10, 189.90)
        rest(b, Side.BUY, 10, 189.91)
        refused(b, rec, RejectReason.RATE_LIMIT, Side.BUY, 10, limit_price=189.92)

    def test_sliding_window(self) -> None:
        b, rec = broker({"max_orders_per_minute": 2})
        rest(b, Side.BUY, 10, 189.90)  # at T0
        quote(b, T0 + 40 * S)
        rest(b, Side.BUY, 10, 189.91)  # at T0 + 40 s
        quote(b, T0 + 61 * S)  # the first has left the window, not the second
        rest(b, Side.BUY, 10, 189.92)
        refused(b, rec, RejectReason.RATE_LIMIT, Side.BUY, 10, limit_price=189.93)
        quote(b, T0 + 101 * S)
        rest(b, Side.BUY, 10, 189.93)


class TestFatFinger:
    def test_limit_too_far_from_the_mid(self) -> None:
        b, rec = broker({"fat_finger": 0.05})  # mid 190.01
        err = refused(b, rec, RejectReason.FAT_FINGER, Side.BUY, 10, limit_price=199.60)
        assert "fat_finger" in err.message
        assert names_number(err.message, 199.60)
        assert re.search(r"0\.05\b|\b5(\.0+)?\s?%", err.message), err.message
        refused(b, rec, RejectReason.FAT_FINGER, Side.SELL, 10, limit_price=180.40)
        refused(b, rec, RejectReason.FAT_FINGER, Side.BUY, 10, limit_price=150.00)

    def test_within_the_band_is_allowed(self) -> None:
        b, _ = broker({"fat_finger": 0.05})
        rest(b, Side.SELL, 10, 199.50)  # 4.99 % above the mid
        rest(b, Side.BUY, 10, 180.60)  # 4.95 % below


class TestNoLimits:
    def test_absent_limits_refuse_nothing(self) -> None:
        for risk in (None, {}, RiskLimits()):
            b, _ = broker(risk)
            assert b.risk.limits == RiskLimits()
            rest(b, Side.BUY, 900, 180.00)  # large, far from the mid
            for i in range(40):  # many orders in one minute
                rest(b, Side.SELL, 1, round(200.00 + i * 0.01, 2))
            assert len(b.open_orders()) == 41
            assert not b.kill_switch.tripped

    def test_only_the_given_limits_apply(self) -> None:
        b, rec = broker({"max_order_qty": 10})
        rest(b, Side.BUY, 10, 100.00)  # no fat finger, no notional limit
        refused(b, rec, RejectReason.RISK_LIMIT, Side.BUY, 11, limit_price=100.00)


class TestCheckOrder:
    def test_rules_come_before_risk(self) -> None:
        b, rec = broker({"max_order_qty": 10})
        refused(b, rec, RejectReason.TICK_SIZE, Side.BUY, 11, limit_price=190.005)

    def test_risk_limit_comes_before_the_rate_limit(self) -> None:
        b, rec = broker({"max_orders_per_minute": 1, "max_order_qty": 10})
        rest(b, Side.BUY, 10, 189.90)
        refused(b, rec, RejectReason.RISK_LIMIT, Side.BUY, 11, limit_price=189.90)
        refused(b, rec, RejectReason.RATE_LIMIT, Side.BUY, 10, limit_price=189.90)


# ---- RiskLimits.from_config --------------------------------------------------------------------
class TestFromConfig:
    def test_values_kept(self) -> None:
        cfg = {
            "max_position": 1000,
            "max_order_qty": 500,
            "max_order_notional": 100_000,
            "max_open_orders": 50,
            "max_orders_per_minute": 150,
            "max_daily_loss": 1000,
            "fat_finger": 0.05,
        }
        lim = RiskLimits.from_config(cfg)
        for k, v in cfg.items():
            assert getattr(lim, k) == v
        assert RiskLimits.from_config(None) == RiskLimits()
        assert RiskLimits.from_config({}) == RiskLimits()
        assert RiskLimits.from_config(lim) == lim
        with pytest.raises(dataclasses.FrozenInstanceError):
            lim.max_position = 1  # type: ignore[misc]

    @pytest.mark.parametrize(
        ("cfg", "key"),
        [
            ({"max_pos": 10}, "max_pos"),
            ({"max_position": 10, "kill": True}, "kill"),
            ({"max_position": True}, "max_position"),
            ({"fat_finger": False}, "fat_finger"),
            ({"max_open_orders": True}, "max_open_orders"),
            ({"max_order_qty": -1}, "max_order_qty"),
            ({"max_daily_loss": -500.0}, "max_daily_loss"),
            ({"fat_finger": -0.01}, "fat_finger"),
            ({"max_position": -5}, "max_position"),
            ({"max_open_orders": 2.5}, "max_open_orders"),
            ({"max_orders_per_minute": 1.5}, "max_orders_per_minute"),
            ({"max_order_notional": "100000"}, "max_order_notional"),
            ({"max_order_qty": float("nan")}, "max_order_qty"),
            ({"max_order_notional": float("inf")}, "max_order_notional"),
        ],
    )
    def test_refused(self, cfg: dict[str, Any], key: str) -> None:
        with pytest.raises(ConfigError) as ei:
            RiskLimits.from_config(cfg, file="bot.toml")
        err = ei.value
        assert f"risk.{key}" in str(err)
        assert "bot.toml" in str(err)

    def test_unknown_key_lists_allowed(self) -> None:
        with pytest.raises(ConfigError) as ei:
            RiskLimits.from_config({"max_pos": 10})
        for k in ("max_position", "max_order_qty", "max_daily_loss", "fat_finger"):
            assert k in str(ei.value)

    def test_not_a_table(self) -> None:
        with pytest.raises(ConfigError):
            RiskLimits.from_config([("max_position", 10)])  # type: ignore[arg-type]

    def test_broker_refuses_bad_risk_config(self) -> None:
        with pytest.raises(ConfigError) as ei:
            PaperBroker(risk={"max_open_orders": -3})
        assert "risk.max_open_orders" in str(ei.value)


# ---- daily loss and the kill switch ------------------------------------------------------------
def assert_all_refused(b: PaperBroker, rec: Recorder) -> None:
    """Every kind of new order is refused with KILL_SWITCH, reducing ones too."""
    q = b.last_quote(SYM)
    assert q is not None
    refused(b, rec, RejectReason.KILL_SWITCH, Side.BUY, 1, limit_price=round(q.bid, 2))
    refused(b, rec, RejectReason.KILL_SWITCH, Side.SELL, 1, limit_price=round(q.ask, 2))
    refused(b, rec, RejectReason.KILL_SWITCH, Side.SELL, 1)
    refused(b, rec, RejectReason.KILL_SWITCH, Side.BUY, 1)


class TestDailyLoss:
    def long_400(self, **kw: Any) -> tuple[PaperBroker, Recorder]:
        b, rec = broker({"max_daily_loss": 1000}, **kw)
        o = b.submit_order(SYM, Side.BUY, 400, limit_price=190.02)
        b.process()
        assert o.status is OrderStatus.FILLED and b.position(SYM) == 400
        return b, rec

    def test_trips_cancels_and_refuses(self) -> None:
        b, rec = self.long_400()
        resting = [rest(b, Side.BUY, 10, 185.00), rest(b, Side.SELL, 100, 195.00)]
        quote(b, T0 + 1 * S, 188.00, 188.02)  # about -804
        assert not b.kill_switch.tripped
        rest(b, Side.BUY, 10, 184.00)  # still trading
        resting.append(b.open_orders()[-1])
        quote(b, T0 + 2 * S, 187.00, 187.02)  # about -1,204: beyond 1,000
        assert b.kill_switch.tripped
        assert b.kill_switch.reason
        b.process()
        for o in resting:
            assert o.status is OrderStatus.CANCELED, o
        assert b.open_orders() == []
        assert_all_refused(b, rec)
        assert b.position(SYM) == 400  # the kill switch cancels; it does not trade

    def test_loss_below_the_limit_does_not_trip(self) -> None:
        b, _ = self.long_400()
        quote(b, T0 + 1 * S, 187.60, 187.62)  # about -964
        assert not b.kill_switch.tripped
        rest(b, Side.BUY, 10, 187.00)

    def test_cancels_arrive_after_the_latency(self) -> None:
        b, rec = broker({"max_daily_loss": 1000}, latency_ms=10)
        o = b.submit_order(SYM, Side.BUY, 400, limit_price=190.02)
        b.advance_to(T0 + 10 * MS)
        assert o.status is OrderStatus.FILLED
        r = b.submit_order(SYM, Side.SELL, 100, limit_price=195.00)
        b.advance_to(T0 + 20 * MS)
        assert r.status is OrderStatus.NEW
        quote(b, T0 + 1 * S, 187.00, 187.02)
        assert b.kill_switch.tripped
        assert r.status is OrderStatus.PENDING_CANCEL
        b.advance_to(T0 + 1 * S + 10 * MS)
        assert r.status is OrderStatus.CANCELED
        assert_all_refused(b, rec)

    def test_window_resets_on_the_next_trading_day(self) -> None:
        b, rec = self.long_400()
        quote(b, T0 + 1 * S, 188.00, 188.02)  # day 1: about -804
        assert not b.kill_switch.tripped
        quote(b, DAY2, 188.00, 188.02)  # next day opens where the last one ended
        quote(b, DAY2 + 1 * S, 187.00, 187.02)  # -400 today, -1,204 since yesterday
        assert not b.kill_switch.tripped
        rest(b, Side.BUY, 10, 186.00)
        quote(b, DAY2 + 2 * S, 185.40, 185.42)  # -1,040 today
        assert b.kill_switch.tripped
        b.process()
        assert b.open_orders() == []
        assert_all_refused(b, rec)

    def test_the_first_fill_of_the_day_counts(self) -> None:
        # the day starts flat (PnL 0); one fill whose fee alone is 1,200 loses more than 1,000
        b, rec = broker({"max_daily_loss": 1000}, fees={"per_share": 3.0})
        o = b.submit_order(SYM, Side.BUY, 400, limit_price=190.02)
        b.process()
        assert o.status is OrderStatus.FILLED
        assert b.portfolio.net_pnl() < -1000
        assert b.kill_switch.tripped
        assert_all_refused(b, rec)

    def test_realized_loss_and_fees_count(self) -> None:
        b, _ = self.long_400(fees={"per_share": 0.06})  # 24 paid on the buy
        quote(b, T0 + 1 * S, 187.62, 187.64)  # 400 x -2.39 - 24 = about -980
        assert not b.kill_switch.tripped
        o = b.submit_order(SYM, Side.SELL, 400, limit_price=187.62)  # takes the bid
        b.process()
        assert o.status is OrderStatus.FILLED and b.position(SYM) == 0
        # realized 400 x -2.40 = -960, fees 48 and more: beyond 1,000
        assert b.kill_switch.tripped


class TestKillSwitch:
    def test_trip_from_code(self) -> None:
        b, rec = broker(None, latency_ms=10)
        o1 = b.submit_order(SYM, Side.BUY, 10, limit_price=189.90)
        o2 = b.submit_order(SYM, Side.SELL, 10, limit_price=190.10)
        b.advance_to(T0 + 10 * MS)
        assert o1.status is OrderStatus.NEW and o2.status is OrderStatus.NEW
        o3 = b.submit_order(SYM, Side.BUY, 10, limit_price=189.80)  # still on its way
        b.kill_switch.trip("x")
        assert b.kill_switch.tripped and b.kill_switch.reason == "x"
        for o in (o1, o2, o3):
            assert o.status is OrderStatus.PENDING_CANCEL
        b.advance_to(T0 + 30 * MS)
        for o in (o1, o2, o3):
            assert o.status is OrderStatus.CANCELED, o
        assert b.open_orders() == []
        err = refused(b, rec, RejectReason.KILL_SWITCH, Side.BUY, 10, limit_price=189.90)
        assert "x" in err.message
        assert_all_refused(b, rec)

    def test_reset_allows_orders_again(self) -> None:
        b, rec = broker(None)
        b.kill_switch.trip("x")
        refused(b, rec, RejectReason.KILL_SWITCH, Side.BUY, 10, limit_price=189.90)
        b.kill_switch.reset()
        assert not b.kill_switch.tripped
        rest(b, Side.BUY, 10, 189.90)

    def test_shared_across_brokers(self) -> None:
        ks = KillSwitch()
        a, rec_a = broker({"max_daily_loss": 1000}, kill_switch=ks, venue="a")
        c, rec_c = broker(None, kill_switch=ks, venue="c")
        assert a.kill_switch is ks and c.kill_switch is ks
        oa = rest(a, Side.BUY, 10, 189.90)
        oc = [rest(c, Side.BUY, 10, 189.90), rest(c, Side.SELL, 10, 190.10)]
        ks.trip("x")
        a.process()
        c.process()
        assert oa.status is OrderStatus.CANCELED
        assert all(o.status is OrderStatus.CANCELED for o in oc)
        assert_all_refused(a, rec_a)
        assert_all_refused(c, rec_c)

    def test_daily_loss_at_one_broker_stops_the_other(self) -> None:
        ks = KillSwitch()
        a, _ = broker({"max_daily_loss": 1000}, kill_switch=ks, venue="a")
        c, rec_c = broker(None, kill_switch=ks, venue="c")
        oc = rest(c, Side.BUY, 10, 189.90)
        o = a.submit_order(SYM, Side.BUY, 400, limit_price=190.02)
        a.process()
        assert o.status is OrderStatus.FILLED
        quote(a, T0 + 1 * S, 187.00, 187.02)
        assert ks.tripped
        c.process()
        assert oc.status is OrderStatus.CANCELED
        assert_all_refused(c, rec_c)

    def test_risk_manager_and_kill_switch_given_together(self) -> None:
        ks = KillSwitch()
        b, rec = broker(RiskManager(RiskLimits(max_order_qty=10)), kill_switch=ks)
        assert b.kill_switch is ks
        o = rest(b, Side.BUY, 10, 189.90)
        ks.trip("x")
        b.process()
        assert o.status is OrderStatus.CANCELED
        refused(b, rec, RejectReason.KILL_SWITCH, Side.BUY, 1, limit_price=189.90)

    def test_signal(self) -> None:
        b, rec = broker(None)
        o = rest(b, Side.BUY, 10, 189.90)
        old = signal.getsignal(signal.SIGUSR1)
        try:
            b.kill_switch.install_signal_handlers([signal.SIGUSR1])
            assert not b.kill_switch.tripped
            os.kill(os.getpid(), signal.SIGUSR1)
            deadline = time.monotonic() + 2.0
            while not b.kill_switch.tripped and time.monotonic() < deadline:
                time.sleep(0.001)
        finally:
            signal.signal(signal.SIGUSR1, old)
        assert b.kill_switch.tripped
        assert "SIGUSR1" in b.kill_switch.reason
        b.process()
        assert o.status is OrderStatus.CANCELED
        assert_all_refused(b, rec)

    def test_flag_file(self, tmp_path: Path) -> None:
        b, rec = broker(None)
        o = rest(b, Side.BUY, 10, 189.90)
        flag = tmp_path / "KILL"
        b.kill_switch.watch_file(flag)
        assert b.kill_switch.poll() is False
        assert not b.kill_switch.tripped
        rest(b, Side.SELL, 10, 190.10)
        flag.write_text("")
        assert b.kill_switch.poll() is True
        assert b.kill_switch.tripped
        b.process()
        assert b.open_orders() == [] and o.status is OrderStatus.CANCELED
        assert_all_refused(b, rec)

    def test_listeners_called_once_and_isolated(self) -> None:
        ks = KillSwitch()
        calls: list[str] = []

        def bad(reason: str) -> None:
            raise RuntimeError("boom")

        ks.add_listener(bad)
        ks.add_listener(calls.append)
        ks.trip("first")
        ks.trip("second")
        assert calls == ["first"]
        assert ks.reason == "first"


def test_risk_rejected_is_an_order_rejected() -> None:
    err = RiskRejected(RejectReason.RISK_LIMIT, "qty 5 exceeds max_order_qty 4", "max_order_qty")
    assert isinstance(err, OrderRejected)
    assert err.reason is RejectReason.RISK_LIMIT and err.limit == "max_order_qty"
