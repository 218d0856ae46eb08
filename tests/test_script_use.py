"""Using tradekit from a plain script: the paper broker under asyncio, timers named either way."""

from __future__ import annotations

import asyncio

from tradekit import OrderStatus, Quote, Side
from tradekit.brokers.paper import PaperBroker
from tradekit.engine import Engine
from tradekit.strategies.base import Strategy, Timer
from tradekit.testing import et


def test_paper_broker_answers_at_the_next_await_in_a_script() -> None:
    async def main() -> tuple[OrderStatus, OrderStatus, float]:
        paper = PaperBroker()
        t = et(2026, 11, 24, 10, 0)
        paper.on_quote(Quote(t, "AAPL", 190.00, 500, 190.02, 300))
        order = paper.submit_order("AAPL", Side.BUY, 100, limit_price=190.02)
        before = order.status
        await asyncio.sleep(0)
        return before, order.status, order.filled_qty

    before, after, filled = asyncio.run(main())
    assert before is OrderStatus.PENDING_NEW  # returns at once
    assert after is OrderStatus.FILLED and filled == 100  # answered at the next yield


def test_without_a_loop_the_answer_waits_for_data_or_process() -> None:
    paper = PaperBroker()
    t = et(2026, 11, 24, 10, 0)
    paper.on_quote(Quote(t, "AAPL", 190.00, 500, 190.02, 300))
    order = paper.submit_order("AAPL", Side.BUY, 100, limit_price=190.02)
    assert order.status is OrderStatus.PENDING_NEW
    paper.process()
    assert order.status is OrderStatus.FILLED


def test_set_timer_accepts_either_argument_order() -> None:
    class Timed(Strategy):
        kind = "timed"

        def on_start(self) -> None:
            self.fired: list[tuple[str, int]] = []
            self.set_timer("a", 2.0)
            self.set_timer(3.0, "b")
            self.set_timer(5.0)

        def on_timer(self, timer: Timer) -> None:
            self.fired.append((timer.name, (timer.ts - t0) // 1_000_000_000))

    t0 = et(2026, 11, 24, 10, 0)
    s = Timed()
    eng = Engine()
    eng.add_venue("v", PaperBroker(id_prefix="v"))
    eng.add_strategy(s)
    eng.run_backtest([Quote(t0 + 6_500_000_000, "AAPL", 1.0, 1, 1.01, 1, "v")], t0, None)
    assert sorted(s.fired) == [("a", 2), ("a", 4), ("a", 6), ("b", 3), ("b", 6), ("timer", 5)]
