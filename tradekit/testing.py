"""The shared broker contract test suite, public so that third-party adapters can run it too.

An adapter's test module subclasses ``BrokerContractTests`` and defines one fixture, ``harness``,
that yields a started ``BrokerHarness`` (a connected broker plus the means to move its market)::

    import pytest
    from tradekit.testing import BrokerContractTests, PaperHarness

    class TestPaperContract(BrokerContractTests):
        @pytest.fixture
        async def harness(self):
            async with PaperHarness() as h:  # your own BrokerHarness subclass here
                yield h

Every ``test_*`` method is async; run them with pytest-asyncio (``asyncio_mode = "auto"``, or in
strict mode decorate the fixture with ``@pytest_asyncio.fixture``). Tests that need something a
broker or harness cannot do are skipped with a reason (see ``BrokerHarness.supports``).

The market the suite assumes at the start: ``symbol`` (AAPL) quoted 190.00 x 500 / 190.02 x 500
at 10:00 New York time on Tuesday 2026-11-24 (a regular session), a flat position and enough
buying power for a few hundred shares. A harness that cannot set the clock runs the session
tests only when it can (``supports("set_time")``).

Importing this module imports pytest; ``import tradekit`` never imports this module.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import fields
from datetime import datetime
from types import TracebackType
from typing import Any, ClassVar, Self
from zoneinfo import ZoneInfo

import pytest

from .brokers.base import Broker, Capabilities
from .brokers.paper import PaperBroker
from .clock import SimClock
from .enums import Liquidity, OrderStatus, OrderType, RejectReason, Side, TimeInForce
from .errors import OrderRejected
from .model import Fill, Order, Quote, Trade
from .timeutil import to_ns

__all__ = [
    "DEFAULT_QUOTE",
    "DEFAULT_START",
    "BrokerContractTests",
    "BrokerHarness",
    "EventRecorder",
    "PaperHarness",
    "et",
]

_ET = ZoneInfo("America/New_York")


def et(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """Nanoseconds (UTC) of a New York wall-clock time, e.g. ``et(2026, 11, 27, 16, 30)``."""
    return to_ns(datetime(year, month, day, hour, minute, second, tzinfo=_ET))


#: 10:00 New York time on Tuesday 2026-11-24: a regular session.
DEFAULT_START = et(2026, 11, 24, 10, 0)
#: bid, bid size, ask, ask size of the suite's starting market.
DEFAULT_QUOTE = (190.00, 500.0, 190.02, 500.0)

_HOLIDAY_11AM = et(2026, 11, 26, 11, 0)  # Thanksgiving: closed all day
_EARLY_CLOSE_POST = et(2026, 11, 27, 16, 30)  # day after Thanksgiving: close 13:00, post to 17:00
_EARLY_CLOSE_AFTER_POST = et(2026, 11, 27, 17, 30)

#: the boolean fields of ``Capabilities`` that ``BrokerHarness.supports`` answers from the broker
_CAPABILITY_NAMES = frozenset(
    f.name for f in fields(Capabilities) if f.name not in ("order_types", "time_in_force")
)


class EventRecorder:
    """A broker listener that keeps what it was given: each ``Fill``, and a snapshot
    ``(client_order_id, status, filled_qty, qty, limit_price)`` of each ``Order`` update taken when
    it was delivered (the handle itself changes later)."""

    def __init__(self) -> None:
        self.fills: list[Fill] = []
        self.updates: list[tuple[str, OrderStatus, float, float, float | None]] = []
        self.items: list[Any] = []

    def __call__(self, obj: Any) -> None:
        self.items.append(obj)
        if isinstance(obj, Fill):
            self.fills.append(obj)
        elif isinstance(obj, Order):
            self.updates.append(
                (obj.client_order_id, obj.status, obj.filled_qty, obj.qty, obj.limit_price)
            )

    def statuses(self, client_order_id: str) -> list[OrderStatus]:
        return [u[1] for u in self.updates if u[0] == client_order_id]

    def fills_of(self, client_order_id: str) -> list[Fill]:
        return [f for f in self.fills if f.client_order_id == client_order_id]

    def __len__(self) -> int:
        return len(self.items)


class BrokerHarness(ABC):
    """A connected broker under test and the means to drive its venue.

    Subclasses build the broker, pass it to ``__init__`` and implement ``set_quote``, ``trade``
    and ``settle``; the rest has defaults. ``features`` names what the harness can do beyond the
    broker's ``capabilities``: ``"set_time"``, ``"inject_duplicate"``, ``"inject_out_of_order"``.
    Use it as ``async with Harness(...) as h:`` (``start``/``stop``).
    """

    features: ClassVar[frozenset[str]] = frozenset()
    #: where ``start`` puts the clock (when it can) and the market
    start_ns: int = DEFAULT_START
    initial_quote: tuple[float, float, float, float] = DEFAULT_QUOTE

    def __init__(self, broker: Broker, symbol: str = "AAPL") -> None:
        self.broker = broker
        self.symbol = symbol
        self.quote: tuple[float, float, float, float] = self.initial_quote
        #: every request that reached the adapter's send hooks: ``(kind, client_order_id)`` with
        #: kind ``submit``, ``cancel`` or ``replace``
        self.sends: list[tuple[str, str]] = []
        self._watching = False

    # ---- life --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect the broker, count its sends, set the clock (if possible) and the market."""
        self._watch_sends()
        if not self.broker.connected:
            await self.broker.connect()
        if self.supports("set_time") and self.now_ns < self.start_ns:
            await self.set_time(self.start_ns)
        await self.set_quote(*self.initial_quote)
        await self.settle()

    async def stop(self) -> None:
        if self.broker.connected:
            await self.broker.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _watch_sends(self) -> None:
        if self._watching:
            return
        self._watching = True
        b = self.broker
        for kind in ("submit", "cancel", "replace"):
            orig: Callable[..., None] = getattr(b, f"_send_{kind}")

            def counted(
                order: Order, *args: Any, _orig: Callable[..., None] = orig, _kind: str = kind
            ) -> None:
                self.sends.append((_kind, order.client_order_id))
                _orig(order, *args)

            setattr(b, f"_send_{kind}", counted)

    def sent(self, kind: str | None = None) -> int:
        """How many requests (of ``kind``) reached the adapter."""
        return sum(1 for k, _ in self.sends if kind is None or k == kind)

    # ---- what the harness can do ---------------------------------------------------------------
    def supports(self, capability: str) -> bool:
        """A broker capability (``replace_in_place``, ``fractional``, ``extended_hours``,
        ``shorting``, ``depth``) or a harness feature (see ``features``)."""
        if capability in _CAPABILITY_NAMES:
            return bool(getattr(self.broker.capabilities, capability))
        return capability in self.features

    # ---- the clock ---------------------------------------------------------------------------
    @property
    def now_ns(self) -> int:
        return self.broker.clock.now_ns()

    async def set_time(self, ts: Any) -> None:
        """Move the broker's clock forward to ``ts`` (int ns or tz-aware datetime), delivering
        what the venue does meanwhile (expiries). Only with ``supports("set_time")``."""
        raise NotImplementedError(f"{type(self).__name__} cannot set the broker's clock")

    # ---- the market --------------------------------------------------------------------------
    @abstractmethod
    async def set_quote(self, bid: float, bid_size: float, ask: float, ask_size: float) -> None:
        """Move the venue's top of book (and tell the broker, as its data feed would)."""

    @abstractmethod
    async def trade(self, price: float, size: float) -> None:
        """A print on the tape (somebody else's trade)."""

    @abstractmethod
    async def settle(self) -> None:
        """Let the events under way arrive (acknowledgements, fills, cancels, replaces)."""

    def tick_at(self, price: float) -> float:
        return self.broker.rules.tick_at(self.symbol, price)

    async def fill(self, order: Order, qty: float, price: float | None = None) -> None:
        """Make the venue fill ``qty`` of the resting ``order`` at ``price`` (default its limit
        price), then settle. The default moves the opposite touch to the price with ``qty``
        shares and back; a simulated venue may fill a resting order at its own limit price."""
        px = order.limit_price if price is None else price
        if px is None:
            raise ValueError("fill() of a market order needs a price")
        old = self.quote
        _, bid_size, _, ask_size = old
        rules = self.broker.rules
        if order.side is Side.BUY:
            below = rules.snap_price(self.symbol, px - self.tick_at(px), Side.BUY)
            await self.set_quote(below, bid_size, px, qty)
        else:
            above = rules.snap_price(self.symbol, px + self.tick_at(px), Side.SELL)
            await self.set_quote(px, qty, above, ask_size)
        await self.set_quote(*old)
        await self.settle()

    # ---- faults ------------------------------------------------------------------------------
    async def inject_duplicate_last_event(self, order: Order) -> bool:
        """Deliver again the venue's latest events for ``order`` (its last fill, if any, and its
        latest status). False when the harness cannot (the tests that need it are skipped)."""
        return False

    async def inject_out_of_order(self, order: Order) -> bool:
        """Make the venue fill half of ``order``'s remaining quantity (at least one share) at its
        limit price and deliver that fill ahead of the event it naturally follows: for a
        PENDING_NEW order before its acknowledgement, for a PENDING_CANCEL order before the cancel
        confirmation. False when the harness cannot."""
        return False

    async def venue_order_id(self, order: Order) -> str | None:
        """The id the venue now has for ``order`` (None: the harness does not know)."""
        return None


