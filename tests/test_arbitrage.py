"""Arbitrage on scripted quotes through the Engine and two PaperBrokers: the decision (fees and
min_profitability to the cent), the size, leg risk (retry with a widening collar, then unwind or
pause), conversion (FX and share ratio), configuration, and the example."""

from __future__ import annotations

import math
import runpy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tradekit
from tradekit.brokers.paper import PaperBroker
from tradekit.engine import Engine
from tradekit.enums import OrderStatus, OrderType, Side, TimeInForce
from tradekit.errors import ConfigError
from tradekit.fees import FeeModel
from tradekit.model import Order, Quote
from tradekit.strategies import registry
from tradekit.strategies.arbitrage import (
    Arbitrage,
    ArbitrageParams,
    LegEvent,
    LegEventKind,
)
from tradekit.strategies.conversion import Conversion
from tradekit.strategies.cross_exchange_market_making import CrossExchangeMarketMaking
from tradekit.testing import et

SYM = "RY"
S = 1_000_000_000
MS = 1_000_000
T0 = et(2026, 11, 24, 10, 0)  # a Tuesday, regular session
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "arbitrage.toml"
EXAMPLE_PY = ROOT / "examples" / "arbitrage.py"

#: $0.005 a share, no minimum, no regulatory fees: round numbers for threshold tests
PER_SHARE = FeeModel(per_share=0.005, sec_fee_rate=0.0, taf_per_share=0.0, taf_max_per_trade=0.0)


@pytest.fixture(autouse=True)
def _registered() -> Iterator[None]:
    """The lead engineer adds these to the registry; until then the tests do it."""
    old = dict(registry)
    registry[Arbitrage.kind] = Arbitrage
    registry[CrossExchangeMarketMaking.kind] = CrossExchangeMarketMaking
    yield
    registry.clear()
    registry.update(old)


class Two:
    """Two PaperBroker venues and one strategy in an Engine, driven quote by quote."""

    def __init__(
        self,
        strategy: Any,
        *,
        venues: tuple[str, str] = ("nyse", "tsx"),
        order_ms: tuple[float, float] = (0, 0),
        fees: tuple[Any, Any] = (PER_SHARE, PER_SHARE),
        kw_a: dict[str, Any] | None = None,
        kw_b: dict[str, Any] | None = None,
        start: int = T0,
    ) -> None:
        self.strategy = strategy
        self.engine = Engine()
        self.brokers: dict[str, PaperBroker] = {}
        for name, lat, fee, kw in zip(venues, order_ms, fees, (kw_a, kw_b), strict=True):
            b = PaperBroker(
                id_prefix=name,
                latency_ms={"order_ms": lat, "cancel_ms": lat},
                fees=fee,
                **(kw or {}),
            )
            self.brokers[name] = b
            self.engine.add_venue(name, b)
        self.engine.add_strategy(strategy)
        self.engine.start(start, start + 8 * 3600 * S)
        self.now = start

    def quote(
        self,
        venue: str,
        ts: int,
        bid: float,
        ask: float,
        bid_size: float = 500,
        ask_size: float = 500,
        symbol: str = SYM,
    ) -> None:
        self.engine.step(Quote(ts, symbol, bid, bid_size, ask, ask_size, venue))
        self.engine.run_due(ts)
        self.now = ts

    def advance(self, ts: int) -> None:
        self.engine.run_due(ts)
        self.engine.clock._ns = max(self.engine.clock._ns, ts)
        self.now = ts

    def orders(self, venue: str) -> list[Order]:
        return self.brokers[venue].orders

    def pos(self, venue: str, symbol: str = SYM) -> float:
        return self.brokers[venue].position(symbol)


def arb(**kw: Any) -> Arbitrage:
    base: dict[str, Any] = {
        "venue_a": "nyse",
        "venue_b": "tsx",
        "symbol": SYM,
        "min_profitability": 0.001,
        "order_amount": 100,
        "cooloff_s": 0.0,
    }
    base.update(kw)
    return Arbitrage(**base)


