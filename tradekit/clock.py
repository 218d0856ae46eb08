"""Clocks. Everything that needs "now" asks a clock for integer nanoseconds (UTC)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from .timeutil import to_ns


@runtime_checkable
class Clock(Protocol):
    def now_ns(self) -> int: ...


class WallClock:
    """The real time."""

    def now_ns(self) -> int:
        return time.time_ns()

    def __repr__(self) -> str:
        return "WallClock()"


class SimClock:
    """A simulated clock, moved only forward by whoever drives it (the backtest engine, or market
    data fed to a paper broker)."""

    __slots__ = ("_ns",)

    def __init__(self, start: Any = 0) -> None:
        self._ns = to_ns(start)

    def now_ns(self) -> int:
        return self._ns

    def set(self, ns: int) -> None:
        """Move to ``ns``; a time before now is ignored (the clock never goes back)."""
        if ns > self._ns:
            self._ns = ns

    def advance(self, delta_ns: int) -> None:
        if delta_ns < 0:
            raise ValueError(f"a clock only moves forward: delta {delta_ns!r} ns")
        self._ns += delta_ns

    def __repr__(self) -> str:
        return f"SimClock({self._ns})"


class _CallableClock:
    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._fn = fn

    def now_ns(self) -> int:
        return to_ns(self._fn())


def as_clock(value: Any) -> Clock | None:
    """A ``Clock``, a callable returning a timestamp, a fixed timestamp (a ``SimClock``) or
    None."""
    if value is None or isinstance(value, Clock):
        return value
    if callable(value):
        return _CallableClock(value)
    if isinstance(value, int | datetime | str) or hasattr(value, "tzinfo"):
        return SimClock(value)
    raise TypeError(f"clock must be a Clock, a callable or a timestamp, not {value!r}")
