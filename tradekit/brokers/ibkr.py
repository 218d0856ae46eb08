"""Interactive Brokers: ``IBKRBroker`` and ``IBKRDataFeed`` over ib_async's asyncio API.

Install with ``pip install 'tradekit[ibkr]'`` (ib_async 2.1, the text protocol, server versions up
to 178). Importing ``tradekit`` never imports this module; ``tradekit.brokers.get("ibkr")`` does.

Connection
    One ib_async ``IB`` connection per ``(host, port, client_id)`` in a process, shared by the
    broker and the data feed of a venue (:class:`IBSession`): one socket, one message budget.
    Ports: TWS paper 7497 / live 7496, IB Gateway paper 4002 / live 4001. When nothing listens,
    ``connect()`` raises ``Disconnected`` naming ``host:port`` and what to check. After a
    disconnect (TWS's nightly restart, a network cut) the session reconnects with exponential
    backoff; codes 1100/2110 pause trading, 1101 (data lost) resubscribes market data and
    reconciles, 1102 (data kept) reconciles. Trading resumes only after every user of the session
    has resynchronised: the broker reconciles open orders, executions and positions (retrying
    while the socket stays up) and publishes a typed :class:`ReconciliationReport`
    (``broker.last_reconciliation``, ``broker.reconciliations``); status listeners get
    ``VenueStatus(up=False)`` on a disconnect or 1100/2110 and ``VenueStatus(up=True)`` once
    reconciled. Reconciliation also finishes what the lost connection left open: a modify whose
    confirmation was lost is confirmed (or refused, when TWS never got it) from the open orders,
    a cancel TWS never got is sent again, open orders of our client id that we did not place are
    adopted (or cancelled: ``unknown_orders = "cancel"``), and an order TWS has neither open nor
    completed is ``LOST`` (TWS answers in order: one look is conclusive, ``lost_after_lookups``).
    One reconciliation runs at a time, and requests whose answers ib_async files under one key
    (open orders, completed orders, positions) never overlap.

Pacing
    TWS allows 50 messages a second per connection. Every request the adapter sends passes a
    client-side limiter (:class:`Pacer`, 40 a second by default: 20% headroom) through one FIFO
    queue per connection (so a cancel never overtakes its order); ib_async's own socket-level
    throttle stays on below 50 as a second guard. Historical requests also pass a
    :class:`HistoricalPacer` (60 per 10 minutes, no identical request within 15 s, at most 5 per
    contract in 2 s).

Orders
    ``broker_order_id`` is IB's ``orderId`` as a string; ``orderRef`` carries the client order id
    (so reconciliation finds our orders after a restart). MKT, LMT, STP, STP LMT; DAY, GTC, IOC,
    OPG and CLS (sent as MOC/LOC); FOK is not offered (the rules refuse it).
    ``extended_hours=True`` sets ``outsideRth``. A replace modifies the order in place (same
    ``orderId``: ``placeOrder`` again with the new quantity/price), confirmed by TWS's
    ``openOrder`` carrying the new values. ``route`` is the contract's exchange: ``"SMART"`` or a
    directed venue (``"ARCA"``, ``"ISLAND"``, ...), so one IB account can be several tradekit
    venues, one ``IBKRBroker`` per route. The kill switch sends one ``reqGlobalCancel``.

Events
    ``PreSubmitted`` and ``Submitted`` acknowledge (NEW); fills come from execution details and
    are delivered once their commission report arrives (fee = commission, ``fill_id`` = execId,
    maker when IB reports liquidity "added"); status events of an order wait behind its
    undelivered fills, so listeners always see a fill before the order update it causes.
    Quantities and the FILLED status follow the fills, never ``orderStatus`` counts. Messages of
    another client's orders (order ids are per client) are ignored. Error 110 on
    a new order ends it REJECTED (``TICK_SIZE``), 201 REJECTED (``BROKER``), both with IB's
    message, whatever ib_async itself did with the trade; 110/104/105 on a modify refuse the
    replace; 10147/10148/161 refuse a cancel; 202 is a cancel. Duplicate and late messages are
    absorbed (ib_async drops unchanged ``orderStatus`` repeats; the order manager the rest).

Positions
    IB positions are per account: venues on one account (directed routes) share them.
    ``get_positions`` returns IB's quantities; the average price is tradekit's (fees excluded)
    when the local books agree with IB on the quantity, IB's ``avgCost`` (fees included)
    otherwise. On the first connect the local books are seeded with IB's positions.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import math
import re
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol
from zoneinfo import ZoneInfo

from ib_async import IB, Contract, ExecutionFilter, Forex, Stock
from ib_async import Order as IBOrder
from ib_async import Trade as IBTrade

from ..clock import Clock, WallClock, as_clock
from ..enums import Liquidity, OrderStatus, OrderType, RejectReason, Side, TimeInForce
from ..errors import BrokerTimeout, ConfigError, DataError, Disconnected, OrderRejected
from ..fees import FeeModel
from ..model import (
    Account,
    Fill,
    Instrument,
    Order,
    Position,
    Quote,
    TickRule,
    Trade,
)
from ..reconcile import ReconciliationReport, position_mismatches
from ..risk import KillSwitch, RiskLimits, RiskManager
from ..rules import PROFILES, OrderRules, RulesProfile
from ..timeutil import NS_PER_S, to_ns
from .base import Broker, Capabilities, DataFeed

if TYPE_CHECKING:
    import pandas as pd

    from ..calendar import MarketCalendar

log = logging.getLogger("tradekit.brokers.ibkr")

__all__ = [
    "DepthBook",
    "HistoricalPacer",
    "IBKRBroker",
    "IBKRDataFeed",
    "IBSession",
    "Pacer",
    "ReconciliationReport",
    "download",
    "download_async",
    "ibkr_rules_profile",
]

_ET: Final = ZoneInfo("America/New_York")
_EPS: Final = 1e-9
_UNSET_DOUBLE: Final = 1.7976931348623157e308
#: TWS's limit of client messages per second per connection
TWS_MAX_MSGS_PER_SEC: Final = 50
#: notices TWS sends on every connect (data farms OK / broken)
_FARM_NOTICES: Final = frozenset({2103, 2104, 2105, 2106, 2107, 2108, 2119, 2157, 2158})
#: connectivity codes handled by the session
_CONNECTIVITY: Final = frozenset({1100, 1101, 1102, 1300, 2110})
#: errors that refuse a new order (or a modify, when one is in flight)
_ORDER_REJECT_CODES: Final = frozenset(
    {
        103,
        104,
        105,
        106,
        107,
        109,
        110,
        116,
        117,
        118,
        119,
        200,
        201,
        203,
        321,
        322,
        329,
        382,
        383,
        387,
        434,
        435,
        436,
        437,
        10006,
        10243,
        10318,
    }
)
#: errors that refuse a cancel request (the order is unknown there or already done)
_CANCEL_REJECT_CODES: Final = frozenset({135, 161, 10147, 10148, 10149})
#: errors that refuse a modify (the order itself lives on)
_MODIFY_REJECT_CODES: Final = frozenset({104, 105, 110, 321, 329})
_IB_TIF: Final = {
    TimeInForce.DAY: "DAY",
    TimeInForce.GTC: "GTC",
    TimeInForce.IOC: "IOC",
    TimeInForce.OPG: "OPG",
    TimeInForce.CLS: "DAY",
}
_IB_TYPE: Final = {
    OrderType.MARKET: "MKT",
    OrderType.LIMIT: "LMT",
    OrderType.STOP: "STP",
    OrderType.STOP_LIMIT: "STP LMT",
}
_FROM_IB_TYPE: Final = {
    "MKT": OrderType.MARKET,
    "MOC": OrderType.MARKET,
    "LMT": OrderType.LIMIT,
    "LOC": OrderType.LIMIT,
    "STP": OrderType.STOP,
    "STP LMT": OrderType.STOP_LIMIT,
}
_FROM_IB_TIF: Final = {
    "DAY": TimeInForce.DAY,
    "GTC": TimeInForce.GTC,
    "IOC": TimeInForce.IOC,
    "OPG": TimeInForce.OPG,
    "FOK": TimeInForce.FOK,
}
_SETUP_HINT: Final = (
    "start TWS or IB Gateway and log in, enable the API (TWS: Global Configuration > API > "
    "Settings > 'Enable ActiveX and Socket Clients'; add 127.0.0.1 to the trusted IPs), and check "
    "the port: TWS paper 7497, TWS live 7496, IB Gateway paper 4002, IB Gateway live 4001"
)


def ibkr_rules_profile() -> RulesProfile:
    """The ``ibkr`` rules profile without FOK (IB does not offer fill-or-kill on US stocks)."""
    base = PROFILES["ibkr"]
    if TimeInForce.FOK not in base.tifs:
        return base
    return dataclasses.replace(base, tifs=base.tifs - {TimeInForce.FOK})


# ------------------------------------------------------------------------------------- pacing


class Pacer:
    """A client-side message limiter: at most ``rate`` messages in any ``per``-second window,
    granted first come, first served; ``acquire(n)`` waits as long as needed. A slot is reused
    only ``margin`` seconds after the window has passed, so that delays on the way (the event
    loop, the network) cannot squeeze more than ``rate`` messages into one second at TWS."""

    def __init__(
        self,
        rate: int = 40,
        per: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        margin: float = 0.05,
    ) -> None:
        if rate <= 0 or per <= 0 or margin < 0:
            raise ValueError(f"pacing {rate!r} per {per!r} s (margin {margin!r}) must be positive")
        self.rate = int(rate)
        self.per = float(per) + float(margin)
        self._clock = clock
        self._sent: deque[float] = deque()
        self._lock: asyncio.Lock | None = None
        #: messages granted, times a caller had to wait, seconds waited in all
        self.granted = 0
        self.waits = 0
        self.waited_s = 0.0
        #: the most messages granted in any one window
        self.peak = 0

    def _trim(self, now: float) -> None:
        sent = self._sent
        while sent and now - sent[0] >= self.per:
            sent.popleft()

    def delay(self, n: int = 1) -> float:
        """Seconds until ``n`` messages may go (0: now)."""
        now = self._clock()
        self._trim(now)
        free = self.rate - len(self._sent)
        if free >= n:
            return 0.0
        idx = min(len(self._sent) - 1, n - free - 1)
        return max(0.0, self._sent[idx] + self.per - now) + 1e-4

    def record(self, n: int) -> None:
        """Count ``n`` messages sent without asking (ib_async's own: the startup sync)."""
        if n > 0:
            self._take(n)

    def _take(self, n: int) -> None:
        now = self._clock()
        for _ in range(n):
            self._sent.append(now)
        self.granted += n
        self.peak = max(self.peak, len(self._sent))

    async def acquire(self, n: int = 1) -> None:
        """Wait until ``n`` messages may be sent, and count them as sent."""
        n = max(1, min(int(n), self.rate))
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            d = self.delay(n)
            if d > 0:
                self.waits += 1
                self.waited_s += d
                while d > 0:
                    await asyncio.sleep(d)
                    d = self.delay(n)
            self._take(n)


class HistoricalPacer:
    """IB's historical-data pacing: at most ``max_requests`` in ``window`` seconds, no identical
    request within ``identical_gap`` seconds, at most ``same_contract[0]`` requests for one
    contract within ``same_contract[1]`` seconds."""

    def __init__(
        self,
        max_requests: int = 60,
        window: float = 600.0,
        identical_gap: float = 15.0,
        same_contract: tuple[int, float] = (5, 2.0),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_requests = int(max_requests)
        self.window = float(window)
        self.identical_gap = float(identical_gap)
        self.same_contract = (int(same_contract[0]), float(same_contract[1]))
        self._clock = clock
        self._log: deque[tuple[float, Any, Any]] = deque()
        self._lock: asyncio.Lock | None = None
        self.waits = 0
        self.waited_s = 0.0

    def delay(self, key: Any, contract_key: Any) -> float:
        now = self._clock()
        log_ = self._log
        while log_ and now - log_[0][0] >= max(self.window, self.identical_gap):
            log_.popleft()
        waits = [0.0]
        in_window = [t for t, _, _ in log_ if now - t < self.window]
        if len(in_window) >= self.max_requests:
            waits.append(in_window[len(in_window) - self.max_requests] + self.window - now)
        same_key = [t for t, k, _ in log_ if k == key and now - t < self.identical_gap]
        if same_key:
            waits.append(same_key[-1] + self.identical_gap - now)
        n, span = self.same_contract
        same_c = [t for t, _, c in log_ if c == contract_key and now - t < span]
        if len(same_c) >= n:
            waits.append(same_c[len(same_c) - n] + span - now)
        return max(waits)

    async def acquire(self, key: Any, contract_key: Any) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            d = self.delay(key, contract_key)
            if d > 0:
                self.waits += 1
                self.waited_s += d
            while d > 0:
                log.info("historical-data pacing: waiting %.1f s", d)
                await asyncio.sleep(d + 1e-3)
                d = self.delay(key, contract_key)
            self._log.append((self._clock(), key, contract_key))


# ------------------------------------------------------------------------------------ session


class SessionUser(Protocol):
    """What a broker or feed sharing an ``IBSession`` implements."""

    async def _on_session_up(self, reason: str) -> None: ...

    def _on_session_down(self, reason: str) -> None: ...


@dataclass
class _Job:
    run: Callable[[], Awaitable[None]]
    label: str
    hold: bool  # wait for a reconnect instead of failing while the socket is down
    fail: Callable[[BaseException], None] | None


class IBSession:
    """One ib_async ``IB`` connection to ``host:port`` as ``client_id``, shared by every broker
    and feed of this process that names the same three (see the module docstring).

    ``state``: ``down``, ``connecting``, ``syncing`` (reconnected, users resynchronising),
    ``paused`` (TWS lost its own connection to IB: 1100/2110) or ``ready``."""

    _registry: ClassVar[dict[tuple[str, int, int], IBSession]] = {}

    def __init__(
        self,
        host: str,
        port: int,
        client_id: int,
        *,
        route: str = "SMART",
        account: str | None = None,
        connect_timeout: float = 4.0,
        max_msgs_per_sec: int = 40,
        reconnect: bool = True,
        reconnect_delay: float = 0.5,
        reconnect_max_delay: float = 30.0,
        historical_pacer: HistoricalPacer | None = None,
    ) -> None:
        _check_pacing(max_msgs_per_sec)
        self.host = host
        self.port = int(port)
        self.client_id = int(client_id)
        self.route = route
        self.account = account
        self.connect_timeout = float(connect_timeout)
        self.reconnect_enabled = bool(reconnect)
        self.reconnect_delay = float(reconnect_delay)
        self.reconnect_max_delay = float(reconnect_max_delay)
        self.loop = asyncio.get_running_loop()
        self.pacer = Pacer(max_msgs_per_sec)
        self.historical = historical_pacer or HistoricalPacer()
        self.ib = IB()
        # ib_async's own socket-level throttle: a second guard, still under TWS's 50
        self.ib.client.MaxRequests = TWS_MAX_MSGS_PER_SEC - 5
        self.ib.client.RequestsInterval = 1
        self.ib.RaiseRequestErrors = False
        self.ib.disconnectedEvent += self._on_disconnected
        self.ib.errorEvent += self._on_error
        self.users: list[SessionUser] = []
        self.state = "down"
        #: False between TWS's 1100/2110 (its link to IB lost) and 1101/1102 (restored)
        self.ib_link_up = True
        self.closed = False
        self._closing = False
        self._connecting: asyncio.Future[None] | None = None
        # requests whose answers ib_async files under a fixed key (one at a time each)
        self._exclusive: dict[str, asyncio.Lock] = {}
        self._reconnect_task: asyncio.Task[None] | None = None
        self._jobs: deque[_Job] = deque()
        self._job_event = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._ready = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._ping_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        # caches shared by the users: qualified contracts, details, market rules
        self.contracts: dict[tuple[str, str, str, str], Contract] = {}
        self.details: dict[tuple[str, str, str, str], Any] = {}
        self.market_rules: dict[int, TickRule | None] = {}
        #: messages sent by kind (our requests only)
        self.sent: Counter[str] = Counter()
        self.connects = 0
        self.reconnects = 0
        self.last_error: tuple[int, str] | None = None

    # ---- the registry ----------------------------------------------------------------------
    @classmethod
    def shared(
        cls, host: str, port: int, client_id: int, *, route: str, **options: Any
    ) -> IBSession:
        """The session for ``(host, port, client_id)`` in this event loop (created if needed).
        Two users of one session must route alike: ib_async keeps one market-data ticker per
        contract and connection, so directed routes of one symbol need separate client ids."""
        key = (host, int(port), int(client_id))
        loop = asyncio.get_running_loop()
        s = cls._registry.get(key)
        if s is None or s.closed or s.loop is not loop:
            s = cls(host, port, client_id, route=route, **options)
            cls._registry[key] = s
        elif s.route != route and s.users:
            raise ConfigError(
                f"client_id {client_id} at {host}:{port} is already used with route "
                f"{s.route!r}; give the {route!r} venue its own client_id (one IB connection "
                f"carries one route's market data per symbol)",
                key="client_id",
            )
        else:
            s.route = route
        return s

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def ready(self) -> bool:
        return self.state == "ready" and self.ib.isConnected()

    # ---- users -----------------------------------------------------------------------------
    async def open(self, user: SessionUser) -> None:
        """Connect (or join the connection) for ``user``."""
        if self.closed:
            raise Disconnected(f"the IB session to {self.address} is closed")
        if user not in self.users:
            self.users.append(user)
        try:
            await self._ensure_connected()
        except BaseException:
            if user in self.users:
                self.users.remove(user)
            if not self.users:
                await self._shutdown()
            raise
        if self._worker is None or self._worker.done():
            self._worker = self.loop.create_task(self._work(), name=f"ib-send-{self.address}")

    async def release(self, user: SessionUser) -> None:
        """``user`` is done; the last one out disconnects."""
        if user in self.users:
            self.users.remove(user)
        if not self.users:
            await self._shutdown()

    async def _shutdown(self) -> None:
        self._closing = True
        self.closed = True
        me = asyncio.current_task()
        tasks = [
            t
            for t in (self._reconnect_task, self._worker, *self._tasks)
            if t is not None and t is not me
        ]
        for t in tasks:
            if not t.done():
                t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        for job in self._jobs:
            if job.fail is not None:
                job.fail(Disconnected(f"the connection to {self.address} was closed"))
        self._jobs.clear()
        self._idle.set()
        if self.ib.isConnected() or self.ib.client.isConnected():
            self.ib.disconnect()
        self.state = "down"
        key = (self.host, self.port, self.client_id)
        if self._registry.get(key) is self:
            del self._registry[key]

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "") -> asyncio.Task[Any]:
        """A background task owned by the session (cancelled when it closes)."""
        task: asyncio.Task[Any] = self.loop.create_task(coro, name=name or None)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "%s: background task %s failed",
                self.address,
                task.get_name(),
                exc_info=task.exception(),
            )

    # ---- connecting ------------------------------------------------------------------------
    async def _ensure_connected(self) -> None:
        if self.ib.isConnected() and self.state in ("ready", "syncing", "paused"):
            return
        if self._connecting is not None:
            await asyncio.shield(self._connecting)
            return
        fut: asyncio.Future[None] = self.loop.create_future()
        self._connecting = fut
        try:
            await self._connect_once()
            self.state = "ready"
            self._ready.set()
            fut.set_result(None)
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: awaiting users re-raise it
            raise
        finally:
            self._connecting = None

    async def _connect_once(self) -> None:
        self.state = "connecting"
        self._closing = False
        self.last_error = None
        self.ib_link_up = True  # a fresh connection: TWS says again when its link is down
        closed: list[str] = []
        task = asyncio.ensure_future(
            self.ib.connectAsync(
                self.host,
                self.port,
                clientId=self.client_id,
                timeout=self.connect_timeout,
                account=self.account or "",
            )
        )

        def on_api_error(msg: str) -> None:  # the peer closed during the handshake: fail fast
            if not task.done() and not closed:
                closed.append(msg)
                task.cancel()

        self.ib.client.apiError += on_api_error
        try:
            await task
        except asyncio.CancelledError:
            if not closed:
                raise
            self.state = "down"
            raise Disconnected(self._refused_message(closed[0])) from None
        except ConnectionRefusedError as e:
            self.state = "down"
            raise Disconnected(
                f"no TWS or IB Gateway is listening at {self.address} ({e.strerror or e}): "
                f"{_SETUP_HINT}"
            ) from e
        except TimeoutError as e:
            self.state = "down"
            raise Disconnected(
                f"TWS/IB Gateway at {self.address} did not start the API session within "
                f"{self.connect_timeout:g} s (API disabled, 127.0.0.1 not a trusted IP, a login "
                f"or confirmation dialog open, or nothing listening): {_SETUP_HINT}"
            ) from e
        except OSError as e:
            self.state = "down"
            raise Disconnected(
                f"no TWS or IB Gateway is listening at {self.address} ({e}): {_SETUP_HINT}"
            ) from e
        except ConnectionError as e:
            self.state = "down"
            raise Disconnected(self._refused_message(str(e))) from e
        finally:
            self.ib.client.apiError -= on_api_error
        if not self.ib.isConnected():
            self.state = "down"
            raise Disconnected(f"TWS/IB Gateway at {self.address} closed the connection")
        # the handshake and ib_async's startup sync went out unpaced: count them
        self.pacer.record(self.ib.client.conn.numMsgSent)
        self.sent["startup sync"] += self.ib.client.conn.numMsgSent
        self.connects += 1
        log.info(
            "connected to %s as client %d (server version %d, accounts %s)",
            self.address,
            self.client_id,
            self.ib.client.serverVersion(),
            ",".join(self.ib.client.getAccounts()),
        )

    def _refused_message(self, why: str) -> str:
        if self.last_error is not None and self.last_error[0] == 326:
            why = f"client id {self.client_id} is already in use; choose another client_id"
        return f"TWS/IB Gateway at {self.address} closed the connection: {why}"

    def _on_disconnected(self) -> None:
        if self._closing or self.closed:
            return
        was = self.state
        self.state = "down"
        self._ready.clear()
        log.warning("lost the connection to %s (was %s)", self.address, was)
        for u in list(self.users):
            try:
                u._on_session_down("disconnected")
            except Exception:
                log.exception("%s: session user %r failed on disconnect", self.address, u)
        self._job_event.set()  # the worker fails what may not wait
        if self.reconnect_enabled and (self._reconnect_task is None or self._reconnect_task.done()):
            self._reconnect_task = self.loop.create_task(self._reconnect(), name="ib-reconnect")

    async def _reconnect(self) -> None:
        delay = self.reconnect_delay
        attempt = 0
        while not self.closed:
            attempt += 1
            await asyncio.sleep(delay)
            if self.closed:
                return
            try:
                await self._connect_once()
            except Disconnected as e:
                log.warning(
                    "reconnect %d to %s failed: %s; next try in %.1f s",
                    attempt,
                    self.address,
                    e,
                    min(delay * 2, self.reconnect_max_delay),
                )
                delay = min(delay * 2, self.reconnect_max_delay)
                continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reconnect %d to %s failed", attempt, self.address)
                delay = min(delay * 2, self.reconnect_max_delay)
                continue
            self.reconnects += 1
            await self._resync("reconnect")
            if self.ib.isConnected() or self.closed:
                return
            delay = self.reconnect_delay  # lost again while resynchronising: start over

    async def _resync(self, reason: str) -> None:
        """Every user resynchronises (reconciles, resubscribes) before trading resumes."""
        self.state = "syncing"
        self._ready.clear()
        if self._worker is None or self._worker.done():
            self._worker = self.loop.create_task(self._work(), name=f"ib-send-{self.address}")
        for u in list(self.users):
            try:
                await u._on_session_up(reason)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: resynchronisation of %r failed (%s)", self.address, u, reason)
        if self.ib.isConnected() and self.state == "syncing":
            if not self.ib_link_up:  # 1100/2110 arrived while resynchronising
                self.state = "paused"
                return
            self.state = "ready"
            self._ready.set()
            self._job_event.set()
            log.info("%s: trading resumes after %s", self.address, reason)

    def _on_error(self, req_id: int, code: int, msg: str, contract: Any) -> None:
        if req_id == -1 or code in _CONNECTIVITY:
            self.last_error = (code, msg)
        if code in _FARM_NOTICES:
            log.debug("%s: %d %s", self.address, code, msg)
            return
        if code in (1100, 2110):
            self.ib_link_up = False
            if self.state == "ready":
                self.state = "paused"
                self._ready.clear()
            log.warning(
                "%s: %d %s: new orders refused until connectivity returns", self.address, code, msg
            )
            for u in list(self.users):
                try:
                    u._on_session_down(f"{code}")
                except Exception:
                    log.exception("%s: session user %r failed on %d", self.address, u, code)
        elif code in (1101, 1102):
            self.ib_link_up = True
            log.warning("%s: %d %s", self.address, code, msg)
            if code == 1102:
                # ib_async re-requests the account summary on 1102 and never awaits it: should
                # the socket drop first, asyncio would log its error as never retrieved
                for fut in list(self.ib.wrapper._futures.values()):
                    fut.add_done_callback(_retrieved)
            if self.state in ("down", "connecting") or not self.ib.isConnected():
                return  # the reconnection resynchronises anyway
            self.spawn(self._resync(str(code)), name=f"ib-resync-{code}")
        elif code == 100:
            log.error("%s: TWS reports a pacing violation (%d %s)", self.address, code, msg)
        elif code == 326:
            log.error("%s: %s", self.address, msg)

    # ---- sending ---------------------------------------------------------------------------
    async def paced(self, n: int = 1, kind: str = "request") -> None:
        """Wait for the message budget (``n`` messages of ``kind``)."""
        await self.pacer.acquire(n)
        self.sent[kind] += n

    def enqueue(
        self,
        run: Callable[[], Awaitable[None]],
        label: str,
        *,
        hold: bool = False,
        fail: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Run ``run`` in FIFO order with every other queued request of this connection.
        ``hold``: while the socket is down, wait for the reconnection (else ``fail`` is
        called with ``Disconnected``)."""
        self._jobs.append(_Job(run, label, hold, fail))
        self._idle.clear()
        self._job_event.set()

    async def _work(self) -> None:
        while True:
            if not self._jobs:
                self._idle.set()
                self._job_event.clear()
                await self._job_event.wait()
                continue
            job = self._jobs[0]
            if not self.ib.isConnected() or self.state in ("down", "connecting"):
                if job.hold:
                    self._job_event.clear()
                    await self._job_event.wait()
                    continue
                self._jobs.popleft()
                if job.fail is not None:
                    job.fail(Disconnected(f"not connected to TWS/IB Gateway at {self.address}"))
                continue
            if self.state == "syncing" and job.hold:
                await self._ready.wait()
                continue
            self._jobs.popleft()
            try:
                await job.run()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("%s: %s failed: %s", self.address, job.label, e)
                if job.fail is not None:
                    try:
                        job.fail(e)
                    except Exception:
                        log.exception("%s: failure handler of %s failed", self.address, job.label)

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every queued request has been sent."""
        await asyncio.sleep(0)
        if self._jobs:
            await asyncio.wait_for(self._idle.wait(), timeout)

    async def ping(self, timeout: float = 5.0) -> None:
        """A round trip to TWS (``reqCurrentTime``): every answer to what was sent before has
        been processed when it returns."""
        async with self._ping_lock:
            await self.paced(1, "reqCurrentTime")
            await asyncio.wait_for(self.ib.reqCurrentTimeAsync(), timeout)

    async def request(
        self,
        make: Callable[[], Awaitable[Any]],
        kind: str,
        *,
        timeout: float | None = None,
        exclusive: bool = False,
    ) -> Any:
        """Send one paced request and await its answer (``BrokerTimeout`` after ``timeout``).
        ``exclusive``: one request of this ``kind`` at a time (ib_async files the answers of
        ``reqOpenOrders``, ``reqCompletedOrders`` and ``reqPositions`` under one fixed key: a
        second one in flight would orphan the first)."""
        if not exclusive:
            return await self._request(make, kind, timeout)
        lock = self._exclusive.get(kind)
        if lock is None:
            lock = self._exclusive[kind] = asyncio.Lock()
        async with lock:
            return await self._request(make, kind, timeout)

    async def _request(
        self, make: Callable[[], Awaitable[Any]], kind: str, timeout: float | None
    ) -> Any:
        if not self.ib.isConnected():
            raise Disconnected(f"not connected to TWS/IB Gateway at {self.address}")
        await self.paced(1, kind)
        if not self.ib.isConnected():
            raise Disconnected(f"not connected to TWS/IB Gateway at {self.address}")
        try:
            return await asyncio.wait_for(make(), timeout or max(self.connect_timeout, 5.0))
        except TimeoutError:
            raise BrokerTimeout(f"{kind} to {self.address}: no answer in time") from None
        except ConnectionError as e:
            raise Disconnected(f"{kind} to {self.address}: {e}") from e

    # ---- contracts -------------------------------------------------------------------------
    async def contract_details(self, contract: Contract) -> Any:
        """Contract details of a stock or FX contract (one request, cached): the qualified
        contract is ``details.contract`` with the requested exchange."""
        key = (contract.secType, contract.symbol, contract.currency, contract.exchange)
        cd = self.details.get(key)
        if cd is not None:
            return cd
        found = await self.request(
            lambda: self.ib.reqContractDetailsAsync(contract), "reqContractDetails"
        )
        if not found:
            return None
        cd = found[0]
        if len(found) > 1:
            same = [d for d in found if d.contract.secType == contract.secType]
            cd = same[0] if same else cd
        cd.contract.exchange = contract.exchange
        self.details[key] = cd
        self.contracts[key] = cd.contract
        return cd

    async def qualify(self, contract: Contract) -> Contract | None:
        """A qualified contract via ``qualifyContractsAsync`` (cached)."""
        key = (contract.secType, contract.symbol, contract.currency, contract.exchange)
        c = self.contracts.get(key)
        if c is not None:
            return c
        got = await self.request(lambda: self.ib.qualifyContractsAsync(contract), "qualify")
        if not got or got[0] is None or isinstance(got[0], list):
            return None
        self.contracts[key] = got[0]
        return got[0]

    async def tick_rule(self, rule_id: int) -> TickRule | None:
        """IB market rule ``rule_id`` as a ``TickRule`` (price-dependent increments), cached."""
        if rule_id in self.market_rules:
            return self.market_rules[rule_id]
        incs = await self.request(lambda: self.ib.reqMarketRuleAsync(rule_id), "reqMarketRule")
        rule = None
        if incs:
            bands = sorted((float(p.lowEdge), float(p.increment)) for p in incs)
            try:
                rule = TickRule(tuple(bands))
            except ValueError as e:
                log.warning("%s: market rule %d unusable: %s", self.address, rule_id, e)
        self.market_rules[rule_id] = rule
        return rule


# ------------------------------------------------------------------------------ broker parts


@dataclass(slots=True)
class _PendingFill:
    cid: str
    exec_id: str
    symbol: str
    side: Side
    qty: float
    price: float
    liquidity: Liquidity
    ts: int
    timer: asyncio.TimerHandle | None = None


def _retrieved(fut: asyncio.Future[Any]) -> None:
    """A done callback that takes a future's exception (so asyncio does not log it)."""
    if not fut.cancelled():
        fut.exception()


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x) and abs(x) < _UNSET_DOUBLE