def kinds(events: list[LegEvent]) -> list[str]:
    return [e.kind.value for e in events]


# ---- the decision: fees and min_profitability to the cent -------------------------------------
@pytest.mark.parametrize(("bid_b", "taken"), [(100.11, True), (100.10, False), (100.12, True)])
def test_taken_at_the_threshold_and_skipped_one_cent_short(bid_b: float, taken: bool) -> None:
    # buy 100 at 100.00 (cost 10,000), fees $0.50 a leg: net = 100 * (bid_b - 100) - 1.00;
    # min_profitability 0.1 % of 10,000 = $10 -> exactly at 100.11, one cent short at 100.10
    s = arb()
    h = Two(s)
    h.quote("nyse", T0, 99.98, 100.00)
    h.quote("tsx", T0 + MS, bid_b, round(bid_b + 0.02, 2))
    if not taken:
        assert s.last_opportunity is None
        assert h.orders("nyse") == [] and h.orders("tsx") == []
        return
    opp = s.last_opportunity
    assert opp is not None
    assert (opp.buy_venue, opp.sell_venue, opp.qty) == ("nyse", "tsx", 100)
    assert opp.fees == pytest.approx(1.0)
    assert opp.profit == pytest.approx(100 * (bid_b - 100.0) - 1.0)
    assert opp.profitability >= 0.001 - 1e-9
    (buy,) = h.orders("nyse")
    (sell,) = h.orders("tsx")
    assert (buy.side, buy.qty, buy.tif, buy.type) == (Side.BUY, 100, TimeInForce.IOC,
                                                      OrderType.LIMIT)
    assert (sell.side, sell.qty, sell.tif) == (Side.SELL, 100, TimeInForce.IOC)
    # at the touch plus a one-tick collar
    assert buy.limit_price == 100.01 and sell.limit_price == round(bid_b - 0.01, 2)
    assert buy.status is OrderStatus.FILLED and sell.status is OrderStatus.FILLED
    assert h.pos("nyse") == 100 and h.pos("tsx") == -100
    assert s.leg_events == []


@pytest.mark.parametrize(("ask_b", "taken"), [(99.89, True), (99.90, False)])
def test_the_other_direction_buys_on_b(ask_b: float, taken: bool) -> None:
    # sell at 100.00 on A, buy on B: net = 100 * (100 - ask_b) - 1.00 >= 0.001 * 100 * ask_b
    # 99.89: 10.00 >= 9.989 (taken); 99.90: 9.00 < 9.99 (skipped)
    s = arb()
    h = Two(s)
    h.quote("nyse", T0, 100.00, 100.02)
    h.quote("tsx", T0 + MS, round(ask_b - 0.02, 2), ask_b)
    if taken:
        assert h.pos("nyse") == -100 and h.pos("tsx") == 100
        assert s.last_opportunity is not None and s.last_opportunity.buy_venue == "tsx"
    else:
        assert h.orders("nyse") == [] and h.orders("tsx") == []


def _cents_to_clear(ask: float, fees: FeeModel, mp: float, qty: float) -> float:
    """The lowest bid (on the cent) that clears fees and ``mp`` buying ``qty`` at ``ask``."""
    cost = ask * qty
    for c in range(0, 200):
        bid = round(ask + c / 100, 2)
        net = (
            bid * qty
            - cost
            - fees.fee(Side.BUY, qty, ask, "taker")
            - fees.fee(Side.SELL, qty, bid, "taker")
        )
        if net >= mp * cost - 1e-9:
            return bid
    raise AssertionError("no clearing price")


