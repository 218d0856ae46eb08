"""Market-data sources for backtests: recorded files (:class:`ReplayFile`, :class:`ReplaySource`)
and a seeded synthetic market (:class:`SyntheticMarket`).

Every source has ``events(start_ns=None, end_ns=None)`` yielding ``Quote``/``Trade``/``Bar``
objects in non-decreasing ``ts`` order, and ``symbols`` (the set of symbols it delivers).
"""

from __future__ import annotations

from .replay import ReplayFile, ReplaySource, load_frame, write_frame
from .synthetic import SyntheticMarket

__all__ = ["ReplayFile", "ReplaySource", "SyntheticMarket", "load_frame", "write_frame"]
