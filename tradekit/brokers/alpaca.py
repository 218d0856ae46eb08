"""The Alpaca adapter: ``AlpacaBroker`` (orders, account, positions through alpaca-py's
``TradingClient`` and ``TradingStream``) and ``AlpacaDataFeed`` (quotes, trades, bars, halts and
LULD bands through ``StockDataStream``; history through ``StockHistoricalDataClient``), plus
``download`` which writes Alpaca history in the replay file format.

alpaca-py is imported only by this module (the ``tradekit[alpaca]`` extra); ``import tradekit``
never imports it.

How the broker works
====================

* Commands out: ``_send_submit``/``_send_cancel``/``_send_replace`` return at once; each starts a
  task that runs the blocking alpaca-py call in a worker thread (the broker's own pool, so the
  event loop never blocks). The tasks of one order run one after the other (a cancel waits for
  its order's POST), so the order's Alpaca id is always known when it is needed.
* Prices and quantities leave as exact strings from ``OrderRules.format_price``/``format_qty``:
  the alpaca-py request models validate the order, then their float fields are replaced by the
  strings before the JSON is sent, so ``0.30000000000000004`` can never reach Alpaca.
* Events in: the ``trade_updates`` stream (``new``, ``fill``, ``partial_fill``, ``canceled``,
  ``expired``, ``done_for_day``, ``replaced``, ``rejected``, ``pending_*``, ...) is mapped onto the
  base class's ``_ack``/``_status``/``_fill``/``_replaced``. Fills are derived from the cumulative
  ``filled_qty`` of each Alpaca order, so a duplicated, late or missed event never counts a share
  twice or loses one; a fill's id is the event's ``execution_id`` (or ``<order id>:<filled qty>``
  when it is reconstructed).
  Every event's order snapshot also carries its cumulative fills, so a ``canceled`` or
  ``replaced`` event that overtook (or outlived) the fill events still counts them. Malformed
  stream messages (not JSON, not an object, an unknown stream or event, a trade update that does
  not parse, impossible numbers) are skipped with a warning (``stream_skipped``).
* While the stream is down the broker polls REST (open orders, then each of our open orders by
  client order id); the status listeners get ``VenueStatus(up=False)``. After the stream comes
  back it reconciles (retrying while Alpaca fails), then publishes ``VenueStatus(up=True)``. Each
  reconciliation (connect, reconnect, ``reconcile()``; polls when they found something) is a
  ``ReconciliationReport`` handed to ``_reconciled``: matched, adopted (or, with
  ``unknown_orders = "cancel"``, cancelled) open orders we did not place, orders closed
  meanwhile, fills recovered, positions (the first time Alpaca's seed the books; later a
  difference is reported). Replaced Alpaca orders whose last state we never saw are fetched (their
  fills up to the replacement). An open order of ours Alpaca cannot find by client order id is
  marked ``LOST`` after ``lost_after_lookups`` reconciliations (3).
* Replace is Alpaca's PATCH, which creates a new Alpaca order: the handle keeps its
  ``client_order_id``, ``broker_order_id`` follows the new id. The replacement is sent with its
  own client order id (``<ours>-r<n>``) so that an unknown outcome can be looked up. The quantity
  sent is what remains to fill (the new total less what has filled): a replacement order starts
  with nothing filled. (An assumption about Alpaca's PATCH semantics for partly filled orders
  that Alpaca's documentation does not settle; whole shares only, as Alpaca requires.) When a
  fill of the replaced order is learnt only after the replacement, the handle's quantity grows
  by it (``OrderManager.on_restated``): it is always what Alpaca works.
* Errors are typed (see ``classify_error``): wash trade, sub-penny, buying power, held quantity
  become ``REJECTED`` orders with the matching ``RejectReason``; 404/422 on cancel or replace
  become cancel/replace rejections; 401/403 ``AuthError``; 429 ``RateLimited`` (every call of the
  account waits as ``Retry-After``/``X-RateLimit-Reset`` say); 5xx, timeouts and connection errors
  are retried with backoff (tenacity). A POST whose outcome is unknown is never sent again before
  the order was looked up by its client order id (and Alpaca refuses a client order id twice);
  when it stays unknown the order is ``LOST`` and looked up again later (``lost_recheck_s``, and
  by the next ``lost_after_lookups`` reconciliations). A submit that only ever got 429s is
  ``REJECTED`` (``RATE_LIMIT``); 429s do not use up the attempts allowed for other failures.
  alpaca-py's own retry is switched off.
* A cancel requested before the order's POST left cancels it locally (nothing is sent).
* One request budget per account (``throttle``, 200 a minute on a monotonic clock): submit and
  replace are refused locally (``RATE_LIMIT``) when it is spent, cancels may use the reserve, and
  every other call (queries, retries, look-ups, polling) waits for it. At most 8 requests are in
  flight at once, and a request takes from the budget only when it can leave at once.
* Connect: GET account (keys checked), the stream, a reconciliation (our open orders; open
  orders we did not place are adopted), then Alpaca's positions become the local books.
* Credentials are read at ``connect`` and never appear in a repr, a log line or an exception;
  the websocket library's frame logging (the first frames carry the keys) is filtered out.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import json
import logging
import math
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed as AlpacaDataFeedEnum
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.live.stock import StockDataStream
from alpaca.data.requests import StockBarsRequest, StockQuotesRequest, StockTradesRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide as AlpacaSide
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.enums import TimeInForce as AlpacaTif
from alpaca.trading.models import Asset as AlpacaAsset
from alpaca.trading.models import Order as AlpacaOrder
from alpaca.trading.models import Position as AlpacaPosition
from alpaca.trading.models import TradeAccount, TradeUpdate
from alpaca.trading.requests import (
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    StopLimitOrderRequest,
    StopOrderRequest,
)
from alpaca.trading.stream import TradingStream
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from ..clock import Clock
from ..enums import Liquidity, OrderStatus, OrderType, RejectReason, Side, TimeInForce
from ..errors import (
    AuthError,
    BrokerError,
    BrokerTimeout,
    ConfigError,
    Disconnected,
    OrderRejected,
    PermanentBrokerError,
    RateLimited,
    TransientBrokerError,
)
from ..fees import FeeModel
from ..model import (
    Account,
    Bar,
    Fill,
    Instrument,
    MarketStatus,
    Order,
    Position,
    Quote,
    TickRule,
    Trade,
)
from ..reconcile import ReconciliationReport, position_mismatches
from ..risk import KillSwitch, RiskLimits, RiskManager
from ..rules import OrderRules
from ..throttle import RateLimiter
from ..timeutil import NS_PER_S, from_ns, parse_iso_ns, to_ns
from .base import Broker, Capabilities, DataFeed

if TYPE_CHECKING:
    import pandas as pd

    from ..calendar import MarketCalendar

log = logging.getLogger("tradekit.brokers.alpaca")

#: requests is a dependency of alpaca-py; loaded by name (its type stubs are not required)
_requests: Any = importlib.import_module("requests")


class _NoFrames(logging.Filter):
    """Drops the websocket library's DEBUG records of frames and handshake headers (``> ...``,
    ``< ...``): the first frames of both streams carry the API keys."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG and isinstance(record.msg, str):
            return not record.msg.startswith(("> ", "< "))
        return True


#: the logger of both streams' websocket connections (never shows a frame)
_WS_LOG = logging.getLogger("tradekit.brokers.alpaca.websocket")
_WS_LOG.addFilter(_NoFrames())

T = TypeVar("T")

ENV_KEY = "APCA_API_KEY_ID"
ENV_SECRET = "APCA_API_SECRET_KEY"
ENV_BASE_URL = "APCA_API_BASE_URL"
PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"
DATA_URL = "https://data.alpaca.markets"
DATA_STREAM_URL = "wss://stream.data.alpaca.markets"
#: Alpaca's data feeds this adapter accepts (alpaca-py's stock stream takes only these two)
DATA_FEEDS = ("iex", "sip")
#: trading-status codes (CTA/UTP) that mean trading is halted: halt, volatility pause, quotation
#: resumption (quoting again, trading not yet)
HALT_CODES = frozenset({"H", "P", "Q"})
_ET = ZoneInfo("America/New_York")
_EPS = 1e-9
_MAX_CID = 48  # keep client order ids within what every Alpaca client library accepts

_OPEN_STATES = frozenset(
    {
        "new",
        "accepted",
        "pending_new",
        "partially_filled",
        "accepted_for_bidding",
        "held",
        "calculated",
        "stopped",
        "pending_cancel",
        "pending_replace",
        "pending_review",
        "suspended",
    }
)
_TYPES = {
    "market": OrderType.MARKET,
    "limit": OrderType.LIMIT,
    "stop": OrderType.STOP,
    "stop_limit": OrderType.STOP_LIMIT,
}


# ------------------------------------------------------------------------------------ credentials


class CredentialsMissing(AuthError, ConfigError):
    """Alpaca API keys are not set. Both an ``AuthError`` (the broker cannot log in) and a
    ``ConfigError`` (the command exits 2 and says which environment variables to set)."""

    def __init__(self, message: str) -> None:
        ConfigError.__init__(self, message)


def missing_credentials(
    api_key: str | None = None, secret_key: str | None = None, env: Mapping[str, str] | None = None
) -> list[str]:
    """The names of the environment variables still needed for the given keys (empty: none)."""
    env = os.environ if env is None else env
    missing = []
    if not (api_key or env.get(ENV_KEY)):
        missing.append(ENV_KEY)
    if not (secret_key or env.get(ENV_SECRET)):
        missing.append(ENV_SECRET)
    return missing


def _credentials(api_key: str | None, secret_key: str | None, who: str) -> tuple[str, str]:
    missing = missing_credentials(api_key, secret_key)
    if missing:
        raise CredentialsMissing(
            f"{who} needs Alpaca API keys: set the environment variable"
            f"{'s' if len(missing) > 1 else ''} {' and '.join(missing)} "
            f"(or api_key/secret_key in the venue's config); paper keys are at "
            f"https://app.alpaca.markets/paper/dashboard/overview"
        )
    return (api_key or os.environ[ENV_KEY], secret_key or os.environ[ENV_SECRET])


class _Secret:
    """A credential that never shows in a repr, a log line or an exception."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value

    def get(self) -> str | None:
        return self._value

    def __repr__(self) -> str:
        return "'***'" if self._value else "None"

    __str__ = __repr__


# ----------------------------------------------------------------------------------------- URLs


def _clean_base(url: str) -> str:
    """A trading or data base URL without a trailing slash or ``/v2`` (alpaca-py adds it)."""
    url = url.strip().rstrip("/")
    if url.endswith("/v2"):
        url = url[:-3]
    return url


def stream_url_for(base_url: str) -> str:
    """The trade-updates stream of a trading base URL: same host, ws(s) scheme, path ``/stream``."""
    parts = urlsplit(_clean_base(base_url))
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "/stream", "", ""))


def _ws_url(url: str) -> str:
    parts = urlsplit(url.strip())
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))


# ---------------------------------------------------------------------------------------- errors


class AlpacaError(PermanentBrokerError):
    """An error answer of Alpaca's API that retrying will not fix.

    ``status`` (HTTP), ``code`` (Alpaca's code, e.g. 40310000), ``message`` (Alpaca's text),
    ``reason`` (what it means for an order), ``not_found`` (404), ``not_open`` (the order is
    already done), ``duplicate_id`` (the client order id was used before), ``retry_later`` (the
    order is in a transitional state such as pending_new)."""

    def __init__(
        self,
        status: int | None,
        code: int | None,
        message: str,
        *,
        what: str = "",
        reason: RejectReason = RejectReason.BROKER,
        not_found: bool = False,
        not_open: bool = False,
        duplicate_id: bool = False,
        retry_later: bool = False,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.reason = reason
        self.not_found = not_found
        self.not_open = not_open
        self.duplicate_id = duplicate_id
        self.retry_later = retry_later
        where = f"{what}: " if what else ""
        code_s = f" code {code}" if code is not None else ""
        super().__init__(f"{where}Alpaca answered HTTP {status}{code_s}: {message}")


class OutcomeUnknown(TransientBrokerError):
    """A request that may have taken effect at Alpaca (5xx, timeout, connection lost) and could
    not be confirmed either way."""


class AlpacaServerError(TransientBrokerError):
    """Alpaca answered 5xx (retried with backoff)."""

    def __init__(self, status: int | None, message: str) -> None:
        self.status = status
        super().__init__(message)


def _retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait from a 429's ``Retry-After`` (seconds or an HTTP date) or
    ``X-RateLimit-Reset`` (unix seconds) headers; None when neither is usable."""
    if not headers:
        return None
    h = {str(k).lower(): str(v) for k, v in headers.items()}
    now = time.time() if now is None else now
    ra = h.get("retry-after")
    if ra:
        try:
            return max(0.0, float(ra))
        except ValueError:
            from email.utils import parsedate_to_datetime

            with contextlib.suppress(TypeError, ValueError):
                return max(0.0, parsedate_to_datetime(ra).timestamp() - now)
    reset = h.get("x-ratelimit-reset")
    if reset:
        with contextlib.suppress(ValueError):
            return max(0.0, float(reset) - now)
    return None


