"""The request budget (``RateLimiter``), clocks and time conversions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradekit.clock import Clock, SimClock, WallClock, as_clock
from tradekit.throttle import RateLimiter
from tradekit.timeutil import NS_PER_MIN, NS_PER_S, from_ns, iso, parse_iso_ns, to_ns

T0 = to_ns("2026-11-24T14:30:00Z")
S = NS_PER_S


# ---- RateLimiter -------------------------------------------------------------------------------
class TestRateLimiter:
    def test_window(self) -> None:
        rl = RateLimiter(5, per_seconds=60, reserve_for_cancels=0)
        for i in range(5):
            assert rl.try_acquire(T0 + i * S)
        assert not rl.try_acquire(T0 + 10 * S)
        assert rl.used(T0 + 10 * S) == 5
        assert rl.available(T0 + 10 * S) == 0
        assert not rl.try_acquire(T0 + 59 * S)
        # the first leaves the window one minute after it was sent
        assert rl.try_acquire(T0 + 60 * S + 1)
        assert not rl.try_acquire(T0 + 60 * S + 2)
        assert rl.used(T0 + 200 * S) == 0
        assert rl.available(T0 + 200 * S) == 5

    def test_refused_takes_nothing(self) -> None:
        rl = RateLimiter(2, reserve_for_cancels=0)
        assert rl.try_acquire(T0) and rl.try_acquire(T0)
        for _ in range(10):
            assert not rl.try_acquire(T0 + 30 * S)
        # only the two accepted are in the window: both leave at T0 + 60 s
        assert rl.try_acquire(T0 + 60 * S + 1)
        assert rl.try_acquire(T0 + 60 * S + 1)

    def test_reserve_only_usable_by_cancels(self) -> None:
        rl = RateLimiter(10, reserve_for_cancels=0.2)  # 8 for new orders, 2 kept for cancels
        for _ in range(8):
            assert rl.try_acquire(T0)
        assert rl.available(T0) == 0
        assert rl.available(T0, cancel=True) == 2
        assert not rl.try_acquire(T0)
        assert rl.try_acquire(T0, cancel=True)
        assert rl.try_acquire(T0, cancel=True)
        assert not rl.try_acquire(T0, cancel=True)
        assert rl.used(T0) == 10

    def test_cancels_use_the_new_order_budget_too(self) -> None:
        rl = RateLimiter(10, reserve_for_cancels=0.2)
        for _ in range(9):
            assert rl.try_acquire(T0, cancel=True)
        assert rl.available(T0) == 0  # 9 used: more than the 8 new orders may use
        assert not rl.try_acquire(T0)
        assert rl.try_acquire(T0, cancel=True)

    def test_wait_ns(self) -> None:
        rl = RateLimiter(3, reserve_for_cancels=0)
        assert rl.wait_ns(T0) == 0
        for i in range(3):
            rl.try_acquire(T0 + i * S)
        now = T0 + 10 * S
        w = rl.wait_ns(now)
        assert w == 50 * S  # the first (at T0) leaves at T0 + 60 s
        assert not rl.try_acquire(now + w - 1)
        assert rl.try_acquire(now + w)
        assert rl.wait_ns(now + w) == T0 + S + 60 * S - (now + w)

    def test_wait_ns_with_reserve(self) -> None:
        rl = RateLimiter(10, reserve_for_cancels=0.2)
        for i in range(8):
            rl.try_acquire(T0 + i * S)
        rl.try_acquire(T0 + 8 * S, cancel=True)
        now = T0 + 20 * S
        assert rl.wait_ns(now, cancel=True) == 0
        # new orders need two to leave (9 used, 8 allowed): the one sent at T0 + 1 s
        w = rl.wait_ns(now)
        assert w == T0 + 1 * S + 60 * S - now
        assert not rl.try_acquire(now + w - 1)
        assert rl.try_acquire(now + w)

    def test_other_window(self) -> None:
        rl = RateLimiter(1, per_seconds=1, reserve_for_cancels=0)
        assert rl.try_acquire(T0)
        assert not rl.try_acquire(T0 + S // 2)
        assert rl.wait_ns(T0 + S // 2) == S // 2
        assert rl.try_acquire(T0 + S)

    @pytest.mark.parametrize(
        ("args", "kw"),
        [((0,), {}), ((-5,), {}), ((10,), {"reserve_for_cancels": 1.0}),
         ((10,), {"reserve_for_cancels": -0.1})],
    )
    def test_bad_arguments(self, args: tuple[int], kw: dict[str, float]) -> None:
        with pytest.raises(ValueError):
            RateLimiter(*args, **kw)


# ---- clocks ------------------------------------------------------------------------------------
class TestClocks:
    def test_simclock_never_goes_back(self) -> None:
        c = SimClock(T0)
        assert c.now_ns() == T0
        c.set(T0 + 5)
        assert c.now_ns() == T0 + 5
        c.set(T0)
        assert c.now_ns() == T0 + 5
        c.advance(10)
        assert c.now_ns() == T0 + 15
        try:
            c.advance(-100)
        except ValueError:
            pass
        assert c.now_ns() >= T0 + 15

    def test_simclock_start_forms(self) -> None:
        assert SimClock().now_ns() == 0
        assert SimClock("2026-11-24T14:30:00Z").now_ns() == T0
        assert SimClock(datetime(2026, 11, 24, 14, 30, tzinfo=UTC)).now_ns() == T0
        with pytest.raises(ValueError):
            SimClock(datetime(2026, 11, 24, 14, 30))  # noqa: DTZ001 - naive on purpose

    def test_wall_clock(self) -> None:
        import time

        before = time.time_ns()
        now = WallClock().now_ns()
        assert before <= now <= time.time_ns()
        assert isinstance(WallClock(), Clock)

    def test_as_clock_accepts(self) -> None:
        assert as_clock(None) is None
        sc = SimClock(T0)
        assert as_clock(sc) is sc
        c = as_clock(T0)
        assert c is not None and c.now_ns() == T0
        c = as_clock(datetime(2026, 11, 24, 9, 30, tzinfo=ZoneInfo("America/New_York")))
        assert c is not None and c.now_ns() == T0
        c = as_clock("2026-11-24T09:30:00-05:00")
        assert c is not None and c.now_ns() == T0
        ticks = iter([T0, T0 + 7])
        c = as_clock(lambda: next(ticks))
        assert c is not None and c.now_ns() == T0 and c.now_ns() == T0 + 7
        c = as_clock(lambda: datetime(2026, 11, 24, 14, 30, tzinfo=UTC))
        assert c is not None and c.now_ns() == T0
        assert isinstance(c, Clock)

    @pytest.mark.parametrize(
        "junk",
        [1.5, object(), [T0], {"ts": T0}, "not a time", "2026-11-24T14:30:00",
         datetime(2026, 11, 24, 14, 30), True],  # noqa: DTZ001 - naive on purpose
    )
    def test_as_clock_rejects(self, junk: object) -> None:
        with pytest.raises((TypeError, ValueError)):
            c = as_clock(junk)
            if c is not None:  # a lazy clock must still refuse on use
                c.now_ns()


# ---- time conversions --------------------------------------------------------------------------
class TestToNs:
    def test_forms(self) -> None:
        assert to_ns(T0) == T0
        assert to_ns(datetime(2026, 11, 24, 14, 30, tzinfo=UTC)) == T0
        assert to_ns(datetime(2026, 11, 24, 9, 30, tzinfo=timezone(timedelta(hours=-5)))) == T0
        assert to_ns(datetime(2026, 11, 24, 9, 30, tzinfo=ZoneInfo("America/New_York"))) == T0
        assert to_ns("2026-11-24T14:30:00Z") == T0
        assert to_ns(datetime(2026, 11, 24, 14, 30, 0, 123456, tzinfo=UTC)) == T0 + 123_456_000
        assert to_ns(datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)) == -S // 2

    def test_pandas_timestamp(self) -> None:
        pd = pytest.importorskip("pandas")
        assert to_ns(pd.Timestamp("2026-11-24T14:30:00.000000001Z")) == T0 + 1
        with pytest.raises(ValueError):
            to_ns(pd.Timestamp("2026-11-24T14:30:00"))

    def test_rejects_naive(self) -> None:
        with pytest.raises(ValueError):
            to_ns(datetime(2026, 11, 24, 14, 30))  # noqa: DTZ001 - naive on purpose
        with pytest.raises(ValueError):
            to_ns("2026-11-24T14:30:00")

    @pytest.mark.parametrize("bad", [1.0, 1.7e18, float(T0), True, False, None, b"x", [1]])
    def test_rejects_floats_bools_junk(self, bad: object) -> None:
        with pytest.raises(TypeError):
            to_ns(bad)


class TestIso:
    def test_nanoseconds_kept(self) -> None:
        assert parse_iso_ns("2026-11-24T14:30:00.123456789Z") == T0 + 123_456_789
        assert parse_iso_ns("2026-11-24T14:30:00.000000001Z") == T0 + 1
        assert parse_iso_ns("2026-11-24T14:30:00.5Z") == T0 + S // 2
        assert parse_iso_ns("2026-11-24T14:30:00.123Z") == T0 + 123_000_000

    def test_z_and_offsets_are_equal(self) -> None:
        forms = [
            "2026-11-24T14:30:00.123456789Z",
            "2026-11-24T14:30:00.123456789z",
            "2026-11-24T14:30:00.123456789+00:00",
            "2026-11-24T09:30:00.123456789-05:00",
            "2026-11-24T20:00:00.123456789+05:30",
            "2026-11-24 14:30:00.123456789Z",
            " 2026-11-24T14:30:00.123456789Z ",
        ]
        assert {parse_iso_ns(f) for f in forms} == {T0 + 123_456_789}
        assert parse_iso_ns("2026-11-24T14:30:00Z") == parse_iso_ns("2026-11-24T09:30:00-05:00")

    @pytest.mark.parametrize(
        "bad",
        ["2026-11-24T14:30:00", "2026-11-24T14:30:00.123456789", "yesterday", "",
         "2026-13-24T14:30:00Z"],
    )
    def test_bad_text(self, bad: str) -> None:
        with pytest.raises(ValueError):
            parse_iso_ns(bad)

    def test_iso_text(self) -> None:
        assert iso(T0) == "2026-11-24T14:30:00Z"
        assert iso(T0 + 123_456_000) == "2026-11-24T14:30:00.123456Z"
        assert iso(None) == ""

    def test_from_ns(self) -> None:
        dt = from_ns(T0 + 123_456_789)
        assert dt.tzinfo is not None and dt.utcoffset() == timedelta(0)
        assert dt == datetime(2026, 11, 24, 14, 30, 0, 123456, tzinfo=UTC)
        assert from_ns(-1) == datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)

    @settings(max_examples=300, deadline=None)
    @given(st.integers(min_value=0, max_value=4_102_444_800 * 10**6))  # microseconds to 2100
    def test_round_trip(self, us: int) -> None:
        ns = us * 1000
        text = iso(ns)
        assert text.endswith("Z")
        assert parse_iso_ns(text) == ns
        assert to_ns(text) == ns
        assert to_ns(from_ns(ns)) == ns

    @settings(max_examples=200, deadline=None)
    @given(st.integers(min_value=0, max_value=4_102_444_800 * NS_PER_S))
    def test_parse_keeps_every_nanosecond(self, ns: int) -> None:
        s, frac = divmod(ns, NS_PER_S)
        text = from_ns(s * NS_PER_S).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}+00:00"
        assert parse_iso_ns(text) == ns

    def test_constants(self) -> None:
        assert NS_PER_MIN == 60 * NS_PER_S == 60_000_000_000