class PaperHarness(BrokerHarness):
    """A ``PaperBroker`` on its own ``SimClock``; keyword arguments go to ``PaperBroker``
    (``rules``, ``latency_ms``, ``cash``, ``fees``, ...)."""

    features = frozenset({"set_time", "inject_duplicate", "inject_out_of_order"})

    def __init__(
        self, symbol: str = "AAPL", *, start: Any = DEFAULT_START, **broker_kwargs: Any
    ) -> None:
        self.start_ns = to_ns(start)
        self.clock = SimClock(self.start_ns)
        broker_kwargs.setdefault("id_prefix", "h")
        self.paper = PaperBroker(clock=self.clock, **broker_kwargs)
        super().__init__(self.paper, symbol)

    def _run_until(self, ns: int) -> None:
        """Run the venue's events due at or before ``ns``, the clock at each one's time."""
        paper = self.paper
        while True:
            nxt = paper.next_event_ns()
            if nxt is None or nxt > ns:
                return
            self.clock.set(nxt)
            paper.advance_to(nxt)

    async def set_time(self, ts: Any) -> None:
        ns = to_ns(ts)
        if ns < self.clock.now_ns():
            raise ValueError(f"the clock only moves forward ({self.clock.now_ns()} -> {ns})")
        self._run_until(ns)
        self.clock.set(ns)

    async def settle(self) -> None:
        lat = self.paper.latency
        self._run_until(self.clock.now_ns() + max(lat.order_ns, lat.cancel_ns))

    async def set_quote(self, bid: float, bid_size: float, ask: float, ask_size: float) -> None:
        self.quote = (bid, bid_size, ask, ask_size)
        self.paper.on_quote(Quote(self.clock.now_ns(), self.symbol, bid, bid_size, ask, ask_size))

    async def trade(self, price: float, size: float) -> None:
        self.paper.on_trade(Trade(self.clock.now_ns(), self.symbol, price, size))

    async def inject_duplicate_last_event(self, order: Order) -> bool:
        b = self.paper
        if order.fills:
            b._fill(order.fills[-1])
        if order.broker_order_id is not None:
            b._status(order.client_order_id, order.status, broker_order_id=order.broker_order_id)
        return True

    async def inject_out_of_order(self, order: Order) -> bool:
        if order.status not in (OrderStatus.PENDING_NEW, OrderStatus.PENDING_CANCEL):
            return False
        b = self.paper
        qty = max(1.0, math.floor(order.remaining_qty / 2))
        price = order.limit_price
        if price is None:
            bid, _, ask, _ = self.quote
            price = ask if order.side is Side.BUY else bid
        b._fill(b._make_fill(order, qty, price, Liquidity.MAKER, self.clock.now_ns()))
        return True


