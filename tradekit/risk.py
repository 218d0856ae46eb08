"""The user's own risk limits and the kill switch.

``RiskLimits`` is a frozen value (the ``[risk]`` table of a config); ``RiskManager`` applies it to
each order of one broker. Refusals are ``OrderRejected`` with reason ``RISK_LIMIT`` (position,
order size and notional, open orders; ``.limit`` names which), ``FAT_FINGER``, ``RATE_LIMIT``
(orders per minute) or ``KILL_SWITCH`` (after the kill switch tripped, by hand, by a signal, by a
flag file or on the daily loss limit).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from .enums import RejectReason, Side
from .errors import ConfigError, OrderRejected
from .timeutil import NS_PER_MIN

log = logging.getLogger("tradekit.risk")


class RiskRejected(OrderRejected):
    """An ``OrderRejected`` from a risk limit; ``limit`` names the ``[risk]`` key."""

    def __init__(self, reason: RejectReason, message: str, limit: str) -> None:
        super().__init__(reason, message)
        self.limit = limit

    def __reduce__(self) -> tuple[type, tuple[RejectReason, str, str]]:  # type: ignore[override]
        return (type(self), (self.reason, self.message, self.limit))


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Every limit optional; ``None`` means no limit. Units: shares, money of the venue's currency,
    and ``fat_finger`` as a fraction of the mid (0.05 = 5 %)."""

    max_position: float | None = None
    max_order_qty: float | None = None
    max_order_notional: float | None = None
    max_open_orders: int | None = None
    max_orders_per_minute: int | None = None
    max_daily_loss: float | None = None
    fat_finger: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ConfigError(f"must be a finite number, not {v!r}", key=f"risk.{f.name}")
            if v <= 0:
                raise ConfigError(f"must be positive, not {v!r}", key=f"risk.{f.name}")
            if f.name in ("max_open_orders", "max_orders_per_minute") and int(v) != v:
                raise ConfigError(f"must be a whole number, not {v!r}", key=f"risk.{f.name}")

    @classmethod
    def from_config(
        cls, value: Mapping[str, Any] | RiskLimits | None, *, file: str | None = None
    ) -> RiskLimits:
        if value is None:
            return cls()
        if isinstance(value, RiskLimits):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"[risk] must be a table, not {value!r}", file=file, key="risk")
        allowed = [f.name for f in fields(cls)]
        for k in value:
            if k not in allowed:
                raise ConfigError(
                    f"unknown key; allowed: {', '.join(allowed)}", file=file, key=f"risk.{k}"
                )
        try:
            return cls(**dict(value))
        except ConfigError as e:
            raise ConfigError(e.message, file=file, key=e.key) from None

    @property
    def any(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))


class KillSwitch:
    """Once tripped, every new order is refused (KILL_SWITCH) and the brokers listening cancel
    their open orders. Trip it from code (``trip``), from a signal (``install_signal_handlers``),
    from a flag file (``watch_file`` + ``poll``) or let the daily loss limit trip it."""

    def __init__(self) -> None:
        self.tripped = False
        self.reason = ""
        #: set while a flatten runs: orders that only reduce a position pass a tripped switch
        self.flattening = False
        self._listeners: list[Callable[[str], None]] = []
        self._flag_file: str | None = None
        self._lock = threading.Lock()

    def add_listener(self, callback: Callable[[str], None]) -> None:
        self._listeners.append(callback)

    def trip(self, reason: str = "kill switch") -> None:
        with self._lock:
            if self.tripped:
                return
            self.tripped = True
            self.reason = reason
        log.warning("kill switch tripped: %s", reason)
        for cb in list(self._listeners):
            try:
                cb(reason)
            except Exception:  # one listener's failure must not stop the others
                log.exception("kill switch listener failed")

    def reset(self) -> None:
        self.tripped = False
        self.reason = ""

    def install_signal_handlers(self, signals: Iterable[int] = (signal.SIGTERM,)) -> None:
        """Trip on these signals (main thread only)."""
        for sig in signals:
            signal.signal(sig, lambda s, _f: self.trip(f"signal {signal.Signals(s).name}"))

    def watch_file(self, path: str | os.PathLike[str]) -> None:
        self._flag_file = os.fspath(path)

    def poll(self) -> bool:
        """Check the flag file (cheap; call it from a timer). True when tripped."""
        if not self.tripped and self._flag_file and os.path.exists(self._flag_file):
            self.trip(f"flag file {self._flag_file}")
        return self.tripped


