"""Exchange calendar: trading days, session times and the session (closed / pre / regular / post)
at any instant, for US equity venues.

Times come from ``pandas_market_calendars``' ``NYSE`` calendar (holidays, early closes and the
America/New_York daylight-saving transitions included), read with ``start="pre", end="post"``::

    pre      04:00-09:30 ET
    regular  09:30-16:00 ET   (13:00 on early-close days)
    post     16:00-20:00 ET   (17:00 on early-close days)

Intervals are half-open: ``[pre_open, open)`` is PRE, ``[open, close)`` REGULAR,
``[close, post_close)`` POST, anything else CLOSED.

pandas is used only to build tables, lazily and a whole calendar year at a time (plus a few days of
margin), the first time an instant outside the tables is asked for. Lookups afterwards are a
``bisect`` over a flat list of int-nanosecond boundaries, and :meth:`MarketCalendar.session_at`
also keeps a one-entry cache of the current interval, so repeated queries inside the same session
(the common case in a backtest) cost a couple of comparisons.

Use :func:`get_calendar` to share one instance (and its tables) per calendar name in a process.
"""

from __future__ import annotations

import datetime as _dt
import logging
import operator
import threading
import warnings
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final, SupportsIndex, TypeAlias
from zoneinfo import ZoneInfo

from .enums import Session
from .errors import ConfigError
from .timeutil import NS_PER_S, from_ns, to_ns

__all__ = ["DateLike", "MarketCalendar", "TimeLike", "TradingDay", "get_calendar"]

#: An instant: int ns since the epoch (UTC; numpy integers too), a tz-aware ``datetime`` /
#: ``pandas.Timestamp``, or an ISO-8601 string with an offset. Naive datetimes are refused.
TimeLike: TypeAlias = int | datetime | str | SupportsIndex
#: A day: a ``date``, an ISO date ``"2026-11-27"``, or any ``TimeLike`` (its New York date).
DateLike: TypeAlias = date | datetime | str | int | SupportsIndex

_log = logging.getLogger("tradekit.calendar")

_ET: Final = ZoneInfo("America/New_York")

#: tradekit calendar name -> pandas_market_calendars name. Both have pre/post market times
#: ("NASDAQ" is an alias of the NYSE calendar there; "XNYS" is not used: it has no pre/post).
_CALENDARS: Final[dict[str, str]] = {"NYSE": "NYSE", "NASDAQ": "NASDAQ"}

#: Years the tables may cover (pandas_market_calendars knows NYSE rules from long before; the
#: upper bound keeps int64 nanoseconds far from overflow).
_MIN_YEAR: Final = 1900
_MAX_YEAR: Final = 2199

#: When an instant outside the tables is asked for, the tables are extended to whole years
#: covering it +/- this margin, so queries near a year end do not immediately extend again.
_MARGIN_NS: Final = 7 * 86_400 * NS_PER_S

_DayRecord = tuple[int, int, int, int, bool]  # pre_open, open, close, post_close (ns), early close


@dataclass(frozen=True, slots=True)
class TradingDay:
    """Session times of one calendar day (America/New_York date).

    Datetimes are tz-aware UTC; every time (and its ``*_ns`` twin) is ``None`` when the market is
    closed that day (weekend or holiday)."""

    date: _dt.date
    pre_open: datetime | None
    open: datetime | None
    close: datetime | None
    post_close: datetime | None
    is_early_close: bool
    is_trading_day: bool
    pre_open_ns: int | None
    open_ns: int | None
    close_ns: int | None
    post_close_ns: int | None

    @classmethod
    def _closed(cls, day: _dt.date) -> TradingDay:
        return cls(day, None, None, None, None, False, False, None, None, None, None)

    @classmethod
    def _from_record(cls, day: _dt.date, rec: _DayRecord) -> TradingDay:
        pre, op, cl, post, early = rec
        return cls(
            day,
            from_ns(pre),
            from_ns(op),
            from_ns(cl),
            from_ns(post),
            early,
            True,
            pre,
            op,
            cl,
            post,
        )