def _price(x: Any) -> float | None:
    """An IB price field as a float (None when unset: None, empty, IB's UNSET_DOUBLE)."""
    if x is None or x == "":
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if _finite(v) else None


def _check_address(host: Any, port: Any, client_id: Any) -> tuple[str, int, int]:
    if not isinstance(host, str) or not host.strip():
        raise ConfigError(f"host {host!r} must be a host name or address", key="host")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError(
            f"port {port!r} must be an integer 1..65535 (TWS paper 7497, live 7496; "
            f"IB Gateway paper 4002, live 4001)",
            key="port",
        )
    if isinstance(client_id, bool) or not isinstance(client_id, int) or client_id < 0:
        raise ConfigError(f"client_id {client_id!r} must be an integer >= 0", key="client_id")
    return host.strip(), port, client_id


def _check_pacing(max_msgs_per_sec: Any) -> int:
    if (
        isinstance(max_msgs_per_sec, bool)
        or not isinstance(max_msgs_per_sec, int)
        or not 0 < max_msgs_per_sec <= TWS_MAX_MSGS_PER_SEC
    ):
        raise ConfigError(
            f"max_msgs_per_sec {max_msgs_per_sec!r} must be an integer in "
            f"1..{TWS_MAX_MSGS_PER_SEC} (TWS disconnects clients that send more than 50 "
            f"messages a second)",
            key="max_msgs_per_sec",
        )
    return max_msgs_per_sec