async def _rest(
    h: BrokerHarness, side: Side = Side.BUY, qty: float = 100, price: float | None = None, **kw: Any
) -> Order:
    """A passive limit order (joining our side's touch by default), settled into NEW."""
    bid, _, ask, _ = h.quote
    if price is None:
        price = bid if side is Side.BUY else ask
    o = h.broker.submit_order(h.symbol, side, qty, limit_price=price, **kw)
    await h.settle()
    assert o.status is OrderStatus.NEW, f"a passive limit order should rest, got {o!r}"
    return o


async def _take(h: BrokerHarness, side: Side, qty: float) -> Order:
    """A marketable limit order at the opposite touch, filled (by the venue or the harness)."""
    bid, _, ask, _ = h.quote
    o = h.broker.submit_order(h.symbol, side, qty, limit_price=ask if side is Side.BUY else bid)
    await h.settle()
    if o.status is not OrderStatus.FILLED:
        await h.fill(o, o.remaining_qty)
    assert o.status is OrderStatus.FILLED, f"could not fill {o!r}"
    return o


def _avg(o: Order) -> float:
    assert o.avg_fill_price is not None, f"{o!r} has no average fill price"
    return o.avg_fill_price


def _rejected(
    h: BrokerHarness, reason: RejectReason, side: Side | str, qty: float, **kw: Any
) -> OrderRejected:
    sent = h.sent("submit")
    with pytest.raises(OrderRejected) as info:
        h.broker.submit_order(h.symbol, side, qty, **kw)
    assert info.value.reason is reason, f"expected {reason}, got {info.value!r}"
    assert h.sent("submit") == sent, "a refused order must not reach the broker"
    return info.value