class RiskManager:
    """Applies ``RiskLimits`` to one broker's orders."""

    def __init__(
        self, limits: RiskLimits | None = None, kill_switch: KillSwitch | None = None
    ) -> None:
        self.limits = limits or RiskLimits()
        self.kill_switch = kill_switch or KillSwitch()
        self._any_limit = self.limits.any
        self._sent: deque[int] = deque()
        self._day: int | None = None
        self._day_start_pnl = 0.0

    @property
    def active(self) -> bool:
        """Whether ``check`` can refuse anything (a limit is set or the kill switch tripped)."""
        return self._any_limit or self.kill_switch.tripped

    def check(
        self,
        symbol: str,
        side: Side,
        qty: float,
        price: float | None,
        *,
        position: float,
        open_same_side: float,
        open_orders: int,
        mid: float | None,
        now_ns: int,
        replacing: bool = False,
    ) -> None:
        """Raise ``OrderRejected`` when the order breaks a limit. ``open_same_side`` is the
        remaining quantity of our other open orders of the symbol on this side."""
        if self.kill_switch.tripped and not (
            self.kill_switch.flattening
            and position
            and (side is Side.SELL) == (position > 0)
            and qty <= abs(position) + 1e-9
        ):
            raise OrderRejected(
                RejectReason.KILL_SWITCH,
                f"kill switch tripped ({self.kill_switch.reason}); no new orders",
            )
        lim = self.limits
        if lim.max_order_qty is not None and qty > lim.max_order_qty:
            raise RiskRejected(
                RejectReason.RISK_LIMIT,
                f"qty {qty:g} of {symbol} exceeds max_order_qty {lim.max_order_qty:g}",
                "max_order_qty",
            )
        ref = price if price is not None else mid
        if lim.max_order_notional is not None and ref is not None:
            notional = qty * ref
            if notional > lim.max_order_notional:
                raise RiskRejected(
                    RejectReason.RISK_LIMIT,
                    f"notional {notional:,.2f} of {qty:g} {symbol} at {ref:g} exceeds "
                    f"max_order_notional {lim.max_order_notional:,.2f}",
                    "max_order_notional",
                )
        if lim.max_position is not None:
            worst = position + side.sign * (open_same_side + qty)
            if abs(worst) > lim.max_position + 1e-9 and abs(worst) > abs(position):
                raise RiskRejected(
                    RejectReason.RISK_LIMIT,
                    f"{side.value} {qty:g} {symbol} could take the position to {worst:g} "
                    f"(held {position:g}, open {side.value}s {open_same_side:g}); "
                    f"max_position is {lim.max_position:g}",
                    "max_position",
                )
        if not replacing and lim.max_open_orders is not None and open_orders >= lim.max_open_orders:
            raise RiskRejected(
                RejectReason.RISK_LIMIT,
                f"{open_orders} orders already open; max_open_orders is {lim.max_open_orders}",
                "max_open_orders",
            )
        if lim.fat_finger is not None and price is not None and mid is not None and mid > 0:
            dist = abs(price - mid) / mid
            if dist > lim.fat_finger:
                raise OrderRejected(
                    RejectReason.FAT_FINGER,
                    f"price {price:g} for {symbol} is {dist:.2%} from the mid {mid:g}; "
                    f"fat_finger allows {lim.fat_finger:.2%}",
                )
        if lim.max_orders_per_minute is not None:
            sent = self._sent
            cutoff = now_ns - NS_PER_MIN
            while sent and sent[0] <= cutoff:
                sent.popleft()
            if len(sent) >= lim.max_orders_per_minute:
                raise OrderRejected(
                    RejectReason.RATE_LIMIT,
                    f"{len(sent)} orders in the last minute; max_orders_per_minute is "
                    f"{lim.max_orders_per_minute}",
                )

    def on_sent(self, now_ns: int) -> None:
        """Count an order (or replace) that left for the broker."""
        if self.limits.max_orders_per_minute is not None:
            self._sent.append(now_ns)

    def on_pnl(self, total_pnl: float, now_ns: int) -> None:
        """Feed the running PnL (realized + unrealized - fees); trips on the daily loss limit.
        The day rolls at 06:00 UTC (01:00/02:00 New York), when US equity markets are closed."""
        if self.limits.max_daily_loss is None:
            return
        day = (now_ns - 6 * 3600 * 1_000_000_000) // (86_400 * 1_000_000_000)
        if day != self._day:
            self._day = day
            self._day_start_pnl = total_pnl
        loss = self._day_start_pnl - total_pnl
        if loss > self.limits.max_daily_loss and not self.kill_switch.tripped:
            self.kill_switch.trip(
                f"daily loss {loss:,.2f} exceeds max_daily_loss {self.limits.max_daily_loss:,.2f}"
            )