def classify_error(
    status: int | None,
    body: str,
    headers: Mapping[str, str] | None = None,
    *,
    what: str = "",
) -> BrokerError:
    """The tradekit error for an HTTP error answer of Alpaca (``status``, raw ``body``, response
    ``headers``). Alpaca reuses 40310000 and 42210000 for many causes, so the message decides:

    ====  =========================================  ==========================================
    HTTP  body                                       result
    ====  =========================================  ==========================================
    401   any                                        ``AuthError``
    403   "potential wash trade detected"            ``AlpacaError`` reason WASH_TRADE
    403   "insufficient buying power"                ... INSUFFICIENT_BUYING_POWER
    403   "insufficient qty available for order"     ... INSUFFICIENT_QTY
    403   "... cannot be sold short" / "shorting"    ... SHORTING
    403   other 4031xxxx code                        ... BROKER
    403   no code / "forbidden"                      ``AuthError``
    404   any                                        ``AlpacaError`` not_found
    422   "sub-penny" / "minimum pricing criteria"   ... TICK_SIZE
    422   'order is already in "filled" state'       ... not_open (NOT_OPEN)
    422   "client_order_id must be unique"           ... duplicate_id (DUPLICATE_ID)
    429   any (JSON or not)                          ``RateLimited`` (retry_after from headers)
    5xx   any                                        ``AlpacaServerError`` (transient)
    ====  =========================================  ==========================================
    """
    code: int | None = None
    message = body.strip()
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        raw_code = doc.get("code")
        if isinstance(raw_code, int | str) and str(raw_code).isdigit():
            code = int(raw_code)
        if isinstance(doc.get("message"), str):
            message = doc["message"]
    message = message[:500] or f"HTTP {status}"
    low = message.lower()
    where = f"{what}: " if what else ""
    if status == 429:
        return RateLimited(
            f"{where}Alpaca rate limit reached (HTTP 429: {message})",
            retry_after=_retry_after(headers),
        )
    if status is not None and status >= 500:
        return AlpacaServerError(status, f"{where}Alpaca server error HTTP {status}: {message}")
    if status == 401:
        return AuthError(
            f"{where}Alpaca refused the API keys (HTTP 401: {message}); check {ENV_KEY} and "
            f"{ENV_SECRET}, and that paper keys go to the paper endpoint"
        )

    def err(reason: RejectReason = RejectReason.BROKER, **kw: bool) -> AlpacaError:
        return AlpacaError(status, code, message, what=what, reason=reason, **kw)

    if "wash trade" in low:
        return err(RejectReason.WASH_TRADE)
    if "buying power" in low:
        return err(RejectReason.INSUFFICIENT_BUYING_POWER)
    if "insufficient qty" in low or "qty available" in low:
        return err(RejectReason.INSUFFICIENT_QTY)
    if "sub-penny" in low or "minimum pricing criteria" in low:
        return err(RejectReason.TICK_SIZE)
    if status == 403:
        if "sold short" in low or "not shortable" in low or "short sell" in low:
            return err(RejectReason.SHORTING)
        if code is None or "forbidden" in low:
            return AuthError(
                f"{where}Alpaca refused access (HTTP 403: {message}); check that the keys "
                f"({ENV_KEY}/{ENV_SECRET}) belong to this endpoint and may trade"
            )
        return err(RejectReason.BROKER)
    if status == 404:
        return err(RejectReason.NOT_OPEN, not_found=True)
    if "client_order_id" in low and ("unique" in low or "duplicate" in low):
        return err(RejectReason.DUPLICATE_ID, duplicate_id=True)
    m = re.search(r"in\W+(\w+)\W+state", low)
    if status == 422 and m and "already" in low:
        return err(RejectReason.NOT_OPEN, not_open=True)
    if status == 422 and m and m.group(1) in ("pending_new", "accepted", "pending_replace"):
        return err(RejectReason.NOT_OPEN, retry_later=True)
    if status == 400:
        return err(RejectReason.INVALID)
    return err(RejectReason.BROKER)


def _from_api_error(e: APIError, what: str) -> BrokerError:
    resp = getattr(e, "response", None)
    status = getattr(resp, "status_code", None)
    headers = dict(getattr(resp, "headers", None) or {})
    body = str(getattr(resp, "text", None) or e)
    return classify_error(status, body, headers, what=what)


# ------------------------------------------------------------------------------ request policy


class MonotonicRateLimiter(RateLimiter):
    """The account's request budget kept on a monotonic wall clock. The budget is about real
    requests to Alpaca's servers, so it keeps real time even when the broker's clock is simulated
    (the ``now_ns`` that ``Broker`` passes is ignored). Requests are counted over ``per_seconds``
    plus ``slack_s`` (default: a sixtieth of it, at least 50 ms), which absorbs the time between
    taking a request from the budget and its arrival at Alpaca. Remembers whether the last cancel
    got a request (``last_cancel_ok``)."""

    def __init__(
        self,
        limit: int,
        per_seconds: float = 60.0,
        reserve_for_cancels: float = 0.1,
        *,
        slack_s: float | None = None,
        now: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if slack_s is None:  # 1 s on Alpaca's minute, 50 ms at least
            slack_s = max(0.05, per_seconds / 60.0)
        super().__init__(limit, per_seconds + slack_s, reserve_for_cancels)
        self.per_seconds = per_seconds
        self._now = now
        self.last_cancel_ok = True

    def used(self, now_ns: int) -> int:
        return super().used(self._now())

    def available(self, now_ns: int, *, cancel: bool = False) -> int:
        return super().available(self._now(), cancel=cancel)

    def try_acquire(self, now_ns: int, *, cancel: bool = False) -> bool:
        ok = super().try_acquire(self._now(), cancel=cancel)
        if cancel:
            self.last_cancel_ok = ok
        return ok

    def wait_ns(self, now_ns: int, *, cancel: bool = False) -> int:
        return super().wait_ns(self._now(), cancel=cancel)


class _TimeoutSession(_requests.Session):
    """A requests session with a default timeout (alpaca-py sets none)."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, *args, **kwargs)


def _quiet_client(client: Any, timeout: float) -> None:
    """tradekit owns the retry policy: alpaca-py's (sleep 3 s on 429/504, 3 times) is off; every
    request gets a timeout."""
    client._retry = 0
    client._retry_codes = []
    old = client._session
    client._session = _TimeoutSession(timeout)
    with contextlib.suppress(Exception):
        old.close()


class _RestPolicy:
    """How one account's REST calls are made: a shared request budget (``throttle``), a shared
    pause after a 429, a timeout, and retries with backoff for transient failures."""

    def __init__(
        self,
        throttle: RateLimiter | None,
        *,
        timeout: float,
        max_attempts: int,
        backoff: tuple[float, float],
        label: str,
    ) -> None:
        self.throttle = throttle
        self.timeout = timeout
        self.max_attempts = max(1, int(max_attempts))
        #: a 429 means "not now", never "unknown": it gets its own, larger allowance
        self.max_rate_limited = 12
        self.backoff = backoff
        self.label = label
        self.pause_until = 0.0  # time.monotonic() before which no request leaves (429)
        #: requests in flight at once (below requests' connection pool of 10): a request takes
        #: from the budget only when a worker is free to send it at once
        self.workers = 8
        self._executor: ThreadPoolExecutor | None = None
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self.calls = 0
        self.rate_limited = 0
        self.retries = 0
        self.budget_waits = 0

    def stop(self, rs: RetryCallState) -> bool:
        """tenacity's stop: ``max_attempts`` attempts that failed otherwise than with a 429;
        429s have their own allowance (``max_attempts + max_rate_limited`` in all) and do not
        use up the others'."""
        exc = rs.outcome.exception() if rs.outcome is not None else None
        limited = getattr(rs, "tk_rate_limited", 0) + isinstance(exc, RateLimited)
        setattr(rs, "tk_rate_limited", limited)  # noqa: B010 (tenacity's state has no slot)
        if isinstance(exc, RateLimited):
            return limited >= self.max_attempts + self.max_rate_limited
        return rs.attempt_number - limited >= self.max_attempts

    def wait_for(self, rs: RetryCallState) -> float:
        """tenacity's wait: a 429 waits through the shared pause; others back off
        exponentially with jitter."""
        exc = rs.outcome.exception() if rs.outcome is not None else None
        self.retries += 1
        if isinstance(exc, RateLimited):
            return 0.0
        lo, hi = self.backoff
        cap = min(hi, lo * 2 ** max(0, rs.attempt_number - 1))
        return cap * (0.5 + random.random() / 2)

    async def take_budget(self, *, cancel: bool = False) -> None:
        """Wait until the budget has a request for us and take it."""
        th = self.throttle
        if th is None:
            return
        waited = False
        while not th.try_acquire(0, cancel=cancel):
            waited = True
            await asyncio.sleep(max(0.005, th.wait_ns(0, cancel=cancel) / NS_PER_S))
        if waited:
            self.budget_waits += 1

    async def once(self, what: str, fn: Callable[[], T]) -> T:
        """One attempt: wait out a 429 pause, run ``fn`` in a worker thread, type its errors."""
        delay = self.pause_until - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self.calls += 1
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="tk-alpaca")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        except APIError as e:
            err = _from_api_error(e, what)
            if isinstance(err, RateLimited):
                self.rate_limited += 1
                wait = err.retry_after if err.retry_after is not None else 1.0
                wait = min(wait, 60.0)
                self.pause_until = max(self.pause_until, time.monotonic() + wait)
                log.warning("%s: %s; every request waits %.2f s", self.label, err, wait)
            raise err from e
        except _requests.Timeout as e:
            raise BrokerTimeout(
                f"{what}: no answer from Alpaca in {self.timeout:g} s (outcome unknown)"
            ) from e
        except _requests.ConnectionError as e:
            raise Disconnected(f"{what}: cannot reach Alpaca ({type(e).__name__})") from e

    def close(self) -> None:
        """Let the worker threads go (a later call starts new ones)."""
        ex, self._executor = self._executor, None
        if ex is not None:
            ex.shutdown(wait=False, cancel_futures=True)

    async def call(
        self,
        what: str,
        fn: Callable[[], T],
        *,
        prepaid: bool = False,
        cancel: bool = False,
        attempts: int | None = None,
    ) -> T:
        """``fn`` with the policy: budget, 429 pause, retries of transient failures.
        ``prepaid``: the first attempt's request was already taken from the budget."""
        paid = prepaid
        slots = self._slot_semaphore()
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(attempts) if attempts else self.stop,
            wait=self.wait_for,
            retry=retry_if_exception_type(TransientBrokerError),
            reraise=True,
        ):
            with attempt:
                async with slots:
                    if not paid:
                        await self.take_budget(cancel=cancel)
                    paid = False
                    return await self.once(what, fn)
        raise AssertionError("unreachable")  # pragma: no cover

    def _slot_semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self.workers))
        return self._slots[1]


# -------------------------------------------------------------------------------------- helpers


M = TypeVar("M")


def _model(value: Any, cls: type[M]) -> M:
    """An alpaca-py model from an answer (a model already, or its JSON object)."""
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        return cls(**value)
    raise BrokerError(f"unexpected answer from Alpaca: {type(value).__name__} for {cls.__name__}")


def _models(values: Any, cls: type[M]) -> list[M]:
    if not isinstance(values, list):
        raise BrokerError(f"unexpected answer from Alpaca: {type(values).__name__}, not a list")
    return [_model(v, cls) for v in values]


def _f(value: Any) -> float | None:
    if value is None or value == "":
        return None
    return float(value)


def _val(x: Any) -> str:
    """The string value of an alpaca-py enum member (or of a plain string)."""
    return str(getattr(x, "value", x))


