"""A custom broker adapter, end to end: copy this file to add your own broker to tradekit.

``MemoryBroker`` talks to ``MemoryExchange``, an in-memory stand-in for a broker's servers; a real
adapter calls its SDK instead, in the same shape (hooks tabled in ``tradekit/brokers/base.py``):
``_send_*`` never block; answers arrive as events on a stream, and a reader task reports each
through ``self._ack``/``_status``/``_fill``/``_replaced``; ``_fetch_*`` return the broker's view
of the account. The ``Broker`` base class applies the rules, session, risk and rate limits before
``_send_submit``, updates the order handles, absorbs duplicate and late events and tells the
listeners.

Register it so configs can say ``broker = "memory"``: ``register("memory", MemoryBroker)`` (below),
or for an installed package an entry point in its pyproject.toml::

    [project.entry-points."tradekit.brokers"]
    memory = "my_package.memory:MemoryBroker"

``MemoryHarness`` runs the contract suite ``tradekit.testing.BrokerContractTests`` on it (see
tests/test_contract_custom_adapter.py). Demo: ``python examples/custom_broker_adapter.py``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

from tradekit import Account, Broker, Capabilities, Fill, Order, Position, Quote, SimClock, Trade
from tradekit.brokers import register
from tradekit.enums import Liquidity, OrderStatus, RejectReason, Side
from tradekit.model import Instrument
from tradekit.portfolio import Portfolio
from tradekit.rules import OrderRules, RulesProfile
from tradekit.testing import DEFAULT_START, BrokerHarness
from tradekit.timeutil import to_ns

Event = dict[str, Any]


class MemoryExchange:
    """The broker's side: orders by venue id, an account, and a stream of events."""

    def __init__(self, cash: float = 100_000.0) -> None:
        self.account = Portfolio(cash)  # the broker's books (a real broker keeps its own)
        self.orders: dict[str, Event] = {}  # venue id -> order record
        self.quotes: dict[str, tuple[float, float]] = {}
        self.log: list[Event] = []  # every event published, oldest first
        self.subscribers: list[Callable[[Event], None]] = []
        self._ids = itertools.count(1)

    def publish(self, **event: Any) -> None:
        self.log.append(event)
        for callback in self.subscribers:
            callback(event)

    def set_quote(self, symbol: str, bid: float, ask: float) -> None:
        self.quotes[symbol] = (bid, ask)
        self.account.mark(symbol, (bid + ask) / 2)

    # -- the "REST API" --------------------------------------------------------------------
    def place(self, client_id: str, symbol: str, side: str, qty: float, price: float | None
              ) -> str:
        bid, ask = self.quotes.get(symbol, (0.0, 0.0))
        touch = ask if side == "buy" else bid
        if price is None and touch <= 0:
            raise ValueError(f"no quote for {symbol}: a market order cannot be priced")
        vid = f"M{next(self._ids)}"
        self.orders[vid] = {"client_id": client_id, "symbol": symbol, "side": side, "qty": qty,
                            "filled": 0.0, "open": True}
        self.publish(type="accepted", client_id=client_id, id=vid)
        if touch > 0 and (price is None or (touch <= price if side == "buy" else touch >= price)):
            self.fill(vid, qty, touch, "taker")  # marketable: trades at the touch at once
        return vid

    def cancel(self, vid: str) -> None:
        rec = self.orders[vid]
        kind = "canceled" if rec["open"] else "cancel_rejected"
        rec["open"] = False
        self.publish(type=kind, client_id=rec["client_id"], id=vid)

    def replace(self, vid: str, qty: float, price: float | None) -> str | None:
        rec = self.orders[vid]
        if not rec["open"]:
            self.publish(type="replace_rejected", client_id=rec["client_id"], id=vid)
            return None
        new = f"M{next(self._ids)}"  # like Alpaca, a replace gives the order a new id
        self.orders[new] = {**self.orders.pop(vid), "qty": qty}
        self.publish(type="replaced", client_id=rec["client_id"], id=new, old_id=vid, qty=qty,
                     price=price)
        return new

    def fill(self, vid: str, qty: float, price: float, liquidity: str = "maker") -> None:
        """An execution (the test harness calls this to fill resting orders)."""
        rec = self.orders[vid]
        qty = min(qty, rec["qty"] - rec["filled"])
        rec["filled"] += qty
        rec["open"] = rec["filled"] < rec["qty"]
        fee = qty * 0.001  # a commission of $0.001 a share
        exec_id = f"E{next(self._ids)}"
        self.account.apply(Fill(exec_id, rec["client_id"], "memory", rec["symbol"],
                                Side(rec["side"]), qty, price, fee, Liquidity(liquidity), 0))
        self.publish(type="fill", client_id=rec["client_id"], id=vid, exec_id=exec_id,
                     symbol=rec["symbol"], side=rec["side"], qty=qty, price=price, fee=fee,
                     liquidity=liquidity)


