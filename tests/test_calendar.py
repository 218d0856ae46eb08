"""Tests of tradekit.calendar: golden session times (holidays, early closes, DST), the lazy tables,
and agreement with pandas_market_calendars' own ``open_at_time``."""

from __future__ import annotations

import dataclasses
import itertools
import random
import re
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from tradekit.calendar import MarketCalendar, TradingDay, get_calendar
from tradekit.enums import Session
from tradekit.errors import ConfigError
from tradekit.timeutil import NS_PER_S, to_ns

ET = ZoneInfo("America/New_York")
CLOSED, PRE, REGULAR, POST = Session.CLOSED, Session.PRE, Session.REGULAR, Session.POST


def et(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, ns: int = 0) -> int:
    """ns of a wall-clock time in New York."""
    return to_ns(datetime(y, mo, d, h, mi, s, tzinfo=ET)) + ns


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


@pytest.fixture(scope="module")
def cal() -> MarketCalendar:
    return get_calendar("NYSE")


# ---------------------------------------------------------------------------- golden days


def test_thanksgiving_closed_all_day(cal: MarketCalendar) -> None:
    assert cal.session_at(et(2026, 11, 26, 11)) is CLOSED
    assert cal.session_at(et(2026, 11, 26, 4)) is CLOSED
    assert cal.session_at(et(2026, 11, 26, 17)) is CLOSED
    d = cal.day(date(2026, 11, 26))
    assert d.date == date(2026, 11, 26)
    assert d.is_trading_day is False
    assert d.is_early_close is False
    assert (d.pre_open, d.open, d.close, d.post_close) == (None, None, None, None)
    assert (d.pre_open_ns, d.open_ns, d.close_ns, d.post_close_ns) == (None, None, None, None)
    assert cal.is_trading_day("2026-11-26") is False


@pytest.mark.parametrize(
    ("hms", "expected"),
    [
        ((3, 59, 59), CLOSED),
        ((4, 0, 0), PRE),
        ((9, 29, 59), PRE),
        ((9, 30, 0), REGULAR),
        ((12, 59, 0), REGULAR),
        ((12, 59, 59), REGULAR),
        ((13, 0, 0), POST),
        ((16, 0, 0), POST),
        ((16, 30, 0), POST),
        ((16, 59, 59), POST),
        ((17, 0, 0), CLOSED),
        ((17, 30, 0), CLOSED),
        ((20, 0, 0), CLOSED),
    ],
)
def test_day_after_thanksgiving_early_close(
    cal: MarketCalendar, hms: tuple[int, int, int], expected: Session
) -> None:
    assert cal.session_at(et(2026, 11, 27, *hms)) is expected


def test_day_after_thanksgiving_times(cal: MarketCalendar) -> None:
    d = cal.day("2026-11-27")
    assert d.is_trading_day is True
    assert d.is_early_close is True
    assert d.pre_open == utc(2026, 11, 27, 9)
    assert d.open == utc(2026, 11, 27, 14, 30)
    assert d.close == utc(2026, 11, 27, 18)
    assert d.post_close == utc(2026, 11, 27, 22)
    assert d.pre_open_ns == et(2026, 11, 27, 4)
    assert d.open_ns == et(2026, 11, 27, 9, 30)
    assert d.close_ns == et(2026, 11, 27, 13)
    assert d.post_close_ns == et(2026, 11, 27, 17)
    for dt in (d.pre_open, d.open, d.close, d.post_close):
        assert dt is not None and dt.utcoffset() == timedelta(0)


def test_christmas_eve_early_close(cal: MarketCalendar) -> None:
    d = cal.day(date(2026, 12, 24))
    assert d.is_early_close is True
    assert d.close == utc(2026, 12, 24, 18)
    assert d.post_close == utc(2026, 12, 24, 22)
    assert cal.session_at(et(2026, 12, 24, 13, 30)) is POST
    assert cal.session_at(et(2026, 12, 24, 17, 0)) is CLOSED
    assert cal.day(date(2026, 12, 25)).is_trading_day is False


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (et(2026, 11, 24, 0, 0), CLOSED),
        (et(2026, 11, 24, 3, 59, 59, 999_999_999), CLOSED),
        (et(2026, 11, 24, 4, 0), PRE),
        (et(2026, 11, 24, 9, 29, 59), PRE),
        (et(2026, 11, 24, 9, 29, 59, 999_999_999), PRE),
        (et(2026, 11, 24, 9, 30), REGULAR),
        (et(2026, 11, 24, 13, 0), REGULAR),
        (et(2026, 11, 24, 15, 59, 59), REGULAR),
        (et(2026, 11, 24, 15, 59, 59, 999_999_999), REGULAR),
        (et(2026, 11, 24, 16, 0), POST),
        (et(2026, 11, 24, 19, 59, 59, 999_999_999), POST),
        (et(2026, 11, 24, 20, 0), CLOSED),
        (et(2026, 11, 24, 23, 59), CLOSED),
    ],
)
def test_normal_day(cal: MarketCalendar, when: int, expected: Session) -> None:
    assert cal.session_at(when) is expected


