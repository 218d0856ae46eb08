"""Tests of tradekit.feeds.synthetic: determinism, session bounds, tick and size rules, trades at
the touch, lead-lag and dislocations between venues, configuration errors."""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np
import pytest

from tradekit.calendar import get_calendar
from tradekit.errors import ConfigError
from tradekit.feeds import SyntheticMarket
from tradekit.model import Quote, Trade
from tradekit.timeutil import NS_PER_S

DAY = "2026-11-24"


def market(**kw: object) -> SyntheticMarket:
    args: dict[str, object] = {
        "date": DAY,
        "symbols": {"AAPL": {"start_price": 190.0}},
        "venues": ["A", "B"],
    }
    args.update(kw)
    return SyntheticMarket(**args)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def day_events() -> list[Quote | Trade]:
    m = market(symbols={"AAPL": {"start_price": 190.0}, "PENNY": {"start_price": 0.5}})
    return list(m.events())


def quotes(events: Iterable[Quote | Trade]) -> list[Quote]:
    return [e for e in events if isinstance(e, Quote)]


def test_same_seed_same_events_other_seed_other_events() -> None:
    a = list(market(seed=7).events())
    b = list(market(seed=7).events())
    c = list(market(seed=8).events())
    assert a == b
    assert a != c
    # adding a symbol leaves the others' streams alone
    d = market(seed=7, symbols={"AAPL": {"start_price": 190.0}, "MSFT": {"start_price": 420.0}})
    assert [e for e in d.events() if e.symbol == "AAPL"] == a


def span(date: str, hours: str = "regular") -> tuple[int, int, int, int]:
    """(start, open, close, end) ns of the simulated span of ``date``."""
    day = get_calendar("NYSE").day(date)
    assert day.pre_open_ns and day.open_ns and day.close_ns and day.post_close_ns
    if hours == "regular":
        return day.open_ns, day.open_ns, day.close_ns, day.close_ns
    return day.pre_open_ns, day.open_ns, day.close_ns, day.post_close_ns


def test_events_in_order_and_inside_the_session(day_events: list[Quote | Trade]) -> None:
    start, _, _, end = span(DAY)
    ts = [e.ts for e in day_events]
    assert ts == sorted(ts)
    assert start <= ts[0] and ts[-1] < end
    assert {e.venue for e in day_events} == {"A", "B"}
    assert {e.symbol for e in day_events} == {"AAPL", "PENNY"}


def test_extended_hours_and_early_close() -> None:
    start, op, cl, end = span(DAY, "extended")
    ext = list(market(hours="extended").events())
    assert start <= ext[0].ts and ext[-1].ts < end
    pre = sum(1 for e in ext if e.ts < op)
    regular = sum(1 for e in ext if op <= e.ts < cl)
    assert pre > 0 and pre / 5.5 < regular / 6.5 / 2  # lower rates outside regular hours
    assert get_calendar("NYSE").day("2026-11-27").is_early_close
    start, _, _, end = span("2026-11-27")
    ev = list(market(date="2026-11-27").events())
    assert start <= ev[0].ts and ev[-1].ts < end
    assert end - start == int(3.5 * 3600 * NS_PER_S)  # 09:30-13:00


def test_quotes_on_tick_never_crossed_sizes_in_lots(day_events: list[Quote | Trade]) -> None:
    qs = quotes(day_events)
    for q in qs:
        tick = 0.01 if q.symbol == "AAPL" else 0.0001
        assert 0 < q.bid < q.ask
        spread = round((q.ask - q.bid) / tick)
        assert 1 <= spread <= 3
        for px in (q.bid, q.ask):
            assert abs(px / tick - round(px / tick)) < 1e-6
            assert float(f"{px:.{2 if tick == 0.01 else 4}f}") == px  # exact decimal text
        assert q.bid_size > 0 and q.ask_size > 0
        assert q.bid_size % 100 == 0 and q.ask_size % 100 == 0


def test_trades_at_the_venues_touch(day_events: list[Quote | Trade]) -> None:
    touch: dict[tuple[str, str], Quote] = {}
    n = 0
    for e in day_events:
        if isinstance(e, Quote):
            touch[e.symbol, e.venue] = e
            continue
        n += 1
        q = touch[e.symbol, e.venue]
        assert e.price in (q.bid, q.ask)
        assert 0 < e.size <= (q.ask_size if e.price == q.ask else q.bid_size)
    assert n > 10_000


def test_event_count_and_generation_time() -> None:
    m = market(symbols={"AAPL": {"start_price": 190.0}, "MSFT": {"start_price": 420.0}})
    t0 = time.perf_counter()
    n = len(m)
    assert time.perf_counter() - t0 < 2.0
    assert 50_000 <= n / 4 <= 100_000  # per symbol and venue