@pytest.mark.parametrize("schedule", ["default", "ibkr"])
def test_threshold_includes_sec_fee_taf_and_minimum_commission(schedule: str) -> None:
    fees = FeeModel.for_broker(schedule)
    mp = 0.0005
    ask = 187.43
    clear = _cents_to_clear(ask, fees, mp, 100)
    for bid, taken in ((clear, True), (round(clear - 0.01, 2), False)):
        s = arb(min_profitability=mp)
        h = Two(s, fees=(fees, fees))
        h.quote("nyse", T0, round(ask - 0.02, 2), ask)
        h.quote("tsx", T0 + MS, bid, round(bid + 0.02, 2))
        assert (s.last_opportunity is not None) is taken, (schedule, bid)
        if taken:
            assert h.pos("nyse") == 100 and h.pos("tsx") == -100


def test_a_broker_without_fees_uses_the_fees_parameter() -> None:
    class Charges:
        """What a broker adapter without a ``FeeModel`` charges (unknown to the strategy)."""

        def fee(self, side: Any, qty: float, price: float, liq: Any, **kw: Any) -> float:
            return 0.02 * qty

    s = arb()
    h = Two(s)
    for b in h.brokers.values():
        b.fees = Charges()  # type: ignore[assignment]
    s.p.fees = FeeModel(per_share=0.02, sec_fee_rate=0, taf_per_share=0, taf_max_per_trade=0)
    h.quote("nyse", T0, 99.98, 100.00)
    h.quote("tsx", T0 + MS, 100.11, 100.13)  # clears $0.005/share, not $0.02/share
    assert s.last_opportunity is None
    h.quote("tsx", T0 + 2 * MS, 100.14, 100.16)  # 14 - 4 = 10 >= 10
    assert s.last_opportunity is not None
    assert s.last_opportunity.fees == pytest.approx(4.0)


# ---- size ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ask_size", "bid_size", "amount", "kw_a", "kw_b", "risk", "expected"),
    [
        (300, 200, 500, {}, {}, None, 200),  # the sell venue's displayed bid
        (150, 800, 500, {}, {}, None, 150),  # the buy venue's displayed ask
        (500, 500, 120, {}, {}, None, 120),  # order_amount
        # buying power: $4,000 cash x leverage 2 = $8,000 at a 100.01 limit -> 79
        (500, 500, 500, {"cash": 4000.0}, {}, None, 79),
        # no shorting on the sell venue: only the 70 held
        (500, 500, 500, {}, {"shorting": False, "positions": {SYM: 70}}, None, 70),
        # risk limits of the venues
        (500, 500, 500, {}, {}, {"max_order_qty": 40}, 40),
        (500, 500, 500, {"positions": {SYM: 960}}, {}, {"max_position": 1000}, 40),
    ],
)
def test_size_is_the_least_of_displayed_amount_and_balances(
    ask_size: float,
    bid_size: float,
    amount: float,
    kw_a: dict[str, Any],
    kw_b: dict[str, Any],
    risk: dict[str, Any] | None,
    expected: float,
) -> None:
    s = arb(order_amount=amount, min_profitability=0.0)
    if risk:
        kw_a = {**kw_a, "risk": risk}
        kw_b = {**kw_b, "risk": risk}
    h = Two(s, kw_a=kw_a, kw_b=kw_b)
    h.quote("nyse", T0, 99.98, 100.00, 500, ask_size)
    h.quote("tsx", T0 + MS, 100.11, 100.13, bid_size, 500)
    opp = s.last_opportunity
    assert opp is not None and opp.qty == expected
    assert h.orders("nyse")[0].qty == expected and h.orders("tsx")[0].qty == expected
    assert h.orders("nyse")[0].filled_qty == expected
    assert h.orders("tsx")[0].filled_qty == expected


def test_size_keeps_one_failed_leg_within_max_unhedged_notional() -> None:
    s = arb(order_amount=500, min_profitability=0.0, max_unhedged_notional=5000)
    h = Two(s)
    h.quote("nyse", T0, 99.98, 100.00)
    h.quote("tsx", T0 + MS, 100.11, 100.13)
    # 5,000 / 100.11 (the dearer side) = 49.9 -> 49 shares
    assert s.last_opportunity is not None and s.last_opportunity.qty == 49
    assert s.max_exposure <= 5000


