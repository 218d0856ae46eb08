"""The journal (tradekit.journal): write-before-send, rebuilding a broker after a crash,
reconciliation on restart, and the engine's pausing and restoring."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tradekit.brokers.base import Broker
from tradekit.brokers.paper import PaperBroker
from tradekit.engine import Engine
from tradekit.enums import OrderStatus, Side
from tradekit.errors import ConfigError
from tradekit.journal import Journal, restore_brokers
from tradekit.model import Account, Fill, Instrument, Order, Position, Quote
from tradekit.reconcile import ReconciliationReport, VenueStatus
from tradekit.strategies.base import Strategy
from tradekit.testing import et

T0 = et(2026, 11, 24, 10, 0)
MS = 1_000_000
S = 1_000_000_000


def paper(**kw: Any) -> PaperBroker:
    kw.setdefault("id_prefix", "p")
    kw.setdefault("venue", "paper")
    return PaperBroker(**kw)


def quote(b: PaperBroker, ts: int, bid: float = 190.00, ask: float = 190.02) -> None:
    b.on_quote(Quote(ts, "AAPL", bid, 500, ask, 500))


def committed_rows(path: Path) -> list[tuple[Any, ...]]:
    """The rows in the file as another process would see them (a second connection)."""
    db = sqlite3.connect(path)
    try:
        out = []
        for (blob,) in db.execute("SELECT rows FROM batch ORDER BY seq"):
            out.extend(tuple(r) for r in msgspec.msgpack.decode(blob))
        return out
    finally:
        db.close()


class Recording(Broker):
    """An out-of-process broker (journal_sync): records what the journal file held at each send."""

    name = "recording"

    def __init__(self, path: Path, **kw: Any) -> None:
        super().__init__(**kw)
        self.path = path
        self.seen_at_send: list[tuple[str, bool]] = []

    def _saw(self, kind: str, order: Order) -> None:
        rows = committed_rows(self.path)
        self.seen_at_send.append(
            (kind, any(r[2] == kind and r[3] == order.client_order_id for r in rows))
        )

    async def _connect(self) -> None:
        pass

    async def _close(self) -> None:
        pass

    def _send_submit(self, order: Order) -> None:
        self._saw("submit", order)

    def _send_cancel(self, order: Order) -> None:
        self._saw("cancel", order)

    def _send_replace(self, order: Order, qty: float, limit_price: float | None) -> None:
        self._saw("replace", order)

    async def _fetch_account(self) -> Account:
        return Account(0.0, 0.0, 0.0)

    async def _fetch_positions(self) -> dict[str, Position]:
        return {}

    async def _fetch_open_orders(self) -> list[Order]:
        return []

    async def _fetch_instrument(self, symbol: str) -> Instrument:
        return Instrument(symbol)


def test_commands_are_committed_before_they_are_sent(tmp_path: Path) -> None:
    path = tmp_path / "bot.journal"
    b = Recording(path, venue="x", clock=lambda: T0)
    b.on_quote(Quote(T0, "AAPL", 190.0, 100, 190.02, 100))
    with Journal(path) as j:
        j.attach(b)
        o = b.submit_order("AAPL", Side.BUY, 10, limit_price=189.5)
        b._ack(o.client_order_id, "B1")
        b.replace_order(o, limit_price=189.6)
        b._replaced(o.client_order_id, limit_price=189.6)
        b.cancel_order(o)
    assert b.seen_at_send == [("submit", True), ("replace", True), ("cancel", True)]


def test_a_failed_commit_keeps_the_rows(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j")
    j.record("run", T0, {"event": "start"})
    j._add(T0, "v", "run", None, {"event": "x"})
    j._db.execute("PRAGMA query_only = ON")  # every write now fails
    with pytest.raises(sqlite3.OperationalError):
        j.flush()
    assert len(j._buf) == 1  # nothing lost: still buffered
    j._db.execute("PRAGMA query_only = OFF")
    j.close()
    assert [r[5] for r in Journal(tmp_path / "j").rows()] == [{"event": "start"}, {"event": "x"}]


def test_not_a_journal_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.journal"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="not a tradekit journal"):
        Journal(bad)
    with pytest.raises(ConfigError, match="is a directory"):
        Journal(tmp_path)


def _crashed_paper_history(path: Path) -> tuple[PaperBroker, dict[str, Order]]:
    """A paper bot that trades, then 'crashes' with an order in flight (its commit done, the
    venue never got it) and the journal flushed at a random point."""
    b = paper(latency_ms=5, positions={"AAPL": 100})
    j = Journal(path)
    j.set_meta("initial_positions", {"paper:AAPL": 100.0})
    j.attach(b)
    quote(b, T0)
    filled = b.submit_order("AAPL", Side.SELL, 30, limit_price=190.00)  # marketable
    resting = b.submit_order("AAPL", Side.BUY, 20, limit_price=189.90)
    quote(b, T0 + 10 * MS)
    b.process()
    assert filled.status is OrderStatus.FILLED and resting.status is OrderStatus.NEW
    canceled = b.submit_order("AAPL", Side.BUY, 10, limit_price=189.80)
    quote(b, T0 + 20 * MS)
    b.cancel_order(canceled)
    quote(b, T0 + 40 * MS)
    b.process()
    assert canceled.status is OrderStatus.CANCELED
    in_flight = b.submit_order("AAPL", Side.BUY, 5, limit_price=189.70)  # never arrives
    j.flush()  # the process dies here: nothing after this reaches the file
    j._db.close()
    j.closed = True
    return b, {"filled": filled, "resting": resting, "canceled": canceled, "in_flight": in_flight}


def test_restart_rebuilds_orders_positions_and_reconciles(tmp_path: Path) -> None:
    path = tmp_path / "bot.journal"
    before, orders = _crashed_paper_history(path)
    j = Journal(path)
    state = j.load()
    after = paper(latency_ms=5, positions={"AAPL": 100})
    restore_brokers(state, [after])
    # orders and positions as they were (the fill counted once, on top of the start)
    assert after.position("AAPL") == before.position("AAPL") == 70
    for name, o in orders.items():
        got = after.get_order(o.client_order_id)
        assert got is not None, name
        assert (got.status, got.filled_qty, got.qty, got.limit_price) == (
            o.status,
            o.filled_qty,
            o.qty,
            o.limit_price,
        ), name
    j.attach(after)
    quote(after, T0 + S // 2)  # the market (and the paper venue's clock) after the restart
    asyncio.run(after.connect())
    rep = after.last_reconciliation
    assert isinstance(rep, ReconciliationReport) and rep.reason == "restart"
    assert rep.matched == (orders["resting"].client_order_id,)
    assert rep.lost == (orders["in_flight"].client_order_id,)  # the venue never had it
    assert after.get_order(orders["in_flight"].client_order_id).status is OrderStatus.LOST
    # the restored resting order is in the venue's book again: the market trades through it
    quote(after, T0 + S, 189.80, 189.85)
    after.process()
    resting = after.get_order(orders["resting"].client_order_id)
    assert resting.status is OrderStatus.FILLED and after.position("AAPL") == 90
    # new ids continue after the restored ones; fill ids too (no duplicate absorbed)
    new = after.submit_order("AAPL", Side.SELL, 1, limit_price=189.80)
    assert new.client_order_id not in {o.client_order_id for o in orders.values()}
    quote(after, T0 + 2 * S, 189.80, 189.85)
    after.process()
    assert new.status is OrderStatus.FILLED and after.position("AAPL") == 89
    j.close()
    # the report was journaled, and the journal's history now has every fill once
    again = Journal(path).load()
    fills = again.fills
    assert len({f.fill_id for f in fills}) == len(fills) == 3
    assert again.venues["paper"].reports[0]["lost"] == [orders["in_flight"].client_order_id]


def test_an_order_behind_its_fills_is_brought_up_to_them(tmp_path: Path) -> None:
    """A crash between a fill's row and its order's next snapshot."""
    path = tmp_path / "j"
    b = paper()
    with Journal(path) as j:
        j.attach(b)
        quote(b, T0)
        o = b.submit_order("AAPL", Side.BUY, 10, limit_price=190.02)
        # drop the order's final snapshot from the buffer, keep the fill
        b._listeners.insert(1, lambda ev: None)
        b.process()
        rows = [msgspec.msgpack.decode(r) for r in j._buf]
        j._buf[:] = [
            r
            for r, d in zip(j._buf, rows, strict=True)
            if not (d[2] == "order" and d[4][0] == "filled")
        ]
    st = Journal(path).load()
    got = st.venues["paper"].orders[o.client_order_id]
    assert got.status is OrderStatus.FILLED and got.filled_qty == 10
    assert got.avg_fill_price == pytest.approx(190.02)


# ---- the engine: pausing a strategy while a venue is down ------------------------------------
class Quoter(Strategy):
    kind = "quoter"

    def __init__(self) -> None:
        super().__init__()
        self.quotes = 0
        self.restored: tuple[list[Order], list[Fill]] | None = None

    def on_quote(self, quote: Quote) -> None:
        self.quotes += 1
        if not self.open_orders("AAPL"):
            self.buy("AAPL", 10, quote.bid - 0.05)

    def on_restore(self, orders: list[Order], fills: list[Fill]) -> None:
        self.restored = (orders, fills)
        super().on_restore(orders, fills)


def _engine(b: PaperBroker, s: Strategy) -> Engine:
    e = Engine()
    e.add_venue("paper", b)
    e.add_strategy(s)
    e.start(T0, T0 + 3600 * S)
    return e


def test_a_venue_down_pauses_its_strategies_and_pulls_quotes() -> None:
    b = paper()
    s = Quoter()
    e = _engine(b, s)
    e.step(Quote(T0 + S, "AAPL", 190.0, 500, 190.02, 500, "paper"))
    e.run_due(T0 + 2 * S)
    assert s.quotes == 1 and len(b.open_orders()) == 1
    b._venue_down("stream lost")
    assert e.paused(s)
    e.run_due(T0 + 3 * S)
    assert b.open_orders() == []  # quotes pulled
    e.step(Quote(T0 + 4 * S, "AAPL", 190.0, 500, 190.02, 500, "paper"))
    assert s.quotes == 1  # no market data while paused
    b._venue_up("reconnected and reconciled")
    assert not e.paused(s)
    e.step(Quote(T0 + 5 * S, "AAPL", 190.0, 500, 190.02, 500, "paper"))
    assert s.quotes == 2 and len(b.open_orders()) == 1


def test_stale_data_pauses_until_fresh_data() -> None:
    b = paper()
    s = Quoter()
    e = _engine(b, s)
    e.set_blocked("paper", "stale", True)
    e.set_blocked("paper", "down", True)
    e.set_blocked("paper", "stale", False)
    assert e.paused(s)  # still down
    e.set_blocked("paper", "down", False)
    assert not e.paused(s)


def test_venue_status_reaches_status_listeners() -> None:
    b = paper()
    got: list[Any] = []
    orders_and_fills: list[Any] = []
    b.add_status_listener(got.append)
    b.add_listener(orders_and_fills.append)
    b._venue_down("x")
    b._venue_down("x")  # once
    b._venue_up("y")
    assert [(type(x), x.up) for x in got] == [(VenueStatus, False), (VenueStatus, True)]
    assert orders_and_fills == []  # add_listener's callbacks get orders and fills only


def test_restored_strategy_cancels_its_restored_quotes(tmp_path: Path) -> None:
    path = tmp_path / "j"
    _crashed_paper_history(path)
    state = Journal(path).load()
    b = paper(latency_ms=5, positions={"AAPL": 100})
    restore_brokers(state, [b])
    quote(b, T0 + S // 2)
    asyncio.run(b.connect())
    s = Quoter()
    e = Engine()
    e.add_venue("paper", b)
    e.add_strategy(s)
    e.restore(state.fills, {"paper:AAPL": 100.0})
    e.start(T0 + S, T0 + 3600 * S)
    assert s.restored is not None and len(s.restored[1]) == 1
    e.run_due(T0 + 2 * S)
    assert b.open_orders() == []  # the restored resting order was cancelled
    rec = e.stop(T0 + 3 * S)
    assert rec.initial_positions == {"paper:AAPL": 100.0}
    assert len(rec.fills) == 1 and rec.final_positions["paper:AAPL"] == 70
