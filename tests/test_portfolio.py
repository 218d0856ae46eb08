"""Portfolio accounting from fills: average cost, realized and unrealized PnL, flips, fees, cash,
starting inventory whose basis is the first mark."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradekit.brokers.paper import PaperBroker
from tradekit.enums import Liquidity, OrderStatus, Side
from tradekit.model import Fill, Quote
from tradekit.portfolio import Portfolio
from tradekit.timeutil import to_ns

SYM = "AAPL"
T0 = to_ns("2026-11-24T10:00:00-05:00")

_n = 0


def fill(side: Side | str, qty: float, price: float, fee: float = 0.0, sym: str = SYM) -> Fill:
    global _n
    _n += 1
    return Fill(f"F{_n}", f"C{_n}", "paper", sym, Side(side), float(qty), float(price), fee,
                Liquidity.TAKER, T0 + _n)


def approx(x: float) -> object:
    return pytest.approx(x, rel=1e-9, abs=1e-9)


class TestAverageCost:
    def test_adds_average_the_cost(self) -> None:
        p = Portfolio(cash=100_000)
        p.apply(fill("buy", 100, 10.0))
        p.apply(fill("buy", 300, 12.0))
        pos = p.position(SYM)
        assert pos.qty == 400
        assert pos.avg_price == approx((100 * 10.0 + 300 * 12.0) / 400)  # 11.5
        assert pos.realized_pnl == 0
        assert p.cash == approx(100_000 - 1000 - 3600)

    def test_short_adds_average_the_cost(self) -> None:
        p = Portfolio()
        p.apply(fill("sell", 100, 20.0))
        p.apply(fill("sell", 100, 22.0))
        pos = p.position(SYM)
        assert pos.qty == -200  # signed: negative is short
        assert pos.avg_price == approx(21.0)
        assert p.cash == approx(4200.0)

    def test_partial_close_realizes_at_the_average(self) -> None:
        p = Portfolio(cash=10_000)
        p.apply(fill("buy", 100, 10.0))
        p.apply(fill("buy", 100, 12.0))  # avg 11
        p.apply(fill("sell", 50, 15.0))
        pos = p.position(SYM)
        assert pos.qty == 150
        assert pos.avg_price == approx(11.0)  # unchanged by a reduction
        assert pos.realized_pnl == approx(50 * (15.0 - 11.0))
        assert p.realized_pnl == approx(200.0)
        p.apply(fill("sell", 150, 10.0))
        assert p.qty(SYM) == 0
        assert p.realized_pnl == approx(200.0 + 150 * (10.0 - 11.0))
        assert p.unrealized_pnl() == approx(0.0)
        assert SYM not in p.positions()  # flat positions are left out by default
        assert SYM in p.positions(include_flat=True)

    def test_short_cover_realizes(self) -> None:
        p = Portfolio()
        p.apply(fill("sell", 100, 20.0))
        p.apply(fill("buy", 40, 18.0))
        assert p.qty(SYM) == -60
        assert p.position(SYM).avg_price == approx(20.0)
        assert p.realized_pnl == approx(40 * 2.0)

    def test_flip_long_to_short(self) -> None:
        p = Portfolio(cash=10_000)
        p.apply(fill("buy", 100, 10.0))
        p.apply(fill("sell", 250, 12.0))
        pos = p.position(SYM)
        assert pos.qty == -150
        assert pos.avg_price == approx(12.0)  # the rest opens at the fill price
        assert pos.realized_pnl == approx(100 * 2.0)  # only the closed part
        p.mark(SYM, 11.0)
        assert p.unrealized_pnl() == approx(-150 * (11.0 - 12.0))
        assert p.cash == approx(10_000 - 1000 + 3000)

    def test_flip_short_to_long(self) -> None:
        p = Portfolio()
        p.apply(fill("sell", 100, 10.0))
        p.apply(fill("buy", 130, 9.0))
        pos = p.position(SYM)
        assert pos.qty == 30 and pos.avg_price == approx(9.0)
        assert pos.realized_pnl == approx(100 * 1.0)

    def test_symbols_are_separate(self) -> None:
        p = Portfolio()
        p.apply(fill("buy", 10, 100.0))
        p.apply(fill("sell", 5, 50.0, sym="MSFT"))
        assert p.qty(SYM) == 10 and p.qty("MSFT") == -5
        assert p.position("MSFT").avg_price == approx(50.0)
        assert set(p.positions()) == {SYM, "MSFT"}
        assert p.qty("NONE") == 0


class TestFeesCashEquity:
    def test_fees_reduce_cash_and_net_pnl(self) -> None:
        p = Portfolio(cash=10_000)
        p.apply(fill("buy", 100, 10.0, fee=1.5))
        p.apply(fill("sell", 100, 11.0, fee=2.5))
        assert p.fees == approx(4.0)
        assert p.realized_pnl == approx(100.0)  # realized is before fees
        assert p.net_pnl() == approx(96.0)
        assert p.cash == approx(10_000 - 1000 - 1.5 + 1100 - 2.5)
        assert p.equity() == approx(p.cash)

    def test_rebate_is_a_negative_fee(self) -> None:
        p = Portfolio(cash=0)
        p.apply(fill("buy", 100, 10.0, fee=-0.2))
        assert p.fees == approx(-0.2)
        assert p.cash == approx(-1000 + 0.2)

    def test_equity_is_cash_plus_market_value(self) -> None:
        p = Portfolio(cash=50_000)
        p.apply(fill("buy", 100, 190.0, fee=1.0))
        p.apply(fill("sell", 50, 400.0, fee=1.0, sym="MSFT"))
        p.mark(SYM, 195.0)
        p.mark("MSFT", 390.0)
        mv = 100 * 195.0 - 50 * 390.0
        assert p.market_value() == approx(mv)
        assert p.equity() == approx(p.cash + mv)
        assert p.unrealized_pnl() == approx(100 * 5.0 + (-50) * (390.0 - 400.0))
        assert p.net_pnl() == approx(p.equity() - p.start_cash)

    def test_unmarked_position_is_valued_at_its_fill(self) -> None:
        p = Portfolio(cash=1000)
        p.apply(fill("buy", 10, 20.0))
        assert p.unrealized_pnl() == approx(0.0)
        assert p.equity() == approx(1000.0)


class TestStartingInventory:
    def test_basis_from_the_first_mark(self) -> None:
        p = Portfolio(cash=1000, positions={SYM: 100})
        assert p.qty(SYM) == 100
        p.mark(SYM, 190.0)
        assert p.position(SYM).avg_price == approx(190.0)
        assert p.unrealized_pnl() == approx(0.0)
        assert p.equity() == approx(1000 + 100 * 190.0)
        p.mark(SYM, 192.0)  # later marks move the PnL, not the basis
        assert p.position(SYM).avg_price == approx(190.0)
        assert p.unrealized_pnl() == approx(200.0)
        assert p.net_pnl() == approx(200.0)
        p.apply(fill("sell", 100, 193.0))
        assert p.realized_pnl == approx(300.0)
        assert p.cash == approx(1000 + 19_300)

    def test_short_inventory(self) -> None:
        p = Portfolio(positions={SYM: -50})
        p.mark(SYM, 100.0)
        p.mark(SYM, 98.0)
        assert p.position(SYM).avg_price == approx(100.0)
        assert p.unrealized_pnl() == approx(100.0)

    def test_set_position_with_a_known_basis(self) -> None:
        p = Portfolio()
        p.set_position(SYM, 10, avg_price=50.0)
        p.mark(SYM, 55.0)
        assert p.position(SYM).avg_price == approx(50.0)
        assert p.unrealized_pnl() == approx(50.0)

    def test_paper_broker_inventory(self) -> None:
        b = PaperBroker(positions={SYM: 200}, cash=10_000)
        assert b.position(SYM) == 200
        b.on_quote(Quote(T0, SYM, 190.00, 500, 190.02, 500))
        assert b.portfolio.position(SYM).avg_price == approx(190.01)
        assert b.portfolio.net_pnl() == approx(0.0)
        assert b.portfolio.equity() == approx(10_000 + 200 * 190.01)
        b.on_quote(Quote(T0 + 10**9, SYM, 191.00, 500, 191.02, 500))
        assert b.portfolio.unrealized_pnl() == approx(200 * 1.0)
        o = b.submit_order(SYM, Side.SELL, 200, limit_price=191.00)
        b.process()
        assert o.status is OrderStatus.FILLED
        assert b.position(SYM) == 0
        assert b.portfolio.realized_pnl == approx(200 * (191.00 - 190.01))


# ---- the accounting identity on random fill sequences ------------------------------------------
fills_st = st.lists(
    st.tuples(
        st.sampled_from(["buy", "sell"]),
        st.integers(min_value=1, max_value=500),
        st.integers(min_value=100, max_value=100_000),  # price in cents
        st.integers(min_value=-50, max_value=500),  # fee in cents
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(
    fills=fills_st,
    mark_cents=st.integers(min_value=100, max_value=100_000),
    start_qty=st.sampled_from([0, 0, 0, 100, -100]),
)
def test_accounting_identity(
    fills: list[tuple[str, int, int, int]], mark_cents: int, start_qty: int
) -> None:
    start_cash = 1_000_000.0
    p = Portfolio(cash=start_cash)
    first_px = fills[0][2] / 100
    if start_qty:
        p.set_position(SYM, float(start_qty))
        p.mark(SYM, first_px)  # basis of the starting inventory
    signed = float(start_qty)
    fees = 0.0
    for side, qty, px, fee in fills:
        p.apply(fill(side, qty, px / 100, fee / 100))
        signed += qty if side == "buy" else -qty
        fees += fee / 100
    mark = mark_cents / 100
    p.mark(SYM, mark)
    assert p.qty(SYM) == signed
    assert p.fees == pytest.approx(fees, rel=1e-9, abs=1e-9)
    lhs = p.cash + p.qty(SYM) * mark - start_cash - start_qty * first_px
    rhs = p.realized_pnl + p.unrealized_pnl() - p.fees
    scale = max(1.0, abs(lhs), abs(rhs), sum(q * px / 100 for _, q, px, _ in fills))
    assert math.isclose(lhs, rhs, rel_tol=0, abs_tol=1e-6 * scale), (lhs, rhs)
    assert p.net_pnl() == pytest.approx(rhs, rel=1e-9, abs=1e-9)
    assert p.equity() == pytest.approx(p.cash + p.qty(SYM) * mark, rel=1e-9, abs=1e-6)
    if p.qty(SYM) == 0:
        assert p.unrealized_pnl() == pytest.approx(0.0, abs=1e-6)