def test_normal_day_times(cal: MarketCalendar) -> None:
    d = cal.day(date(2026, 11, 24))
    assert d.is_trading_day is True
    assert d.is_early_close is False
    assert (d.pre_open, d.open, d.close, d.post_close) == (
        utc(2026, 11, 24, 9),
        utc(2026, 11, 24, 14, 30),
        utc(2026, 11, 24, 21),
        utc(2026, 11, 25, 1),
    )


@pytest.mark.parametrize("day_", [date(2026, 11, 28), date(2026, 11, 29)])
def test_weekend_closed(cal: MarketCalendar, day_: date) -> None:
    for hour in (0, 4, 9, 10, 12, 16, 19, 23):
        assert cal.session_at(et(day_.year, day_.month, day_.day, hour)) is CLOSED
    assert cal.day(day_).is_trading_day is False


def test_national_day_of_mourning_2025_01_09(cal: MarketCalendar) -> None:
    assert cal.day(date(2025, 1, 9)).is_trading_day is False
    assert cal.session_at(et(2025, 1, 9, 11)) is CLOSED
    assert cal.session_at(et(2025, 1, 8, 11)) is REGULAR
    assert cal.session_at(et(2025, 1, 10, 11)) is REGULAR
    assert cal.trading_days(date(2025, 1, 6), date(2025, 1, 10)) == [
        date(2025, 1, 6),
        date(2025, 1, 7),
        date(2025, 1, 8),
        date(2025, 1, 10),
    ]


# ---------------------------------------------------------------------------- DST


def test_dst_spring_forward(cal: MarketCalendar) -> None:
    assert cal.day(date(2026, 3, 6)).open == utc(2026, 3, 6, 14, 30)  # EST, UTC-5
    d = cal.day(date(2026, 3, 9))  # first trading day on EDT, UTC-4
    assert d.open == utc(2026, 3, 9, 13, 30)
    assert d.pre_open == utc(2026, 3, 9, 8)
    assert d.close == utc(2026, 3, 9, 20)
    assert d.post_close == utc(2026, 3, 10, 0)
    assert cal.session_at(to_ns(utc(2026, 3, 9, 13, 30))) is REGULAR
    assert cal.session_at(to_ns(utc(2026, 3, 9, 13, 29))) is PRE
    assert cal.session_at(to_ns(utc(2026, 3, 6, 14, 29))) is PRE


def test_dst_fall_back(cal: MarketCalendar) -> None:
    assert cal.day(date(2026, 10, 30)).open == utc(2026, 10, 30, 13, 30)  # EDT
    d = cal.day(date(2026, 11, 2))  # first trading day on EST
    assert d.open == utc(2026, 11, 2, 14, 30)
    assert d.close == utc(2026, 11, 2, 21)
    assert cal.session_at(to_ns(utc(2026, 11, 2, 14, 0))) is PRE
    assert cal.session_at(to_ns(utc(2026, 11, 2, 20, 59))) is REGULAR
    assert cal.session_at(to_ns(utc(2026, 11, 2, 21, 0))) is POST


# ---------------------------------------------------------------------------- inputs


def test_session_at_input_types_agree(cal: MarketCalendar) -> None:
    ns = et(2026, 11, 24, 10, 15)
    as_utc = datetime(2026, 11, 24, 15, 15, tzinfo=UTC)
    as_et = datetime(2026, 11, 24, 10, 15, tzinfo=ET)
    ts = pd.Timestamp("2026-11-24 10:15", tz="America/New_York")
    assert to_ns(as_utc) == ns
    for value in (ns, as_utc, as_et, ts, np.int64(ns), "2026-11-24T15:15:00Z"):
        assert cal.session_at(value) is REGULAR, value


def test_naive_datetime_refused(cal: MarketCalendar) -> None:
    naive = datetime(2026, 11, 24, 10, 0)  # noqa: DTZ001 - deliberately naive
    with pytest.raises(ValueError, match="naive"):
        cal.session_at(naive)
    with pytest.raises(ValueError, match="naive"):
        cal.session_at(pd.Timestamp("2026-11-24 10:00"))
    with pytest.raises(ValueError, match="naive"):
        cal.next_open(naive)
    with pytest.raises(ValueError, match="naive"):
        cal.day(naive)


