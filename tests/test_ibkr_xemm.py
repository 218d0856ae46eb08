"""CrossExchangeMarketMaking through the real IBKR adapter against the fake TWS: two
``IBKRBroker`` routes on one fake (ARCA as client 21: the maker; ISLAND as client 22: the
taker), a two-venue ``SyntheticMarket`` pushed into the fake's per-exchange books and stepped
through the engine on a simulated clock shared by the engine, the brokers and the fake. Every
maker fill is hedged on ISLAND; no decode error, no pacing error; every client message the fake
read is recorded per connection. The run machinery is ``bench/ibkr_xemm.py`` (which also gives
the longer window's figures)."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tradekit.brokers.ibkr import IBKRBroker
from tradekit.clock import SimClock
from tradekit.enums import Liquidity, OrderStatus, Side
from tradekit.model import Quote
from tradekit.testing import DEFAULT_START

ROOT = Path(__file__).resolve().parents[1]


def _bench() -> ModuleType:
    name = "bench_ibkr_xemm"
    mod = sys.modules.get(name)
    if mod is None:
        spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "ibkr_xemm.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return mod


bx = _bench()

#: market time played (the first minutes after the open): enough for a few dozen maker fills
SIM_SECONDS = 60.0


@pytest.fixture
async def played() -> Any:
    async with bx.XemmRun(seed=7) as run:
        await run.play(wall_s=60.0, sim_s=SIM_SECONDS)
    return run


async def test_every_maker_fill_is_hedged_on_island(played: Any) -> None:
    run, st = played, played.stats
    assert st.sim_end_ns - st.sim_start_ns >= 0.9 * SIM_SECONDS * 1e9, bx.fmt_report(st)
    assert st.settle_timeouts == 0
    # maker fills happened on ARCA, as a maker (liquidity added), at client 21's orders
    maker = [f for f in run.engine.fills if f.venue == bx.MAKER]
    hedges = [f for f in run.engine.fills if f.venue == bx.TAKER]
    assert len(maker) >= 5, bx.fmt_report(st)
    assert all(f.liquidity is Liquidity.MAKER for f in maker)
    assert all(f.liquidity is Liquidity.TAKER for f in hedges)
    # every maker fill hedged: the opposite side, the same shares in all (a taker lot is one
    # share at IB, so the residue allowance is below one share)
    signed = sum((1 if f.side is Side.BUY else -1) * f.qty for f in run.engine.fills)
    assert abs(signed) < 1.0, bx.fmt_report(st)
    assert abs(run.strategy.unhedged) < 1.0
    assert sum(f.qty for f in hedges) == pytest.approx(sum(f.qty for f in maker))
    assert run.strategy.maker_fills == len(maker)
    assert not run.strategy.hedges_in_flight
    # hedges went to ISLAND (client 22), the maker's orders to ARCA (client 21)
    by_client: dict[int, set[str]] = {}
    for o in run.fake.orders.values():
        by_client.setdefault(o.client_id, set()).add(o.exchange)
    assert by_client == {21: {"ARCA"}, 22: {"ISLAND"}}
    island = [ex for ex in run.fake.executions if ex.order.client_id == 22]
    assert island and all(ex.order.exchange == "ISLAND" for ex in island)
    assert sum(ex.shares for ex in island) == pytest.approx(sum(f.qty for f in hedges))
    assert all(o.tif == "IOC" for o in run.fake.orders.values() if o.client_id == 22)
    # after the stop nothing rests at the fake
    assert not [o for o in run.fake.orders.values() if o.is_open]
    assert all(
        o.status in (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED)
        for b in run.brokers.values()
        for o in b.orders
    )


async def test_no_decode_or_pacing_errors(played: Any) -> None:
    st = played.stats
    assert st.decode_problems == []
    assert st.pacing_errors == 0, bx.fmt_report(st)
    assert 100 not in st.ib_errors
    # the adapter paces each connection below TWS's 50/s
    assert all(n <= 45 for n in st.peak_wall_1s_by_conn.values()), st.peak_wall_1s_by_conn


async def test_client_messages_are_recorded_per_connection(played: Any) -> None:
    st, fake = played.stats, played.fake
    # both connections talked, and every message has a wall and a simulated time
    assert set(fake.arrivals) >= {21, 22}
    for cid in (21, 22):
        rows = fake.arrivals[cid]
        assert rows and all(isinstance(m, int) and w > 0 and s > 0 for m, w, s in rows)
    assert st.run_msgs == sum(st.msgs_by_conn.values())
    assert st.msgs_by_type["placeOrder"] > 0
    assert st.quote_updates > 0 and st.msgs_per_quote_update > 0
    # orders and their changes are one message each: the run costs about one message per
    # maker quote update, plus one per hedge
    hedge_msgs = st.msgs_by_conn["ISLAND(22)"]
    assert hedge_msgs >= st.hedge_orders
    assert st.msgs_by_conn["ARCA(21)"] >= st.quote_updates
    assert st.peak_wall_1s > 0 and st.peak_sim_1s > 0
    print(bx.fmt_report(st))


async def test_a_modify_waiting_for_the_pacer_meets_a_fill(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = SimClock(DEFAULT_START)
    fake = bx.RecordingTWS(clock=clock)
    await fake.start()
    try:
        fake.set_quote("AAPL", 190.00, 500, 190.02, 500, "ARCA")
        b = IBKRBroker(
            port=fake.port, client_id=23, route="ARCA", clock=clock, symbols=["AAPL"], id_prefix="r"
        )
        async with b:
            b.on_quote(Quote(clock.now_ns(), "AAPL", 190.00, 500, 190.02, 500, b.venue))
            o = b.submit_order("AAPL", "buy", 100, limit_price=189.90)
            await b.sync()
            assert o.status is OrderStatus.NEW
            s = b.session
            assert s is not None
            s.pacer.record(s.pacer.rate)  # this second's message budget is spent
            with caplog.at_level(logging.WARNING, logger="tradekit.brokers.ibkr"):
                b.replace_order(o, limit_price=189.91)
                await asyncio.sleep(0.05)  # the modify job checked the trade, waits for the pacer
                fo = next(x for x in fake.orders.values() if x.order_ref == o.client_order_id)
                fake.execute(fo, 100, 189.90)  # filled meanwhile
                await b.sync()
            assert o.status is OrderStatus.FILLED
            failed = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
            assert failed == [], failed
    finally:
        await fake.stop()