def _dt_ns(value: Any, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return to_ns(value)
    if isinstance(value, str):
        return parse_iso_ns(value)
    return default


def _fmt_qty(q: float) -> str:
    return f"{q:.9f}".rstrip("0").rstrip(".")


def _alias(cid: str, n: int) -> str:
    """The client order id of the ``n``-th replacement of our order ``cid``."""
    alias = f"{cid}-r{n}"
    if len(alias) <= _MAX_CID:
        return alias
    return f"tkr{n}-{hashlib.sha1(cid.encode()).hexdigest()[:24]}"


_ALIAS_RE = re.compile(r"^(?P<cid>.+)-r\d+$")
#: Alpaca order states after which its fills do not change
_FINAL_STATES = frozenset({"filled", "canceled", "expired", "replaced", "rejected"})


def _numbers_problem(*fields: tuple[str, Any]) -> str | None:
    """What is wrong with numeric fields of a message (None: nothing): each must be empty or a
    finite number >= 0."""
    for name, value in fields:
        if value is None or value == "":
            continue
        try:
            v = float(value)
        except (TypeError, ValueError):
            return f"{name} {str(value)[:20]!r} is not a number"
        if not math.isfinite(v) or v < 0:
            return f"{name} {v!r} is not a finite number >= 0"
    return None


def _snapshot_problem(ao: AlpacaOrder) -> str | None:
    """What is wrong with an Alpaca order snapshot (None: nothing)."""
    problem = _numbers_problem(
        ("qty", ao.qty),
        ("filled_qty", ao.filled_qty),
        ("filled_avg_price", ao.filled_avg_price),
        ("limit_price", ao.limit_price),
        ("stop_price", ao.stop_price),
    )
    if problem:
        return problem
    qty, cum = _f(ao.qty), _f(ao.filled_qty)
    if qty is not None and cum is not None and cum > qty + 1e-9:
        return f"filled_qty {cum:g} exceeds qty {qty:g}"
    return None


def _tick_rule(price_increment: float | None) -> TickRule:
    """Alpaca's ``price_increment`` as a tick rule: the increment at and above $1 (half a cent
    allowed), Rule 612's $0.0001 below; Rule 612 when the asset gives none."""
    if price_increment is None or not price_increment > 0:
        return TickRule.rule_612()
    pi = float(price_increment)
    return TickRule.rule_612(pi if pi >= 0.005 - 1e-12 else 0.01)


def instrument_from_asset(asset: AlpacaAsset) -> Instrument:
    """An ``Instrument`` from an Alpaca asset: tradable (and active), shortable, easy to borrow,
    fractionable (then the lot and minimum from ``min_trade_increment``/``min_order_size``), tick
    rule from ``price_increment``."""
    fractionable = bool(asset.fractionable)
    lot, min_qty = 1.0, 1.0
    if fractionable:
        inc = _f(asset.min_trade_increment)
        lot = inc if inc and inc > 0 else 1e-9
        mo = _f(asset.min_order_size)
        min_qty = mo if mo is not None and mo > 0 else lot
    status = _val(asset.status).lower()
    return Instrument(
        asset.symbol,
        currency="USD",
        tick_size=_tick_rule(_f(asset.price_increment)),
        lot_size=lot,
        min_qty=min_qty,
        fractionable=fractionable,
        shortable=bool(asset.shortable),
        easy_to_borrow=bool(asset.easy_to_borrow),
        tradable=bool(asset.tradable) and status == "active",
    )


# ------------------------------------------------------------------------------ trading stream


#: trade-update events this adapter knows (others are skipped with a warning)
_KNOWN_EVENTS = frozenset(
    {
        "new",
        "accepted",
        "pending_new",
        "partial_fill",
        "fill",
        "canceled",
        "expired",
        "done_for_day",
        "replaced",
        "rejected",
        "pending_cancel",
        "pending_replace",
        "calculated",
        "held",
        "stopped",
        "suspended",
        "accepted_for_bidding",
        "order_cancel_rejected",
        "order_replace_rejected",
        "restated",
    }
)


class _CheckedSocket:
    """The trade stream's websocket: frames that are not a JSON object are skipped with a warning
    (alpaca-py would log a traceback and go on), everything else is the socket's own."""

    def __init__(self, ws: Any, on_bad: Callable[[str], None]) -> None:
        self._ws = ws
        self._on_bad = on_bad

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ws, name)

    async def recv(self) -> Any:
        while True:
            raw = await self._ws.recv()
            try:
                msg = json.loads(raw)
            except ValueError:
                self._on_bad(f"not JSON: {str(raw)[:80]!r}")
                continue
            if isinstance(msg, dict):
                return raw
            self._on_bad(f"not a JSON object: {str(raw)[:80]!r}")


class _TradeStream(TradingStream):
    """alpaca-py's ``TradingStream`` that tells the broker when it is up and when it drops, and
    skips malformed messages (not JSON, not an object, an unknown stream, a trade update that
    does not parse) with a warning instead of handing them on."""

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        *,
        url: str,
        on_up: Callable[[], None],
        on_down: Callable[[], None],
        backoff: tuple[float, float],
        on_frame: Callable[[], None] = lambda: None,
        on_bad: Callable[[str], None] = lambda why: None,
    ) -> None:
        super().__init__(
            api_key,
            secret_key,
            url_override=url,
            websocket_params={
                "ping_interval": 10,
                "ping_timeout": 30,
                "max_queue": 1024,
                "logger": _WS_LOG,
            },
        )
        self._tk_up = on_up
        self._tk_down = on_down
        self._tk_frame = on_frame
        self._tk_bad = on_bad
        self._reconnect_min_backoff, self._reconnect_max_backoff = backoff

    def _bad(self, why: str) -> None:
        self._tk_frame()
        self._tk_bad(why)

    async def _connect(self) -> None:
        await super()._connect()
        self._ws = _CheckedSocket(self._ws, self._bad)  # type: ignore[assignment]

    async def _start_ws(self) -> None:
        await super()._start_ws()
        self._tk_up()

    async def _dispatch(self, msg: dict[str, Any]) -> None:
        stream = msg.get("stream")
        if stream in ("listening", "authorization"):
            return
        self._tk_frame()
        if stream != "trade_updates":
            self._tk_bad(f"unknown stream {str(stream)[:40]!r}")
            return
        data = msg.get("data")
        try:
            if not isinstance(data, dict):
                raise TypeError(f"data is {type(data).__name__}")
            tu = TradeUpdate(**data)
        except Exception as e:
            self._tk_bad(f"trade update that does not parse ({type(e).__name__}: {str(e)[:200]})")
            return
        if self._trade_updates_handler:
            await self._trade_updates_handler(tu)

    async def close(self) -> None:
        was_up = bool(self._running)
        try:
            await super().close()
        finally:
            if was_up:
                self._tk_down()


# --------------------------------------------------------------------------------------- broker