def test_bad_timestamp_types(cal: MarketCalendar) -> None:
    with pytest.raises(TypeError):
        cal.session_at(1.5e18)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        cal.session_at(True)


def test_out_of_range_year(cal: MarketCalendar) -> None:
    with pytest.raises(ValueError, match="outside the supported"):
        cal.session_at(to_ns(datetime(1850, 6, 1, tzinfo=UTC)))


def test_day_input_forms(cal: MarketCalendar) -> None:
    expected = cal.day(date(2026, 11, 27))
    late_utc = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)  # 2026-11-27 21:00 ET
    for value in (
        "2026-11-27",
        late_utc,
        to_ns(late_utc),
        pd.Timestamp(late_utc),
        "2026-11-28T02:00:00Z",
    ):
        assert cal.day(value) == expected, value
    # 2026-11-28 01:00 ET is a Saturday in New York
    assert cal.day(datetime(2026, 11, 28, 6, 0, tzinfo=UTC)).date == date(2026, 11, 28)


def test_trading_day_is_frozen(cal: MarketCalendar) -> None:
    d = cal.day(date(2026, 11, 24))
    assert isinstance(d, TradingDay)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.open = None  # type: ignore[misc]


# ---------------------------------------------------------------------------- navigation


def test_next_open(cal: MarketCalendar) -> None:
    got = cal.next_open(datetime(2026, 11, 26, 12, 0, tzinfo=ET))  # Thanksgiving noon
    assert got == utc(2026, 11, 27, 14, 30)
    assert got.utcoffset() == timedelta(0)
    # strictly after: at the exact open, the following trading day's open (Monday)
    assert cal.next_open(et(2026, 11, 27, 9, 30)) == utc(2026, 11, 30, 14, 30)
    assert cal.next_open(et(2026, 11, 27, 9, 30) - 1) == utc(2026, 11, 27, 14, 30)
    assert cal.next_open(et(2026, 11, 27, 11)) == utc(2026, 11, 30, 14, 30)
    assert cal.next_open_ns(et(2026, 11, 25, 21)) == et(2026, 11, 27, 9, 30)


def test_next_close(cal: MarketCalendar) -> None:
    assert cal.next_close(datetime(2026, 11, 27, 10, 0, tzinfo=ET)) == utc(2026, 11, 27, 18)
    assert cal.next_close(et(2026, 11, 27, 5)) == utc(2026, 11, 27, 18)  # from pre
    assert cal.next_close(et(2026, 11, 26, 12)) == utc(2026, 11, 27, 18)  # from a holiday
    assert cal.next_close(et(2026, 11, 27, 13) - 1) == utc(2026, 11, 27, 18)
    # at the close it is POST already: the next session's close
    assert cal.next_close(et(2026, 11, 27, 13)) == utc(2026, 11, 30, 21)
    assert cal.next_close_ns(et(2026, 11, 24, 12)) == et(2026, 11, 24, 16)


def test_time_to_close(cal: MarketCalendar) -> None:
    assert cal.time_to_close(et(2026, 11, 27, 12)) == 3600.0
    assert cal.time_to_close(et(2026, 11, 24, 9, 30)) == 6.5 * 3600
    assert cal.time_to_close(et(2026, 11, 24, 15, 59, 59, 500_000_000)) == 0.5
    assert cal.time_to_close(et(2026, 11, 24, 16)) is None  # post
    assert cal.time_to_close(et(2026, 11, 24, 8)) is None  # pre
    assert cal.time_to_close(et(2026, 11, 26, 12)) is None  # holiday


def test_next_session_change_sequence(cal: MarketCalendar) -> None:
    t = et(2026, 11, 23, 20, 0)  # Monday, post just ended
    seen = []
    for _ in range(10):
        t, s = cal.next_session_change(t)
        seen.append((t, s))
    assert seen == [
        (et(2026, 11, 24, 4), PRE),
        (et(2026, 11, 24, 9, 30), REGULAR),
        (et(2026, 11, 24, 16), POST),
        (et(2026, 11, 24, 20), CLOSED),
        (et(2026, 11, 25, 4), PRE),
        (et(2026, 11, 25, 9, 30), REGULAR),
        (et(2026, 11, 25, 16), POST),
        (et(2026, 11, 25, 20), CLOSED),
        (et(2026, 11, 27, 4), PRE),  # Thanksgiving skipped
        (et(2026, 11, 27, 9, 30), REGULAR),
    ]
    # strictly after, from inside an interval and from one ns before a boundary
    assert cal.next_session_change(et(2026, 11, 27, 11)) == (et(2026, 11, 27, 13), POST)
    assert cal.next_session_change(et(2026, 11, 27, 13) - 1) == (et(2026, 11, 27, 13), POST)
    assert cal.next_session_change(et(2026, 11, 27, 17)) == (et(2026, 11, 30, 4), PRE)
    got = cal.next_session_change(datetime(2026, 11, 28, 12, tzinfo=ET))
    assert got == (et(2026, 11, 30, 4), PRE)