#: What this broker accepts: whole shares only, no extended hours (an empty set of types).
MEMORY_RULES = RulesProfile(name="memory", fractional=False,
                            extended_hours_order_types=frozenset(), extended_hours_tifs=frozenset())


class MemoryBroker(Broker):
    name = "memory"
    capabilities = Capabilities(replace_in_place=True, shorting=True, fractional=False,
                                extended_hours=False, depth=False)

    def __init__(self, exchange: MemoryExchange | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("rules", OrderRules(MEMORY_RULES))  # one instrument registry per broker
        super().__init__(**kwargs)
        self.exchange = exchange or MemoryExchange()
        self._venue_ids: dict[str, str] = {}  # client order id -> the exchange's newest id
        self._inbox: asyncio.Queue[Event] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    # -- life (a real adapter also reconciles open orders and positions on connect) ---------
    async def _connect(self) -> None:
        if self._reader is None:
            self.exchange.subscribers.append(self._inbox.put_nowait)
            self._reader = asyncio.create_task(self._read_events())

    async def _close(self) -> None:
        if self._reader is not None:
            await self.drain()
            self.exchange.subscribers.remove(self._inbox.put_nowait)
            self._reader.cancel()
            self._reader = None

    async def drain(self) -> None:
        """Wait until every request went out and every event so far was handled (for tests)."""
        await asyncio.sleep(0)  # the requests scheduled so far run
        if self._reader is not None:
            await self._inbox.join()

    # -- commands out: never block. A real adapter starts a task that awaits its SDK's call
    # (loop.create_task(self._post_order(order))); the exchange here answers at once, so the
    # next turn of the event loop is enough.
    def _send_submit(self, order: Order) -> None:
        asyncio.get_running_loop().call_soon(self._submit, order)

    def _send_cancel(self, order: Order) -> None:
        asyncio.get_running_loop().call_soon(self._call, self.exchange.cancel, order)

    def _send_replace(self, order: Order, qty: float, px: float | None) -> None:
        asyncio.get_running_loop().call_soon(self._call, self.exchange.replace, order, qty, px)

    def _submit(self, order: Order) -> None:
        try:  # POST /orders with our client order id
            vid = self.exchange.place(order.client_order_id, order.symbol, order.side.value,
                                      order.qty, order.limit_price)
        except ValueError as err:
            self._status(order.client_order_id, OrderStatus.REJECTED,
                         reason=RejectReason.BROKER, message=str(err))
            return
        self._venue_ids[order.client_order_id] = vid

    def _call(self, endpoint: Callable[..., str | None], order: Order, *args: Any) -> None:
        vid = self._venue_ids[order.client_order_id]  # known: calls run in the order scheduled
        new_id = endpoint(vid, *args)
        if new_id:  # a replace gives the order a new id at this broker
            self._venue_ids[order.client_order_id] = new_id

    # -- events in: report them, the base class does the bookkeeping -----------------------
    async def _read_events(self) -> None:
        while True:
            event = await self._inbox.get()
            try:
                self._on_event(event)
            finally:
                self._inbox.task_done()

    def _on_event(self, ev: Event) -> None:
        cid = ev["client_id"]
        match ev["type"]:
            case "accepted":
                self._ack(cid, ev["id"])
            case "fill":
                self._fill(Fill(ev["exec_id"], cid, self.venue, ev["symbol"], Side(ev["side"]),
                                ev["qty"], ev["price"], ev["fee"], Liquidity(ev["liquidity"]),
                                self.clock.now_ns()))
            case "canceled":
                self._status(cid, OrderStatus.CANCELED, broker_order_id=ev["id"])
            case "replaced":
                self._replaced(cid, broker_order_id=ev["id"], old_broker_order_id=ev["old_id"],
                               qty=ev["qty"], limit_price=ev["price"])
            case "cancel_rejected":
                self._cancel_rejected(cid, message="order is no longer open")
            case "replace_rejected":
                self._replace_rejected(cid, message="order is no longer open")

    # -- the broker's view of the account --------------------------------------------------
    async def _fetch_account(self) -> Account:
        books = self.exchange.account
        return Account(books.cash, books.equity(), max(0.0, books.equity()), books.currency)

    async def _fetch_positions(self) -> dict[str, Position]:
        return self.exchange.account.positions(self.venue)

    async def _fetch_open_orders(self) -> list[Order]:  # unknown ones: self._om.adopt(order)
        open_ids = {r["client_id"] for r in self.exchange.orders.values() if r["open"]}
        return [o for o in self.orders if o.client_order_id in open_ids]

    async def _fetch_instrument(self, symbol: str) -> Instrument:
        return self.rules.instrument(symbol)  # a real adapter asks the broker (tick, lot, ...)


register("memory", MemoryBroker)


class MemoryHarness(BrokerHarness):
    """Drives a MemoryBroker for the contract tests (no out-of-order injection: those skip)."""

    features = frozenset({"set_time", "inject_duplicate"})

    def __init__(self, symbol: str = "AAPL") -> None:
        self.clock = SimClock(DEFAULT_START)  # the session checks use the broker's clock
        self.exchange = MemoryExchange()
        self.memory = MemoryBroker(self.exchange, clock=self.clock, id_prefix="mem")
        super().__init__(self.memory, symbol)

    async def set_time(self, ts: Any) -> None:
        self.clock.set(to_ns(ts))

    async def settle(self) -> None:
        await self.memory.drain()

    async def set_quote(self, bid: float, bid_size: float, ask: float, ask_size: float) -> None:
        self.quote = (bid, bid_size, ask, ask_size)
        self.exchange.set_quote(self.symbol, bid, ask)
        self.memory.on_quote(Quote(self.clock.now_ns(), self.symbol, bid, bid_size, ask, ask_size))

    async def trade(self, price: float, size: float) -> None:  # this venue ignores the tape
        self.memory.on_trade(Trade(self.clock.now_ns(), self.symbol, price, size))

    async def fill(self, order: Order, qty: float, price: float | None = None) -> None:
        await self.settle()
        px = order.limit_price if price is None else price
        self.exchange.fill(self.memory._venue_ids[order.client_order_id], qty, px or 0.0)
        await self.settle()

    async def inject_duplicate_last_event(self, order: Order) -> bool:
        mine = [e for e in self.exchange.log if e["client_id"] == order.client_order_id]
        self.exchange.publish(**mine[-1])
        return True

    async def venue_order_id(self, order: Order) -> str | None:
        return self.memory._venue_ids.get(order.client_order_id)


async def demo() -> None:
    async with MemoryHarness() as harness:  # a simulated clock: always in a trading session
        broker = harness.memory
        broker.add_listener(lambda event: print("  event:", event))
        print("submit a resting buy of 100 AAPL at 190.00; the exchange fills 40, then 60")
        order = broker.submit_order("AAPL", "buy", 100, limit_price=190.00)
        await harness.fill(order, 40)
        await harness.fill(order, 60)
        print("order:", order)
        print("positions:", await broker.get_positions())
        print("account:", await broker.get_account())


if __name__ == "__main__":
    asyncio.run(demo())