def _mid_on_grid(qs: list[Quote], venue: str, grid: np.ndarray) -> np.ndarray:
    mine = [q for q in qs if q.venue == venue]
    ts = np.array([q.ts for q in mine])
    mid = np.array([q.mid for q in mine])
    return mid[np.searchsorted(ts, grid, side="right") - 1]


def test_second_venue_follows_the_first_with_the_lag() -> None:
    sym = {"AAPL": {"start_price": 190.0, "volatility": 1.0, "quote_rate": 5.0}}
    m = market(symbols=sym, lead_lag_ms=5_000, dislocation_rate=0.0)
    qs = quotes(m.events())
    grid = np.arange(m.start_ns + 10 * NS_PER_S, m.end_ns, NS_PER_S)
    a, b = _mid_on_grid(qs, "A", grid), _mid_on_grid(qs, "B", grid)
    assert np.corrcoef(a, b)[0, 1] > 0.99
    ra, rb = np.diff(a), np.diff(b)
    corr = [np.corrcoef(ra[: len(ra) - k], rb[k:])[0, 1] for k in range(10)]
    assert int(np.argmax(corr)) == 5
    assert corr[5] > 0.5


def test_dislocations_shift_one_venue() -> None:
    m = market(dislocation_rate=20.0, lead_lag_ms=0)
    qs = quotes(m.events())
    assert len(m.dislocations) > 50
    assert {d.venue for d in m.dislocations} == {"A", "B"}
    assert all(3 <= abs(d.offset_ticks) <= 8 for d in m.dislocations)
    assert all(0 < d.end_ns - d.start_ns <= 6 * NS_PER_S for d in m.dislocations)
    starts = np.array([d.start_ns for d in m.dislocations])
    ends = np.array([d.end_ns for d in m.dislocations])
    last: dict[str, Quote] = {}
    inside: list[float] = []
    outside: list[float] = []
    for q in qs:
        last[q.venue] = q
        other = last.get("B" if q.venue == "A" else "A")
        if other is None:
            continue
        gap = abs(q.mid - other.mid) / 0.01
        k = np.searchsorted(starts, q.ts, side="right") - 1
        hit = k >= 0 and q.ts < ends[k] and other.ts >= starts[k]
        (inside if hit else outside).append(gap)
    assert np.mean(inside) > 2.5
    assert np.mean(outside) < 1.5


def test_window_filtering() -> None:
    m = market()
    lo = m.start_ns + 60 * NS_PER_S
    hi = lo + 60 * NS_PER_S
    sub = list(m.events(lo, hi))
    assert sub and all(lo <= e.ts < hi for e in sub)
    assert sub == [e for e in m.events() if lo <= e.ts < hi]
    assert m.symbols == {"AAPL"}


@pytest.mark.parametrize(
    ("date", "nxt"), [("2026-11-26", "2026-11-27"), ("2026-11-28", "2026-11-30")]
)
def test_closed_day_raises(date: str, nxt: str) -> None:
    with pytest.raises(ConfigError, match=f"closed on {date}.*next trading day is {nxt}"):
        market(date=date)


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'volatilty' \(allowed: start_price, vol"):
        market(symbols={"AAPL": {"start_price": 1.0, "volatilty": 0.2}})
    with pytest.raises(ConfigError, match=r"market.symbols.AAPL.start_price: -5 is out of range"):
        market(symbols={"AAPL": {"start_price": -5}})
    with pytest.raises(ConfigError, match="start_price is required"):
        market(symbols={"AAPL": {"volatility": 0.2}})
    with pytest.raises(ConfigError, match=r"spread_ticks: 0 is not allowed"):
        market(symbols={"AAPL": {"start_price": 1.0, "spread_ticks": 0}})
    with pytest.raises(ConfigError, match=r"quote_rate: 'fast' is not a number"):
        market(symbols={"AAPL": {"start_price": 1.0, "quote_rate": "fast"}})
    with pytest.raises(ConfigError, match="unknown key 'speed'"):
        market(speed=2)
    with pytest.raises(ConfigError, match="regular, extended"):
        market(hours="all")
    with pytest.raises(ConfigError, match="venue names repeat"):
        market(venues=["A", "A"])


def test_market_wide_defaults_and_fixed_tick() -> None:
    m = market(
        volatility=0.0, dislocation_rate=0, symbols={"X": {"start_price": 10.0, "tick": 0.05}}
    )
    qs = quotes(m.events())
    assert m.params["X"].volatility == 0.0
    assert all(round(q.bid * 20) == q.bid * 20 for q in qs)
    assert {round(q.mid, 3) for q in qs} <= {9.95, 9.975, 10.0, 10.025, 10.05}  # no drift
