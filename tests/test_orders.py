"""The order manager: creation, the transition table, and the absorption of duplicate, late and
out-of-order broker events (unit tests and a property test over random event sequences)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tradekit.enums import Liquidity, OrderStatus, OrderType, RejectReason, Side, TimeInForce
from tradekit.errors import OrderRejected
from tradekit.model import Fill, Order
from tradekit.orders import TRANSITIONS, ClientOrderIds, OrderManager, can_transition
from tradekit.portfolio import Portfolio

S = OrderStatus
DONE = [s for s in OrderStatus if s.is_done]


class Harness:
    """An OrderManager with a recording listener and a portfolio fed by its fill hook."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.snapshots: list[OrderStatus] = []  # the status of each Order update when told
        self.om = OrderManager("v", self._emit, ids=ClientOrderIds("t"))
        self.portfolio = Portfolio(1_000_000.0)
        self.om.on_fill_hook = lambda fill, order: self.portfolio.apply(fill)
        self._n = 0

    def _emit(self, obj: Any) -> None:
        self.events.append(obj)
        if isinstance(obj, Order):
            self.snapshots.append(obj.status)

    def order(self, qty: float = 100, side: Side = Side.BUY, price: float | None = 10.0,
              ts: int = 1) -> Order:
        o = self.om.create("AAPL", side, qty, type=None, limit_price=price, stop_price=None,
                           tif=TimeInForce.DAY, extended_hours=False, client_order_id=None, ts=ts)
        self.om.register(o)
        return o

    def fill(self, o: Order, qty: float, price: float = 10.0, fill_id: str | None = None,
             ts: int = 5, fee: float = 0.1) -> Order | None:
        if fill_id is None:
            self._n += 1
            fill_id = f"F{self._n}"
        return self.om.on_fill(Fill(fill_id, o.client_order_id, "v", o.symbol, o.side, qty,
                                    price, fee, Liquidity.MAKER, ts))

    def statuses(self) -> list[OrderStatus]:
        return list(self.snapshots)


@pytest.fixture
def h() -> Harness:
    return Harness()


# ---- creation ---------------------------------------------------------------------------------
class TestCreate:
    def create(self, om: OrderManager, **kw: Any) -> Order:
        args: dict[str, Any] = dict(type=None, limit_price=None, stop_price=None,
                                    tif=TimeInForce.DAY, extended_hours=False,
                                    client_order_id=None, ts=7)
        side, qty = kw.pop("side", "buy"), kw.pop("qty", 10)
        args.update(kw)
        return om.create("AAPL", side, qty, **args)

    def test_type_inferred_from_prices(self, h: Harness) -> None:
        om = h.om
        assert self.create(om, limit_price=10.0).type is OrderType.LIMIT
        assert self.create(om).type is OrderType.MARKET
        assert self.create(om, stop_price=9.0).type is OrderType.STOP
        assert self.create(om, stop_price=9.0, limit_price=8.9).type is OrderType.STOP_LIMIT
        assert self.create(om, type="limit", limit_price=10.0).type is OrderType.LIMIT

    def test_handle_fields(self, h: Harness) -> None:
        o = self.create(h.om, limit_price=10, tif="gtc", extended_hours=1)
        assert o.status is S.PENDING_NEW and o.created_ts == o.updated_ts == 7
        assert o.limit_price == 10.0 and isinstance(o.limit_price, float)
        assert o.qty == 10.0 and isinstance(o.qty, float)
        assert o.tif is TimeInForce.GTC and o.extended_hours is True
        assert o.side is Side.BUY and o.venue == "v"
        assert o.client_order_id not in h.om.orders, "create does not register"

    @pytest.mark.parametrize(
        ("kw", "reason"),
        [
            ({"side": "long"}, RejectReason.INVALID),
            ({"type": "iceberg"}, RejectReason.ORDER_TYPE),
            ({"tif": "forever"}, RejectReason.ORDER_TYPE),
            ({"qty": "10"}, RejectReason.INVALID),
            ({"qty": True}, RejectReason.INVALID),
            ({"limit_price": "10.0"}, RejectReason.INVALID),
        ],
    )
    def test_wrong_kinds_refused(self, h: Harness, kw: dict[str, Any], reason: RejectReason
                                 ) -> None:
        with pytest.raises(OrderRejected) as info:
            self.create(h.om, **kw)
        assert info.value.reason is reason

    def test_duplicate_client_order_id(self, h: Harness) -> None:
        o = self.create(h.om, client_order_id="mine")
        h.om.register(o)
        with pytest.raises(OrderRejected) as info:
            self.create(h.om, client_order_id="mine")
        assert info.value.reason is RejectReason.DUPLICATE_ID and "mine" in info.value.message

    def test_client_order_ids(self) -> None:
        ids = ClientOrderIds("run")
        assert [ids(), ids(), ids()] == ["run-1", "run-2", "run-3"]
        a, b = ClientOrderIds(), ClientOrderIds()
        assert a.prefix != b.prefix and a.prefix.startswith("tk")
        assert ClientOrderIds("x", start=41)() == "x-42"

    def test_reject_local_records_without_reentering_listeners(self, h: Harness) -> None:
        o = self.create(h.om, limit_price=10.0)
        h.om.reject_local(o, OrderRejected(RejectReason.TICK_SIZE, "off tick"))
        assert o.status is S.REJECTED and o.reject_reason is RejectReason.TICK_SIZE
        assert o.reject_message == "off tick" and o.done_ts == 7
        assert h.om.get(o.client_order_id) is o and o.client_order_id not in h.om.open
        # the caller holds the OrderRejected; a listener ordering again would recurse
        assert h.events == []


