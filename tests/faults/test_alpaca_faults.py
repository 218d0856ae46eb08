"""A seeded fault-injection campaign against ``AlpacaBroker`` (the real alpaca-py SDK against
``FakeAlpaca`` on 127.0.0.1).

A bot submits, replaces and cancels limit orders around a moving market while the fake, at
random moments, drops the trade stream (and refuses it for a while), answers with 429 and 5xx
storms (some after the request took effect), duplicates, reorders and delays trade updates,
fills orders racing their cancels (before the cancel lands, or with the fill's event after the
cancel confirmation), and puts malformed messages on the stream. Each seed's faults are counted.
When the fake is well again, the broker reconnects and reconciles, and the books must agree with
the fake exactly: no lost or stuck order, no order placed twice, fills and positions equal to
the fake's executions, each order's filled quantity the sum of its fills. Nothing may escape as
an exception (a log record with a traceback fails the run). Deterministic: the bot, the faults
and the fake's event shuffling are seeded; no assertion is about time.

Also here: open orders Alpaca loses are looked up by client order id a bounded number of times
and then marked LOST; ``unknown_orders = "cancel"``; the venue status and reconciliation reports
the broker publishes.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("alpaca")

from fakes.alpaca import GARBAGE_KINDS, AlpacaHarness, FakeAlpaca, FakeOrder

from tradekit.brokers.alpaca import AlpacaBroker
from tradekit.enums import OrderStatus, Side
from tradekit.errors import OrderRejected
from tradekit.model import Order, Quote
from tradekit.reconcile import ReconciliationReport, VenueStatus

from .broker_campaign import Tally, Watcher, wait_until, watch_logs

SYM = "AAPL"
SEEDS = (11, 23, 37, 41)
STEPS = 120
#: faults each seed must inject (all seeds together: at least 50)
MIN_FAULTS_PER_SEED = 17
TICK = 0.01
PENDING = (OrderStatus.PENDING_NEW, OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_REPLACE)
_FAKE_TO_LOCAL = {
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}


def harness(seed: int, **kw: Any) -> AlpacaHarness:
    kw.setdefault("id_prefix", f"s{seed}")
    return AlpacaHarness(
        fake_kwargs={"seed": seed, "rate_limit": 1_000_000},
        rate_limit=(1_000_000, 60.0),
        stream_backoff=(0.02, 0.1),
        poll_interval=0.05,
        backoff=(0.002, 0.02),
        auto_instruments=False,
        **kw,
    )


class Bot:
    """Quotes around the mid and moves its orders, as a market maker would; the market moves so
    that resting orders fill, partly or fully."""

    def __init__(self, h: AlpacaHarness, rng: random.Random, faults: Tally) -> None:
        self.h = h
        self.b: AlpacaBroker = h.alpaca
        self.fake: FakeAlpaca = h.fake
        self.rng = rng
        self.faults = faults
        self.mid = 190.00
        self.orders: list[Order] = []
        self.refused = 0

    def quote(self) -> None:
        rng = self.rng
        bid, ask = round(self.mid - TICK, 2), round(self.mid + TICK, 2)
        bs, az = float(rng.randint(1, 12)), float(rng.randint(1, 12))
        self.fake.set_quote(SYM, bid, bs, ask, az, match=True)
        self.b.on_quote(Quote(self.h.clock.now_ns(), SYM, bid, bs, ask, az, self.b.venue))

    def live(self) -> list[Order]:
        return [
            o for o in self.orders if o.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)
        ]

    def submit(self) -> None:
        rng = self.rng
        room = self.b.sell_capacity(SYM)
        side = Side.SELL if room >= 1 and rng.random() < 0.5 else Side.BUY
        qty = rng.randint(1, int(min(room, 20)) if side is Side.SELL else 20)
        away = rng.randint(0, 4) * TICK
        px = round(self.mid - away if side is Side.BUY else self.mid + away, 2)
        try:
            self.orders.append(self.b.submit_order(SYM, side, qty, limit_price=px))
        except OrderRejected:
            self.refused += 1  # the local rules (wash trade, short sale, ...): nothing was sent

    def replace(self) -> None:
        live = self.live()
        if not live:
            return
        o = self.rng.choice(live)
        step = self.rng.choice((-2, -1, 1, 2)) * TICK
        px = round((o.limit_price or self.mid) + step, 2)
        qty = o.qty if self.rng.random() < 0.6 else float(o.qty + self.rng.randint(-3, 5))
        try:
            self.b.replace_order(o, qty=max(qty, o.filled_qty + 1), limit_price=px)
        except OrderRejected:
            self.refused += 1
            return
        fo = self.fake.orders.get(self.fake.current_id(o.client_order_id) or "")
        if fo is not None and fo.is_open and fo.remaining > 1 and self.rng.random() < 0.3:
            # the venue fills part of it while the replace is on its way: the replacement is
            # sized from the fills known when it left
            self.fake.fill(fo.id, float(fo.remaining // 2))
            self.faults["fill racing a replace"] += 1

    def cancel(self) -> None:
        live = self.live()
        if not live:
            return
        o = self.rng.choice(live)
        vid = self.fake.current_id(o.client_order_id)
        race = self.rng.random()
        fo = self.fake.orders.get(vid or "")
        if fo is not None and fo.is_open and race < 0.25 and fo.remaining > 1:
            # the venue fills part of it after the cancel request, its event after the
            # cancel confirmation (and sometimes lost: the stream drops in between)
            self.fake.fill_on_cancel[fo.client_order_id] = (float(fo.remaining // 2), None, True)
            if self.rng.random() < 0.5:
                self.fake.cut_after_cancel.add(fo.client_order_id)
                self.faults["fill after the cancel confirmation, its event lost"] += 1
            else:
                self.faults["fill after the cancel confirmation"] += 1
        self.b.cancel_order(o)
        if fo is not None and fo.is_open and 0.25 <= race < 0.5:
            # a fill the venue makes before the cancel request reaches it
            self.fake.fill(fo.id, float(max(Decimal(1), fo.remaining // 2)))
            self.faults["fill racing the cancel request"] += 1

    def move(self) -> None:
        self.mid = round(self.mid + self.rng.choice((-3, -2, -1, 1, 2, 3)) * TICK, 2)
        self.quote()


class Injector:
    """Injects one fault at a time, at random; windows (duplicates, reordering, delays, a
    refused stream) last a few steps."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.fake = bot.fake
        self.rng = bot.rng
        self.faults = bot.faults
        self.windows: dict[str, int] = {}

    async def inject(self) -> None:
        rng, fake, faults = self.rng, self.fake, self.faults
        kind = rng.choice(
            (
                "stream drop",
                "stream drop",
                "429 storm",
                "5xx storm",
                "5xx storm",
                "duplicates",
                "reordering",
                "delays",
                "malformed message",
                "malformed message",
                "repeated event",
            )
        )
        if kind == "stream drop":
            refuse = rng.random() < 0.5
            if refuse:
                self.windows["refused stream"] = rng.randint(2, 6)
            await fake.drop_stream(refuse=refuse)
        elif kind == "429 storm":
            fake.fail_next(rng.randint(2, 6), 429)
        elif kind == "5xx storm":
            fake.fail_next(
                rng.randint(1, 3),
                rng.choice((500, 502, 503, 504)),
                method=rng.choice(("*", "POST", "PATCH", "DELETE", "GET")),
                apply=rng.random() < 0.5,  # took effect, the answer lost: an unknown outcome
            )
        elif kind == "duplicates":
            fake.duplicate_events = 0.5
            self.windows[kind] = rng.randint(2, 6)
        elif kind == "reordering":
            fake.reorder_window = rng.randint(2, 5)
            self.windows[kind] = rng.randint(2, 6)
        elif kind == "delays":
            fake.delay_events_ms = rng.uniform(5.0, 30.0)
            self.windows[kind] = rng.randint(2, 6)
        elif kind == "malformed message":
            g = rng.choice(GARBAGE_KINDS)
            fake.send_garbage(g)
            kind = f"malformed message ({g})"
        else:
            done = [o for o in self.bot.orders if o.broker_order_id]
            if not done:
                return
            fake.resend_last(rng.choice(done).client_order_id)
        faults[kind] += 1

    def tick(self) -> None:
        for name in list(self.windows):
            self.windows[name] -= 1
            if self.windows[name] <= 0:
                del self.windows[name]
                self.end(name)

    def end(self, name: str) -> None:
        fake = self.fake
        if name == "refused stream":
            fake.restore_trade_stream()
        elif name == "duplicates":
            fake.duplicate_events = False
        elif name == "reordering":
            fake.reorder_window = 0
        elif name == "delays":
            fake.delay_events_ms = 0.0

    def heal(self) -> None:
        for name in list(self.windows):
            self.end(name)
        self.windows.clear()
        fake = self.fake
        with fake.lock:
            fake.faults.clear()
            fake.fill_on_cancel.clear()
            fake.cut_after_cancel.clear()
        fake.restore_trade_stream()


