"""Cross-venue market making through the real IBKR adapter against the fake TWS: the message
cost of quoting on ARCA and hedging every fill on ISLAND.

    python bench/ibkr_xemm.py [--wall 120] [--sim-seconds 23400] [--seed 7] [--speed 1]

Two ``IBKRBroker`` instances share one fake TWS (``tests/fakes/tws.py``) on 127.0.0.1: route
``ARCA`` as client id 21 (venue ``arca``, the maker) and route ``ISLAND`` as client id 22 (venue
``island``, the taker). A ``SyntheticMarket`` with the venues ``arca`` (leading) and ``island``
(``lead_lag_ms`` behind) drives both the fake's per-exchange books (so it fills the resting maker
orders on the ARCA book and the hedges on the ISLAND book) and the engine; the engine's
simulated clock is the brokers' and the fake's clock. Each event is pushed to the fake, stepped
through the engine, then the adapter traffic is settled (every queued request sent, every
client message read by the fake, every answer read by the client, no fill waiting for its
commission report) before the next event, without sending anything extra (no ping).

Every client -> TWS message the fake reads is recorded per connection with its wall-clock and
simulated time. The run stops after ``--wall`` seconds of wall time or ``--sim-seconds`` of
market time, whichever comes first, and prints the span, the quote updates, the client messages
by type, messages per quote update, the peak message rate per wall-clock second (TWS's pacing
limit is about real seconds) and per simulated second, maker fills, hedge fills and the residue.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import re
import sys
import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

from fakes.tws import IN_NAMES, FakeTWS, IBLogGuard  # noqa: E402

from tradekit.brokers.ibkr import IBKRBroker  # noqa: E402
from tradekit.clock import SimClock  # noqa: E402
from tradekit.engine import Engine  # noqa: E402
from tradekit.enums import Side  # noqa: E402
from tradekit.feeds.synthetic import SyntheticMarket  # noqa: E402
from tradekit.fees import FeeModel  # noqa: E402
from tradekit.model import Fill, Order, Quote, Trade  # noqa: E402
from tradekit.strategies.cross_exchange_market_making import (  # noqa: E402
    CrossExchangeMarketMaking,
)
from tradekit.timeutil import NS_PER_S  # noqa: E402

SYMBOL = "AAPL"
MAKER, TAKER = "arca", "island"
#: venue -> (IB route, client id)
ROUTES: dict[str, tuple[str, int]] = {MAKER: ("ARCA", 21), TAKER: ("ISLAND", 22)}
DATE = "2026-11-24"  # a Tuesday


class RecordingTWS(FakeTWS):
    """The fake TWS, recording every client message: ``arrivals[client_id]`` holds
    ``(msg_id, wall monotonic s, simulated ns)``. ``FakeTWS`` paces per connection (TWS's 50
    messages a second are per API client); ``pacing_by_conn`` counts its error-100s by client id
    and ``combined_violations`` the seconds all connections together went over the limit
    (informational)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.arrivals: dict[int, list[tuple[int, float, int]]] = defaultdict(list)
        self._combined: deque[float] = deque()
        self.pacing_by_conn: Counter[int] = Counter()
        self.combined_violations = 0
        #: messages sent to each client id (counted from ``log``; see ``out_count``)
        self._out: Counter[int] = Counter()
        self._log_pos = 0

    def _count_in(self, c: Any, fields: list[str]) -> None:
        now = time.monotonic()
        self.arrivals[c.client_id].append((int(fields[0]), now, self.now_ns()))
        comb = self._combined
        comb.append(now)
        while comb and now - comb[0] > 1.0:
            comb.popleft()
        if len(comb) > self.msg_limit:
            self.combined_violations += 1
        before = self.pacing_violations
        super()._count_in(c, fields)
        if self.pacing_violations > before:
            self.pacing_by_conn[c.client_id] += 1

    def out_count(self, client_id: int) -> int:
        log = self.log
        for i in range(self._log_pos, len(log)):
            d, cid, _ = log[i]
            if d == "out":
                self._out[cid] += 1
        self._log_pos = len(log)
        # keep the log short: the counters above are what the run needs
        if self._log_pos > 50_000:
            del log[:]
            self._log_pos = 0
        return self._out[client_id]

    def in_count(self, client_id: int) -> int:
        return len(self.arrivals[client_id])