# ---- the transition table ----------------------------------------------------------------------
class TestTable:
    def test_done_statuses_only_leave_from_lost(self) -> None:
        for src, _dst in TRANSITIONS:
            if src.is_done:
                assert src is S.LOST

    def test_lost_can_be_found_again(self) -> None:
        for dst in (S.NEW, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED, S.REJECTED):
            assert can_transition(S.LOST, dst)

    def test_nothing_goes_back_to_pending_new(self) -> None:
        assert not any(dst is S.PENDING_NEW for _, dst in TRANSITIONS)

    def test_selected_rows(self) -> None:
        assert can_transition(S.PENDING_NEW, S.FILLED)  # a fill before the ack
        assert can_transition(S.PENDING_CANCEL, S.FILLED)  # filled before the cancel got there
        assert not can_transition(S.PENDING_CANCEL, S.NEW)  # a late ack is not an answer
        assert not can_transition(S.CANCELED, S.NEW)
        assert not can_transition(S.FILLED, S.CANCELED)
        assert not can_transition(S.PARTIALLY_FILLED, S.NEW)


# ---- events -----------------------------------------------------------------------------------
class TestAck:
    def test_ack(self, h: Harness) -> None:
        o = h.order()
        assert h.om.on_accepted(o.client_order_id, "B1", 3) is o
        assert o.status is S.NEW and o.broker_order_id == "B1" and o.accepted_ts == 3
        assert o.updated_ts == 3 and h.om.by_broker_id("B1") is o
        assert h.events == [o]

    def test_duplicate_ack_is_silent(self, h: Harness) -> None:
        o = h.order()
        h.om.on_accepted(o.client_order_id, "B1", 3)
        h.om.on_accepted(o.client_order_id, "B1", 4)
        h.om.on_status(o.client_order_id, S.NEW, 5, broker_order_id="B1")
        assert len(h.events) == 1 and o.accepted_ts == 3

    def test_ack_found_by_broker_id(self, h: Harness) -> None:
        o = h.order()
        h.om.on_accepted(o.client_order_id, "B1", 3)
        assert h.om.on_status(None, S.CANCELED, 4, broker_order_id="B1") is o
        assert o.status is S.CANCELED

    def test_unknown_order_kept_as_orphan(self, h: Harness) -> None:
        assert h.om.on_accepted("nope", "B9", 3) is None
        assert h.om.on_status("nope", S.CANCELED, 3) is None
        assert h.om.on_fill(Fill("F", "nope", "v", "AAPL", Side.BUY, 1, 1.0, 0.0,
                                 Liquidity.MAKER, 3)) is None
        assert [k for k, _ in h.om.orphans] == ["accepted", "status", "fill"]
        assert h.events == [] and h.portfolio.qty("AAPL") == 0

    def test_late_ack_after_cancel_is_absorbed(self, h: Harness) -> None:
        o = h.order()
        h.om.on_status(o.client_order_id, S.CANCELED, 3)
        n = len(h.events)
        h.om.on_accepted(o.client_order_id, "B1", 4)
        h.om.on_status(o.client_order_id, S.NEW, 5)
        assert o.status is S.CANCELED and o.client_order_id not in h.om.open
        assert o.broker_order_id == "B1"  # the id is still worth knowing
        assert o.done_ts == 3
        assert h.statuses()[n:] == [S.CANCELED]  # only the id change was told

    def test_late_ack_does_not_revert_a_replaced_id(self, h: Harness) -> None:
        o = h.order()
        h.om.on_accepted(o.client_order_id, "B1", 2)
        h.om.request_replace(o, 200, 10.5, 3)
        h.om.on_replaced(o.client_order_id, 4, broker_order_id="B2", old_broker_order_id="B1")
        assert o.broker_order_id == "B2"
        h.om.on_accepted(o.client_order_id, "B1", 5)
        h.om.on_status(o.client_order_id, S.NEW, 6, broker_order_id="B1")
        assert o.broker_order_id == "B2"
        assert h.om.by_broker_id("B1") is o and h.om.by_broker_id("B2") is o

    def test_reject_with_reason(self, h: Harness) -> None:
        o = h.order()
        h.om.on_status(o.client_order_id, S.REJECTED, 3, reason=RejectReason.SHORTING,
                       message="not borrowable")
        assert o.status is S.REJECTED and o.reject_reason is RejectReason.SHORTING
        assert o.reject_message == "not borrowable" and o.accepted_ts is None
        o2 = h.order()
        h.om.on_status(o2.client_order_id, S.REJECTED, 3)
        assert o2.reject_reason is RejectReason.BROKER