# ------------------------------------------------------------------------------------ the checks


def chains(fake: FakeAlpaca, b: AlpacaBroker) -> dict[str, list[FakeOrder]]:
    """The fake's orders by our client order id: each a replace chain, oldest first. Fails when
    an order at the fake belongs to no order of ours, or two chains to one."""
    with fake.lock:
        orders = dict(fake.orders)
    out: dict[str, list[FakeOrder]] = {}
    for fo in orders.values():
        if fo.replaces is not None:
            continue
        assert b.get_order(fo.client_order_id) is not None, f"{fo.client_order_id} is not ours"
        assert fo.client_order_id not in out, f"two orders at Alpaca for {fo.client_order_id}"
        chain = [fo]
        while chain[-1].replaced_by is not None:
            nxt = orders[chain[-1].replaced_by]
            assert nxt.replaces == chain[-1].id
            chain.append(nxt)
        out[fo.client_order_id] = chain
    in_chains = sum(len(c) for c in out.values())
    assert in_chains == len(orders), "an order at Alpaca outside every replace chain"
    return out


def check_fills(o: Order, chain: list[FakeOrder], fake: FakeAlpaca) -> None:
    """Our fills of ``o`` cover the fake's executions of its chain exactly once: a fill carries
    an execution's id (that execution), or ``<alpaca id>:<filled qty>`` when it was rebuilt from
    the cumulative quantity (the executions of that Alpaca order up to that quantity)."""
    ids = {fo.id for fo in chain}
    execs = [e for e in fake.executions if e.order_id in ids]
    by_exec = {e.exec_id: e for e in execs}
    covered: dict[str, Decimal] = {fo.id: Decimal(0) for fo in chain}
    spans: list[tuple[str, Decimal, Decimal]] = []
    for f in o.fills:
        qty = Decimal(str(round(f.qty, 9))).normalize()
        if f.fill_id in by_exec:
            e = by_exec[f.fill_id]
            assert e.qty == qty, (f, e)
            spans.append((e.order_id, e.cum_qty - e.qty, e.cum_qty))
        else:
            vid, _, cum = f.fill_id.rpartition(":")
            assert vid in ids, f"fill {f.fill_id} of {o.client_order_id} matches no execution"
            end = Decimal(cum)
            spans.append((vid, end - qty, end))
    for vid in ids:
        mine = sorted((lo, hi) for v, lo, hi in spans if v == vid)
        edges = sorted({Decimal(0)} | {e.cum_qty for e in execs if e.order_id == vid})
        at = Decimal(0)
        for lo, hi in mine:
            assert lo == at, f"{o.client_order_id}: fills of {vid} overlap or leave a gap at {at}"
            assert hi in edges, f"{o.client_order_id}: a fill of {vid} ends inside an execution"
            at = hi
        covered[vid] = at
        last = max(edges)
        assert at == last, f"{o.client_order_id}: {at} of {last} filled at {vid} counted"
    for f in o.fills:
        assert f.client_order_id == o.client_order_id and f.symbol == SYM and f.side is o.side