def test_sessions_intervals(cal: MarketCalendar) -> None:
    start, end = et(2026, 11, 25), et(2026, 11, 28)
    got = cal.sessions(start, end)
    assert got == [
        (start, et(2026, 11, 25, 4), CLOSED),
        (et(2026, 11, 25, 4), et(2026, 11, 25, 9, 30), PRE),
        (et(2026, 11, 25, 9, 30), et(2026, 11, 25, 16), REGULAR),
        (et(2026, 11, 25, 16), et(2026, 11, 25, 20), POST),
        (et(2026, 11, 25, 20), et(2026, 11, 27, 4), CLOSED),  # over Thanksgiving, merged
        (et(2026, 11, 27, 4), et(2026, 11, 27, 9, 30), PRE),
        (et(2026, 11, 27, 9, 30), et(2026, 11, 27, 13), REGULAR),
        (et(2026, 11, 27, 13), et(2026, 11, 27, 17), POST),
        (et(2026, 11, 27, 17), end, CLOSED),
    ]


def test_sessions_clipped_and_consistent(cal: MarketCalendar) -> None:
    start = et(2026, 11, 24, 10, 0)
    end = et(2026, 12, 1, 17, 0)
    got = cal.sessions(datetime(2026, 11, 24, 10, tzinfo=ET), end)
    assert got[0] == (start, et(2026, 11, 24, 16), REGULAR)
    assert got[-1] == (et(2026, 12, 1, 16), end, POST)
    for (a0, a1, sa), (b0, _b1, sb) in itertools.pairwise(got):
        assert a0 < a1 == b0
        assert sa is not sb
    for a, b, s in got:
        assert cal.session_at(a) is s
        assert cal.session_at(b - 1) is s
    assert cal.sessions(end, start) == []
    assert cal.sessions(start, start) == []
    assert cal.sessions(start, start + 1) == [(start, start + 1, REGULAR)]


def test_trading_days(cal: MarketCalendar) -> None:
    assert cal.trading_days(date(2026, 11, 23), date(2026, 11, 30)) == [
        date(2026, 11, 23),
        date(2026, 11, 24),
        date(2026, 11, 25),
        date(2026, 11, 27),
        date(2026, 11, 30),
    ]
    assert cal.trading_days("2026-11-27", "2026-11-27") == [date(2026, 11, 27)]
    assert cal.trading_days("2026-11-28", "2026-11-29") == []
    assert cal.trading_days("2026-11-30", "2026-11-23") == []
    assert len(cal.trading_days("2026-01-01", "2026-12-31")) == 251


def test_is_open(cal: MarketCalendar) -> None:
    assert cal.is_open(et(2026, 11, 24, 10)) is True
    assert cal.is_open(et(2026, 11, 24, 8)) is False
    assert cal.is_open(et(2026, 11, 24, 8), extended=True) is True
    assert cal.is_open(et(2026, 11, 24, 21), extended=True) is False


# ---------------------------------------------------------------------------- lazy tables


def test_no_tables_before_first_use() -> None:
    fresh = MarketCalendar()
    assert fresh._tables is None
    code = "import sys, tradekit.calendar; print('pandas' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_year_boundary_extends_tables() -> None:
    fresh = MarketCalendar("NYSE")
    assert fresh.session_at(et(2026, 6, 15, 10)) is REGULAR
    t = fresh._tables
    assert t is not None and (t.first_year, t.last_year) == (2026, 2026)

    # next open from New Year's Eve evening: 2027-01-01 holiday, 01-02/03 weekend -> Monday
    assert fresh.next_open(et(2026, 12, 31, 17)) == utc(2027, 1, 4, 14, 30)
    t = fresh._tables
    assert t is not None and (t.first_year, t.last_year) == (2026, 2027)
    assert fresh.next_session_change(et(2026, 12, 31, 20)) == (et(2027, 1, 4, 4), PRE)
    assert fresh.session_at(et(2027, 1, 2, 12)) is CLOSED
    assert fresh.session_at(et(2026, 12, 31, 12)) is REGULAR
    assert fresh.sessions(et(2026, 12, 31, 16), et(2027, 1, 2)) == [
        (et(2026, 12, 31, 16), et(2026, 12, 31, 20), POST),
        (et(2026, 12, 31, 20), et(2027, 1, 2), CLOSED),
    ]
    assert fresh.trading_days(date(2026, 12, 30), date(2027, 1, 5)) == [
        date(2026, 12, 30),
        date(2026, 12, 31),
        date(2027, 1, 4),
        date(2027, 1, 5),
    ]

    # backwards, and straight into a query well before the tables (fills the gap)
    d = fresh.day(date(2024, 7, 3))
    assert d.is_early_close is True
    assert d.close == utc(2024, 7, 3, 17)  # 13:00 EDT
    t = fresh._tables
    assert t is not None and (t.first_year, t.last_year) == (2024, 2027)
    assert fresh.session_at(et(2025, 1, 9, 11)) is CLOSED  # from the gap year


