"""PureMarketMaking against Hummingbot's semantics (reference section 1.3), scripted quote by
quote through the Engine and the PaperBroker."""

from __future__ import annotations

import math
import random
import runpy
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from test_pmm import MS, SYM, T0, Harness, S, pmm

from tradekit.brokers.paper import PaperBroker
from tradekit.engine import Engine
from tradekit.enums import Liquidity, OrderStatus, Side
from tradekit.model import MarketStatus, Quote
from tradekit.testing import et

EXAMPLE_PY = Path(__file__).resolve().parents[1] / "examples" / "pure_market_making.py"


def _prices(h: Harness, side: Side) -> list[float]:
    return [o.limit_price for o in h.live(side) if o.limit_price is not None]


def _on_tick(px: float, tick: str = "0.01") -> bool:
    return Decimal(repr(px)) % Decimal(tick) == 0


# ---- hanging orders ---------------------------------------------------------------------------
def test_hanging_ask_lives_until_the_reference_moves_beyond_cancel_pct() -> None:
    s = pmm(
        bid_spread=0.003,
        ask_spread=0.001,
        hanging_orders_enabled=True,
        hanging_orders_cancel_pct=0.01,
        order_refresh_time=0,
        filled_order_delay=0,
    )
    h = Harness(s)
    h.quote(T0, 100.00, 100.01)  # mid 100.005: bid 99.705015 -> 99.70, ask 100.11
    assert h.book() == {Side.BUY: [(99.70, 100.0)], Side.SELL: [(100.11, 100.0)]}
    (bid,), (ask,) = h.live(Side.BUY), h.live(Side.SELL)
    assert ask.created_ts == T0

    # the level-0 bid fills completely: its paired ask hangs, a new ask slot is quoted beside it
    h.quote(T0 + S, 99.60, 99.70)  # mid 99.65: new bid 99.35105 -> 99.35, ask 99.74965 -> 99.75
    assert bid.status is OrderStatus.FILLED
    assert ask.status is OrderStatus.NEW and ask.limit_price == 100.11
    assert _prices(h, Side.SELL) == [99.75, 100.11]
    assert _prices(h, Side.BUY) == [99.35]

    # the mid drifts (within 1 % of 100.11): the hanging ask is never re-priced
    for i, (b, a) in enumerate(((99.39, 99.41), (99.19, 99.21)), start=2):
        h.quote(T0 + i * S, b, a)
        assert ask.status is OrderStatus.NEW and ask.limit_price == 100.11, (b, a)
        assert ask in h.live(Side.SELL)
        assert len(h.live(Side.SELL)) == 2
        assert len(h.live(Side.BUY)) == 1
    # the normal slots did follow the mid 99.20: 99.2992 -> 99.30 and 98.9024 -> 98.90
    assert _prices(h, Side.SELL) == [99.30, 100.11]
    assert _prices(h, Side.BUY) == [98.90]
    assert h.broker.position(SYM) == 100  # nothing else traded

    # the reference moves > 1 % away (|100.11 - 99.00| / 99.00 = 1.12 %): cancelled now
    t_cancel = T0 + 4 * S
    h.quote(t_cancel, 98.99, 99.01)
    assert ask.status is OrderStatus.CANCELED
    assert ask.done_ts == t_cancel
    assert _prices(h, Side.SELL) == [99.10]  # 99.099 -> 99.10: the normal slot only
    h.quote(T0 + 5 * S, 99.59, 99.61)  # and it does not come back
    assert len(h.live(Side.SELL)) == 1


def test_without_hanging_orders_the_paired_ask_is_repriced() -> None:
    s = pmm(bid_spread=0.001, ask_spread=0.001, order_refresh_time=0, filled_order_delay=0)
    h = Harness(s)
    h.quote(T0, 100.00, 100.01)
    (ask,) = h.live(Side.SELL)
    h.quote(T0 + S, 99.80, 99.90)
    assert _prices(h, Side.SELL) == [99.95]
    assert ask.limit_price == 99.95  # the same order, re-priced in place


