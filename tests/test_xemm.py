"""CrossExchangeMarketMaking on scripted quotes and trades through the Engine and two
PaperBrokers: fee-inclusive maker prices, hedging every fill (partial ones and residues below the
taker's minimum), failed hedges, quote management while a hedge is in flight, exposure limits,
sessions, conversion, configuration and the example."""

from __future__ import annotations

import math
import runpy
from collections.abc import Iterator
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import pytest

import tradekit
from tradekit.brokers.paper import PaperBroker
from tradekit.engine import Engine
from tradekit.enums import Liquidity, OrderStatus, OrderType, Side, TimeInForce
from tradekit.errors import ConfigError
from tradekit.fees import FeeModel
from tradekit.model import Instrument, Order, Quote, Trade
from tradekit.strategies import registry
from tradekit.strategies.arbitrage import Arbitrage, LegEvent, LegEventKind
from tradekit.strategies.conversion import Conversion
from tradekit.strategies.cross_exchange_market_making import (
    CrossExchangeMarketMaking,
    XEMMParams,
)
from tradekit.testing import et

SYM = "RY"
S = 1_000_000_000
MS = 1_000_000
T0 = et(2026, 11, 24, 10, 0)  # a Tuesday, regular session
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cross_exchange_market_making.toml"
EXAMPLE_PY = ROOT / "examples" / "cross_exchange_market_making.py"
MAKER, TAKER = "arca", "nyse"

PER_SHARE = FeeModel(per_share=0.005, sec_fee_rate=0.0, taf_per_share=0.0, taf_max_per_trade=0.0)
#: taker: commission + an exchange take fee + SEC fee and TAF on sells
TAKER_FEES = FeeModel(per_share=0.0035, taker_fee_per_share=0.003)
#: maker: commission less an exchange rebate + SEC fee and TAF on sells
MAKER_FEES = FeeModel(per_share=0.0035, maker_fee_per_share=-0.002)


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
    """A maker venue and a taker venue (PaperBrokers) and one strategy in an Engine."""

    def __init__(
        self,
        strategy: Any,
        *,
        order_ms: tuple[float, float] = (0, 0),  # maker, taker
        fees: tuple[Any, Any] = (PER_SHARE, PER_SHARE),
        kw_maker: dict[str, Any] | None = None,
        kw_taker: dict[str, Any] | None = None,
        start: int = T0,
    ) -> None:
        self.strategy = strategy
        self.engine = Engine()
        self.brokers: dict[str, PaperBroker] = {}
        for name, lat, fee, kw in zip(
            (MAKER, TAKER), order_ms, fees, (kw_maker, kw_taker), strict=True
        ):
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

    def quote(
        self,
        venue: str,
        ts: int,
        bid: float,
        ask: float,
        bid_size: float = 1000,
        ask_size: float = 1000,
        symbol: str = SYM,
    ) -> None:
        self.engine.step(Quote(ts, symbol, bid, bid_size, ask, ask_size, venue))
        self.engine.run_due(ts)

    def trade(self, venue: str, ts: int, price: float, size: float, symbol: str = SYM) -> None:
        self.engine.step(Trade(ts, symbol, price, size, venue))
        self.engine.run_due(ts)

    def advance(self, ts: int) -> None:
        self.engine.run_due(ts)
        self.engine.clock._ns = max(self.engine.clock._ns, ts)

    def orders(self, venue: str) -> list[Order]:
        return self.brokers[venue].orders

    def live(self, side: Side) -> list[Order]:
        return [o for o in self.brokers[MAKER].open_orders(SYM) if o.side is side]

    def pos(self, venue: str, symbol: str = SYM) -> float:
        return self.brokers[venue].position(symbol)


def xemm(**kw: Any) -> CrossExchangeMarketMaking:
    base: dict[str, Any] = {
        "maker_venue": MAKER,
        "taker_venue": TAKER,
        "symbol": SYM,
        "min_profitability": 0.001,
        "order_amount": 100,
        "adjust_order_enabled": False,
        "anti_hysteresis_duration": 0,
        "slippage_buffer": 0.005,
        "hedge_retry_delay_s": 0.1,
    }
    base.update(kw)
    return CrossExchangeMarketMaking(**base)