def test_cache_walk_matches_day_times() -> None:
    """Walk forward (as a backtest does) and backward, hitting the one-entry cache and its edges;
    compare with a classification from ``day()``'s times."""
    fresh = MarketCalendar()

    def expected(ns: int) -> Session:
        d = fresh.day(ns)
        if not d.is_trading_day:
            return CLOSED
        assert d.pre_open_ns is not None and d.open_ns is not None
        assert d.close_ns is not None and d.post_close_ns is not None
        if d.pre_open_ns <= ns < d.open_ns:
            return PRE
        if d.open_ns <= ns < d.close_ns:
            return REGULAR
        if d.close_ns <= ns < d.post_close_ns:
            return POST
        return CLOSED

    points = list(range(et(2026, 11, 20), et(2026, 12, 2), 7 * 60 * NS_PER_S))
    for day_ in range(20, 31):
        info = fresh.day(date(2026, 11, day_))
        for b in (info.pre_open_ns, info.open_ns, info.close_ns, info.post_close_ns):
            if b is not None:
                points += [b - 1, b, b + 1]
    for ns in sorted(points) + sorted(points, reverse=True):
        assert fresh.session_at(ns) is expected(ns), ns


# ---------------------------------------------------------------- vs pandas_market_calendars


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_agrees_with_pandas_market_calendars_open_at_time(cal: MarketCalendar) -> None:
    import pandas_market_calendars as mcal

    ref = mcal.get_calendar("NYSE")
    sched = ref.schedule("2024-12-01", "2028-01-31", start="pre", end="post")
    rng = random.Random(20261127)
    lo, hi = et(2025, 1, 1), et(2028, 1, 1)
    stamps = [rng.randrange(lo, hi) for _ in range(300)]
    # plus boundary instants (and their neighbours) of some random days
    for row in sched.sample(n=15, random_state=7).itertuples():
        for b in (row.pre, row.market_open, row.market_close, row.post):
            ns = int(pd.Timestamp(b).as_unit("ns").value)
            stamps += [ns - 1, ns, ns + 1]
    regular_hits = extended_hits = 0
    for ns in stamps:
        ts = pd.Timestamp(ns, tz="UTC")
        s = cal.session_at(ns)
        rth = ref.open_at_time(sched, ts, only_rth=True)
        ext = ref.open_at_time(sched, ts, only_rth=False)
        assert (s is REGULAR) == rth, (ts, s)
        assert (s is not CLOSED) == ext, (ts, s)
        regular_hits += rth
        extended_hits += ext
    # the sample really exercised both answers
    assert 30 < regular_hits < extended_hits < len(stamps) - 30


# ---------------------------------------------------------------------------- factory


def test_get_calendar_is_shared() -> None:
    a = get_calendar("NYSE")
    assert a is get_calendar()
    assert a is get_calendar("nyse")
    assert a.name == "NYSE"
    assert repr(a) == "MarketCalendar('NYSE')"


def test_nasdaq_calendar() -> None:
    nasdaq = get_calendar("NASDAQ")
    assert nasdaq is not get_calendar("NYSE")
    assert nasdaq.name == "NASDAQ"
    assert nasdaq.day("2026-11-27") == get_calendar("NYSE").day("2026-11-27")
    assert nasdaq.session_at(et(2026, 11, 27, 16, 30)) is POST
    assert nasdaq.session_at(et(2026, 11, 26, 11)) is CLOSED


@pytest.mark.parametrize("bad", ["FOO", "XNYS", ""])
def test_bad_calendar_name(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        get_calendar(bad)
    msg = str(info.value)
    assert repr(bad) in msg
    assert "NYSE" in msg and "NASDAQ" in msg
    with pytest.raises(ConfigError, match=re.escape(repr(bad))):
        MarketCalendar(bad)