class TestFills:
    def test_partial_then_full(self, h: Harness) -> None:
        o = h.order(100)
        h.om.on_accepted(o.client_order_id, "B1", 2)
        h.fill(o, 40, 10.0, ts=3)
        assert o.status is S.PARTIALLY_FILLED and o.filled_qty == 40
        h.fill(o, 60, 10.5, ts=4, fee=0.2)
        assert o.status is S.FILLED and o.filled_qty == 100 and o.done_ts == 4
        assert o.avg_fill_price == pytest.approx((40 * 10.0 + 60 * 10.5) / 100)
        assert o.fees == pytest.approx(0.3) and len(o.fills) == 2
        assert o.client_order_id not in h.om.open
        assert h.portfolio.qty("AAPL") == 100
        kinds = [type(e).__name__ for e in h.events]
        assert kinds == ["Order", "Fill", "Order", "Fill", "Order"]

    def test_duplicate_fill_absorbed(self, h: Harness) -> None:
        o = h.order(100)
        h.fill(o, 40, fill_id="X")
        n = len(h.events)
        assert h.fill(o, 40, fill_id="X") is None
        assert o.filled_qty == 40 and len(o.fills) == 1 and len(h.events) == n
        assert h.portfolio.qty("AAPL") == 40

    def test_fill_before_ack(self, h: Harness) -> None:
        o = h.order(100)
        h.fill(o, 30, ts=2)
        assert o.status is S.PARTIALLY_FILLED and o.accepted_ts == 2
        h.om.on_accepted(o.client_order_id, "B1", 3)
        assert o.status is S.PARTIALLY_FILLED and o.broker_order_id == "B1"
        h.om.on_status(o.client_order_id, S.NEW, 4)
        assert o.status is S.PARTIALLY_FILLED

    def test_full_fill_before_ack(self, h: Harness) -> None:
        o = h.order(100)
        h.fill(o, 100, ts=2)
        h.om.on_accepted(o.client_order_id, "B1", 3)
        assert o.status is S.FILLED and o.broker_order_id == "B1"

    def test_fill_after_cancel_request_counts(self, h: Harness) -> None:
        o = h.order(100)
        h.om.on_accepted(o.client_order_id, "B1", 2)
        assert h.om.request_cancel(o, 3) is True
        assert o.status is S.PENDING_CANCEL
        h.fill(o, 25, ts=4)
        assert o.status is S.PENDING_CANCEL and o.filled_qty == 25
        h.om.on_status(o.client_order_id, S.CANCELED, 5)
        assert o.status is S.CANCELED and o.filled_qty == 25
        assert h.portfolio.qty("AAPL") == 25

    def test_fill_after_cancel_confirmation_counts(self, h: Harness) -> None:
        o = h.order(100)
        h.om.on_status(o.client_order_id, S.CANCELED, 3)
        h.fill(o, 25, ts=4)
        assert o.status is S.CANCELED and o.filled_qty == 25
        assert h.portfolio.qty("AAPL") == 25
        h.fill(o, 75, ts=5)  # it traded in full after all
        assert o.status is S.FILLED and o.client_order_id not in h.om.open

    def test_fill_completing_while_cancel_pending(self, h: Harness) -> None:
        o = h.order(100)
        h.om.request_cancel(o, 2)
        h.fill(o, 100, ts=3)
        assert o.status is S.FILLED
        assert h.om.on_cancel_rejected(o.client_order_id, 4) is o
        h.om.on_status(o.client_order_id, S.CANCELED, 5)
        assert o.status is S.FILLED

    def test_sell_fills_reduce_the_position(self, h: Harness) -> None:
        b = h.order(100, Side.BUY)
        h.fill(b, 100, 10.0)
        s = h.order(150, Side.SELL)
        h.fill(s, 150, 11.0)
        assert h.portfolio.qty("AAPL") == -50
        assert h.portfolio.realized_pnl == pytest.approx(100.0)