class _Tables:
    """Immutable lookup tables for the years ``first_year..last_year`` (replaced as a whole when
    extended, so readers in other threads always see a consistent set)."""

    __slots__ = (
        "bounds",
        "closes",
        "dates",
        "days",
        "end_ns",
        "first_year",
        "labels",
        "last_year",
        "opens",
        "start_ns",
    )

    def __init__(self, records: dict[date, _DayRecord], first_year: int, last_year: int) -> None:
        self.first_year = first_year
        self.last_year = last_year
        self.start_ns = _year_start_ns(first_year)
        self.end_ns = _year_start_ns(last_year + 1)
        dates = sorted(d for d in records if first_year <= d.year <= last_year)
        self.dates: list[date] = dates
        self.days: dict[date, _DayRecord] = {d: records[d] for d in dates}
        self.opens: list[int] = [records[d][1] for d in dates]
        self.closes: list[int] = [records[d][2] for d in dates]

        # Flat, merged interval table: interval k is [bounds[k], bounds[k + 1]) with labels[k];
        # bounds[-1] == end_ns is a sentinel (not a real session change).
        bounds: list[int] = []
        labels: list[Session] = []

        def push(t: int, s: Session) -> None:
            if bounds and t < bounds[-1]:
                raise RuntimeError(f"calendar times out of order at {t} ns")
            if bounds and t == bounds[-1]:  # previous interval is empty: replace its label
                labels[-1] = s
                if len(labels) >= 2 and labels[-2] is s:
                    bounds.pop()
                    labels.pop()
                return
            if labels and labels[-1] is s:
                return
            bounds.append(t)
            labels.append(s)

        push(self.start_ns, Session.CLOSED)
        for d in dates:
            pre, op, cl, post, _ = records[d]
            push(pre, Session.PRE)
            push(op, Session.REGULAR)
            push(cl, Session.POST)
            push(post, Session.CLOSED)
        if bounds[-1] >= self.end_ns:  # cannot happen: sessions end before ET midnight
            raise RuntimeError("calendar session runs past the end of its year")
        bounds.append(self.end_ns)
        self.bounds: list[int] = bounds
        self.labels: list[Session] = labels


def _year_start_ns(year: int) -> int:
    """Midnight America/New_York on 1 January ``year``, in ns (always a CLOSED instant)."""
    return to_ns(datetime(year, 1, 1, tzinfo=_ET))


def _et_year(ns: int) -> int:
    try:
        return datetime.fromtimestamp(ns // NS_PER_S, _ET).year
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"timestamp {ns} ns is outside the supported calendar range") from None


def _as_ns(ts: Any) -> int:
    """int ns (also numpy integers), tz-aware datetime/Timestamp or ISO string with offset -> ns."""
    if type(ts) is int:
        return ts
    if isinstance(ts, datetime | str) or hasattr(ts, "tzinfo"):
        return to_ns(ts)
    if not isinstance(ts, bool):
        try:
            return operator.index(ts)
        except TypeError:
            pass
    return to_ns(ts)  # raises TypeError naming the value