def snap(x: float, side: Side, tick: str = "0.01") -> float:
    mode = ROUND_FLOOR if side is Side.BUY else ROUND_CEILING
    d = Decimal(repr(x)) / Decimal(tick)
    return float(d.to_integral_value(rounding=mode) * Decimal(tick))


def kinds(events: list[LegEvent]) -> list[str]:
    return [e.kind.value for e in events]


def start_quoting(h: Two, *, maker: tuple[float, float] = (99.80, 100.20)) -> None:
    """Taker 100.00/100.02 (1,000 shown each side); a wide maker market: our quotes improve on
    it (first in the queue), bid 99.89 and ask 100.14 with $0.005/share fees and 0.1 %."""
    h.quote(TAKER, T0, 100.00, 100.02)
    h.quote(MAKER, T0 + MS, maker[0], maker[1], 500, 500)


# ---- pricing ------------------------------------------------------------------------------------
def _expected(side: Side, t: float, size: float, mp: float) -> float:
    """The fee-inclusive maker price, solved independently of the strategy."""
    if side is Side.BUY:
        f_t = TAKER_FEES.fee(Side.SELL, size, t, Liquidity.TAKER) / size
        f_m = MAKER_FEES.fee(Side.BUY, size, 1.0, Liquidity.MAKER) / size  # price-free
        return (t - f_t - f_m) / (1 + mp)
    f_t = TAKER_FEES.fee(Side.BUY, size, t, Liquidity.TAKER) / size
    # f_m(p) = a + sec * p: p = (t + f_t + a + sec * p) (1 + mp)
    a = MAKER_FEES.fee(Side.SELL, size, 0.0, Liquidity.MAKER) / size
    sec = MAKER_FEES.sec_fee_rate
    return (t + f_t + a) * (1 + mp) / (1 - sec * (1 + mp))


@pytest.mark.parametrize(("t_bid", "t_ask", "mp"), [(100.00, 100.02, 0.001),
                                                     (187.31, 187.36, 0.0004),
                                                     (23.47, 23.49, 0.002)])
def test_maker_prices_from_the_taker_with_fees_snapped_passively(
    t_bid: float, t_ask: float, mp: float
) -> None:
    s = xemm(min_profitability=mp, adjust_order_enabled=True)
    h = Two(s, fees=(MAKER_FEES, TAKER_FEES))
    h.quote(TAKER, T0, t_bid, t_ask)
    # a maker market close enough that the top-of-book adjustment does not bind
    h.quote(MAKER, T0 + MS, round(t_bid - 0.05, 2), round(t_ask + 0.03, 2), 500, 500)
    bid_raw = _expected(Side.BUY, t_bid, 100, mp)
    ask_raw = _expected(Side.SELL, t_ask, 100, mp)
    (bid,) = h.live(Side.BUY)
    (ask,) = h.live(Side.SELL)
    assert bid.limit_price == snap(bid_raw, Side.BUY)
    assert ask.limit_price == snap(ask_raw, Side.SELL)
    assert (bid.qty, ask.qty) == (100, 100)
    assert bid.type is OrderType.LIMIT and bid.tif is TimeInForce.DAY
    # fees count: Hummingbot's fee-less t / (1 + mp) would quote higher (and lose the fees)
    assert bid.limit_price < snap(t_bid / (1 + mp), Side.BUY)
    assert ask.limit_price > snap(t_ask * (1 + mp), Side.SELL)
    # and the resting quotes clear min_profitability exactly by the strategy's own measure
    tq = Quote(T0, SYM, t_bid, 1000, t_ask, 1000, TAKER)
    prof_bid = s.profitability(Side.BUY, bid.limit_price, 100, tq, 1.0)
    prof_ask = s.profitability(Side.SELL, ask.limit_price, 100, tq, 1.0)
    assert prof_bid is not None and prof_bid >= mp - 1e-12
    assert prof_ask is not None and prof_ask >= mp - 1e-12


def test_price_for_the_size_walks_the_displayed_liquidity() -> None:
    # the taker shows 80 shares: a 100-share quote cannot be hedged; the volume factor caps the
    # size at 0.5 x 80 = 40 and the price is the taker's for 40
    s = xemm(order_size_taker_volume_factor=0.5)
    h = Two(s)
    h.quote(TAKER, T0, 100.00, 100.02, bid_size=80, ask_size=1000)
    h.quote(MAKER, T0 + MS, 99.80, 100.20, 500, 500)
    (bid,) = h.live(Side.BUY)
    (ask,) = h.live(Side.SELL)
    assert bid.qty == 40 and ask.qty == 100
    assert bid.limit_price == snap((100.00 - 0.01) / 1.001, Side.BUY)