class TestCancel:
    def test_request_cancel(self, h: Harness) -> None:
        o = h.order()
        assert h.om.request_cancel(o, 2) is True
        assert h.om.request_cancel(o, 3) is False, "already asked"
        h.om.on_status(o.client_order_id, S.CANCELED, 4)
        assert h.om.request_cancel(o, 5) is False, "done"
        assert h.statuses() == [S.PENDING_CANCEL, S.CANCELED]

    def test_cancel_rejected_goes_back_to_working(self, h: Harness) -> None:
        o = h.order()
        h.om.on_accepted(o.client_order_id, "B1", 2)
        h.fill(o, 10)
        h.om.request_cancel(o, 3)
        h.om.on_cancel_rejected(o.client_order_id, 4, "too late")
        assert o.status is S.PARTIALLY_FILLED and o.client_order_id in h.om.open
        p = h.order()
        h.om.request_cancel(p, 3)
        h.om.on_cancel_rejected(p.client_order_id, 4)
        assert p.status is S.NEW

    def test_late_working_status_while_cancel_pending(self, h: Harness) -> None:
        o = h.order()
        h.om.on_accepted(o.client_order_id, "B1", 2)
        h.om.request_cancel(o, 3)
        h.om.on_status(o.client_order_id, S.NEW, 4)
        h.om.on_status(o.client_order_id, S.PARTIALLY_FILLED, 4)
        assert o.status is S.PENDING_CANCEL


class TestReplace:
    def test_replace_confirmed(self, h: Harness) -> None:
        o = h.order(100, price=10.0)
        h.om.on_accepted(o.client_order_id, "B1", 2)
        cid = o.client_order_id
        h.om.request_replace(o, 150, 10.5, 3)
        assert o.status is S.PENDING_REPLACE and o.qty == 100 and o.limit_price == 10.0
        assert h.om.pending_replace(cid) == (150, 10.5)
        h.om.on_replaced(None, 4, broker_order_id="B2", old_broker_order_id="B1")
        assert o.client_order_id == cid and o.status is S.NEW
        assert (o.qty, o.limit_price, o.broker_order_id) == (150, 10.5, "B2")
        assert h.om.pending_replace(cid) is None and h.om.by_broker_id("B2") is o

    def test_replace_rejected_keeps_old_values(self, h: Harness) -> None:
        o = h.order(100, price=10.0)
        h.om.on_accepted(o.client_order_id, "B1", 2)
        h.fill(o, 10)
        h.om.request_replace(o, 150, 10.5, 3)
        h.om.on_replace_rejected(o.client_order_id, 4, "no")
        assert o.status is S.PARTIALLY_FILLED and (o.qty, o.limit_price) == (100, 10.0)
        assert h.om.pending_replace(o.client_order_id) is None

    def test_replace_down_to_the_filled_qty_fills(self, h: Harness) -> None:
        o = h.order(100)
        h.om.on_accepted(o.client_order_id, "B1", 2)
        h.om.request_replace(o, 60, 10.0, 3)
        h.fill(o, 60, ts=4)  # filled meanwhile
        h.om.on_replaced(o.client_order_id, 5)
        assert o.status is S.FILLED and o.qty == 60 and o.client_order_id not in h.om.open

    def test_late_replace_confirmation_after_done(self, h: Harness) -> None:
        o = h.order(100, price=10.0)
        h.om.on_accepted(o.client_order_id, "B1", 2)
        h.om.request_replace(o, 150, 10.5, 3)
        h.om.on_status(o.client_order_id, S.CANCELED, 4)
        h.om.on_replaced(o.client_order_id, 5, broker_order_id="B2")
        assert o.status is S.CANCELED and o.qty == 100, "a done order does not change"

    def test_cancel_while_replace_pending(self, h: Harness) -> None:
        o = h.order(100)
        h.om.on_accepted(o.client_order_id, "B1", 2)
        h.om.request_replace(o, 150, 10.5, 3)
        h.om.request_cancel(o, 4)
        h.om.on_replaced(o.client_order_id, 5, broker_order_id="B2")
        assert o.status is S.PENDING_CANCEL and o.qty == 150
        h.om.on_status(o.client_order_id, S.CANCELED, 6)
        assert o.status is S.CANCELED