class AlpacaBroker(Broker):
    """An Alpaca account (paper by default). See the module docstring for how it works.

    ``api_key``/``secret_key`` default to ``APCA_API_KEY_ID``/``APCA_API_SECRET_KEY`` (read at
    ``connect``); ``base_url`` to ``APCA_API_BASE_URL``, then the paper endpoint (the live one with
    ``paper=False``); ``trading_stream_url`` to ``base_url`` with a ws(s) scheme and path
    ``/stream``.

    Further keywords: ``clock``, ``calendar``, ``rules``, ``id_prefix``, ``fees`` (a ``FeeModel``
    or name for the fee of each fill; Alpaca's: SEC fee and TAF on sells), ``stream`` (False:
    REST polling only), ``poll_interval`` (seconds between polls while the stream is down),
    ``request_timeout``, ``max_attempts`` and ``backoff`` (min, max seconds) for retries,
    ``stream_backoff`` (min, max seconds between stream reconnects), ``stream_connect_timeout``,
    ``rate_limit`` ((requests, per seconds); default 200 a minute), ``auto_instruments`` (load a
    symbol's asset from Alpaca the first time a quote of it arrives).
    """

    name = "alpaca"
    rules_profile = "alpaca"
    requests_per_minute = 200
    capabilities = Capabilities(
        replace_in_place=True, fractional=True, extended_hours=True, shorting=True, depth=False
    )

    #: the keys ``from_venue_config`` accepts (data keys go to the feed)
    VENUE_KEYS: ClassVar[tuple[str, ...]] = (
        "paper",
        "base_url",
        "trading_stream_url",
        "api_key",
        "secret_key",
    )
    FEED_KEYS: ClassVar[tuple[str, ...]] = ("data_feed", "data_url", "data_stream_url")

    def __init__(
        self,
        api_key: str | None = None,
        secret_key: str | None = None,
        *,
        paper: bool = True,
        base_url: str | None = None,
        trading_stream_url: str | None = None,
        risk: RiskLimits | Mapping[str, Any] | RiskManager | None = None,
        venue: str | None = None,
        kill_switch: KillSwitch | None = None,
        clock: Clock | Any = None,
        calendar: MarketCalendar | str | None = None,
        rules: OrderRules | str | None = None,
        id_prefix: str | None = None,
        fees: FeeModel | str | Mapping[str, Any] | None = None,
        stream: bool = True,
        poll_interval: float = 2.0,
        request_timeout: float = 10.0,
        max_attempts: int = 4,
        backoff: tuple[float, float] = (0.25, 8.0),
        stream_backoff: tuple[float, float] = (1.0, 30.0),
        stream_connect_timeout: float = 10.0,
        rate_limit: tuple[int, float] | None = None,
        auto_instruments: bool = True,
    ) -> None:
        super().__init__(
            venue=venue,
            rules=rules,
            risk=risk,
            clock=clock,
            calendar=calendar,
            kill_switch=kill_switch,
            id_prefix=id_prefix,
        )
        self._key = _Secret(api_key)
        self._secret = _Secret(secret_key)
        self.paper = bool(paper)
        base = base_url or os.environ.get(ENV_BASE_URL) or (PAPER_URL if paper else LIVE_URL)
        self.base_url = _clean_base(base)
        self.trading_stream_url = (
            _ws_url(trading_stream_url) if trading_stream_url else stream_url_for(self.base_url)
        )
        self.fees: FeeModel = FeeModel.from_config(fees) or FeeModel.for_broker("alpaca")
        self.use_stream = bool(stream)
        self.poll_interval = float(poll_interval)
        self.stream_backoff = stream_backoff
        self.stream_connect_timeout = float(stream_connect_timeout)
        self.auto_instruments = bool(auto_instruments)
        limit, per = rate_limit or (self.requests_per_minute or 200, 60.0)
        self.throttle = MonotonicRateLimiter(int(limit), float(per))
        self.rest = _RestPolicy(
            self.throttle,
            timeout=float(request_timeout),
            max_attempts=max_attempts,
            backoff=backoff,
            label=f"{self.venue} (alpaca)",
        )
        self._client: TradingClient | None = None
        self._stream: _TradeStream | None = None
        self._stream_task: asyncio.Task[None] | None = None
        self._stream_up = False
        self._stream_event: asyncio.Event | None = None
        self._poller: asyncio.Task[None] | None = None
        self._running = False
        self._reconcile_lock: asyncio.Lock | None = None
        # per order (our client order id): the task chain, Alpaca order ids, replace aliases
        self._ops: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._bg: set[asyncio.Task[Any]] = set()
        self._connecting = False
        self._vids: dict[str, list[str]] = {}
        self._alias: dict[str, str] = {}  # Alpaca client order id -> ours
        self._restored_unsent: set[str] = set()  # restored from a journal without an id
        self._venue_cid: dict[str, str] = {}  # ours -> the Alpaca client order id of its newest
        self._n_replace: dict[str, int] = {}
        self._replacements: set[str] = set()  # Alpaca ids of replacements already applied
        self._cum: dict[str, tuple[float, float]] = {}  # Alpaca id -> (filled qty, its value)
        self._taker: dict[str, bool] = {}
        self._dirty: set[str] = set()
        self._instruments_asked: set[str] = set()
        self._venue_qty: dict[str, float] = {}  # Alpaca id -> its qty (replacements)
        self._patch_qty: dict[str, float] = {}  # our id -> the qty its replace in flight asked
        self._final: set[str] = set()  # Alpaca ids whose final state was applied
        self._misses: dict[str, int] = {}  # our id -> reconciliations that could not find it
        self._unknown: dict[str, int] = {}  # LOST by an unknown submit outcome -> look-ups
        self._seeded = False
        #: reconciliations that cannot find one of our open orders at Alpaca (by its client order
        #: id) before it is marked LOST
        self.lost_after_lookups = 3
        #: when (seconds after each other) an order LOST by an unknown submit outcome is looked
        #: up again besides reconciliations
        self.lost_recheck_s: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0)
        #: counters (for tests and monitoring)
        self.events_received = 0
        #: frames of the trade stream's current connection (trade updates and skipped ones)
        self.stream_frames = 0
        #: malformed trade-stream messages skipped (with a warning)
        self.stream_skipped = 0
        self.reconciliations = 0
        self.resubmits = 0
        self.lookups = 0
        self.stream_connects = 0

    def __repr__(self) -> str:
        return f"AlpacaBroker(venue={self.venue!r}, paper={self.paper}, base_url={self.base_url!r})"

    # ---- config -------------------------------------------------------------------------------
    @classmethod
    def from_venue_config(
        cls,
        name: str,
        options: Mapping[str, Any],
        *,
        risk: Any = None,
        kill_switch: KillSwitch | None = None,
    ) -> AlpacaBroker:
        """The broker of a ``[venues.NAME]`` table: ``paper``, ``base_url``,
        ``trading_stream_url``, ``api_key``, ``secret_key`` (the data keys ``data_feed``,
        ``data_url``, ``data_stream_url`` belong to the feed)."""
        unknown = sorted(set(options) - set(cls.VENUE_KEYS) - set(cls.FEED_KEYS))
        if unknown:
            raise ConfigError(
                f"unknown key(s) {', '.join(unknown)} for an alpaca venue; allowed: "
                f"{', '.join((*cls.VENUE_KEYS, *cls.FEED_KEYS))}",
                key=f"venues.{name}",
            )
        return cls(
            options.get("api_key"),
            options.get("secret_key"),
            paper=bool(options.get("paper", True)),
            base_url=options.get("base_url"),
            trading_stream_url=options.get("trading_stream_url"),
            risk=risk,
            venue=name,
            kill_switch=kill_switch,
        )

    @classmethod
    def feed_from_venue_config(cls, name: str, options: Mapping[str, Any]) -> AlpacaDataFeed:
        """The Alpaca data feed of a ``[venues.NAME]`` table (``data_feed``, ``data_url``,
        ``data_stream_url``, ``api_key``, ``secret_key``)."""
        return AlpacaDataFeed(
            options.get("api_key"),
            options.get("secret_key"),
            feed=str(options.get("data_feed", "iex")),
            data_url=options.get("data_url"),
            data_stream_url=options.get("data_stream_url"),
            venue=name,
        )

    # ---- life ---------------------------------------------------------------------------------
    @property
    def stream_up(self) -> bool:
        """Whether the trade-updates stream is connected now."""
        return self._stream_up

    @property
    def busy(self) -> bool:
        """Whether requests of this broker are under way."""
        return bool(self._tasks)

    async def _connect(self) -> None:
        key, secret = _credentials(self._key.get(), self._secret.get(), "AlpacaBroker")
        client = TradingClient(key, secret, paper=self.paper, url_override=self.base_url)
        _quiet_client(client, self.rest.timeout)
        self._client = client
        self._reconcile_lock = asyncio.Lock()
        self._running = True
        self._connecting = True
        try:
            acct = await self._account_model()
            if acct.shorting_enabled is not None:
                self.shorting = bool(acct.shorting_enabled) and self.capabilities.shorting
            if acct.trading_blocked or acct.account_blocked:
                log.warning("%s: the Alpaca account is blocked from trading", self.venue)
            if self.use_stream:
                await self._start_stream(key, secret)
            else:
                self._ensure_poller()
            # first: fills we missed reach the books; then Alpaca's positions seed them
            if await self._reconcile("connect") is None:
                raise BrokerError(f"{self.venue}: reconciliation with Alpaca failed at connect")
        except BaseException:
            await self._close()
            raise
        finally:
            self._connecting = False
        if not self.use_stream or self._stream_up:
            self._venue_up("connected")
        else:
            self._venue_down("trade-updates stream not connected")
        kind = "paper" if "paper" in self.base_url else "LIVE" if self.base_url == LIVE_URL else ""
        log.info("%s: connected to Alpaca %s (%s)", self.venue, kind or "at", self.base_url)

    async def _start_stream(self, key: str, secret: str) -> None:
        self._stream_event = asyncio.Event()
        self._stream = _TradeStream(
            key,
            secret,
            url=self.trading_stream_url,
            on_up=self._on_stream_up,
            on_down=self._on_stream_down,
            backoff=self.stream_backoff,
            on_frame=self._on_stream_frame,
            on_bad=self._on_stream_bad,
        )
        self._stream.subscribe_trade_updates(self._on_trade_update)
        self._stream_task = asyncio.get_running_loop().create_task(
            self._stream._run_forever(), name=f"alpaca-trade-stream-{self.venue}"
        )
        try:
            await asyncio.wait_for(self._stream_event.wait(), self.stream_connect_timeout)
        except TimeoutError:
            log.warning(
                "%s: trade-updates stream %s not up after %.0f s; polling REST meanwhile",
                self.venue,
                self.trading_stream_url,
                self.stream_connect_timeout,
            )
            self._ensure_poller()

    async def _close(self) -> None:
        self._running = False
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(BaseException):
                await self._poller
            self._poller = None
        await self.drain(timeout=2.0)
        rest = [*self._tasks, *self._bg]
        for t in rest:
            t.cancel()
        if rest:
            await asyncio.gather(*rest, return_exceptions=True)
        stream, task = self._stream, self._stream_task
        self._stream = self._stream_task = None
        if stream is not None:
            with contextlib.suppress(Exception):
                await stream.stop_ws()
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if stream is not None:
            with contextlib.suppress(Exception):
                await stream.close()
        self._stream_up = False
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client._session.close()
            self._client = None
        self.rest.close()

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait (at most ``timeout`` s) until the requests under way have finished."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self._tasks:
            left = end - loop.time()
            if left <= 0:
                return
            await asyncio.wait(list(self._tasks), timeout=left)

    # ---- stream state -------------------------------------------------------------------------
    def _on_stream_up(self) -> None:
        self._stream_up = True
        self.stream_frames = 0
        self.stream_connects += 1
        if self._stream_event is not None:
            self._stream_event.set()
        log.info("%s: trade-updates stream up (%s)", self.venue, self.trading_stream_url)
        if self._running and not self._connecting:  # (connect reconciles once it is up)
            self._spawn(None, lambda: self._resync("stream reconnected"), "reconcile")

    def _on_stream_down(self) -> None:
        if not self._stream_up:
            return
        self._stream_up = False
        if self._running:
            log.warning("%s: trade-updates stream down; polling REST until it is back", self.venue)
            self._venue_down("trade-updates stream lost")
            self._ensure_poller()

    def _on_stream_frame(self) -> None:
        self.stream_frames += 1

    def _on_stream_bad(self, why: str) -> None:
        self.stream_skipped += 1
        log.warning("%s: malformed trade-stream message skipped: %s", self.venue, why)

    async def _resync(self, why: str) -> None:
        """After the stream came back: reconcile (again and again while Alpaca fails), then tell
        the listeners that trading may resume."""
        delay = 0.05
        while self._running and self._stream_up:
            if await self._reconcile(why) is not None:
                if self._stream_up:
                    self._venue_up(why)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(
                self._poll(), name=f"alpaca-poll-{self.venue}"
            )

    async def _poll(self) -> None:
        while self._running and not self._stream_up:
            await asyncio.sleep(self.poll_interval)
            if not self._running or self._stream_up:
                break
            try:
                await self._reconcile("polling while the stream is down", wait=False, quiet=True)
            except Exception:
                log.exception("%s: polling failed", self.venue)

    # ---- tasks --------------------------------------------------------------------------------
    def _spawn(self, key: str | None, make: Callable[[], Awaitable[Any]], what: str) -> None:
        """Run ``make()`` as a task; tasks with the same ``key`` (our client order id) run one
        after the other, in the order they were spawned."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "AlpacaBroker sends from asyncio tasks: use it inside a running event loop "
                "(async code after `await broker.connect()`)"
            ) from None
        prev = self._ops.get(key) if key is not None else None

        async def run() -> None:
            if prev is not None and not prev.done():
                await asyncio.wait([prev])
            try:
                await make()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: %s failed", self.venue, what)
            finally:
                if key is not None and key in self._dirty and self._running:
                    self._dirty.discard(key)
                    order = self._om.get(key)
                    if order is not None and order.is_open:
                        self._spawn(key, lambda: self._try_refresh(order), "refresh")

        task = loop.create_task(run(), name=f"alpaca-{what}-{key or ''}")
        self._tasks.add(task)
        if key is not None:
            self._ops[key] = task

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if key is not None and self._ops.get(key) is t:
                del self._ops[key]

        task.add_done_callback(done)

    def _busy(self, cid: str) -> bool:
        return cid in self._ops

    def _need_client(self) -> TradingClient:
        if self._client is None:
            raise Disconnected(f"{self.venue}: not connected to Alpaca (await broker.connect())")
        return self._client

    # ---- orders out ---------------------------------------------------------------------------
    def _is_taker(self, order: Order, limit_price: float | None) -> bool:
        if order.type in (OrderType.MARKET, OrderType.STOP):
            return True
        q = self._quotes.get(order.symbol)
        if q is None or limit_price is None:
            return False
        if order.side is Side.BUY:
            return q.ask > 0 and limit_price >= q.ask - _EPS
        return q.bid > 0 and limit_price <= q.bid + _EPS

    def _send_submit(self, order: Order) -> None:
        cid = order.client_order_id
        self._taker[cid] = self._is_taker(order, order.limit_price)
        self._venue_cid[cid] = cid
        self._spawn(cid, lambda: self._submit(order), "submit")

    def _send_cancel(self, order: Order) -> None:
        paid = bool(getattr(self.throttle, "last_cancel_ok", False))
        self._spawn(order.client_order_id, lambda: self._cancel(order, paid), "cancel")

    def _send_replace(self, order: Order, qty: float, limit_price: float | None) -> None:
        cid = order.client_order_id
        self._spawn(cid, lambda: self._replace(order, qty, limit_price), "replace")

    def order_body(self, order: Order) -> dict[str, Any]:
        """The JSON body of POST /v2/orders for ``order``: validated by alpaca-py's request
        model, with ``qty``, ``limit_price`` and ``stop_price`` as exact strings."""
        sym = order.symbol
        common: dict[str, Any] = {
            "symbol": sym,
            "qty": order.qty,
            "side": AlpacaSide(order.side.value),
            "time_in_force": AlpacaTif(order.tif.value),
            "extended_hours": bool(order.extended_hours),
            "client_order_id": order.client_order_id,
        }
        req: Any
        if order.type is OrderType.MARKET:
            req = MarketOrderRequest(**common)
        elif order.type is OrderType.LIMIT:
            req = LimitOrderRequest(**common, limit_price=order.limit_price)
        elif order.type is OrderType.STOP:
            req = StopOrderRequest(**common, stop_price=order.stop_price)
        else:
            req = StopLimitOrderRequest(
                **common, limit_price=order.limit_price, stop_price=order.stop_price
            )
        body: dict[str, Any] = {
            k: _val(v) if hasattr(v, "value") else v for k, v in req.to_request_fields().items()
        }
        body["qty"] = self.rules.format_qty(sym, order.qty)
        if order.limit_price is not None:
            body["limit_price"] = self.rules.format_price(sym, order.limit_price)
        if order.stop_price is not None:
            body["stop_price"] = self.rules.format_price(sym, order.stop_price)
        return body

    async def _submit(self, order: Order) -> None:
        cid = order.client_order_id
        if order.is_done:
            return
        if order.status is OrderStatus.PENDING_CANCEL:  # cancelled before it left: never send
            self._status(cid, OrderStatus.CANCELED, message="canceled before it was sent")
            return
        try:
            body = self.order_body(order)
        except OrderRejected as e:
            self._status(cid, OrderStatus.REJECTED, reason=e.reason, message=e.message)
            return
        except ValueError as e:  # alpaca-py's request model refused it
            self._status(cid, OrderStatus.REJECTED, reason=RejectReason.INVALID, message=str(e))
            return
        try:
            ao = await self._post_order(cid, body)
        except AlpacaError as e:
            self._status(
                cid,
                OrderStatus.REJECTED,
                reason=e.reason,
                message=f"Alpaca refused the order: {e.message}",
            )
            log.info("%s: order %s rejected by Alpaca: %s", self.venue, cid, e)
            return
        except AuthError as e:
            log.error("%s: %s", self.venue, e)
            self._status(cid, OrderStatus.REJECTED, reason=RejectReason.BROKER, message=str(e))
            return
        except OutcomeUnknown as e:
            log.error("%s: %s; marked lost until Alpaca shows it", self.venue, e)
            self._status(cid, OrderStatus.LOST, message=str(e))
            self._unknown[cid] = 0  # reconciliations look it up too
            self._background(self._recheck_lost(order), f"recheck {cid}")
            return
        except TransientBrokerError as e:  # never taken (429s, or refused before it arrived)
            reason = RejectReason.RATE_LIMIT if isinstance(e, RateLimited) else RejectReason.BROKER
            log.error("%s: order %s not placed: %s", self.venue, cid, e)
            self._status(cid, OrderStatus.REJECTED, reason=reason, message=str(e))
            return
        self._apply_order(ao)

    async def _recheck_lost(self, order: Order) -> None:
        """Look a lost order up again a few times (it may show up at Alpaca late)."""
        for delay in self.lost_recheck_s:
            await asyncio.sleep(delay)
            if order.status is not OrderStatus.LOST or not self._running:
                return
            try:
                await self._refresh(order)
            except BrokerError as e:
                log.warning("%s: lost order %s: %s", self.venue, order.client_order_id, e)

    def _background(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        """A long-running helper task (not waited for by ``drain``; cancelled by ``close``)."""

        async def run() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: %s failed", self.venue, what)

        task = asyncio.get_running_loop().create_task(run(), name=f"alpaca-{what}")
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def _post_order(self, cid: str, body: dict[str, Any]) -> AlpacaOrder:
        """POST /v2/orders with the policy for an order: a request whose outcome is unknown (5xx,
        timeout, connection lost) is looked up by client order id before it is sent again."""
        client = self._need_client()
        unknown = False  # an earlier attempt may have reached Alpaca
        first = True
        try:
            async for attempt in AsyncRetrying(
                stop=self.rest.stop,
                wait=self.rest.wait_for,
                retry=retry_if_exception_type(TransientBrokerError),
                reraise=True,
            ):
                with attempt:
                    if unknown:
                        found = await self._find_by_cid(cid)
                        if found is not None:
                            log.info(
                                "%s: order %s found at Alpaca after an unknown outcome",
                                self.venue,
                                cid,
                            )
                            return found
                        self.resubmits += 1
                        log.warning("%s: order %s not at Alpaca: sending it again", self.venue, cid)
                    prepaid, first = first, False
                    try:
                        resp = await self.rest.call(
                            f"submit {cid}",
                            lambda: client.post("/orders", body),
                            prepaid=prepaid,
                            attempts=1,
                        )
                        return _model(resp, AlpacaOrder)
                    except RateLimited:
                        raise  # refused, not taken: an earlier unknown outcome stays unknown
                    except TransientBrokerError:
                        unknown = True
                        raise
                    except AlpacaError as e:
                        if e.duplicate_id:  # an earlier attempt did reach Alpaca
                            found = await self._find_by_cid(cid)
                            if found is not None:
                                return found
                        raise
        except TransientBrokerError as e:
            if unknown:
                raise OutcomeUnknown(f"submit {cid}: outcome unknown ({e})") from e
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _find_by_cid(self, venue_cid: str) -> AlpacaOrder | None:
        """GET /v2/orders:by_client_order_id (None: Alpaca has no such order)."""
        client = self._need_client()
        self.lookups += 1
        try:
            ao = await self.rest.call(
                f"look up {venue_cid}", lambda: client.get_order_by_client_id(venue_cid)
            )
        except AlpacaError as e:
            if e.not_found:
                return None
            raise
        return _model(ao, AlpacaOrder)

    async def _get_by_id(self, vid: str) -> AlpacaOrder | None:
        client = self._need_client()
        try:
            ao = await self.rest.call(f"get order {vid}", lambda: client.get_order_by_id(vid))
        except AlpacaError as e:
            if e.not_found:
                return None
            raise
        return _model(ao, AlpacaOrder)

    async def _cancel(self, order: Order, paid: bool) -> None:
        cid = order.client_order_id
        if order.is_done:
            return
        client = self._need_client()
        vid = self._current_vid(order)
        if vid is None:
            try:
                found = await self._find_by_cid(self._venue_cid.get(cid, cid))
            except BrokerError as e:
                log.warning("%s: cancel of %s: look-up failed: %s", self.venue, cid, e)
                self._cancel_rejected(cid, message=f"cancel not sent: {e}")
                self._dirty.add(cid)
                return
            if found is None:
                self._cancel_rejected(cid, message="the order is not at Alpaca")
                return
            self._apply_order(found)
            if order.is_done:
                return
            vid = self._current_vid(order)
            if vid is None:  # pragma: no cover - _apply_order registered it
                return
        try:
            await self.rest.call(
                f"cancel {cid}",
                lambda: client.cancel_order_by_id(vid),
                prepaid=paid,
                cancel=True,
            )
        except AlpacaError as e:
            if e.not_found or e.not_open:
                await self._try_refresh(order)
            if order.status is OrderStatus.PENDING_CANCEL:
                self._cancel_rejected(cid, message=f"Alpaca refused the cancel: {e.message}")
            return
        except BrokerError as e:
            log.error("%s: cancel of %s failed: %s", self.venue, cid, e)
            if order.status is OrderStatus.PENDING_CANCEL:
                self._cancel_rejected(cid, message=str(e))
            return
        # 204: a request; the canceled event confirms it (or the poller, stream down)
        if not self._stream_up:
            self._dirty.add(cid)

    async def _replace(self, order: Order, qty: float, limit_price: float | None) -> None:
        cid = order.client_order_id
        if order.is_done or order.status is not OrderStatus.PENDING_REPLACE:
            return
        client = self._need_client()
        old = self._current_vid(order)
        if old is None:
            self._replace_rejected(cid, message="the order is not acknowledged by Alpaca yet")
            return
        remaining = qty - order.filled_qty
        if remaining <= _EPS or abs(remaining - round(remaining)) > 1e-9:
            self._replace_rejected(
                cid,
                message=f"Alpaca replaces whole-share quantities only; {_fmt_qty(remaining)} "
                f"would remain",
            )
            return
        n = self._n_replace.get(cid, 0) + 1
        self._n_replace[cid] = n
        alias = _alias(cid, n)
        self._alias[alias] = cid
        body: dict[str, Any] = {
            "qty": self.rules.format_qty(order.symbol, float(round(remaining))),
            "client_order_id": alias,
        }
        if limit_price is not None and order.type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            try:
                body["limit_price"] = self.rules.format_price(order.symbol, limit_price)
            except OrderRejected as e:
                self._replace_rejected(cid, message=e.message)
                return
        self._taker[cid] = self._is_taker(order, limit_price)
        # what the replacement works: the order's total is the replaced orders' fills plus this
        # (the fills then known may lag Alpaca's)
        self._patch_qty[cid] = float(round(remaining))
        unknown = False
        first = True
        try:
            async for attempt in AsyncRetrying(
                stop=self.rest.stop,
                wait=self.rest.wait_for,
                retry=retry_if_exception_type(TransientBrokerError),
                reraise=True,
            ):
                with attempt:
                    ao: AlpacaOrder | None = None
                    if unknown:
                        ao = await self._find_by_cid(alias)
                    if ao is None:
                        prepaid, first = first, False
                        try:
                            resp = await self.rest.call(
                                f"replace {cid}",
                                lambda: client.patch(f"/orders/{old}", body),
                                prepaid=prepaid,
                                attempts=1,
                            )
                        except RateLimited:
                            raise
                        except TransientBrokerError:
                            unknown = True
                            raise
                        except AlpacaError as e:
                            if e.retry_later:  # still pending_new at Alpaca: try again shortly
                                raise TransientBrokerError(str(e)) from e
                            raise
                        ao = _model(resp, AlpacaOrder)
                    self._on_replacement(order, old, ao)
                    return
        except AlpacaError as e:
            if e.not_found or e.not_open:
                await self._try_refresh(order)
            self._replace_rejected(cid, message=f"Alpaca refused the replace: {e.message}")
            log.info("%s: replace of %s refused by Alpaca: %s", self.venue, cid, e)
        except BrokerError as e:
            log.error("%s: replace of %s failed: %s", self.venue, cid, e)
            self._replace_rejected(cid, message=str(e))
            self._dirty.add(cid)

    # ---- events in ----------------------------------------------------------------------------
    def _order_for(
        self, venue_cid: str | None, vid: str, replaces: str | None = None
    ) -> Order | None:
        """Our order for an Alpaca order (by its client order id, a replace alias, its id or the
        id it replaces)."""
        om = self._om
        if venue_cid:
            order = om.get(self._alias.get(venue_cid, venue_cid))
            if order is not None:
                return order
        order = om.by_broker_id(vid)
        if order is None and replaces:
            order = om.by_broker_id(replaces)
        if order is None and venue_cid:
            m = _ALIAS_RE.match(venue_cid)
            if m:
                order = om.get(m.group("cid"))
        if order is not None and venue_cid and venue_cid != order.client_order_id:
            self._alias[venue_cid] = order.client_order_id
        return order

    def _current_vid(self, order: Order) -> str | None:
        vids = self._vids.get(order.client_order_id)
        if vids:
            return vids[-1]
        return order.broker_order_id

    def _register_vid(self, order: Order, vid: str, venue_cid: str | None) -> bool:
        """Note that Alpaca order ``vid`` belongs to ``order``; True when it is new to us."""
        cid = order.client_order_id
        vids = self._vids.setdefault(cid, [])
        if vid in vids:
            return False
        vids.append(vid)
        self._cum.setdefault(vid, (0.0, 0.0))
        if venue_cid:
            self._venue_cid[cid] = venue_cid
            if venue_cid != cid:
                self._alias[venue_cid] = cid
        return True

    def _prior_filled(self, cid: str, vid: str) -> float:
        """Shares filled by the Alpaca orders of ``cid`` before ``vid`` (replaced ones)."""
        total = 0.0
        for v in self._vids.get(cid, []):
            if v == vid:
                break
            total += self._cum.get(v, (0.0, 0.0))[0]
        return total

    async def _on_trade_update(self, tu: TradeUpdate) -> None:
        self.events_received += 1
        try:
            self._handle_update(tu)
        except Exception as e:  # never reaches the stream (or the user): skipped, with the cause
            self.stream_skipped += 1
            log.warning(
                "%s: trade update %s skipped: %s: %s",
                self.venue,
                _val(tu.event),
                type(e).__name__,
                e,
                exc_info=True,
            )

    def _handle_update(self, tu: TradeUpdate) -> None:
        ev = _val(tu.event)
        if ev not in _KNOWN_EVENTS:
            self._on_stream_bad(f"unknown trade-update event {ev[:40]!r}")
            return
        ao = tu.order
        problem = _snapshot_problem(ao) or _numbers_problem(("price", tu.price), ("qty", tu.qty))
        if problem:
            self._on_stream_bad(f"{ev} of Alpaca order {ao.id}: {problem}")
            return
        vid = str(ao.id)
        replaces = str(ao.replaces) if ao.replaces else None
        order = self._order_for(ao.client_order_id, vid, replaces)
        if order is None:
            log.debug("%s: trade update %s for an order not ours (%s)", self.venue, ev, vid)
            return
        cid = order.client_order_id
        ts = _dt_ns(tu.timestamp, self.clock.now_ns())
        fresh = vid not in self._vids.get(cid, ())
        if fresh and replaces and replaces in self._vids.get(cid, ()):
            self._on_replacement(order, replaces, ao)  # the replacement's first news
            fresh = False
        elif fresh:
            self._register_vid(order, vid, ao.client_order_id)
        if ao.client_order_id and self._current_vid(order) == vid:
            self._venue_cid[cid] = ao.client_order_id
        self._note_snapshot(vid, ao)
        if ev in ("fill", "partial_fill"):
            self._apply_fill(
                order,
                vid,
                cum=_f(ao.filled_qty) or 0.0,
                avg=_f(ao.filled_avg_price),
                ts=ts,
                exec_id=str(tu.execution_id) if tu.execution_id else None,
                price=_f(tu.price),
                qty=_f(tu.qty),
            )
            if order.broker_order_id is None or order.status is OrderStatus.PENDING_NEW:
                self._ack(cid, vid, ts)
        else:
            # every event carries the order's cumulative fills: one that overtook (or replaced,
            # when the stream dropped) the fill events still counts what was filled
            cum = _f(ao.filled_qty) or 0.0
            if cum > _EPS:
                self._apply_fill(order, vid, cum=cum, avg=_f(ao.filled_avg_price), ts=ts)
            self._apply_status(order, ev, vid, ao, ts)
        self._restate(order, ts)

    def _apply_status(
        self, order: Order, state: str, vid: str, ao: AlpacaOrder, ts: int
    ) -> str | None:
        """Apply an Alpaca order state (an event's name or a snapshot's status). Returns the id
        of the order that replaced this one when there is one to follow."""
        cid = order.client_order_id
        latest = self._current_vid(order) == vid
        if state in ("new", "accepted", "pending_new", "partially_filled", "held", "calculated"):
            if latest:
                self._ack(cid, vid, ts)
        elif state == "fill" or state == "filled":
            pass  # the fill itself moves the order to FILLED
        elif state == "canceled":
            if latest:
                self._status(cid, OrderStatus.CANCELED, ts, broker_order_id=vid)
        elif state == "expired" or (state == "done_for_day" and order.tif is not TimeInForce.GTC):
            if latest:
                self._status(cid, OrderStatus.EXPIRED, ts, broker_order_id=vid)
        elif state == "rejected":
            if ao.replaces and order.status is OrderStatus.PENDING_REPLACE:
                self._replace_rejected(cid, ts, "Alpaca rejected the replacement order")
            elif latest:
                self._status(
                    cid,
                    OrderStatus.REJECTED,
                    ts,
                    broker_order_id=vid,
                    reason=RejectReason.BROKER,
                    message="rejected by Alpaca",
                )
        elif state == "replaced":
            self._final.add(vid)
            new = str(ao.replaced_by) if ao.replaced_by else None
            if new is not None:
                if new not in self._replacements:
                    self._register_vid(order, new, None)
                    self._replacements.add(new)
                    sent = self._patch_qty.pop(cid, None)  # None: not our replace
                    if sent is not None:
                        self._venue_qty.setdefault(new, sent)
                    venue_qty = self._venue_qty.get(new)
                    total = None if venue_qty is None else self._prior_filled(cid, new) + venue_qty
                    self._replaced(cid, ts, broker_order_id=new, old_broker_order_id=vid, qty=total)
                return new
        elif state == "pending_cancel":
            if latest and order.status not in (
                OrderStatus.PENDING_CANCEL,
                OrderStatus.PENDING_REPLACE,
            ):
                self._status(cid, OrderStatus.PENDING_CANCEL, ts, broker_order_id=vid)
        elif state == "order_cancel_rejected":
            self._cancel_rejected(cid, ts, "Alpaca rejected the cancel")
        elif state == "order_replace_rejected":
            self._replace_rejected(cid, ts, "Alpaca rejected the replace")
        else:
            log.debug("%s: order %s: Alpaca state %s noted", self.venue, cid, state)
        return None

    def _on_replacement(
        self, order: Order, old: str, ao: AlpacaOrder, sink: list[str] | None = None
    ) -> None:
        """Alpaca order ``ao`` replaced our order's ``old`` one."""
        cid = order.client_order_id
        new = str(ao.id)
        self._register_vid(order, new, ao.client_order_id)
        self._note_snapshot(new, ao)
        if new not in self._replacements:
            self._replacements.add(new)
            self._patch_qty.pop(cid, None)
            venue_qty = _f(ao.qty)
            total = None if venue_qty is None else self._prior_filled(cid, new) + venue_qty
            self._replaced(
                cid,
                _dt_ns(ao.updated_at, self.clock.now_ns()),
                broker_order_id=new,
                old_broker_order_id=old,
                qty=total,
                limit_price=_f(ao.limit_price),
            )
        cum = _f(ao.filled_qty) or 0.0
        if cum > _EPS:
            self._apply_fill(
                order,
                new,
                cum=cum,
                avg=_f(ao.filled_avg_price),
                ts=_dt_ns(ao.updated_at, self.clock.now_ns()),
                sink=sink,
            )

    def _apply_fill(
        self,
        order: Order,
        vid: str,
        *,
        cum: float,
        avg: float | None,
        ts: int,
        exec_id: str | None = None,
        price: float | None = None,
        qty: float | None = None,
        sink: list[str] | None = None,
    ) -> None:
        """Count what Alpaca order ``vid`` filled beyond what was counted already (``cum`` is its
        cumulative filled quantity, ``avg`` its average price). ``price``/``qty``: the event's own
        execution, used when it is exactly the new quantity. ``sink`` collects the fill's id."""
        done_qty, done_val = self._cum.get(vid, (0.0, 0.0))
        delta = cum - done_qty
        if delta <= _EPS:
            return  # a duplicate or a late event: already counted
        if price is not None and qty is not None and abs(qty - delta) <= 1e-9:
            px = price
            fid = exec_id or f"{vid}:{_fmt_qty(cum)}"
        else:
            if avg is not None and avg > 0:
                px = (avg * cum - done_val) / delta
            elif price is not None:
                px = price
            else:
                log.warning("%s: fill of %s without a price ignored", self.venue, vid)
                return
            fid = f"{vid}:{_fmt_qty(cum)}"
        self._cum[vid] = (cum, avg * cum if avg else done_val + px * delta)
        # a fill of an order since replaced: the order's total grows with it first (else the
        # fill could complete the smaller total we knew)
        self._restate(order, ts)
        liq = Liquidity.TAKER if self._taker.get(order.client_order_id) else Liquidity.MAKER
        before = order.filled_qty
        fee = self.fees.fee(
            order.side,
            delta,
            px,
            liq,
            order_qty_before=before,
            order_value_before=before * (order.avg_fill_price or 0.0),
        )
        self._fill(
            Fill(
                fid,
                order.client_order_id,
                self.venue,
                order.symbol,
                order.side,
                float(delta),
                float(px),
                float(fee),
                liq,
                ts,
            )
        )
        if sink is not None:
            sink.append(fid)

    def _apply_order(self, ao: AlpacaOrder, sink: list[str] | None = None) -> str | None:
        """Bring our handle in line with an Alpaca order snapshot (a REST answer). Returns the id
        of the order that replaced it, if any (to follow). ``sink`` collects the ids of the fills
        this found."""
        problem = _snapshot_problem(ao)
        if problem:
            log.warning("%s: Alpaca order %s skipped: %s", self.venue, ao.id, problem)
            return None
        vid = str(ao.id)
        replaces = str(ao.replaces) if ao.replaces else None
        order = self._order_for(ao.client_order_id, vid, replaces)
        if order is None:
            return None
        cid = order.client_order_id
        if vid not in self._vids.get(cid, ()):
            if replaces and replaces in self._vids.get(cid, ()):
                self._on_replacement(order, replaces, ao, sink)
            else:
                self._register_vid(order, vid, ao.client_order_id)
        if ao.client_order_id and self._current_vid(order) == vid:
            self._venue_cid[cid] = ao.client_order_id
        self._note_snapshot(vid, ao)
        ts = _dt_ns(ao.updated_at, self.clock.now_ns())
        cum = _f(ao.filled_qty) or 0.0
        if cum > _EPS:
            self._apply_fill(
                order,
                vid,
                cum=cum,
                avg=_f(ao.filled_avg_price),
                ts=_dt_ns(ao.filled_at or ao.updated_at, ts),
                sink=sink,
            )
        nxt = self._apply_status(order, _val(ao.status), vid, ao, ts)
        self._restate(order, ts)
        return nxt

    def _note_snapshot(self, vid: str, ao: AlpacaOrder) -> None:
        """What an Alpaca order snapshot says about the order itself: its quantity, and whether
        its state is final (its fills complete)."""
        qty = _f(ao.qty)
        if qty is not None:
            self._venue_qty[vid] = qty
        if _val(ao.status) in _FINAL_STATES:
            self._final.add(vid)

    def _restate(self, order: Order, ts: int) -> None:
        """Keep a replaced order's quantity equal to what Alpaca works: the fills of the orders it
        replaced plus the replacement's quantity. (A replacement is sized from the fills known
        when it was sent; a fill of the old order that we learn later makes it larger.)"""
        cid = order.client_order_id
        vids = self._vids.get(cid)
        if not vids or len(vids) < 2 or order.status in (OrderStatus.LOST, OrderStatus.REJECTED):
            return
        cur = vids[-1]
        venue_qty = self._venue_qty.get(cur)
        if venue_qty is None or cur not in self._replacements:
            return
        total = self._prior_filled(cid, cur) + venue_qty
        if abs(total - order.qty) > 1e-9:
            log.info(
                "%s: %s works %s at Alpaca (fills before its replacement: %s); was %s here",
                self.venue,
                cid,
                _fmt_qty(total),
                _fmt_qty(total - venue_qty),
                _fmt_qty(order.qty),
            )
            self._om.on_restated(cid, total, ts)

    def _adopt(self, ao: AlpacaOrder) -> Order | None:
        """Take over an open Alpaca order this process did not place (placed before a restart, or
        by another program on the account): it counts for the wash-trade guard and can be
        cancelled."""
        typ = _TYPES.get(_val(ao.type or ao.order_type))
        if typ is None or ao.symbol is None or ao.side is None:
            log.warning("%s: Alpaca order %s (%s) not adopted", self.venue, ao.id, ao.type)
            return None
        vid = str(ao.id)
        cum = _f(ao.filled_qty) or 0.0
        avg = _f(ao.filled_avg_price)
        now = self.clock.now_ns()
        status = OrderStatus.PARTIALLY_FILLED if cum > _EPS else OrderStatus.NEW
        cid = ao.client_order_id
        order = Order(
            client_order_id=cid,
            venue=self.venue,
            symbol=ao.symbol,
            side=Side(_val(ao.side)),
            qty=_f(ao.qty) or 0.0,
            type=typ,
            limit_price=_f(ao.limit_price),
            stop_price=_f(ao.stop_price),
            tif=TimeInForce(_val(ao.time_in_force)),
            extended_hours=bool(ao.extended_hours),
            status=status,
            filled_qty=cum,
            avg_fill_price=avg if cum > _EPS else None,
            broker_order_id=vid,
            created_ts=_dt_ns(ao.created_at, now),
            updated_ts=_dt_ns(ao.updated_at, now),
            accepted_ts=_dt_ns(ao.submitted_at, now),
        )
        self._om.adopt(order)
        self._vids[cid] = [vid]
        self._venue_cid[cid] = cid
        self._cum[vid] = (cum, cum * (avg or 0.0))
        log.info("%s: adopted open Alpaca order %r", self.venue, order)
        self._dispatch(order)
        return order

    def _restored(self, orders: list[Order], fills: list[Fill]) -> None:
        """Orders rebuilt from a journal: map each to its newest Alpaca order and what that
        order had filled, so reconciliation applies only what happened since. An order without
        an Alpaca id may or may not have been sent before the crash: it is looked up."""
        for o in orders:
            cid = o.client_order_id
            if o.is_open and o.broker_order_id is None:
                self._restored_unsent.add(cid)
            self._venue_cid.setdefault(cid, cid)
            vid = o.broker_order_id
            if vid:
                self._vids[cid] = [vid]
                self._cum[vid] = (o.filled_qty, o.filled_qty * (o.avg_fill_price or 0.0))

    # ---- reconciliation -----------------------------------------------------------------------
    async def _open_at_alpaca(self) -> list[AlpacaOrder]:
        client = self._need_client()
        req = GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500)
        got = await self.rest.call("open orders", lambda: client.get_orders(req))
        return _models(got, AlpacaOrder)

    async def reconcile(self, reason: str = "manual") -> ReconciliationReport:
        """Reconcile now (after one under way) and return the report (see ``_reconcile``)."""
        report = await self._reconcile(reason)
        if report is None:
            raise BrokerError(f"{self.venue}: reconciliation ({reason}) failed: Alpaca unreachable")
        return report

    async def _reconcile(
        self, why: str, *, wait: bool = True, quiet: bool = False
    ) -> ReconciliationReport | None:
        """Compare our orders with Alpaca's (GET open orders, then GET by client order id each
        of ours Alpaca no longer lists, and each replaced Alpaca order whose last state we did
        not see) and apply the differences: fills, cancels, expiries, replacements; adopt (or
        cancel, ``unknown_orders = "cancel"``) open orders we do not know; mark LOST what Alpaca
        cannot find ``lost_after_lookups`` times; compare positions (the first time: take
        Alpaca's). Returns the report (published unless ``quiet`` and nothing was found), None
        when Alpaca could not be read. ``wait``: False returns None at once when a
        reconciliation is under way."""
        lock = self._reconcile_lock
        if lock is None or (lock.locked() and not wait):
            return None
        async with lock:
            try:
                listed = await self._open_at_alpaca()
            except BrokerError as e:
                log.warning("%s: reconciliation (%s) failed: %s", self.venue, why, e)
                return None
            recovered: list[str] = []
            matched: list[str] = []
            adopted: list[str] = []
            cancelled: list[str] = []
            closed: list[tuple[str, str]] = []
            lost: list[str] = []
            seen: set[str] = set()
            for ao in listed:
                vid = str(ao.id)
                seen.add(vid)
                replaces = str(ao.replaces) if ao.replaces else None
                order = self._order_for(ao.client_order_id, vid, replaces)
                if order is None:
                    if self.unknown_orders == "cancel":
                        if await self._cancel_unknown(ao):
                            cancelled.append(ao.client_order_id or vid)
                    elif self._adopt(ao) is not None:
                        adopted.append(ao.client_order_id)
                    continue
                cid = order.client_order_id
                self._misses.pop(cid, None)
                if cid not in matched:
                    matched.append(cid)
                if self._busy(cid):
                    self._dirty.add(cid)
                else:
                    self._apply_order(ao, recovered)
            for order in list(self._om.open.values()):
                cid = order.client_order_id
                if cid in matched:
                    continue
                if self._busy(cid):
                    self._dirty.add(cid)
                    continue
                cur = self._current_vid(order)
                if cur is None and cid not in self._restored_unsent:
                    continue  # (no id yet: its submit is under way)
                # an order restored without an id was sent before the crash, or never: it is
                # looked up lost_after_lookups times now (no submit of ours is under way)
                tries = self.lost_after_lookups if cid in self._restored_unsent else 1
                self._restored_unsent.discard(cid)
                found = False
                try:
                    for attempt in range(tries):
                        if attempt:
                            await asyncio.sleep(self.rest.backoff[0] * 2**attempt)
                        found = await self._refresh(order, recovered)
                        if found:
                            break
                except BrokerError as e:
                    log.warning("%s: cannot refresh %s: %s", self.venue, cid, e)
                    continue
                if found:
                    self._misses.pop(cid, None)
                    if order.is_done:
                        closed.append((cid, order.status.value))
                    continue
                n = self._misses.get(cid, 0) + tries
                self._misses[cid] = n
                if n >= self.lost_after_lookups and order.is_open:
                    del self._misses[cid]
                    self._status(
                        cid,
                        OrderStatus.LOST,
                        message=f"unknown at Alpaca after {n} look-ups ({why})",
                    )
                    lost.append(cid)
            for cid in list(self._unknown):
                maybe = self._om.get(cid)
                if maybe is None or maybe.status is not OrderStatus.LOST:
                    self._unknown.pop(cid, None)  # found meanwhile
                    continue
                lost_order = maybe
                if self._busy(cid):
                    continue
                try:
                    found_ao = await self._find_by_cid(cid)
                except BrokerError as e:
                    log.warning("%s: cannot look up lost %s: %s", self.venue, cid, e)
                    continue
                if found_ao is not None:
                    del self._unknown[cid]
                    self._apply_order(found_ao, recovered)
                    log.info("%s: lost order %s found at Alpaca (%s)", self.venue, cid, why)
                    if lost_order.is_open:
                        matched.append(cid)
                    else:
                        closed.append((cid, lost_order.status.value))
                    continue
                self._unknown[cid] += 1
                if self._unknown[cid] >= self.lost_after_lookups:
                    del self._unknown[cid]  # it stays LOST
                    lost.append(cid)
            await self._settle_replaced(recovered)
            try:
                positions, mismatches = await self._check_positions()
            except BrokerError as e:
                log.warning("%s: reconciliation (%s): positions: %s", self.venue, why, e)
                return None
            self.reconciliations += 1
            report = ReconciliationReport(
                venue=self.venue,
                reason=why,
                ts=self.clock.now_ns(),
                matched=tuple(matched),
                adopted=tuple(adopted),
                cancelled=tuple(cancelled),
                closed=tuple(closed),
                lost=tuple(lost),
                fills_recovered=tuple(recovered),
                positions=positions,
                position_mismatches=mismatches,
            )
            busy = adopted or cancelled or closed or lost or recovered or mismatches
            if not quiet or busy:
                self._reconciled(report)
            return report

    async def _cancel_unknown(self, ao: AlpacaOrder) -> bool:
        """Cancel an open Alpaca order we did not place (``unknown_orders = "cancel"``)."""
        client = self._need_client()
        vid = str(ao.id)
        try:
            await self.rest.call(
                f"cancel unknown order {vid}", lambda: client.cancel_order_by_id(vid), cancel=True
            )
        except BrokerError as e:
            log.warning("%s: open Alpaca order %s not ours; cancel failed: %s", self.venue, vid, e)
            return False
        log.warning(
            "%s: open Alpaca order %s (%s) not ours: cancelled", self.venue, vid, ao.client_order_id
        )
        return True

    async def _settle_replaced(self, sink: list[str] | None = None) -> None:
        """Fetch each replaced Alpaca order of ours whose last state we never saw (its fills up
        to the replacement may have been missed)."""
        for cid, vids in list(self._vids.items()):
            for vid in vids[:-1]:
                if vid in self._final or self._busy(cid):
                    continue
                try:
                    ao = await self._get_by_id(vid)
                except BrokerError as e:
                    log.warning("%s: cannot fetch replaced order %s: %s", self.venue, vid, e)
                    continue
                if ao is None:
                    self._final.add(vid)
                else:
                    self._apply_order(ao, sink)

    async def _try_refresh(self, order: Order) -> None:
        """``_refresh`` that cannot fail (a failure is logged; the order is refreshed later)."""
        try:
            await self._refresh(order)
        except BrokerError as e:
            log.warning("%s: cannot refresh %s: %s", self.venue, order.client_order_id, e)
            self._dirty.add(order.client_order_id)

    async def _refresh(self, order: Order, sink: list[str] | None = None) -> bool:
        """Fetch ``order`` from Alpaca by its client order id (following replacements) and apply
        what it says. False: Alpaca does not know it."""
        cid = order.client_order_id
        ao = await self._find_by_cid(self._venue_cid.get(cid, cid))
        if ao is None:
            log.warning("%s: order %s is unknown at Alpaca", self.venue, cid)
            return False
        for _ in range(8):
            nxt = self._apply_order(ao, sink)
            if nxt is None:
                return True
            follow = await self._get_by_id(nxt)
            if follow is None:
                return True
            ao = follow
        return True

    async def _check_positions(self) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
        """Alpaca's positions against the local books: the first time they seed the books (the
        starting inventory); afterwards a difference is reported (the missed fills were
        recovered before, so it means trades elsewhere or a fill on its way)."""
        positions = await self._fetch_positions()
        theirs = {sym: p.qty for sym, p in positions.items()}
        if not self._seeded:
            self._seeded = True
            for sym, pos in positions.items():
                if abs(self.portfolio.qty(sym) - pos.qty) > _EPS:
                    self.portfolio.set_position(sym, pos.qty, pos.avg_price or None)
            for sym in self.portfolio.symbols():
                if sym not in positions and abs(self.portfolio.qty(sym)) > _EPS:
                    self.portfolio.set_position(sym, 0.0)
            return theirs, {}
        return theirs, position_mismatches(self.portfolio, theirs)

    # ---- market data the broker sees ----------------------------------------------------------
    def on_quote(self, quote: Quote) -> None:
        super().on_quote(quote)
        sym = quote.symbol
        if self.auto_instruments and self._running and sym not in self._instruments_asked:
            self._instruments_asked.add(sym)
            self._spawn(None, lambda: self._load_instrument(sym), f"asset {sym}")

    async def _load_instrument(self, symbol: str) -> None:
        try:
            await self.get_instrument(symbol)
        except (BrokerError, OrderRejected) as e:
            log.warning("%s: asset %s not loaded (%s); Rule 612 ticks apply", self.venue, symbol, e)

    # ---- queries ------------------------------------------------------------------------------
    async def _account_model(self) -> TradeAccount:
        client = self._need_client()
        acct = await self.rest.call("account", client.get_account)
        return _model(acct, TradeAccount)

    async def _fetch_account(self) -> Account:
        a = await self._account_model()
        return Account(
            cash=_f(a.cash) or 0.0,
            equity=_f(a.equity) or 0.0,
            buying_power=_f(a.buying_power) or 0.0,
            currency=a.currency or "USD",
        )

    async def _fetch_positions(self) -> dict[str, Position]:
        client = self._need_client()
        got = await self.rest.call("positions", client.get_all_positions)
        out: dict[str, Position] = {}
        for p in _models(got, AlpacaPosition):
            qty = abs(float(p.qty))
            if _val(p.side).lower() == "short":
                qty = -qty
            out[p.symbol] = Position(p.symbol, qty, _f(p.avg_entry_price) or 0.0, 0.0, self.venue)
        return out

    async def _fetch_open_orders(self) -> list[Order]:
        out: list[Order] = []
        for ao in await self._open_at_alpaca():
            vid = str(ao.id)
            replaces = str(ao.replaces) if ao.replaces else None
            order = self._order_for(ao.client_order_id, vid, replaces)
            if order is None:
                if self.unknown_orders == "cancel":
                    continue  # not ours: the next reconciliation cancels it
                order = self._adopt(ao)
            else:
                self._apply_order(ao)
            if order is not None and order.is_open and all(o is not order for o in out):
                out.append(order)
        return out

    async def _fetch_instrument(self, symbol: str) -> Instrument:
        client = self._need_client()
        try:
            asset = await self.rest.call(f"asset {symbol}", lambda: client.get_asset(symbol))
        except AlpacaError as e:
            if e.not_found:
                raise OrderRejected(
                    RejectReason.UNKNOWN_SYMBOL, f"{symbol} is not an asset at Alpaca"
                ) from e
            raise
        if not isinstance(asset, AlpacaAsset):  # pragma: no cover - raw data off
            asset = AlpacaAsset(**asset)
        return instrument_from_asset(asset)