# ---- ping-pong --------------------------------------------------------------------------------
def test_ping_pong_alternates_buy_sell_buy() -> None:
    s = pmm(
        bid_spread=0.001,
        ask_spread=0.001,
        ping_pong_enabled=True,
        order_refresh_time=0,
        filled_order_delay=0,
    )
    h = Harness(s)
    h.quote(T0, 100.00, 100.01)
    assert h.book() == {Side.BUY: [(99.90, 100.0)], Side.SELL: [(100.11, 100.0)]}
    h.quote(T0 + S, 99.80, 99.90)  # our bid fills completely
    assert h.broker.position(SYM) == 100
    for i in range(2, 6):  # no bid until a sell fills
        h.quote(T0 + i * S, 99.80 + 0.01 * i, 99.90 + 0.01 * i)
        assert h.live(Side.BUY) == [], i
        assert len(h.live(Side.SELL)) == 1, i
    ask = h.live(Side.SELL)[0]
    assert ask.limit_price is not None
    h.quote(T0 + 6 * S, ask.limit_price, ask.limit_price + 0.10)  # the bid comes up: ask fills
    assert ask.status is OrderStatus.FILLED and h.broker.position(SYM) == 0
    h.quote(T0 + 7 * S, 100.00, 100.01)  # balanced again: both sides
    assert h.book() == {Side.BUY: [(99.90, 100.0)], Side.SELL: [(100.11, 100.0)]}


# ---- order optimization -----------------------------------------------------------------------
def test_order_optimization_jumps_to_one_tick_above_the_best_bid() -> None:
    s = pmm(bid_spread=0.0005, ask_spread=0.0005, order_optimization_enabled=True)
    h = Harness(s)
    # mid 100.11: proposed bid 100.059945 -> 100.05, ask 100.160055 -> 100.17
    h.quote(T0, 100.00, 100.22, 500, 500)
    # the bid never sits more than a tick above 100.00 x 500; the ask joins one tick under 100.22
    assert _prices(h, Side.BUY) == [100.01]
    assert _prices(h, Side.SELL) == [100.21]


def test_order_optimization_without_it_stays_at_the_proposal() -> None:
    s = pmm(bid_spread=0.0005, ask_spread=0.0005)
    h = Harness(s)
    h.quote(T0, 100.00, 100.22, 500, 500)
    assert _prices(h, Side.BUY) == [100.05]
    assert _prices(h, Side.SELL) == [100.17]


def test_order_optimization_skips_dust_and_never_raises_a_bid() -> None:
    s = pmm(
        bid_spread=0.0005,
        ask_spread=0.0005,
        order_optimization_enabled=True,
        bid_order_optimization_depth=100,
        ask_order_optimization_depth=100,
        order_refresh_time=0,
    )
    h = Harness(s)
    # 50 shares of dust at 100.00 and 100.22: the competition is one tick behind each
    h.quote(T0, 100.00, 100.22, 50, 50)
    assert _prices(h, Side.BUY) == [100.00]
    assert _prices(h, Side.SELL) == [100.22]
    # a proposal already below the touch is left where it is (the optimization only lowers)
    s2 = pmm(bid_spread=0.002, ask_spread=0.002, order_optimization_enabled=True)
    h2 = Harness(s2)
    h2.quote(T0, 100.00, 100.01)  # 99.804990 -> 99.80, 100.205010 -> 100.21
    assert _prices(h2, Side.BUY) == [99.80]
    assert _prices(h2, Side.SELL) == [100.21]