class TestLost:
    def test_lost_order_found_again(self, h: Harness) -> None:
        o = h.order(100)
        h.om.on_accepted(o.client_order_id, "B1", 2)
        h.om.on_status(o.client_order_id, S.LOST, 3)
        assert o.status is S.LOST and o.is_done and o.done_ts == 3
        assert o.client_order_id not in h.om.open
        h.om.on_status(o.client_order_id, S.NEW, 4, broker_order_id="B1")
        assert o.status is S.NEW and o.client_order_id in h.om.open
        assert o.done_ts is None and o.updated_ts == 4

    def test_lost_order_that_traded(self, h: Harness) -> None:
        o = h.order(100)
        h.om.on_accepted(o.client_order_id, "B1", 2)
        h.om.on_status(o.client_order_id, S.LOST, 3)
        h.fill(o, 40, ts=4)
        assert o.status is S.PARTIALLY_FILLED and o.client_order_id in h.om.open
        h.om.on_status(o.client_order_id, S.CANCELED, 5)
        assert o.status is S.CANCELED and o.filled_qty == 40

    def test_lost_order_canceled(self, h: Harness) -> None:
        o = h.order(100)
        h.om.on_status(o.client_order_id, S.LOST, 3)
        h.om.on_status(o.client_order_id, S.CANCELED, 4)
        assert o.status is S.CANCELED and o.done_ts == 4


def test_adopt(h: Harness) -> None:
    o = Order("ext-1", "v", "AAPL", Side.SELL, 10, OrderType.LIMIT, limit_price=11.0,
              status=S.NEW, broker_order_id="B7")
    h.om.adopt(o)
    assert h.om.get("ext-1") is o and h.om.by_broker_id("B7") is o
    assert h.om.open_orders("AAPL") == [o] and h.om.open_orders("MSFT") == []
    h.fill(o, 10, 11.0)
    assert o.status is S.FILLED and h.portfolio.qty("AAPL") == -10


# ---- property: random event sequences never corrupt an order ------------------------------------
QTY = 100.0
POOL = [("F1", 10.0, 10.0), ("F2", 25.0, 10.1), ("F3", 5.0, 9.9), ("F4", 40.0, 10.2),
        ("F5", 20.0, 10.0)]  # 100 shares in all: the pool can fill the order exactly

_events = st.one_of(
    st.sampled_from([("ack",), ("cancel_request",), ("cancel_rejected",), ("replaced",),
                     ("replace_rejected",), ("repeat",)]),
    st.tuples(st.just("status"), st.sampled_from([s for s in OrderStatus
                                                  if s is not S.PENDING_NEW])),
    st.tuples(st.just("fill"), st.integers(0, len(POOL) - 1)),
    st.tuples(st.just("replace_request"), st.sampled_from([50.0, 80.0, 100.0, 120.0])),
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(_events, max_size=40), st.sampled_from([Side.BUY, Side.SELL]))
# known hard cases, always run: a late ack after a replace, a lost order found again or filled,
# fills before the ack and after a cancel, duplicated fills and statuses
@example([("ack",), ("replace_request", 120.0), ("replaced",), ("ack",)], Side.BUY)
@example([("ack",), ("status", S.LOST), ("ack",), ("fill", 0), ("repeat",)], Side.SELL)
@example([("status", S.LOST), ("fill", 3), ("status", S.NEW)], Side.BUY)
@example([("fill", 1), ("ack",), ("cancel_request",), ("fill", 2), ("repeat",),
          ("status", S.CANCELED), ("fill", 3), ("repeat",), ("ack",)], Side.BUY)