def test_order_amount_zero_sizes_from_the_maker_portfolio() -> None:
    # (cash 100,000 + no shares) / mid 100.00 x 0.05 = 50 shares
    s = xemm(order_amount=0, order_size_portfolio_ratio_limit=0.05)
    h = Two(s)
    start_quoting(h)
    assert [o.qty for o in h.live(Side.BUY) + h.live(Side.SELL)] == [50, 50]


def test_taker_balance_factor_caps_what_can_be_hedged() -> None:
    # the taker cannot sell short and holds 60: a bid (hedged by a taker sell) is at most
    # 0.995 x 60 = 59.7 -> 59 shares; the ask (hedged by a taker buy) is not limited by it
    s = xemm(order_size_taker_balance_factor=0.995)
    h = Two(s, kw_taker={"shorting": False, "positions": {SYM: 60}})
    start_quoting(h)
    assert h.live(Side.BUY)[0].qty == 59
    assert h.live(Side.SELL)[0].qty == 100


def test_adjust_order_caps_at_one_tick_over_the_competing_top() -> None:
    s = xemm(adjust_order_enabled=True)
    h = Two(s)
    h.quote(TAKER, T0, 100.00, 100.02)
    h.quote(MAKER, T0 + MS, 99.50, 100.60, 500, 500)
    assert h.live(Side.BUY)[0].limit_price == 99.51
    assert h.live(Side.SELL)[0].limit_price == 100.59
    # the top bid is dust within top_depth_tolerance: the competition is a tick behind it
    s2 = xemm(adjust_order_enabled=True, top_depth_tolerance=200)
    h2 = Two(s2)
    h2.quote(TAKER, T0, 100.00, 100.02)
    h2.quote(MAKER, T0 + MS, 99.50, 100.60, 100, 500)
    assert h2.live(Side.BUY)[0].limit_price == 99.50
    assert h2.live(Side.SELL)[0].limit_price == 100.59


def test_quotes_never_cross_the_maker_touch() -> None:
    s = xemm()
    h = Two(s)
    h.quote(TAKER, T0, 100.00, 100.02)
    h.quote(MAKER, T0 + MS, 99.60, 99.70, 500, 500)  # the maker venue trades lower
    assert h.live(Side.BUY)[0].limit_price == 99.69  # not 99.89: one tick under its ask
    h.quote(MAKER, T0 + 2 * MS, 100.30, 100.40, 500, 500)
    h.advance(T0 + 10 * MS)
    assert h.live(Side.SELL)[0].limit_price == 100.31


# ---- hedging ------------------------------------------------------------------------------------
def test_a_maker_fill_is_hedged_on_the_taker_within_the_latency() -> None:
    latency = 20
    s = xemm()
    h = Two(s, order_ms=(latency, latency))
    start_quoting(h)
    h.advance(T0 + 30 * MS)
    (bid,) = h.live(Side.BUY)
    assert bid.status is OrderStatus.NEW and bid.limit_price == 99.89
    h.trade(MAKER, T0 + 50 * MS, 99.85, 100)  # trades through our bid: filled, as maker
    assert bid.status is OrderStatus.FILLED
    (fill,) = bid.fills
    (hedge,) = h.orders(TAKER)
    assert hedge.created_ts - fill.ts <= latency * MS + MS
    assert (hedge.side, hedge.qty, hedge.tif, hedge.type) == (
        Side.SELL, 100, TimeInForce.IOC, OrderType.LIMIT)
    assert hedge.limit_price == snap(100.00 * (1 - 0.005), Side.SELL)  # the slippage buffer
    h.advance(T0 + 100 * MS)
    assert hedge.status is OrderStatus.FILLED and hedge.avg_fill_price == 100.00
    assert h.pos(MAKER) == 100 and h.pos(TAKER) == -100
    assert s.unhedged == 0 and s.leg_events == []


