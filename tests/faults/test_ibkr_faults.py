"""A seeded fault-injection campaign against ``IBKRBroker`` (the real ib_async client against
``FakeTWS`` speaking the TWS socket protocol on 127.0.0.1).

A bot submits, modifies and cancels limit orders around a moving market while the fake, at
random moments, drops the socket (or shuts down for a while), sends connectivity notices
1100/2110 then 1101/1102, duplicates, reorders and delays live order messages (``openOrder``,
``orderStatus``, ``execDetails``, ``commissionReport``, order errors), leaves out commission
reports, fills orders before their acknowledgement and racing their cancels (before the cancel
arrives, or with the execution's messages after the cancel confirmation), and sends malformed or
unexpected messages (fields ib_async cannot decode, unknown message ids, a truncated
``openOrder``, statuses and executions of orders nobody placed, another client's order whose id
collides with one of ours, odd warning codes, stale statuses). Each seed's faults are counted.
When TWS is well again the broker reconnects and reconciles, and the books must agree with the
fake exactly: no lost or stuck order, one order at TWS per order of ours, fills equal to the
fake's executions by id, positions equal, each order's filled quantity the sum of its fills.
Nothing may escape as an exception; the only ib_async decode errors are the injected ones.

Also here: ``unknown_orders = "cancel"``, the bounded LOST look-up, and the venue status and
reconciliation reports the broker publishes.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("ib_async")

from fakes.tws import (
    GARBAGE_KINDS,
    GARBAGE_UNDECODABLE,
    FakeOrder,
    FakeTWS,
    IBKRHarness,
    IBLogGuard,
)

from tradekit.brokers.ibkr import IBKRBroker
from tradekit.clock import SimClock
from tradekit.enums import OrderStatus, RejectReason, Side
from tradekit.errors import OrderRejected
from tradekit.model import Order, Quote
from tradekit.reconcile import ReconciliationReport, VenueStatus
from tradekit.testing import DEFAULT_START

from .broker_campaign import Tally, Watcher, wait_until, watch_logs

SYM = "AAPL"
SEEDS = (5, 17, 29, 43)
STEPS = 160
#: faults each seed must inject (all seeds together: at least 50)
MIN_FAULTS_PER_SEED = 17
TICK = 0.01
PENDING = (OrderStatus.PENDING_NEW, OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_REPLACE)
_FAKE_TO_LOCAL = {
    "Filled": OrderStatus.FILLED,
    "Cancelled": OrderStatus.CANCELED,
    "ApiCancelled": OrderStatus.CANCELED,
    "Inactive": OrderStatus.REJECTED,
}


@pytest.fixture
def guard() -> Iterator[IBLogGuard]:
    with IBLogGuard() as g:
        yield g


def harness(seed: int, client_id: int = 9, **kw: Any) -> IBKRHarness:
    kw.setdefault("id_prefix", f"s{seed}")
    h = IBKRHarness(
        client_id=client_id,
        commission_wait_s=0.2,
        reconnect_delay=0.02,
        reconnect_max_delay=0.2,
        request_timeout=5.0,
        **kw,
    )
    h.fake.rng = random.Random(seed)
    return h


def fake_order(fake: FakeTWS, b: IBKRBroker, o: Order) -> FakeOrder | None:
    for fo in fake.orders.values():
        if fo.order_ref == o.client_order_id and fo.client_id == b.client_id:
            return fo
    return None


class Bot:
    """Quotes around the mid and moves its orders; the market moves so that resting orders
    fill at the fake, partly (the size at the touch) or fully."""

    def __init__(self, h: IBKRHarness, rng: random.Random, faults: Tally) -> None:
        self.h = h
        self.b: IBKRBroker = h.ibkr
        self.fake: FakeTWS = h.fake
        self.rng = rng
        self.faults = faults
        self.mid = 190.00
        self.orders: list[Order] = []
        self.refused = 0

    def quote(self) -> None:
        rng = self.rng
        bid, ask = round(self.mid - TICK, 2), round(self.mid + TICK, 2)
        bs, az = float(rng.randint(1, 12)), float(rng.randint(1, 12))
        self.fake.set_quote(SYM, bid, bs, ask, az)
        self.b.on_quote(Quote(self.h.clock.now_ns(), SYM, bid, bs, ask, az, self.b.venue))

    def live(self) -> list[Order]:
        return [
            o for o in self.orders if o.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)
        ]

    def submit(self) -> None:
        if not self.b.trading_up:
            return  # paused, as the engine pauses strategies while the venue is down
        rng = self.rng
        side = rng.choice((Side.BUY, Side.SELL))
        away = rng.randint(0, 4) * TICK
        px = round(self.mid - away if side is Side.BUY else self.mid + away, 2)
        early = rng.random() < 0.1
        if early:
            self.fake.fill_before_ack(1)
        try:
            self.orders.append(self.b.submit_order(SYM, side, rng.randint(2, 20), limit_price=px))
        except OrderRejected:
            self.refused += 1  # the rules, or TWS not ready: nothing was sent
            if early:
                self.fake._fill_before_ack.clear()
            return
        if early:
            self.faults["fill before the acknowledgement"] += 1

    def replace(self) -> None:
        live = self.live()
        if not live or not self.b.trading_up:
            return
        o = self.rng.choice(live)
        px = round((o.limit_price or self.mid) + self.rng.choice((-2, -1, 1, 2)) * TICK, 2)
        qty = o.qty if self.rng.random() < 0.6 else float(o.qty + self.rng.randint(-3, 5))
        try:
            self.b.replace_order(o, qty=max(qty, o.filled_qty + 1), limit_price=px)
        except OrderRejected:
            self.refused += 1

    def cancel(self) -> None:
        live = self.live()
        if not live:
            return
        o = self.rng.choice(live)
        fo = fake_order(self.fake, self.b, o)
        race = self.rng.random()
        if fo is not None and fo.is_open and fo.remaining >= 2 and race < 0.3:
            late = race < 0.15
            self.fake.fill_on_cancel(fo.order_id, fo.remaining // 2, late=late)
            self.faults[
                "fill after the cancel confirmation" if late else "fill on the cancel's arrival"
            ] += 1
        self.b.cancel_order(o)
        if fo is not None and fo.is_open and fo.remaining >= 2 and 0.3 <= race < 0.45:
            # an execution before the queued cancel reaches TWS
            self.fake.execute(fo, fo.remaining // 2, fo.lmt, 1)
            self.faults["fill racing the cancel request"] += 1

    def move(self) -> None:
        self.mid = round(self.mid + self.rng.choice((-3, -2, -1, 1, 2, 3)) * TICK, 2)
        self.quote()


class Injector:
    """One fault at a time; windows (duplicates, reordering, delays, missing commission reports,
    TWS down, its link to IB down) last a few steps."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.fake = bot.fake
        self.rng = bot.rng
        self.faults = bot.faults
        self.windows: dict[str, int] = {}
        self.undecodable = 0

    async def inject(self) -> None:
        rng, fake, faults = self.rng, self.fake, self.faults
        kind = rng.choice(
            (
                "socket drop",
                "socket drop",
                "TWS restart",
                "connectivity lost",
                "connectivity lost",
                "duplicates",
                "reordering",
                "delays",
                "missing commission reports",
                "malformed or unexpected message",
                "malformed or unexpected message",
                "malformed or unexpected message",
                "repeated messages",
                "a message lost with the connection",
            )
        )
        if kind in self.windows or (kind == "TWS restart" and "connectivity lost" in self.windows):
            return
        if kind == "socket drop":
            fake.drop_clients()
        elif kind == "TWS restart":
            await fake.stop()
            self.windows[kind] = rng.randint(2, 5)
        elif kind == "connectivity lost":
            if fake.server is None:
                return
            fake.broadcast_error(rng.choice((1100, 1100, 2110)))
            self.windows[kind] = rng.randint(1, 5)
        elif kind == "duplicates":
            fake.duplicate_events = 0.5
            self.windows[kind] = rng.randint(2, 6)
        elif kind == "reordering":
            fake.reorder_window = rng.randint(2, 5)
            self.windows[kind] = rng.randint(2, 6)
        elif kind == "delays":
            fake.delay_events_ms = rng.uniform(5.0, 40.0)
            self.windows[kind] = rng.randint(2, 6)
        elif kind == "missing commission reports":
            fake.send_commissions = False
            self.windows[kind] = rng.randint(1, 4)
        elif kind == "malformed or unexpected message":
            g = rng.choice(GARBAGE_KINDS)
            if not fake.send_garbage(g, self.bot.b.client_id):
                return
            if g in GARBAGE_UNDECODABLE:
                self.undecodable += 1
            kind = f"{kind} ({g})"
        elif kind == "a message lost with the connection":
            what = rng.choice(("placeOrder", "modify", "cancelOrder"))
            fake.cut_on(what)  # armed: the next one breaks the connection
            kind = f"{kind} ({what})"
        else:
            placed = [fo for fo in fake.orders.values() if fo.client_id == self.bot.b.client_id]
            if not placed or not fake.repeat_last(rng.choice(placed)):
                return
        faults[kind] += 1

    async def tick(self) -> None:
        for name in list(self.windows):
            self.windows[name] -= 1
            if self.windows[name] <= 0:
                del self.windows[name]
                await self.end(name)

    async def end(self, name: str) -> None:
        fake = self.fake
        if name == "TWS restart":
            await fake.start()  # back on the same port
        elif name == "connectivity lost":
            fake.broadcast_error(self.rng.choice((1101, 1102)))
        elif name == "duplicates":
            fake.duplicate_events = False
        elif name == "reordering":
            fake.reorder_window = 0
        elif name == "delays":
            fake.delay_events_ms = 0.0
        elif name == "missing commission reports":
            fake.send_commissions = True

    async def heal(self) -> None:
        for name in list(self.windows):
            await self.end(name)
        self.windows.clear()
        fake = self.fake
        fake._fill_on_cancel.clear()
        fake._late_on_cancel.clear()
        fake._fill_before_ack.clear()
        fake._cut_on.clear()
        fake.flush_events()