def test_no_gross_edge_no_orders_and_cooloff_between_arbitrages() -> None:
    s = arb(cooloff_s=2.0, min_profitability=0.0)
    h = Two(s)
    h.quote("nyse", T0, 99.98, 100.00)
    h.quote("tsx", T0 + MS, 99.99, 100.01)  # no edge either way
    assert h.orders("nyse") == []
    h.quote("tsx", T0 + 2 * MS, 100.05, 100.07)
    assert len(h.orders("nyse")) == 1
    # the touch refreshes with the same edge: inside the cool-off, nothing new
    h.quote("tsx", T0 + S, 100.05, 100.07)
    h.quote("nyse", T0 + S + MS, 99.98, 100.00)
    assert len(h.orders("nyse")) == 1
    # when the cool-off ends the strategy looks again by itself
    h.advance(T0 + 2 * S + 2 * MS)
    assert len(h.orders("nyse")) == 2
    assert h.orders("nyse")[1].created_ts == T0 + 2 * S + 2 * MS


# ---- leg risk -----------------------------------------------------------------------------------
def _one_legged(**kw: Any) -> tuple[Arbitrage, Two]:
    """A: 99.98/100.00; B: 100.11/100.13 (an arbitrage), then B's bid falls away before the B
    leg (50 ms order latency) arrives: the A leg fills, the B leg does not."""
    params: dict[str, Any] = {"max_unhedged_notional": 20000, "retry_delay_s": 0.1}
    params.update(kw)
    s = arb(**params)
    h = Two(s, order_ms=(0, 50))
    h.quote("nyse", T0, 99.98, 100.00)
    h.quote("tsx", T0 + MS, 100.11, 100.13)
    assert s.busy
    h.quote("tsx", T0 + 20 * MS, 99.90, 99.92)  # moved away, beyond every retry's collar
    return s, h


def test_one_legged_fill_retried_with_a_widening_collar_then_unwound() -> None:
    s, h = _one_legged()
    exposures: list[float] = []
    for k in range(1, 40):  # 4 s in 100 ms steps; a new arbitrage shows up on the way
        h.advance(T0 + k * 100 * MS)
        exposures.append(s.exposure)
        if k == 2:
            # a fresh opportunity on A while the leg is open: ignored
            h.quote("nyse", T0 + k * 100 * MS + MS, 99.80, 99.82)
    sells_b = [o for o in h.orders("tsx") if o.side is Side.SELL]
    # the first leg at 100.10 (touch 100.11 - 1 tick collar), then 3 retries widening 2 ticks each
    assert [o.limit_price for o in sells_b] == [100.10, 100.08, 100.06, 100.04]
    assert all(o.status is OrderStatus.CANCELED and o.filled_qty == 0 for o in sells_b)
    assert all(o.qty == 100 and o.tif is TimeInForce.IOC for o in sells_b)
    # then the filled A leg is unwound at A's touch (the bid, 99.80 now) less the collar
    buy_a, unwind = h.orders("nyse")
    assert buy_a.side is Side.BUY and buy_a.filled_qty == 100
    assert (unwind.side, unwind.qty, unwind.limit_price) == (Side.SELL, 100, 99.79)
    assert unwind.status is OrderStatus.FILLED
    assert h.pos("nyse") == 0 and h.pos("tsx") == 0
    assert not s.busy and not s.paused
    assert kinds(s.leg_events) == [
        "leg_failed", "retry", "leg_failed", "retry", "leg_failed", "retry", "leg_failed",
        "unwind", "unwound",
    ]
    retries = [e for e in s.leg_events if e.kind is LegEventKind.RETRY]
    assert [(e.retry, e.venue, e.side, e.price) for e in retries] == [
        (1, "tsx", Side.SELL, 100.08), (2, "tsx", Side.SELL, 100.06), (3, "tsx", Side.SELL, 100.04)
    ]
    assert all(e.attempt == 1 for e in s.leg_events)
    # never more exposed than one failed leg (marked at A's mid), never above the limit
    assert s.max_exposure == pytest.approx(100 * 99.99)
    assert max(exposures) <= 20_000
    assert s.exposure == 0.0