def check_books(h: AlpacaHarness, bot: Bot, watcher: Watcher) -> dict[str, int]:
    b, fake = h.alpaca, h.fake
    assert fake.duplicate_cid_posts == 0, "a client order id was posted twice"
    by_cid = chains(fake, b)
    outcome: dict[str, int] = {}
    for o in b.orders:
        cid = o.client_order_id
        outcome[o.status.value] = outcome.get(o.status.value, 0) + 1
        assert o.status not in PENDING, f"{o!r} stuck"
        assert o.filled_qty == pytest.approx(sum(f.qty for f in o.fills), abs=1e-9), o
        chain = by_cid.get(cid)
        if chain is None:  # never reached Alpaca: refused, cancelled before it left, or its
            # submit's outcome unknown and Alpaca could not find it since (LOST)
            assert o.status in (OrderStatus.REJECTED, OrderStatus.CANCELED, OrderStatus.LOST), o
            assert o.filled_qty == 0
            continue
        assert o.status is not OrderStatus.LOST, f"{o!r} LOST but Alpaca has it"
        last = chain[-1]
        filled = float(sum((fo.filled_qty for fo in chain), Decimal(0)))
        assert o.filled_qty == pytest.approx(filled, abs=1e-9), (o, [fo.filled_qty for fo in chain])
        check_fills(o, chain, fake)
        if last.is_open:
            prior = float(sum((fo.filled_qty for fo in chain[:-1]), Decimal(0)))
            assert o.is_open, f"{o!r} is open at Alpaca ({last.status})"
            assert o.qty == pytest.approx(prior + float(last.qty)), (o, last)
            assert o.limit_price == pytest.approx(float(last.limit_price or 0)), (o, last)
            want = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.NEW
            assert o.status is want, (o, last)
        else:
            assert o.status is _FAKE_TO_LOCAL[last.status], (o, last.status)
    # every open order at Alpaca is open here (checked through its chain above)
    open_here = {o.client_order_id for o in b.open_orders()}
    open_there = {cid for cid, c in by_cid.items() if c[-1].is_open}
    assert open_here == open_there
    # fills: each once, the listeners saw the same ones
    ids = [f.fill_id for o in b.orders for f in o.fills]
    assert len(ids) == len(set(ids)), "a fill counted twice"
    assert sorted(f.fill_id for f in watcher.fills) == sorted(ids)
    # positions: ours == Alpaca's == the sum of its executions
    signed = float(sum((e.qty if e.side == "buy" else -e.qty for e in fake.executions), Decimal(0)))
    assert fake.position(SYM) == pytest.approx(signed)
    assert b.position(SYM) == pytest.approx(signed), (b.position(SYM), signed)
    return outcome