@example([("ack",), ("replace_request", 50.0), ("fill", 3), ("fill", 1), ("replaced",),
          ("replaced",), ("status", S.NEW)], Side.SELL)
def test_random_event_sequences_never_corrupt_state(events: list[tuple[Any, ...]], side: Side
                                                    ) -> None:
    h = Harness()
    om = h.om
    o = h.order(QTY, side)
    cid = o.client_order_id
    applied: dict[str, tuple[float, float]] = {}  # distinct fills that reached the order
    newest_id = 0  # the venue's newest order id number (B1 on ack, B2.. on replaces)
    next_id = 1
    ts = 1
    last: tuple[Any, ...] | None = None
    prev_status = o.status
    prev_updated = o.updated_ts
    for ev in events:
        if ev[0] == "repeat":
            if last is None:
                continue
            ev = last
        last = ev
        ts += 1
        kind = ev[0]
        if kind == "ack":
            om.on_accepted(cid, "B1", ts)
            newest_id = max(newest_id, 1)
        elif kind == "status":
            om.on_status(cid, ev[1], ts)
        elif kind == "fill":
            fid, qty, price = POOL[ev[1]]
            om.on_fill(Fill(fid, cid, "v", "AAPL", side, qty, price, 0.01, Liquidity.MAKER, ts))
            applied.setdefault(fid, (qty, price))
        elif kind == "cancel_request":
            om.request_cancel(o, ts)
        elif kind == "cancel_rejected":
            om.on_cancel_rejected(cid, ts)
        elif kind == "replace_request":
            # what Broker.replace_order allows: an open order, no cancel/replace pending, a
            # broker id to replace, a new qty above what is filled
            if (o.is_done or o.status in (S.PENDING_CANCEL, S.PENDING_REPLACE)
                    or o.broker_order_id is None or ev[1] <= o.filled_qty):
                continue
            om.request_replace(o, ev[1], 10.0, ts)
            next_id += 1
        elif kind == "replaced":
            if next_id > 1:
                om.on_replaced(cid, ts, broker_order_id=f"B{next_id}")
                newest_id = max(newest_id, next_id)
        elif kind == "replace_rejected":
            om.on_replace_rejected(cid, ts)

        # quantities: exactly the distinct fills, in the order, the fees and the position
        filled = sum(q for q, _ in applied.values())
        assert o.filled_qty == pytest.approx(filled)
        assert sorted(f.fill_id for f in o.fills) == sorted(applied)
        assert o.fees == pytest.approx(0.01 * len(applied))
        if applied:
            vwap = sum(q * p for q, p in applied.values()) / filled
            assert o.avg_fill_price == pytest.approx(vwap)
        assert h.portfolio.qty("AAPL") == pytest.approx(side.sign * filled)
        assert h.portfolio.cash == pytest.approx(
            1_000_000.0 - side.sign * sum(q * p for q, p in applied.values()) - o.fees)
        # status: done stays done (only LOST may be found again); a done order may only turn
        # FILLED (its fills completed it)
        if prev_status.is_done and prev_status is not S.LOST:
            assert o.status is prev_status or o.status is S.FILLED, (prev_status, o.status)
        if prev_status is S.LOST and (kind == "ack" or ev == ("status", S.NEW)):
            assert o.is_open, "a lost order the broker acknowledges again is working"
        if o.filled_qty >= o.qty - 1e-9:
            assert o.status is S.FILLED
        assert (cid in om.open) == o.is_open
        assert (o.done_ts is not None) == o.is_done
        assert o.updated_ts >= prev_updated
        # ids: the newest one the broker gave, never an older one
        if newest_id:
            assert o.broker_order_id == f"B{newest_id}"
            assert om.by_broker_id(f"B{newest_id}") is o
        assert o.client_order_id == cid
        prev_status = o.status
        prev_updated = o.updated_ts