# ------------------------------------------------------------------------------------ the checks


def check_books(h: IBKRHarness, watcher: Watcher) -> dict[str, int]:
    b, fake = h.ibkr, h.fake
    mine = [fo for fo in fake.orders.values() if fo.client_id == b.client_id]
    refs = [fo.order_ref for fo in mine]
    assert len(refs) == len(set(refs)), "an order placed twice at TWS"
    by_ref = {fo.order_ref: fo for fo in mine}
    assert set(by_ref) <= {o.client_order_id for o in b.orders}, "an order at TWS not ours"
    execs = [e for e in fake.executions if e.order.client_id == b.client_id]
    outcome: dict[str, int] = {}
    for o in b.orders:
        cid = o.client_order_id
        outcome[o.status.value] = outcome.get(o.status.value, 0) + 1
        assert o.status not in PENDING, f"{o!r} stuck"
        assert o.filled_qty == pytest.approx(sum(f.qty for f in o.fills), abs=1e-9), o
        fo = by_ref.get(cid)
        if fo is None:  # never reached TWS: refused, cancelled before it left, or lost on the way
            assert o.status in (OrderStatus.REJECTED, OrderStatus.CANCELED, OrderStatus.LOST), o
            assert o.filled_qty == 0
            continue
        assert o.status is not OrderStatus.LOST, f"{o!r} LOST but TWS has it"
        assert o.broker_order_id == str(fo.order_id)
        theirs = sorted((e.exec_id, e.shares, e.price) for e in execs if e.order is fo)
        ours = sorted((f.fill_id, f.qty, f.price) for f in o.fills)
        assert ours == theirs, (o, ours, theirs)
        assert o.filled_qty == pytest.approx(fo.filled), (o, fo.filled)
        if fo.is_open:
            assert o.is_open, f"{o!r} is open at TWS ({fo.status})"
            assert o.qty == pytest.approx(fo.qty) and o.limit_price == pytest.approx(fo.lmt), (
                o,
                fo,
            )
            want = OrderStatus.PARTIALLY_FILLED if fo.filled > 0 else OrderStatus.NEW
            assert o.status is want, (o, fo.status)
        else:
            assert o.status is _FAKE_TO_LOCAL[fo.status], (o, fo.status)
    open_here = {o.client_order_id for o in b.open_orders()}
    open_there = {ref for ref, fo in by_ref.items() if fo.is_open}
    assert open_here == open_there
    ids = [f.fill_id for o in b.orders for f in o.fills]
    assert len(ids) == len(set(ids)), "a fill counted twice"
    assert sorted(f.fill_id for f in watcher.fills) == sorted(ids)
    signed = sum(e.shares if e.side == "BOT" else -e.shares for e in execs)
    assert fake.positions.get(SYM, [0.0])[0] == pytest.approx(signed)
    assert b.position(SYM) == pytest.approx(signed), (b.position(SYM), signed)
    return outcome