# ---- price bands ------------------------------------------------------------------------------
def test_static_price_ceiling_and_floor() -> None:
    s = pmm(
        bid_spread=0.01,
        ask_spread=0.01,
        price_ceiling=100.50,
        price_floor=99.50,
        order_refresh_time=0,
        filled_order_delay=0,
    )
    h = Harness(s)
    h.quote(T0, 100.00, 100.01)  # mid 100.005: 99.00495 -> 99.00, 101.00505 -> 101.01
    assert h.book() == {Side.BUY: [(99.00, 100.0)], Side.SELL: [(101.01, 100.0)]}
    h.quote(T0 + S, 100.49, 100.51)  # mid 100.50: at the ceiling, no bids
    assert h.live(Side.BUY) == []
    assert _prices(h, Side.SELL) == [101.51]  # 101.505 -> 101.51
    h.quote(T0 + 2 * S, 100.40, 100.42)  # below the ceiling again
    assert _prices(h, Side.BUY) == [99.40]  # 99.4059 -> 99.40
    h.quote(T0 + 3 * S, 99.49, 99.51)  # mid 99.50: at the floor, no asks
    assert h.live(Side.SELL) == []
    assert _prices(h, Side.BUY) == [98.50]  # 98.505 -> 98.50
    h.quote(T0 + 4 * S, 99.50, 99.52)  # above the floor: asks again
    assert _prices(h, Side.SELL) == [100.51]  # 99.51 * 1.01 = 100.5051 -> 100.51
    assert h.broker.position(SYM) == 0


def test_moving_price_band_drops_bids_and_reanchors() -> None:
    s = pmm(
        bid_spread=0.01,
        ask_spread=0.02,
        moving_price_band_enabled=True,
        price_ceiling_pct=0.01,
        price_floor_pct=-0.01,
        price_band_refresh_time=60,
        order_refresh_time=0,
        filled_order_delay=0,
    )
    h = Harness(s)
    h.quote(T0, 99.99, 100.01)  # anchored at 100: band 99 .. 101
    assert h.book() == {Side.BUY: [(99.00, 100.0)], Side.SELL: [(102.00, 100.0)]}
    h.quote(T0 + 10 * S, 101.00, 101.02)  # mid 101.01 >= 101: bids dropped
    assert h.live(Side.BUY) == []
    assert len(h.live(Side.SELL)) == 1
    h.quote(T0 + 59 * S, 101.00, 101.02)  # the band has not re-anchored yet
    assert h.live(Side.BUY) == []
    h.quote(T0 + 60 * S, 101.00, 101.02)  # re-anchored at 101.01: band 99.9999 .. 102.0201
    assert _prices(h, Side.BUY) == [99.99]  # 99.9999 -> 99.99
    h.quote(T0 + 70 * S, 99.98, 100.00)  # mid 99.99 <= floor 99.9999: asks dropped
    assert h.live(Side.SELL) == []
    assert len(h.live(Side.BUY)) == 1
    assert h.broker.position(SYM) == 0


# ---- price sources ----------------------------------------------------------------------------
def test_price_source_best_bid() -> None:
    s = pmm(bid_spread=0.001, ask_spread=0.002, price_source="best_bid")
    h = Harness(s)
    h.quote(T0, 100.00, 100.10)  # ref 100.00 (not the mid 100.05)
    assert h.book() == {Side.BUY: [(99.90, 100.0)], Side.SELL: [(100.20, 100.0)]}


def test_price_source_last_trade_after_a_print() -> None:
    s = pmm(bid_spread=0.001, ask_spread=0.001, price_source="last_trade", order_refresh_time=0)
    h = Harness(s)
    h.quote(T0, 99.50, 100.60)  # no print yet: the mid 100.05
    assert h.book() == {Side.BUY: [(99.94, 100.0)], Side.SELL: [(100.16, 100.0)]}
    h.trade(T0 + S, 100.10, 10)  # between our quotes: no fill
    h.quote(T0 + 2 * S, 99.50, 100.60)  # ref 100.10: 99.9999 -> 99.99, 100.2001 -> 100.21
    assert h.book() == {Side.BUY: [(99.99, 100.0)], Side.SELL: [(100.21, 100.0)]}
    assert h.broker.position(SYM) == 0