def test_every_partial_fill_is_hedged_as_it_comes() -> None:
    s = xemm()
    h = Two(s)
    start_quoting(h)
    (bid,) = h.live(Side.BUY)
    h.trade(MAKER, T0 + 10 * MS, 99.89, 30)  # at our price: we are first in the queue
    h.trade(MAKER, T0 + 20 * MS, 99.89, 45)
    assert bid.filled_qty == 75 and bid.is_open
    hedges = h.orders(TAKER)
    assert [(o.side, o.qty, o.created_ts) for o in hedges] == [
        (Side.SELL, 30, T0 + 10 * MS), (Side.SELL, 45, T0 + 20 * MS)]
    assert h.pos(TAKER) == -75 and s.unhedged == 0


def _taker_lot_100() -> dict[str, Any]:
    return {"instruments": {SYM: Instrument(SYM, lot_size=100, min_qty=100)}}


def test_residue_below_the_taker_minimum_accumulates_then_is_hedged() -> None:
    s = xemm(order_amount=150)
    h = Two(s, kw_taker=_taker_lot_100())
    start_quoting(h)
    h.trade(MAKER, T0 + 10 * MS, 99.89, 30)
    assert h.orders(TAKER) == []  # 30 < the taker's 100: kept
    assert s.unhedged == 30
    assert kinds(s.leg_events) == ["residue"]
    h.trade(MAKER, T0 + 20 * MS, 99.89, 50)
    assert h.orders(TAKER) == [] and s.unhedged == 80
    h.trade(MAKER, T0 + 30 * MS, 99.89, 40)  # 120: one lot of 100 goes, 20 stay
    (hedge,) = h.orders(TAKER)
    assert (hedge.side, hedge.qty, hedge.created_ts) == (Side.SELL, 100, T0 + 30 * MS)
    assert hedge.status is OrderStatus.FILLED
    assert s.unhedged == pytest.approx(20)


def test_residue_is_hedged_rounded_up_after_the_timeout() -> None:
    s = xemm(hedge_residue_timeout_s=5.0)
    h = Two(s, kw_taker=_taker_lot_100())
    start_quoting(h)
    h.trade(MAKER, T0 + 10 * MS, 99.89, 30)
    h.advance(T0 + 4 * S)
    assert h.orders(TAKER) == []
    h.advance(T0 + 6 * S)
    (hedge,) = h.orders(TAKER)
    assert (hedge.side, hedge.qty) == (Side.SELL, 100)  # 30 rounded up to the lot
    assert hedge.created_ts == T0 + 10 * MS + 5 * S
    assert hedge.status is OrderStatus.FILLED
    assert s.unhedged == pytest.approx(-70)  # over-hedged by less than one lot
    assert kinds(s.leg_events)[:2] == ["residue", "forced"]
    # the over-hedge is not hedged back and forth
    h.advance(T0 + 60 * S)
    assert len(h.orders(TAKER)) == 1


def test_a_failed_hedge_is_retried_with_a_widening_collar() -> None:
    s = xemm(slippage_buffer=0.0005, retry_collar_ticks=2, max_hedge_retries=3)
    h = Two(s, order_ms=(0, 50))
    start_quoting(h)
    h.trade(MAKER, T0 + 10 * MS, 99.85, 100)
    first = h.orders(TAKER)[0]
    assert first.limit_price == snap(100.00 * 0.9995, Side.SELL) == 99.95
    h.quote(TAKER, T0 + 20 * MS, 99.90, 99.92)  # the bid falls away before the hedge arrives
    h.advance(T0 + 100 * MS)
    assert first.status is OrderStatus.CANCELED and first.filled_qty == 0
    # retry 1 (after 0.1 s): the current bid less the buffer, widened by 2 ticks
    h.advance(T0 + 160 * MS)
    second = h.orders(TAKER)[1]
    assert second.created_ts == T0 + 160 * MS
    assert second.limit_price == snap(99.90 * 0.9995 - 0.02, Side.SELL) == 99.84
    h.quote(TAKER, T0 + 170 * MS, 99.70, 99.72)  # away again
    h.advance(T0 + 300 * MS)
    assert second.status is OrderStatus.CANCELED
    # retry 2 (0.1 s later): 2 x 2 ticks wider; this one fills
    h.advance(T0 + 320 * MS)
    third = h.orders(TAKER)[2]
    assert third.limit_price == snap(99.70 * 0.9995 - 0.04, Side.SELL) == 99.62
    h.advance(T0 + 400 * MS)
    assert third.status is OrderStatus.FILLED
    assert h.pos(TAKER) == -100 and s.unhedged == 0
    assert kinds(s.leg_events) == ["leg_failed", "retry", "leg_failed", "retry", "hedged"]
    assert [e.retry for e in s.leg_events if e.kind is LegEventKind.RETRY] == [1, 2]