def _expected_ib_record(r: logging.LogRecord) -> bool:
    """ib_async's own logs of the injected garbage (decode errors, a status of an order it does
    not know)."""
    msg = r.getMessage()
    return r.name.startswith("ib_async") and (
        msg.startswith("Error handling fields") or "No order found" in msg
    )


# ---------------------------------------------------------------------------------- the campaign


@pytest.mark.parametrize("seed", SEEDS)
async def test_fault_campaign(seed: int, guard: IBLogGuard) -> None:
    rng = random.Random(seed)
    faults = Tally()
    watcher = Watcher()
    with watch_logs("ib_async", "tradekit") as logs:
        async with harness(seed) as h:
            b = h.ibkr
            b.add_listener(watcher)
            b.add_status_listener(watcher)
            bot = Bot(h, rng, faults)
            inj = Injector(bot)
            bot.quote()
            for _ in range(STEPS):
                action = rng.random()
                if action < 0.35:
                    bot.submit()
                elif action < 0.55:
                    bot.replace()
                elif action < 0.70:
                    bot.cancel()
                else:
                    bot.move()
                if rng.random() < 0.3:
                    await inj.inject()
                await inj.tick()
                await asyncio.sleep(rng.uniform(0.0, 0.02))
            # TWS is well again: reconnect, reconcile, settle
            await inj.heal()
            s = b.session
            assert s is not None
            await wait_until(lambda: s.ready and b.trading_up, what="reconnected, reconciled")
            await b.sync()
            await wait_until(lambda: not any(o.status in PENDING for o in b.orders), what="settled")
            await asyncio.sleep(b.commission_wait_s)  # (fills waiting for a lost commission)
            report = await b.reconcile("after the campaign")
            await b.sync()
            outcome = check_books(h, watcher)
            assert isinstance(report, ReconciliationReport)
            assert report.clean and report.lost == (), report
            assert report.positions.get(SYM, 0.0) == pytest.approx(
                h.fake.positions.get(SYM, [0])[0]
            )
            assert b.reconciliations[-1] is report is b.last_reconciliation
            assert not watcher.strange, watcher.strange
            watcher.check_statuses()
            if faults["socket drop"] + faults["TWS restart"] + faults["connectivity lost"]:
                assert any(not st.up for st in watcher.statuses)
            assert all(r.venue == b.venue for r in watcher.reports)
            print(
                f"\nseed {seed}: {faults.total} faults {dict(faults)}; {len(b.orders)} orders "
                f"{outcome}; {len(h.fake.executions)} executions; {bot.refused} refused "
                f"locally; {s.connects} connections; {len(b.reconciliations)} reconciliations; "
                f"{h.fake.duplicated} messages duplicated, {h.fake.held_back} held back"
            )
    # the only ib_async errors are those of the garbage injected (each decode error once at most)
    # and statuses of orders ib_async does not know (garbage, or repeated after a reconnect)
    unexpected = [r for r in guard.records if not _expected_ib_record(r)]
    assert not unexpected, [f"{r.name}: {r.getMessage()[:500]}" for r in unexpected]
    undecoded = [r for r in guard.records if r.getMessage().startswith("Error handling fields")]
    assert len(undecoded) <= inj.undecodable
    guard.records.clear()
    # ib_async logs every TWS error code (202, 1100, 10148, ...) as an error: only tracebacks
    # (but those of the injected garbage) count there; the adapter may log errors it handled
    problems = logs.problems(
        lambda r: (
            _expected_ib_record(r)
            or (r.name.startswith(("ib_async", "tradekit.brokers")) and not r.exc_info)
        )
    )
    assert not problems, "\n".join(problems)
    assert faults.total >= MIN_FAULTS_PER_SEED, dict(faults)
    assert len(SEEDS) * MIN_FAULTS_PER_SEED >= 50