def test_retry_fills_when_the_venue_comes_back_within_the_widened_collar() -> None:
    s, h = _one_legged()
    h.quote("tsx", T0 + 60 * MS, 100.07, 100.09)  # back, but below retry 1's 100.08
    h.advance(T0 + 500 * MS)
    sells_b = [o for o in h.orders("tsx") if o.side is Side.SELL]
    assert [o.limit_price for o in sells_b] == [100.10, 100.08, 100.06]
    assert sells_b[-1].status is OrderStatus.FILLED
    assert h.pos("nyse") == 100 and h.pos("tsx") == -100
    assert kinds(s.leg_events) == ["leg_failed", "retry", "leg_failed", "retry", "hedged"]
    assert not s.busy and s.exposure == 0.0


def test_partial_fill_of_a_leg_is_completed_by_a_retry() -> None:
    s = arb(retry_delay_s=0.1, collar_ticks=0)  # IOCs at the touch: no sweep of deeper levels
    h = Two(s, order_ms=(0, 50))
    h.quote("nyse", T0, 99.98, 100.00)
    h.quote("tsx", T0 + MS, 100.11, 100.13)
    h.quote("tsx", T0 + 20 * MS, 100.11, 100.13, bid_size=60)  # only 60 left when B arrives
    h.advance(T0 + 100 * MS)
    assert h.pos("tsx") == -60
    assert kinds(s.leg_events) == ["leg_failed"]
    assert s.leg_events[0].qty == 40
    h.quote("tsx", T0 + 120 * MS, 100.10, 100.12, bid_size=300)
    h.advance(T0 + 400 * MS)
    retry = h.orders("tsx")[-1]
    # the planned 100.11 widened by 0 + 1 x 2 ticks
    assert (retry.qty, retry.limit_price, retry.status) == (40, 100.09, OrderStatus.FILLED)
    assert h.pos("tsx") == -100 and h.pos("nyse") == 100
    assert kinds(s.leg_events) == ["leg_failed", "retry", "hedged"]


def test_on_leg_failure_pause_holds_the_leg_and_stops_until_resumed() -> None:
    s, h = _one_legged(on_leg_failure="pause", max_leg_retries=1)
    h.advance(T0 + 2 * S)
    assert s.paused and not s.busy
    assert h.pos("nyse") == 100 and h.pos("tsx") == 0  # held, as asked
    assert kinds(s.leg_events) == ["leg_failed", "retry", "leg_failed", "paused"]
    assert s.carried == 100 and s.exposure == pytest.approx(100 * 99.99)  # at A's mid
    n = len(h.orders("nyse"))
    h.quote("tsx", T0 + 3 * S, 100.21, 100.23)  # an arbitrage: ignored while paused
    assert len(h.orders("nyse")) == n
    s.resume()
    assert not s.paused and s.leg_events[-1].kind is LegEventKind.RESUMED
    h.quote("tsx", T0 + 4 * S, 100.21, 100.23)
    assert len(h.orders("nyse")) == n + 1


def test_unwind_that_fails_too_pauses_with_the_exposure_reported() -> None:
    s, h = _one_legged(max_leg_retries=1)
    # A's bid vanishes as well: nothing to unwind into
    h.quote("nyse", T0 + 30 * MS, 95.00, 100.00, bid_size=0)
    h.advance(T0 + 3 * S)
    assert s.paused and not s.busy
    assert h.pos("nyse") == 100
    assert "unwind" in s.pause_reason
    assert s.leg_events[-1].kind is LegEventKind.PAUSED
    assert s.exposure == pytest.approx(100 * 97.5) and s.max_exposure <= 20_000  # A's mid