def test_quotes_are_managed_while_a_hedge_is_in_flight() -> None:
    s = xemm()
    h = Two(s, order_ms=(0, 50))
    start_quoting(h)
    (ask,) = h.live(Side.SELL)
    assert ask.limit_price == 100.14
    h.trade(MAKER, T0 + 10 * MS, 99.85, 100)
    (hedge,) = h.orders(TAKER)
    assert hedge.status is OrderStatus.PENDING_NEW
    # the taker moves up while the hedge is on its way
    h.quote(TAKER, T0 + 20 * MS, 100.10, 100.12)
    assert hedge.status is OrderStatus.PENDING_NEW
    # the ask was re-priced in place (same order, amended) and a new bid placed
    assert ask.limit_price == snap((100.12 + 0.01) * 1.001, Side.SELL) == 100.24
    assert ask.status is OrderStatus.NEW and h.live(Side.SELL) == [ask]
    (bid,) = h.live(Side.BUY)
    assert bid.created_ts <= T0 + 20 * MS
    h.advance(T0 + 100 * MS)
    assert hedge.status is OrderStatus.FILLED


def test_failing_hedges_pull_the_quotes_until_hedged() -> None:
    s = xemm(max_hedge_retries=1, hedge_retry_delay_s=0.1)
    h = Two(s, order_ms=(0, 50))
    start_quoting(h)
    h.trade(MAKER, T0 + 10 * MS, 99.85, 100)
    h.quote(TAKER, T0 + 20 * MS, 98.00, 100.02, bid_size=0)  # no bid to hedge into
    h.advance(T0 + 2 * S)
    assert s.quoting_paused
    assert h.live(Side.BUY) == [] and h.live(Side.SELL) == []
    assert "paused" in kinds(s.leg_events)
    assert s.unhedged == 100
    h.quote(TAKER, T0 + 3 * S, 99.99, 100.01)  # back
    h.advance(T0 + 5 * S)
    assert s.unhedged == 0 and h.pos(TAKER) == -100
    assert not s.quoting_paused
    assert kinds(s.leg_events)[-1] == "resumed"
    h.quote(MAKER, T0 + 6 * S, 99.80, 100.20, 500, 500)
    assert len(h.live(Side.BUY)) == 1 and len(h.live(Side.SELL)) == 1


def test_max_unhedged_notional_sizes_the_quotes() -> None:
    s = xemm(max_unhedged_notional=15_000)
    h = Two(s, order_ms=(0, 200))  # a slow taker: the hedge takes 200 ms
    start_quoting(h)
    h.trade(MAKER, T0 + 10 * MS, 99.85, 100)
    # 100 unhedged at the maker mid 100.00 = 10,000: the new quotes keep a full fill within 15,000
    assert s.exposure == pytest.approx(10_000)
    (bid,) = h.live(Side.BUY)
    (ask,) = h.live(Side.SELL)
    assert bid.qty == 50  # 100 + 50 = 15,000
    assert ask.qty == 100  # a sell offsets the 100: up to 250 would do
    # both sides fill while the first hedge is in flight: the hedges never cross each other
    h.trade(MAKER, T0 + 20 * MS, ask.limit_price or 0.0, 50)  # half our ask: 50 are now flat
    assert s.unhedged == 50
    h.advance(T0 + 500 * MS)
    assert s.unhedged == 0 and h.pos(MAKER) == 50 and h.pos(TAKER) == -50
    assert all(o.reject_reason is None for o in h.orders(TAKER))
    assert s.max_exposure <= 15_000


