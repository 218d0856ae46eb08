"""Time conversions. Internally every timestamp is an ``int`` of nanoseconds since the epoch (UTC);
at the edges tz-aware ``datetime`` objects. Naive datetimes are refused, never guessed."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
NS_PER_MIN = 60 * NS_PER_S
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_ns(ns: int) -> datetime:
    """Nanoseconds since the epoch -> tz-aware UTC ``datetime`` (microsecond precision)."""
    s, rem = divmod(int(ns), NS_PER_S)
    return datetime.fromtimestamp(s, UTC).replace(microsecond=rem // 1000)


def to_ns(value: Any) -> int:
    """An int (ns), a tz-aware ``datetime``/``pandas.Timestamp`` or an ISO-8601 string with an
    offset -> nanoseconds since the epoch. Naive datetimes and strings without an offset are
    refused with ``ValueError``."""
    if isinstance(value, bool):
        raise TypeError(f"not a timestamp: {value!r}")
    if isinstance(value, int):
        return value
    if hasattr(value, "value") and hasattr(value, "tzinfo"):  # pandas.Timestamp
        if value.tzinfo is None:
            raise ValueError(f"naive timestamp {value!r}: give a UTC offset or a timezone")
        return int(value.value)
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: give a UTC offset or a timezone")
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1000
    if isinstance(value, str):
        return parse_iso_ns(value)
    if isinstance(value, float):
        raise TypeError(f"float timestamp {value!r} is ambiguous: give integer nanoseconds")
    raise TypeError(f"not a timestamp: {value!r} (allowed: int ns, tz-aware datetime, ISO-8601)")


def parse_iso_ns(text: str) -> int:
    """ISO-8601 with an offset (``Z`` allowed), nanosecond fractions kept."""
    s = text.strip()
    frac_ns = 0
    # split off a fractional second longer than datetime can hold
    t_pos = max(s.find("T"), s.find(" "))
    if t_pos > 0:
        dot = s.find(".", t_pos)
        if dot > 0:
            end = dot + 1
            while end < len(s) and s[end].isdigit():
                end += 1
            digits = s[dot + 1 : end]
            frac_ns = int((digits + "000000000")[:9]) if digits else 0
            s = s[:dot] + s[end:]
    if s.endswith("Z") or s.endswith("z"):
        s = s[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"bad ISO-8601 timestamp {text!r}") from None
    if dt.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset (e.g. 2026-11-24T14:30:00Z)")
    return to_ns(dt) + frac_ns


def iso(ns: int | None) -> str:
    """ISO-8601 UTC text of a ns timestamp ('' for None), microseconds kept when non-zero."""
    if ns is None:
        return ""
    dt = from_ns(ns)
    return dt.isoformat().replace("+00:00", "Z")


def wall_ns() -> int:
    return time.time_ns()