def test_price_source_last_own_trade() -> None:
    s = pmm(
        bid_spread=0.001,
        ask_spread=0.001,
        price_source="last_own_trade",
        order_refresh_time=0,
        filled_order_delay=0,
    )
    h = Harness(s)
    h.quote(T0, 100.00, 100.01)
    (bid,) = h.live(Side.BUY)
    h.quote(T0 + S, 99.80, 99.90)  # our bid fills completely at 99.90
    assert bid.status is OrderStatus.FILLED
    # ref 99.90 (the mid would be 99.85: 99.75 / 99.95)
    assert h.book() == {Side.BUY: [(99.80, 100.0)], Side.SELL: [(100.00, 100.0)]}


def test_price_source_last_own_trade_ignores_partial_fills() -> None:
    s = pmm(
        bid_spread=0.001,
        ask_spread=0.001,
        price_source="last_own_trade",
        order_refresh_time=0,
        filled_order_delay=0,
    )
    h = Harness(s)
    h.quote(T0, 100.00, 100.01)
    (bid,) = h.live(Side.BUY)
    h.quote(T0 + S, 99.80, 99.90, ask_size=30)  # 30 of our 100-share bid fill at 99.90
    assert bid.filled_qty == 30 and bid.status is OrderStatus.PARTIALLY_FILLED
    h.quote(T0 + 2 * S, 99.84, 99.86)  # no order completely filled yet: the mid 99.85
    assert _prices(h, Side.SELL) == [99.95]  # 99.94985 -> 99.95 (99.90 would give 100.00)


def test_price_source_inventory_cost_never_sells_below_average_cost() -> None:
    s = pmm(
        bid_spread=0.02,
        ask_spread=0.001,
        price_source="inventory_cost",
        order_refresh_time=0,
        filled_order_delay=0,
    )
    h = Harness(s)
    h.quote(T0, 100.00, 100.01)  # bid 98.0049 -> 98.00
    assert _prices(h, Side.BUY) == [98.00]
    h.quote(T0 + S, 97.90, 98.00)  # long 100 at 98.00
    pos = h.broker.portfolio.position(SYM)
    assert (pos.qty, pos.avg_price) == (100, 98.00)
    h.quote(T0 + 2 * S, 96.50, 96.52)  # mid 96.51: bids from the mid, asks from the cost
    assert _prices(h, Side.BUY) == [94.57]  # 94.5798 -> 94.57
    assert _prices(h, Side.SELL) == [98.10]  # 98.00 * 1.001 = 98.098 -> 98.10
    assert h.broker.position(SYM) == 100
    h.quote(T0 + 3 * S, 98.05, 98.07)  # mid 98.06 above the cost: asks from the mid again
    assert _prices(h, Side.SELL) == [98.16]  # 98.15806 -> 98.16
    assert h.broker.position(SYM) == 100


def test_price_source_venue_takes_the_reference_from_another_book() -> None:
    s = pmm(
        venue="paper",
        price_source_venue="ref",
        bid_spread=0.001,
        ask_spread=0.001,
        order_refresh_time=0,
    )
    eng = Engine(hours="regular", cancel_before_close_s=60)
    own = PaperBroker(id_prefix="p")
    ref = PaperBroker(id_prefix="r")
    eng.add_venue("paper", own)
    eng.add_venue("ref", ref)
    eng.add_strategy(s)
    eng.start(T0, T0 + 24 * 3600 * S)

    def q(ts: int, venue: str, bid: float, ask: float) -> None:
        eng.step(Quote(ts, SYM, bid, 500, ask, 500, venue))
        eng.run_due(ts)

    def book() -> dict[Side, list[float]]:
        return {
            side: sorted(o.limit_price or 0 for o in own.open_orders(SYM) if o.side is side)
            for side in (Side.BUY, Side.SELL)
        }

    q(T0, "paper", 100.00, 101.00)
    assert book() == {Side.BUY: [], Side.SELL: []}  # no reference book yet
    q(T0 + S, "ref", 100.50, 100.52)  # ref mid 100.51: 100.40949 -> 100.40, 100.61051 -> 100.62
    assert book() == {Side.BUY: [100.40], Side.SELL: [100.62]}
    q(T0 + 2 * S, "paper", 100.00, 101.00)  # our own book moving does not move the reference
    assert book() == {Side.BUY: [100.40], Side.SELL: [100.62]}
    q(T0 + 3 * S, "ref", 100.70, 100.72)  # mid 100.71: 100.60929 -> 100.60, 100.81071 -> 100.82
    assert book() == {Side.BUY: [100.60], Side.SELL: [100.82]}
    assert ref.open_orders(SYM) == []  # orders go to the maker venue only