def test_unhedged_notional_above_the_limit_pulls_the_quotes() -> None:
    s = xemm(max_unhedged_notional=10_010)
    h = Two(s, order_ms=(0, 200))
    start_quoting(h)
    h.trade(MAKER, T0 + 10 * MS, 99.85, 100)
    assert s.exposure == pytest.approx(10_000)
    assert h.live(Side.BUY) == []  # another fill would exceed the limit: no bid
    assert len(h.live(Side.SELL)) == 1  # a sell would reduce the exposure: kept
    # the maker market rises (under our ask): 100 x 100.115 = 10,011.50 > 10,010: pulled
    h.quote(MAKER, T0 + 20 * MS, 100.10, 100.13, 500, 500)
    assert s.quoting_paused
    assert h.live(Side.SELL) == []
    assert s.leg_events[-1].kind is LegEventKind.PAUSED
    h.advance(T0 + 300 * MS)  # the hedge fills: nothing unhedged
    assert s.unhedged == 0 and s.exposure == 0
    assert not s.quoting_paused and s.leg_events[-1].kind is LegEventKind.RESUMED
    assert s.max_exposure == pytest.approx(10_011.5)
    h.quote(MAKER, T0 + 400 * MS, 99.80, 100.20, 500, 500)
    assert len(h.live(Side.BUY)) == 1 and len(h.live(Side.SELL)) == 1


# ---- keeping quotes -----------------------------------------------------------------------------
def test_unprofitable_quote_is_moved_at_once_and_drift_waits_for_anti_hysteresis() -> None:
    s = xemm(anti_hysteresis_duration=60)
    h = Two(s)
    start_quoting(h)
    (bid,) = h.live(Side.BUY)
    cid = bid.client_order_id
    assert bid.limit_price == 99.89
    # drift in our favour (the taker bid rises): moved once, then not again for 60 s
    h.quote(TAKER, T0 + S, 100.05, 100.07)
    assert bid.limit_price == snap(100.04 / 1.001, Side.BUY) == 99.94
    h.quote(TAKER, T0 + 2 * S, 100.08, 100.10)
    assert bid.limit_price == 99.94  # still within the anti-hysteresis period
    # unprofitable (the taker bid falls): moved at once, despite the period
    h.quote(TAKER, T0 + 3 * S, 99.95, 99.97)
    assert bid.limit_price == snap(99.94 / 1.001, Side.BUY) == 99.84
    assert bid.client_order_id == cid and bid.status is OrderStatus.NEW  # amended in place
    assert len(h.orders(MAKER)) == 2  # no new orders: one bid, one ask, amended
    h.quote(TAKER, T0 + 62 * S, 100.05, 100.07)
    assert bid.limit_price == 99.94


def test_passive_mode_cancels_only_below_the_threshold() -> None:
    s = xemm(active_order_canceling=False, cancel_order_threshold=0.0)
    h = Two(s)
    start_quoting(h)
    (bid,) = h.live(Side.BUY)
    # below min_profitability but above 0: kept
    h.quote(TAKER, T0 + S, 99.95, 99.97)
    assert bid.status is OrderStatus.NEW and bid.limit_price == 99.89
    # below 0: canceled (passive mode does not re-price), then quoted anew
    h.quote(TAKER, T0 + 2 * S, 99.85, 99.87)
    assert bid.status is OrderStatus.CANCELED
    h.quote(TAKER, T0 + 3 * S, 99.85, 99.87)
    (new,) = h.live(Side.BUY)
    assert new is not bid and new.limit_price == snap(99.84 / 1.001, Side.BUY)


def test_a_broker_without_replace_cancels_and_requotes() -> None:
    s = xemm(amend=False)
    h = Two(s)
    start_quoting(h)
    (bid,) = h.live(Side.BUY)
    h.quote(TAKER, T0 + S, 99.95, 99.97)
    assert bid.status is OrderStatus.CANCELED
    h.quote(TAKER, T0 + 2 * S, 99.95, 99.97)
    (new,) = h.live(Side.BUY)
    assert new.limit_price == 99.84


# ---- sessions -----------------------------------------------------------------------------------
def test_quotes_only_while_quoting_is_allowed() -> None:
    s = xemm()
    h = Two(s, start=et(2026, 11, 24, 15, 58))
    h.quote(TAKER, et(2026, 11, 24, 15, 58), 100.00, 100.02)
    h.quote(MAKER, et(2026, 11, 24, 15, 58) + MS, 99.80, 100.20, 500, 500)
    assert len(h.live(Side.BUY)) == 1
    h.advance(et(2026, 11, 24, 15, 59, 1))  # the engine's closing point: pulled
    assert h.live(Side.BUY) == [] and h.live(Side.SELL) == []
    h.quote(TAKER, et(2026, 11, 24, 15, 59, 30), 100.00, 100.02)
    assert h.live(Side.BUY) == [] and h.live(Side.SELL) == []
    # closed: nothing either
    s2 = xemm()
    h2 = Two(s2, start=et(2026, 11, 24, 8, 0))
    h2.quote(TAKER, et(2026, 11, 24, 8, 0), 100.00, 100.02)
    h2.quote(MAKER, et(2026, 11, 24, 8, 0) + MS, 99.80, 100.20, 500, 500)
    assert h2.orders(MAKER) == []


