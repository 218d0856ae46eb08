"""Fault scenarios against the fake TWS: a disconnect with an open order (reconnect with backoff
and reconciliation), TWS restarting (nothing listening for a while), connectivity notices
1100/1101/1102, duplicate and late order statuses, a fill between a cancel request and its
confirmation, error 110 on an off-tick price that got past the local rules, and the guard that
fails a test on any ib_async decode error."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from fakes.tws import FakeTWS, IBKRHarness, IBLogGuard, commission_of

from tradekit.brokers.ibkr import IBKRBroker, ReconciliationReport
from tradekit.clock import SimClock
from tradekit.enums import OrderStatus, RejectReason
from tradekit.errors import OrderRejected
from tradekit.model import Fill, Order, Quote
from tradekit.testing import DEFAULT_START, EventRecorder


@pytest.fixture(autouse=True)
def no_decode_errors() -> Iterator[IBLogGuard]:
    with IBLogGuard() as guard:
        yield guard
    assert not guard.records, "ib_async logged decode errors:\n" + "\n".join(guard.problems())


@pytest.fixture
async def fake() -> AsyncIterator[FakeTWS]:
    async with FakeTWS(clock=SimClock(DEFAULT_START)) as f:
        f.set_quote("AAPL", 190.00, 500, 190.02, 500)
        yield f


def make(fake: FakeTWS, **kw: Any) -> IBKRBroker:
    kw.setdefault("client_id", 4)
    kw.setdefault("symbols", ["AAPL"])
    kw.setdefault("reconnect_delay", 0.05)
    kw.setdefault("reconnect_max_delay", 0.2)
    b = IBKRBroker(port=fake.port, clock=fake._clock, id_prefix="f", **kw)
    return b


def quote(b: IBKRBroker, bid: float = 190.00, ask: float = 190.02) -> None:
    b.on_quote(Quote(b.clock.now_ns(), "AAPL", bid, 500, ask, 500, b.venue))


async def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def fake_order(fake: FakeTWS, order: Order) -> Any:
    return next(o for o in fake.orders.values() if o.order_ref == order.client_order_id)


async def test_disconnect_during_open_order_reconnects_and_reconciles(fake: FakeTWS) -> None:
    async with make(fake) as b:
        rec = EventRecorder()
        b.add_listener(rec)
        quote(b)
        o = b.submit_order("AAPL", "buy", 100, limit_price=189.90)
        await b.sync()
        assert o.status is OrderStatus.NEW
        s = b.session
        assert s is not None
        fo = fake_order(fake, o)
        fake.drop_clients()  # TWS's nightly restart / a network cut
        fake.execute(fo, 40, 189.90)  # filled while nobody listens
        await wait_until(lambda: s.state != "ready")
        with pytest.raises(OrderRejected) as info:
            b.submit_order("AAPL", "buy", 10, limit_price=189.00)
        assert info.value.reason is RejectReason.BROKER
        assert f"127.0.0.1:{fake.port}" in info.value.message
        await wait_until(lambda: s.ready)
        assert s.reconnects == 1 and fake.connections == 2
        rep = b.last_reconciliation
        assert isinstance(rep, ReconciliationReport) and rep.reason == "reconnect"
        assert rep.matched == (o.client_order_id,) and len(rep.fills_recovered) == 1
        assert rep.lost == () and rep.closed == () and rep.clean
        assert rep.positions == {"AAPL": 40}
        assert o.status is OrderStatus.PARTIALLY_FILLED and o.filled_qty == 40
        assert o.fees == pytest.approx(commission_of(40, 189.90))
        assert b.position("AAPL") == 40
        assert [f.qty for f in rec.fills] == [40]
        # trading resumes, and the reconciled order is managed as before
        o2 = b.submit_order("AAPL", "buy", 10, limit_price=189.00)
        await b.sync()
        assert o2.status is OrderStatus.NEW
        fake.execute(fo, 60, 189.90)
        await b.sync()
        assert o.status is OrderStatus.FILLED and o.filled_qty == 100
        assert len(o.fills) == 2 and b.position("AAPL") == 100


async def test_tws_restart_backoff_then_reconcile(
    fake: FakeTWS, caplog: pytest.LogCaptureFixture
) -> None:
    async with make(fake) as b:
        quote(b)
        keep = b.submit_order("AAPL", "buy", 10, limit_price=189.50)
        gone = b.submit_order("AAPL", "buy", 10, limit_price=189.40)
        lost = b.submit_order("AAPL", "buy", 10, limit_price=189.30)
        await b.sync()
        s = b.session
        assert s is not None
        with caplog.at_level(logging.WARNING, "tradekit.brokers.ibkr"):
            await fake.stop()  # TWS shuts down: nothing listens
            fake._cancel(fake_order(fake, gone))  # e.g. cancelled in TWS meanwhile
            del fake.orders[(4, fake_order(fake, lost).order_id)]
            await asyncio.sleep(0.6)
            assert not s.ready
            failures = [
                r.getMessage()
                for r in caplog.records
                if r.name == "tradekit.brokers.ibkr" and "failed" in r.getMessage()
            ]
            assert len(failures) >= 3, failures
            assert "next try in 0.1 s" in caplog.text and "next try in 0.2 s" in caplog.text
            assert f"127.0.0.1:{fake.port}" in failures[0]
            await fake.start()  # back on the same port
            await wait_until(lambda: s.ready)
        rep = b.last_reconciliation
        assert rep is not None and rep.reason == "reconnect"
        assert rep.matched == (keep.client_order_id,)
        assert rep.closed == ((gone.client_order_id, "canceled"),)
        assert rep.lost == (lost.client_order_id,) and not rep.clean
        assert keep.status is OrderStatus.NEW
        assert gone.status is OrderStatus.CANCELED
        assert lost.status is OrderStatus.LOST
        assert "not found at IB" in (lost.reject_message or "") or lost.is_done


async def test_cancel_requested_while_away_is_sent_after_reconnect(fake: FakeTWS) -> None:
    async with make(fake) as b:
        quote(b)
        o = b.submit_order("AAPL", "buy", 10, limit_price=189.50)
        await b.sync()
        s = b.session
        assert s is not None
        fake.drop_clients()
        await wait_until(lambda: s.state != "ready")
        b.cancel_order(o)  # queued: cancels wait for the reconnection
        assert o.status is OrderStatus.PENDING_CANCEL
        await wait_until(lambda: s.ready)
        await b.sync()
        assert o.status is OrderStatus.CANCELED
        assert fake.requests("cancelOrder") == 1


async def test_connectivity_notices_pause_and_resume(fake: FakeTWS) -> None:
    async with make(fake) as b:
        quote(b)
        s = b.session
        assert s is not None
        fake.broadcast_error(1100)
        await b.sync()
        assert s.state == "paused"
        with pytest.raises(OrderRejected, match="paused"):
            b.submit_order("AAPL", "buy", 10, limit_price=189.00)
        fake.broadcast_error(1102)
        await wait_until(lambda: s.ready)
        assert b.last_reconciliation is not None
        assert b.last_reconciliation.reason == "1102"
        o = b.submit_order("AAPL", "buy", 10, limit_price=189.00)
        await b.sync()
        assert o.status is OrderStatus.NEW
        fake.broadcast_error(2110)
        await b.sync()
        assert s.state == "paused"
        fake.broadcast_error(1101)
        await wait_until(lambda: s.ready)
        assert b.last_reconciliation.reason == "1101"
        assert s.connects == 1, "no socket reconnect for 1100/1101/1102"


async def test_duplicate_and_late_order_statuses_are_absorbed(fake: FakeTWS) -> None:
    async with make(fake) as b:
        quote(b)
        o = b.submit_order("AAPL", "buy", 100, limit_price=189.90)
        await b.sync()
        fo = fake_order(fake, o)
        fake.execute(fo, 40, 189.90)
        await b.sync()
        rec = EventRecorder()
        b.add_listener(rec)
        for _ in range(3):
            fake.repeat_last(fo)  # execDetails + commissionReport + orderStatus again
        # an older status arriving late (Submitted with nothing filled)
        fake.send_raw(
            4, [3, fo.order_id, "Submitted", "0", "100", "0", fo.perm_id, 0, "0", 4, "", "0"]
        )
        await b.sync()
        assert rec.items == [], rec.items
        assert o.status is OrderStatus.PARTIALLY_FILLED and o.filled_qty == 40
        assert len(o.fills) == 1 and b.position("AAPL") == 40
        b.cancel_order(o)
        await b.sync()
        assert o.status is OrderStatus.CANCELED
        n = len(rec)
        fake.repeat_last(fo)
        fake.send_raw(
            4,
            [3, fo.order_id, "Submitted", "40", "60", "189.9", fo.perm_id, 0, "189.9", 4, "", "0"],
        )
        await b.sync()
        assert o.status is OrderStatus.CANCELED and len(rec) == n


async def test_fill_between_cancel_request_and_confirmation_counts(fake: FakeTWS) -> None:
    async with make(fake) as b:
        quote(b)
        o = b.submit_order("AAPL", "buy", 100, limit_price=189.90)
        await b.sync()
        rec = EventRecorder()
        b.add_listener(rec)
        fo = fake_order(fake, o)
        fake.fill_on_cancel(fo.order_id, 30)
        b.cancel_order(o)
        await b.sync()
        assert o.status is OrderStatus.CANCELED
        assert o.filled_qty == 30 and len(o.fills) == 1
        assert o.fees == pytest.approx(commission_of(30, 189.90))
        assert b.position("AAPL") == 30
        assert (await b.get_positions())["AAPL"].qty == 30
        kinds = [type(x).__name__ for x in rec.items]
        assert kinds == ["Order", "Fill", "Order", "Order"], kinds
        assert rec.statuses(o.client_order_id) == [
            OrderStatus.PENDING_CANCEL,
            OrderStatus.PENDING_CANCEL,
            OrderStatus.CANCELED,
        ]
        assert isinstance(rec.items[1], Fill) and rec.items[1].qty == 30


async def test_cancel_too_late_order_filled_first(fake: FakeTWS) -> None:
    async with make(fake) as b:
        quote(b)
        o = b.submit_order("AAPL", "buy", 100, limit_price=189.90)
        await b.sync()
        fo = fake_order(fake, o)
        fake.fill_on_cancel(fo.order_id, 100)  # the whole order fills before the cancel lands
        b.cancel_order(o)
        await b.sync()
        assert o.status is OrderStatus.FILLED and o.filled_qty == 100
        assert b.position("AAPL") == 100


async def test_error_110_on_off_tick_price_past_local_rules() -> None:
    async with IBKRHarness(client_id=8) as h:
        rec = EventRecorder()
        h.broker.add_listener(rec)
        o = h.submit_unchecked("buy", 100, 190.005)
        await h.settle()
        assert o.status is OrderStatus.REJECTED
        assert o.reject_reason is RejectReason.TICK_SIZE
        assert "minimum price variation" in (o.reject_message or "")
        assert "IB error 110" in (o.reject_message or "")
        assert rec.statuses(o.client_order_id) == [OrderStatus.REJECTED]
        assert h.fake.requests("placeOrder") == 1 and not h.fake.orders
        # the same price through the front door is refused locally, nothing sent
        with pytest.raises(OrderRejected) as info:
            h.broker.submit_order("AAPL", "buy", 100, limit_price=190.005)
        assert info.value.reason is RejectReason.TICK_SIZE
        assert h.fake.requests("placeOrder") == 1


async def test_fill_before_acknowledgement(fake: FakeTWS) -> None:
    async with make(fake) as b:
        quote(b)
        rec = EventRecorder()
        b.add_listener(rec)
        fake.fill_before_ack(25)
        o = b.submit_order("AAPL", "buy", 100, limit_price=189.90)
        await b.sync()
        assert o.status is OrderStatus.PARTIALLY_FILLED and o.filled_qty == 25
        assert o.broker_order_id == str(fake_order(fake, o).order_id)
        # the fill first (PARTIALLY_FILLED), then the late acknowledgement brings the id
        assert [type(x).__name__ for x in rec.items] == ["Fill", "Order", "Order"]
        assert rec.statuses(o.client_order_id) == [OrderStatus.PARTIALLY_FILLED] * 2


async def test_guard_catches_decode_errors(fake: FakeTWS, no_decode_errors: IBLogGuard) -> None:
    async with make(fake) as b:
        quote(b)
        o = b.submit_order("AAPL", "buy", 100, limit_price=189.90)
        await b.sync()
        fo = fake_order(fake, o)
        full = fake._open_order_fields(fo, 176)
        fake.send_raw(4, full[:60])  # a truncated openOrder
        await b.sync()
        assert any("Error handling fields" in p for p in no_decode_errors.problems())
        no_decode_errors.records.clear()  # expected here; any other test would fail
