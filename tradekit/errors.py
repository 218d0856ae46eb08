"""One error tree for everything tradekit raises.

``TradekitError`` > ``ConfigError``, ``DataError``, ``OrderRejected`` (``.reason``),
``BrokerError`` > ``TransientBrokerError`` (> ``RateLimited``, ``Disconnected``,
``BrokerTimeout``; retried with backoff) and ``PermanentBrokerError`` (> ``AuthError``). Messages
say what was wrong, with the value, and what is allowed.
"""

from __future__ import annotations

from .enums import RejectReason


class TradekitError(Exception):
    """Base of every error tradekit raises."""


class ConfigError(TradekitError):
    """A configuration value is missing, unknown, of the wrong type or impossible."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        self.message = message
        where = ""
        if file:
            where = f"{file}: "
        if key:
            where += f"{key}: "
        super().__init__(f"{where}{message}")


class DataError(TradekitError):
    """Market data that cannot be used (malformed, out of order, unknown symbol)."""


class OrderRejected(TradekitError):
    """An order (or a cancel/replace) was refused, locally or by the broker."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        self.reason = RejectReason(reason)
        self.message = message
        super().__init__(f"{self.reason.value}: {message}")

    def __reduce__(self) -> tuple[type, tuple[RejectReason, str]]:
        return (type(self), (self.reason, self.message))


class BrokerError(TradekitError):
    """A broker call failed."""


class TransientBrokerError(BrokerError):
    """A failure that may go away on retry (rate limit, disconnect, timeout, 5xx)."""


class RateLimited(TransientBrokerError):
    """The broker refused the call for its rate limit; ``retry_after`` seconds if known."""

    def __init__(self, message: str = "rate limited", *, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class Disconnected(TransientBrokerError):
    """The connection to the broker is down."""


class BrokerTimeout(TransientBrokerError):
    """The broker did not answer in time."""


class PermanentBrokerError(BrokerError):
    """A failure that retrying will not fix."""


class AuthError(PermanentBrokerError):
    """Credentials missing or refused."""


__all__ = [
    "AuthError",
    "BrokerError",
    "BrokerTimeout",
    "ConfigError",
    "DataError",
    "Disconnected",
    "OrderRejected",
    "PermanentBrokerError",
    "RateLimited",
    "TradekitError",
    "TransientBrokerError",
]