# ---------------------------------------------------------------------------------- the campaign


@pytest.mark.parametrize("seed", SEEDS)
async def test_fault_campaign(seed: int) -> None:
    rng = random.Random(seed)
    faults = Tally()
    watcher = Watcher()
    with watch_logs("alpaca", "websockets", "tradekit") as logs:
        async with harness(seed) as h:
            b = h.alpaca
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
                if rng.random() < 0.35:
                    await inj.inject()
                inj.tick()
                await asyncio.sleep(rng.uniform(0.0, 0.02))
            # the venue is well again: reconnect, reconcile, settle
            inj.heal()
            await h.fake.flush()  # (a stream cut still queued happens now)
            await wait_until(lambda: b.stream_up and b.trading_up, what="stream back, reconciled")
            await h.settle(timeout=10.0)
            await wait_until(lambda: not any(o.status in PENDING for o in b.orders), what="settled")
            fake_report = await b.reconcile("after the campaign")
            await h.settle(timeout=10.0)
            await wait_until(
                lambda: b.stream_up and b.trading_up and all(s.up for s in watcher.statuses[-1:]),
                what="up at the end",
            )
            outcome = check_books(h, bot, watcher)
            assert isinstance(fake_report, ReconciliationReport)
            assert fake_report.clean, fake_report
            assert fake_report.lost == () and fake_report.position_mismatches == {}
            assert fake_report.positions.get(SYM, 0.0) == pytest.approx(h.fake.position(SYM))
            assert not watcher.strange, watcher.strange
            watcher.check_statuses()
            drops = faults["stream drop"]
            if drops:
                assert any(not s.up for s in watcher.statuses), "stream drops must be reported"
            assert all(r.venue == b.venue for r in watcher.reports)
            assert b.reconciliations >= len(watcher.reports) >= 1 + (drops > 0)
            assert b.stream_skipped <= h.fake.garbage_delivered
            print(
                f"\nseed {seed}: {faults.total} faults {dict(faults)}; {len(b.orders)} orders "
                f"{outcome}; {len(h.fake.executions)} executions; {bot.refused} refused "
                f"locally; {b.stream_connects} stream connections; {len(watcher.reports)} "
                f"reconciliations published; {b.stream_skipped} malformed messages skipped"
            )
    # tracebacks fail the run, and errors but the adapter's own (a request that failed after its
    # retries, reported to the order as a rejection)
    problems = logs.problems(lambda r: r.name == "tradekit.brokers.alpaca" and not r.exc_info)
    assert not problems, "\n".join(problems)
    assert faults.total >= MIN_FAULTS_PER_SEED, dict(faults)
    assert len(SEEDS) * MIN_FAULTS_PER_SEED >= 50


