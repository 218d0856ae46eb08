"""A sliding-window request budget shared by every call of one broker account (for example
Alpaca's 200 requests per minute). Cancels may use the share kept back from new orders, so a
quoter that is out of budget can still pull its quotes."""

from __future__ import annotations

from collections import deque

from .timeutil import NS_PER_S


class RateLimiter:
    __slots__ = ("_reserve", "_sent", "_window", "limit")

    def __init__(
        self, limit: int, per_seconds: float = 60.0, reserve_for_cancels: float = 0.1
    ) -> None:
        if limit <= 0:
            raise ValueError(f"rate limit {limit!r} must be positive")
        if not 0 <= reserve_for_cancels < 1:
            raise ValueError(f"reserve_for_cancels {reserve_for_cancels!r} must be in [0, 1)")
        self.limit = int(limit)
        self._window = int(per_seconds * NS_PER_S)
        self._reserve = int(limit * reserve_for_cancels)
        self._sent: deque[int] = deque()

    def used(self, now_ns: int) -> int:
        sent = self._sent
        cutoff = now_ns - self._window
        while sent and sent[0] <= cutoff:
            sent.popleft()
        return len(sent)

    def available(self, now_ns: int, *, cancel: bool = False) -> int:
        cap = self.limit if cancel else self.limit - self._reserve
        return max(0, cap - self.used(now_ns))

    def try_acquire(self, now_ns: int, *, cancel: bool = False) -> bool:
        """Take one request from the budget; False (nothing taken) when it is spent."""
        if self.available(now_ns, cancel=cancel) <= 0:
            return False
        self._sent.append(now_ns)
        return True

    def wait_ns(self, now_ns: int, *, cancel: bool = False) -> int:
        """Nanoseconds until one request is available again (0 if now)."""
        if self.available(now_ns, cancel=cancel) > 0:
            return 0
        cap = self.limit if cancel else self.limit - self._reserve
        idx = len(self._sent) - cap
        return max(0, self._sent[idx] + self._window - now_ns) if idx >= 0 else 0