def _need(h: BrokerHarness, capability: str) -> None:
    if not h.supports(capability):
        pytest.skip(f"{type(h.broker).__name__}/{type(h).__name__} lacks {capability!r}")


class BrokerContractTests:
    """What every ``Broker`` adapter must do. Subclass it (with a ``Test`` prefix) and define the
    ``harness`` fixture; see the module docstring."""

    @pytest.fixture
    def harness(self) -> BrokerHarness:
        raise NotImplementedError(
            "subclass BrokerContractTests and define a `harness` fixture yielding a started "
            "BrokerHarness"
        )

    @pytest.fixture
    def broker(self, harness: BrokerHarness) -> Broker:
        return harness.broker

    # ---- identity and life -------------------------------------------------------------------
    async def test_connected_and_declared(self, harness: BrokerHarness) -> None:
        from . import brokers

        b = harness.broker
        assert b.connected
        assert isinstance(b.capabilities, Capabilities)
        assert isinstance(type(b).name, str) and type(b).name
        assert brokers.get(type(b).name) is type(b), "register the adapter under its name"

    async def test_async_with(self, harness: BrokerHarness) -> None:
        b = harness.broker
        await b.close()
        assert not b.connected
        async with b as entered:
            assert entered is b
            assert b.connected
            o = b.submit_order(harness.symbol, Side.BUY, 10, limit_price=harness.quote[0])
            await harness.settle()
            assert o.status is OrderStatus.NEW
        assert not b.connected

    # ---- submit ------------------------------------------------------------------------------
    async def test_submit_returns_pending_handle_at_once(self, harness: BrokerHarness) -> None:
        b, sym = harness.broker, harness.symbol
        o = b.submit_order(sym, Side.BUY, 100, limit_price=189.90)
        assert isinstance(o, Order)
        assert o.status is OrderStatus.PENDING_NEW and o.is_open and not o.is_done
        assert isinstance(o.client_order_id, str) and o.client_order_id
        assert o.broker_order_id is None
        assert o.type is OrderType.LIMIT and o.limit_price == 189.90
        assert (o.symbol, o.side, o.qty, o.tif, o.extended_hours) == (
            sym,
            Side.BUY,
            100.0,
            TimeInForce.DAY,
            False,
        )
        assert o.venue == b.venue and o.filled_qty == 0 and o.avg_fill_price is None
        assert o.created_ts == harness.now_ns and o.created_at.tzinfo is not None
        assert b.get_order(o.client_order_id) is o
        m = b.submit_order(sym, "buy", 5)
        assert m.type is OrderType.MARKET and m.limit_price is None
        assert m.status is OrderStatus.PENDING_NEW
        assert m.client_order_id != o.client_order_id
        assert harness.sent("submit") == 2

    async def test_client_order_id_is_kept_and_unique(self, harness: BrokerHarness) -> None:
        b = harness.broker
        o = b.submit_order(
            harness.symbol, Side.BUY, 10, limit_price=189.5, client_order_id="contract-1"
        )
        assert o.client_order_id == "contract-1"
        _rejected(
            harness,
            RejectReason.DUPLICATE_ID,
            Side.BUY,
            10,
            limit_price=189.4,
            client_order_id="contract-1",
        )
        await harness.settle()
        assert o.client_order_id == "contract-1" and o.status is OrderStatus.NEW

    async def test_ack_moves_to_new(self, harness: BrokerHarness) -> None:
        b = harness.broker
        rec = EventRecorder()
        b.add_listener(rec)
        o = b.submit_order(harness.symbol, Side.BUY, 100, limit_price=189.50)
        await harness.settle()
        assert o.status is OrderStatus.NEW and o.is_open
        assert isinstance(o.broker_order_id, str) and o.broker_order_id
        assert o.limit_price == 189.50 and o.qty == 100, "the broker never changes a price"
        assert o.accepted_ts is not None and o.updated_ts >= o.created_ts
        assert rec.statuses(o.client_order_id) == [OrderStatus.NEW]
        assert b.get_order(o.client_order_id) is o
        assert o in await b.get_open_orders()
        vid = await harness.venue_order_id(o)
        if vid is not None:
            assert o.broker_order_id == vid

    # ---- fills -------------------------------------------------------------------------------
    async def test_partial_then_full_fill(self, harness: BrokerHarness) -> None:
        b = harness.broker
        rec = EventRecorder()
        b.add_listener(rec)
        o = await _rest(harness, Side.BUY, 100, 190.00)
        await harness.fill(o, 40, 190.00)
        assert o.status is OrderStatus.PARTIALLY_FILLED and o.is_open
        assert o.filled_qty == pytest.approx(40) and o.remaining_qty == pytest.approx(60)
        assert o.avg_fill_price == pytest.approx(190.00)
        await harness.fill(o, 60, 190.00)
        assert o.status is OrderStatus.FILLED and o.is_done and not o.is_open
        assert o.filled_qty == pytest.approx(100) and o.avg_fill_price == pytest.approx(190.00)
        fills = rec.fills_of(o.client_order_id)
        assert [f.qty for f in fills] == pytest.approx([40, 60])
        assert fills == o.fills
        assert len({f.fill_id for f in fills}) == 2
        for f in fills:
            assert isinstance(f, Fill)
            assert (f.symbol, f.side, f.venue) == (harness.symbol, Side.BUY, b.venue)
            assert f.price == pytest.approx(190.00)
            assert f.liquidity is Liquidity.MAKER, "a resting order is filled as maker"
            assert isinstance(f.fee, float) and math.isfinite(f.fee)
            assert isinstance(f.ts, int) and f.time.tzinfo is not None
        assert o.fees == pytest.approx(sum(f.fee for f in fills))
        assert rec.statuses(o.client_order_id) == [
            OrderStatus.NEW,
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
        ]
        assert [u[2] for u in rec.updates if u[0] == o.client_order_id] == pytest.approx(
            [0, 40, 100]
        )
        assert o not in await b.get_open_orders()

    async def test_marketable_order_fills_as_taker(self, harness: BrokerHarness) -> None:
        o = await _take(harness, Side.BUY, 100)
        assert o.filled_qty == pytest.approx(100)
        assert o.fills and o.fills[0].liquidity is Liquidity.TAKER
        assert o.avg_fill_price is not None and o.avg_fill_price <= harness.quote[2] + 1e-9

    async def test_listeners_receive_each_update(self, harness: BrokerHarness) -> None:
        b = harness.broker
        first, second = EventRecorder(), EventRecorder()
        boom_calls: list[Any] = []

        def boom(obj: Any) -> None:
            boom_calls.append(obj)
            raise RuntimeError("a failing listener must not stop the others")

        b.add_listener(boom)
        b.add_listener(first)
        b.add_listener(second)
        o = await _rest(harness, Side.BUY, 100, 190.00)
        await harness.fill(o, 30, 190.00)
        b.remove_listener(second)
        await harness.fill(o, 70, 190.00)
        cid = o.client_order_id
        assert first.statuses(cid) == [
            OrderStatus.NEW,
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
        ]
        assert [f.qty for f in first.fills_of(cid)] == pytest.approx([30, 70])
        # each fill is delivered before the order update it causes
        kinds = [type(x).__name__ for x in first.items]
        assert kinds == ["Order", "Fill", "Order", "Fill", "Order"]
        assert second.statuses(cid) == [OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED]
        assert len(second.fills_of(cid)) == 1
        assert len(boom_calls) == len(first.items)

    # ---- cancel ------------------------------------------------------------------------------
    async def test_cancel(self, harness: BrokerHarness) -> None:
        b = harness.broker
        rec = EventRecorder()
        b.add_listener(rec)
        o = await _rest(harness, Side.BUY, 100, 189.95)
        b.cancel_order(o)
        assert o.status is OrderStatus.PENDING_CANCEL and o.is_open
        assert harness.sent("cancel") == 1
        await harness.settle()
        assert o.status is OrderStatus.CANCELED and o.is_done
        assert o.filled_qty == 0 and o.done_ts is not None
        assert o not in await b.get_open_orders()
        assert o not in b.open_orders()
        n = len(rec)
        b.cancel_order(o)  # done: a no-op
        b.cancel_order(o.client_order_id)
        await harness.settle()
        assert o.status is OrderStatus.CANCELED
        assert harness.sent("cancel") == 1 and len(rec) == n

    async def test_cancel_by_client_order_id(self, harness: BrokerHarness) -> None:
        o = await _rest(harness, Side.BUY, 50, 189.80)
        harness.broker.cancel_order(o.client_order_id)
        await harness.settle()
        assert o.status is OrderStatus.CANCELED

    async def test_cancel_of_filled_order_is_a_noop(self, harness: BrokerHarness) -> None:
        b = harness.broker
        o = await _take(harness, Side.BUY, 10)
        rec = EventRecorder()
        b.add_listener(rec)
        b.cancel_order(o)
        await harness.settle()
        assert o.status is OrderStatus.FILLED and o.filled_qty == pytest.approx(10)
        assert harness.sent("cancel") == 0 and len(rec) == 0

    # ---- replace -----------------------------------------------------------------------------
    async def test_replace(self, harness: BrokerHarness) -> None:
        _need(harness, "replace_in_place")
        b = harness.broker
        o = await _rest(harness, Side.BUY, 100, 189.90)
        cid = o.client_order_id
        same = b.replace_order(o, qty=150, limit_price=189.95)
        assert same is o and o.client_order_id == cid
        assert harness.sent("replace") == 1
        assert o.qty == 100 and o.limit_price == 189.90, "new values show once confirmed"
        await harness.settle()
        assert o.client_order_id == cid
        assert o.status is OrderStatus.NEW
        assert o.qty == 150 and o.limit_price == 189.95
        assert isinstance(o.broker_order_id, str) and o.broker_order_id
        vid = await harness.venue_order_id(o)
        if vid is not None:
            assert o.broker_order_id == vid, "broker_order_id follows the broker's newest id"
        # the newest broker id finds the order
        b.cancel_order(o.broker_order_id)
        await harness.settle()
        assert o.status is OrderStatus.CANCELED and o.client_order_id == cid

    async def test_replace_then_fill_uses_new_values(self, harness: BrokerHarness) -> None:
        _need(harness, "replace_in_place")
        o = await _rest(harness, Side.BUY, 100, 189.80)
        harness.broker.replace_order(o, limit_price=189.90)
        await harness.settle()
        assert o.limit_price == 189.90
        await harness.fill(o, 100, 189.90)
        assert o.status is OrderStatus.FILLED and o.avg_fill_price == pytest.approx(189.90)

    async def test_replace_of_done_order_is_refused(self, harness: BrokerHarness) -> None:
        b = harness.broker
        o = await _rest(harness, Side.BUY, 100, 189.90)
        b.cancel_order(o)
        await harness.settle()
        with pytest.raises(OrderRejected) as info:
            b.replace_order(o, limit_price=189.80)
        assert info.value.reason is RejectReason.NOT_OPEN
        assert harness.sent("replace") == 0 and o.limit_price == 189.90

    # ---- refusals ----------------------------------------------------------------------------
    async def test_off_tick_price_refused_at_once(self, harness: BrokerHarness) -> None:
        b = harness.broker
        rec = EventRecorder()
        b.add_listener(rec)
        err = _rejected(harness, RejectReason.TICK_SIZE, Side.BUY, 100, limit_price=190.015)
        assert "190.015" in err.message
        assert "190.01" in err.message and "190.02" in err.message, err.message
        assert not b.open_orders() and not await b.get_open_orders()
        err = _rejected(harness, RejectReason.TICK_SIZE, Side.SELL, 10, limit_price=190.0251)
        assert "190.02" in err.message and "190.03" in err.message, err.message
        assert all(u[1] is OrderStatus.REJECTED for u in rec.updates)
        assert harness.sent() == 0

    async def test_refused_on_a_holiday(self, harness: BrokerHarness) -> None:
        _need(harness, "set_time")
        await harness.set_time(_HOLIDAY_11AM)
        err = _rejected(harness, RejectReason.SESSION_CLOSED, Side.BUY, 100, limit_price=189.90)
        assert err.message
        if harness.supports("extended_hours"):
            _rejected(
                harness,
                RejectReason.SESSION_CLOSED,
                Side.BUY,
                100,
                limit_price=189.90,
                extended_hours=True,
            )

    async def test_extended_hours_only_with_the_flag(self, harness: BrokerHarness) -> None:
        _need(harness, "set_time")
        _need(harness, "extended_hours")
        b = harness.broker
        await harness.set_time(_EARLY_CLOSE_POST)
        await harness.set_quote(*harness.initial_quote)
        _rejected(harness, RejectReason.SESSION_CLOSED, Side.BUY, 100, limit_price=189.90)
        o = b.submit_order(harness.symbol, Side.BUY, 100, limit_price=189.90, extended_hours=True)
        assert o.extended_hours and o.status is OrderStatus.PENDING_NEW
        await harness.settle()
        assert o.status is OrderStatus.NEW
        await harness.set_time(_EARLY_CLOSE_AFTER_POST)
        _rejected(
            harness,
            RejectReason.SESSION_CLOSED,
            Side.BUY,
            100,
            limit_price=189.90,
            extended_hours=True,
        )

    async def test_extended_hours_refused_without_capability(self, harness: BrokerHarness) -> None:
        if harness.supports("extended_hours"):
            pytest.skip("the broker supports extended hours")
        _rejected(
            harness,
            RejectReason.EXTENDED_HOURS,
            Side.BUY,
            100,
            limit_price=189.90,
            extended_hours=True,
        )

    async def test_wash_trade_buy_against_our_sell(self, harness: BrokerHarness) -> None:
        await _take(harness, Side.BUY, 200)
        sell = await _rest(harness, Side.SELL, 100, 190.10)
        for px in (190.10, 190.11, 191.00):
            err = _rejected(harness, RejectReason.WASH_TRADE, Side.BUY, 10, limit_price=px)
            assert sell.client_order_id in err.message
        _rejected(harness, RejectReason.WASH_TRADE, Side.BUY, 10)  # market
        ok = harness.broker.submit_order(harness.symbol, Side.BUY, 10, limit_price=190.01)
        await harness.settle()
        assert ok.is_open and sell.status is OrderStatus.NEW

    async def test_wash_trade_sell_against_our_buy(self, harness: BrokerHarness) -> None:
        await _take(harness, Side.BUY, 200)
        buy = await _rest(harness, Side.BUY, 100, 189.95)
        for px in (189.95, 189.90):
            err = _rejected(harness, RejectReason.WASH_TRADE, Side.SELL, 10, limit_price=px)
            assert buy.client_order_id in err.message
        _rejected(harness, RejectReason.WASH_TRADE, Side.SELL, 10)  # market
        ok = harness.broker.submit_order(harness.symbol, Side.SELL, 10, limit_price=190.05)
        await harness.settle()
        assert ok.status is OrderStatus.NEW and buy.status is OrderStatus.NEW

    # ---- account -----------------------------------------------------------------------------
    async def test_positions_and_account_after_fills(self, harness: BrokerHarness) -> None:
        b, sym = harness.broker, harness.symbol
        acct0 = await b.get_account()
        assert acct0.cash > 0 and acct0.buying_power > 0 and acct0.currency
        pos0 = await b.get_positions()
        assert sym not in pos0 or abs(pos0[sym].qty) < 1e-9
        buy = await _take(harness, Side.BUY, 100)
        pos = await b.get_positions()
        assert set(pos) == {sym} and pos[sym].symbol == sym
        assert pos[sym].qty == pytest.approx(100)
        assert pos[sym].avg_price == pytest.approx(_avg(buy))
        assert b.position(sym) == pytest.approx(100)
        acct1 = await b.get_account()
        assert acct1.cash == pytest.approx(acct0.cash - 100 * _avg(buy) - buy.fees)
        bid, _, ask, _ = harness.quote
        assert acct1.equity == pytest.approx(
            acct1.cash + 100 * (bid + ask) / 2, abs=100 * (ask - bid) + 0.01
        )
        assert acct1.currency == acct0.currency
        sell = await _take(harness, Side.SELL, 100)
        pos = await b.get_positions()
        assert sym not in pos or abs(pos[sym].qty) < 1e-9
        acct2 = await b.get_account()
        pnl = 100 * (_avg(sell) - _avg(buy))
        assert acct2.cash == pytest.approx(acct0.cash + pnl - buy.fees - sell.fees)
        if harness.supports("shorting"):
            await _take(harness, Side.SELL, 50)
            pos = await b.get_positions()
            assert pos[sym].qty == pytest.approx(-50), "qty is signed: negative is short"
            assert b.position(sym) == pytest.approx(-50)

    async def test_get_open_orders(self, harness: BrokerHarness) -> None:
        b = harness.broker
        assert await b.get_open_orders() == []
        a = await _rest(harness, Side.BUY, 100, 189.90)
        c = await _rest(harness, Side.BUY, 100, 189.80)
        await _take(harness, Side.BUY, 10)
        ids = {o.client_order_id for o in await b.get_open_orders()}
        assert ids == {a.client_order_id, c.client_order_id}
        assert all(o.is_open for o in await b.get_open_orders())
        b.cancel_order(a)
        await harness.settle()
        ids = {o.client_order_id for o in await b.get_open_orders()}
        assert ids == {c.client_order_id}

    # ---- duplicate, late and out-of-order events ---------------------------------------------
    async def test_duplicate_events_absorbed(self, harness: BrokerHarness) -> None:
        b, sym = harness.broker, harness.symbol
        o = await _rest(harness, Side.BUY, 100, 190.00)
        if not await harness.inject_duplicate_last_event(o):
            pytest.skip(f"{type(harness).__name__} cannot inject duplicate events")
        await harness.settle()
        assert o.status is OrderStatus.NEW and o.filled_qty == 0
        await harness.fill(o, 40, 190.00)
        rec = EventRecorder()
        b.add_listener(rec)
        await harness.inject_duplicate_last_event(o)
        await harness.settle()
        assert o.filled_qty == pytest.approx(40) and len(o.fills) == 1
        assert o.status is OrderStatus.PARTIALLY_FILLED
        assert b.position(sym) == pytest.approx(40)
        assert (await b.get_positions())[sym].qty == pytest.approx(40)
        assert rec.fills == [], "a duplicate fill is not delivered again"
        b.cancel_order(o)
        await harness.settle()
        assert o.status is OrderStatus.CANCELED
        n = len(rec)
        await harness.inject_duplicate_last_event(o)
        await harness.settle()
        assert o.status is OrderStatus.CANCELED and o.filled_qty == pytest.approx(40)
        assert len(rec) == n and b.position(sym) == pytest.approx(40)

    async def test_fill_before_ack_counts(self, harness: BrokerHarness) -> None:
        b, sym = harness.broker, harness.symbol
        o = b.submit_order(sym, Side.BUY, 100, limit_price=190.00)
        if not await harness.inject_out_of_order(o):
            pytest.skip(f"{type(harness).__name__} cannot deliver events out of order")
        await harness.settle()
        assert o.filled_qty == pytest.approx(50) and len(o.fills) == 1
        assert o.status is OrderStatus.PARTIALLY_FILLED, "a late ack must not undo a fill"
        assert o.broker_order_id
        assert b.position(sym) == pytest.approx(50)
        await harness.fill(o, 50, 190.00)
        assert o.status is OrderStatus.FILLED and o.filled_qty == pytest.approx(100)
        assert (await b.get_positions())[sym].qty == pytest.approx(100)

    async def test_fill_after_cancel_request_counts(self, harness: BrokerHarness) -> None:
        b, sym = harness.broker, harness.symbol
        o = await _rest(harness, Side.BUY, 100, 190.00)
        b.cancel_order(o)
        assert o.status is OrderStatus.PENDING_CANCEL
        if not await harness.inject_out_of_order(o):
            pytest.skip(f"{type(harness).__name__} cannot deliver events out of order")
        await harness.settle()
        assert o.status is OrderStatus.CANCELED
        assert o.filled_qty == pytest.approx(50) and len(o.fills) == 1
        assert b.position(sym) == pytest.approx(50)
        assert (await b.get_positions())[sym].qty == pytest.approx(50)
