"""Bad inputs never crash the bot and never reach a broker (issue 7, "Reliability").

1. Live market data: ``tradekit.feeds.guard.MarketDataGuard`` skips NaN, negative, zero-size,
   crossed, out-of-order, far-future and malformed events (counted, warnings rate-limited), and a
   real ``Engine`` fed a mixed stream through it keeps trading at sane prices.
2. Orders: hostile qty/price/side/type/tif/symbol values are refused by ``submit_order`` and
   ``replace_order`` before the adapter's ``_send_*`` hook (PaperBroker and the example
   in-memory adapter).
3. Configs: hostile values anywhere in a CONTRACT §4 config (dict or TOML text) give a valid
   ``Config`` or a ``ConfigError`` naming the key, never another exception; ``tradekit check`` and
   ``tradekit backtest`` exit 2 with one line, no traceback.
4. Data files (CONTRACT §5): malformed rows are reported as ``FILE:LINE`` and skipped (``--strict``:
   exit 2), damaged files are one clear ``DataError`` (exit 2), never a traceback. (Row checks
   already covered by tests/test_replay.py are not repeated here.)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import importlib.util
import io
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tradekit.brokers.paper import PaperBroker
from tradekit.cli import main as cli_main
from tradekit.clock import SimClock
from tradekit.config import Config, build_strategy, load_config
from tradekit.engine import Engine
from tradekit.enums import OrderStatus, RejectReason, Side
from tradekit.errors import ConfigError, DataError, OrderRejected
from tradekit.feeds import ReplayFile
from tradekit.feeds import guard as guard_module
from tradekit.feeds.guard import PROBLEMS, MarketDataGuard
from tradekit.model import Bar, MarketStatus, Order, Quote, Trade
from tradekit.rules import OrderRules
from tradekit.strategies import PureMarketMaking
from tradekit.testing import DEFAULT_START
from tradekit.timeutil import NS_PER_S, parse_iso_ns

S = NS_PER_S
T0 = parse_iso_ns("2026-11-24T15:00:00Z")  # a Tuesday, 10:00 ET: the regular session
SYM = "AAPL"

# every property test: bounded and reproducible
FUZZ = settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def fuzz(n: int) -> settings:
    return settings(FUZZ, max_examples=n)


# ============================================================================================
# 1. the market data guard
# ============================================================================================


class FakeClock:
    def __init__(self, ns: int = T0) -> None:
        self.ns = ns

    def __call__(self) -> int:
        return self.ns


def quote(
    ts: int = T0,
    bid: Any = 100.0,
    ask: Any = 100.02,
    *,
    bs: Any = 500.0,
    az: Any = 500.0,
    sym: Any = SYM,
    venue: Any = "v",
) -> Quote:
    return Quote(ts, sym, bid, bs, ask, az, venue)


def new_guard(**kw: Any) -> tuple[MarketDataGuard, FakeClock]:
    clock = FakeClock()
    return MarketDataGuard(clock=clock, **kw), clock


GOOD_EVENTS = [
    pytest.param(quote(), id="two-sided quote"),
    pytest.param(quote(bid=100.02, ask=100.02), id="locked quote"),
    pytest.param(quote(bid=0.0, bs=0.0), id="empty bid side"),
    pytest.param(quote(ask=0.0, az=0.0), id="empty ask side"),
    pytest.param(quote(ask=0.0, az=200.0), id="ask price 0 is an empty side whatever its size"),
    pytest.param(quote(bid=0.0, bs=0.0, ask=0.0, az=0.0), id="empty book"),
    pytest.param(quote(bs=100, az=200), id="int sizes"),
    pytest.param(quote(ts=np.int64(T0)), id="numpy int ts"),
    pytest.param(Trade(T0, SYM, 100.01, 100.0, "v"), id="trade"),
    pytest.param(Bar(T0, SYM, 100.0, 101.0, 99.0, 100.5, 0.0, "v"), id="bar without volume"),
    pytest.param(MarketStatus(T0, SYM, True, "LUDP", "v"), id="halt"),
    pytest.param(MarketStatus(T0, SYM, False, "", "v", 95.0, 105.0), id="LULD bands"),
    pytest.param(quote(venue=""), id="no venue (every replay venue)"),
]


@pytest.mark.parametrize("ev", GOOD_EVENTS)
def test_guard_passes_good_events(ev: Any, caplog: pytest.LogCaptureFixture) -> None:
    g, _ = new_guard()
    with caplog.at_level(logging.WARNING, "tradekit.guard"):
        assert g.check(ev) is True
        assert g.check(ev) is True  # the fast path agrees with the slow one
    assert g.passed == 2 and not g.skipped and not caplog.records


BAD_EVENTS = [
    # (event, problem, words the warning must contain besides venue and symbol)
    (quote(bid=math.nan), "non_finite", ["bid", "nan"]),
    (quote(ask=math.inf), "non_finite", ["ask", "inf"]),
    (quote(bs=math.nan), "non_finite", ["bid_size", "nan"]),
    (quote(az=-math.inf), "non_finite", ["ask_size", "-inf"]),
    (quote(bid=-0.01), "negative", ["bid", "-0.01"]),
    (quote(bs=-100.0), "negative", ["bid_size", "-100.0"]),
    (quote(bs=0.0), "zero_size", ["bid_size", "0.0", "bid 100.0"]),
    (quote(az=0.0), "zero_size", ["ask_size", "0.0", "ask 100.02"]),
    (quote(bid=100.05, ask=100.0), "crossed", ["bid", "100.05", "ask 100.0"]),
    (quote(bid=1e12, ask=2e12), "too_large", ["bid", "1000000000000.0"]),
    (quote(bs=1e15), "too_large", ["bid_size"]),
    (quote(bid="100.0"), "not_a_number", ["bid", "'100.0'"]),
    (quote(ask=None), "not_a_number", ["ask", "None"]),
    (quote(bs=[1]), "not_a_number", ["bid_size", "[1]"]),
    (quote(sym=5), "symbol", ["symbol", "5"]),
    (quote(sym=None), "symbol", ["symbol", "None"]),
    (quote(sym=""), "symbol", ["symbol", "''"]),
    (quote(sym=" AAPL"), "symbol", ["symbol", "' AAPL'"]),
    (quote(sym="AA\x00PL"), "symbol", ["symbol", "AA\\x00PL"]),
    (quote(sym="A" * 65), "symbol", ["symbol"]),
    (quote(sym=["AAPL"]), "symbol", ["symbol", "['AAPL']"]),
    (quote(venue=None), "venue", ["venue", "None"]),
    (quote(ts=float(T0)), "ts", ["ts", "must be an int"]),
    (quote(ts=None), "ts", ["ts", "None"]),
    (quote(ts=1_732_000_000), "ts", ["ts", "1732000000", "before 2000"]),
    (quote(ts=-5), "ts", ["ts", "-5"]),
    (quote(ts=T0 + 3600 * S), "future", ["ts", "3600.000 s ahead"]),
    (Trade(T0, SYM, math.nan, 100.0, "v"), "non_finite", ["price", "nan"]),
    (Trade(T0, SYM, 0.0, 100.0, "v"), "zero_price", ["price", "0.0"]),
    (Trade(T0, SYM, 100.0, 0.0, "v"), "zero_size", ["size", "0.0"]),
    (Trade(T0, SYM, 100.0, -5.0, "v"), "negative", ["size", "-5.0"]),
    (Trade(T0, SYM, 100.0, 10**400, "v"), "too_large", ["size"]),
    (Trade(T0, SYM, Decimal("NaN"), 1.0, "v"), "non_finite", ["price", "Decimal('NaN')"]),
    (Bar(T0, SYM, 100.0, 99.0, 101.0, 100.0, 10.0, "v"), "bar_range", ["high", "99.0"]),
    (Bar(T0, SYM, 102.0, 101.0, 99.0, 100.0, 10.0, "v"), "bar_range", ["open", "102.0"]),
    (Bar(T0, SYM, 100.0, 101.0, 99.0, 100.0, math.nan, "v"), "non_finite", ["volume", "nan"]),
    (Bar(T0, SYM, 0.0, 101.0, 0.0, 100.0, 1.0, "v"), "zero_price", ["low"]),
    (MarketStatus(T0, SYM, "yes", "", "v"), "status", ["halted", "'yes'"]),
    (MarketStatus(T0, SYM, False, "", "v", 105.0, 95.0), "status", ["lower_band", "105.0"]),
    (MarketStatus(T0, SYM, False, "", "v", math.nan, 95.0), "status", ["lower_band", "nan"]),
    ("junk", "type", ["str"]),
    (None, "type", ["NoneType"]),
    ({"ts": T0, "symbol": SYM}, "type", ["dict"]),
]


@pytest.mark.parametrize(
    ("ev", "problem", "words"),
    BAD_EVENTS,
    ids=[f"{p}-{i}" for i, (_, p, _) in enumerate(BAD_EVENTS)],
)
def test_guard_skips_bad_events_and_says_why(
    ev: Any, problem: str, words: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    g, _ = new_guard()
    assert g.check(quote(ts=T0 - S)) is True  # venue and symbol known: the fast path is tried
    with caplog.at_level(logging.WARNING, "tradekit.guard"):
        assert g.check(ev) is False
    assert problem in PROBLEMS
    assert g.skipped == {problem: 1} and g.passed == 1
    (rec,) = caplog.records
    msg = rec.getMessage()
    assert f"({problem})" in msg
    if isinstance(ev, Quote | Trade | Bar | MarketStatus):
        assert "venue" in msg and "symbol" in msg
        if isinstance(ev.venue, str) and isinstance(ev.symbol, str) and ev.symbol.isprintable():
            assert f"venue {ev.venue}" in msg
    for w in words:
        assert w in msg, (w, msg)


def test_guard_time_order_is_per_venue_symbol_and_kind() -> None:
    g, _ = new_guard(backwards_tolerance_s=1.0)
    assert g.check(quote(ts=T0))
    assert g.check(quote(ts=T0 - S // 2))  # within the tolerance
    assert not g.check(quote(ts=T0 - 2 * S))  # beyond it
    assert g.check(quote(ts=T0 - 2 * S, sym="MSFT"))  # another symbol
    assert g.check(quote(ts=T0 - 2 * S, venue="w"))  # another venue
    assert g.check(Trade(T0 - 2 * S, SYM, 100.0, 1.0, "v"))  # another kind
    assert g.skipped == {"backwards": 1}
    g.reset("v")  # e.g. the feed reconnected to a source whose clock restarted
    assert g.check(quote(ts=T0 - 2 * S))
    assert not g.check(quote(ts=T0 - 9 * S, venue="w"))
    g.reset()
    assert g.check(quote(ts=T0 - 9 * S, venue="w"))


def test_one_tick_from_the_near_future_does_not_block_the_stream() -> None:
    g, clock = new_guard(max_future_s=60.0, backwards_tolerance_s=1.0)
    assert g.check(quote(ts=T0))
    assert g.check(quote(ts=T0 + 50 * S))  # 50 s ahead: allowed (clock skew) ...
    # ... but the mark it leaves is capped at the clock + the tolerance: the good ticks go on
    for k in range(1, 10):
        clock.ns = T0 + k * S // 10
        assert g.check(quote(ts=clock.ns)), k
    assert not g.skipped


def test_future_check_follows_the_clock_and_can_be_off() -> None:
    g, clock = new_guard(max_future_s=5.0)
    assert not g.check(quote(ts=T0 + 6 * S))
    clock.ns = T0 + 2 * S
    assert g.check(quote(ts=T0 + 6 * S))
    off = MarketDataGuard(clock=None)
    assert off.check(quote(ts=T0 + 10**6 * S)) and not off.skipped


def test_warnings_are_rate_limited_per_venue_symbol_and_problem(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(guard_module.time, "monotonic", lambda: now[0])
    g, _ = new_guard(warn_interval_s=60.0)
    with caplog.at_level(logging.WARNING, "tradekit.guard"):
        for _ in range(10_000):  # a storm of bad ticks
            g.check(quote(bid=math.nan))
        for _ in range(5):
            g.check(quote(bid=math.nan, sym="MSFT"))  # another symbol: its own warning
            g.check(quote(bid=101.0, ask=100.0))  # another problem: its own warning
        assert len(caplog.records) == 3
        now[0] += 61.0
        g.check(quote(bid=math.nan))
    assert g.skipped == {"non_finite": 10_006, "crossed": 5}
    assert len(caplog.records) == 4
    assert "9999 more like it skipped since the last warning" in caplog.records[-1].getMessage()


def test_guard_never_raises_and_what_passes_is_sane() -> None:
    values = st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.booleans(),
        st.none(),
        st.text(max_size=5),
        st.sampled_from([0.0, -0.0, 100.0, 100.02, 1e7, 1e12, Decimal("1.5"), np.float64(100.0)]),
    )
    stamps = st.one_of(
        st.integers(min_value=T0 - 10 * S, max_value=T0 + 120 * S),
        st.sampled_from([0, -1, 1.5, None, "now", T0 * 1.0, np.int64(T0)]),
    )
    symbols = st.one_of(
        st.sampled_from([SYM, "MSFT"]), st.text(max_size=3), st.none(), st.integers()
    )

    @fuzz(300)
    @given(st.lists(st.tuples(stamps, symbols, values, values, values, values), max_size=20))
    def run(rows: list[tuple[Any, ...]]) -> None:
        g, _ = new_guard()
        for ts, sym, b, bs, a, az in rows:
            ev = Quote(ts, sym, b, bs, a, az, "v")
            ok = g.check(ev)
            assert isinstance(ok, bool)
            if ok:  # what passes is something the engine and the strategies can use
                for x in (b, bs, a, az):
                    assert float(x) >= 0 and math.isfinite(float(x))
                assert not (float(b) > float(a) > 0)
                assert isinstance(sym, str) and sym and isinstance(ts, int | np.integer)
        assert g.passed + sum(g.skipped.values()) == len(rows)

    with contextlib.redirect_stderr(io.StringIO()):
        logging.getLogger("tradekit.guard").disabled = True
        try:
            run()
        finally:
            logging.getLogger("tradekit.guard").disabled = False


def test_guard_is_cheap() -> None:
    g = MarketDataGuard()
    now = time.time_ns()
    q = quote(ts=now, venue="alpaca")
    assert g.check(q)
    n = 20_000
    t = time.perf_counter()
    for _ in range(n):
        g.check(q)
    per_event = (time.perf_counter() - t) / n
    assert per_event < 5e-6, f"{per_event * 1e9:.0f} ns per event"  # ~250 ns on a laptop


# -- the guard in front of a real engine ------------------------------------------------------


def _pmm() -> PureMarketMaking:
    return PureMarketMaking(
        SYM,
        venue="paper",
        bid_spread=0.001,
        ask_spread=0.001,
        order_amount=100,
        order_refresh_time=5,
        filled_order_delay=1,
    )


def _engine() -> tuple[Engine, PaperBroker]:
    eng = Engine(hours="regular", cancel_before_close_s=60)
    broker = PaperBroker(id_prefix="p")
    eng.add_venue("paper", broker)
    eng.add_strategy(_pmm())
    eng.start(T0, T0 + 3600 * S)
    return eng, broker


#: Bad events the feed delivers between the good ones, made from the current time.
BAD_STREAM: list[Callable[[int], Any]] = [
    lambda ts: Quote(ts, SYM, math.nan, 500.0, 100.02, 500.0, "paper"),
    lambda ts: Quote(ts, SYM, 100.0, 500.0, math.inf, 500.0, "paper"),
    lambda ts: Quote(ts, SYM, 120.0, 500.0, 110.0, 500.0, "paper"),  # crossed far off
    lambda ts: Quote(ts, SYM, -5.0, 500.0, 100.02, 500.0, "paper"),
    lambda ts: Quote(ts, SYM, 100.0, 0.0, 100.02, 500.0, "paper"),  # a price without size
    lambda ts: Quote(ts, SYM, 1e12, 500.0, 2e12, 500.0, "paper"),  # absurd
    lambda ts: Quote(ts - 30 * S, SYM, 50.0, 500.0, 50.02, 500.0, "paper"),  # stale, 30 s back
    lambda ts: Quote(ts + 3600 * S, SYM, 300.0, 500.0, 300.02, 500.0, "paper"),  # an hour ahead
    lambda ts: Quote(ts, 5, 100.0, 500.0, 100.02, 500.0, "paper"),
    lambda ts: Quote(ts, SYM, "100", 500.0, 100.02, 500.0, "paper"),
    lambda ts: Trade(ts, SYM, math.nan, 100.0, "paper"),
    lambda ts: Trade(ts, SYM, 1e9, 100.0, "paper"),
    lambda ts: Trade(ts, SYM, 100.0, -100.0, "paper"),
    lambda ts: Bar(ts, SYM, 100.0, 99.0, 101.0, 100.0, 10.0, "paper"),
    lambda ts: MarketStatus(ts, SYM, "yes", "", "paper"),
    lambda ts: "junk",
    lambda ts: None,
]


def _play(eng: Engine, guard: MarketDataGuard | None, seconds: int = 300) -> list[str]:
    """Good quotes every second (and a trade every 7 s) with bad events in between; returns
    the errors that escaped ``engine.step``."""
    errors: list[str] = []
    for i in range(seconds):
        ts = T0 + i * S
        mid = 100.01 + 0.01 * ((i // 20) % 3)
        events: list[Any] = [Quote(ts, SYM, mid - 0.01, 500.0, mid + 0.01, 500.0, "paper")]
        if i % 7 == 3:
            events.append(Trade(ts, SYM, mid - 0.01, 100.0, "paper"))
        if i >= 5:
            events.append(BAD_STREAM[i % len(BAD_STREAM)](ts))
        for ev in events:
            try:
                if guard is None or guard.check(ev):
                    eng.step(ev)
                eng.run_due(ts)
            except Exception as e:
                errors.append(f"{type(e).__name__}: {e}")
    return errors


def _absurd(orders: list[Order]) -> list[Order]:
    return [
        o
        for o in orders
        if o.limit_price is None
        or not math.isfinite(o.limit_price)
        or not 99.5 < o.limit_price < 100.6
        or not 0 < o.qty <= 100
    ]


def test_engine_behind_the_guard_keeps_trading_at_sane_prices(
    caplog: pytest.LogCaptureFixture,
) -> None:
    eng, broker = _engine()
    guard = MarketDataGuard(clock=eng.now_ns)
    with caplog.at_level(logging.WARNING, "tradekit.guard"):
        errors = _play(eng, guard)
    assert errors == []
    n_good = 300 + len([i for i in range(300) if i % 7 == 3])
    assert guard.passed == n_good == eng.events  # every good event got through
    assert sum(guard.skipped.values()) == 295  # and no bad one
    assert set(guard.skipped) == {
        "non_finite",
        "crossed",
        "negative",
        "zero_size",
        "too_large",
        "backwards",
        "future",
        "symbol",
        "not_a_number",
        "bar_range",
        "status",
        "type",
    }
    assert len(caplog.records) <= 20  # one warning per (venue, symbol, problem)
    orders = broker.orders
    assert orders, "the strategy quoted"
    assert _absurd(orders) == []
    assert all(o.reject_reason is None for o in orders)
    live = broker.open_orders(SYM)
    assert sorted(o.side for o in live) == [Side.BUY, Side.SELL], "still quoting at the end"
    rec = eng.stop(T0 + 300 * S)
    assert rec is not None


def test_without_the_guard_the_same_stream_crashes_or_trades_on_garbage() -> None:
    # the control: what the guard is for
    eng, broker = _engine()
    errors = _play(eng, None)
    assert errors or _absurd(broker.orders)
    assert errors  # (junk objects reach engine.step)


# ============================================================================================
# 2. hostile order values never reach the adapter
# ============================================================================================


def _load_example() -> ModuleType:
    name = "custom_broker_adapter"  # the name tests/test_contract_custom_adapter.py uses
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[2] / "examples" / "custom_broker_adapter.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


example = _load_example()


class RecordingPaper(PaperBroker):
    def __init__(self) -> None:
        super().__init__(clock=SimClock(DEFAULT_START), id_prefix="rp", cash=1e6)
        self.calls: list[tuple[Any, ...]] = []

    def _send_submit(self, order: Order) -> None:
        self.calls.append(("submit", order))
        super()._send_submit(order)

    def _send_cancel(self, order: Order) -> None:
        self.calls.append(("cancel", order))
        super()._send_cancel(order)

    def _send_replace(self, order: Order, qty: float, limit_price: float | None) -> None:
        self.calls.append(("replace", order, qty, limit_price))
        super()._send_replace(order, qty, limit_price)


class RecordingMemory(example.MemoryBroker):  # type: ignore[misc,name-defined]
    """The example adapter with its network hooks recorded instead of sent."""

    def __init__(self) -> None:
        super().__init__(clock=SimClock(DEFAULT_START), id_prefix="rm")
        self.calls: list[tuple[Any, ...]] = []

    def _send_submit(self, order: Order) -> None:
        self.calls.append(("submit", order))

    def _send_cancel(self, order: Order) -> None:
        self.calls.append(("cancel", order))

    def _send_replace(self, order: Order, qty: float, limit_price: float | None) -> None:
        self.calls.append(("replace", order, qty, limit_price))


BROKERS: dict[str, Callable[[], Any]] = {"paper": RecordingPaper, "memory": RecordingMemory}


def _broker(kind: str) -> Any:
    b = BROKERS[kind]()
    b.on_quote(Quote(DEFAULT_START, SYM, 99.99, 500.0, 100.01, 500.0, b.venue))
    return b


GOOD_ORDER: dict[str, Any] = {"symbol": SYM, "side": "buy", "qty": 10, "limit_price": 99.5}

HOSTILE_ORDERS: list[tuple[str, Any, str]] = [
    # (argument, value, a word the error must contain)
    ("qty", math.nan, "qty"),
    ("qty", math.inf, "qty"),
    ("qty", -math.inf, "qty"),
    ("qty", -10, "qty"),
    ("qty", 0, "qty"),
    ("qty", 0.0, "qty"),
    ("qty", 1e12, "qty"),
    ("qty", 10**400, "qty"),
    ("qty", 1e-300, "qty"),
    ("qty", True, "qty"),
    ("qty", "10", "qty"),
    ("qty", b"10", "qty"),
    ("qty", None, "qty"),
    ("qty", [10], "qty"),
    ("qty", {"qty": 10}, "qty"),
    ("qty", Decimal("NaN"), "qty"),
    ("qty", np.float64("nan"), "qty"),
    ("qty", complex(10, 1), "qty"),
    ("limit_price", math.nan, "limit"),
    ("limit_price", math.inf, "limit"),
    ("limit_price", -99.5, "limit"),
    ("limit_price", 0.0, "limit"),
    ("limit_price", 1e-300, "limit"),
    ("limit_price", 1e12, "limit"),
    ("limit_price", 10**400, "limit"),
    ("limit_price", True, "limit"),
    ("limit_price", "99.5", "limit"),
    ("limit_price", [99.5], "limit"),
    ("limit_price", 99.505, "tick"),  # off the tick: refused, never rounded
    ("stop_price", math.nan, "stop"),
    ("stop_price", -1.0, "stop"),
    ("stop_price", "100", "stop"),
    ("side", "hold", "side"),
    ("side", "BUY ", "side"),
    ("side", None, "side"),
    ("side", 1, "side"),
    ("side", ["buy"], "side"),
    ("type", "iceberg", "type"),
    ("type", 5, "type"),
    ("type", ["limit"], "type"),
    ("tif", "forever", "time in force"),
    ("tif", None, "time in force"),
    ("tif", {}, "time in force"),
    ("symbol", "", "symbol"),
    ("symbol", "   ", "symbol"),
    ("symbol", None, "symbol"),
    ("symbol", 5, "symbol"),
    ("symbol", "AA\x00PL", "symbol"),
    ("symbol", "AAPL\n", "symbol"),
    ("symbol", "A" * 10_000, "symbol"),
    ("extended_hours", "no", "extended_hours"),
    ("extended_hours", None, "extended_hours"),
    ("extended_hours", 2, "extended_hours"),
    ("client_order_id", 5, "client_order_id"),
    ("client_order_id", "", "client_order_id"),
    ("client_order_id", "x" * 1000, "client_order_id"),
    ("client_order_id", "a\nb", "client_order_id"),
]


@pytest.mark.parametrize("kind", sorted(BROKERS))
@pytest.mark.parametrize(
    ("arg", "value", "word"),
    HOSTILE_ORDERS,
    ids=[f"{a}={v!r:.20}" for a, v, _ in HOSTILE_ORDERS],
)
def test_hostile_order_values_never_reach_the_adapter(
    kind: str, arg: str, value: Any, word: str
) -> None:
    b = _broker(kind)
    kw = {**GOOD_ORDER, arg: value}
    if arg == "stop_price":
        kw["type"] = "stop_limit"
    with pytest.raises((OrderRejected, TypeError, ValueError)) as info:
        b.submit_order(kw.pop("symbol"), kw.pop("side"), kw.pop("qty"), **kw)
    assert word in str(info.value), str(info.value)
    if isinstance(info.value, OrderRejected):
        assert info.value.reason in (
            RejectReason.INVALID,
            RejectReason.ORDER_TYPE,
            RejectReason.TICK_SIZE,
            RejectReason.MIN_QTY,
        )
    assert len(str(info.value)) < 400  # a huge value is not echoed whole
    assert b.calls == [] and b.open_orders() == []
    # the broker still works
    ok = b.submit_order(SYM, "buy", 10, limit_price=99.5)
    assert b.calls == [("submit", ok)]


@pytest.mark.parametrize("kind", sorted(BROKERS))
def test_accepted_orders_are_sane_whatever_the_values(kind: str) -> None:
    numbers = st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(10**20), max_value=10**20),
        st.sampled_from([0, 1, 10, 99.5, 100.0, 1e9, 1e7, 1e-9, 10**400, True, "1", None]),
    )

    @fuzz(150)
    @given(numbers, st.one_of(st.none(), numbers), st.sampled_from(["buy", "sell"]))
    def run(qty: Any, px: Any, side: str) -> None:
        b = _broker(kind)
        try:
            o = b.submit_order(SYM, side, qty, limit_price=px)
        except (OrderRejected, TypeError, ValueError):
            assert b.calls == []
            return
        assert b.calls == [("submit", o)]
        assert isinstance(o.qty, float) and 0 < o.qty <= 1e9 and o.qty == int(o.qty)
        if o.limit_price is not None:
            assert isinstance(o.limit_price, float) and 0 < o.limit_price <= 1e7
            assert OrderRules.for_broker("default").is_on_tick(SYM, o.limit_price)

    run()


REPLACE_HOSTILE: list[dict[str, Any]] = [
    {"qty": math.nan},
    {"qty": math.inf},
    {"qty": -5},
    {"qty": 0},
    {"qty": 1e12},
    {"limit_price": math.nan},
    {"limit_price": -math.inf},
    {"limit_price": -99.0},
    {"limit_price": 0.0},
    {"limit_price": 1e-300},
    {"limit_price": 1e12},
    {"limit_price": 99.123},
    {"qty": True},
    {"qty": "20"},
    {"limit_price": "99.4"},
    {"limit_price": True},
    {"qty": 10**400},
    {"qty": [20]},
]


@pytest.mark.parametrize("kind", sorted(BROKERS))
@pytest.mark.parametrize("kw", REPLACE_HOSTILE, ids=[repr(k)[:30] for k in REPLACE_HOSTILE])
def test_hostile_replace_values_never_reach_the_adapter(kind: str, kw: dict[str, Any]) -> None:
    b = _broker(kind)
    order = b.submit_order(SYM, "buy", 10, limit_price=99.5)
    if kind == "paper":
        b.process()  # acknowledged
    b.calls.clear()
    try:
        b.replace_order(order, **kw)
    except (OrderRejected, TypeError, ValueError) as e:
        refused: BaseException | None = e
    else:
        refused = None
    assert refused is not None, f"replace {kw} was accepted"
    assert b.calls == []
    assert order.limit_price == 99.5 and order.qty == 10.0
    assert order.status in (OrderStatus.NEW, OrderStatus.PENDING_NEW)


# ============================================================================================
# 3. hostile config values
# ============================================================================================

BASE_DOC: dict[str, Any] = {
    "venues": {
        "sim": {
            "broker": "paper",
            "feed": "synthetic",
            "rules": "alpaca",
            "latency_ms": 20,
            "cash": 100_000,
            "positions": {"AAPL": 0},
            "shorting": True,
            "fees": {"broker": "alpaca", "per_share": 0.0},
            "leverage": 2.0,
        },
        "alp": {
            "broker": "alpaca",
            "paper": True,
            "base_url": "https://paper-api.alpaca.markets",
            "data_feed": "iex",
            "data_stream_url": "wss://stream.data.alpaca.markets/v2",
        },
        "ib": {
            "broker": "ibkr",
            "host": "127.0.0.1",
            "port": 7497,
            "client_id": 1,
            "account": "DU123",
            "route": "SMART",
            "currency": "USD",
        },
    },
    "market": {
        "date": "2026-11-24",
        "seed": 1,
        "lead_lag_ms": 250,
        "symbols": {"AAPL": {"start_price": 190.0, "volatility": 0.25, "spread_ticks": 2}},
    },
    "session": {
        "calendar": "NYSE",
        "hours": "regular",
        "cancel_before_close_s": 60,
        "flatten_at_close": False,
        "stale_data_s": 5.0,
    },
    "risk": {
        "max_position": 1000,
        "max_order_qty": 500,
        "max_order_notional": 100_000,
        "max_open_orders": 50,
        "max_orders_per_minute": 150,
        "max_daily_loss": 1000,
        "fat_finger": 0.05,
    },
    "strategy": {
        "kind": "pure_market_making",
        "venue": "sim",
        "symbol": "AAPL",
        "bid_spread": 0.001,
        "ask_spread": 0.001,
        "order_amount": 100,
        "order_levels": 2,
        "order_refresh_time": 30.0,
        "max_position": 500.0,
        "order_override": {"a": ["buy", 0.002, 50]},
        "price_source": "mid",
    },
    "data": ["quotes.csv"],
}


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


PATHS = list(_paths(BASE_DOC))


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for k in path:
        doc = doc[k]
    return doc


TABLE_PATHS = [()] + [p for p in PATHS if isinstance(_get(BASE_DOC, p), dict)]

SPECIAL_TEXT = [
    "",
    " ",
    "\t",
    "\x00",
    "\x7f",
    "\u202e",
    "é✓日本",
    "x" * 5000,
    "../../../../etc/passwd",
    "/etc/passwd",
    "~/.ssh/id_rsa",
    "..\\..\\windows",
    "C:\\x",
    "NaN",
    "inf",
    "-1",
    "1e999",
    "true",
    "2026-02-30",
    "9999-12-31",
    "0001-01-01",
    "paper",
    "alpaca",
    "ibkr",
    "replay",
    "synthetic",
    "regular",
    "extended",
    "NYSE",
    "mid",
    "sim",
    "alp",
    "ib",
    "AAPL",
    "AA PL",
    "https://",
    "wss://x",
    "ftp://x",
    "USD",
    "usd",
]
SPECIAL_NUMBERS = [
    0,
    -1,
    1,
    2**31,
    2**63,
    -(2**63) - 1,
    10**400,
    -(10**400),
    0.0,
    -0.0,
    -1.5,
    1e-300,
    5e-324,
    1e15,
    1e16,
    1e308,
    -1e308,
    math.nan,
    math.inf,
    -math.inf,
    0.999999,
    65536,
    3_600_001,
]

scalars = st.one_of(
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(SPECIAL_NUMBERS),
    st.text(max_size=12),
    st.sampled_from(SPECIAL_TEXT),
    st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)),
    st.datetimes(timezones=st.just(dt.UTC)),
    st.times(),
)
hostile = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.one_of(st.text(max_size=6), st.sampled_from(SPECIAL_TEXT)), inner, max_size=3
        )
    ),
    max_leaves=5,
)
keys = st.one_of(
    st.text(max_size=10),
    st.sampled_from(["zz_unknown", "", " ", "broker", "kind", "symbols", "date", "ts", "a.b"]),
)


@st.composite
def mutated_docs(draw: st.DrawFn) -> tuple[dict[str, Any], tuple[Any, ...], str]:
    """BASE_DOC with one hostile change: (doc, path changed, how)."""
    doc = json.loads(json.dumps(BASE_DOC))  # deep copy
    how = draw(st.sampled_from(["set", "set", "set", "add", "delete"]))
    if how == "add":
        path = draw(st.sampled_from(TABLE_PATHS))
        key = draw(keys)
        _get(doc, path)[key] = draw(hostile)
        return doc, (*path, key), how
    path = draw(st.sampled_from(PATHS))
    parent = _get(doc, path[:-1])
    if how == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(hostile)
    return doc, path, how


#: An error about one section may name a key of another it refers to (a venue name used by the
#: strategy, the calendar deciding whether market.date is a trading day, ...).
RELATED = {
    "venues": {"venues", "strategy", "market"},
    "session": {"session", "market"},
    "market": {"market"},
    "risk": {"risk"},
    "strategy": {"strategy"},
    "data": {"data"},
}


def _top(key: str) -> str:
    """The first part of a dotted key as ``tradekit.config`` writes it (JSON-quoted when it is
    not a bare TOML key)."""
    if key.startswith('"'):
        return str(json.JSONDecoder().raw_decode(key)[0])
    return key.split(".")[0].split("[")[0]


def _outcome(source: Any) -> Config | ConfigError:
    try:
        cfg = load_config(source)
        build_strategy(cfg)  # what `tradekit check` also validates
        cfg.to_dict()
        return cfg
    except ConfigError as e:
        return e


def _check_error(e: ConfigError, path: tuple[Any, ...], how: str) -> None:
    assert e.key, f"ConfigError without a key: {e}"
    assert e.key in str(e)
    top = str(path[0]) if path else ""
    if how == "add" and len(path) == 1:  # an unknown top-level key names itself
        assert _top(e.key) in {top, *RELATED.get(top, ())}, e
    elif top in RELATED:
        assert _top(e.key) in RELATED[top], (path, str(e))


@fuzz(1000)
@given(mutated_docs())
def test_hostile_config_dict_gives_config_or_config_error(
    case: tuple[dict[str, Any], tuple[Any, ...], str],
) -> None:
    doc, path, how = case
    out = _outcome(doc)
    if isinstance(out, ConfigError):
        assert out.file is None
        _check_error(out, path, how)


SWEEP_VALUES = [
    10**400,
    -(10**400),
    math.nan,
    math.inf,
    -1,
    0,
    1e308,
    "",
    "\x00",
    "x" * 5000,
    "../../../../etc/passwd",
    {},
    {"zz": {"zz": 1}},
    [],
    [[1, "a"]],
    True,
    dt.date(9999, 12, 31),
]


def test_every_key_against_a_sweep_of_hostile_values() -> None:
    # deterministic: every key of the CONTRACT §4 example with each value above
    seen = 0
    for path in PATHS:
        for value in SWEEP_VALUES:
            doc = json.loads(json.dumps(BASE_DOC))
            _get(doc, path[:-1])[path[-1]] = value
            out = _outcome(doc)
            if isinstance(out, ConfigError):
                _check_error(out, path, "set")
                seen += 1
    assert seen > len(PATHS) * len(SWEEP_VALUES) // 2


def _toml_key(k: Any) -> str:
    k = str(k)
    if k and all(c.isascii() and (c.isalnum() or c in "_-") for c in k):
        return k
    return _toml_str(k)


def _toml_str(s: str) -> str:
    out = []
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def to_toml(doc: dict[str, Any]) -> str:
    return "".join(f"{_toml_key(k)} = {_toml_value(v)}\n" for k, v in doc.items())


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bad_inputs")


def test_the_base_config_is_valid(workdir: Path) -> None:
    assert isinstance(_outcome(BASE_DOC), Config)
    path = workdir / "base.toml"
    path.write_text(to_toml(BASE_DOC), encoding="utf-8")
    assert isinstance(_outcome(path), Config)


@fuzz(500)
@given(case=mutated_docs())
def test_hostile_config_toml_gives_config_or_config_error(
    workdir: Path, case: tuple[dict[str, Any], tuple[Any, ...], str]
) -> None:
    doc, path, how = case
    file = workdir / "hostile.toml"
    file.write_text(to_toml(doc), encoding="utf-8")
    out = _outcome(file)
    if isinstance(out, ConfigError):
        assert out.file == str(file)
        if "invalid TOML" not in out.message:
            _check_error(out, path, how)


@fuzz(150)
@given(
    data=st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.tuples(st.integers(0, 2000), st.text(max_size=5)).map(
            lambda p: (to_toml(BASE_DOC)[: p[0]] + p[1] + to_toml(BASE_DOC)[p[0] :]).encode()
        ),
        st.integers(1, 3000).map(lambda n: ("a = " + "[" * n + "]" * n + "\n").encode()),
        st.integers(1, 3000).map(lambda n: ("a = " + "{b = " * n + "1" + "}" * n).encode()),
    )
)
def test_garbage_config_text_gives_config_or_config_error(workdir: Path, data: bytes) -> None:
    file = workdir / "garbage.toml"
    file.write_bytes(data)
    out = _outcome(file)
    if isinstance(out, ConfigError):
        assert out.file == str(file)


def test_deep_or_cyclic_dicts_are_config_errors() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(10_000):
        node["x"] = {}
        node = node["x"]
    cyclic: dict[str, Any] = {"a": 1}
    cyclic["self"] = cyclic
    for where, value in (("strategy", deep), ("strategy", cyclic), ("market", [[[[[deep]]]]])):
        doc = json.loads(json.dumps({k: v for k, v in BASE_DOC.items() if k != where}))
        doc[where] = {**BASE_DOC[where], "extra": value}
        with pytest.raises(ConfigError, match="nested too deeply") as info:
            load_config(doc)
        assert info.value.key and info.value.key.startswith(f"{where}.extra")


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli_main(argv)
    return rc, out.getvalue(), err.getvalue()


def assert_clean_failure(rc: int, err: str) -> None:
    """Exit 2 with one line on stderr, no traceback."""
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("tradekit: error: "), err


@fuzz(200)
@given(case=mutated_docs())
def test_cli_check_exits_0_or_2_with_one_line(
    workdir: Path, case: tuple[dict[str, Any], tuple[Any, ...], str]
) -> None:
    doc, _, _ = case
    file = workdir / "check.toml"
    file.write_text(to_toml(doc), encoding="utf-8")
    rc, _, err = run_cli(["check", str(file)])
    assert "Traceback" not in err
    if rc != 0:
        assert_clean_failure(rc, err)


# -- `tradekit backtest`: a replay venue on a tiny file keeps each run short ------------------

REPLAY_DOC: dict[str, Any] = {
    "venues": {"rep": {"broker": "paper", "feed": "replay", "latency_ms": 5, "cash": 100_000}},
    "session": {"cancel_before_close_s": 60},
    "risk": {"max_order_qty": 500, "fat_finger": 0.05},
    "strategy": {
        "kind": "pure_market_making",
        "venue": "rep",
        "symbol": "AAPL",
        "order_amount": 100,
        "order_refresh_time": 5.0,
    },
}
REPLAY_PATHS = [p for p in _paths(REPLAY_DOC) if p[0] != "data"]


def _tiny_quotes(path: Path) -> Path:
    rows = [f"{T0 + i * S},AAPL,100.00,500,100.02,500" for i in range(30)]
    path.write_text("ts,symbol,bid,bid_size,ask,ask_size\n" + "\n".join(rows) + "\n")
    return path


@fuzz(25)
@given(
    path=st.sampled_from(REPLAY_PATHS),
    value=st.one_of(  # hostile, or plausible enough that the backtest runs
        hostile,
        st.floats(min_value=1e-6, max_value=1e6),
        st.integers(min_value=0, max_value=10**6),
        st.sampled_from([1e-300, 1e15, 5e-324, 0.999999, 3_600_000, 86_400]),
    ),
)
def test_cli_backtest_with_hostile_values_exits_0_or_2(
    workdir: Path, path: tuple[Any, ...], value: Any
) -> None:
    doc = json.loads(json.dumps(REPLAY_DOC))
    _get(doc, path[:-1])[path[-1]] = value
    file = workdir / "bt.toml"
    file.write_text(to_toml(doc), encoding="utf-8")
    data = _tiny_quotes(workdir / "tiny.csv")
    rc, _, err = run_cli(
        ["backtest", str(file), "--data", str(data), "--quiet", "--out", str(workdir / "bt-out")]
    )
    assert "Traceback" not in err
    if rc != 0:
        assert_clean_failure(rc, err)


SYNTHETIC_TOML = """\
[venues.sim]
broker = "paper"
latency_ms = 20
[market]
date = "2026-11-24"
[market.symbols.AAPL]
start_price = 190.0
[strategy]
kind = "pure_market_making"
venue = "sim"
symbol = "AAPL"
order_amount = 100
"""

#: Values that loaded fine before and then crashed the backtest (exit 1, OverflowError) or
#: would exhaust memory: now refused when the config is read.
BACKTEST_CRASHERS = [
    ("latency_ms = 20", "latency_ms = 1e308", "venues.sim.latency_ms"),
    (
        "order_amount = 100",
        "order_amount = 100\norder_refresh_time = 1e308",
        "strategy.order_refresh_time",
    ),
    (
        "order_amount = 100",
        "order_amount = 100\nfilled_order_delay = 1e308",
        "strategy.filled_order_delay",
    ),
    (
        "[strategy]",
        "[session]\ncancel_before_close_s = 1e308\n[strategy]",
        "session.cancel_before_close_s",
    ),
    (
        "start_price = 190.0",
        "start_price = 190.0\nspread_ticks = 1e308",
        "market.symbols.AAPL.spread_ticks",
    ),
    (
        "start_price = 190.0",
        "start_price = 190.0\nvolatility = 1e308",
        "market.symbols.AAPL.volatility",
    ),
    (
        "start_price = 190.0",
        "start_price = 190.0\nquote_rate = 1e9",
        "market.symbols.AAPL.quote_rate",
    ),
    ("start_price = 190.0", "start_price = 1e308", "market.symbols.AAPL.start_price"),
    (
        "latency_ms = 20",
        "latency_ms = 20\npositions = { AAPL = 1e308 }",
        "venues.sim.positions.AAPL",
    ),
    ("latency_ms = 20", 'latency_ms = 20\npositions = { "A\\u0000" = 5 }', "venues.sim.positions"),
    ('symbol = "AAPL"', 'symbol = "AA\\u0000PL"', "strategy.symbol"),
    ("latency_ms = 20", "latency_ms = 99999999999999999999999", "venues.sim.latency_ms"),
    (
        "[strategy]",
        "[risk]\nmax_position = 99999999999999999999999999\n[strategy]",
        "risk.max_position",
    ),
    ("[strategy]", 'data = ["q\\u0000.csv"]\n[strategy]', "data[0]"),
]


@pytest.mark.parametrize(
    ("old", "new", "key"), BACKTEST_CRASHERS, ids=[k for _, _, k in BACKTEST_CRASHERS]
)
def test_cli_backtest_refuses_values_that_used_to_crash_it(
    workdir: Path, old: str, new: str, key: str
) -> None:
    text = SYNTHETIC_TOML.replace(old, new, 1)
    if new.startswith("data"):
        text = new.split("\n")[0] + "\n" + SYNTHETIC_TOML
    assert text != SYNTHETIC_TOML
    file = workdir / "crash.toml"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert info.value.key is not None and info.value.key.startswith(key), info.value
    rc, _, err = run_cli(["backtest", str(file), "--quiet", "--out", str(workdir / "x")])
    assert_clean_failure(rc, err)
    assert key.split("[")[0] in err


# ============================================================================================
# 4. malformed market data files
# ============================================================================================

HEADER = "ts,symbol,bid,bid_size,ask,ask_size"


def qrow(
    sec: int,
    bid: str = "100.00",
    ask: str = "100.02",
    sym: str = SYM,
    bs: str = "500",
    az: str = "500",
) -> str:
    return f"{T0 + sec * S},{sym},{bid},{bs},{ask},{az}"


GOOD_ROWS = [qrow(i) for i in range(10)]


def _write(path: Path, data: bytes | str) -> Path:
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def _csv(*rows: str) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


REPLAY_TOML = """\
[venues.rep]
broker = "paper"
feed = "replay"
[strategy]
kind = "pure_market_making"
venue = "rep"
symbol = "AAPL"
order_amount = 100
"""


def backtest(workdir: Path, data: Path, *extra: str) -> tuple[int, str, str]:
    cfg = workdir / "replay.toml"
    cfg.write_text(REPLAY_TOML, encoding="utf-8")
    return run_cli(
        [
            "backtest",
            str(cfg),
            "--data",
            str(data),
            "--quiet",
            "--out",
            str(workdir / "out"),
            *extra,
        ]
    )


BAD_ROW_FILES = [
    # (name, rows, the line reported, words) -- every file also has good rows
    ("nan", [qrow(0), qrow(1, bid="nan"), qrow(2)], 3, "missing bid"),
    ("inf", [qrow(0), qrow(1, ask="inf"), qrow(2)], 3, "ask inf is not finite"),
    ("huge", [qrow(0), qrow(1, bid="1e400"), qrow(2)], 3, "bid inf is not finite"),
    ("crossed", [qrow(0), qrow(1, bid="100.05"), qrow(2)], 3, "crossed quote"),
    ("negative size", [qrow(0), qrow(1, az="-5"), qrow(2)], 3, "ask_size -5 is negative"),
    ("backwards", [qrow(5), qrow(1), qrow(6)], 3, "is earlier than the previous row's"),
    ("ts in seconds", [f"{T0 // S},AAPL,100,500,100.02,500", qrow(2)], 2, "before 2000-01-01"),
    ("negative ts", ["-5,AAPL,100,500,100.02,500", qrow(2)], 2, "ts -5 is before 2000-01-01"),
    (
        "ts too large",
        ["99999999999999999999999,AAPL,100,500,100.02,500", qrow(2)],
        2,
        "is not a timestamp",
    ),
    ("garbage row", [qrow(0), "hello world", qrow(2)], 3, "is not a timestamp"),
    ("short row", [qrow(0), f"{T0 + S},AAPL", qrow(2)], 3, "missing bid, bid_size, ask"),
    ("NUL bytes", [qrow(0), "\x00\x00,\x00,1,2,3,4", qrow(2)], 3, "non-printable"),
    ("long symbol", [qrow(0), qrow(1, sym="A" * 5000), qrow(2)], 3, "5000 characters long"),
    ("control chars in symbol", [qrow(0), qrow(1, sym="AA\x01PL"), qrow(2)], 3, "non-printable"),
    ("spaces around the symbol", [qrow(0), qrow(1, sym=" AAPL"), qrow(2)], 3, "surrounding spaces"),
]


@pytest.mark.parametrize(
    ("name", "rows", "line", "words"), BAD_ROW_FILES, ids=[c[0] for c in BAD_ROW_FILES]
)
def test_bad_rows_are_reported_skipped_and_strict_stops(
    workdir: Path, name: str, rows: list[str], line: int, words: str
) -> None:
    path = _write(workdir / f"{name.replace(' ', '_')}.csv", _csv(*rows))
    msgs: list[str] = []
    events = list(ReplayFile(path, report=msgs.append).events())
    assert len(events) == len(rows) - 1
    assert len(msgs) == 1 and msgs[0].startswith(f"{path}:{line}: ") and words in msgs[0], msgs
    assert len(msgs[0]) < 400
    rc, _, err = backtest(workdir, path)
    assert rc == 0 and "Traceback" not in err
    assert f"{path}:{line}: " in err
    rc, _, err = backtest(workdir, path, "--strict")
    assert_clean_failure(rc, err)
    assert f"{path}:{line}: " in err


def test_zero_size_sides_are_data_not_errors(workdir: Path) -> None:
    # CONTRACT §5 lists no zero sizes among the bad rows (tests/test_replay.py replays such
    # rows): a quote side of size 0 is kept; the live guard is stricter (see above)
    path = _write(
        workdir / "zero.csv",
        _csv(qrow(0), qrow(1, bs="0"), qrow(2, az="0"), qrow(3, bid="0", bs="0")),
    )
    msgs: list[str] = []
    assert len(list(ReplayFile(path, report=msgs.append).events())) == 4 and msgs == []


def _gzip_truncated() -> bytes:
    data = gzip.compress(_csv(*[qrow(i) for i in range(5000)]).encode())
    return data[: len(data) // 2]


def _parquet_bytes() -> bytes:
    df = pd.DataFrame(
        {
            "ts": [T0 + i * S for i in range(2000)],
            "symbol": [SYM] * 2000,
            "bid": [100.0] * 2000,
            "bid_size": [500.0] * 2000,
            "ask": [100.02] * 2000,
            "ask_size": [500.0] * 2000,
        }
    )
    buf = io.BytesIO()
    df.to_parquet(buf, row_group_size=500)
    return buf.getvalue()


PARQUET = _parquet_bytes()

BAD_FILES: list[tuple[str, bytes, str]] = [
    # (file name, content, words of the one-line DataError)
    ("empty.csv", b"", "empty file"),
    ("blank.csv", b"\n\n   \n", "empty file"),
    ("binary.csv", bytes(range(128, 256)) + bytes(range(256)) * 8, "cannot read the CSV"),
    (
        "binary_after_header.csv",
        (HEADER + "\n").encode() + bytes(range(128, 256)) * 8,
        "cannot read the CSV",
    ),
    ("utf16.csv", _csv(*GOOD_ROWS).encode("utf-16"), "cannot read the CSV header"),
    ("latin1.csv", (_csv(*GOOD_ROWS) + "9,ÄÖ,1,1,1,1\n").encode("latin-1"), "cannot read rows"),
    (
        "unclosed_quote.csv",
        (_csv(qrow(0)) + '1,"AAPL,1,1\n' + qrow(2) + "\n").encode(),
        "cannot read the CSV",
    ),
    ("missing_columns.csv", b"ts,symbol,bid\n1,AAPL,2\n", "missing column(s)"),
    ("not_csv.csv", b'{"json": true}\n[1, 2, 3]\n', "missing column(s)"),
    ("duplicate_columns.csv", b"ts,symbol,bid,bid_size,ask,ask_size,BID\n", "appears twice"),
    ("bad.csv.gz", b"\x1f\x8b\x08\x00garbage", "cannot read the CSV"),
    ("truncated.csv.gz", _gzip_truncated(), "cannot read"),
    ("empty.parquet", b"", "cannot read the Parquet file"),
    ("junk.parquet", bytes(range(256)) * 8, "cannot read the Parquet file"),
    ("truncated.parquet", PARQUET[: len(PARQUET) // 2], "cannot read the Parquet file"),
    ("tail_cut.parquet", PARQUET[:-12], "cannot read the Parquet file"),
    ("csv_named.parquet", _csv(*GOOD_ROWS).encode(), "cannot read the Parquet file"),
    ("quotes.txt", _csv(*GOOD_ROWS).encode(), "unknown data file type"),
]


@pytest.mark.parametrize(("name", "content", "words"), BAD_FILES, ids=[n for n, _, _ in BAD_FILES])
def test_damaged_files_are_one_clear_data_error(
    workdir: Path, name: str, content: bytes, words: str
) -> None:
    path = _write(workdir / name, content)
    with pytest.raises(DataError) as info:
        rf = ReplayFile(path, report=lambda m: None)
        list(rf.events())
        _ = rf.symbols
    assert str(info.value).startswith(f"{path}: ") and words in str(info.value)
    assert "\n" not in str(info.value)
    for strict in ((), ("--strict",)):
        rc, _, err = backtest(workdir, path, *strict)
        assert_clean_failure(rc, err)
        assert words in err


def test_a_file_without_rows_replays_nothing_and_the_backtest_says_so(workdir: Path) -> None:
    path = _write(workdir / "header_only.csv", HEADER + "\n")
    assert list(ReplayFile(path).events()) == []
    rc, _, err = backtest(workdir, path)
    assert_clean_failure(rc, err)
    assert "no market data" in err


def test_junk_late_in_a_file_is_a_data_error_also_for_the_symbol_scan(workdir: Path) -> None:
    good = _csv(*[qrow(i) for i in range(2000)]).encode()
    junk = (b"1," + bytes(range(128, 256)) + b",1,1,1,1\n") * 20  # not UTF-8, in the symbols
    path = _write(workdir / "late_junk.csv", good + junk)
    with pytest.raises(DataError, match=r"late_junk\.csv"):
        _ = ReplayFile(path).symbols
    with pytest.raises(DataError, match=r"late_junk\.csv"):
        list(ReplayFile(path, report=lambda m: None).events())


def test_unopenable_paths_are_data_errors(workdir: Path) -> None:
    for path in (workdir / ("x" * 5000 + ".csv"), workdir / "missing.csv", workdir):
        with pytest.raises(DataError):
            ReplayFile(path)
    rc, _, err = backtest(workdir, workdir / ("y" * 5000 + ".csv"))
    assert_clean_failure(rc, err)


@fuzz(80)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(GOOD_ROWS),
            st.text(alphabet=st.sampled_from(list('0123456789,.-eEnaif"AP L\x00')), max_size=40),
            st.binary(max_size=30).map(lambda b: b.decode("latin-1")),
        ),
        max_size=12,
    ),
    st.booleans(),
)
def test_random_rows_never_raise_anything_but_data_error(
    workdir: Path, rows: list[str], strict: bool
) -> None:
    path = workdir / "random.csv"
    try:
        path.write_bytes(_csv(*rows).encode("utf-8"))
    except UnicodeEncodeError:
        assume(False)
    msgs: list[str] = []
    try:
        rf = ReplayFile(path, strict=strict, report=msgs.append)
        events = list(rf.events())
        _ = rf.symbols
    except DataError as e:
        assert str(e).startswith(str(path))
        return
    for m in msgs:
        assert m.startswith(f"{path}:") and "\n" not in m
    prev = -1
    for ev in events:  # what is replayed is clean
        assert isinstance(ev, Quote) and ev.ts >= prev
        prev = ev.ts
        assert all(math.isfinite(x) and x >= 0 for x in (ev.bid, ev.bid_size, ev.ask, ev.ask_size))
        assert not ev.bid > ev.ask > 0
        assert ev.symbol and ev.symbol.isprintable()