# ------------------------------------------------------------------------------- focused checks


async def test_unknown_open_orders_cancelled_when_asked(guard: IBLogGuard) -> None:
    clock = SimClock(DEFAULT_START)
    async with FakeTWS(clock=clock) as fake:
        fake.set_quote(SYM, 190.00, 500, 190.02, 500)
        # an order a previous session of our client id left open
        old = IBKRBroker(port=fake.port, client_id=12, clock=clock, id_prefix="old", symbols=[SYM])
        async with old:
            old.on_quote(Quote(clock.now_ns(), SYM, 190.00, 500, 190.02, 500, old.venue))
            left = old.submit_order(SYM, "buy", 10, limit_price=189.50)
            await old.sync()
            assert left.status is OrderStatus.NEW
        b = IBKRBroker(port=fake.port, client_id=12, clock=clock, id_prefix="new")
        b.unknown_orders = "cancel"
        watcher = Watcher()
        b.add_listener(watcher)
        b.add_status_listener(watcher)
        async with b:
            rep = b.last_reconciliation
            assert rep is not None and rep.reason == "connect"
            assert rep.cancelled == (left.client_order_id,) and rep.adopted == ()
            await b.sync()
            assert b.get_order(left.client_order_id) is None
            fo = fake_order(fake, b, left)
            assert fo is not None and fo.status == "Cancelled"
            assert watcher.reports == [] or watcher.reports[-1] is rep