# ------------------------------------------------------------------------------------ data feed


class _DataStream(StockDataStream):
    """alpaca-py's ``StockDataStream`` (msgpack) that counts its connections and can subscribe
    and unsubscribe from inside the running event loop."""

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        *,
        feed: str,
        url: str,
        watchdog_s: float | None,
        backoff: tuple[float, float],
        on_connect: Callable[[], None],
    ) -> None:
        super().__init__(
            api_key,
            secret_key,
            raw_data=True,
            feed=AlpacaDataFeedEnum(feed),
            url_override=url,
            data_timeout=watchdog_s,
            websocket_params={
                "ping_interval": 10,
                "ping_timeout": 30,
                "max_queue": 1024,
                "logger": _WS_LOG,
            },
        )
        self._reconnect_min_backoff, self._reconnect_max_backoff = backoff
        self._tk_connect = on_connect

    async def _start_ws(self) -> None:
        await super()._start_ws()
        self._tk_connect()

    def add(self, channel: str, symbols: Iterable[str], handler: Callable[..., Any]) -> None:
        for s in symbols:
            self._handlers[channel][s] = handler

    def remove(self, channel: str, symbols: Iterable[str]) -> list[str]:
        gone = [s for s in symbols if s in self._handlers[channel]]
        for s in gone:
            del self._handlers[channel][s]
        return gone

    @property
    def wanted(self) -> bool:
        return any(v for k, v in self._handlers.items() if k not in ("cancelErrors", "corrections"))

    @property
    def running(self) -> bool:
        return bool(self._running)


