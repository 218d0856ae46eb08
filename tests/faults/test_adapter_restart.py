"""A bot on the real Alpaca SDK dies (its process state is gone, its journal keeps what was
committed) while the broker goes on: orders fill, and one order the bot committed to its
journal never reached Alpaca. A new broker restored from the journal reconciles: the fill is
recovered, the resting order is matched, the phantom is looked up and marked lost, positions
equal the broker's, and nothing is sent twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.fakes.alpaca import AlpacaHarness
from tradekit.brokers.alpaca import AlpacaBroker
from tradekit.enums import OrderStatus, Side
from tradekit.journal import Journal, restore_brokers


async def test_alpaca_restart_from_journal(tmp_path: Path) -> None:
    path = tmp_path / "bot.journal"
    async with AlpacaHarness() as h:
        old = h.alpaca
        j = Journal(path)
        j.attach(old)
        await h.set_quote(190.00, 500, 190.02, 500)
        filled_later = old.submit_order("AAPL", Side.BUY, 10, limit_price=189.90)
        resting = old.submit_order("AAPL", Side.BUY, 10, limit_price=189.80)
        await h.settle()
        assert filled_later.status is resting.status is OrderStatus.NEW
        # the process dies: a submit committed (write-before-send) but never sent, and the
        # events still buffered are lost with it
        old._send_submit = lambda order: None  # type: ignore[method-assign]
        phantom = old.submit_order("AAPL", Side.SELL, 5, limit_price=191.0)
        j._buf.clear()
        j._db.close()
        j.closed = True
        await old.close()
        # meanwhile at Alpaca: the first order fills
        vid = h.fake.current_id(filled_later.client_order_id)
        assert vid is not None
        h.fake.fill(vid, 10, 189.90)
        orders_at_alpaca = len(h.fake.orders)

        new = AlpacaBroker(
            "KEY",
            "SECRET",
            base_url=h.fake.base_url,
            trading_stream_url=h.fake.stream_url,
            clock=h.clock,
            id_prefix="h",
            stream_backoff=(0.05, 0.5),
            poll_interval=0.1,
            backoff=(0.01, 0.1),
        )
        j2 = Journal(path)
        restore_brokers(j2.load(), [new])
        j2.attach(new)
        await new.connect()
        try:
            for _ in range(100):  # the lost order's bounded lookups
                if new.get_order(phantom.client_order_id).status is OrderStatus.LOST:
                    break
                await h.settle(0.1)
            got = {o.client_order_id: o for o in new.orders}
            assert got[filled_later.client_order_id].status is OrderStatus.FILLED
            assert got[filled_later.client_order_id].filled_qty == 10
            assert got[resting.client_order_id].status is OrderStatus.NEW
            assert got[phantom.client_order_id].status is OrderStatus.LOST
            assert new.position("AAPL") == h.fake.position("AAPL") == 10
            rep = new.last_reconciliation
            assert rep is not None and rep.reason == "connect"
            assert resting.client_order_id in rep.matched
            # nothing sent twice; new ids do not collide with the journal's
            assert len(h.fake.orders) == orders_at_alpaca
            fresh = new.submit_order("AAPL", Side.BUY, 1, limit_price=189.50)
            assert fresh.client_order_id not in got
            await new.drain(timeout=5.0)
            for _ in range(500):  # the acknowledgement comes over the stream
                if fresh.status is not OrderStatus.PENDING_NEW:
                    break
                await asyncio.sleep(0.01)
            assert fresh.status is OrderStatus.NEW
            assert len(h.fake.orders) == orders_at_alpaca + 1
        finally:
            await new.close()
            j2.close()


async def test_ibkr_restart_from_journal(tmp_path: Path) -> None:
    from tests.fakes.tws import IBKRHarness
    from tradekit.brokers.ibkr import IBKRBroker

    path = tmp_path / "bot.journal"
    async with IBKRHarness() as h:
        old = h.ibkr
        j = Journal(path)
        j.attach(old)
        await h.set_quote(190.00, 500, 190.02, 500)
        filled_later = old.submit_order("AAPL", Side.BUY, 10, limit_price=189.90)
        resting = old.submit_order("AAPL", Side.BUY, 10, limit_price=189.80)
        await h.settle()
        assert filled_later.status is resting.status is OrderStatus.NEW
        old._send_submit = lambda order: None  # type: ignore[method-assign]
        phantom = old.submit_order("AAPL", Side.SELL, 5, limit_price=191.0)
        j._buf.clear()
        j._db.close()
        j.closed = True
        await old.close()
        oid = int(filled_later.broker_order_id or 0)
        h.fake.execute(oid, 10, 189.90)
        n_orders = len(h.fake.orders)

        new = IBKRBroker(
            port=h.fake.port, clock=h.clock, id_prefix="ib", symbols=["AAPL"], client_id=7,
            reconnect_delay=0.05,
        )  # fmt: skip
        j2 = Journal(path)
        restore_brokers(j2.load(), [new])
        j2.attach(new)
        await new.connect()
        try:
            await new.sync()
            got = {o.client_order_id: o for o in new.orders}
            assert got[filled_later.client_order_id].status is OrderStatus.FILLED
            assert got[filled_later.client_order_id].filled_qty == 10
            assert got[resting.client_order_id].status is OrderStatus.NEW
            assert got[phantom.client_order_id].status is OrderStatus.LOST
            assert new.position("AAPL") == 10
            rep = new.last_reconciliation
            assert rep is not None
            assert resting.client_order_id in rep.matched
            assert phantom.client_order_id in rep.lost
            assert len(h.fake.orders) == n_orders
        finally:
            await new.close()
            j2.close()