async def test_an_order_tws_never_got_is_lost_after_one_look(guard: IBLogGuard) -> None:
    async with harness(0, client_id=13, id_prefix="l") as h:
        b = h.ibkr
        o = b.submit_order(SYM, "buy", 10, limit_price=189.50)
        await h.settle()
        fo = fake_order(h.fake, b, o)
        assert fo is not None
        del h.fake.orders[(fo.client_id, fo.order_id)]  # TWS lost it
        reps = [await b.reconcile(f"check {i}") for i in range(3)]
        assert [r.lost for r in reps] == [(o.client_order_id,), (), ()]
        assert o.status is OrderStatus.LOST and b.lost_after_lookups == 1
        assert not reps[0].clean and reps[1].clean


async def test_venue_status_on_a_disconnect_and_on_1100(guard: IBLogGuard) -> None:
    async with harness(0, client_id=14, id_prefix="v") as h:
        b, fake = h.ibkr, h.fake
        watcher = Watcher()
        b.add_listener(watcher)
        b.add_status_listener(watcher)
        o = b.submit_order(SYM, "buy", 10, limit_price=189.50)
        await h.settle()
        s = b.session
        assert s is not None
        fake.drop_clients()
        await wait_until(lambda: not b.trading_up)
        fo = fake_order(fake, b, o)
        assert fo is not None
        fake.execute(fo, 4, 189.50)  # while nobody listens
        await wait_until(lambda: b.trading_up and s.ready)
        assert [(st.up, st.reason) for st in watcher.statuses] == [
            (False, f"disconnected at {b.address}"),
            (True, "reconnect"),
        ]
        assert isinstance(watcher.statuses[0], VenueStatus)
        rep = watcher.reports[-1]
        assert rep.reason == "reconnect" and rep.matched == (o.client_order_id,)
        assert len(rep.fills_recovered) == 1 and rep.clean and o.filled_qty == 4
        # TWS loses IB: paused until 1101/1102, orders refused meanwhile
        fake.broadcast_error(1100)
        await b.sync()
        assert not b.trading_up and [st.up for st in watcher.statuses][-1] is False
        with pytest.raises(OrderRejected) as info:
            b.submit_order(SYM, "buy", 10, limit_price=189.00)
        assert info.value.reason is RejectReason.BROKER
        fake.broadcast_error(1102)
        await wait_until(lambda: b.trading_up and s.ready)
        assert [st.up for st in watcher.statuses] == [False, True, False, True]
        assert watcher.reports[-1].reason == "1102"
        assert s.connects == 2


async def test_another_clients_order_with_a_colliding_id_is_ignored(guard: IBLogGuard) -> None:
    async with harness(0, client_id=15, id_prefix="c") as h:
        b = h.ibkr
        o = b.submit_order(SYM, "buy", 10, limit_price=189.50)
        await h.settle()
        assert h.fake.send_garbage("foreign_order", b.client_id) == 1  # same orderId, client 1015
        await b.sync()
        assert o.status is OrderStatus.NEW and o.filled_qty == 0 and b.position(SYM) == 0
        assert not guard.records