def _as_date(value: Any) -> date:
    """date, 'YYYY-MM-DD', tz-aware datetime/Timestamp, ISO timestamp with offset or int ns ->
    the America/New_York calendar date."""
    if isinstance(value, datetime):  # before date: datetime is a date subclass
        to_ns(value)  # refuses naive datetimes with ValueError
        return value.astimezone(_ET).date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    ns = _as_ns(value)
    return datetime.fromtimestamp(ns // NS_PER_S, _ET).date()


def _canonical_name(name: Any) -> str:
    key = name.strip().upper() if isinstance(name, str) else ""
    if key not in _CALENDARS:
        allowed = ", ".join(_CALENDARS)
        raise ConfigError(f"unknown market calendar {name!r} (allowed: {allowed})")
    return key


class MarketCalendar:
    """Session times of a US equity venue (see the module docstring). Cheap to create: tables are
    built on first use. Prefer :func:`get_calendar` to share an instance. Thread-safe."""

    __slots__ = ("_cache", "_lock", "_mcal", "_name", "_records", "_tables")

    def __init__(self, name: str = "NYSE") -> None:
        self._name = _canonical_name(name)
        self._lock = threading.Lock()
        self._mcal: Any = None
        self._records: dict[date, _DayRecord] = {}
        self._tables: _Tables | None = None
        # one-entry cache of session_at: (start_ns, end_ns, session) of the last interval hit
        self._cache: tuple[int, int, Session] = (0, 0, Session.CLOSED)

    @property
    def name(self) -> str:
        """Canonical calendar name ("NYSE", "NASDAQ")."""
        return self._name

    def __repr__(self) -> str:
        return f"MarketCalendar({self._name!r})"

    # ------------------------------------------------------------------ lookups

    def session_at(self, ts: TimeLike) -> Session:
        """The session at ``ts`` (int ns since the epoch UTC, tz-aware datetime/Timestamp or ISO
        string with an offset; naive datetimes raise ``ValueError``)."""
        ns = ts if type(ts) is int else _as_ns(ts)
        start, end, session = self._cache
        if start <= ns < end:
            return session
        t = self._covering(ns)
        k = bisect_right(t.bounds, ns) - 1
        session = t.labels[k]
        self._cache = (t.bounds[k], t.bounds[k + 1], session)
        return session

    def is_open(self, ts: TimeLike, *, extended: bool = False) -> bool:
        """True in the regular session (or, with ``extended``, in pre/regular/post)."""
        s = self.session_at(ts)
        return s is Session.REGULAR or (extended and s is not Session.CLOSED)

    def next_session_change(self, ts: TimeLike) -> tuple[int, Session]:
        """``(ns, session)``: the first session boundary strictly after ``ts`` and the session
        that starts there."""
        ns = _as_ns(ts)
        t = self._covering(ns)
        while True:
            k = bisect_right(t.bounds, ns) - 1
            if k + 1 < len(t.labels):
                return t.bounds[k + 1], t.labels[k + 1]
            t = self._extend_forward(t)  # in the last (closed) interval: look at the next year

    def next_open(self, ts: TimeLike) -> datetime:
        """Start of the first regular session strictly after ``ts`` (tz-aware UTC)."""
        return from_ns(self.next_open_ns(ts))

    def next_open_ns(self, ts: TimeLike) -> int:
        """:meth:`next_open` in int ns."""
        ns = _as_ns(ts)
        t = self._covering(ns)
        while True:
            j = bisect_right(t.opens, ns)
            if j < len(t.opens):
                return t.opens[j]
            t = self._extend_forward(t)

    def next_close(self, ts: TimeLike) -> datetime:
        """End of the regular session ``ts`` is in, else of the next one (tz-aware UTC). At the
        exact close instant (already POST) this is the next day's close."""
        return from_ns(self.next_close_ns(ts))

    def next_close_ns(self, ts: TimeLike) -> int:
        """:meth:`next_close` in int ns."""
        ns = _as_ns(ts)
        t = self._covering(ns)
        while True:
            j = bisect_right(t.closes, ns)
            if j < len(t.closes):
                return t.closes[j]
            t = self._extend_forward(t)

    def time_to_close(self, ts: TimeLike) -> float | None:
        """Seconds from ``ts`` to the close of the current regular session; ``None`` when ``ts`` is
        not in a regular session."""
        ns = _as_ns(ts)
        if self.session_at(ns) is not Session.REGULAR:
            return None
        t = self._covering(ns)
        return (t.closes[bisect_right(t.closes, ns)] - ns) / NS_PER_S

    def sessions(self, start: TimeLike, end: TimeLike) -> list[tuple[int, int, Session]]:
        """``(start_ns, end_ns, session)`` intervals covering ``[start, end)`` in order, CLOSED
        gaps included, adjacent intervals of the same session merged; the first and last are
        clipped to ``start`` and ``end``. Empty when ``end <= start``."""
        s_ns, e_ns = _as_ns(start), _as_ns(end)
        if e_ns <= s_ns:
            return []
        self._covering(s_ns)
        t = self._covering(e_ns - 1)  # tables are contiguous: now cover both ends
        bounds, labels = t.bounds, t.labels
        k = bisect_right(bounds, s_ns) - 1
        out: list[tuple[int, int, Session]] = []
        while bounds[k] < e_ns:
            out.append((max(bounds[k], s_ns), min(bounds[k + 1], e_ns), labels[k]))
            k += 1
        return out

    def day(self, value: DateLike) -> TradingDay:
        """Session times of a day: a ``date``, an ISO date string ``"2026-11-27"``, or a
        tz-aware datetime / int ns / ISO timestamp (its America/New_York date)."""
        d = _as_date(value)
        t = self._covering_years(d.year, d.year)
        rec = t.days.get(d)
        return TradingDay._closed(d) if rec is None else TradingDay._from_record(d, rec)

    def is_trading_day(self, value: DateLike) -> bool:
        """True when the day (see :meth:`day`) has a regular session."""
        d = _as_date(value)
        return d in self._covering_years(d.year, d.year).days

    def trading_days(self, start_date: DateLike, end_date: DateLike) -> list[date]:
        """Days with a regular session from ``start_date`` to ``end_date``, both inclusive."""
        a, b = _as_date(start_date), _as_date(end_date)
        if b < a:
            return []
        t = self._covering_years(a.year, b.year)
        return t.dates[bisect_left(t.dates, a) : bisect_right(t.dates, b)]

    # ------------------------------------------------------------------ tables

    def _covering(self, ns: int) -> _Tables:
        """Tables that contain the instant ``ns`` (extended when needed)."""
        t = self._tables
        if t is not None and t.start_ns <= ns < t.end_ns:
            return t
        year = _et_year(ns)
        if not _MIN_YEAR <= year <= _MAX_YEAR:
            raise ValueError(
                f"timestamp {ns} ns (year {year}) is outside the supported calendar range "
                f"{_MIN_YEAR}-{_MAX_YEAR}"
            )
        lo = max(_et_year(ns - _MARGIN_NS), _MIN_YEAR)
        hi = min(_et_year(ns + _MARGIN_NS), _MAX_YEAR)
        return self._covering_years(lo, hi)

    def _extend_forward(self, t: _Tables) -> _Tables:
        if t.last_year >= _MAX_YEAR:
            raise ValueError(f"no market session known after {_MAX_YEAR} ({self._name})")
        return self._covering_years(t.first_year, t.last_year + 1)

    def _covering_years(self, first: int, last: int) -> _Tables:
        """Tables that cover at least the years ``first..last``."""
        t = self._tables
        if t is not None and t.first_year <= first and last <= t.last_year:
            return t
        if first < _MIN_YEAR or last > _MAX_YEAR:
            raise ValueError(
                f"years {first}-{last} are outside the supported calendar range "
                f"{_MIN_YEAR}-{_MAX_YEAR}"
            )
        with self._lock:
            t = self._tables
            if t is None:
                spans = [(first, last)]
            else:
                if t.first_year <= first and last <= t.last_year:
                    return t
                first, last = min(first, t.first_year), max(last, t.last_year)
                spans = []
                if first < t.first_year:
                    spans.append((first, t.first_year - 1))
                if last > t.last_year:
                    spans.append((t.last_year + 1, last))
            for a, b in spans:
                self._records.update(self._fetch(a, b))
            t = _Tables(self._records, first, last)
            self._tables = t
            _log.debug("%s calendar tables now cover %d-%d", self._name, first, last)
            return t

    def _fetch(self, first: int, last: int) -> dict[date, _DayRecord]:
        """Trading days of the years ``first..last`` from pandas_market_calendars."""
        import pandas as pd
        import pandas_market_calendars as mcal

        with warnings.catch_warnings():
            # pandas_market_calendars uses pandas APIs deprecated in recent pandas releases
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            if self._mcal is None:
                self._mcal = mcal.get_calendar(_CALENDARS[self._name])
            cal = self._mcal
            sched = cal.schedule(
                start_date=f"{first:04d}-01-01",
                end_date=f"{last:04d}-12-31",
                start="pre",
                end="post",
            )
            early = set(cal.early_closes(sched).index.date)

        def col(name: str) -> list[int | None]:
            idx = pd.DatetimeIndex(sched[name]).as_unit("ns")
            return [None if isna else int(v) for v, isna in zip(idx.asi8, idx.isna(), strict=True)]

        pre, op, cl, post = col("pre"), col("market_open"), col("market_close"), col("post")
        out: dict[date, _DayRecord] = {}
        for i, d in enumerate(sched.index.date):
            o, c = op[i], cl[i]
            if o is None or c is None:
                continue
            p0 = pre[i]
            p1 = post[i]
            out[d] = (
                o if p0 is None else min(p0, o),
                o,
                c,
                c if p1 is None else max(p1, c),
                d in early,
            )
        _log.debug("%s: %d trading days in %d-%d", self._name, len(out), first, last)
        return out


_INSTANCES: dict[str, MarketCalendar] = {}
_INSTANCES_LOCK = threading.Lock()


def get_calendar(name: str = "NYSE") -> MarketCalendar:
    """The shared :class:`MarketCalendar` for ``name`` (one instance per calendar in a process, so
    its precomputed tables are shared). Unknown names raise ``ConfigError``."""
    key = _canonical_name(name)
    cal = _INSTANCES.get(key)
    if cal is None:
        with _INSTANCES_LOCK:
            cal = _INSTANCES.get(key)
            if cal is None:
                cal = _INSTANCES[key] = MarketCalendar(key)
    return cal