def test_exposure_above_the_limit_pauses() -> None:
    # a leg refused by its venue only after a fill elsewhere: 300 shares at 100 = 30,000 > 20,000
    s = arb(order_amount=300, retry_delay_s=0.1)
    h = Two(s, order_ms=(0, 50))
    h.quote("nyse", T0, 99.98, 100.00)
    h.quote("tsx", T0 + MS, 100.11, 100.13)
    s.p.max_unhedged_notional = 20_000.0  # tightened while the legs are out
    h.quote("tsx", T0 + 20 * MS, 99.90, 99.92)
    h.advance(T0 + 3 * S)
    assert s.paused
    assert LegEventKind.PAUSED in [e.kind for e in s.leg_events]
    assert "max_unhedged_notional" in s.pause_reason
    # the repair still ran to the end: flat again
    assert h.pos("nyse") == 0 and h.pos("tsx") == 0


def test_sequential_legs_send_the_second_for_what_the_first_filled() -> None:
    s = arb(leg_mode="b_first")
    h = Two(s)
    h.quote("nyse", T0, 99.98, 100.00)
    h.quote("tsx", T0 + MS, 100.11, 100.13, bid_size=70)
    (first,) = h.orders("tsx")
    assert first.qty == 70 and first.side is Side.SELL
    (second,) = h.orders("nyse")
    assert second.created_ts >= first.done_ts  # type: ignore[operator]
    assert second.qty == 70 and h.pos("nyse") == 70 and h.pos("tsx") == -70


def test_a_refused_first_leg_sends_nothing_else() -> None:
    s = arb()
    h = Two(s)
    h.quote("nyse", T0, 99.98, 100.00)
    h.brokers["nyse"].set_halted(SYM, True)  # the buy venue refuses every order
    h.quote("tsx", T0 + MS, 100.11, 100.13)
    assert s.last_opportunity is not None
    assert [o.status for o in h.orders("nyse")] == [OrderStatus.REJECTED]
    assert h.orders("tsx") == []  # the sell leg was never sent: nothing exposed
    assert kinds(s.leg_events) == ["rejected"]
    assert "halted" in s.leg_events[0].message
    assert not s.busy and s.exposure == 0.0


# ---- conversion ---------------------------------------------------------------------------------
def test_cad_usd_fixed_rate_compares_in_home_currency() -> None:
    # SHOP: New York (USD, home) and Toronto (CAD); 1 CAD = 0.73 USD
    s = arb(symbol=None, symbol_a="SHOP", symbol_b="SHOP.TO", min_profitability=0.002,
            conversion={"rate": 0.73})
    h = Two(s)
    h.quote("nyse", T0, 72.98, 73.00, symbol="SHOP")
    # 100.20 CAD = 73.146 USD: 0.2 % over 73.00 but the fees of 1.00 bring it under 0.2 %
    h.quote("tsx", T0 + MS, 100.20, 100.22, symbol="SHOP.TO")
    assert s.last_opportunity is None
    # 100.30 CAD = 73.219 USD: (21.9 - 0.50 * 0.73 - 0.50) / 7300 = 0.288 % -> taken
    h.quote("tsx", T0 + 2 * MS, 100.30, 100.32, symbol="SHOP.TO")
    opp = s.last_opportunity
    assert opp is not None
    assert (opp.buy_venue, opp.buy_symbol, opp.sell_venue, opp.sell_symbol) == (
        "nyse", "SHOP", "tsx", "SHOP.TO")
    assert opp.cost == pytest.approx(7300.0)
    assert opp.proceeds == pytest.approx(100 * 100.30 * 0.73)
    assert opp.fees == pytest.approx(0.5 + 0.5 * 0.73)  # B's fee is in CAD
    assert h.pos("nyse", "SHOP") == 100 and h.pos("tsx", "SHOP.TO") == -100
    # without the conversion, 100.30 vs 73.00 would have looked like a 37 % arbitrage the other
    # way round... and with it, the reverse direction is not taken
    assert opp.profitability == pytest.approx((100 * 100.30 * 0.73 - 7300 - 0.865) / 7300)


