"""What both campaigns share: a listener that checks what brokers publish, a log watch that
catches exceptions which escaped, a fault tally and a poll-until helper."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tradekit.model import Fill, Order
from tradekit.reconcile import ReconciliationReport, VenueStatus


class Watcher:
    """A broker listener (``add_listener``: orders and fills) and status listener
    (``add_status_listener``: ``VenueStatus`` and ``ReconciliationReport``); keeps the fills,
    the venue statuses and the reports; anything else is strange."""

    def __init__(self) -> None:
        self.fills: list[Fill] = []
        self.statuses: list[VenueStatus] = []
        self.reports: list[ReconciliationReport] = []
        self.orders = 0
        self.strange: list[Any] = []

    def __call__(self, obj: Any) -> None:
        if isinstance(obj, Fill):
            self.fills.append(obj)
        elif isinstance(obj, Order):
            self.orders += 1
        elif isinstance(obj, VenueStatus):
            self.statuses.append(obj)
        elif isinstance(obj, ReconciliationReport):
            self.reports.append(obj)
        else:
            self.strange.append(obj)

    def check_statuses(self) -> None:
        """Downs and ups alternate (each reported once) and the venue ends up."""
        ups = [s.up for s in self.statuses]
        assert all(a != b for a, b in itertools.pairwise(ups)), ups
        assert not ups or ups[-1], "the venue must end up"


class LogWatch(logging.Handler):
    """Records every log record with a traceback (an exception that escaped somewhere) and every
    ERROR record, from every logger."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.records.append(record)

    def problems(self, allowed: Callable[[logging.LogRecord], bool] = lambda r: False) -> list[str]:
        return [
            f"{r.name} {r.levelname}: {r.getMessage()[:300]}"
            + (
                f" [{r.exc_info[0].__name__}: {r.exc_info[1]}]"
                if r.exc_info and r.exc_info[0]
                else ""
            )
            for r in self.records
            if not allowed(r)
        ]


@contextmanager
def watch_logs(*names: str) -> Iterator[LogWatch]:
    """Attach a ``LogWatch`` to the root logger and to ``names`` (loggers that do not
    propagate), lowering nothing but making sure ERRORs and tracebacks reach it."""
    w = LogWatch()
    loggers = [logging.getLogger(), *(logging.getLogger(n) for n in names)]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(w)
        if lg.getEffectiveLevel() > logging.WARNING:
            lg.setLevel(logging.WARNING)  # errors must reach the watch
    try:
        yield w
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(w)
            lg.setLevel(level)


class Tally(Counter[str]):
    """Faults injected, by kind."""

    @property
    def total(self) -> int:
        return sum(self.values())


async def wait_until(cond: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Poll ``cond`` until it holds (AssertionError after ``timeout`` s: a hang, not timing)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"not reached in {timeout:g} s: {what or cond}")
        await asyncio.sleep(0.01)