# ------------------------------------------------------------------------------- focused checks


@pytest.fixture
async def h() -> AsyncIterator[AlpacaHarness]:
    async with harness(0, id_prefix="f") as harness_:
        yield harness_


async def test_an_order_alpaca_lost_is_looked_up_a_bounded_number_of_times(
    h: AlpacaHarness,
) -> None:
    b = h.alpaca
    watcher = Watcher()
    b.add_listener(watcher)
    b.add_status_listener(watcher)
    o = b.submit_order(SYM, Side.BUY, 10, limit_price=189.50)
    await h.settle()
    assert o.status is OrderStatus.NEW
    vid = h.fake.current_id(o.client_order_id)
    assert vid is not None
    h.fake.forget(vid)
    looked = h.fake.count("GET", "/v2/orders:by_client_order_id")
    reports = [await b.reconcile(f"check {i}") for i in range(b.lost_after_lookups + 2)]
    assert [r.lost for r in reports] == [(), (), (o.client_order_id,), (), ()]
    assert o.status is OrderStatus.LOST and not reports[2].clean
    # one look-up by client order id per reconciliation until LOST, none after
    assert h.fake.count("GET", "/v2/orders:by_client_order_id") - looked == b.lost_after_lookups
    assert [r.lost for r in watcher.reports if r.lost] == [(o.client_order_id,)]


async def test_a_submit_whose_outcome_stays_unknown_is_lost_after_bounded_look_ups(
    h: AlpacaHarness,
) -> None:
    b = h.alpaca
    b.lost_recheck_s = ()  # only reconciliations look it up
    h.fake.inject("POST", "/v2/orders", 503, times=100)  # refused, but who knows
    h.fake.inject("GET", "/v2/orders:by_client_order_id", 503, times=100)
    o = b.submit_order(SYM, Side.BUY, 10, limit_price=189.50)
    await h.settle()
    assert o.status is OrderStatus.LOST and h.fake.orders == {}
    h.fake.faults.clear()
    looked = h.fake.count("GET", "/v2/orders:by_client_order_id")
    reports = [await b.reconcile(f"check {i}") for i in range(b.lost_after_lookups + 2)]
    assert [r.lost for r in reports] == [(), (), (o.client_order_id,), (), ()]
    assert h.fake.count("GET", "/v2/orders:by_client_order_id") - looked == b.lost_after_lookups
    assert o.status is OrderStatus.LOST and h.fake.count("POST", "/v2/orders", 200) == 0


async def test_a_submit_whose_outcome_was_unknown_is_found_by_reconciliation(
    h: AlpacaHarness,
) -> None:
    b = h.alpaca
    b.lost_recheck_s = ()
    h.fake.inject("POST", "/v2/orders", 500, apply=True)  # taken, the answer lost
    h.fake.inject("GET", "/v2/orders:by_client_order_id", 503, times=100)
    o = b.submit_order(SYM, Side.BUY, 10, limit_price=189.50)
    await h.settle()
    assert o.status is OrderStatus.LOST
    vid = h.fake.current_id(o.client_order_id)
    assert vid is not None
    b.poll_interval = 3600.0
    await h.fake.drop_stream(refuse=True)  # its events are lost
    await wait_until(lambda: not b.stream_up)
    h.fake.fill(vid, 10)  # it fills at Alpaca meanwhile: never in the open list
    h.fake.faults.clear()
    rep = await b.reconcile()
    assert rep.closed == ((o.client_order_id, "filled"),) and len(rep.fills_recovered) == 1
    assert o.status is OrderStatus.FILLED and b.position(SYM) == 10


async def test_an_order_found_again_starts_its_look_ups_afresh(h: AlpacaHarness) -> None:
    b = h.alpaca
    o = b.submit_order(SYM, Side.BUY, 10, limit_price=189.50)
    await h.settle()
    vid = h.fake.current_id(o.client_order_id)
    assert vid is not None
    fo = h.fake.orders[vid]
    for _ in range(2):
        h.fake.forget(vid)  # missing twice (a glitch at the venue) ...
        for _ in range(b.lost_after_lookups - 1):
            assert (await b.reconcile()).lost == ()
        with h.fake.lock:  # ... and back
            h.fake.orders[vid] = fo
            h.fake.by_cid[fo.client_order_id] = vid
        assert (await b.reconcile()).matched == (o.client_order_id,)
    assert o.status is OrderStatus.NEW


