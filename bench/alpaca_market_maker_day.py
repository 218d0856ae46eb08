"""The pure market maker through the real Alpaca adapter (``AlpacaBroker``, alpaca-py) against the
fake Alpaca (``tests/fakes/alpaca.py``) for a simulated trading day, on a simulated clock that the
engine, the broker's request budget and the fake's rate limiter all share.

    python bench/alpaca_market_maker_day.py [--minutes 390] [--wall 120] [--seed 1]

For each synthetic quote or trade (``SyntheticMarket``, one symbol, ``examples/
pure_market_making.toml``'s market, strategy and risk), the fake's market moves first (its book,
and resting orders the market reaches are filled as a maker), then the engine steps (timers due
before the event run first, each followed by the adapter's traffic), then the asyncio loop runs
the adapter's REST requests and trade-updates events until nothing is under way. Every HTTP
request the fake receives is recorded with its simulated time and its status.

Prints: the simulated span covered, quote updates, requests, requests per quote update,
replaces, cancels, new orders, the share of price changes served by replace
(replaces / (replaces + cancel-and-new pairs)), the most requests in any 60 s of simulated time,
and the requests Alpaca refused, by status.

Two things of the adapter and the fake keep wall time, and are switched to the simulated clock
here (see ``SimFakeAlpaca`` and ``sim_throttle``): ``MonotonicRateLimiter`` defaults to
``time.monotonic_ns`` (it takes ``now=``), and ``FakeAlpaca`` stamps requests and counts its rate
window on ``time.monotonic()`` whatever ``clock`` it was given.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

from fakes.alpaca import FakeAlpaca  # noqa: E402

from tradekit.brokers.alpaca import AlpacaBroker, MonotonicRateLimiter  # noqa: E402
from tradekit.clock import SimClock  # noqa: E402
from tradekit.engine import Engine  # noqa: E402
from tradekit.enums import Liquidity, OrderStatus, RejectReason  # noqa: E402
from tradekit.feeds.synthetic import SyntheticMarket  # noqa: E402
from tradekit.model import Order, Quote, Trade  # noqa: E402
from tradekit.strategies.pure_market_making import PureMarketMaking  # noqa: E402
from tradekit.timeutil import NS_PER_S  # noqa: E402

EXAMPLE = ROOT / "examples" / "pure_market_making.toml"
VENUE = "alpaca"
REFUSED = (403, 422, 429)


# ------------------------------------------------------------------------------ the fake


class SimFakeAlpaca(FakeAlpaca):
    """``FakeAlpaca`` whose request log and rate window run on its ``clock`` (simulated), and
    whose market fills resting orders: a quote through a resting limit order, or a print at or
    through its price, executes it at its limit (maker), up to the size shown."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        #: (simulated seconds, method, path, status) of every request
        self.sim_requests: list[tuple[float, str, str, int]] = []
        self.market_fills = 0
        self.errors: list[tuple[tuple[float, str, str, int], Any]] = []
        self._live: dict[str, Any] = {}  # open orders (a superset, pruned as they close)
        self._seen = 0

    def _now_s(self) -> float:
        return self.clock() / NS_PER_S

    def handle(
        self, method: str, target: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        url = urlsplit(target)
        path = url.path
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        text = raw.decode() if raw else ""
        status, body, out_headers = self._handle(method, path, query, headers, text)
        entry = (self._now_s(), method, path, status)
        with self.lock:
            if status >= 400:
                self.errors.append((entry, body))
            self.requests.append(entry)  # max_requests_in_window/count work on simulated time
            self.sim_requests.append(entry)
        return status, body, out_headers

    def _rate_limited(self) -> tuple[int, Any, dict[str, str]] | None:
        now = self._now_s()
        hits = self._hits
        while hits and hits[0] <= now - self.rate_window:
            hits.popleft()
        if len(hits) >= self.rate_limit:
            reset = hits[0] + self.rate_window
            return (
                429,
                {"code": 42910000, "message": "rate limit exceeded"},
                {
                    "X-RateLimit-Limit": str(self.rate_limit),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": f"{reset:.3f}",
                },
            )
        hits.append(now)
        return None

    # the market
    def market_quote(self, q: Quote) -> None:
        with self.lock:
            self.set_quote(q.symbol, q.bid, q.bid_size, q.ask, q.ask_size)
            self._sweep(q.symbol, "buy", q.ask, q.ask_size)
            self._sweep(q.symbol, "sell", q.bid, q.bid_size)

    def market_trade(self, t: Trade) -> None:
        with self.lock:
            self._sweep(t.symbol, "buy", t.price, t.size)
            self._sweep(t.symbol, "sell", t.price, t.size)

    def _sweep(self, symbol: str, side: str, price: float, size: float) -> None:
        if price <= 0 or size <= 0:
            return
        px = Decimal(str(price))
        left = Decimal(str(size))
        live = self._live
        if len(self.orders) > self._seen:  # orders are kept in arrival order
            for o in itertools.islice(self.orders.values(), self._seen, None):
                live[o.id] = o
            self._seen = len(self.orders)
        for oid in [k for k, o in live.items() if not o.is_open]:
            del live[oid]
        resting = [
            o
            for o in live.values()
            if o.symbol == symbol
            and o.side == side
            and o.type == "limit"
            and o.limit_price is not None
            and (o.limit_price >= px if side == "buy" else o.limit_price <= px)
        ]
        # best price first, then time
        resting.sort(key=lambda o: (-o.limit_price if side == "buy" else o.limit_price, o.id))
        for o in resting:
            if left <= 0:
                break
            qty = min(o.remaining, left)
            assert o.limit_price is not None
            self._execute(o, qty, o.limit_price, liquidity=Liquidity.MAKER)
            self.market_fills += 1
            left -= qty


def sim_throttle(broker: AlpacaBroker, clock: SimClock) -> None:
    """The broker's request budget on the simulated clock (same limit, window and slack)."""
    old = broker.throttle
    assert isinstance(old, MonotonicRateLimiter)
    th = MonotonicRateLimiter(old.limit, old.per_seconds, now=clock.now_ns)
    broker.throttle = th
    broker.rest.throttle = th


# ------------------------------------------------------------------------------ the strategy


class CountingPMM(PureMarketMaking):
    """Counts how the strategy moves its prices: replaces, and cancels followed by a new order
    on the same side (a cancel-and-new pair)."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.n_replace = 0
        self.n_cancel = 0
        self.n_new = 0
        self.pairs = 0
        self._cancelled: Counter[Any] = Counter()

    def cancel(self, order: Order) -> None:
        if not order.is_done and order.status is not OrderStatus.PENDING_CANCEL:
            self.n_cancel += 1
            self._cancelled[order.side] += 1
        super().cancel(order)

    def replace(
        self, order: Order, *, qty: float | None = None, price: float | None = None
    ) -> Order | None:
        got = super().replace(order, qty=qty, price=price)
        if got is not None:
            self.n_replace += 1
        return got

    def order(self, side: Any, *a: Any, **kw: Any) -> Order | None:
        got = super().order(side, *a, **kw)
        if got is not None:
            self.n_new += 1
            if self._cancelled[side] > 0:
                self._cancelled[side] -= 1
                self.pairs += 1
        return got


# ------------------------------------------------------------------------------ the day


@dataclass
class DayResult:
    start_ns: int
    end_ns: int
    covered_ns: int = 0
    events: int = 0
    quotes: int = 0
    trades: int = 0
    wall_s: float = 0.0
    requests: list[tuple[float, str, str, int]] = field(default_factory=list)
    fills: int = 0
    market_fills: int = 0
    position: float = 0.0
    n_replace: int = 0
    n_cancel: int = 0
    n_new: int = 0
    pairs: int = 0
    local_rejects: Counter[str] = field(default_factory=Counter)
    budget_stalls: int = 0
    stream_up: bool = True
    rate_limited: int = 0
    #: what the fake answered to refused requests: (method, path kind, status, message) -> n
    errors: Counter[tuple[str, str, int, str]] = field(default_factory=Counter)

    def count(self, method: str, prefix: str = "", statuses: tuple[int, ...] = ()) -> int:
        return sum(
            1
            for _, m, p, s in self.requests
            if m == method and p.startswith(prefix) and (not statuses or s in statuses)
        )

    @property
    def refused(self) -> Counter[int]:
        return Counter(s for *_, s in self.requests if s in REFUSED or s >= 400)

    def by_kind(self) -> Counter[tuple[str, str, int]]:
        return Counter((m, _kind(p), s) for _, m, p, s in self.requests)

    def max_in_window(self, window: float = 60.0) -> int:
        times = sorted(t for t, *_ in self.requests)
        best, j = 0, 0
        for i, t in enumerate(times):
            while times[j] <= t - window:
                j += 1
            best = max(best, i - j + 1)
        return best

    @property
    def replace_share(self) -> float:
        d = self.n_replace + self.pairs
        return self.n_replace / d if d else float("nan")

    def report(self) -> str:
        n = len(self.requests)
        http_replace = self.count("PATCH", "/v2/orders/")
        http_cancel = sum(
            1 for _, m, p, _ in self.requests if m == "DELETE" and p.startswith("/v2/orders/")
        )
        http_new = self.count("POST", "/v2/orders")
        lines = [
            f"simulated span covered    {self.covered_ns / NS_PER_S / 3600:.2f} h "
            f"of {(self.end_ns - self.start_ns) / NS_PER_S / 3600:.2f} h "
            f"({self.events} events) in {self.wall_s:.1f} s wall",
            f"quote updates             {self.quotes}",
            f"trades                    {self.trades}",
            f"requests                  {n}",
            f"requests per quote update {n / max(1, self.quotes):.4f}",
            f"replaces (PATCH)          {http_replace}  (strategy: {self.n_replace})",
            f"cancels (DELETE)          {http_cancel}  (strategy: {self.n_cancel})",
            f"new orders (POST)         {http_new}  (strategy: {self.n_new})",
            f"cancel-and-new pairs      {self.pairs}",
            f"price changes by replace  {self.replace_share:.1%}  "
            f"= replaces / (replaces + cancel-and-new pairs)",
            f"max requests in any 60 s  {self.max_in_window(60.0)}",
            f"refused by status         {dict(self.refused) or 'none'}",
            f"fills                     {self.fills}  (position {self.position:g})",
            f"local rejects             {dict(self.local_rejects) or 'none'}",
            f"budget stalls             {self.budget_stalls}",
            f"429 seen by the adapter   {self.rate_limited}",
            f"requests by kind          {dict(self.by_kind())}",
            *(f"  refused: {n} x {k}" for k, n in self.errors.most_common()),
        ]
        return "\n".join(lines)


def _kind(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[1] in ("orders", "assets", "positions"):
        return f"/{parts[0]}/{parts[1]}/{{id}}"
    return path


def load_example() -> dict[str, Any]:
    with EXAMPLE.open("rb") as f:
        return tomllib.load(f)


def make_market(
    cfg: dict[str, Any], *, seed: int | None = None, **overrides: Any
) -> SyntheticMarket:
    m = cfg["market"]
    syms = {s: {**p, **overrides} for s, p in m["symbols"].items()}
    return SyntheticMarket(
        date=m["date"],
        symbols=syms,
        venues=[VENUE],
        seed=m["seed"] if seed is None else seed,
        calendar=cfg["session"]["calendar"],
        hours=cfg["session"]["hours"],
    )


class DayRun:
    """The engine, the adapter and the fake on one simulated clock."""

    def __init__(
        self, cfg: dict[str, Any], market: SyntheticMarket, *, fills_first: bool = True
    ) -> None:
        self.cfg = cfg
        #: deliver the trade-updates events of fills the market made before the market event
        #: reaches the strategy (False: the strategy may act on an order already filled)
        self.fills_first = fills_first
        self.market = market
        s = cfg["session"]
        self.clock = SimClock(market.start_ns - 5 * NS_PER_S)  # connect a little before the open
        self.engine = Engine(
            calendar=s["calendar"],
            hours=s["hours"],
            cancel_before_close_s=s.get("cancel_before_close_s", 60.0),
            flatten_at_close=s.get("flatten_at_close", False),
            clock=self.clock,
        )
        self.fake = SimFakeAlpaca(clock=self.clock.now_ns, cash=100_000.0)
        self.broker = AlpacaBroker(
            "KEY",
            "SECRET",
            base_url="http://127.0.0.1:9",
            clock=self.clock,
            risk=cfg.get("risk"),
            id_prefix="mm",
            stream_backoff=(0.05, 0.5),
            poll_interval=0.1,
            backoff=(0.01, 0.1),
            stream_connect_timeout=5.0,
        )
        sim_throttle(self.broker, self.clock)
        params = {**cfg["strategy"], "venue": VENUE}
        params.pop("kind", None)
        self.strategy = CountingPMM(**params)
        self.budget_stalls = 0

    async def start(self) -> None:
        await self.fake.start()
        self.broker.base_url = self.fake.base_url
        self.broker.trading_stream_url = self.fake.stream_url
        self.engine.add_venue(VENUE, self.broker)
        await self.broker.connect()
        self.engine.add_strategy(self.strategy)

    async def stop(self) -> None:
        try:
            await self.broker.close()
        finally:
            await self.fake.stop()

    async def settle(self, timeout: float = 10.0) -> None:
        """Until no request of the adapter is under way and every trade-updates event the fake
        emitted was handled (returns at once when nothing is going on)."""
        b, f = self.broker, self.fake
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        stalled_since: float | None = None
        while True:
            box = f._outbox
            quiet_fake = box is None or (box.qsize() == 0 and f.emitted <= f.delivered + f.dropped)
            if not b.busy and quiet_fake and (b.events_received >= f.delivered or not b.stream_up):
                await asyncio.sleep(0)
                box = f._outbox
                if (
                    not b.busy
                    and (box is None or box.qsize() == 0)
                    and f.emitted <= f.delivered + f.dropped
                    and (b.events_received >= f.delivered or not b.stream_up)
                ):
                    return
                continue
            now = loop.time()
            if now > end:
                raise TimeoutError(
                    f"adapter not settled: busy={b.busy} emitted={f.emitted} "
                    f"delivered={f.delivered} received={b.events_received}"
                )
            # a request waiting for the budget waits for simulated time that nobody moves: let
            # the time it asks for pass (a stall; reported)
            th = b.throttle
            if (
                th is not None
                and b.busy
                and th.available(0) == 0
                and th.available(0, cancel=True) == 0
            ):
                stalled_since = stalled_since or now
                if now - stalled_since > 0.05:
                    self.clock.set(self.clock.now_ns() + max(1, th.wait_ns(0)))
                    self.budget_stalls += 1
                    stalled_since = None
            if b.busy:
                await asyncio.wait(list(b._tasks), timeout=0.02)
            else:
                await asyncio.sleep(0.0005)

    async def _run_due(self, ts: int) -> None:
        eng = self.engine
        while True:
            due = eng.next_due_ns()
            if due is None or due > ts:
                return
            eng.run_due(due)
            await self.settle()

    async def run(
        self, start_ns: int | None = None, end_ns: int | None = None, wall_budget: float = 1e9
    ) -> DayResult:
        m = self.market
        lo = m.start_ns if start_ns is None else start_ns
        hi = m.end_ns if end_ns is None else end_ns
        res = DayResult(lo, hi)
        eng, fake = self.engine, self.fake
        t0 = time.perf_counter()
        self.clock.set(lo)
        eng.start(lo, hi)
        await self.settle()
        last = lo
        for ev in m.events(lo, hi):
            ts = ev.ts
            if ts < self.clock.now_ns():  # only after a budget stall moved time on
                ts = self.clock.now_ns()
                ev = _with_ts(ev, ts)
            await self._run_due(ts)
            self.clock.set(ts)
            if isinstance(ev, Quote):
                fake.market_quote(ev)
                res.quotes += 1
            else:
                fake.market_trade(ev)
                res.trades += 1
            if self.fills_first and fake.emitted > fake.delivered + fake.dropped:
                await self.settle()  # the fills the market made reach the adapter first
            eng.step(ev)
            await self.settle()
            res.events += 1
            last = ts
            if (res.events & 255) == 0 and time.perf_counter() - t0 > wall_budget:
                break
        else:
            last = hi
            await self._run_due(hi)
        res.covered_ns = last - lo
        eng.run_due(last)
        eng.stop(last)
        await self.settle()
        res.wall_s = time.perf_counter() - t0
        res.requests = list(fake.sim_requests)
        res.fills = sum(len(o.fills) for o in self.broker.orders)
        res.market_fills = fake.market_fills
        res.position = self.broker.position(next(iter(m.symbols)))
        st = self.strategy
        res.n_replace, res.n_cancel, res.n_new, res.pairs = (
            st.n_replace,
            st.n_cancel,
            st.n_new,
            st.pairs,
        )
        res.local_rejects = Counter(
            (o.reject_reason.name if isinstance(o.reject_reason, RejectReason) else "?")
            for o in self.broker.orders
            if o.status is OrderStatus.REJECTED
        )
        res.budget_stalls = self.budget_stalls
        res.stream_up = self.broker.stream_up
        res.rate_limited = self.broker.rest.rate_limited
        res.errors = Counter(
            (m, _kind(p), st, str(body.get("message") if isinstance(body, dict) else body))
            for (_, m, p, st), body in fake.errors
        )
        return res


def _with_ts(ev: Any, ts: int) -> Any:
    import msgspec

    return msgspec.structs.replace(ev, ts=ts)


async def run_day(
    *,
    minutes: float | None = None,
    wall_budget: float = 1e9,
    seed: int | None = None,
    fills_first: bool = True,
    **market_overrides: Any,
) -> DayResult:
    cfg = load_example()
    market = make_market(cfg, seed=seed, **market_overrides)
    run = DayRun(cfg, market, fills_first=fills_first)
    await run.start()
    try:
        end = None if minutes is None else market.start_ns + int(minutes * 60 * NS_PER_S)
        if end is not None:
            end = min(end, market.end_ns)
        return await run.run(None, end, wall_budget)
    finally:
        await run.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=None, help="simulated minutes (the day)")
    ap.add_argument("--wall", type=float, default=120.0, help="wall-time budget, seconds")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--quote-rate", type=float, default=None)
    ap.add_argument("--trade-rate", type=float, default=None)
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    ap.add_argument(
        "--fills-late",
        action="store_true",
        help="step the engine before the fills the market made reach the adapter",
    )
    a = ap.parse_args(argv)
    over = {}
    if a.quote_rate is not None:
        over["quote_rate"] = a.quote_rate
    if a.trade_rate is not None:
        over["trade_rate"] = a.trade_rate
    res = asyncio.run(
        run_day(
            minutes=a.minutes,
            wall_budget=a.wall,
            seed=a.seed,
            fills_first=not a.fills_late,
            **over,
        )
    )
    print(res.report())
    if a.json:
        print(
            json.dumps(
                {
                    "covered_h": res.covered_ns / NS_PER_S / 3600,
                    "quotes": res.quotes,
                    "requests": len(res.requests),
                    "requests_per_quote": len(res.requests) / max(1, res.quotes),
                    "replaces": res.count("PATCH", "/v2/orders/"),
                    "cancels": res.count("DELETE", "/v2/orders/"),
                    "new_orders": res.count("POST", "/v2/orders"),
                    "pairs": res.pairs,
                    "replace_share": res.replace_share,
                    "max_60s": res.max_in_window(60.0),
                    "refused": {str(k): v for k, v in res.refused.items()},
                    "fills": res.fills,
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