# ---- order override ---------------------------------------------------------------------------
def test_order_override_custom_orders() -> None:
    s = pmm(
        order_override={
            "near_buy": ["buy", 0.001, 20],
            "far_buy": ["buy", 0.003, 40],
            "ask": ["sell", 0.002, 25],
        },
        order_levels=3,  # ignored with an override
        order_amount=999,
    )
    h = Harness(s)
    h.quote(T0, 100.00, 100.01)  # mid 100.005
    assert h.book() == {
        Side.BUY: [(99.70, 40.0), (99.90, 20.0)],  # 99.704985 -> 99.70, 99.904995 -> 99.90
        Side.SELL: [(100.21, 25.0)],  # 100.20501 -> 100.21
    }


# ---- transaction costs ------------------------------------------------------------------------
def test_add_transaction_costs_widens_by_the_maker_fee_fraction() -> None:
    kw: dict[str, Any] = dict(bid_spread=0.001, ask_spread=0.001)
    plain = Harness(pmm(**kw), rules="ibkr")
    plain.quote(T0, 100.00, 100.01)
    assert plain.book() == {Side.BUY: [(99.90, 100.0)], Side.SELL: [(100.11, 100.0)]}
    h = Harness(pmm(add_transaction_costs=True, **kw), rules="ibkr")
    h.quote(T0, 100.00, 100.01)
    fees = h.broker.fees
    raw_bid, raw_ask = 100.005 * 0.999, 100.005 * 1.001
    f_buy = float(fees.fee(Side.BUY, 100, raw_bid, Liquidity.MAKER)) / (100 * raw_bid)
    f_sell = float(fees.fee(Side.SELL, 100, raw_ask, Liquidity.MAKER)) / (100 * raw_ask)
    # IBKR fixed: $0.005/share, $1 minimum -> $1 on 100 shares = 0.01 %; sells add SEC and TAF
    assert f_buy == pytest.approx(1.0 / (100 * raw_bid))
    assert f_sell > f_buy
    bid = math.floor(round(raw_bid * (1 - f_buy) * 100, 6)) / 100
    ask = math.ceil(round(raw_ask * (1 + f_sell) * 100, 6)) / 100
    assert (bid, ask) == (99.89, 100.12)  # widened from 99.90 / 100.11
    assert h.book() == {Side.BUY: [(bid, 100.0)], Side.SELL: [(ask, 100.0)]}


# ---- inventory target (Hummingbot's formula) --------------------------------------------------
@pytest.mark.parametrize(
    ("shares", "cash", "bid_qty", "ask_qty"),
    [
        (60, 4000.0, 5.0, 15.0),  # Hummingbot's worked example: bid x0.5, ask x1.5
        (75, 2500.0, None, 20.0),  # at the band's edge: bid x0, ask x2
        (50, 5000.0, 10.0, 10.0),  # on target
        (40, 6000.0, 15.0, 5.0),  # below target: bid x1.5, ask x0.5
        (25, 7500.0, 20.0, None),  # at the lower edge: bid x2, ask x0
    ],
)
def test_inventory_target_base_pct_worked_example(
    shares: float, cash: float, bid_qty: float | None, ask_qty: float | None
) -> None:
    s = pmm(
        bid_spread=0.001,
        ask_spread=0.001,
        order_amount=10,
        order_levels=1,
        inventory_skew_enabled=True,
        inventory_target_base_pct=0.5,
        inventory_range_multiplier=1.0,
    )
    h = Harness(s, positions={SYM: shares}, cash=cash)
    h.quote(T0, 99.99, 100.01)  # p = 100
    assert [o.qty for o in h.live(Side.BUY)] == ([] if bid_qty is None else [bid_qty])
    assert [o.qty for o in h.live(Side.SELL)] == ([] if ask_qty is None else [ask_qty])