def _stamp(t: Any) -> int:
    """A data-stream timestamp (msgpack Timestamp, datetime, ISO text or int ns) as int ns."""
    nano = getattr(t, "to_unix_nano", None)
    if nano is not None:
        return int(nano())
    if isinstance(t, int):
        return t
    if isinstance(t, datetime):
        return _dt_ns(t, 0)
    if isinstance(t, str):
        return parse_iso_ns(t)
    raise ValueError(f"unknown timestamp {t!r}")


_HISTORY = {
    "quotes": (
        "/stocks/quotes",
        (("bid", "bp"), ("bid_size", "bs"), ("ask", "ap"), ("ask_size", "as")),
    ),
    "trades": ("/stocks/trades", (("price", "p"), ("size", "s"))),
    "bars": (
        "/stocks/bars",
        (("open", "o"), ("high", "h"), ("low", "l"), ("close", "c"), ("volume", "v")),
    ),
}


def _timeframe(text: str) -> TimeFrame:
    m = re.fullmatch(r"\s*(\d+)\s*(Min|T|Hour|H|Day|D|Week|W|Month|M)\s*", text or "")
    if not m:
        raise ConfigError(
            f"timeframe {text!r} is not one of NMin, NHour, 1Day, 1Week, NMonth (e.g. 1Min)",
            key="timeframe",
        )
    unit = {
        "Min": TimeFrameUnit.Minute,
        "T": TimeFrameUnit.Minute,
        "Hour": TimeFrameUnit.Hour,
        "H": TimeFrameUnit.Hour,
        "Day": TimeFrameUnit.Day,
        "D": TimeFrameUnit.Day,
        "Week": TimeFrameUnit.Week,
        "W": TimeFrameUnit.Week,
        "Month": TimeFrameUnit.Month,
        "M": TimeFrameUnit.Month,
    }[m.group(2)]
    try:
        return TimeFrame(int(m.group(1)), unit)
    except ValueError as e:
        raise ConfigError(f"timeframe {text!r}: {e}", key="timeframe") from None