async def test_unknown_open_orders_cancelled_when_asked() -> None:
    async with harness(0, id_prefix="mine") as h:
        other = h.fake  # an order placed by another program on the account
        b = h.alpaca
        b.unknown_orders = "cancel"
        with other.lock:
            other._post_order(
                '{"symbol": "AAPL", "side": "buy", "type": "limit", "time_in_force": "day", '
                '"qty": "5", "limit_price": "189.00", "client_order_id": "someone-else"}'
            )
        rep = await b.reconcile("restart")
        assert rep.cancelled == ("someone-else",) and rep.adopted == ()
        assert b.get_order("someone-else") is None
        assert other.orders[other.by_cid["someone-else"]].status == "canceled"
        assert await b.get_open_orders() == []


async def test_venue_status_and_reports_on_a_stream_drop(h: AlpacaHarness) -> None:
    b = h.alpaca
    watcher = Watcher()
    b.add_listener(watcher)
    b.add_status_listener(watcher)
    o = b.submit_order(SYM, Side.BUY, 10, limit_price=189.50)
    await h.settle()
    await h.fake.drop_stream(refuse=True)
    await wait_until(lambda: not b.trading_up, what="venue down")
    assert [s.up for s in watcher.statuses] == [False]
    assert isinstance(watcher.statuses[0], VenueStatus) and watcher.statuses[0].venue == b.venue
    vid = h.fake.current_id(o.client_order_id)
    assert vid is not None
    h.fake.fill(vid, 4)  # nobody listens
    h.fake.restore_trade_stream()
    await wait_until(lambda: b.trading_up, what="venue up")
    await h.settle()
    assert [s.up for s in watcher.statuses] == [False, True]
    rep = b.last_reconciliation
    assert rep is not None and rep.reason in (
        "stream reconnected",
        "polling while the stream is down",
    )
    recon = [r for r in watcher.reports if r.reason == "stream reconnected"]
    assert recon and recon[-1].matched == (o.client_order_id,)
    assert o.filled_qty == 4 and b.position(SYM) == 4
    assert sum(len(r.fills_recovered) for r in watcher.reports) == 1
    assert recon[-1].clean and recon[-1].positions == {SYM: 4}


async def test_malformed_stream_messages_are_skipped(h: AlpacaHarness) -> None:
    b = h.alpaca
    o = b.submit_order(SYM, Side.BUY, 10, limit_price=189.50)
    await h.settle()
    with watch_logs("alpaca", "websockets", "tradekit") as logs:
        for kind in GARBAGE_KINDS:
            h.fake.send_garbage(kind)
        await h.settle()
    assert b.stream_skipped == len(GARBAGE_KINDS) == h.fake.garbage_delivered
    assert not logs.problems(), logs.problems()
    assert o.status is OrderStatus.NEW and o.filled_qty == 0 and b.position(SYM) == 0
    await h.fill(o, 10)  # the stream still works
    assert o.status is OrderStatus.FILLED


async def test_a_fill_of_a_replaced_order_learnt_late_restates_the_quantity(
    h: AlpacaHarness,
) -> None:
    b = h.alpaca
    o = b.submit_order(SYM, Side.BUY, 10, limit_price=189.50)
    await h.settle()
    vid = h.fake.current_id(o.client_order_id)
    assert vid is not None
    b.poll_interval = 3600.0  # nothing polls meanwhile
    await h.fake.drop_stream(refuse=True)  # the fill's event will be lost
    await wait_until(lambda: not b.stream_up)
    h.fake.fill(vid, 3)
    b.replace_order(o, limit_price=189.55)  # sized from 0 filled: 10 more at Alpaca
    await h.settle()
    new = h.fake.current_id(o.client_order_id)
    assert new != vid and h.fake.orders[new or ""].qty == 10
    h.fake.restore_trade_stream()
    await wait_until(lambda: b.trading_up)
    await h.settle()
    assert o.filled_qty == 3 and o.qty == 13 and o.limit_price == 189.55
    assert o.status is OrderStatus.PARTIALLY_FILLED and b.position(SYM) == 3