# ---- end-of-day inventory target --------------------------------------------------------------
@pytest.mark.parametrize(("pos", "side_left"), [(100, Side.SELL), (-100, Side.BUY)])
def test_eod_inventory_target_quotes_only_toward_the_target(pos: float, side_left: Side) -> None:
    s = pmm(
        bid_spread=0.001,
        ask_spread=0.001,
        eod_inventory_target=0,
        eod_window_s=900,
        order_refresh_time=0,
    )
    start = et(2026, 11, 24, 15, 40)
    h = Harness(s, start=start, positions={SYM: pos})
    h.quote(start, 100.00, 100.01)  # 20 min before the close: both sides
    assert len(h.live(Side.BUY)) == 1 and len(h.live(Side.SELL)) == 1
    h.quote(et(2026, 11, 24, 15, 44, 59), 100.00, 100.01)  # 15:01 before: still both
    assert len(h.live(Side.BUY)) == 1 and len(h.live(Side.SELL)) == 1
    h.quote(et(2026, 11, 24, 15, 45, 1), 100.00, 100.01)  # inside the window
    assert len(h.live(side_left)) == 1
    assert h.live(side_left.opposite) == []
    h.quote(et(2026, 11, 24, 15, 50), 100.02, 100.03)
    assert len(h.live(side_left)) == 1
    assert h.live(side_left.opposite) == []


def test_eod_inventory_target_at_the_target_quotes_nothing() -> None:
    s = pmm(bid_spread=0.001, ask_spread=0.001, eod_inventory_target=0, eod_window_s=900)
    start = et(2026, 11, 24, 15, 50)
    h = Harness(s, start=start)
    h.quote(start, 100.00, 100.01)
    assert h.live() == []


# ---- halts ------------------------------------------------------------------------------------
def test_halt_pulls_the_quotes_until_resumed() -> None:
    s = pmm(bid_spread=0.001, ask_spread=0.001, order_refresh_time=0, filled_order_delay=0)
    h = Harness(s)
    h.quote(T0, 100.00, 100.01)
    placed = h.live()
    assert len(placed) == 2
    t_halt = T0 + S
    h.engine.step(MarketStatus(t_halt, SYM, True, reason="LUDP", venue="paper"))
    h.engine.run_due(t_halt)
    # pulled at the halt itself, not at the next quote
    assert all(o.status is OrderStatus.CANCELED for o in placed), placed
    assert all(o.done_ts == t_halt for o in placed)
    n = len(h.broker.orders)
    for i in range(2, 6):
        h.quote(T0 + i * S, 100.00 + 0.01 * i, 100.01 + 0.01 * i)
        assert h.live() == [], i
    assert len(h.broker.orders) == n  # nothing placed while halted
    assert s.stats.rejected == 0
    t_resume = T0 + 6 * S
    h.engine.step(MarketStatus(t_resume, SYM, False, venue="paper"))
    h.engine.run_due(t_resume)
    h.quote(T0 + 7 * S, 100.00, 100.01)
    assert h.book() == {Side.BUY: [(99.90, 100.0)], Side.SELL: [(100.11, 100.0)]}