# ---- conversion ---------------------------------------------------------------------------------
def test_conversion_prices_and_hedge_quantities() -> None:
    # the maker quotes an ADR (USD) = 2 ordinary shares on the taker (in a currency at 0.5 USD)
    s = xemm(symbol=None, maker_symbol="ADR", taker_symbol="ORD",
             conversion={"rate": 0.5, "share_ratio": 2})
    h = Two(s)
    h.quote(TAKER, T0, 100.00, 100.02, symbol="ORD")  # one ADR's worth: 100.00 / 100.02 USD
    h.quote(MAKER, T0 + MS, 99.80, 100.20, 500, 500, symbol="ADR")
    quotes = {o.side: o for o in h.brokers[MAKER].open_orders("ADR")}
    # the taker fee: $0.005 x 200 ORD = 1.00 in its currency = 0.50 USD for 100 ADR: 0.005 per
    # ADR; the maker fee 0.005 per ADR
    assert quotes[Side.BUY].limit_price == snap((100.00 - 0.005 - 0.005) / 1.001, Side.BUY)
    assert quotes[Side.SELL].limit_price == snap((100.02 + 0.005 + 0.005) * 1.001, Side.SELL)
    assert quotes[Side.BUY].qty == 100
    h.trade(MAKER, T0 + 10 * MS, quotes[Side.BUY].limit_price or 0.0, 40, symbol="ADR")
    (hedge,) = h.orders(TAKER)
    assert (hedge.symbol, hedge.side, hedge.qty) == ("ORD", Side.SELL, 80)  # 40 ADR x 2
    assert h.pos(TAKER, "ORD") == -80 and h.pos(MAKER, "ADR") == 40 and s.unhedged == 0


# ---- configuration ------------------------------------------------------------------------------
def test_from_config_builds_the_params() -> None:
    s = CrossExchangeMarketMaking.from_config(
        {
            "maker_venue": MAKER,
            "taker_venue": TAKER,
            "maker_symbol": "SHOP",
            "taker_symbol": "SHOP.TO",
            "conversion": {"fx_symbol": "USDCAD", "invert": True},
            "min_profitability": 0.002,
            "order_amount": 0,
            "order_size_portfolio_ratio_limit": 0.1,
            "active_order_canceling": False,
            "cancel_order_threshold": -0.001,
            "hedge_residue_timeout_s": 10,
        },
        file="x.toml",
    )
    assert isinstance(s, CrossExchangeMarketMaking) and isinstance(s.p, XEMMParams)
    assert s.venues_used() == [MAKER, TAKER]
    assert s.symbols_used() == ["SHOP", "SHOP.TO", "USDCAD"]
    assert s.p.conversion == Conversion(fx_symbol="USDCAD", invert=True)
    assert s.p.hedge_residue_timeout_s == 10.0


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"bogus": 1}, "strategy.bogus"),
        ({"min_profitability": 1.5}, "strategy.min_profitability"),
        ({"order_amount": -1}, "strategy.order_amount"),
        ({"order_size_taker_volume_factor": 25}, "strategy.order_size_taker_volume_factor"),
        ({"order_size_taker_balance_factor": 0}, "strategy.order_size_taker_balance_factor"),
        ({"order_size_portfolio_ratio_limit": 16.67},
         "strategy.order_size_portfolio_ratio_limit"),
        ({"slippage_buffer": 5}, "strategy.slippage_buffer"),
        ({"anti_hysteresis_duration": -1}, "strategy.anti_hysteresis_duration"),
        ({"active_order_canceling": "yes"}, "strategy.active_order_canceling"),
        ({"hedge_residue_timeout_s": 0}, "strategy.hedge_residue_timeout_s"),
        ({"max_hedge_retries": 1.5}, "strategy.max_hedge_retries"),
        ({"max_unhedged_notional": -5}, "strategy.max_unhedged_notional"),
        ({"tif": "ioc"}, "strategy.tif"),
        ({"conversion": {"share_ratio": 0}}, "strategy.conversion.share_ratio"),
        ({"conversion": {"fx_venue": "nyse"}}, "strategy.conversion.fx_venue"),
        ({"fees": {"per_share": -1}}, "strategy.fees.per_share"),
        ({"taker_venue": MAKER}, "strategy.taker_venue"),
    ],
)
def test_config_errors_name_the_key(params: dict[str, Any], key: str) -> None:
    base: dict[str, Any] = {"maker_venue": MAKER, "taker_venue": TAKER, "symbol": SYM}
    base.update(params)
    with pytest.raises(ConfigError) as e:
        CrossExchangeMarketMaking.from_config(base, file="cfg.toml")
    assert e.value.key == key, str(e.value)
    assert e.value.file == "cfg.toml"
    with pytest.raises(ConfigError) as e2:
        CrossExchangeMarketMaking(**base)
    assert e2.value.key == key