def test_adr_share_ratio_trades_ratio_times_the_shares() -> None:
    # one ADR (home, USD) = 2 ordinary shares (ORD, in a currency worth 0.5 USD)
    s = arb(symbol=None, symbol_a="ADR", symbol_b="ORD", min_profitability=0.001,
            order_amount=100, conversion={"rate": 0.5, "share_ratio": 2})
    h = Two(s)
    h.quote("nyse", T0, 49.98, 50.00, symbol="ADR")
    # ORD bid 50.20 -> one ADR's worth = 50.20 * 2 * 0.5 = 50.20 USD
    h.quote("tsx", T0 + MS, 50.20, 50.22, bid_size=150, symbol="ORD")
    opp = s.last_opportunity
    assert opp is not None
    # ORD shows 150 shares = 75 ADRs: the size
    assert (opp.qty, opp.buy_qty, opp.sell_qty) == (75, 75, 150)
    assert opp.cost == pytest.approx(75 * 50.00)
    assert opp.proceeds == pytest.approx(150 * 50.20 * 0.5)
    assert h.pos("nyse", "ADR") == 75 and h.pos("tsx", "ORD") == -150


def test_fx_rate_from_a_feed_symbol() -> None:
    s = arb(symbol=None, symbol_a="SHOP", symbol_b="SHOP.TO", min_profitability=0.002,
            conversion={"fx_symbol": "USDCAD", "invert": True})
    assert s.symbols_used() == ["SHOP", "SHOP.TO", "USDCAD"]
    h = Two(s)
    h.quote("nyse", T0, 72.98, 73.00, symbol="SHOP")
    h.quote("tsx", T0 + MS, 100.30, 100.32, symbol="SHOP.TO")
    assert s.last_opportunity is None  # no FX rate yet: nothing
    h.quote("tsx", T0 + 2 * MS, 1.3698, 1.3700, symbol="USDCAD")  # mid 1.3699 -> 0.72998
    opp = s.last_opportunity
    assert opp is not None
    assert opp.proceeds == pytest.approx(100 * 100.30 / 1.3699)
    assert h.pos("nyse", "SHOP") == 100


def test_conversion_values() -> None:
    c = Conversion(rate=0.73, share_ratio=2.0)
    assert c.fx(lambda v, s: None, "tsx") == 0.73
    assert c.price_factor(0.73) == pytest.approx(1.46)
    assert not c.is_identity and Conversion().is_identity
    with pytest.raises(ConfigError) as e:
        Conversion(rate=-1)
    assert e.value.key == "strategy.conversion.rate"
    with pytest.raises(ConfigError) as e:
        Conversion(rate=1.0, fx_symbol="USDCAD")
    assert e.value.key == "strategy.conversion.fx_symbol"


# ---- session ------------------------------------------------------------------------------------
def test_no_arbitrage_outside_the_regular_session_or_after_the_closing_point() -> None:
    s = arb()
    h = Two(s, start=et(2026, 11, 24, 15, 58))  # the engine's closing point is 15:59
    t = et(2026, 11, 24, 15, 59, 30)
    h.advance(t)
    h.quote("nyse", t, 99.98, 100.00)
    h.quote("tsx", t + MS, 100.31, 100.33)
    assert h.orders("nyse") == [] and h.orders("tsx") == []