def test_halt_pulls_at_the_next_quote_at_the_latest() -> None:
    s = pmm(bid_spread=0.001, ask_spread=0.001, order_refresh_time=0, filled_order_delay=0)
    h = Harness(s)
    h.quote(T0, 100.00, 100.01)
    placed = h.live()
    h.engine.step(MarketStatus(T0 + S, SYM, True, venue="paper"))
    h.engine.run_due(T0 + S)
    h.quote(T0 + 2 * S, 100.00, 100.01)
    assert h.live() == []
    assert all(o.status is OrderStatus.CANCELED for o in placed)
    assert all(o.done_ts is not None and o.done_ts <= T0 + 2 * S for o in placed)
    n = len(h.broker.orders)
    h.quote(T0 + 2 * S + 500 * MS, 100.02, 100.03)
    assert h.live() == [] and len(h.broker.orders) == n  # nothing placed while halted
    assert s.stats.rejected == 0
    h.engine.step(MarketStatus(T0 + 3 * S, SYM, False, venue="paper"))
    h.engine.run_due(T0 + 3 * S)
    h.quote(T0 + 4 * S, 100.00, 100.01)
    assert h.book() == {Side.BUY: [(99.90, 100.0)], Side.SELL: [(100.11, 100.0)]}


# ---- ticks and the own spread after every transform -------------------------------------------
def test_zero_spreads_keep_the_bid_a_tick_below_the_ask() -> None:
    s = pmm(bid_spread=0.0, ask_spread=0.0, order_optimization_enabled=True)
    h = Harness(s)
    h.quote(T0, 100.02, 100.04)  # mid 100.03: both sides want 100.03
    assert h.book() == {Side.BUY: [(100.02, 100.0)], Side.SELL: [(100.03, 100.0)]}
    assert s.stats.rejected == 0


@pytest.mark.parametrize("seed", [5, 6])
def test_every_price_on_the_tick_and_bids_below_asks(seed: int) -> None:
    s = pmm(
        bid_spread=0.00037,
        ask_spread=0.00041,
        order_levels=3,
        order_level_spread=0.00013,
        order_amount=7,
        order_level_amount=3,
        order_optimization_enabled=True,
        bid_order_optimization_depth=30,
        ask_order_optimization_depth=30,
        add_transaction_costs=True,
        inventory_skew_enabled=True,
        inventory_price_skew=1.5,
        price_source="inventory_cost",
        order_refresh_time=0,
        filled_order_delay=0,
    )
    h = Harness(s, rules="ibkr", positions={SYM: 40})
    rng = random.Random(seed)
    mid, t, checks = 57.0, T0, 0
    for _ in range(600):
        mid = max(5.0, mid + rng.choice((-0.03, -0.01, 0.0, 0.01, 0.03)))
        bid = round(mid - 0.01 * rng.randint(0, 2), 2)
        ask = round(bid + 0.01 * rng.randint(1, 4), 2)
        t += rng.randint(50, 700) * MS
        h.quote(t, bid, ask, rng.choice((10, 40, 300)), rng.choice((10, 40, 300)))
        if rng.random() < 0.2:
            h.trade(t + MS, rng.choice((bid, ask)), 20)
        bids, asks = _prices(h, Side.BUY), _prices(h, Side.SELL)
        for px in bids + asks:
            assert _on_tick(px), (t, px)
        if bids and asks:
            checks += 1
            assert max(bids) < min(asks), (t, h.live())
    assert checks > 200
    assert s.stats.rejected == 0


# ---- the example script -----------------------------------------------------------------------
def test_example_script_runs_and_writes_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    monkeypatch.setenv("TRADEKIT_EXAMPLE_END", "2026-11-24T15:00:00Z")  # 30 minutes
    monkeypatch.setattr("sys.argv", [str(EXAMPLE_PY), str(out)])
    runpy.run_path(str(EXAMPLE_PY), run_name="__main__")
    text = capsys.readouterr().out
    assert "pure_market_making" in text
    assert "net_pnl" in text and "fills" in text
    fills_line = next(ln for ln in text.splitlines() if ln.split()[:1] == ["fills"])
    assert int(fills_line.split()[1].replace(",", "")) > 0
    assert (out / "summary.json").is_file()
    assert (out / "fills.csv").is_file()
    assert len((out / "fills.csv").read_text(encoding="utf-8").splitlines()) > 1