def _check_route(route: Any, currency: Any) -> tuple[str, str]:
    if not isinstance(route, str) or not re.fullmatch(r"[A-Za-z0-9.]+", route.strip()):
        raise ConfigError(
            f"route {route!r} must be SMART or an IB exchange (ARCA, ISLAND, NYSE, BATS, IEX, ...)",
            key="route",
        )
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency.strip()):
        raise ConfigError(f"currency {currency!r} must be a 3-letter code", key="currency")
    return route.strip().upper(), currency.strip().upper()


_VENUE_KEYS: Final = ("host", "port", "client_id", "account", "route", "currency")


class IBKRBroker(Broker):
    """An Interactive Brokers account (one route of it) through TWS or IB Gateway.

    ``host``/``port``/``client_id``: where TWS or IB Gateway listens and the API client id
    (unique per connection; the broker and feed of one venue share one connection).
    ``account``: the account code (default: the only managed account, or the first).
    ``route``: ``"SMART"`` or a directed exchange; ``currency``: of the contracts and account
    values. ``symbols``: instruments to load at connect (tick rules from IB's market rules;
    others load on their first quote or order). ``max_msgs_per_sec``: the client-side pacing
    (TWS allows 50). ``commission_wait_s``: how long a fill waits for its commission report
    before it is delivered with an estimated fee. See the module docstring for the rest.
    """

    name = "ibkr"
    rules_profile = "ibkr"
    capabilities = Capabilities(
        replace_in_place=True,
        fractional=False,
        extended_hours=True,
        shorting=True,
        depth=True,
        order_types=frozenset(OrderType),
        time_in_force=frozenset(
            {TimeInForce.DAY, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.OPG, TimeInForce.CLS}
        ),
    )

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 7497,
        client_id: int = 1,
        *,
        account: str | None = None,
        route: str = "SMART",
        currency: str = "USD",
        risk: RiskLimits | Mapping[str, Any] | RiskManager | None = None,
        venue: str | None = None,
        kill_switch: KillSwitch | None = None,
        clock: Clock | Any = None,
        calendar: MarketCalendar | str | None = None,
        rules: OrderRules | str | None = None,
        id_prefix: str | None = None,
        symbols: Iterable[str] = (),
        connect_timeout: float = 4.0,
        max_msgs_per_sec: int = 40,
        reconnect: bool = True,
        reconnect_delay: float = 0.5,
        reconnect_max_delay: float = 30.0,
        commission_wait_s: float = 2.0,
        request_timeout: float = 10.0,
    ) -> None:
        self.host, self.port, self.client_id = _check_address(host, port, client_id)
        self.route, self.currency = _check_route(route, currency)
        _check_pacing(max_msgs_per_sec)
        if venue is None and self.route != "SMART":
            venue = f"ibkr_{self.route.lower()}"
        super().__init__(
            venue=venue,
            rules=rules if rules is not None else OrderRules(ibkr_rules_profile()),
            risk=risk,
            clock=clock,
            calendar=calendar,
            kill_switch=kill_switch,
            id_prefix=id_prefix,
        )
        self.account = account
        self.symbols = [s for s in symbols]
        self._session_options: dict[str, Any] = {
            "account": account,
            "connect_timeout": connect_timeout,
            "max_msgs_per_sec": max_msgs_per_sec,
            "reconnect": reconnect,
            "reconnect_delay": reconnect_delay,
            "reconnect_max_delay": reconnect_max_delay,
        }
        self.commission_wait_s = float(commission_wait_s)
        self.request_timeout = float(request_timeout)
        self.fee_estimate = FeeModel.for_broker("ibkr")
        #: the fee schedule strategies price with (IB's real commissions arrive with the fills)
        self.fees: FeeModel = self.fee_estimate
        self.session: IBSession | None = None
        self._cid_by_oid: dict[int, str] = {}
        self._oid_by_cid: dict[str, int] = {}
        self._ib_orders: dict[str, IBOrder] = {}
        self._contract_of: dict[str, Contract] = {}
        self._pending: dict[str, _PendingFill] = {}
        self._held: dict[str, list[Callable[[], Any]]] = {}
        self._replacing: dict[str, tuple[float, float | None]] = {}
        self._modify_sent: dict[str, int] = {}
        self._cancel_sent: dict[str, int] = {}
        self._seen_exec: set[str] = set()
        self._errors: dict[int, tuple[int, str]] = {}
        self._loading: dict[str, asyncio.Task[Instrument]] = {}
        self._loaded: set[str] = set()
        self._seeded = False
        self._wired = False
        self._state_reason = ""
        self._reconcile_lock: asyncio.Lock | None = None
        # cancels and modifies written to the socket: our id -> the connection (``connects``)
        self.last_reconciliation: ReconciliationReport | None = None
        self._restored_unsent: set[str] = set()  # restored from a journal without an orderId
        self.reconciliations: list[ReconciliationReport] = []
        #: reconciliations that find one of our sent orders neither open nor completed at IB
        #: before it is marked LOST (TWS answers in order: one look is conclusive)
        self.lost_after_lookups = 1
        self._misses: dict[str, int] = {}
        #: requests this broker sent to TWS, by kind (placeOrder, modify, cancelOrder, ...)
        self.stats: Counter[str] = Counter()

    # ---- config ------------------------------------------------------------------------------
    @classmethod
    def from_venue_config(
        cls,
        name: str,
        options: Mapping[str, Any],
        *,
        risk: Any = None,
        kill_switch: KillSwitch | None = None,
    ) -> IBKRBroker:
        """The broker of a ``[venues.NAME]`` table with ``broker = "ibkr"``: keys ``host``,
        ``port``, ``client_id``, ``account``, ``route``, ``currency``."""
        unknown = sorted(set(options) - set(_VENUE_KEYS))
        if unknown:
            raise ConfigError(
                f"unknown key(s) {', '.join(unknown)} for an ibkr venue; allowed: "
                f"{', '.join(_VENUE_KEYS)}",
                key=f"venues.{name}.{unknown[0]}",
            )
        kw = {k: options[k] for k in _VENUE_KEYS if k in options}
        return cls(**kw, venue=name, risk=risk, kill_switch=kill_switch)

    @classmethod
    def feed_from_venue_config(cls, name: str, options: Mapping[str, Any]) -> IBKRDataFeed:
        """The IB data feed of a ``[venues.NAME]`` table (``feed = "ibkr"``): it shares the
        venue broker's connection when both name the same host, port and client id."""
        kw = {k: options[k] for k in _VENUE_KEYS if k in options}
        return IBKRDataFeed(**kw, venue=name)

    def __repr__(self) -> str:
        return (
            f"IBKRBroker(venue={self.venue!r}, {self.host}:{self.port}, "
            f"client_id={self.client_id}, route={self.route!r})"
        )

    # ---- life ---------------------------------------------------------------------------------
    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def ib(self) -> IB:
        """The ib_async ``IB`` of the connection (for what tradekit does not wrap)."""
        return self._require_session().ib

    def _require_session(self) -> IBSession:
        if self.session is None:
            raise Disconnected(f"{self.venue}: not connected to {self.address}; call connect()")
        return self.session

    async def _connect(self) -> None:
        s = IBSession.shared(
            self.host, self.port, self.client_id, route=self.route, **self._session_options
        )
        self.session = s
        self._wire(s.ib)
        try:
            await s.open(self)
            if self.account is None:
                accts = s.ib.client.getAccounts()
                self.account = s.account or (accts[0] if accts else None)
                if len(accts) > 1:
                    log.warning(
                        "%s: %d managed accounts; using %s (set account=...)",
                        self.venue,
                        len(accts),
                        self.account,
                    )
            await self.reconcile("connect")
            for sym in self.symbols:
                try:
                    await self.get_instrument(sym)
                except DataError as e:
                    log.error("%s: %s", self.venue, e)
        except BaseException:
            self._unwire(s.ib)
            await s.release(self)
            self.session = None
            raise

    async def _close(self) -> None:
        s = self.session
        if s is None:
            return
        with contextlib.suppress(Exception):
            if s.ib.isConnected():
                await s.drain(timeout=5.0)
        for p in list(self._pending.values()):
            self._release_fill(p.exec_id, None)
        self._unwire(s.ib)
        for t in self._loading.values():
            t.cancel()
        self._loading.clear()
        self.session = None
        await s.release(self)

    def _wire(self, ib: IB) -> None:
        if self._wired:
            return
        ib.orderStatusEvent += self._on_status
        ib.openOrderEvent += self._on_open_order
        ib.execDetailsEvent += self._on_exec
        ib.commissionReportEvent += self._on_commission
        ib.errorEvent += self._on_error
        self._wired = True

    def _unwire(self, ib: IB) -> None:
        if not self._wired:
            return
        ib.orderStatusEvent -= self._on_status
        ib.openOrderEvent -= self._on_open_order
        ib.execDetailsEvent -= self._on_exec
        ib.commissionReportEvent -= self._on_commission
        ib.errorEvent -= self._on_error
        self._wired = False

    async def _on_session_up(self, reason: str) -> None:
        """The connection is back (or TWS's link to IB): reconcile (again while it fails and
        the socket stays up), then trading may resume."""
        delay = 0.1
        while True:
            s = self.session
            if s is None or not s.ib.isConnected():
                return
            try:
                await self.reconcile(reason)
                break
            except (Disconnected, BrokerTimeout) as e:
                log.warning("%s: reconciliation (%s) failed: %s", self.venue, reason, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        s = self.session
        if s is not None and s.ib.isConnected() and s.ib_link_up:
            self._venue_up(reason)

    def _on_session_down(self, reason: str) -> None:
        self._state_reason = reason
        log.warning("%s: trading paused (%s at %s)", self.venue, reason, self.address)
        self._venue_down(f"{reason} at {self.address}")

    async def sync(self) -> None:
        """Wait until every request sent so far went out and TWS's answers were processed (a
        round trip). Handy in tests and scripts."""
        s = self._require_session()
        await s.drain(self.request_timeout)
        if s.ib.isConnected():
            await s.ping(self.request_timeout)
        await asyncio.sleep(0)

    # ---- checks before sending ----------------------------------------------------------------
    def _check_account(self, order: Order, replacing: Order | None) -> None:
        s = self.session
        if s is None or not s.ready:
            state = "not connected" if s is None else s.state
            raise OrderRejected(
                RejectReason.BROKER,
                f"{self.venue}: TWS/IB Gateway at {self.address} is {state}"
                f"{f' ({self._state_reason})' if self._state_reason and s else ''}; orders "
                f"resume after reconnection and reconciliation",
            )

    def on_quote(self, quote: Quote) -> None:
        super().on_quote(quote)
        self._ensure_instrument(quote.symbol)

    def _ensure_instrument(self, symbol: str) -> None:
        """Load ``symbol``'s instrument in the background (first quote or order)."""
        if symbol in self._loaded or symbol in self._loading or "." in symbol:
            return
        s = self.session
        if s is None or not s.ready:
            return

        async def load() -> Instrument:
            try:
                return await self.get_instrument(symbol)
            finally:
                self._loading.pop(symbol, None)

        self._loading[symbol] = s.spawn(load(), name=f"ib-instrument-{symbol}")

    # ---- orders out ---------------------------------------------------------------------------
    def _ib_order(self, order: Order) -> IBOrder:
        sym = order.symbol
        otype = _IB_TYPE[order.type]
        if order.tif is TimeInForce.CLS:
            otype = "MOC" if order.type is OrderType.MARKET else "LOC"
        ib_order = IBOrder(
            action="BUY" if order.side is Side.BUY else "SELL",
            totalQuantity=float(self.rules.format_qty(sym, order.qty)),
            orderType=otype,
            tif=_IB_TIF.get(order.tif, "DAY"),
            outsideRth=bool(order.extended_hours),
            orderRef=order.client_order_id,
            transmit=True,
        )
        if order.limit_price is not None:
            ib_order.lmtPrice = self._price_out(sym, order.limit_price)
        if order.stop_price is not None:
            ib_order.auxPrice = self._price_out(sym, order.stop_price)
        if self.account:
            ib_order.account = self.account
        return ib_order

    def _price_out(self, symbol: str, price: float) -> float:
        """The price exactly as the rules print it. A price that is off the tick here got past
        the rules (they were bypassed, or the instrument changed since the check): it is sent
        unchanged and IB decides (error 110), since a price is never changed silently."""
        try:
            return float(self.rules.format_price(symbol, price))
        except OrderRejected as e:
            log.warning("%s: sending %r for %s as given: %s", self.venue, price, symbol, e.message)
            return float(price)

    def _send_submit(self, order: Order) -> None:
        s = self._require_session()
        cid = order.client_order_id

        async def place() -> None:
            if order.is_done:
                return
            contract = await self._contract(order.symbol)
            ib_order = self._ib_order(order)
            await s.paced(1, "placeOrder")
            if order.is_done:
                return
            trade = s.ib.placeOrder(contract, ib_order)
            oid = int(trade.order.orderId)
            self._cid_by_oid[oid] = cid
            self._oid_by_cid[cid] = oid
            self._ib_orders[cid] = trade.order
            self.stats["placeOrder"] += 1

        def failed(e: BaseException) -> None:
            reason = e.reason if isinstance(e, OrderRejected) else RejectReason.BROKER
            msg = e.message if isinstance(e, OrderRejected) else str(e)
            self._status(
                cid,
                OrderStatus.REJECTED,
                reason=reason,
                message=f"not sent to {self.address}: {msg}",
            )

        s.enqueue(place, f"placeOrder {cid}", fail=failed)

    def _send_cancel(self, order: Order) -> None:
        s = self.session
        cid = order.client_order_id
        if s is None:
            self._cancel_rejected(cid, message=f"not connected to {self.address}")
            return
        self._cancel_sent.pop(cid, None)

        async def cancel() -> None:
            oid = self._oid_by_cid.get(cid)
            if oid is None:
                if order.status is OrderStatus.PENDING_CANCEL:
                    # never reached IB (refused before sending): nothing to cancel there
                    self._status(cid, OrderStatus.CANCELED, message="canceled before it was sent")
                return
            await s.paced(1, "cancelOrder")
            trade = s.ib.wrapper.trades.get((s.client_id, oid))
            if trade is not None and not trade.isDone():
                s.ib.cancelOrder(trade.order)
            else:
                s.ib.client.cancelOrder(oid, "")
            self._cancel_sent[cid] = s.connects
            self.stats["cancelOrder"] += 1

        def failed(e: BaseException) -> None:
            self._cancel_rejected(cid, message=f"cancel not sent to {self.address}: {e}")

        s.enqueue(cancel, f"cancelOrder {cid}", hold=True, fail=failed)

    def _send_replace(self, order: Order, qty: float, limit_price: float | None) -> None:
        s = self.session
        cid = order.client_order_id
        if s is None:
            self._replace_rejected(cid, message=f"not connected to {self.address}")
            return
        self._replacing[cid] = (float(qty), limit_price)
        self._modify_sent.pop(cid, None)

        async def modify() -> None:
            oid = self._oid_by_cid.get(cid)
            trade = s.ib.wrapper.trades.get((s.client_id, oid)) if oid is not None else None
            if trade is None or trade.isDone():
                self._replacing.pop(cid, None)
                self._replace_rejected(
                    cid, message=f"IB has no working order {oid} for {cid} to modify"
                )
                return
            changes: dict[str, Any] = {
                "totalQuantity": float(self.rules.format_qty(order.symbol, qty))
            }
            if limit_price is not None:
                changes["lmtPrice"] = self._price_out(order.symbol, limit_price)
            new = dataclasses.replace(trade.order, **changes)
            await s.paced(1, "placeOrder(modify)")
            if trade.isDone():  # it filled or ended while the modify waited for the pacer
                self._replacing.pop(cid, None)
                self._replace_rejected(
                    cid, message=f"order {oid} for {cid} ended before the modify could be sent"
                )
                return
            s.ib.placeOrder(trade.contract, new)
            self._modify_sent[cid] = s.connects
            self.stats["modify"] += 1

        def failed(e: BaseException) -> None:
            self._replacing.pop(cid, None)
            self._replace_rejected(cid, message=f"modify not sent to {self.address}: {e}")

        s.enqueue(modify, f"modify {cid}", fail=failed)

    def _on_kill(self, reason: str) -> None:
        """The kill switch: every open order is marked PENDING_CANCEL and one
        ``reqGlobalCancel`` cancels everything on the account (other clients' orders too)."""
        if self.session is None:
            log.error(
                "%s: kill switch (%s) while not connected to %s: nothing cancelled at IB",
                self.venue,
                reason,
                self.address,
            )
            return
        now = self.clock.now_ns()
        n = 0
        for o in self._om.open_orders():
            if self._om.request_cancel(o, now):
                n += 1
        self.global_cancel()
        log.warning(
            "%s: kill switch (%s): global cancel sent, %d orders pending cancel",
            self.venue,
            reason,
            n,
        )

    def global_cancel(self) -> None:
        """Cancel every open order of the account (all clients, also TWS's manual orders)."""
        s = self._require_session()

        async def run() -> None:
            await s.paced(1, "reqGlobalCancel")
            s.ib.reqGlobalCancel()
            self.stats["reqGlobalCancel"] += 1

        s.enqueue(run, "reqGlobalCancel", hold=True)

    # ---- contracts and instruments ------------------------------------------------------------
    def _stock(self, symbol: str) -> Contract:
        return Stock(symbol, self.route, self.currency)

    async def _details(self, symbol: str) -> Any:
        s = self._require_session()
        cd = await s.contract_details(self._stock(symbol))
        if cd is None:
            raise DataError(
                f"IB has no security definition for {symbol} (STK, {self.route}, {self.currency})"
            )
        return cd

    async def _contract(self, symbol: str) -> Contract:
        c = self._contract_of.get(symbol)
        if c is not None:
            return c
        try:
            cd = await self._details(symbol)
        except DataError as e:
            raise OrderRejected(RejectReason.UNKNOWN_SYMBOL, str(e)) from e
        self._contract_of[symbol] = cd.contract
        if symbol not in self._loaded:
            self._ensure_instrument(symbol)
        return cd.contract

    async def _fetch_instrument(self, symbol: str) -> Instrument:
        s = self._require_session()
        cd = await self._details(symbol)
        self._contract_of[symbol] = cd.contract
        rule: TickRule | None = None
        ids = [x.strip() for x in (cd.marketRuleIds or "").split(",")]
        exchanges = [x.strip() for x in (cd.validExchanges or "").split(",")]
        rid = None
        if ids and ids[0]:
            rid = (
                ids[exchanges.index(self.route)]
                if self.route in exchanges and len(ids) == len(exchanges)
                else ids[0]
            )
        if rid:
            try:
                rule = await s.tick_rule(int(rid))
            except (ValueError, BrokerTimeout) as e:
                log.warning("%s: market rule %s of %s: %s", self.venue, rid, symbol, e)
        if rule is None:
            tick = float(cd.minTick) if _finite(cd.minTick) and cd.minTick > 0 else 0.01
            rule = TickRule.rule_612(tick) if tick >= 0.001 else TickRule.fixed(tick)
        inc = float(cd.sizeIncrement) if _finite(cd.sizeIncrement) else 1.0
        lot = inc if inc >= 1.0 else 1.0
        min_size = float(cd.minSize) if _finite(cd.minSize) else 1.0
        inst = Instrument(
            symbol,
            currency=cd.contract.currency or self.currency,
            tick_size=rule,
            lot_size=lot,
            min_qty=max(lot, math.ceil(min_size - _EPS)),
            fractionable=False,
            shortable=True,
        )
        self._loaded.add(symbol)
        return inst

    # ---- events in ----------------------------------------------------------------------------
    def _cid_of(self, trade: IBTrade) -> str | None:
        s = self.session
        if s is None or trade.order.clientId != s.client_id:
            return None  # another client's order (order ids are per client)
        oid = int(trade.order.orderId or 0)
        cid = self._cid_by_oid.get(oid)
        if cid is None:
            ref = trade.order.orderRef
            if ref and ref in self._om.orders and ref not in self._oid_by_cid:
                s = self.session
                if s is not None and trade.order.clientId == s.client_id and oid > 0:
                    self._cid_by_oid[oid] = ref
                    self._oid_by_cid[ref] = oid
                    cid = ref
        return cid

    def _later(self, cid: str, fn: Callable[[], Any]) -> None:
        """Run ``fn`` now, or after the undelivered fills of ``cid`` (causal order)."""
        held = self._held.get(cid)
        if held is not None:
            held.append(fn)
        else:
            fn()

    def _on_status(self, trade: IBTrade) -> None:
        cid = self._cid_of(trade)
        if cid is None:
            return
        st = trade.orderStatus.status
        oid = str(trade.order.orderId)
        ts = self.clock.now_ns()
        by_error = bool(trade.log and trade.log[-1].errorCode)
        if st in ("PreSubmitted", "Submitted"):
            self._later(cid, lambda: self._ack(cid, oid, ts))
        elif st in ("Cancelled", "ApiCancelled"):
            if by_error:
                return  # ib_async cancelled it for an error: _on_error decides what it means
            self._later(
                cid, lambda: self._status(cid, OrderStatus.CANCELED, ts, broker_order_id=oid)
            )
        elif st == "Inactive":
            if by_error:
                return
            code, msg = self._errors.get(int(oid), (0, "IB reports the order Inactive"))
            self._later(
                cid,
                lambda: self._status(
                    cid,
                    OrderStatus.REJECTED,
                    ts,
                    broker_order_id=oid,
                    reason=RejectReason.BROKER,
                    message=f"{msg} (IB error {code})" if code else msg,
                ),
            )
        # Filled: the fills drive FILLED; PendingSubmit/PendingCancel/ValidationError: nothing

    def _on_open_order(self, trade: IBTrade) -> None:
        cid = self._cid_of(trade)
        if cid is None:
            return
        want = self._replacing.get(cid)
        if want is None:
            return
        qty, px = want
        o = trade.order
        if abs(float(o.totalQuantity) - qty) > _EPS:
            return
        lmt = _price(o.lmtPrice)
        if px is not None and (lmt is None or abs(lmt - px) > 1e-9):
            return
        del self._replacing[cid]
        ts = self.clock.now_ns()
        oid = str(o.orderId)
        self._later(
            cid, lambda: self._replaced(cid, ts, broker_order_id=oid, qty=qty, limit_price=px)
        )

    def _on_exec(self, trade: IBTrade, fill: Any) -> None:
        cid = self._cid_of(trade)
        if cid is None:
            return
        ex = fill.execution
        eid = ex.execId
        if eid in self._seen_exec or eid in self._pending:
            return
        order = self._om.get(cid)
        if order is None:
            return
        p = _PendingFill(
            cid=cid,
            exec_id=eid,
            symbol=order.symbol,
            side=Side.BUY if ex.side == "BOT" else Side.SELL,
            qty=float(ex.shares),
            price=float(ex.price),
            liquidity=Liquidity.MAKER if ex.lastLiquidity == 1 else Liquidity.TAKER,
            ts=self.clock.now_ns(),
        )
        self._pending[eid] = p
        self._held.setdefault(cid, [])
        loop = asyncio.get_running_loop()
        p.timer = loop.call_later(self.commission_wait_s, self._release_fill, eid, None)

    def _on_commission(self, trade: IBTrade, fill: Any, report: Any) -> None:
        if report.execId in self._pending:
            fee = float(report.commission) if _finite(report.commission) else None
            self._release_fill(report.execId, fee)

    def _release_fill(self, exec_id: str, fee: float | None) -> None:
        p = self._pending.pop(exec_id, None)
        if p is None:
            return
        if p.timer is not None:
            p.timer.cancel()
        if fee is None:
            order = self._om.get(p.cid)
            before = order.filled_qty if order else 0.0
            fee = self.fee_estimate.fee(
                p.side, p.qty, p.price, p.liquidity, order_qty_before=before
            )
            log.warning(
                "%s: no commission report for execution %s; fee estimated at %.4f",
                self.venue,
                exec_id,
                fee,
            )
        self._seen_exec.add(exec_id)
        self._fill(
            Fill(
                p.exec_id,
                p.cid,
                self.venue,
                p.symbol,
                p.side,
                p.qty,
                p.price,
                float(fee),
                p.liquidity,
                p.ts,
            )
        )
        if not any(q.cid == p.cid for q in self._pending.values()):
            for fn in self._held.pop(p.cid, []):
                fn()

    def _on_error(self, req_id: int, code: int, msg: str, contract: Any) -> None:
        if req_id <= 0 or code in _FARM_NOTICES or code in _CONNECTIVITY:
            return
        cid = self._cid_by_oid.get(req_id)
        if cid is None:
            return
        order = self._om.get(cid)
        if order is None:
            return
        self._errors[req_id] = (code, msg)
        ts = self.clock.now_ns()
        text = f"{msg} (IB error {code})"
        modifying = cid in self._replacing and order.accepted_ts is not None
        if modifying and code in _MODIFY_REJECT_CODES | _ORDER_REJECT_CODES:
            self._replacing.pop(cid, None)
            self._later(cid, lambda: self._replace_rejected(cid, ts, text))
        elif code in _ORDER_REJECT_CODES:
            self._replacing.pop(cid, None)
            reason = {
                110: RejectReason.TICK_SIZE,
                200: RejectReason.UNKNOWN_SYMBOL,
                387: RejectReason.ORDER_TYPE,
                434: RejectReason.INVALID,
            }.get(code, RejectReason.BROKER)
            self._later(
                cid,
                lambda: self._status(
                    cid,
                    OrderStatus.REJECTED,
                    ts,
                    broker_order_id=str(req_id),
                    reason=reason,
                    message=text,
                ),
            )
        elif code == 202:
            self._later(
                cid,
                lambda: self._status(
                    cid, OrderStatus.CANCELED, ts, broker_order_id=str(req_id), message=msg
                ),
            )
        elif code in _CANCEL_REJECT_CODES:
            self._later(cid, lambda: self._cancel_rejected(cid, ts, text))
        elif code in (399, 404, 2109):
            log.info("%s: %s: %s", self.venue, cid, text)
        else:
            log.warning("%s: %s: %s", self.venue, cid, text)

    # ---- queries ------------------------------------------------------------------------------
    async def _fetch_account(self) -> Account:
        s = self._require_session()
        acct = self.account or ""
        await s.request(
            lambda: s.ib.reqAccountUpdatesAsync(acct),
            "reqAccountUpdates",
            timeout=self.request_timeout,
        )
        values: dict[str, dict[str, float]] = {}
        for v in s.ib.accountValues(acct):
            try:
                values.setdefault(v.tag, {})[v.currency] = float(v.value)
            except (TypeError, ValueError):
                continue

        def pick(*tags: str) -> float:
            for tag in tags:
                by_cur = values.get(tag, {})
                for cur in (self.currency, "BASE", ""):
                    if cur in by_cur:
                        return by_cur[cur]
            raise BrokerTimeout(f"{self.venue}: IB sent no {tags[0]} for account {acct}")

        return Account(
            cash=pick("TotalCashValue", "CashBalance"),
            equity=pick("NetLiquidation", "NetLiquidationByCurrency"),
            buying_power=pick("BuyingPower", "AvailableFunds"),
            currency=self.currency,
        )

    async def _ib_positions(self) -> dict[str, tuple[float, float]]:
        s = self._require_session()
        got = await s.request(
            s.ib.reqPositionsAsync, "reqPositions", timeout=self.request_timeout, exclusive=True
        )
        out: dict[str, tuple[float, float]] = {}
        for p in got or ():
            c = p.contract
            if self.account and p.account != self.account:
                continue
            if c.secType != "STK" or (c.currency and c.currency != self.currency):
                continue
            out[c.symbol] = (float(p.position), float(p.avgCost))
        return out

    async def _fetch_positions(self) -> dict[str, Position]:
        out: dict[str, Position] = {}
        local = self.portfolio.positions(self.venue, include_flat=True)
        for sym, (qty, avg_cost) in (await self._ib_positions()).items():
            if abs(qty) < _EPS:
                continue
            mine = local.get(sym)
            avg = avg_cost
            realized = 0.0
            if mine is not None:
                realized = mine.realized_pnl
                if abs(mine.qty - qty) < 1e-6:
                    avg = mine.avg_price
            out[sym] = Position(sym, qty, avg, realized, self.venue)
        return out

    async def _fetch_open_orders(self) -> list[Order]:
        s = self._require_session()
        sent: dict[str, Any] = {}
        trades = await s.request(
            lambda: self._req_open_orders(s, sent),
            "reqOpenOrders",
            timeout=self.request_timeout,
            exclusive=True,
        )
        self._settle_sent(s, trades or (), sent, self.clock.now_ns())
        out: list[Order] = []
        seen: set[str] = set()
        for t in trades or ():
            cid = self._cid_of(t)
            if cid is None or cid in seen:
                continue
            order = self._om.get(cid)
            if order is not None and order.is_open:
                seen.add(cid)
                out.append(order)
        return out

    # ---- reconciliation -----------------------------------------------------------------------
    async def reconcile(self, reason: str = "manual") -> ReconciliationReport:
        """Compare our books with IB's (open and completed orders, executions, positions), apply
        what happened meanwhile and publish a :class:`ReconciliationReport` (one reconciliation
        at a time: a second waits for the first)."""
        s = self._require_session()
        if self._reconcile_lock is None:
            self._reconcile_lock = asyncio.Lock()
        async with self._reconcile_lock:
            return await self._reconcile(s, reason)

    async def _reconcile(self, s: IBSession, reason: str) -> ReconciliationReport:
        tmo = self.request_timeout
        sent: dict[str, Any] = {}
        open_trades = await s.request(
            lambda: self._req_open_orders(s, sent), "reqOpenOrders", timeout=tmo, exclusive=True
        )
        done_trades = await s.request(
            lambda: s.ib.reqCompletedOrdersAsync(False),
            "reqCompletedOrders",
            timeout=tmo,
            exclusive=True,
        )
        fills = await s.request(
            lambda: s.ib.reqExecutionsAsync(ExecutionFilter(clientId=s.client_id)),
            "reqExecutions",
            timeout=tmo,
        )
        ib_pos = await self._ib_positions()
        now = self.clock.now_ns()
        matched: list[str] = []
        adopted: list[str] = []
        cancelled: list[str] = []
        closed: list[tuple[str, str]] = []
        lost: list[str] = []
        recovered: list[str] = []
        open_cids: dict[str, IBTrade] = {}
        for t in open_trades or ():
            cid = self._cid_of(t)
            if cid is None:
                if self.unknown_orders == "cancel" and self._foreign(t):
                    await s.paced(1, "cancelOrder")
                    s.ib.cancelOrder(t.order)
                    self.stats["cancelOrder"] += 1
                    ref = t.order.orderRef or f"ib-{t.order.orderId}"
                    log.warning("%s: open IB order %s not ours: cancelled", self.venue, ref)
                    cancelled.append(ref)
                    continue
                cid = self._adopt(t)
                if cid is None:
                    continue
                adopted.append(cid)
            elif cid not in open_cids:
                matched.append(cid)
                self._ack(cid, str(t.order.orderId), now)
            open_cids[cid] = t
            self._ib_orders[cid] = t.order
        # executions we missed (or whose commission never came)
        for f in sorted(fills or (), key=lambda f: f.execution.time):
            ex = f.execution
            cid = self._cid_by_oid.get(int(ex.orderId or 0))
            if cid is None and ex.orderRef in self._om.orders:
                cid = ex.orderRef
            if cid is None:
                continue
            # ib_async keeps the commission on the first Fill object of an execution
            stored = s.ib.wrapper.fills.get(ex.execId) or f
            report = stored.commissionReport
            comm = report.commission if report.execId else None
            fee = float(comm) if comm is not None and _finite(comm) else None
            if ex.execId in self._pending:
                self._release_fill(ex.execId, fee)
                continue
            if ex.execId in self._seen_exec:
                continue
            order = self._om.get(cid)
            if order is None:
                continue
            side = Side.BUY if ex.side == "BOT" else Side.SELL
            liq = Liquidity.MAKER if ex.lastLiquidity == 1 else Liquidity.TAKER
            if fee is None:
                fee = self.fee_estimate.fee(side, float(ex.shares), float(ex.price), liq)
            self._seen_exec.add(ex.execId)
            ts = to_ns(ex.time) if isinstance(ex.time, datetime) and ex.time.tzinfo else now
            self._fill(
                Fill(
                    ex.execId,
                    cid,
                    self.venue,
                    order.symbol,
                    side,
                    float(ex.shares),
                    float(ex.price),
                    fee,
                    liq,
                    ts,
                )
            )
            recovered.append(ex.execId)
        self._settle_sent(s, open_trades or (), sent, now)
        # our open orders that IB no longer has open
        by_ref = {t.order.orderRef: t for t in done_trades or () if t.order.orderRef}
        for order in list(self._om.open_orders()):
            cid = order.client_order_id
            # (restored from a journal without an orderId: sent before the crash, or never;
            # IB's open and completed orders, by orderRef, were the look-up)
            restored = cid in self._restored_unsent
            self._restored_unsent.discard(cid)
            if cid in open_cids or (cid not in self._oid_by_cid and not restored):
                self._misses.pop(cid, None)
                continue  # open there, or not sent yet (the queue will send or fail it)
            t = by_ref.get(cid)
            status = t.orderStatus.status if t is not None else ""
            if status == "Filled":
                if order.is_open:
                    log.warning(
                        "%s: %s is Filled at IB but %g of %g filled here",
                        self.venue,
                        cid,
                        order.filled_qty,
                        order.qty,
                    )
                closed.append((cid, "filled"))
            elif status in ("Cancelled", "ApiCancelled"):
                self._status(cid, OrderStatus.CANCELED, now, message="canceled while away")
                closed.append((cid, "canceled"))
            elif status == "Inactive":
                self._status(
                    cid,
                    OrderStatus.REJECTED,
                    now,
                    reason=RejectReason.BROKER,
                    message="Inactive at IB (found at reconciliation)",
                )
                closed.append((cid, "rejected"))
            elif not order.is_done:
                n = self.lost_after_lookups if restored else self._misses.get(cid, 0) + 1
                self._misses[cid] = n
                if n < self.lost_after_lookups:
                    continue
                del self._misses[cid]
                self._status(
                    cid, OrderStatus.LOST, now, message=f"not found at IB ({reason} reconciliation)"
                )
                lost.append(cid)
        # positions
        mismatches: dict[str, tuple[float, float]] = {}
        if not self._seeded:
            for sym, (qty, avg_cost) in ib_pos.items():
                if abs(qty) > _EPS and abs(self.portfolio.qty(sym)) < _EPS:
                    self.portfolio.set_position(sym, qty, avg_cost)
            self._seeded = True
        else:
            mismatches = position_mismatches(self.portfolio, {k: v[0] for k, v in ib_pos.items()})
        report = ReconciliationReport(
            venue=self.venue,
            reason=reason,
            ts=now,
            matched=tuple(matched),
            adopted=tuple(adopted),
            cancelled=tuple(cancelled),
            closed=tuple(closed),
            lost=tuple(lost),
            fills_recovered=tuple(recovered),
            positions={k: v[0] for k, v in ib_pos.items()},
            position_mismatches=mismatches,
        )
        self.reconciliations.append(report)
        self._reconciled(report)
        return report

    def _req_open_orders(self, s: IBSession, sent: dict[str, Any]) -> Awaitable[Any]:
        """``reqOpenOrders``, noting which modifies and cancels went out before it: TWS answers
        in order, so the answer shows whether they arrived."""
        sent["modifies"] = {c: n for c, n in self._modify_sent.items() if c in self._replacing}
        sent["cancels"] = dict(self._cancel_sent)
        sent["connection"] = s.connects
        return s.ib.reqOpenOrdersAsync()

    def _settle_sent(
        self, s: IBSession, trades: Iterable[IBTrade], sent: dict[str, Any], now: int
    ) -> None:
        """Modifies and cancels sent before a ``reqOpenOrders`` (``_req_open_orders``), against
        its answer. ib_async files the live ``openOrder`` confirming a modify into the answer when
        it arrives meanwhile (no event): a modify whose values the answer shows is confirmed. One
        sent on an earlier connection that the answer does not show never reached TWS: refused;
        a cancel sent on an earlier connection of an order still working there is sent again.
        (Sent on this connection, their answers are still on their way.)"""
        modifies: dict[str, int] = sent.get("modifies", {})
        cancels: dict[str, int] = sent.get("cancels", {})
        connection: int = sent.get("connection", s.connects)
        done: set[str] = set()
        for t in trades:
            cid = self._cid_of(t)
            if cid is None or cid in done:
                continue
            done.add(cid)
            order = self._om.get(cid)
            if order is None:
                continue
            want = self._replacing.get(cid)
            if want is not None and cid in modifies:
                qty, px = want
                lmt = _price(t.order.lmtPrice)
                if abs(float(t.order.totalQuantity) - qty) <= _EPS and (
                    px is None or (lmt is not None and abs(lmt - px) <= 1e-9)
                ):
                    del self._replacing[cid]
                    self._later(
                        cid,
                        functools.partial(
                            self._replaced,
                            cid,
                            now,
                            broker_order_id=str(t.order.orderId),
                            qty=qty,
                            limit_price=px,
                        ),
                    )
                elif modifies[cid] < connection:
                    del self._replacing[cid]
                    self._later(
                        cid,
                        functools.partial(
                            self._replace_rejected,
                            cid,
                            now,
                            "the modify did not reach IB (connection lost)",
                        ),
                    )
            if (
                order.status is OrderStatus.PENDING_CANCEL
                and cancels.get(cid, connection) < connection
                and t.orderStatus.status not in ("PendingCancel", "Cancelled", "ApiCancelled")
            ):
                log.warning("%s: the cancel of %s did not reach IB: sent again", self.venue, cid)
                self._send_cancel(order)

    def _foreign(self, t: IBTrade) -> bool:
        """An open order of our client id and route that we did not place (in this process)."""
        s = self.session
        o, c = t.order, t.contract
        if s is None or o.clientId != s.client_id or c.secType != "STK":
            return False
        if (c.exchange or "SMART") != self.route:
            return False
        return (o.orderRef or f"ib-{o.orderId}") not in self._om.orders

    def _restored(self, orders: list[Order], fills: list[Fill]) -> None:
        """Orders rebuilt from a journal: IB knows them by orderId (and orderRef = our id)."""
        for o in orders:
            if o.is_open and o.broker_order_id is None:
                self._restored_unsent.add(o.client_order_id)
            bid = o.broker_order_id
            if bid and bid.isdigit():
                self._cid_by_oid[int(bid)] = o.client_order_id
                self._oid_by_cid[o.client_order_id] = int(bid)

    def _adopt(self, t: IBTrade) -> str | None:
        """An open order of our client id and route that we did not place in this process."""
        if not self._foreign(t):
            return None
        o, c = t.order, t.contract
        ref = o.orderRef or f"ib-{o.orderId}"
        otype = _FROM_IB_TYPE.get(o.orderType)
        tif = _FROM_IB_TIF.get(o.tif, TimeInForce.DAY)
        if otype is None:
            log.warning(
                "%s: open IB order %s of type %s left alone", self.venue, o.orderId, o.orderType
            )
            return None
        filled = float(t.orderStatus.filled or 0.0)
        now = self.clock.now_ns()
        order = Order(
            client_order_id=ref,
            venue=self.venue,
            symbol=c.symbol,
            side=Side.BUY if o.action == "BUY" else Side.SELL,
            qty=float(o.totalQuantity),
            type=otype,
            limit_price=_price(o.lmtPrice),
            stop_price=_price(o.auxPrice),
            tif=tif if o.orderType not in ("MOC", "LOC") else TimeInForce.CLS,
            extended_hours=bool(o.outsideRth),
            status=OrderStatus.PARTIALLY_FILLED if filled > _EPS else OrderStatus.NEW,
            filled_qty=filled,
            avg_fill_price=float(t.orderStatus.avgFillPrice) if filled > _EPS else None,
            broker_order_id=str(o.orderId),
            created_ts=now,
            updated_ts=now,
            accepted_ts=now,
        )
        self._om.adopt(order)
        self._cid_by_oid[int(o.orderId)] = ref
        self._oid_by_cid[ref] = int(o.orderId)
        return ref


# --------------------------------------------------------------------------------- data feed


@dataclass(frozen=True, slots=True)
class DepthBook:
    """A market-depth snapshot of one exchange (an optional feed event, published only for
    ``subscribe_depth``): levels best first, ``(price, size, market_maker)``."""

    ts: int
    symbol: str
    exchange: str
    bids: tuple[tuple[float, float, str], ...]
    asks: tuple[tuple[float, float, str], ...]
    venue: str = ""

    @property
    def time(self) -> datetime:
        from ..timeutil import from_ns

        return from_ns(self.ts)


@dataclass(slots=True)
class _Sub:
    symbol: str
    kind: str  # mkt | tbt_quotes | tbt_trades | depth | fx
    contract: Contract
    quotes: bool = True
    trades: bool = True
    rows: int = 5
    ticker: Any = None
    last_quote: tuple[float, float, float, float] | None = None


_TIMEFRAMES: Final = {
    "1s": ("1 secs", 1),
    "1sec": ("1 secs", 1),
    "5s": ("5 secs", 5),
    "5sec": ("5 secs", 5),
    "10s": ("10 secs", 10),
    "15s": ("15 secs", 15),
    "30s": ("30 secs", 30),
    "1min": ("1 min", 60),
    "2min": ("2 mins", 120),
    "3min": ("3 mins", 180),
    "5min": ("5 mins", 300),
    "10min": ("10 mins", 600),
    "15min": ("15 mins", 900),
    "20min": ("20 mins", 1200),
    "30min": ("30 mins", 1800),
    "1h": ("1 hour", 3600),
    "1hour": ("1 hour", 3600),
    "2h": ("2 hours", 7200),
    "4h": ("4 hours", 14400),
    "1d": ("1 day", 86400),
    "1day": ("1 day", 86400),
}


def _bar_setting(timeframe: str) -> tuple[str, int]:
    key = timeframe.strip().lower().replace(" ", "")
    if key not in _TIMEFRAMES:
        raise ConfigError(
            f"timeframe {timeframe!r} is not an IB bar size; allowed: 1Sec, 5Sec, 1Min, 5Min, "
            f"15Min, 30Min, 1Hour, 4Hour, 1Day",
            key="timeframe",
        )
    return _TIMEFRAMES[key]


def _as_ns(value: Any, *, end: bool = False) -> int:
    """int ns, tz-aware datetime, ISO text with an offset, or a date (``2026-11-24``: midnight
    New York; as an end, the midnight after)."""
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        value = date.fromisoformat(value.strip())
    if isinstance(value, date) and not isinstance(value, datetime):
        day = value + timedelta(days=1) if end else value
        return to_ns(datetime(day.year, day.month, day.day, tzinfo=_ET))
    return to_ns(value)


def _dt(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // NS_PER_S, UTC)


class IBKRDataFeed(DataFeed):
    """Market data from TWS or IB Gateway: top of book and trades (``reqMktData``, or
    tick-by-tick with ``tick_by_tick=True``) pushed as ``Quote``/``Trade`` with the venue set,
    depth per exchange (``subscribe_depth``: :class:`DepthBook` events), FX quotes for currency
    conversion (``subscribe_fx("USD.CAD")``: CASH contracts on IDEALPRO), and history
    (``history``: bars and ticks as DataFrames in the replay columns; ``download`` writes the
    replay file format). Shares the connection of a broker with the same host, port and client
    id; resubscribes after a reconnect or error 1101."""

    name = "ibkr"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 7497,
        client_id: int = 1,
        *,
        venue: str | None = None,
        account: str | None = None,
        route: str = "SMART",
        currency: str = "USD",
        tick_by_tick: bool = False,
        market_data_type: int = 1,
        clock: Clock | Any = None,
        connect_timeout: float = 4.0,
        max_msgs_per_sec: int = 40,
        reconnect: bool = True,
        reconnect_delay: float = 0.5,
        reconnect_max_delay: float = 30.0,
        historical_pacer: HistoricalPacer | None = None,
        request_timeout: float = 30.0,
    ) -> None:
        self.host, self.port, self.client_id = _check_address(host, port, client_id)
        self.route, self.currency = _check_route(route, currency)
        _check_pacing(max_msgs_per_sec)
        if venue is None and self.route != "SMART":
            venue = f"ibkr_{self.route.lower()}"
        super().__init__(venue=venue)
        if market_data_type not in (1, 2, 3, 4):
            raise ConfigError(
                f"market_data_type {market_data_type!r} must be 1 live, 2 frozen, 3 delayed or "
                f"4 delayed-frozen",
                key="market_data_type",
            )
        self.account = account
        self.tick_by_tick = bool(tick_by_tick)
        self.market_data_type = market_data_type
        self.clock: Clock = as_clock(clock) or WallClock()
        self.request_timeout = float(request_timeout)
        self._session_options: dict[str, Any] = {
            "account": account,
            "connect_timeout": connect_timeout,
            "max_msgs_per_sec": max_msgs_per_sec,
            "reconnect": reconnect,
            "reconnect_delay": reconnect_delay,
            "reconnect_max_delay": reconnect_max_delay,
            "historical_pacer": historical_pacer,
        }
        self.session: IBSession | None = None
        self._subs: dict[tuple[str, str], _Sub] = {}
        self._by_ticker: dict[int, list[_Sub]] = {}
        self.fx_rates: dict[str, float] = {}
        self._wired = False

    def __repr__(self) -> str:
        return f"IBKRDataFeed(venue={self.venue!r}, {self.host}:{self.port}, route={self.route!r})"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _require_session(self) -> IBSession:
        if self.session is None:
            raise Disconnected(f"{self.venue} feed: not connected to {self.address}")
        return self.session

    # ---- life ---------------------------------------------------------------------------------
    async def _connect(self) -> None:
        opts = dict(self._session_options)
        if opts.get("historical_pacer") is None:
            opts.pop("historical_pacer")
        s = IBSession.shared(self.host, self.port, self.client_id, route=self.route, **opts)
        self.session = s
        try:
            await s.open(self)
        except BaseException:
            self.session = None
            raise
        if not self._wired:
            s.ib.pendingTickersEvent += self._on_tickers
            self._wired = True
        if self.market_data_type != 1:
            await s.paced(1, "reqMarketDataType")
            s.ib.reqMarketDataType(self.market_data_type)
        for sub in list(self._subs.values()):
            s.spawn(self._start(sub), name=f"ib-sub-{sub.symbol}")

    async def _close(self) -> None:
        s = self.session
        if s is None:
            return
        if s.ib.isConnected():
            for sub in list(self._subs.values()):
                with contextlib.suppress(Exception):
                    await self._stop(sub)
        if self._wired:
            s.ib.pendingTickersEvent -= self._on_tickers
            self._wired = False
        self._by_ticker.clear()
        self.session = None
        await s.release(self)

    async def _on_session_up(self, reason: str) -> None:
        if reason == "1102":
            return  # data maintained
        s = self._require_session()
        if self.market_data_type != 1:
            await s.paced(1, "reqMarketDataType")
            s.ib.reqMarketDataType(self.market_data_type)
        self._by_ticker.clear()
        for sub in self._subs.values():
            sub.ticker = None
            sub.last_quote = None
            await self._start(sub)
        log.info("%s feed: %d subscriptions renewed (%s)", self.venue, len(self._subs), reason)

    def _on_session_down(self, reason: str) -> None:
        log.warning("%s feed: market data interrupted (%s)", self.venue, reason)

    async def sync(self) -> None:
        """Wait until the subscription requests went out and TWS's answers were processed."""
        s = self._require_session()
        for _ in range(3):
            await asyncio.sleep(0)
        pending = [t for t in s._tasks if t.get_name().startswith("ib-sub-")]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        await s.ping(self.request_timeout)
        await asyncio.sleep(0)

    # ---- subscriptions ------------------------------------------------------------------------
    def _on_subscribe(self, symbols: set[str], *, quotes: bool, trades: bool, bars: bool) -> None:
        if bars:
            log.warning("%s feed: live bars are not streamed; use history(kind='bars')", self.venue)
        for sym in sorted(symbols):
            if not (quotes or trades):
                continue
            if self.tick_by_tick:
                kinds = ([("tbt_quotes", True, False)] if quotes else []) + (
                    [("tbt_trades", False, True)] if trades else []
                )
            else:
                kinds = [("mkt", quotes, trades)]
            for kind, q, t in kinds:
                key = (sym, kind)
                sub = self._subs.get(key)
                if sub is not None:
                    sub.quotes |= q
                    sub.trades |= t
                    continue
                sub = _Sub(sym, kind, Stock(sym, self.route, self.currency), q, t)
                self._subs[key] = sub
                if self.session is not None:
                    self.session.spawn(self._start(sub), name=f"ib-sub-{sym}")

    def _on_unsubscribe(self, symbols: set[str]) -> None:
        for key in [k for k in self._subs if k[0] in symbols]:
            sub = self._subs.pop(key)
            if self.session is not None and self.session.ib.isConnected():
                self.session.spawn(self._stop(sub), name=f"ib-unsub-{sub.symbol}")

    def subscribe_depth(
        self, symbol: str, *, rows: int = 5, exchange: str | None = None, smart: bool = False
    ) -> None:
        """Publish :class:`DepthBook` events of ``symbol`` on ``exchange`` (default: the route;
        ``smart=True``: IB's aggregated SMART depth). IB allows few simultaneous depth
        subscriptions (3 by default)."""
        ex = (exchange or self.route).upper()
        sub = _Sub(symbol, "depth", Stock(symbol, ex, self.currency), rows=int(rows))
        sub.trades = smart  # (re-used as the isSmartDepth flag)
        self._subs[(symbol, f"depth:{ex}")] = sub
        if self.session is not None:
            self.session.spawn(self._start(sub), name=f"ib-sub-{symbol}")

    def subscribe_fx(self, pair: str) -> None:
        """Quotes of an FX pair (``"USD.CAD"``, ``"EUR.USD"``) on IDEALPRO, published as
        ``Quote`` with that symbol; ``fx_rate(pair)`` gives the latest mid."""
        p = pair.strip().upper().replace("/", ".")
        if not re.fullmatch(r"[A-Z]{3}\.[A-Z]{3}", p):
            raise ConfigError(f"FX pair {pair!r} must look like USD.CAD", key="fx")
        sub = _Sub(p, "fx", Forex(p.replace(".", "")), quotes=True, trades=False)
        self._subs[(p, "fx")] = sub
        if self.session is not None:
            self.session.spawn(self._start(sub), name=f"ib-sub-{p}")

    def fx_rate(self, pair: str) -> float | None:
        """The latest mid of ``pair`` (``"USD.CAD"``), or its inverse's reciprocal."""
        p = pair.strip().upper().replace("/", ".")
        if p in self.fx_rates:
            return self.fx_rates[p]
        a, _, b = p.partition(".")
        inv = self.fx_rates.get(f"{b}.{a}")
        return 1.0 / inv if inv else None

    def convert(self, amount: float, from_ccy: str, to_ccy: str) -> float | None:
        """``amount`` of ``from_ccy`` in ``to_ccy`` at the latest FX mid (None: no rate)."""
        if from_ccy.upper() == to_ccy.upper():
            return amount
        rate = self.fx_rate(f"{from_ccy}.{to_ccy}")
        return None if rate is None else amount * rate

    async def _start(self, sub: _Sub) -> None:
        s = self._require_session()
        if sub.kind == "fx":
            contract = await s.qualify(sub.contract)
        else:
            cd = await s.contract_details(sub.contract)
            contract = cd.contract if cd is not None else None
        if contract is None:
            log.error(
                "%s feed: IB has no security definition for %s (%s)",
                self.venue,
                sub.symbol,
                sub.contract.exchange,
            )
            return
        sub.contract = contract
        if sub.kind in ("mkt", "fx"):
            await s.paced(1, "reqMktData")
            ticker = s.ib.reqMktData(contract, "", False, False)
        elif sub.kind == "tbt_quotes":
            await s.paced(1, "reqTickByTickData")
            ticker = s.ib.reqTickByTickData(contract, "BidAsk")
        elif sub.kind == "tbt_trades":
            await s.paced(1, "reqTickByTickData")
            ticker = s.ib.reqTickByTickData(contract, "AllLast")
        else:
            await s.paced(1, "reqMktDepth")
            ticker = s.ib.reqMktDepth(contract, sub.rows, bool(sub.trades))
        sub.ticker = ticker
        subs = self._by_ticker.setdefault(id(ticker), [])
        if sub not in subs:
            subs.append(sub)

    async def _stop(self, sub: _Sub) -> None:
        s = self._require_session()
        t = sub.ticker
        if t is None:
            return
        subs = self._by_ticker.get(id(t), [])
        if sub in subs:
            subs.remove(sub)
        if sub.kind in ("mkt", "fx"):
            await s.paced(1, "cancelMktData")
            s.ib.cancelMktData(sub.contract)
        elif sub.kind == "tbt_quotes":
            await s.paced(1, "cancelTickByTickData")
            s.ib.cancelTickByTickData(sub.contract, "BidAsk")
        elif sub.kind == "tbt_trades":
            await s.paced(1, "cancelTickByTickData")
            s.ib.cancelTickByTickData(sub.contract, "AllLast")
        else:
            await s.paced(1, "cancelMktDepth")
            s.ib.cancelMktDepth(sub.contract, bool(sub.trades))
        sub.ticker = None

    # ---- ticks to events ----------------------------------------------------------------------
    def _on_tickers(self, tickers: Iterable[Any]) -> None:
        for t in tickers:
            for sub in self._by_ticker.get(id(t), ()):
                try:
                    self._emit(sub, t)
                except Exception:
                    log.exception("%s feed: bad ticker update for %s", self.venue, sub.symbol)

    def _emit(self, sub: _Sub, t: Any) -> None:
        ts = self.clock.now_ns()
        sym, venue = sub.symbol, self.venue
        if sub.kind in ("mkt", "fx"):
            if sub.trades:
                for tick in t.ticks:
                    if tick.tickType in (4, 68) and _finite(tick.price) and tick.price > 0:
                        self._publish(
                            Trade(ts, sym, float(tick.price), float(tick.size or 0), venue)
                        )
            if sub.quotes:
                q = (t.bid, t.bidSize, t.ask, t.askSize)
                if all(_finite(x) for x in q) and q[0] > 0 and q[2] > 0 and q != sub.last_quote:
                    sub.last_quote = q
                    if sub.kind == "fx":
                        self.fx_rates[sym] = (q[0] + q[2]) / 2
                    self._publish(
                        Quote(ts, sym, float(q[0]), float(q[1]), float(q[2]), float(q[3]), venue)
                    )
        elif sub.kind == "tbt_quotes":
            for tick in t.tickByTicks:
                if hasattr(tick, "bidPrice"):
                    q = (tick.bidPrice, tick.bidSize, tick.askPrice, tick.askSize)
                    if q[0] > 0 and q[2] > 0:
                        self._publish(
                            Quote(
                                ts, sym, float(q[0]), float(q[1]), float(q[2]), float(q[3]), venue
                            )
                        )
        elif sub.kind == "tbt_trades":
            for tick in t.tickByTicks:
                if hasattr(tick, "tickAttribLast") and tick.price > 0:
                    self._publish(Trade(ts, sym, float(tick.price), float(tick.size), venue))
        elif sub.kind == "depth" and t.domTicks:
            self._publish(
                DepthBook(
                    ts,
                    sym,
                    sub.contract.exchange,
                    tuple((float(d.price), float(d.size), d.marketMaker) for d in t.domBids),
                    tuple((float(d.price), float(d.size), d.marketMaker) for d in t.domAsks),
                    venue,
                )
            )

    # ---- history ------------------------------------------------------------------------------
    async def _hist_contract(self, symbol: str) -> Contract:
        s = self._require_session()
        if re.fullmatch(r"[A-Z]{3}\.[A-Z]{3}", symbol):
            c = await s.qualify(Forex(symbol.replace(".", "")))
        else:
            cd = await s.contract_details(Stock(symbol, self.route, self.currency))
            c = cd.contract if cd is not None else None
        if c is None:
            raise DataError(f"IB has no security definition for {symbol}")
        return c

    async def history(
        self,
        symbol: str,
        start: Any,
        end: Any,
        *,
        kind: str = "bars",
        timeframe: str = "1Min",
        use_rth: bool = False,
    ) -> pd.DataFrame:
        """Historical ``bars`` (``timeframe``), ``quotes`` (BID_ASK ticks) or ``trades``
        (TRADES ticks) of ``symbol`` in ``[start, end)`` as a DataFrame with the replay columns
        (``ts`` int ns UTC, ``symbol``, ...). Requests are chunked and paced."""
        import pandas as pd

        from ..feeds.replay import COLUMNS

        if kind not in COLUMNS:
            raise ConfigError(f"kind {kind!r} must be quotes, trades or bars", key="kind")
        lo, hi = _as_ns(start), _as_ns(end, end=True)
        if hi <= lo:
            raise ConfigError(f"end {end!r} must be after start {start!r}", key="end")
        contract = await self._hist_contract(symbol)
        if kind == "bars":
            rows = await self._bars(contract, symbol, lo, hi, timeframe, use_rth)
        else:
            rows = await self._ticks(contract, symbol, lo, hi, kind, use_rth)
        df = pd.DataFrame(rows, columns=list(COLUMNS[kind]))
        if not df.empty:
            df = df.sort_values("ts", kind="stable").reset_index(drop=True)
        df["ts"] = df["ts"].astype("int64")
        df.attrs["kind"] = kind
        return df

    async def _bars(
        self, contract: Contract, symbol: str, lo: int, hi: int, timeframe: str, use_rth: bool
    ) -> list[tuple[Any, ...]]:
        s = self._require_session()
        setting, step = _bar_setting(timeframe)
        max_span = 86400 if step < 300 else (7 * 86400 if step < 3600 else 365 * 86400)
        what = "MIDPOINT" if contract.secType == "CASH" else "TRADES"
        out: dict[int, tuple[Any, ...]] = {}
        end_s = math.ceil(hi / NS_PER_S)
        lo_s = lo // NS_PER_S
        while end_s > lo_s:
            span = min(max_span, end_s - lo_s)
            duration = f"{span} S" if span <= 86400 else f"{math.ceil(span / 86400)} D"
            end_dt = _dt(end_s * NS_PER_S)
            key = ("bars", contract.conId, contract.exchange, end_s, setting, duration, what)
            await s.historical.acquire(key, contract.conId)
            bars = await s.request(
                functools.partial(
                    s.ib.reqHistoricalDataAsync,
                    contract,
                    end_dt,
                    duration,
                    setting,
                    what,
                    use_rth,
                    formatDate=2,
                    timeout=self.request_timeout,
                ),
                "reqHistoricalData",
                timeout=self.request_timeout + 5,
            )
            for b in bars or ():
                d = b.date
                if isinstance(d, datetime):
                    ts = to_ns(d if d.tzinfo else d.replace(tzinfo=UTC))
                else:
                    ts = to_ns(datetime(d.year, d.month, d.day, tzinfo=_ET))
                if lo <= ts < hi:
                    out[ts] = (
                        ts,
                        symbol,
                        float(b.open),
                        float(b.high),
                        float(b.low),
                        float(b.close),
                        float(b.volume),
                    )
            end_s -= span
        return [out[k] for k in sorted(out)]

    async def _ticks(
        self, contract: Contract, symbol: str, lo: int, hi: int, kind: str, use_rth: bool
    ) -> list[tuple[Any, ...]]:
        s = self._require_session()
        what = "BID_ASK" if kind == "quotes" else "TRADES"
        if contract.secType == "CASH" and kind == "trades":
            raise DataError(f"IB has no trades for FX pair {symbol}; ask for quotes")
        rows: list[tuple[Any, ...]] = []
        cursor = lo // NS_PER_S
        skip = 0  # ticks at ``cursor`` already taken from the previous page
        hi_s = math.ceil(hi / NS_PER_S)
        while cursor < hi_s:
            key = ("ticks", contract.conId, contract.exchange, cursor, what)
            await s.historical.acquire(key, contract.conId)
            start_dt = _dt(cursor * NS_PER_S)
            end_dt = _dt(hi_s * NS_PER_S)
            ticks = await s.request(
                functools.partial(
                    s.ib.reqHistoricalTicksAsync, contract, start_dt, end_dt, 1000, what, use_rth
                ),
                "reqHistoricalTicks",
                timeout=self.request_timeout,
            )
            ticks = list(ticks or ())
            page = [t for t in ticks if to_ns(t.time) // NS_PER_S >= cursor]
            same = 0
            for t in page:
                t_s = to_ns(t.time) // NS_PER_S
                if t_s == cursor and same < skip:
                    same += 1
                    continue
                ts = to_ns(t.time)
                if not lo <= ts < hi:
                    continue
                if what == "BID_ASK":
                    rows.append(
                        (
                            ts,
                            symbol,
                            float(t.priceBid),
                            float(t.sizeBid),
                            float(t.priceAsk),
                            float(t.sizeAsk),
                        )
                    )
                else:
                    rows.append((ts, symbol, float(t.price), float(t.size)))
            if len(ticks) < 1000 or not page:
                break
            last_s = to_ns(page[-1].time) // NS_PER_S
            at_last = sum(1 for t in page if to_ns(t.time) // NS_PER_S == last_s)
            if last_s == cursor:
                skip += at_last - (skip if same else 0)
                if at_last >= 1000:
                    cursor += 1  # more than a page in one second: move on
                    skip = 0
            else:
                cursor, skip = last_s, at_last
        return rows

    async def download(
        self,
        symbol: str,
        start: Any,
        end: Any,
        out: str | Path,
        *,
        kind: str = "bars",
        timeframe: str = "1Min",
        use_rth: bool = False,
    ) -> Path:
        """``history(...)`` written to ``out`` (CSV or Parquet by the extension) in the replay
        file format; returns the path."""
        from ..feeds.replay import write_frame

        df = await self.history(symbol, start, end, kind=kind, timeframe=timeframe, use_rth=use_rth)
        path = write_frame(df, out, kind=kind)  # type: ignore[arg-type]
        log.info("%s: wrote %d %s rows of %s to %s", self.venue, len(df), kind, symbol, path)
        return path


async def download_async(
    symbol: str,
    start: Any,
    end: Any,
    kind: str,
    out: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 7497,
    client_id: int = 99,
    route: str = "SMART",
    currency: str = "USD",
    timeframe: str = "1Min",
    use_rth: bool = False,
    connect_timeout: float = 4.0,
) -> Path:
    """Download ``kind`` (quotes, trades, bars) of ``symbol`` in ``[start, end)`` from TWS or IB
    Gateway into ``out`` in the replay file format (``tradekit data download --venue ibkr``).
    ``start``/``end``: ISO-8601 with an offset, a date (New York midnights), int ns or a tz-aware
    datetime. Uses its own client id (default 99) so it can run beside a trading session."""
    feed = IBKRDataFeed(
        host, port, client_id, route=route, currency=currency, connect_timeout=connect_timeout
    )
    async with feed:
        return await feed.download(
            symbol, start, end, out, kind=kind, timeframe=timeframe, use_rth=use_rth
        )


def download(symbol: str, start: Any, end: Any, kind: str, out: str | Path, **options: Any) -> Path:
    """Blocking :func:`download_async`."""
    return asyncio.run(download_async(symbol, start, end, kind, out, **options))