# ---- configuration ------------------------------------------------------------------------------
def test_from_config_builds_the_params() -> None:
    s = Arbitrage.from_config(
        {
            "venue_a": "nyse",
            "venue_b": "tsx",
            "symbol_a": "SHOP",
            "symbol_b": "SHOP.TO",
            "min_profitability": 0.002,
            "conversion": {"rate": 0.73},
            "fees": {"per_share": 0.005},
            "max_unhedged_notional": 50000,
            "on_leg_failure": "pause",
        },
        file="x.toml",
    )
    assert isinstance(s, Arbitrage)
    assert s.venues_used() == ["nyse", "tsx"]
    assert s.p.conversion == Conversion(rate=0.73)
    assert s.p.fees == FeeModel(per_share=0.005)
    assert (s.p.sym_a, s.p.sym_b, s.p.on_leg_failure) == ("SHOP", "SHOP.TO", "pause")
    assert isinstance(s.p, ArbitrageParams)


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"bogus": 1}, "strategy.bogus"),
        ({"min_profitability": 5}, "strategy.min_profitability"),
        ({"min_profitability": "0.1"}, "strategy.min_profitability"),
        ({"order_amount": 0}, "strategy.order_amount"),
        ({"on_leg_failure": "panic"}, "strategy.on_leg_failure"),
        ({"leg_mode": "random"}, "strategy.leg_mode"),
        ({"max_leg_retries": -1}, "strategy.max_leg_retries"),
        ({"retry_collar_ticks": 1.5}, "strategy.retry_collar_ticks"),
        ({"cooloff_s": -1}, "strategy.cooloff_s"),
        ({"max_unhedged_notional": 0}, "strategy.max_unhedged_notional"),
        ({"conversion": {"rate": 0}}, "strategy.conversion.rate"),
        ({"conversion": {"ratio": 2}}, "strategy.conversion.ratio"),
        ({"conversion": 1.3}, "strategy.conversion"),
        ({"fees": {"per_shar": 0.1}}, "strategy.fees.per_shar"),
        ({"fees": "schwab"}, "strategy.fees"),
        ({"symbol": None, "symbol_a": "X"}, "strategy.symbol"),
        ({"venue_b": "nyse"}, "strategy.venue_b"),
    ],
)
def test_config_errors_name_the_key(params: dict[str, Any], key: str) -> None:
    base: dict[str, Any] = {"venue_a": "nyse", "venue_b": "tsx", "symbol": SYM}
    base.update(params)
    base = {k: v for k, v in base.items() if v is not None}
    with pytest.raises(ConfigError) as e:
        Arbitrage.from_config(base, file="cfg.toml")
    assert e.value.key == key, str(e.value)
    assert e.value.file == "cfg.toml"
    with pytest.raises(ConfigError) as e2:
        Arbitrage(**base)
    assert e2.value.key == key


def test_config_errors_through_backtest() -> None:
    cfg = tradekit.config.load_config(EXAMPLE)
    bad = {**cfg.to_dict()}
    bad["strategy"] = {**bad["strategy"], "min_profitabilty": 0.001}
    with pytest.raises(ConfigError) as e:
        tradekit.backtest(bad)
    assert e.value.key == "strategy.min_profitabilty"


# ---- the example --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def example_summary() -> dict[str, Any]:
    registry[Arbitrage.kind] = Arbitrage
    return tradekit.backtest(EXAMPLE).summary


def test_example_trades_and_profits(example_summary: dict[str, Any]) -> None:
    s = example_summary
    assert s["strategy"] == "arbitrage"
    assert s["fills"] > 50
    assert s["orders_rejected"] == 0
    assert s["net_pnl"] > 0
    assert s["max_abs_position"] <= 1000
    for h in ("markout_1s", "markout_10s", "markout_60s"):
        assert s[h] is not None and math.isfinite(s[h])


def test_example_script_prints_the_same_summary(
    example_summary: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    runpy.run_path(str(EXAMPLE_PY), run_name="__main__")
    out = capsys.readouterr().out
    assert "net_pnl" in out and "fills" in out
    assert f"{example_summary['fills']:,}" in out
    assert f"{example_summary['net_pnl']:,}" in out