async def test_concurrent_reconciliations_do_not_orphan_requests(guard: IBLogGuard) -> None:
    async with harness(0, client_id=16, id_prefix="k") as h:
        b = h.ibkr
        o = b.submit_order(SYM, "buy", 10, limit_price=189.50)
        await h.settle()
        # (ib_async files reqOpenOrders answers under one key: two in flight would orphan one)
        r1, r2, opened = await asyncio.gather(
            b.reconcile("one"), b.reconcile("two"), b.get_open_orders()
        )
        assert r1.matched == r2.matched == (o.client_order_id,) and opened == [o]


async def test_a_cancel_lost_with_the_connection_is_sent_again(guard: IBLogGuard) -> None:
    async with harness(0, client_id=17, id_prefix="x") as h:
        b, fake = h.ibkr, h.fake
        o = b.submit_order(SYM, "buy", 10, limit_price=189.50)
        await h.settle()
        s = b.session
        assert s is not None
        fake.cut_on("cancelOrder")
        b.cancel_order(o)
        await wait_until(lambda: fake.cut_messages["cancelOrder"] == 1)
        await wait_until(lambda: not b.trading_up)
        await wait_until(lambda: s.ready and b.trading_up)
        await b.sync()
        assert o.status is OrderStatus.CANCELED
        assert fake_order(fake, b, o).status == "Cancelled"  # type: ignore[union-attr]
        assert fake.requests("cancelOrder") == 2  # the lost one, and once more


async def test_a_modify_lost_with_the_connection_is_refused(guard: IBLogGuard) -> None:
    async with harness(0, client_id=18, id_prefix="m") as h:
        b, fake = h.ibkr, h.fake
        o = b.submit_order(SYM, "buy", 10, limit_price=189.50)
        await h.settle()
        s = b.session
        assert s is not None
        fake.cut_on("modify")
        b.replace_order(o, limit_price=189.60)
        await wait_until(lambda: fake.cut_messages["modify"] == 1)
        await wait_until(lambda: not b.trading_up)
        await wait_until(lambda: s.ready and b.trading_up)
        await b.sync()
        assert o.status is OrderStatus.NEW and o.limit_price == 189.50
        assert fake_order(fake, b, o).lmt == 189.50  # type: ignore[union-attr]


async def test_a_modify_whose_answer_was_lost_is_confirmed(guard: IBLogGuard) -> None:
    async with harness(0, client_id=19, id_prefix="a") as h:
        b, fake = h.ibkr, h.fake
        o = b.submit_order(SYM, "buy", 10, limit_price=189.50)
        await h.settle()
        s = b.session
        assert s is not None
        fake.delay_events_ms = 60_000.0  # TWS's answers are held back ...
        b.replace_order(o, qty=12, limit_price=189.60)
        await wait_until(lambda: fake.requests("placeOrder") == 2)
        await asyncio.sleep(0.05)
        fake.drop_clients()  # ... and lost with the connection
        fake.delay_events_ms = 0.0
        await wait_until(lambda: not b.trading_up)
        await wait_until(lambda: b.trading_up and s.ready)
        await b.sync()
        assert o.status is OrderStatus.NEW and (o.qty, o.limit_price) == (12, 189.60)
        fo = fake_order(fake, b, o)
        assert fo is not None and (fo.qty, fo.lmt) == (12, 189.60)


async def test_a_modify_confirmation_filed_into_an_open_orders_answer_is_kept(
    guard: IBLogGuard,
) -> None:
    async with harness(0, client_id=20, id_prefix="w") as h:
        b, fake = h.ibkr, h.fake
        o = b.submit_order(SYM, "buy", 10, limit_price=189.50)
        await h.settle()
        fake.delay_events_ms = 60_000.0  # the modify's confirmation is held back ...
        handle = fake._handle

        def answer(c: Any, f: list[str]) -> None:
            if f[0] == "5":  # ... until TWS answers reqOpenOrders: ib_async files it there
                fake.flush_events()
            handle(c, f)

        fake._handle = answer  # type: ignore[method-assign]
        b.replace_order(o, limit_price=189.60)
        await wait_until(lambda: fake.requests("placeOrder") == 2)
        opened = await b.get_open_orders()
        fake.delay_events_ms = 0.0
        await b.sync()
        assert opened == [o]
        assert o.status is OrderStatus.NEW and o.limit_price == 189.60