def _as_time(value: Any, *, end: bool) -> datetime:
    """A history bound: a tz-aware datetime, int ns, ISO-8601 with an offset, or a date (its
    start in New York; as ``end``, the start of the next day)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        d = value
    elif isinstance(value, str) and re.fullmatch(r"\s*\d{4}-\d{2}-\d{2}\s*", value):
        d = date.fromisoformat(value.strip())
    else:
        return from_ns(to_ns(value))  # microseconds, rounded down
    if end:
        d = d + timedelta(days=1)
    return datetime(d.year, d.month, d.day, tzinfo=_ET).astimezone(UTC)


class AlpacaDataFeed(DataFeed):
    """Alpaca market data: live quotes, trades and minute bars (``subscribe``), trading halts and
    LULD bands (``MarketStatus``), and history (``history``/``get_quotes``/...).

    ``feed``: ``iex`` (free, one venue) or ``sip`` (every venue, the NBBO; a paid plan);
    ``data_url``/``data_stream_url`` override the REST and stream endpoints (the stream's default
    is ``wss://stream.data.alpaca.markets/v2/<feed>``); ``venue``: the venue name put on each item
    (default ``alpaca``); ``watchdog_s``: a stream silent that long is dropped and reconnected
    (None: never); ``statuses``: subscribe to halts and LULD bands of the subscribed symbols.
    Reconnects resubscribe everything.
    """

    name = "alpaca"

    def __init__(
        self,
        api_key: str | None = None,
        secret_key: str | None = None,
        *,
        feed: str = "iex",
        data_url: str | None = None,
        data_stream_url: str | None = None,
        venue: str | None = None,
        watchdog_s: float | None = 30.0,
        statuses: bool = True,
        reconnect_backoff: tuple[float, float] = (1.0, 30.0),
        request_timeout: float = 30.0,
        max_attempts: int = 4,
        backoff: tuple[float, float] = (0.25, 8.0),
        rate_limit: tuple[int, float] | None = (200, 60.0),
        page_size: int = 10_000,
    ) -> None:
        super().__init__(venue=venue)
        feed = str(feed).strip().lower()
        if feed not in DATA_FEEDS:
            raise ConfigError(
                f"Alpaca data feed {feed!r} is not one of {', '.join(DATA_FEEDS)}",
                key="data_feed",
            )
        self.feed = feed
        self._key = _Secret(api_key)
        self._secret = _Secret(secret_key)
        self.data_url = _clean_base(data_url or DATA_URL)
        self.data_stream_url = (
            _ws_url(data_stream_url) if data_stream_url else f"{DATA_STREAM_URL}/v2/{feed}"
        )
        self.watchdog_s = watchdog_s
        self.statuses = bool(statuses)
        self.reconnect_backoff = reconnect_backoff
        self.page_size = int(page_size)
        throttle = (
            MonotonicRateLimiter(int(rate_limit[0]), float(rate_limit[1])) if (rate_limit) else None
        )
        self.rest = _RestPolicy(
            throttle,
            timeout=float(request_timeout),
            max_attempts=max_attempts,
            backoff=backoff,
            label=f"{self.venue} data (alpaca)",
        )
        self._stream: _DataStream | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: StockHistoricalDataClient | None = None
        self._halted: dict[str, bool] = {}
        self._pending: set[asyncio.Task[Any]] = set()
        #: counters (tests, monitoring)
        self.connects = 0
        self.messages = 0
        self.last_message_ns: int | None = None

    def __repr__(self) -> str:
        return f"AlpacaDataFeed(venue={self.venue!r}, feed={self.feed!r})"

    @property
    def reconnects(self) -> int:
        """How many times the stream connected again after its first connection."""
        return max(0, self.connects - 1)

    # ---- life ---------------------------------------------------------------------------------
    async def _connect(self) -> None:
        key, secret = _credentials(self._key.get(), self._secret.get(), "AlpacaDataFeed")
        self._client = StockHistoricalDataClient(
            key, secret, raw_data=True, url_override=self.data_url
        )
        _quiet_client(self._client, self.rest.timeout)
        self._stream = _DataStream(
            key,
            secret,
            feed=self.feed,
            url=self.data_stream_url,
            watchdog_s=self.watchdog_s,
            backoff=self.reconnect_backoff,
            on_connect=self._on_connect,
        )
        for kind, syms in self.subscriptions.items():
            if syms:
                self._register(kind, syms)
        self._start()

    def _on_connect(self) -> None:
        self.connects += 1
        if self.connects > 1:
            log.info("%s: data stream reconnected (resubscribing)", self.venue)

    def _start(self) -> None:
        st = self._stream
        if st is None or (self._task is not None and not self._task.done()) or not st.wanted:
            return
        self._task = asyncio.get_running_loop().create_task(
            st._run_forever(), name=f"alpaca-data-stream-{self.venue}"
        )
        self._task.add_done_callback(self._stream_ended)

    def _stream_ended(self, task: asyncio.Task[None]) -> None:
        if task is not self._task or task.cancelled():
            return  # closed by us
        err = task.exception()
        log.error(
            "%s: the Alpaca data stream stopped%s; no more live data (subscription of the %r "
            "feed?)",
            self.venue,
            f": {err}" if err else "",
            self.feed,
        )

    async def _close(self) -> None:
        st, task = self._stream, self._task
        self._stream = self._task = None
        for t in list(self._pending):
            t.cancel()
        if st is not None:
            with contextlib.suppress(Exception):
                await st.stop_ws()
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if st is not None:
            with contextlib.suppress(Exception):
                await st.close()
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client._session.close()
            self._client = None
        self.rest.close()

    # ---- subscriptions ------------------------------------------------------------------------
    def _channels(self, kind: str) -> list[tuple[str, Callable[..., Any]]]:
        out: list[tuple[str, Callable[..., Any]]] = [
            (kind, {"quotes": self._on_quote, "trades": self._on_trade, "bars": self._on_bar}[kind])
        ]
        if self.statuses:
            out += [("statuses", self._on_status), ("lulds", self._on_luld)]
        return out

    def _register(self, kind: str, symbols: Iterable[str]) -> None:
        st = self._stream
        if st is None:
            return
        for channel, handler in self._channels(kind):
            st.add(channel, symbols, handler)

    def _on_subscribe(self, symbols: set[str], *, quotes: bool, trades: bool, bars: bool) -> None:
        st = self._stream
        if st is None:  # applied at connect
            return
        for kind, on in (("quotes", quotes), ("trades", trades), ("bars", bars)):
            if on:
                self._register(kind, symbols)
        if self._task is None or self._task.done():
            self._start()
        elif st.running:
            self._later(st._send_subscribe_msg())

    def _on_unsubscribe(self, symbols: set[str]) -> None:
        st = self._stream
        if st is None:
            return
        for channel in ("quotes", "trades", "bars", "statuses", "lulds"):
            gone = st.remove(channel, symbols)
            if gone and st.running:
                self._later(st._send_unsubscribe_msg(channel, gone))

    def _later(self, coro: Awaitable[Any]) -> None:
        async def run() -> None:
            try:
                await coro
            except Exception as e:  # the stream reconnects and resubscribes anyway
                log.warning("%s: data stream (un)subscribe failed: %s", self.venue, e)

        t = asyncio.get_running_loop().create_task(run())
        self._pending.add(t)
        t.add_done_callback(self._pending.discard)

    # ---- messages -----------------------------------------------------------------------------
    def _seen(self, ts: int) -> None:
        self.messages += 1
        self.last_message_ns = ts

    async def _on_quote(self, m: Mapping[str, Any]) -> None:
        ts = _stamp(m["t"])
        self._seen(ts)
        self._publish(
            Quote(
                ts,
                m["S"],
                float(m["bp"]),
                float(m["bs"]),
                float(m["ap"]),
                float(m["as"]),
                self.venue,
            )
        )

    async def _on_trade(self, m: Mapping[str, Any]) -> None:
        ts = _stamp(m["t"])
        self._seen(ts)
        self._publish(Trade(ts, m["S"], float(m["p"]), float(m["s"]), self.venue))

    async def _on_bar(self, m: Mapping[str, Any]) -> None:
        ts = _stamp(m["t"])
        self._seen(ts)
        self._publish(
            Bar(
                ts,
                m["S"],
                float(m["o"]),
                float(m["h"]),
                float(m["l"]),
                float(m["c"]),
                float(m["v"]),
                self.venue,
            )
        )

    async def _on_status(self, m: Mapping[str, Any]) -> None:
        ts = _stamp(m["t"])
        self._seen(ts)
        sym = m["S"]
        code = str(m.get("sc", ""))
        halted = code in HALT_CODES
        self._halted[sym] = halted
        reason = " ".join(
            str(x) for x in (code, m.get("sm", ""), m.get("rc", ""), m.get("rm", "")) if x
        ).strip()
        self._publish(MarketStatus(ts, sym, halted, reason, self.venue))

    async def _on_luld(self, m: Mapping[str, Any]) -> None:
        ts = _stamp(m["t"])
        self._seen(ts)
        sym = m["S"]
        self._publish(
            MarketStatus(
                ts,
                sym,
                self._halted.get(sym, False),
                f"LULD {m.get('i', '')}".strip(),
                self.venue,
                lower_band=_f(m.get("d")),
                upper_band=_f(m.get("u")),
            )
        )

    # ---- history ------------------------------------------------------------------------------
    def _history_client(self) -> StockHistoricalDataClient:
        if self._client is None:
            key, secret = _credentials(self._key.get(), self._secret.get(), "AlpacaDataFeed")
            self._client = StockHistoricalDataClient(
                key, secret, raw_data=True, url_override=self.data_url
            )
            _quiet_client(self._client, self.rest.timeout)
        return self._client

    async def history(
        self, symbol: str, start: Any, end: Any, *, kind: str = "bars", timeframe: str = "1Min"
    ) -> pd.DataFrame:
        """Historical ``quotes``, ``trades`` or ``bars`` of ``symbol`` in ``[start, end)`` as a
        DataFrame in the replay columns (``ts`` int ns UTC, ``symbol``, ..., ``venue``), every
        page (``next_page_token``) fetched through the request budget."""
        import pandas as pd

        if kind not in _HISTORY:
            raise ConfigError(f"kind {kind!r} is not one of quotes, trades, bars", key="kind")
        lo, hi = _as_time(start, end=False), _as_time(end, end=True)
        if hi <= lo:
            raise ConfigError(f"end {end!r} is not after start {start!r}", key="end")
        feed = AlpacaDataFeedEnum(self.feed)
        req: Any
        if kind == "bars":
            req = StockBarsRequest(
                symbol_or_symbols=symbol,
                start=lo,
                end=hi,
                timeframe=_timeframe(timeframe),
                feed=feed,
            )
        elif kind == "quotes":
            req = StockQuotesRequest(symbol_or_symbols=symbol, start=lo, end=hi, feed=feed)
        else:
            req = StockTradesRequest(symbol_or_symbols=symbol, start=lo, end=hi, feed=feed)
        params: dict[str, Any] = {
            k: str(v) if isinstance(v, TimeFrame) else _val(v)
            for k, v in req.to_request_fields().items()
        }
        path, fields = _HISTORY[kind]
        client = self._history_client()
        rows: list[Mapping[str, Any]] = []
        token: str | None = None
        pages = 0
        while True:
            page = dict(params, limit=self.page_size)
            if token:
                page["page_token"] = token
            resp = await self.rest.call(
                f"{kind} of {symbol}",
                lambda page=page: client.get(path, page),  # type: ignore[misc]
            )
            pages += 1
            block = resp.get(kind) or {} if isinstance(resp, dict) else {}
            items = block.get(symbol, []) if isinstance(block, dict) else block
            rows.extend(items or [])
            token = resp.get("next_page_token") if isinstance(resp, dict) else None
            if not token:
                break
        log.info("%s: %d %s of %s in %d page(s)", self.venue, len(rows), kind, symbol, pages)
        cols: dict[str, Any] = {
            "ts": [_stamp(r["t"]) for r in rows],
            "symbol": [symbol] * len(rows),
        }
        for name, key in fields:
            cols[name] = [float(r[key]) for r in rows]
        df = pd.DataFrame(cols)
        df["ts"] = df["ts"].astype("int64")
        df = df.sort_values("ts", kind="stable").reset_index(drop=True)
        df["venue"] = self.venue
        df.attrs["kind"] = kind
        return df


# -------------------------------------------------------------------------------------- download


async def download_async(
    venue: str = "alpaca",
    *,
    symbol: str,
    start: Any,
    end: Any,
    kind: str = "bars",
    out: str | os.PathLike[str],
    timeframe: str = "1Min",
    feed: str = "iex",
    api_key: str | None = None,
    secret_key: str | None = None,
    data_url: str | None = None,
) -> Path:
    """``download`` inside a running event loop."""
    if venue != "alpaca":
        raise ConfigError(f"venue {venue!r}: this downloader serves alpaca only", key="venue")
    from ..feeds.replay import write_frame

    f = AlpacaDataFeed(api_key, secret_key, feed=feed, data_url=data_url, venue=venue)
    try:
        df = await f.history(symbol, start, end, kind=kind, timeframe=timeframe)
    finally:
        await f.close()
    return write_frame(df, out, kind=kind)  # type: ignore[arg-type]


def download(
    venue: str = "alpaca",
    *,
    symbol: str,
    start: Any,
    end: Any,
    kind: str = "bars",
    out: str | os.PathLike[str],
    timeframe: str = "1Min",
    feed: str = "iex",
    api_key: str | None = None,
    secret_key: str | None = None,
    data_url: str | None = None,
) -> Path:
    """Download Alpaca history of ``symbol`` (``kind``: quotes, trades or bars) in
    ``[start, end)`` into ``out`` (CSV or Parquet by the extension) in the replay file format;
    returns the path. ``start``/``end``: ISO-8601 with an offset, tz-aware datetimes, int ns, or
    dates (a date is its whole New York day). Keys from the environment
    (``APCA_API_KEY_ID``/``APCA_API_SECRET_KEY``) unless given."""
    return asyncio.run(
        download_async(
            venue,
            symbol=symbol,
            start=start,
            end=end,
            kind=kind,
            out=out,
            timeframe=timeframe,
            feed=feed,
            api_key=api_key,
            secret_key=secret_key,
            data_url=data_url,
        )
    )


__all__ = [
    "DATA_FEEDS",
    "ENV_BASE_URL",
    "ENV_KEY",
    "ENV_SECRET",
    "AlpacaBroker",
    "AlpacaDataFeed",
    "AlpacaError",
    "AlpacaServerError",
    "CredentialsMissing",
    "MonotonicRateLimiter",
    "OutcomeUnknown",
    "classify_error",
    "download",
    "download_async",
    "instrument_from_asset",
    "missing_credentials",
    "stream_url_for",
]
