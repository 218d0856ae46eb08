"""Scenario tests of the engine: sessions over a holiday and an early close, bad replay rows,
timers, session callbacks, data latency, venue merging, quote uptime and mark-outs."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

import tradekit
from tradekit.brokers.paper import PaperBroker
from tradekit.calendar import get_calendar
from tradekit.cli import main as cli_main
from tradekit.engine import Engine
from tradekit.enums import OrderStatus, Session, Side
from tradekit.errors import DataError
from tradekit.model import Fill, Order, Quote, Trade
from tradekit.strategies.base import SessionChange, Strategy, Timer
from tradekit.testing import et

SYM = "AAPL"
S = 1_000_000_000
MS = 1_000_000


# ---- helpers ----------------------------------------------------------------------------------
def write_quotes(path: Path, rows: Iterable[tuple[Any, ...]], *, venue: bool = False) -> Path:
    head = "ts,symbol,bid,bid_size,ask,ask_size" + (",venue" if venue else "")
    lines = [head] + [",".join(str(x) for x in r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_trades(path: Path, rows: Iterable[tuple[Any, ...]]) -> Path:
    lines = ["ts,symbol,price,size"] + [",".join(str(x) for x in r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def replay_config(
    *, latency_ms: float = 0, venues: Iterable[str] = ("paper",), **session: Any
) -> dict[str, Any]:
    return {
        "venues": {
            v: {"broker": "paper", "feed": "replay", "latency_ms": latency_ms} for v in venues
        },
        "session": {"hours": "regular", "cancel_before_close_s": 60, **session},
    }


def engine_with(
    strategy: Strategy,
    *,
    latency_ms: float = 0,
    cancel_before_close_s: float = 60,
    venues: Iterable[str] = ("v",),
) -> tuple[Engine, dict[str, PaperBroker]]:
    eng = Engine(hours="regular", cancel_before_close_s=cancel_before_close_s)
    brokers = {}
    for v in venues:
        b = PaperBroker(latency_ms=latency_ms, id_prefix=v)
        eng.add_venue(v, b, data_latency_ms=latency_ms)
        brokers[v] = b
    eng.add_strategy(strategy)
    return eng, brokers


def q(ts: int, bid: float, ask: float, venue: str = "v", size: float = 500) -> Quote:
    return Quote(ts, SYM, bid, size, ask, size, venue)


def minute_quotes(
    start: int,
    end: int,
    step_s: float = 60,
    *,
    venue: str = "v",
    bid: float = 100.00,
    ask: float = 100.02,
) -> list[Quote]:
    out = []
    t = start
    while t <= end:
        out.append(q(t, bid, ask, venue))
        t += int(step_s * S)
    return out


class Keeper(Strategy):
    """Tries to keep one bid and one ask resting at all times (whenever the engine allows
    quoting, or - with ``obey=False`` - at every event regardless). Records, at every callback,
    how many of its orders are open (accepted and not done), and every session change."""

    kind = "keeper"

    def __init__(self, *, obey: bool = True, offset: float = 0.01, probe_s: float = 7.0) -> None:
        super().__init__()
        self.obey = obey
        self.offset = offset
        self.probe_s = probe_s
        self.live: dict[str, Order] = {}  # accepted, not done
        self.mine: dict[Side, Order] = {}
        self.samples: list[tuple[int, int]] = []
        self.changes: list[tuple[int, Session, bool]] = []

    def on_start(self) -> None:
        self.set_timer("probe", self.probe_s)

    def _record(self) -> None:
        self.samples.append((self.now_ns(), len(self.live)))

    def _ensure(self) -> None:
        if self.obey and not self.quoting_allowed():
            return
        qt = self.quote(SYM)
        if qt is None:
            return
        for side, px in ((Side.BUY, qt.bid - self.offset), (Side.SELL, qt.ask + self.offset)):
            o = self.mine.get(side)
            if o is None or o.is_done:
                placed = self.order(side, SYM, 10, round(px, 2))
                if placed is not None:
                    self.mine[side] = placed

    def on_quote(self, quote: Quote) -> None:
        self._record()
        self._ensure()

    def on_trade(self, trade: Trade) -> None:
        self._record()

    def on_timer(self, timer: Timer) -> None:
        self._record()

    def on_session(self, change: SessionChange) -> None:
        self.changes.append((change.ts, change.session, change.closing))
        self._record()

    def on_order(self, order: Order) -> None:
        cid = order.client_order_id
        if order.accepted_ts is not None and not order.is_done:
            self.live[cid] = order
        else:
            self.live.pop(cid, None)
        self._record()
        if order.is_done and order.status is not OrderStatus.REJECTED:
            self._ensure()  # (a local rejection is reported here too: no retry loop)


# ---- sessions over Thanksgiving and the early close -----------------------------------------
def _thanksgiving_files(tmp_path: Path) -> tuple[Path, Path]:
    start = et(2026, 11, 25, 0, 0)
    end = et(2026, 11, 27, 23, 59, 30)
    quotes = []
    trades = []
    i = 0
    t = start
    while t <= end:
        mid = 190.0 + 0.6 * math.sin(i / 37.0) + 0.25 * math.sin(i / 5.3)
        bid = round(mid - 0.01, 2)
        ask = round(bid + 0.02, 2)
        quotes.append((t, SYM, f"{bid:.2f}", 300, f"{ask:.2f}", 300))
        if i % 10 == 5:  # a print every 5 minutes, at the bid or the ask
            px = bid if i % 20 == 5 else ask
            trades.append((t + 1 * MS, SYM, f"{px:.2f}", 100))
        i += 1
        t += 30 * S
    return (
        write_quotes(tmp_path / "quotes.csv", quotes),
        write_trades(tmp_path / "trades.csv", trades),
    )


@pytest.fixture(scope="module")
def thanksgiving(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _thanksgiving_files(tmp_path_factory.mktemp("thanksgiving"))


LAT_MS = 10


def test_no_order_open_outside_regular_session_over_thanksgiving(
    thanksgiving: tuple[Path, Path],
) -> None:
    cal = get_calendar()
    strat = Keeper()
    res = tradekit.backtest(
        replay_config(latency_ms=LAT_MS), data=list(map(str, thanksgiving)), strategies=strat
    )
    orders = res.record.orders
    assert orders, "the strategy never quoted"
    accepted = [o for o in orders if o.accepted_ts is not None]
    # it quoted on both trading days, and never on the holiday
    days = {cal.day(o.accepted_ts).date.isoformat() for o in accepted}
    assert days == {"2026-11-25", "2026-11-27"}

    # sampled at every callback: no open order while closed, pre or post
    assert len(strat.samples) > 8000
    bad = [
        (ts, n, cal.session_at(ts))
        for ts, n in strat.samples
        if n and cal.session_at(ts) is not Session.REGULAR
    ]
    assert bad == []

    # and exactly, from each order's life: accepted and done inside one regular session,
    # before that day's closing point (close - 60 s) plus the cancel latency
    lat = LAT_MS * MS
    for o in accepted:
        assert o.is_done, o
        assert o.done_ts is not None
        day = cal.day(o.accepted_ts)
        assert day.open_ns is not None and day.close_ns is not None
        assert day.open_ns <= o.accepted_ts, o
        assert o.done_ts <= day.close_ns - 60 * S + lat, (o, o.done_ts)
        assert cal.session_at(o.accepted_ts) is Session.REGULAR

    # the early close: every order of 11-27 done by 12:59:00 ET + latency
    fri = [o for o in accepted if cal.day(o.accepted_ts).date.isoformat() == "2026-11-27"]
    assert fri
    last_done = max(o.done_ts for o in fri if o.done_ts is not None)
    assert last_done <= et(2026, 11, 27, 12, 59) + lat
    # it kept quoting until close to the closing point (the test is not vacuous)
    assert last_done >= et(2026, 11, 27, 12, 58)
    assert any(o.status is OrderStatus.CANCELED for o in fri)
    wed = [o for o in accepted if cal.day(o.accepted_ts).date.isoformat() == "2026-11-25"]
    assert max(o.done_ts or 0 for o in wed) <= et(2026, 11, 25, 15, 59) + lat
    # no order created while quoting was not allowed
    for o in orders:
        assert cal.session_at(o.created_ts) is Session.REGULAR
        assert o.created_ts < cal.day(o.created_ts).close_ns - 60 * S

    # each session change once, in order, with the closing points; nothing on the holiday
    assert strat.changes == [
        (et(2026, 11, 25, 4, 0), Session.PRE, False),
        (et(2026, 11, 25, 9, 30), Session.REGULAR, False),
        (et(2026, 11, 25, 15, 59), Session.REGULAR, True),
        (et(2026, 11, 25, 16, 0), Session.POST, False),
        (et(2026, 11, 25, 20, 0), Session.CLOSED, False),
        (et(2026, 11, 27, 4, 0), Session.PRE, False),
        (et(2026, 11, 27, 9, 30), Session.REGULAR, False),
        (et(2026, 11, 27, 12, 59), Session.REGULAR, True),
        (et(2026, 11, 27, 13, 0), Session.POST, False),
        (et(2026, 11, 27, 17, 0), Session.CLOSED, False),
    ]


def test_orders_sent_outside_the_session_are_refused_and_never_rest(
    thanksgiving: tuple[Path, Path],
) -> None:
    """A strategy that ignores quoting_allowed(): the broker refuses it while closed, pre or
    post (regular hours), so nothing of ours ever rests then."""
    cal = get_calendar()
    strat = Keeper(obey=False)
    res = tradekit.backtest(
        replay_config(latency_ms=LAT_MS), data=list(map(str, thanksgiving)), strategies=strat
    )
    assert strat.stats.rejected > 0
    assert {r.error.reason.value for r in strat.stats.last_rejections} <= {"session_closed"}
    for o in res.record.orders:
        if o.accepted_ts is None:
            continue
        assert cal.session_at(o.accepted_ts) is Session.REGULAR
        assert o.done_ts is not None
        day = cal.day(o.accepted_ts)
        assert o.done_ts <= day.close_ns + LAT_MS * MS, o  # DAY orders end at the close
    # (at the very instant of the close, DAY orders expire in the same nanosecond as the session
    # change: the boundary instant itself is covered by the done_ts check above)
    bad = [
        (ts, n)
        for ts, n in strat.samples
        if n
        and cal.session_at(ts) is not Session.REGULAR
        and cal.session_at(ts - 1) is not Session.REGULAR
    ]
    assert bad == []


# ---- bad replay rows --------------------------------------------------------------------------
def _out_of_order_file(tmp_path: Path) -> tuple[Path, int, int]:
    t0 = et(2026, 11, 24, 10, 0)
    rows = [(t0 + i * S, SYM, "100.00", 100, "100.02", 100) for i in range(8)]
    rows[3] = (t0 - 5 * S, SYM, "100.00", 100, "100.02", 100)  # data row 4 -> line 5
    return write_quotes(tmp_path / "bad.csv", rows), 5, len(rows)


def test_out_of_order_row_reported_with_line_and_run_continues(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f, line, n = _out_of_order_file(tmp_path)
    seen: list[int] = []

    class Rec(Strategy):
        def on_quote(self, quote: Quote) -> None:
            seen.append(quote.ts)

    res = tradekit.backtest(replay_config(), data=[str(f)], strategies=Rec())
    err = capsys.readouterr().err
    msgs = [ln for ln in err.splitlines() if ln.startswith(f"{f}:")]
    assert len(msgs) == 1, err
    assert msgs[0].startswith(f"{f}:{line}: "), msgs[0]
    assert "earlier" in msgs[0]
    assert res.summary["events"] == n - 1
    assert len(seen) == n - 1 and seen == sorted(seen)


def test_out_of_order_row_strict_raises(tmp_path: Path) -> None:
    f, line, _ = _out_of_order_file(tmp_path)
    with pytest.raises(DataError, match=rf"bad\.csv:{line}: "):
        tradekit.backtest(replay_config(), data=[str(f)], strict=True, strategies=Strategy())


def test_out_of_order_row_strict_cli_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f, line, _ = _out_of_order_file(tmp_path)
    cfg = tmp_path / "replay.toml"
    cfg.write_text(
        '[venues.paper]\nbroker = "paper"\nfeed = "replay"\n\n'
        '[session]\nhours = "regular"\ncancel_before_close_s = 60\n\n'
        '[strategy]\nkind = "pure_market_making"\nvenue = "paper"\nsymbol = "AAPL"\n',
        encoding="utf-8",
    )
    out = tmp_path / "out"
    code = cli_main(["backtest", str(cfg), "--data", str(f), "--strict", "--out", str(out)])
    assert code == 2
    assert f"bad.csv:{line}:" in capsys.readouterr().err
    # without --strict the run completes
    code = cli_main(["backtest", str(cfg), "--data", str(f), "--out", str(out), "--quiet"])
    assert code == 0
    assert f"{f}:{line}: " in capsys.readouterr().err
    assert (out / "summary.json").is_file()


# ---- timers -----------------------------------------------------------------------------------
class TimerUser(Strategy):
    def __init__(self) -> None:
        super().__init__()
        self.fired: list[tuple[str, int, int]] = []

    def on_start(self) -> None:
        self.set_timer("every5", 5)
        self.set_timer("once", 2, repeat=False)
        self.set_timer("late", 3, first_in_s=30)

    def on_timer(self, timer: Timer) -> None:
        self.fired.append((timer.name, timer.ts, self.now_ns()))
        n = sum(1 for name, *_ in self.fired if name == "every5")
        if timer.name == "every5" and n == 3:
            self.cancel_timer("every5")
        if timer.name == "late" and timer.ts >= self._t0 + 36 * S:
            self.cancel_timer("late")

    _t0 = 0


def test_timers_fire_on_the_simulated_clock_repeat_and_cancel() -> None:
    t0 = et(2026, 11, 24, 10, 0)
    strat = TimerUser()
    strat._t0 = t0
    eng, _ = engine_with(strat)
    # sparse data: timers must fire between events, at their exact times
    events = [
        q(t0, 100.00, 100.02),
        q(t0 + 17_300 * MS, 100.00, 100.02),
        q(t0 + 60 * S, 100.00, 100.02),
    ]
    eng.run_backtest(events, t0, t0 + 60 * S)
    for _name, ts, now in strat.fired:
        assert ts == now  # the clock reads the timer's time in its callback
    got = [(name, ts - t0) for name, ts, _ in strat.fired]
    assert got == [
        ("once", 2 * S),
        ("every5", 5 * S),
        ("every5", 10 * S),
        ("every5", 15 * S),
        ("late", 30 * S),
        ("late", 33 * S),
        ("late", 36 * S),
    ]


def test_timer_rescheduled_under_same_name_replaces_the_old_one() -> None:
    t0 = et(2026, 11, 24, 10, 0)
    fired: list[int] = []

    class S2(Strategy):
        def on_start(self) -> None:
            self.set_timer("t", 10)

        def on_quote(self, quote: Quote) -> None:
            if quote.ts == t0 + 4 * S:
                self.set_timer("t", 3, repeat=False)

        def on_timer(self, timer: Timer) -> None:
            fired.append(timer.ts - t0)

    eng, _ = engine_with(S2())
    eng.run_backtest([q(t0, 100, 100.02), q(t0 + 4 * S, 100, 100.02)], t0, t0 + 40 * S)
    assert fired == [7 * S]


# ---- session callbacks ------------------------------------------------------------------------
class SessionRecorder(Strategy):
    def __init__(self) -> None:
        super().__init__()
        self.changes: list[tuple[int, Session, bool, bool]] = []

    def on_session(self, change: SessionChange) -> None:
        self.changes.append((change.ts, change.session, change.closing, self.quoting_allowed()))


@pytest.mark.parametrize("cbc", [60, 300])
def test_on_session_changes_and_closing_point(cbc: int) -> None:
    strat = SessionRecorder()
    eng, _ = engine_with(strat, cancel_before_close_s=cbc)
    start, end = et(2026, 11, 24, 3, 0), et(2026, 11, 24, 21, 0)
    eng.run_backtest(minute_quotes(start, end, 600), start, end)
    close = et(2026, 11, 24, 16, 0)
    assert strat.changes == [
        (et(2026, 11, 24, 4, 0), Session.PRE, False, False),
        (et(2026, 11, 24, 9, 30), Session.REGULAR, False, True),
        (close - cbc * S, Session.REGULAR, True, False),
        (close, Session.POST, False, False),
        (et(2026, 11, 24, 20, 0), Session.CLOSED, False, False),
    ]


def test_closing_point_cancels_open_orders() -> None:
    t0 = et(2026, 11, 24, 15, 50)

    class Once(Strategy):
        def on_quote(self, quote: Quote) -> None:
            if not self.open_orders() and quote.ts == t0:
                self.buy(SYM, 10, 99.00)
                self.sell(SYM, 10, 101.00)

    eng, _ = engine_with(Once(), latency_ms=5)
    rec = eng.run_backtest(minute_quotes(t0, et(2026, 11, 24, 16, 5)), t0, None)
    assert len(rec.orders) == 2
    for o in rec.orders:
        assert o.status is OrderStatus.CANCELED
        assert o.done_ts == et(2026, 11, 24, 15, 59) + 5 * MS


# ---- data latency -----------------------------------------------------------------------------
def test_data_latency_delays_strategy_but_not_the_venue(tmp_path: Path) -> None:
    t0 = et(2026, 11, 24, 10, 0)
    rows = [
        (t0, SYM, "100.00", 500, "100.02", 500),
        (t0 + 20 * MS, SYM, "100.01", 500, "100.03", 500),
        (t0 + 40 * MS, SYM, "100.02", 500, "100.04", 500),
        (t0 + 2 * S, SYM, "100.02", 500, "100.04", 500),
        # the ask comes down to our bid at 100.03: our bid fills at the venue at once
        (t0 + 3 * S, SYM, "100.01", 500, "100.03", 500),
        (t0 + 5 * S, SYM, "100.01", 500, "100.03", 500),
    ]
    f = write_quotes(tmp_path / "lat.csv", rows)
    seen: list[tuple[int, int, float]] = []
    fills: list[tuple[int, int]] = []

    class Lat(Strategy):
        def on_quote(self, quote: Quote) -> None:
            last = self.quote(SYM)
            assert last is not None
            seen.append((quote.ts, self.now_ns(), last.bid))
            if quote.ts == t0 + 2 * S:
                self.buy(SYM, 100, 100.03)

        def on_fill(self, fill: Fill) -> None:
            fills.append((fill.ts, self.now_ns()))

    tradekit.backtest(replay_config(latency_ms=50), data=[str(f)], strategies=Lat())
    # each quote reaches the strategy 50 ms after its time (the run ends with the last quote,
    # so that one is never heard of)
    assert [(ts - t0, now - ts) for ts, now, _ in seen] == [(r[0] - t0, 50 * MS) for r in rows[:-1]]
    # when the strategy hears of the first quote, the venue already holds the third
    assert seen[0][2] == 100.02
    # the buy (sent at t0+2.05 s, arrives at t0+2.1 s) rests; the venue fills it at the time of
    # the quote that reaches its price, not 50 ms later
    assert fills and fills[0][0] == t0 + 3 * S


# ---- several venues ---------------------------------------------------------------------------
def test_events_of_several_venues_merged_in_time_order(tmp_path: Path) -> None:
    t0 = et(2026, 11, 24, 10, 0)
    fa = write_quotes(
        tmp_path / "a.csv",
        [(t0 + i * 2 * S, SYM, "100.00", 100, "100.02", 100, "A") for i in range(10)],
        venue=True,
    )
    fb = write_quotes(
        tmp_path / "b.csv",
        [(t0 + (i * 2 + 1) * S, SYM, "100.10", 100, "100.12", 100, "B") for i in range(10)]
        + [(t0 + 30 * S, SYM, "100.10", 100, "100.12", 100, "")],  # no venue: to every venue
        venue=True,
    )
    seen: list[tuple[str, int, int]] = []

    class Both(Strategy):
        def on_quote(self, quote: Quote) -> None:
            seen.append((quote.venue, quote.ts, self.now_ns()))

    tradekit.backtest(replay_config(venues=("A", "B")), data=[str(fa), str(fb)], strategies=Both())
    ts = [t for _, t, _ in seen]
    assert ts == sorted(ts)
    assert [v for v, _, _ in seen[:20]] == ["A", "B"] * 10
    assert sorted(v for v, t, _ in seen if t == t0 + 30 * S) == ["A", "B"]
    nows = [n for _, _, n in seen]
    assert nows == sorted(nows)


def test_venues_with_different_data_latency_merge_by_arrival() -> None:
    t0 = et(2026, 11, 24, 10, 0)
    seen: list[tuple[str, int, int]] = []

    class Both(Strategy):
        def on_quote(self, quote: Quote) -> None:
            seen.append((quote.venue, quote.ts, self.now_ns()))

    eng = Engine(hours="regular")
    eng.add_venue("slow", PaperBroker(id_prefix="s"), data_latency_ms=50)
    eng.add_venue("fast", PaperBroker(id_prefix="f"), data_latency_ms=0)
    eng.add_strategy(Both())
    events = [
        q(t0, 100, 100.02, "slow"),
        q(t0 + 10 * MS, 100, 100.02, "fast"),
        q(t0 + 60 * MS, 100, 100.02, "fast"),
    ]
    eng.run_backtest(events, t0, t0 + S)
    assert [(v, t - t0, n - t0) for v, t, n in seen] == [
        ("fast", 10 * MS, 10 * MS),
        ("slow", 0, 50 * MS),
        ("fast", 60 * MS, 60 * MS),
    ]


# ---- quote uptime -----------------------------------------------------------------------------
class Sides(Strategy):
    """Keeps far-away (never filled) quotes: both sides, or only the bid, or both sides until
    ``both_until`` and then only the bid."""

    def __init__(self, sides: str, both_until: int | None = None) -> None:
        super().__init__()
        self.sides = sides
        self.both_until = both_until
        self.mine: dict[Side, Order] = {}

    def _ensure(self) -> None:
        if not self.quoting_allowed():
            return
        want = [Side.BUY] if self.sides == "bid" else [Side.BUY, Side.SELL]
        if self.both_until is not None and self.now_ns() >= self.both_until:
            want = [Side.BUY]
            o = self.mine.get(Side.SELL)
            if o is not None and o.is_open:
                self.cancel(o)
        for side in want:
            o = self.mine.get(side)
            if o is None or o.is_done:
                placed = self.order(side, SYM, 10, 90.00 if side is Side.BUY else 110.00)
                if placed is not None:
                    self.mine[side] = placed

    def on_session(self, change: SessionChange) -> None:
        self._ensure()

    def on_quote(self, quote: Quote) -> None:
        self._ensure()

    def on_timer(self, timer: Timer) -> None:
        self._ensure()

    def on_start(self) -> None:
        if self.both_until is not None:
            self.ctx.schedule_timer(self, "switch", self.both_until, None)
        self._ensure()


def _uptime(strategy: Strategy, start: int, end: int) -> float:
    eng, _ = engine_with(strategy)
    rec = eng.run_backtest(minute_quotes(start, end, 60), start, end)
    assert rec.quote_uptime is not None
    return rec.quote_uptime


def test_quote_uptime_full_when_both_sides_live_all_session() -> None:
    start, end = et(2026, 11, 24, 9, 0), et(2026, 11, 24, 16, 30)
    assert _uptime(Sides("both"), start, end) == pytest.approx(1.0, abs=1e-3)


def test_quote_uptime_full_when_run_starts_inside_the_session() -> None:
    start, end = et(2026, 11, 24, 10, 0), et(2026, 11, 24, 16, 30)
    assert _uptime(Sides("both"), start, end) == pytest.approx(1.0, abs=1e-3)


def test_quote_uptime_zero_with_only_one_side() -> None:
    # "share of open-market time with a live bid AND ask": one side alone never counts
    start, end = et(2026, 11, 24, 9, 0), et(2026, 11, 24, 16, 30)
    assert _uptime(Sides("bid"), start, end) == pytest.approx(0.0, abs=1e-9)


def test_quote_uptime_half_when_both_sides_half_the_open_time() -> None:
    # open-market time: 09:30 to the closing point 15:59 = 389 minutes; half is 194.5 minutes
    start, end = et(2026, 11, 24, 9, 0), et(2026, 11, 24, 16, 30)
    half = et(2026, 11, 24, 9, 30) + int(194.5 * 60 * S)
    assert _uptime(Sides("both", both_until=half), start, end) == pytest.approx(0.5, abs=1e-3)


def test_quote_uptime_in_summary() -> None:
    start, end = et(2026, 11, 24, 9, 0), et(2026, 11, 24, 16, 30)
    eng, _ = engine_with(Sides("both"))
    rec = eng.run_backtest(minute_quotes(start, end, 60), start, end)
    res = tradekit.BacktestResult(rec)
    assert res.summary["quote_uptime"] == pytest.approx(1.0, abs=1e-3)


# ---- mark-outs --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("side", "price", "expected"),
    [
        (Side.BUY, 100.02, 101.01 - 100.02),  # bought at the ask, the mid rises: good for us
        (Side.SELL, 100.00, 100.00 - 101.01),  # sold at the bid, the mid rises: bad for us
    ],
)
def test_markout_sign(side: Side, price: float, expected: float) -> None:
    t0 = et(2026, 11, 24, 10, 0)

    class Taker(Strategy):
        def on_quote(self, quote: Quote) -> None:
            if quote.ts == t0:
                self.order(side, SYM, 100, price)

    eng, _ = engine_with(Taker())
    events = [q(t0, 100.00, 100.02), q(t0 + 500 * MS, 101.00, 101.02)]
    events += [q(t0 + 1500 * MS + i * S, 101.00, 101.02) for i in range(100)]
    rec = eng.run_backtest(events, t0, t0 + 120 * S)
    assert len(rec.fills) == 1
    assert rec.fills[0].price == pytest.approx(price)
    s = tradekit.BacktestResult(rec).summary
    for h in ("markout_1s", "markout_10s", "markout_60s"):
        assert s[h] == pytest.approx(expected, abs=1e-6), h
    assert (s["markout_1s"] > 0) == (side is Side.BUY)


def test_markout_uses_mid_at_the_horizon_not_later() -> None:
    """After a buy at 100.02 the mid is 101.01 for 5 s and 99.01 after: the 1 s mark-out is
    positive, the 10 s and 60 s ones negative."""
    t0 = et(2026, 11, 24, 10, 0)

    class Taker(Strategy):
        def on_quote(self, quote: Quote) -> None:
            if quote.ts == t0:
                self.buy(SYM, 100, 100.02)

    eng, _ = engine_with(Taker())
    events = [q(t0, 100.00, 100.02), q(t0 + 500 * MS, 101.00, 101.02), q(t0 + 5 * S, 99.00, 99.02)]
    events += [q(t0 + 5 * S + i * S + 300 * MS, 99.00, 99.02) for i in range(1, 100)]
    rec = eng.run_backtest(events, t0, t0 + 120 * S)
    s = tradekit.BacktestResult(rec).summary
    assert s["markout_1s"] == pytest.approx(101.01 - 100.02, abs=1e-6)
    assert s["markout_10s"] == pytest.approx(99.01 - 100.02, abs=1e-6)
    assert s["markout_60s"] == pytest.approx(99.01 - 100.02, abs=1e-6)


def test_a_locally_refused_order_does_not_reenter_on_order() -> None:
    """A strategy that orders again from ``on_order`` when an order is rejected must not recurse
    through a local refusal: the refusal reaches ``on_reject`` (and the helper returns None)."""
    from tradekit.strategies.base import Rejection

    class Stubborn(Strategy):
        kind = "stubborn"

        def on_start(self) -> None:
            self.orders_seen = 0
            self.rejections: list[Rejection] = []
            self.results: list[Order | None] = []

        def on_quote(self, quote: Quote) -> None:
            self.results.append(self.buy("AAPL", 10, 99.0))

        def on_order(self, order: Order) -> None:
            self.orders_seen += 1
            if order.status is OrderStatus.REJECTED:
                self.buy("AAPL", 10, 99.0)

        def on_reject(self, rejection: Rejection) -> None:
            self.rejections.append(rejection)

    s = Stubborn()
    eng = Engine()
    eng.add_venue("v", PaperBroker(id_prefix="v"))
    eng.add_strategy(s)
    t = et(2026, 11, 24, 8, 0)  # pre-market: a regular-hours order is refused
    eng.run_backtest([Quote(t, "AAPL", 99.9, 100, 100.1, 100, "v")], t, t + 1)
    assert s.results == [None]
    assert s.orders_seen == 0
    assert len(s.rejections) == 1 and s.rejections[0].error.reason.value == "session_closed"