def test_unknown_fx_venue_is_a_config_error_at_start() -> None:
    s = xemm(conversion={"fx_symbol": "USDCAD", "fx_venue": "fx"})
    with pytest.raises(ConfigError) as e:
        Two(s)
    assert e.value.key == "strategy.conversion.fx_venue"


def test_missing_venue_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as e:
        CrossExchangeMarketMaking.from_config({"maker_venue": MAKER, "symbol": SYM})
    assert e.value.key == "strategy.taker_venue"


# ---- the example --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def example_summary() -> dict[str, Any]:
    registry[CrossExchangeMarketMaking.kind] = CrossExchangeMarketMaking
    return tradekit.backtest(EXAMPLE).summary


def test_example_quotes_hedges_and_profits(example_summary: dict[str, Any]) -> None:
    s = example_summary
    assert s["strategy"] == "cross_exchange_market_making"
    assert s["fills"] > 50
    assert s["orders_rejected"] == 0
    assert s["net_pnl"] > 0
    assert s["max_abs_position"] <= 1000
    assert s["quote_uptime"] > 0.5
    for h in ("markout_1s", "markout_10s", "markout_60s"):
        assert s[h] is not None and math.isfinite(s[h])
    # hedged: the two venues' positions cancel out
    pos = s["final_positions"]
    assert pos["arca:AAPL"] == -pos["nyse:AAPL"]


def test_example_script_prints_the_same_summary(
    example_summary: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    runpy.run_path(str(EXAMPLE_PY), run_name="__main__")
    out = capsys.readouterr().out
    assert f"{example_summary['fills']:,}" in out
    assert f"{example_summary['net_pnl']:,}" in out


def test_restart_hedges_what_the_crash_left_unhedged() -> None:
    """A maker fill journaled, the process killed before its hedge: after the restart the
    strategy hedges it at the first taker quote (no one-legged position is left)."""
    from tradekit.enums import Liquidity as Liq
    from tradekit.model import Fill

    maker = PaperBroker(id_prefix=MAKER, fees=PER_SHARE)
    taker = PaperBroker(id_prefix=TAKER, fees=PER_SHARE)
    done = Order(f"{MAKER}-1", MAKER, SYM, Side.BUY, 100, OrderType.LIMIT, 99.0,
                 status=OrderStatus.FILLED, filled_qty=100, avg_fill_price=99.0,
                 broker_order_id="P1", created_ts=T0 - S, updated_ts=T0 - S)  # fmt: skip
    fill = Fill("m-F1", done.client_order_id, MAKER, SYM, Side.BUY, 100, 99.0, 0.5,
                Liq.MAKER, T0 - S)  # fmt: skip
    done.fills.append(fill)
    engine = Engine()
    engine.add_venue(MAKER, maker)
    engine.add_venue(TAKER, taker)
    maker.restore([done], [fill])
    strategy = xemm()
    engine.add_strategy(strategy)
    engine.restore([fill], None)
    engine.start(T0, T0 + 8 * 3600 * S)
    assert strategy.unhedged == 100
    engine.step(Quote(T0 + S, SYM, 99.0, 1000, 99.02, 1000, MAKER))
    engine.step(Quote(T0 + S, SYM, 99.0, 1000, 99.02, 1000, TAKER))
    engine.run_due(T0 + 2 * S)
    hedges = [o for o in taker.orders if o.side is Side.SELL]
    assert hedges and sum(o.filled_qty for o in hedges) == 100
    assert maker.position(SYM) + taker.position(SYM) == 0
