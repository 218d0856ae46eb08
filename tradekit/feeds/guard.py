"""A guard between a live data feed and the engine: bad market data is skipped, never traded on.

``MarketDataGuard.check(event)`` returns True for a ``Quote``, ``Trade``, ``Bar`` or
``MarketStatus`` that is safe to pass on (``engine.step(event)``) and False for one to skip::

    guard = MarketDataGuard()
    feed.add_listener(lambda ev: guard.check(ev) and engine.step(ev))

Skipped (the problem names are the keys of ``guard.skipped``, which counts them):

- ``type``: not a market event at all;
- ``symbol`` / ``venue``: a symbol that is not a non-empty string of at most 64 printable
  characters without surrounding spaces; a venue that is not a string;
- ``ts``: a timestamp that is not an integer (ns since the epoch) or lies before
  ``min_ts_ns`` (2000-01-01: seconds or milliseconds given as nanoseconds);
- ``future``: a timestamp more than ``max_future_s`` ahead of ``clock()`` (the wall clock);
- ``backwards``: a timestamp more than ``backwards_tolerance_s`` earlier than the latest one
  passed for the same (venue, symbol, kind). The latest-seen mark never runs ahead of the clock
  by more than the tolerance, so one tick stamped in the near future cannot hold back the
  good ticks after it;
- ``not_a_number``, ``non_finite``, ``negative``, ``too_large``: a price or size that is not a
  number (a string, None, ...; ints and numpy numbers are numbers, and so, as in Python, are
  bools), NaN or infinite, below zero, or above ``max_price`` / ``max_size``;
- ``zero_size``: a quote side with a positive price and a zero size, or a trade of size 0
  (a side with price 0 is an empty side, whatever its size: allowed);
- ``zero_price``: a trade or a bar at a price of 0;
- ``crossed``: a quote whose bid is above its ask, both positive (locked, bid == ask, passes);
- ``bar_range``: a bar whose high is below its low or whose open/close lies outside them;
- ``status``: a ``MarketStatus`` whose ``halted`` is not a bool or whose LULD bands are not
  positive numbers with lower <= upper.

Each skip is logged as a warning on the ``tradekit.guard`` logger naming the venue, the symbol,
the field and its value, at most once per ``warn_interval_s`` for each (venue, symbol, problem)
(the next warning says how many were not logged), so a storm of bad ticks cannot flood the log.

Cost: a good event of a (venue, symbol) seen before takes the fast path (a few comparisons and
two dict look-ups, about 200-300 ns); the clock is read about once per ``backwards_tolerance_s``
of data time, not per event.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Final

from ..model import Bar, MarketStatus, Quote, Trade
from ..timeutil import NS_PER_S

__all__ = ["MarketDataGuard", "PROBLEMS"]

log = logging.getLogger("tradekit.guard")

#: Every problem name ``MarketDataGuard.skipped`` may count.
PROBLEMS: Final = (
    "type",
    "symbol",
    "venue",
    "ts",
    "future",
    "backwards",
    "not_a_number",
    "non_finite",
    "negative",
    "too_large",
    "zero_size",
    "zero_price",
    "crossed",
    "bar_range",
    "status",
)

#: 2000-01-01T00:00:00Z: earlier timestamps are seconds or milliseconds taken for nanoseconds.
MIN_TS_NS: Final = 946_684_800 * NS_PER_S
_MAX_SYMBOL: Final = 64
_MAX_KEYS: Final = 10_000  # rate-limit entries kept (a storm of distinct junk symbols)
_INF: Final = math.inf
_NO_LIMIT: Final = 2**63  # later than any int64 ns timestamp

_KIND: Final[dict[type, str]] = {
    Quote: "quote",
    Trade: "trade",
    Bar: "bar",
    MarketStatus: "status",
}

# A problem found by the slow path: (problem, field, value, what is wrong).
_Problem = tuple[str, str, Any, str]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _good_symbol(sym: Any) -> bool:
    return (
        isinstance(sym, str)
        and 0 < len(sym) <= _MAX_SYMBOL
        and sym.isprintable()
        and sym == sym.strip()
    )


class MarketDataGuard:
    """Checks live market events before they reach the engine; see the module docstring.

    ``clock``: a function giving the time in ns since the epoch (default ``time.time_ns``;
    ``None`` turns the ``future`` check off). ``max_price`` / ``max_size``: larger prices or
    sizes (bar volumes included) are skipped as garbage.
    """

    __slots__ = (
        "_clock",
        "_horizon",
        "_last",
        "_lb",
        "_lq",
        "_ls",
        "_lt",
        "_max_future",
        "_min_ts",
        "_mp",
        "_ms",
        "_soon",
        "_tol",
        "_warned",
        "logger",
        "passed",
        "skipped",
        "warn_interval_s",
    )

    def __init__(
        self,
        *,
        clock: Callable[[], int] | None = time.time_ns,
        max_future_s: float = 60.0,
        backwards_tolerance_s: float = 1.0,
        max_price: float = 1e7,
        max_size: float = 1e12,
        min_ts_ns: int = MIN_TS_NS,
        warn_interval_s: float = 60.0,
        logger: logging.Logger | None = None,
    ) -> None:
        for name, v in (
            ("max_future_s", max_future_s),
            ("backwards_tolerance_s", backwards_tolerance_s),
            ("max_price", max_price),
            ("max_size", max_size),
            ("warn_interval_s", warn_interval_s),
        ):
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < _INF:
                raise ValueError(f"{name} must be a finite number >= 0, not {v!r}")
        self._clock = clock
        self._max_future = int(max_future_s * NS_PER_S)
        self._tol = int(backwards_tolerance_s * NS_PER_S)
        self._mp = float(max_price)
        self._ms = float(max_size)
        self._min_ts = int(min_ts_ns)
        self.warn_interval_s = float(warn_interval_s)
        self.logger = logger or log
        #: events skipped, by problem (see ``PROBLEMS``)
        self.skipped: Counter[str] = Counter()
        #: events passed
        self.passed = 0
        # the clock as last read: ts <= _soon needs no clock read; _horizon: the future limit
        self._soon = -1
        self._horizon = -1
        # latest ts passed, per kind: venue -> symbol -> ts (only well-formed venues/symbols)
        self._lq: dict[str, dict[str, int]] = {}
        self._lt: dict[str, dict[str, int]] = {}
        self._lb: dict[str, dict[str, int]] = {}
        self._ls: dict[str, dict[str, int]] = {}
        self._last: dict[type, dict[str, dict[str, int]]] = {
            Quote: self._lq,
            Trade: self._lt,
            Bar: self._lb,
            MarketStatus: self._ls,
        }
        self._warned: dict[tuple[Any, Any, str], list[float]] = {}

    def __repr__(self) -> str:
        return f"MarketDataGuard(passed={self.passed}, skipped={dict(self.skipped)})"

    def __call__(self, ev: Any) -> bool:
        return self.check(ev)

    def reset(self, venue: str | None = None) -> None:
        """Forget the latest timestamps seen (of ``venue``; all when None), e.g. after a feed
        reconnects to a source whose clock restarted."""
        for by_venue in self._last.values():
            if venue is None:
                by_venue.clear()
            else:
                by_venue.pop(venue, None)

    # ---- the check -------------------------------------------------------------------------
    def check(self, ev: Any) -> bool:
        """True when ``ev`` may go on to the engine; False (counted, warned about) otherwise."""
        # The fast path takes a good event of a (venue, symbol) seen before; everything else
        # (first events, anything odd) goes to the slow path, which finds out what is wrong.
        try:
            cls = ev.__class__
            if cls is Quote:
                b = ev.bid
                a = ev.ask
                bs = ev.bid_size
                az = ev.ask_size
                mp = self._mp
                ms = self._ms
                if not (
                    (0.0 < b <= a <= mp and 0.0 < bs <= ms and 0.0 < az <= ms)  # two-sided
                    or (  # a side may be empty: price 0 (any size)
                        ((0.0 < b <= mp and 0.0 < bs <= ms) or (b == 0.0 and 0.0 <= bs <= ms))
                        and ((0.0 < a <= mp and 0.0 < az <= ms) or (a == 0.0 and 0.0 <= az <= ms))
                        and (b <= a or a == 0.0)
                    )
                ):
                    return self._slow(ev)
                by_venue = self._lq
            elif cls is Trade:
                if not (0.0 < ev.price <= self._mp and 0.0 < ev.size <= self._ms):
                    return self._slow(ev)
                by_venue = self._lt
            elif cls is Bar:
                lo = ev.low
                hi = ev.high
                if not (
                    0.0 < lo <= ev.open <= hi <= self._mp
                    and lo <= ev.close <= hi
                    and 0.0 <= ev.volume <= self._ms
                ):
                    return self._slow(ev)
                by_venue = self._lb
            else:
                return self._slow(ev)
            # marks exist only for well-formed venues and symbols seen before
            marks = by_venue.get(ev.venue)
            if marks is not None:
                ts = ev.ts
                sym = ev.symbol
                last = marks.get(sym)
                if last is not None and ts.__class__ is int and ts <= self._soon:
                    if ts >= last:
                        marks[sym] = ts
                        self.passed += 1
                        return True
                    if ts >= last - self._tol:
                        self.passed += 1
                        return True
        except Exception:  # anything odd: the slow path finds out what
            pass
        return self._slow(ev)

    # ---- the slow path: what exactly is wrong ------------------------------------------------
    def _slow(self, ev: Any) -> bool:
        try:
            problem = self._diagnose(ev)
        except Exception as e:  # never raise into a feed's callback
            problem = ("type", "event", ev, f"cannot be checked ({type(e).__name__}: {e})")
        if problem is None:
            self.passed += 1
            return True
        self._reject(ev, problem)
        return False

    def _diagnose(self, ev: Any) -> _Problem | None:
        cls = ev.__class__
        if cls not in _KIND:
            return ("type", "event", ev, f"is a {cls.__name__}, not a Quote/Trade/Bar/MarketStatus")
        sym = ev.symbol
        if not _good_symbol(sym):
            return (
                "symbol",
                "symbol",
                sym,
                f"must be a non-empty str of at most {_MAX_SYMBOL} printable characters "
                f"without surrounding spaces",
            )
        venue = ev.venue
        if not isinstance(venue, str):
            return ("venue", "venue", venue, "must be a str")
        ts = ev.ts
        if isinstance(ts, bool) or not isinstance(ts, int):
            ts_int = getattr(ts, "__index__", None)
            if ts_int is None or isinstance(ts, bool):
                return ("ts", "ts", ts, "must be an int (ns since the epoch)")
            ts = ts_int()
        if ts < self._min_ts:
            return (
                "ts",
                "ts",
                ts,
                "is before 2000-01-01 (seconds or milliseconds instead of nanoseconds?)",
            )
        problem = self._values(ev, cls)
        if problem is not None:
            return problem
        if ts > self._soon:
            self._read_clock()
            if self._clock is not None and ts > self._horizon:
                ahead = (ts - (self._horizon - self._max_future)) / NS_PER_S
                return ("future", "ts", ts, f"is {ahead:.3f} s ahead of the clock")
        by_venue = self._last[cls]
        marks = by_venue.get(venue)
        if marks is None:
            marks = by_venue[venue] = {}
        last = marks.get(sym)
        if last is not None and ts < last - self._tol:
            back = (last - ts) / NS_PER_S
            return ("backwards", "ts", ts, f"is {back:.3f} s earlier than the latest ({last})")
        if last is None or ts > last:
            # the mark never runs ahead of the clock by more than the tolerance
            marks[sym] = ts if self._clock is None or ts <= self._soon else self._soon
        return None

    def _read_clock(self) -> None:
        if self._clock is None:
            self._soon = self._horizon = _NO_LIMIT
            return
        now = int(self._clock())
        self._soon = now + self._tol
        self._horizon = now + self._max_future

    def _values(self, ev: Any, cls: type) -> _Problem | None:
        mp, ms = self._mp, self._ms
        if cls is Quote:
            for px_name, sz_name in (("bid", "bid_size"), ("ask", "ask_size")):
                px = getattr(ev, px_name)
                sz = getattr(ev, sz_name)
                p = _number(px_name, px, mp) or _number(sz_name, sz, ms)
                if p is not None:
                    return p
                if px > 0 and sz == 0:
                    return (
                        "zero_size",
                        sz_name,
                        sz,
                        f"is 0 with {px_name} {px!r} (a side with a price needs a size)",
                    )
            if ev.bid > ev.ask > 0:
                return ("crossed", "bid", ev.bid, f"is above the ask {ev.ask!r}")
            return None
        if cls is Trade:
            p = _number("price", ev.price, mp) or _number("size", ev.size, ms)
            if p is not None:
                return p
            if ev.price == 0:
                return ("zero_price", "price", ev.price, "is 0 (a trade needs a price)")
            if ev.size == 0:
                return ("zero_size", "size", ev.size, "is 0 (a trade needs a size)")
            return None
        if cls is Bar:
            for name in ("open", "high", "low", "close"):
                p = _number(name, getattr(ev, name), mp)
                if p is not None:
                    return p
            p = _number("volume", ev.volume, ms)
            if p is not None:
                return p
            if ev.low == 0:
                return ("zero_price", "low", ev.low, "is 0 (a bar needs prices)")
            if ev.high < ev.low:
                return ("bar_range", "high", ev.high, f"is below the low {ev.low!r}")
            for name in ("open", "close"):
                v = getattr(ev, name)
                if not ev.low <= v <= ev.high:
                    return (
                        "bar_range",
                        name,
                        v,
                        f"is outside the low..high {ev.low!r}..{ev.high!r}",
                    )
            return None
        # MarketStatus
        if not isinstance(ev.halted, bool):
            return ("status", "halted", ev.halted, "must be True or False")
        lo, hi = ev.lower_band, ev.upper_band
        for name, band in (("lower_band", lo), ("upper_band", hi)):
            if band is not None:
                p = _number(name, band, mp)
                if p is not None:
                    return ("status", *p[1:])
                if band == 0:
                    return ("status", name, band, "must be a price > 0 (or None)")
        if lo is not None and hi is not None and lo > hi:
            return ("status", "lower_band", lo, f"is above the upper band {hi!r}")
        return None

    # ---- skipping --------------------------------------------------------------------------
    def _reject(self, ev: Any, problem: _Problem) -> None:
        name, fld, value, what = problem
        self.skipped[name] += 1
        venue = getattr(ev, "venue", None)
        symbol = getattr(ev, "symbol", None)
        try:
            key = (venue, symbol, name)
            hash(key)
        except TypeError:
            key = (_show(venue), _show(symbol), name)
        now = time.monotonic()
        entry = self._warned.get(key)
        if entry is not None and now - entry[0] < self.warn_interval_s:
            entry[1] += 1  # suppressed
            return
        if entry is None and len(self._warned) >= _MAX_KEYS:
            self._warned.clear()
        more = int(entry[1]) if entry is not None else 0
        self._warned[key] = [now, 0]
        kind = _KIND.get(ev.__class__, type(ev).__name__)
        self.logger.warning(
            "bad market data skipped (%s) from venue %s, symbol %s: %s %s %s %s%s",
            name,
            _show(venue) if not isinstance(venue, str) else (venue or '""'),
            _show(symbol) if not _good_symbol(symbol) else symbol,
            kind,
            fld,
            _show(value),
            what,
            f" ({more} more like it skipped since the last warning)" if more else "",
        )


def _number(name: str, value: Any, most: float) -> _Problem | None:
    """The problem with a price or size, or None for a finite number in [0, most]."""
    if value is None or isinstance(value, str | bytes):
        return ("not_a_number", name, value, "is not a number")
    x = value
    if not isinstance(x, int | float):
        try:  # numpy numbers, Decimal
            x = float(x)
        except (TypeError, ValueError, OverflowError):
            return ("not_a_number", name, value, "is not a number")
    if isinstance(x, float) and (x != x or x in (_INF, -_INF)):
        return ("non_finite", name, value, "is not a finite number")
    if x < 0:
        return ("negative", name, value, "is negative")
    if x > most:
        return ("too_large", name, value, f"is above {most:g} (garbage?)")
    return None