class _Collect(logging.Handler):
    """WARNING and above of the adapter's logger, by message text (exceptions by type)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        parts = [repr(a) if isinstance(a, BaseException) else str(a) for a in args]
        try:
            text = record.msg % tuple(parts) if parts else record.getMessage()
        except (TypeError, ValueError):
            text = record.getMessage()
        text = text.split(": ", 1)[-1]  # drop the address
        self.counts[re.sub(r"\d+", "N", text)[:160]] += 1


@dataclass
class RunStats:
    sim_start_ns: int = 0
    sim_end_ns: int = 0
    wall_s: float = 0.0
    events: int = 0
    market_quotes: int = 0
    quote_updates: int = 0  # maker quote actions: new, amended, cancelled
    maker_actions: Counter[str] = field(default_factory=Counter)
    msgs_by_type: Counter[str] = field(default_factory=Counter)
    msgs_by_conn: Counter[str] = field(default_factory=Counter)
    startup_msgs: int = 0
    run_msgs: int = 0
    peak_wall_1s: int = 0
    peak_wall_1s_by_conn: dict[str, int] = field(default_factory=dict)
    peak_sim_1s: int = 0
    maker_fills: int = 0
    maker_qty: float = 0.0
    hedge_fills: int = 0
    hedge_qty: float = 0.0
    hedge_orders: int = 0
    hedge_exchanges: Counter[str] = field(default_factory=Counter)
    fake_island_qty: float = 0.0
    residue: float = 0.0
    unhedged_at_end: float = 0.0
    pacing_errors: int = 0
    pacing_by_conn: dict[int, int] = field(default_factory=dict)
    pacer_waits: dict[str, tuple[int, float]] = field(default_factory=dict)
    settle_timeouts: int = 0
    decode_problems: list[str] = field(default_factory=list)
    ib_errors: Counter[int] = field(default_factory=Counter)  # TWS error codes the clients got
    combined_pacing: int = 0  # what FakeTWS's all-connections window would have reported
    combined_peak_fake: int = 0
    adapter_warnings: Counter[str] = field(default_factory=Counter)
    leg_events: Counter[str] = field(default_factory=Counter)

    @property
    def msgs_per_quote_update(self) -> float:
        return self.run_msgs / self.quote_updates if self.quote_updates else math.nan

    @property
    def maker_msgs_per_quote_update(self) -> float:
        n = self.msgs_by_conn.get("ARCA(21)", 0)
        return n / self.quote_updates if self.quote_updates else math.nan


def peak_in_window(times: Iterable[float], width: float) -> int:
    """The most timestamps within any ``width``-long window (``times`` sorted)."""
    q: deque[float] = deque()
    best = 0
    for t in times:
        q.append(t)
        while q and t - q[0] >= width:
            q.popleft()
        best = max(best, len(q))
    return best


class XemmRun:
    """The brokers, the fake, the engine and the strategy of one run (see the module docstring).
    Use ``async with XemmRun(...) as run: await run.play(...)``, then ``run.stats``."""

    def __init__(
        self,
        *,
        seed: int = 7,
        volatility: float = 0.6,
        dislocation_rate: float = 60.0,
        lead_lag_ms: float = 250.0,
        quote_rate: float = 2.0,
        xemm: dict[str, Any] | None = None,
    ) -> None:
        self.market = SyntheticMarket(
            date=DATE,
            symbols={SYMBOL: {"start_price": 190.0}},
            venues=[MAKER, TAKER],
            seed=seed,
            volatility=volatility,
            dislocation_rate=dislocation_rate,
            lead_lag_ms=lead_lag_ms,
            quote_rate=quote_rate,
        )
        self.clock = SimClock(self.market.start_ns)
        self.fake = RecordingTWS(clock=self.clock)
        self.engine = Engine(clock=self.clock)
        self.brokers: dict[str, IBKRBroker] = {}
        params: dict[str, Any] = {
            "maker_venue": MAKER,
            "taker_venue": TAKER,
            "symbol": SYMBOL,
            "order_amount": 100,
            "min_profitability": 0.0001,
            "fees": FeeModel.for_broker("ibkr"),
            "anti_hysteresis_duration": 5.0,
        }
        params.update(xemm or {})
        self.strategy = CrossExchangeMarketMaking(**params)
        self.stats = RunStats()
        self.guard = IBLogGuard()
        self._warnings = _Collect()
        self._offsets: dict[int, tuple[int, int]] = {}
        self._run_t0 = 0.0
        self._run_sim0 = 0
        self._maker_cids: dict[str, str] = {}

    # ---- life --------------------------------------------------------------------------------
    async def __aenter__(self) -> XemmRun:
        self.guard.__enter__()
        logging.getLogger("tradekit.brokers.ibkr").addHandler(self._warnings)
        await self.fake.start()
        for venue, (route, cid) in ROUTES.items():
            b = IBKRBroker(
                port=self.fake.port,
                client_id=cid,
                route=route,
                venue=venue,
                clock=self.clock,
                symbols=[SYMBOL],
                id_prefix=venue,
                reconnect_delay=0.05,
            )
            self.engine.add_venue(venue, b)
            self.brokers[venue] = b
            b.add_listener(self._on_event)
        for b in self.brokers.values():
            await b.connect()
        for b in self.brokers.values():
            await b.sync()  # quiescent: the startup sync is over
        for b in self.brokers.values():
            s = b.session
            assert s is not None
            s.ib.errorEvent += self._on_ib_error
            c = s.ib.client
            self._offsets[b.client_id] = (
                c.conn.numMsgSent - self.fake.in_count(b.client_id),
                c._numMsgRecv - self.fake.out_count(b.client_id),
            )
        self.stats.startup_msgs = sum(len(v) for v in self.fake.arrivals.values())
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            for b in self.brokers.values():
                if b.connected:
                    await b.close()
            await self.fake.stop()
        finally:
            logging.getLogger("tradekit.brokers.ibkr").removeHandler(self._warnings)
            self.stats.adapter_warnings = self._warnings.counts
            self.guard.__exit__()
            self.stats.decode_problems = self.guard.problems()

    # ---- events ------------------------------------------------------------------------------
    def _on_ib_error(self, req_id: int, code: int, msg: str, contract: Any) -> None:
        if code not in (2104, 2106, 2158):
            self.stats.ib_errors[code] += 1

    def _on_event(self, obj: Any) -> None:
        st = self.stats
        if isinstance(obj, Fill):
            if obj.venue == MAKER:
                st.maker_fills += 1
                st.maker_qty += obj.qty
            elif obj.venue == TAKER:
                st.hedge_fills += 1
                st.hedge_qty += obj.qty

    def _count_maker_actions(self) -> None:
        """Maker quote actions so far, from the maker broker's requests."""
        b = self.brokers[MAKER]
        st = self.stats
        st.maker_actions = Counter(
            {k: b.stats[k] for k in ("placeOrder", "modify", "cancelOrder") if b.stats[k]}
        )
        st.quote_updates = sum(st.maker_actions.values())

    # ---- settling ----------------------------------------------------------------------------
    def _quiet(self) -> bool:
        fake = self.fake
        for b in self.brokers.values():
            s = b.session
            if s is None:
                continue
            if s._jobs or not s._idle.is_set():
                return False
            c = s.ib.client
            if c._msgQ:
                return False
            off_in, off_out = self._offsets[b.client_id]
            if c.conn.numMsgSent - off_in != fake.in_count(b.client_id):
                return False
            if c._numMsgRecv - off_out != fake.out_count(b.client_id):
                return False
            if b._pending or b._loading:
                return False
        return True

    async def settle(self, timeout: float = 10.0) -> bool:
        """Until the adapter traffic has drained (see the module docstring); False: timed out."""
        t0 = time.monotonic()
        quiet = 0
        spins = 0
        while True:
            await asyncio.sleep(0)
            if self._quiet():
                quiet += 1
                if quiet >= 2:
                    return True
                continue
            quiet = 0
            spins += 1
            if time.monotonic() - t0 > timeout:
                self.stats.settle_timeouts += 1
                return False
            if spins > 20:
                await asyncio.sleep(0.0005)  # waiting for the pacer or the socket

    # ---- the run -----------------------------------------------------------------------------
    def push(self, ev: Quote | Trade) -> None:
        route = ROUTES[ev.venue][0]
        if isinstance(ev, Quote):
            self.fake.set_quote(ev.symbol, ev.bid, ev.bid_size, ev.ask, ev.ask_size, route)
        else:
            self.fake.trade(ev.symbol, ev.price, ev.size, route)

    async def play(
        self, *, wall_s: float = 120.0, sim_s: float | None = None, speed: float | None = None
    ) -> RunStats:
        """Play the synthetic day from its open for ``wall_s`` seconds of wall time (or
        ``sim_s`` seconds of market time), stop the engine (cancel what is open), settle.
        ``speed``: hold the events to ``speed`` times real time (None: as fast as the adapter
        goes, which runs ahead of real time, so the wall-clock rate is the pacer's)."""
        st = self.stats
        m = self.market
        start = m.start_ns
        end = m.end_ns if sim_s is None else min(m.end_ns, start + int(sim_s * NS_PER_S))
        eng = self.engine
        eng.add_strategy(self.strategy)
        eng.start(start, end)
        st.sim_start_ns = start
        self._run_t0 = time.monotonic()
        self._run_sim0 = start
        deadline = self._run_t0 + wall_s
        last = start
        for ev in m.events(start, end):
            ts = ev.ts
            if speed:
                ahead = self._run_t0 + (ts - start) / NS_PER_S / speed - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
            if eng.next_due_ns() is not None and eng.next_due_ns() <= ts:  # type: ignore[operator]
                eng.run_due(ts)
                await self.settle()
            self.clock.set(max(ts, self.clock.now_ns()))
            self.push(ev)
            eng.step(ev)
            await self.settle()
            st.events += 1
            if type(ev) is Quote:
                st.market_quotes += 1
            last = ts
            if time.monotonic() >= deadline:
                break
        eng.run_due(last)
        await self.settle()
        # the end: let open hedges finish (timers fire), then stop (cancels the maker quotes)
        for _ in range(50):
            if not self.strategy.hedges_in_flight:
                break
            nxt = eng.next_due_ns()
            if nxt is None:
                break
            eng.run_due(nxt)
            await self.settle()
        last = max(last, self.clock.now_ns())
        eng.stop(last)
        await self.settle()
        st.wall_s = time.monotonic() - self._run_t0
        st.sim_end_ns = last
        self._finish()
        return st

    def _finish(self) -> None:
        st = self.stats
        fake = self.fake
        self._count_maker_actions()
        names = {cid: f"{ROUTES[v][0]}({cid})" for v, (_, cid) in ROUTES.items()}
        all_times: list[float] = []
        sim_buckets: Counter[int] = Counter()
        for cid, rows in fake.arrivals.items():
            if cid < 0:
                continue  # startApi, before the client id is known (startup only)
            run_rows = [r for r in rows if r[1] >= self._run_t0]
            for msg_id, _, _ in run_rows:
                st.msgs_by_type[IN_NAMES.get(msg_id, str(msg_id))] += 1
            st.msgs_by_conn[names.get(cid, str(cid))] += len(run_rows)
            times = [r[1] for r in run_rows]
            all_times.extend(times)
            st.peak_wall_1s_by_conn[names.get(cid, str(cid))] = peak_in_window(times, 1.0)
            for _, _, sim in run_rows:
                sim_buckets[sim // NS_PER_S] += 1
        all_times.sort()
        st.run_msgs = len(all_times)
        st.peak_wall_1s = peak_in_window(all_times, 1.0)
        st.peak_sim_1s = max(sim_buckets.values(), default=0)
        st.unhedged_at_end = self.strategy.unhedged
        # signed: maker fills minus hedge fills (a hedge offsets its maker fill)
        signed = 0.0
        for f in self.engine.fills:
            sgn = 1.0 if f.side is Side.BUY else -1.0
            signed += sgn * f.qty
        st.residue = signed
        st.hedge_orders = self.strategy.hedges_sent
        for ex in fake.executions:
            if ex.order.client_id == ROUTES[TAKER][1]:
                st.hedge_exchanges[ex.order.exchange] += 1
                if ex.order.exchange == "ISLAND":
                    st.fake_island_qty += ex.shares
        st.pacing_errors = fake.pacing_violations
        st.pacing_by_conn = dict(fake.pacing_by_conn)
        st.combined_pacing = fake.combined_violations
        st.combined_peak_fake = fake.max_msgs_in_1s
        for v, b in self.brokers.items():
            if b.session is not None:
                p = b.session.pacer
                st.pacer_waits[v] = (p.waits, p.waited_s)
        st.leg_events = Counter(e.kind.value for e in self.strategy.leg_events)

    def orders(self, venue: str) -> list[Order]:
        return list(self.brokers[venue].orders)


def fmt_report(st: RunStats) -> str:
    span = (st.sim_end_ns - st.sim_start_ns) / NS_PER_S
    lines = [
        f"span: {span:,.1f} simulated s from the open of {DATE} in {st.wall_s:,.1f} wall s "
        f"({span / st.wall_s if st.wall_s else 0:,.1f}x real time); {st.events:,} market "
        f"events ({st.market_quotes:,} quotes)",
        f"quote updates (maker place/amend/cancel): {st.quote_updates:,} {dict(st.maker_actions)}",
        f"client messages during the run: {st.run_msgs:,} (startup sync before it: "
        f"{st.startup_msgs}) by connection {dict(st.msgs_by_conn)}",
        "  by type: " + ", ".join(f"{k} {v:,}" for k, v in st.msgs_by_type.most_common()),
        f"ARCA messages per quote update: {st.maker_msgs_per_quote_update:.3f}",
        f"messages per quote update: {st.msgs_per_quote_update:.3f}; per market quote: "
        f"{st.run_msgs / st.market_quotes if st.market_quotes else math.nan:.3f}",
        f"peak messages per wall-clock second: {st.peak_wall_1s} (all connections), by "
        f"connection {st.peak_wall_1s_by_conn}; client pacer waits {st.pacer_waits}",
        f"peak messages per simulated second: {st.peak_sim_1s}",
        f"maker fills: {st.maker_fills} ({st.maker_qty:g} shares); hedge fills: "
        f"{st.hedge_fills} ({st.hedge_qty:g} shares) from {st.hedge_orders} hedge orders, "
        f"executed at {dict(st.hedge_exchanges)}",
        f"unhedged residue at the end: {st.residue:+g} shares (strategy.unhedged "
        f"{st.unhedged_at_end:+g})",
        f"pacing errors (error 100, per connection): "
        f"{st.pacing_errors}; over 50/s per connection: {st.pacing_by_conn or 0}; settle "
        f"timeouts: {st.settle_timeouts}; decode problems: {len(st.decode_problems)}",
        f"fake's all-connections window: peak {st.combined_peak_fake}/s, {st.combined_pacing} "
        f"messages over 50/s (FakeTWS as it stands would answer each with error 100)",
        f"TWS errors received by the clients: {dict(st.ib_errors)}",
        "adapter warnings: "
        + ("; ".join(f"{n}x {t}" for t, n in st.adapter_warnings.most_common(8)) or "none"),
        f"leg events: {dict(st.leg_events)}",
    ]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> RunStats:
    async with XemmRun(seed=args.seed) as run:
        await run.play(wall_s=args.wall, sim_s=args.sim_seconds, speed=args.speed)
    return run.stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wall", type=float, default=120.0, help="wall-clock budget, seconds")
    ap.add_argument("--sim-seconds", type=float, default=None, help="market time, seconds")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--speed", type=float, default=None, help="times real time (default: flat out)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    st = asyncio.run(main_async(args))
    print(fmt_report(st))
    for p in st.decode_problems[:10]:
        print("decode problem:", p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
