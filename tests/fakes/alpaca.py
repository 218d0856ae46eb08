"""A fake Alpaca that speaks the real wire protocols on 127.0.0.1, so alpaca-py runs end to end.

* REST (stdlib ``http.server`` in a thread, HTTP/1.1): ``/v2/account``, ``/v2/positions``,
  ``/v2/orders`` (POST, GET with ``status``/``limit``, DELETE all), ``/v2/orders/{id}`` (GET,
  PATCH = replace with a new order id, DELETE = cancel), ``/v2/orders:by_client_order_id``,
  ``/v2/assets/{symbol}``, ``/v2/clock``, and market-data history
  ``/v2/stocks/{quotes,trades,bars}`` paginated with ``next_page_token``. Auth by the
  ``APCA-API-KEY-ID``/``APCA-API-SECRET-KEY`` headers (401 otherwise).
* The trade-updates stream (``websockets``) at ``/stream``: JSON in binary frames, the
  ``authenticate``/``listen`` handshake alpaca-py sends, then ``trade_updates`` events (``new``,
  ``partial_fill``, ``fill``, ``canceled``, ``replaced``, ``rejected``, ...).
* The market-data stream at ``/v2/{iex,sip}``: msgpack, ``[{"T": "success", ...}]`` handshake,
  ``subscribe``/``unsubscribe``, quotes/trades/bars/statuses/LULD with msgpack ``Timestamp``
  ``t`` fields.

One order book and one account are shared by all three. Alpaca's rules are enforced: potential
wash trades (403 ``40310000``), sub-penny prices (422 ``42210000``; prices must arrive as exact
decimal text or numbers: every raw body is kept in ``bodies``), unique client order ids, held
quantity (403 insufficient qty), buying power (403), extended hours only for DAY limit orders
(422), replace/cancel of done orders (422 ``order is already in "filled" state``), unknown orders
(404) and a request budget (``rate_limit`` per ``rate_window`` seconds, 429 with
``X-RateLimit-*`` headers).

Test hooks: ``set_quote``/``trade`` (the venue's market: marketable orders fill at the touch on
arrival; ``set_quote(..., match=True)`` or ``cross`` also fill resting orders the new touch
reaches), ``fill`` (execute a resting order, partly or fully), ``fill_on_arrival`` (the next order
with that client order id is partly filled *before* its ``new`` event), ``fill_on_cancel`` (a
cancel is answered by a fill first; ``late``: its event goes out after the ``canceled`` one),
``resend_last`` (duplicate events), ``inject``/``fail_next`` (429 storms, 5xx, delays;
optionally after the request took effect), ``drop_trade_stream``/``drop_stream``/
``restore_trade_stream``, ``forget`` (the venue loses an order), ``push_*``/
``drop_data_streams``/``data_muted`` for the data stream, ``history`` for the REST history.

Trade-stream faults (seeded by ``seed``): ``duplicate_events`` (True: every event twice; a
float: that share of them), ``reorder_window`` (events go out shuffled in groups of up to that
many), ``delay_events_ms`` (each event waits up to that long), ``send_garbage(kind)`` (a
malformed message: ``json``, ``list``, ``no_data``, ``unknown_stream``, ``unknown_event``,
``missing_fields``, ``bad_number``, ``overfilled``). ``executions`` lists every execution
(``FakeExecution``) with its id, as ``fill`` events carry it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgpack
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tradekit.brokers.alpaca import AlpacaBroker
from tradekit.clock import SimClock
from tradekit.enums import Liquidity, OrderStatus, Side
from tradekit.fees import FeeModel
from tradekit.model import Order, Quote, Trade
from tradekit.testing import DEFAULT_START, BrokerHarness
from tradekit.timeutil import iso, parse_iso_ns, to_ns

#: the fake's websocket servers (frames, which carry the keys, are not logged)
_LOG = logging.getLogger("tests.fakes.alpaca")
_LOG.setLevel(logging.INFO)

OPEN = frozenset({"new", "partially_filled", "accepted", "pending_new"})
D0 = Decimal(0)


def _s(d: Decimal | None) -> str | None:
    """A decimal as Alpaca writes it: plain text, no exponent, no trailing zeros."""
    if d is None:
        return None
    t = format(d.normalize(), "f")
    return t


def iso_ns(ns: int) -> str:
    """ISO-8601 UTC text with all nine digits of the nanoseconds (as Alpaca's data API)."""
    whole, frac = divmod(ns, 1_000_000_000)
    return iso(whole * 1_000_000_000).removesuffix("Z") + f".{frac:09d}Z"


def _dec(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        return Decimal(value)
    raise InvalidOperation(f"not a number: {value!r}")


class ApiError(Exception):
    """An error answer of the fake."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}


@dataclass
class Fault:
    """An injected failure: requests matching ``method`` (``*``: any) and ``path`` (a prefix)
    get ``status`` (with ``body``/``headers``) ``times`` times; ``apply``: the request takes
    effect first (the answer is lost: an unknown outcome); ``delay``: seconds to wait first."""

    method: str
    path: str
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    apply: bool = False
    delay: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and self.method in ("*", method) and path.startswith(self.path)


@dataclass(frozen=True)
class FakeExecution:
    """One execution at the fake (what a ``fill``/``partial_fill`` event reports)."""

    exec_id: str
    order_id: str
    client_order_id: str
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    cum_qty: Decimal


#: kinds of ``send_garbage``
GARBAGE_KINDS = (
    "json",
    "list",
    "no_data",
    "unknown_stream",
    "unknown_event",
    "missing_fields",
    "bad_number",
    "overfilled",
)


@dataclass
class FakeOrder:
    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    tif: str
    qty: Decimal
    limit_price: Decimal | None
    stop_price: Decimal | None
    extended_hours: bool
    created_at: int
    status: str = "new"
    filled_qty: Decimal = D0
    filled_value: Decimal = D0
    updated_at: int = 0
    filled_at: int | None = None
    canceled_at: int | None = None
    expired_at: int | None = None
    replaced_at: int | None = None
    replaced_by: str | None = None
    replaces: str | None = None

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled_qty

    @property
    def is_open(self) -> bool:
        return self.status in OPEN


@dataclass(frozen=True)
class _Raw:
    """A trade-stream message sent as these bytes (malformed on purpose)."""

    data: bytes


#: an outbox marker: drop the trade-stream connections once the events before it went out
_CUT = _Raw(b"")


@dataclass(eq=False)
class _DataConn:
    ws: ServerConnection
    feed: str
    subs: dict[str, set[str]] = field(default_factory=dict)

    def wants(self, channel: str, symbol: str) -> bool:
        s = self.subs.get(channel, set())
        return symbol in s or "*" in s


_CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")


class FakeAlpaca:
    """See the module docstring. ``clock``: a callable giving "now" in ns (the harness's
    simulated clock; default the wall clock)."""

    def __init__(
        self,
        *,
        key: str = "KEY",
        secret: str = "SECRET",
        clock: Callable[[], int] | None = None,
        cash: float = 100_000.0,
        rate_limit: int = 200,
        rate_window: float = 60.0,
        page_size: int = 10_000,
        fees: FeeModel | None = None,
        leverage: float = 2.0,
        seed: int = 0,
    ) -> None:
        self.key = key
        self.secret = secret
        self.clock: Callable[[], int] = clock or time.time_ns
        self.lock = threading.RLock()
        self.cash = float(cash)
        self.leverage = leverage
        self.fees = fees or FeeModel.for_broker("alpaca")
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.page_size = page_size
        self.orders: dict[str, FakeOrder] = {}
        self.by_cid: dict[str, str] = {}
        self.positions: dict[str, tuple[Decimal, Decimal]] = {}  # qty (signed), avg entry
        self.quotes: dict[str, tuple[float, float, float, float]] = {}
        self.assets: dict[str, dict[str, Any]] = {}
        self.unknown_symbols: set[str] = set()
        self.shorting_enabled = True
        # what arrived
        self.bodies: list[tuple[str, str, str]] = []  # (method, path, raw body) of POST/PATCH
        self.requests: list[tuple[float, str, str, int]] = []  # (monotonic, method, path, status)
        self.history_requests: list[dict[str, str]] = []
        self.faults: list[Fault] = []
        self.fill_on_arrival: dict[str, tuple[float, float]] = {}
        #: client order id (of the Alpaca order) -> (qty, price or None: its limit, late)
        self.fill_on_cancel: dict[str, tuple[float, float | None, bool]] = {}
        #: client order ids whose late fill (``fill_on_cancel``) is lost: the trade stream drops
        #: between the cancel confirmation and the fill's event
        self.cut_after_cancel: set[str] = set()
        self.executions: list[FakeExecution] = []
        #: POSTs refused because their client order id was used before
        self.duplicate_cid_posts = 0
        # trade-stream faults
        self.rng = random.Random(seed)
        self.duplicate_events: bool | float = False
        self.reorder_window = 0
        self.delay_events_ms = 0.0
        self.garbage_sent = 0
        self.garbage_delivered = 0
        #: messages sent on the current trade-stream connection
        self.conn_delivered = 0
        self.history: dict[str, dict[str, list[dict[str, Any]]]] = {
            "quotes": {},
            "trades": {},
            "bars": {},
        }
        # events
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.emitted = 0
        self.delivered = 0
        self.dropped = 0
        self._hits: deque[float] = deque()
        self._ids = itertools.count(1)
        # servers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        self._trade_server: Server | None = None
        self._data_server: Server | None = None
        self._outbox: asyncio.Queue[dict[str, Any]] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._trade_conns: set[ServerConnection] = set()
        self._data_conns: set[_DataConn] = set()
        self.trade_stream_enabled = True
        self.trade_connections = 0
        self.data_connections = 0
        self.data_muted = False
        self.data_subscribe_messages: list[dict[str, Any]] = []
        self.http_port = 0
        self.trade_port = 0
        self.data_port = 0

    # ------------------------------------------------------------------------------ life
    async def start(self) -> FakeAlpaca:
        self._loop = asyncio.get_running_loop()
        self._outbox = asyncio.Queue()
        self._sender = self._loop.create_task(self._send_events())
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._http.daemon_threads = True
        self.http_port = self._http.server_address[1]
        self._http_thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._http_thread.start()
        self._trade_server = await serve(
            self._trade_handler,
            "127.0.0.1",
            0,
            process_request=self._trade_process_request,
            logger=_LOG,
        )
        self.trade_port = self._trade_server.sockets[0].getsockname()[1]  # type: ignore[index]
        self._data_server = await serve(
            self._data_handler,
            "127.0.0.1",
            0,
            process_request=self._data_process_request,
            logger=_LOG,
        )
        self.data_port = self._data_server.sockets[0].getsockname()[1]  # type: ignore[index]
        return self

    async def stop(self) -> None:
        for srv in (self._trade_server, self._data_server):
            if srv is not None:
                srv.close()
                await srv.wait_closed()
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(BaseException):
                await self._sender
        if self._http is not None:
            http = self._http
            await asyncio.to_thread(http.shutdown)
            http.server_close()
            self._http = None

    async def __aenter__(self) -> FakeAlpaca:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def stream_url(self) -> str:
        return f"ws://127.0.0.1:{self.trade_port}/stream"

    def data_stream_url(self, feed: str = "iex") -> str:
        return f"ws://127.0.0.1:{self.data_port}/v2/{feed}"

    # ------------------------------------------------------------------------------ market
    def set_quote(
        self,
        symbol: str,
        bid: float,
        bid_size: float,
        ask: float,
        ask_size: float,
        *,
        match: bool = False,
    ) -> None:
        """The venue's top of book; ``match``: resting orders it reaches fill (``cross``)."""
        with self.lock:
            self.quotes[symbol] = (bid, bid_size, ask, ask_size)
            if match:
                self.cross(symbol)

    def asset(self, symbol: str) -> dict[str, Any] | None:
        if symbol in self.unknown_symbols:
            return None
        a = self.assets.get(symbol)
        if a is None:
            a = {
                "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, symbol)),
                "class": "us_equity",
                "exchange": "NASDAQ",
                "symbol": symbol,
                "name": f"{symbol} Inc. Common Stock",
                "status": "active",
                "tradable": True,
                "marginable": True,
                "shortable": True,
                "easy_to_borrow": True,
                "fractionable": True,
                "min_order_size": "0.000000001",
                "min_trade_increment": "0.000000001",
                "price_increment": "0.01",
                "attributes": [],
            }
            self.assets[symbol] = a
        return a

    # ------------------------------------------------------------------------------ hooks
    def inject(
        self,
        method: str = "*",
        path: str = "",
        status: int = 500,
        *,
        times: int = 1,
        body: Any = None,
        headers: dict[str, str] | None = None,
        apply: bool = False,
        delay: float = 0.0,
    ) -> Fault:
        """Make the next ``times`` requests matching ``method``/``path`` fail (see ``Fault``)."""
        if body is None:
            body = (
                {"code": 42910000, "message": "rate limit exceeded"}
                if status == 429
                else {"code": 50010000, "message": "internal server error"}
            )
        f = Fault(method, path, status, body, headers or {}, times, apply, delay)
        with self.lock:
            self.faults.append(f)
        return f

    def fail_next(
        self, n: int = 1, status: int = 429, *, method: str = "*", path: str = "", **kw: Any
    ) -> Fault:
        """The next ``n`` requests (matching ``method``/``path``) fail with ``status``; a 429
        says ``Retry-After: 0.05`` unless ``headers`` are given (see ``inject``)."""
        if status == 429:
            kw.setdefault("headers", {"Retry-After": "0.05"})
        return self.inject(method, path, status, times=n, **kw)

    def forget(self, order_id: str) -> None:
        """The venue loses an order (no event; unknown by id and client order id from now)."""
        with self.lock:
            o = self.orders.pop(order_id)
            self.by_cid.pop(o.client_order_id, None)

    def send_garbage(self, kind: str = "json") -> None:
        """Put a malformed message on the trade stream (see ``GARBAGE_KINDS``)."""
        with self.lock:
            some = next(iter(self.orders.values()), None)
            order = self._order_json(some) if some is not None else None
        base_order = order or {"id": str(uuid.uuid4()), "client_order_id": "nobody", "qty": "1"}
        msg: Any
        if kind == "json":
            msg = b'{"stream": "trade_updates", "data": {"event": "fill", ' + bytes(
                [self.rng.randrange(256) for _ in range(8)]
            )
        elif kind == "list":
            msg = json.dumps([{"stream": "trade_updates"}, 1, None]).encode()
        elif kind == "no_data":
            msg = json.dumps({"stream": "trade_updates", "data": None}).encode()
        elif kind == "unknown_stream":
            msg = json.dumps({"stream": "account_updates", "data": {"cash": "1"}}).encode()
        elif kind == "unknown_event":
            msg = {
                "stream": "trade_updates",
                "data": {
                    "event": "teleported",
                    "timestamp": iso(self.clock()),
                    "order": base_order,
                },
            }
        elif kind == "missing_fields":
            o = dict(base_order)
            o.pop("id", None)
            msg = {"stream": "trade_updates", "data": {"event": "fill", "order": o}}
        elif kind == "bad_number":
            o = dict(base_order, filled_qty="NaN", filled_avg_price="-1")
            msg = {
                "stream": "trade_updates",
                "data": {"event": "partial_fill", "timestamp": iso(self.clock()), "order": o},
            }
        elif kind == "overfilled":
            o = dict(base_order, filled_qty="1000000000", filled_avg_price="1")
            msg = {
                "stream": "trade_updates",
                "data": {"event": "fill", "timestamp": iso(self.clock()), "order": o},
            }
        else:
            raise ValueError(f"garbage kind {kind!r} is not one of {GARBAGE_KINDS}")
        self.garbage_sent += 1
        self._emit(_Raw(msg if isinstance(msg, bytes) else json.dumps(msg).encode()), None)

    def cross(self, symbol: str) -> int:
        """Execute resting limit orders of ``symbol`` that the current quote reaches (as makers,
        at their limit, up to the size at the touch); returns how many executions."""
        n = 0
        with self.lock:
            q = self.quotes.get(symbol)
            if q is None:
                return 0
            bid, bs, ask, asz = q
            for o in list(self.orders.values()):
                if not o.is_open or o.symbol != symbol or o.type != "limit":
                    continue
                assert o.limit_price is not None
                if o.side == "buy" and ask > 0 and Decimal(str(ask)) <= o.limit_price:
                    size = Decimal(str(asz))
                elif o.side == "sell" and bid > 0 and Decimal(str(bid)) >= o.limit_price:
                    size = Decimal(str(bs))
                else:
                    continue
                qty = min(o.remaining, size)
                if qty > 0:
                    self._execute(o, qty, o.limit_price)
                    n += 1
        return n

    def current_id(self, client_order_id: str) -> str | None:
        """The id of the newest Alpaca order of a client order id (following replaces)."""
        with self.lock:
            oid = self.by_cid.get(client_order_id)
            while oid is not None and self.orders[oid].replaced_by:
                oid = self.orders[oid].replaced_by
            return oid

    def fill(self, order_id: str, qty: float, price: float | None = None) -> None:
        """Execute ``qty`` of a resting order at ``price`` (default its limit price)."""
        with self.lock:
            o = self.orders[order_id]
            if not o.is_open:
                raise ValueError(f"order {order_id} is {o.status}")
            px = Decimal(str(price)) if price is not None else o.limit_price
            if px is None:
                raise ValueError("a price is needed to fill a market order")
            self._execute(o, min(Decimal(str(qty)), o.remaining), px)

    def resend_last(self, client_order_id: str) -> int:
        """Deliver again the latest fill event and the latest event of the order (its newest
        Alpaca order); returns how many were sent."""
        with self.lock:
            oid = self.current_id(client_order_id)
            evs = self.events.get(oid or "", [])
            out: list[dict[str, Any]] = []
            fills = [e for e in evs if e["data"]["event"] in ("fill", "partial_fill")]
            if fills:
                out.append(fills[-1])
            if evs and evs[-1] is not (fills[-1] if fills else None):
                out.append(evs[-1])
            for e in out:
                self._emit(e, None)
            return len(out)

    def expire(self, order_id: str) -> None:
        with self.lock:
            o = self.orders[order_id]
            o.status = "expired"
            o.expired_at = o.updated_at = self.clock()
            self._event("expired", o)

    async def flush(self) -> None:
        """Wait until every event emitted so far went out on the streams."""
        await asyncio.sleep(0)
        if self._outbox is not None:
            await self._outbox.join()

    async def drop_stream(self, *, refuse: bool = False) -> None:
        """Close the trade-stream connections (``refuse``: and refuse new ones until
        ``restore_trade_stream``)."""
        await self.drop_trade_stream(refuse=refuse)

    async def drop_trade_stream(self, *, refuse: bool = True) -> None:
        """Close every trade-stream connection; ``refuse``: refuse new ones until
        ``restore_trade_stream``."""
        self.trade_stream_enabled = not refuse
        for ws in list(self._trade_conns):
            await ws.close(1011, "going away")

    def restore_trade_stream(self) -> None:
        self.trade_stream_enabled = True

    async def drop_data_streams(self) -> None:
        for c in list(self._data_conns):
            await c.ws.close(1011, "going away")

    def subscribed(self, channel: str, symbol: str) -> bool:
        """Whether a data-stream connection is subscribed to ``symbol`` on ``channel``."""
        return any(c.wants(channel, symbol) for c in self._data_conns)

    # data stream pushes
    async def push(self, msg: dict[str, Any], channel: str) -> int:
        """Send one data message to the connections subscribed to its symbol on ``channel``."""
        if self.data_muted:
            return 0
        n = 0
        for c in list(self._data_conns):
            if c.wants(channel, msg["S"]):
                try:
                    await c.ws.send(msgpack.packb([msg]))
                    n += 1
                except ConnectionClosed:
                    pass
        return n

    @staticmethod
    def _ts(ns: int | None) -> msgpack.Timestamp:
        return msgpack.Timestamp.from_unix_nano(time.time_ns() if ns is None else ns)

    async def push_quote(
        self,
        symbol: str,
        bid: float,
        bid_size: float,
        ask: float,
        ask_size: float,
        ts: int | None = None,
    ) -> int:
        return await self.push(
            {
                "T": "q",
                "S": symbol,
                "bx": "V",
                "bp": bid,
                "bs": bid_size,
                "ax": "V",
                "ap": ask,
                "as": ask_size,
                "c": ["R"],
                "z": "C",
                "t": self._ts(ts),
            },
            "quotes",
        )

    async def push_trade(
        self, symbol: str, price: float, size: float, ts: int | None = None
    ) -> int:
        return await self.push(
            {
                "T": "t",
                "S": symbol,
                "i": next(self._ids),
                "x": "V",
                "p": price,
                "s": size,
                "c": ["@"],
                "z": "C",
                "t": self._ts(ts),
            },
            "trades",
        )

    async def push_bar(
        self, symbol: str, o: float, h: float, lo: float, c: float, v: float, ts: int | None = None
    ) -> int:
        return await self.push(
            {
                "T": "b",
                "S": symbol,
                "o": o,
                "h": h,
                "l": lo,
                "c": c,
                "v": v,
                "n": 10,
                "vw": (h + lo) / 2,
                "t": self._ts(ts),
            },
            "bars",
        )

    async def push_status(
        self,
        symbol: str,
        code: str,
        message: str = "",
        reason_code: str = "",
        ts: int | None = None,
    ) -> int:
        return await self.push(
            {
                "T": "s",
                "S": symbol,
                "sc": code,
                "sm": message,
                "rc": reason_code,
                "rm": "",
                "z": "C",
                "t": self._ts(ts),
            },
            "statuses",
        )

    async def push_luld(
        self, symbol: str, lower: float, upper: float, ts: int | None = None
    ) -> int:
        return await self.push(
            {"T": "l", "S": symbol, "u": upper, "d": lower, "i": "B", "z": "C", "t": self._ts(ts)},
            "lulds",
        )

    # ------------------------------------------------------------------------------ views
    def max_requests_in_window(self, window: float | None = None) -> int:
        """The most requests that arrived within any ``window`` seconds (default the budget's)."""
        w = self.rate_window if window is None else window
        times = sorted(t for t, *_ in self.requests)
        best, j = 0, 0
        for i, t in enumerate(times):
            while times[j] <= t - w:
                j += 1
            best = max(best, i - j + 1)
        return best

    def count(self, method: str, path: str = "", status: int | None = None) -> int:
        return sum(
            1
            for _, m, p, s in self.requests
            if m == method and p.startswith(path) and (status is None or s == status)
        )

    def open_orders(self) -> list[FakeOrder]:
        with self.lock:
            return [o for o in self.orders.values() if o.is_open]

    def position(self, symbol: str) -> float:
        with self.lock:
            return float(self.positions.get(symbol, (D0, D0))[0])

    # ------------------------------------------------------------------------------ books
    def _mark(self, symbol: str) -> float:
        q = self.quotes.get(symbol)
        if q and q[0] > 0 and q[2] > 0:
            return (q[0] + q[2]) / 2
        return float(self.positions.get(symbol, (D0, D0))[1])

    def equity(self) -> float:
        return self.cash + sum(float(q) * self._mark(s) for s, (q, _) in self.positions.items())

    def buying_power(self) -> float:
        gross = sum(abs(float(q)) * self._mark(s) for s, (q, _) in self.positions.items())
        reserved = 0.0
        for o in self.orders.values():
            if o.is_open:
                px = float(o.limit_price) if o.limit_price is not None else self._mark(o.symbol)
                reserved += float(o.remaining) * px
        return max(0.0, self.equity() * self.leverage - gross - reserved)

    def _apply_position(self, symbol: str, signed: Decimal, price: Decimal) -> Decimal:
        q, avg = self.positions.get(symbol, (D0, D0))
        new = q + signed
        if q == 0 or (q > 0) == (signed > 0):
            avg = (avg * abs(q) + price * abs(signed)) / abs(new) if new != 0 else D0
        elif (q > 0) != (new > 0) and new != 0:
            avg = price  # flipped
        if new == 0:
            self.positions.pop(symbol, None)
        else:
            self.positions[symbol] = (new, avg)
        return new

    def _execute(
        self,
        o: FakeOrder,
        qty: Decimal,
        price: Decimal,
        *,
        liquidity: Liquidity = Liquidity.MAKER,
        defer: list[dict[str, Any]] | None = None,
    ) -> None:
        """Execute ``qty`` of ``o`` at ``price``; ``defer``: its event is appended there instead
        of being sent."""
        if qty <= 0:
            return
        before_q, before_v = o.filled_qty, o.filled_value
        o.filled_qty += qty
        o.filled_value += qty * price
        now = self.clock()
        o.updated_at = now
        full = o.filled_qty >= o.qty
        o.status = "filled" if full else "partially_filled"
        if full:
            o.filled_at = now
        side = Side(o.side)
        fee = self.fees.fee(
            side,
            float(qty),
            float(price),
            liquidity,
            order_qty_before=float(before_q),
            order_value_before=float(before_v),
        )
        notional = float(qty * price)
        self.cash += -notional if side is Side.BUY else notional
        self.cash -= fee
        pos = self._apply_position(o.symbol, qty if side is Side.BUY else -qty, price)
        exec_id = str(uuid.uuid4())
        self.executions.append(
            FakeExecution(
                exec_id, o.id, o.client_order_id, o.symbol, o.side, qty, price, o.filled_qty
            )
        )
        self._event(
            "fill" if full else "partial_fill",
            o,
            defer=defer,
            execution_id=exec_id,
            price=_s(price),
            qty=_s(qty),
            position_qty=_s(pos),
        )

    # ------------------------------------------------------------------------------ events
    def _order_json(self, o: FakeOrder) -> dict[str, Any]:
        avg = o.filled_value / o.filled_qty if o.filled_qty > 0 else None
        a = self.asset(o.symbol) or {}
        return {
            "id": o.id,
            "client_order_id": o.client_order_id,
            "created_at": iso(o.created_at),
            "updated_at": iso(o.updated_at or o.created_at),
            "submitted_at": iso(o.created_at),
            "filled_at": iso(o.filled_at) if o.filled_at else None,
            "expired_at": iso(o.expired_at) if o.expired_at else None,
            "canceled_at": iso(o.canceled_at) if o.canceled_at else None,
            "failed_at": None,
            "replaced_at": iso(o.replaced_at) if o.replaced_at else None,
            "replaced_by": o.replaced_by,
            "replaces": o.replaces,
            "asset_id": a.get("id"),
            "symbol": o.symbol,
            "asset_class": "us_equity",
            "notional": None,
            "qty": _s(o.qty),
            "filled_qty": _s(o.filled_qty),
            "filled_avg_price": _s(avg.quantize(Decimal("1e-9"))) if avg is not None else None,
            "order_class": "",
            "order_type": o.type,
            "type": o.type,
            "side": o.side,
            "time_in_force": o.tif,
            "limit_price": _s(o.limit_price),
            "stop_price": _s(o.stop_price),
            "status": o.status,
            "extended_hours": o.extended_hours,
            "legs": None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "expires_at": None,
        }

    def _event(
        self, event: str, o: FakeOrder, *, defer: list[dict[str, Any]] | None = None, **extra: Any
    ) -> None:
        msg = {
            "stream": "trade_updates",
            "data": {
                "event": event,
                "timestamp": iso(self.clock()),
                "order": self._order_json(o),
                **extra,
            },
        }
        if defer is not None:
            defer.append(msg)
            return
        self._emit(msg, o.id)

    def _emit(self, msg: Any, order_id: str | None) -> None:
        if order_id is not None:
            self.events.setdefault(order_id, []).append(msg)
        self.emitted += 1
        loop, box = self._loop, self._outbox
        if loop is not None and box is not None:
            loop.call_soon_threadsafe(box.put_nowait, msg)

    async def _send_events(self) -> None:
        box = self._outbox
        assert box is not None
        while True:
            batch = [await box.get()]
            try:
                if self.reorder_window > 1:
                    while len(batch) < self.reorder_window:
                        try:
                            batch.append(await asyncio.wait_for(box.get(), 0.005))
                        except TimeoutError:
                            break
                    self.rng.shuffle(batch)
                for msg in batch:
                    if self.delay_events_ms > 0:
                        await asyncio.sleep(self.rng.uniform(0, self.delay_events_ms) / 1000)
                    dup = self.duplicate_events
                    twice = dup is True or (
                        isinstance(dup, float) and dup > 0 and self.rng.random() < dup
                    )
                    for _ in range(2 if twice else 1):
                        await self._deliver(msg)
            finally:
                for _ in batch:
                    box.task_done()

    async def _deliver(self, msg: Any) -> None:
        if msg is _CUT:  # the connection drops here: what follows goes to nobody
            for ws in list(self._trade_conns):
                self._trade_conns.discard(ws)
                with contextlib.suppress(Exception):
                    await ws.close(1011, "going away")
            return
        data = msg.data if isinstance(msg, _Raw) else json.dumps(msg).encode()
        sent = False
        for ws in list(self._trade_conns):
            try:
                await ws.send(data)
                sent = True
            except ConnectionClosed:
                pass
        if sent:
            self.delivered += 1
            self.conn_delivered += 1
            if isinstance(msg, _Raw):
                self.garbage_delivered += 1
        else:
            self.dropped += 1

    # ------------------------------------------------------------------------------ websockets
    def _trade_process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path != "/stream":
            return conn.respond(404, "not found\n")
        if not self.trade_stream_enabled:
            return conn.respond(503, "trade stream unavailable\n")
        return None

    async def _trade_handler(self, ws: ServerConnection) -> None:
        try:
            auth = json.loads(await ws.recv())
            data = auth.get("data") or {}
            ok = (
                auth.get("action") in ("authenticate", "auth")
                and data.get("key_id") == self.key
                and data.get("secret_key") == self.secret
            )
            status = "authorized" if ok else "unauthorized"
            await ws.send(
                json.dumps(
                    {
                        "stream": "authorization",
                        "data": {"action": "authenticate", "status": status},
                    }
                ).encode()
            )
            if not ok:
                await ws.close(1008, "unauthorized")
                return
            listen = json.loads(await ws.recv())
            streams = (listen.get("data") or {}).get("streams") or []
            await ws.send(
                json.dumps({"stream": "listening", "data": {"streams": streams}}).encode()
            )
            if "trade_updates" in streams:
                self._trade_conns.add(ws)
                self.trade_connections += 1
                self.conn_delivered = 0
            await ws.wait_closed()
        except ConnectionClosed:
            pass
        finally:
            self._trade_conns.discard(ws)

    def _data_process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path not in ("/v2/iex", "/v2/sip", "/v2/test"):
            return conn.respond(404, "not found\n")
        return None

    async def _data_handler(self, ws: ServerConnection) -> None:
        feed = urlsplit(ws.request.path).path.rsplit("/", 1)[-1] if ws.request else "iex"
        conn = _DataConn(ws, feed)
        try:
            await ws.send(msgpack.packb([{"T": "success", "msg": "connected"}]))
            auth = msgpack.unpackb(await ws.recv())
            if auth.get("key") != self.key or auth.get("secret") != self.secret:
                await ws.send(msgpack.packb([{"T": "error", "code": 402, "msg": "auth failed"}]))
                await ws.close()
                return
            await ws.send(msgpack.packb([{"T": "success", "msg": "authenticated"}]))
            self._data_conns.add(conn)
            self.data_connections += 1
            async for raw in ws:
                m = msgpack.unpackb(raw)
                self.data_subscribe_messages.append(m)
                action = m.get("action")
                for ch in _CHANNELS:
                    syms = set(m.get(ch) or [])
                    if not syms:
                        continue
                    cur = conn.subs.setdefault(ch, set())
                    if action == "subscribe":
                        cur |= syms
                    elif action == "unsubscribe":
                        cur -= syms
                reply = {
                    "T": "subscription",
                    **{ch: sorted(conn.subs.get(ch, ())) for ch in _CHANNELS},
                    "corrections": sorted(conn.subs.get("trades", ())),
                    "cancelErrors": sorted(conn.subs.get("trades", ())),
                }
                await ws.send(msgpack.packb([reply]))
        except ConnectionClosed:
            pass
        finally:
            self._data_conns.discard(conn)

    # ------------------------------------------------------------------------------ REST
    def handle(
        self, method: str, target: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        """One HTTP request -> (status, JSON body or None, headers)."""
        url = urlsplit(target)
        path = url.path
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        text = raw.decode() if raw else ""
        status, body, out_headers = self._handle(method, path, query, headers, text)
        self.requests.append((time.monotonic(), method, path, status))
        return status, body, out_headers

    def _handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], text: str
    ) -> tuple[int, Any, dict[str, str]]:
        if (
            headers.get("apca-api-key-id") != self.key
            or headers.get("apca-api-secret-key") != self.secret
        ):
            return 401, {"code": 40110000, "message": "request is not authorized"}, {}
        with self.lock:
            limited = self._rate_limited()
            if limited is not None:
                return limited
            fault = next((f for f in self.faults if f.matches(method, path)), None)
            if fault is not None:
                fault.times -= 1
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and not fault.apply:
            return fault.status, fault.body, dict(fault.headers)
        if method in ("POST", "PATCH"):
            self.bodies.append((method, path, text))
        try:
            with self.lock:
                status, body = self._route(method, path, query, text)
        except ApiError as e:
            return e.status, e.body, e.headers
        if fault is not None:  # it took effect, but the answer is lost
            return fault.status, fault.body, dict(fault.headers)
        return status, body, {}

    def _rate_limited(self) -> tuple[int, Any, dict[str, str]] | None:
        now = time.monotonic()
        hits = self._hits
        while hits and hits[0] <= now - self.rate_window:
            hits.popleft()
        if len(hits) >= self.rate_limit:
            reset = time.time() + (hits[0] + self.rate_window - now)
            return (
                429,
                {"code": 42910000, "message": "rate limit exceeded"},
                {
                    "X-RateLimit-Limit": str(self.rate_limit),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": f"{reset:.3f}",
                },
            )
        hits.append(now)
        return None

    def _route(self, method: str, path: str, q: dict[str, str], text: str) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        if not parts or parts[0] != "v2":
            raise ApiError(404, {"code": 40410000, "message": "endpoint not found"})
        rest = parts[1:]
        if rest == ["account"] and method == "GET":
            return 200, self._account_json()
        if rest == ["positions"] and method == "GET":
            return 200, [self._position_json(s) for s in sorted(self.positions)]
        if rest == ["clock"] and method == "GET":
            now = self.clock()
            return 200, {
                "timestamp": iso(now),
                "is_open": True,
                "next_open": iso(now),
                "next_close": iso(now),
            }
        if rest == ["orders:by_client_order_id"] and method == "GET":
            oid = self.by_cid.get(q.get("client_order_id", ""))
            if oid is None:
                raise ApiError(404, {"code": 40410000, "message": "order not found"})
            return 200, self._order_json(self.orders[oid])
        if rest == ["orders"]:
            if method == "POST":
                return 200, self._post_order(text)
            if method == "GET":
                return 200, self._list_orders(q)
            if method == "DELETE":
                out = []
                for o in list(self.orders.values()):
                    if o.is_open:
                        self._cancel(o)
                        out.append({"id": o.id, "status": 200, "body": self._order_json(o)})
                return 207, out
        if len(rest) == 2 and rest[0] == "orders":
            o = self.orders.get(rest[1])
            if o is None:
                raise ApiError(404, {"code": 40410000, "message": "order not found"})
            if method == "GET":
                return 200, self._order_json(o)
            if method == "DELETE":
                early = self.fill_on_cancel.pop(o.client_order_id, None)
                late: list[dict[str, Any]] = []
                if early is not None and o.is_open:
                    qty, px, deferred = early
                    price = Decimal(str(px)) if px is not None else o.limit_price
                    if price is not None:
                        self._execute(
                            o,
                            min(Decimal(str(qty)), o.remaining),
                            price,
                            defer=late if deferred else None,
                        )
                if not o.is_open:
                    for msg in late:
                        self._emit(msg, o.id)
                    raise ApiError(
                        422,
                        {"code": 42210000, "message": f'order is already in "{o.status}" state'},
                    )
                self._cancel(o)
                if late and o.client_order_id in self.cut_after_cancel:
                    self.cut_after_cancel.discard(o.client_order_id)
                    self._emit(_CUT, None)
                for msg in late:  # the fill's event after the cancel confirmation
                    self._emit(msg, o.id)
                return 204, None
            if method == "PATCH":
                return 200, self._replace(o, text)
        if len(rest) == 2 and rest[0] == "assets" and method == "GET":
            a = self.asset(rest[1])
            if a is None:
                raise ApiError(404, {"code": 40410000, "message": "asset not found"})
            return 200, a
        if len(rest) == 2 and rest[0] == "stocks" and method == "GET":
            return 200, self._history(rest[1], q)
        raise ApiError(404, {"code": 40410000, "message": "endpoint not found"})

    def _account_json(self) -> dict[str, Any]:
        eq = self.equity()
        long_mv = sum(float(q) * self._mark(s) for s, (q, _) in self.positions.items() if q > 0)
        short_mv = sum(float(q) * self._mark(s) for s, (q, _) in self.positions.items() if q < 0)
        return {
            "id": "e6fe16f3-64a4-4921-8928-cadf02f92f98",
            "account_number": "PA3FAKE00001",
            "status": "ACTIVE",
            "crypto_status": "ACTIVE",
            "currency": "USD",
            "buying_power": f"{self.buying_power():.2f}",
            "regt_buying_power": f"{self.buying_power():.2f}",
            "non_marginable_buying_power": f"{max(0.0, self.cash):.2f}",
            "cash": repr(round(self.cash, 6)),
            "accrued_fees": "0",
            "pending_transfer_in": "0",
            "portfolio_value": repr(round(eq, 6)),
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "created_at": "2024-06-01T12:00:00Z",
            "trade_suspended_by_user": False,
            "multiplier": "2",
            "shorting_enabled": self.shorting_enabled,
            "equity": repr(round(eq, 6)),
            "last_equity": repr(round(eq, 6)),
            "long_market_value": repr(round(long_mv, 6)),
            "short_market_value": repr(round(short_mv, 6)),
            "initial_margin": "0",
            "maintenance_margin": "0",
            "last_maintenance_margin": "0",
            "sma": "0",
            "options_buying_power": "0",
            "options_approved_level": 0,
            "options_trading_level": 0,
        }

    def _position_json(self, symbol: str) -> dict[str, Any]:
        q, avg = self.positions[symbol]
        mark = self._mark(symbol)
        a = self.asset(symbol) or {}
        return {
            "asset_id": a.get("id"),
            "symbol": symbol,
            "exchange": "NASDAQ",
            "asset_class": "us_equity",
            "asset_marginable": True,
            "qty": _s(q),
            "qty_available": _s(q),
            "avg_entry_price": _s(avg.quantize(Decimal("1e-6"))),
            "side": "long" if q > 0 else "short",
            "market_value": repr(round(float(q) * mark, 6)),
            "cost_basis": _s((avg * q).quantize(Decimal("1e-6"))),
            "unrealized_pl": repr(round(float(q) * (mark - float(avg)), 6)),
            "unrealized_plpc": "0",
            "unrealized_intraday_pl": "0",
            "unrealized_intraday_plpc": "0",
            "current_price": repr(mark),
            "lastday_price": repr(mark),
            "change_today": "0",
        }

    def _list_orders(self, q: dict[str, str]) -> list[dict[str, Any]]:
        status = q.get("status", "open")
        limit = int(q.get("limit", "50"))
        out = [
            o for o in self.orders.values() if status == "all" or (status == "open") == o.is_open
        ]
        out.sort(key=lambda o: o.created_at, reverse=q.get("direction", "desc") == "desc")
        return [self._order_json(o) for o in out[:limit]]

    @staticmethod
    def _price_error(field_name: str, px: Decimal, tick: Decimal) -> ApiError | None:
        if px <= 0:
            return ApiError(422, {"code": 40010001, "message": f"{field_name} must be > 0"})
        step = tick if px >= 1 else Decimal("0.0001")
        if px % step != 0:
            return ApiError(
                422,
                {
                    "code": 42210000,
                    "message": f"invalid {field_name} {_s(px)}. sub-penny increment does not "
                    f"fulfill minimum pricing criteria",
                },
            )
        return None

    def _wash(
        self, symbol: str, side: str, typ: str, limit: Decimal | None, exclude: str | None = None
    ) -> FakeOrder | None:
        for o in self.orders.values():
            if o.id == exclude or not o.is_open or o.symbol != symbol or o.side == side:
                continue
            if typ in ("market", "stop") or limit is None:
                return o
            if o.type in ("market", "stop") or o.limit_price is None:
                return o
            if side == "buy" and limit >= o.limit_price:
                return o
            if side == "sell" and limit <= o.limit_price:
                return o
        return None

    def _check_prices(self, symbol: str, limit: Decimal | None, stop: Decimal | None) -> None:
        a = self.asset(symbol) or {}
        tick = Decimal(str(a.get("price_increment") or "0.01"))
        for name, px in (("limit_price", limit), ("stop_price", stop)):
            if px is not None:
                err = self._price_error(name, px, tick)
                if err is not None:
                    raise err

    def _post_order(self, text: str) -> dict[str, Any]:
        try:
            b = json.loads(text or "{}", parse_float=Decimal)
            symbol = str(b["symbol"])
            side = str(b["side"])
            typ = str(b.get("type") or b.get("order_type"))
            tif = str(b["time_in_force"])
            qty = _dec(b.get("qty"))
            limit = _dec(b.get("limit_price"))
            stop = _dec(b.get("stop_price"))
        except (KeyError, ValueError, InvalidOperation) as e:
            raise ApiError(
                422, {"code": 40010000, "message": f"request body format is invalid: {e}"}
            ) from None
        ext = bool(b.get("extended_hours", False))
        cid = str(b.get("client_order_id") or uuid.uuid4())
        if qty is None or qty <= 0:
            raise ApiError(422, {"code": 40010001, "message": "qty must be > 0"})
        if side not in ("buy", "sell") or typ not in ("market", "limit", "stop", "stop_limit"):
            raise ApiError(422, {"code": 40010001, "message": "invalid side or type"})
        if cid in self.by_cid:
            self.duplicate_cid_posts += 1
            raise ApiError(422, {"code": 40010001, "message": "client_order_id must be unique"})
        asset = self.asset(symbol)
        if asset is None:
            raise ApiError(422, {"code": 40010001, "message": f"asset {symbol} not found"})
        self._check_prices(symbol, limit, stop)
        if ext and (typ != "limit" or tif != "day"):
            raise ApiError(
                422, {"code": 42210000, "message": "extended hours order must be DAY limit orders"}
            )
        other = self._wash(symbol, side, typ, limit)
        if other is not None:
            raise ApiError(
                403,
                {
                    "code": 40310000,
                    "message": "potential wash trade detected. use complex orders",
                    "reject_reason": f"opposite side order {other.id} exists",
                },
            )
        pos = self.positions.get(symbol, (D0, D0))[0]
        if side == "sell":
            held = sum(
                (
                    o.remaining
                    for o in self.orders.values()
                    if o.is_open and o.symbol == symbol and o.side == "sell"
                ),
                D0,
            )
            if pos > 0 and qty > pos - held:
                avail = max(D0, pos - held)
                raise ApiError(
                    403,
                    {
                        "code": 40310000,
                        "message": f"insufficient qty available for order (requested: {_s(qty)}, "
                        f"available: {_s(avail)})",
                        "available": _s(avail),
                        "existing_qty": _s(pos),
                        "held_for_orders": _s(held),
                        "symbol": symbol,
                    },
                )
            if pos <= 0 and not (
                asset["shortable"] and asset["easy_to_borrow"] and self.shorting_enabled
            ):
                raise ApiError(
                    403, {"code": 40310000, "message": f"asset {symbol} cannot be sold short"}
                )
        q = self.quotes.get(symbol)
        ref = limit if limit is not None else (Decimal(str(q[2])) if q else D0)
        opening = (
            qty
            if side == "buy" and pos >= 0
            else (
                max(D0, qty - pos) if side == "buy" else (qty if pos <= 0 else max(D0, qty - pos))
            )
        )
        cost = float(opening * ref)
        if cost > self.buying_power() + 1e-6:
            raise ApiError(
                403,
                {
                    "code": 40310000,
                    "message": "insufficient buying power",
                    "buying_power": f"{self.buying_power():.2f}",
                    "cost_basis": f"{cost:.2f}",
                },
            )
        now = self.clock()
        o = FakeOrder(
            str(uuid.uuid4()),
            cid,
            symbol,
            side,
            typ,
            tif,
            qty,
            limit,
            stop,
            ext,
            now,
            updated_at=now,
        )
        self.orders[o.id] = o
        self.by_cid[cid] = o.id
        early = self.fill_on_arrival.pop(cid, None)
        if early is not None:  # a fill that overtakes the new-order acknowledgement
            self._execute(o, min(Decimal(str(early[0])), o.remaining), Decimal(str(early[1])))
        self._event("new", o)
        self._match_on_arrival(o)
        return self._order_json(o)

    def _match_on_arrival(self, o: FakeOrder) -> None:
        q = self.quotes.get(o.symbol)
        if not o.is_open:
            return
        if q is not None and o.type in ("market", "limit"):
            bid, bs, ask, asz = q
            touch, size = (ask, asz) if o.side == "buy" else (bid, bs)
            if touch > 0:
                tpx = Decimal(str(touch))
                crosses = o.type == "market" or (
                    o.limit_price is not None
                    and (tpx <= o.limit_price if o.side == "buy" else tpx >= o.limit_price)
                )
                if crosses:
                    avail = (
                        o.remaining if o.type == "market" else min(o.remaining, Decimal(str(size)))
                    )
                    if o.tif == "fok" and avail < o.remaining:
                        avail = D0
                    self._execute(o, avail, tpx, liquidity=Liquidity.TAKER)
        if o.is_open and o.tif in ("ioc", "fok"):
            self._cancel(o)

    def _cancel(self, o: FakeOrder) -> None:
        o.status = "canceled"
        o.canceled_at = o.updated_at = self.clock()
        self._event("canceled", o)

    def _replace(self, o: FakeOrder, text: str) -> dict[str, Any]:
        try:
            b = json.loads(text or "{}", parse_float=Decimal)
            qty = _dec(b.get("qty"))
            limit = _dec(b.get("limit_price"))
            stop = _dec(b.get("stop_price"))
        except (ValueError, InvalidOperation) as e:
            raise ApiError(
                422, {"code": 40010000, "message": f"request body format is invalid: {e}"}
            ) from None
        if o.status in ("pending_new", "accepted", "pending_cancel", "pending_replace"):
            raise ApiError(
                422,
                {"code": 42210000, "message": f'order is not replaceable in "{o.status}" state'},
            )
        if not o.is_open:
            raise ApiError(
                422, {"code": 42210000, "message": f'order is already in "{o.status}" state'}
            )
        if qty is not None and qty != qty.to_integral_value():
            raise ApiError(422, {"code": 40010001, "message": "qty must be a whole number"})
        cid = str(b.get("client_order_id") or uuid.uuid4())
        if cid in self.by_cid:
            raise ApiError(422, {"code": 40010001, "message": "client_order_id must be unique"})
        new_limit = limit if limit is not None else o.limit_price
        new_stop = stop if stop is not None else o.stop_price
        self._check_prices(o.symbol, limit, stop)
        other = self._wash(o.symbol, o.side, o.type, new_limit, exclude=o.id)
        if other is not None:
            raise ApiError(
                403,
                {"code": 40310000, "message": "potential wash trade detected. use complex orders"},
            )
        now = self.clock()
        new = FakeOrder(
            str(uuid.uuid4()),
            cid,
            o.symbol,
            o.side,
            o.type,
            str(b.get("time_in_force") or o.tif),
            qty if qty is not None else o.remaining,
            new_limit,
            new_stop,
            o.extended_hours,
            now,
            updated_at=now,
            replaces=o.id,
        )
        o.status = "replaced"
        o.replaced_by = new.id
        o.replaced_at = o.updated_at = now
        self.orders[new.id] = new
        self.by_cid[cid] = new.id
        self._event("replaced", o)
        self._event("new", new)
        self._match_on_arrival(new)
        return self._order_json(new)

    def _history(self, kind: str, q: dict[str, str]) -> dict[str, Any]:
        if kind not in self.history:
            raise ApiError(404, {"code": 40410000, "message": "endpoint not found"})
        self.history_requests.append(dict(q, kind=kind))
        symbols = [s for s in q.get("symbols", "").split(",") if s]
        lo = parse_iso_ns(q["start"]) if q.get("start") else None
        hi = parse_iso_ns(q["end"]) if q.get("end") else None
        limit = min(int(q.get("limit") or self.page_size), self.page_size)
        offset = int(q.get("page_token") or 0)
        rows: list[tuple[str, dict[str, Any]]] = []
        for sym in symbols:
            for r in self.history[kind].get(sym, []):
                t = parse_iso_ns(r["t"])
                if (lo is None or t >= lo) and (hi is None or t < hi):
                    rows.append((sym, r))
        page = rows[offset : offset + limit]
        out: dict[str, list[dict[str, Any]]] = {}
        for sym, r in page:
            out.setdefault(sym, []).append(r)
        nxt = offset + limit if offset + limit < len(rows) else None
        return {kind: out, "next_page_token": None if nxt is None else str(nxt)}


def _make_handler(fake: FakeAlpaca) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # headers and body go out in two writes: without this every answer waits out the
        # client's delayed ACK (about 40 ms)
        disable_nagle_algorithm = True
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return None

        def _run(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            hdrs = {k.lower(): v for k, v in self.headers.items()}
            try:
                status, body, headers = fake.handle(self.command, self.path, hdrs, raw)
            except Exception as e:  # a bug in the fake: answer 500 and show it
                status, body, headers = 599, {"code": 59900000, "message": repr(e)}, {}
            data = (
                b""
                if body is None
                else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
            )
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if data:
                self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _run

    return Handler


# ---------------------------------------------------------------------------------- harness


class AlpacaHarness(BrokerHarness):
    """An ``AlpacaBroker`` connected to a ``FakeAlpaca`` for the shared contract suite: the
    broker and the fake share one ``SimClock`` (the suite sets times inside a session), the
    harness moves the fake's market (and tells the broker, as its data feed would) and fills
    resting orders through the fake. ``fake_kwargs`` go to ``FakeAlpaca``, other keywords to
    ``AlpacaBroker``."""

    features = frozenset({"set_time", "inject_duplicate", "inject_out_of_order"})

    def __init__(
        self,
        symbol: str = "AAPL",
        *,
        start: Any = DEFAULT_START,
        fake_kwargs: dict[str, Any] | None = None,
        **broker_kwargs: Any,
    ) -> None:
        self.start_ns = to_ns(start)
        self.clock = SimClock(self.start_ns)
        self.fake = FakeAlpaca(clock=self.clock.now_ns, **(fake_kwargs or {}))
        broker_kwargs.setdefault("id_prefix", "h")
        broker_kwargs.setdefault("stream_backoff", (0.05, 0.5))
        broker_kwargs.setdefault("poll_interval", 0.1)
        broker_kwargs.setdefault("backoff", (0.01, 0.1))
        broker_kwargs.setdefault("stream_connect_timeout", 5.0)
        self.alpaca = AlpacaBroker(
            "KEY",
            "SECRET",
            base_url="http://127.0.0.1:9",  # replaced by the fake's address in start()
            clock=self.clock,
            **broker_kwargs,
        )
        super().__init__(self.alpaca, symbol)

    async def start(self) -> None:
        await self.fake.start()
        self.alpaca.base_url = self.fake.base_url
        self.alpaca.trading_stream_url = self.fake.stream_url
        await super().start()

    async def stop(self) -> None:
        try:
            await super().stop()
        finally:
            await self.fake.stop()

    async def set_time(self, ts: Any) -> None:
        ns = to_ns(ts)
        if ns < self.clock.now_ns():
            raise ValueError(f"the clock only moves forward ({self.clock.now_ns()} -> {ns})")
        self.clock.set(ns)

    async def settle(self, timeout: float = 5.0) -> None:
        """Until no request is under way and every event the fake sent was handled."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        b, f = self.alpaca, self.fake
        while loop.time() < end:
            await b.drain(timeout=max(0.0, end - loop.time()))
            await f.flush()
            await asyncio.sleep(0)
            if not b.busy and (f.conn_delivered <= b.stream_frames or not b.stream_up):
                await asyncio.sleep(0.002)
                if not b.busy and (f.conn_delivered <= b.stream_frames or not b.stream_up):
                    return
            await asyncio.sleep(0.002)

    async def set_quote(self, bid: float, bid_size: float, ask: float, ask_size: float) -> None:
        self.quote = (bid, bid_size, ask, ask_size)
        self.fake.set_quote(self.symbol, bid, bid_size, ask, ask_size)
        self.broker.on_quote(Quote(self.clock.now_ns(), self.symbol, bid, bid_size, ask, ask_size))

    async def trade(self, price: float, size: float) -> None:
        self.broker.on_trade(Trade(self.clock.now_ns(), self.symbol, price, size))

    async def fill(self, order: Order, qty: float, price: float | None = None) -> None:
        await self.settle()
        oid = self.fake.current_id(order.client_order_id)
        if oid is None:
            raise AssertionError(f"{order!r} is not at the fake")
        self.fake.fill(oid, qty, order.limit_price if price is None else price)
        await self.settle()

    async def inject_duplicate_last_event(self, order: Order) -> bool:
        await self.settle()
        self.fake.resend_last(order.client_order_id)
        return True

    async def inject_out_of_order(self, order: Order) -> bool:
        qty = max(1.0, math.floor(order.remaining_qty / 2))
        price = order.limit_price
        if price is None:
            bid, _, ask, _ = self.quote
            price = ask if order.side is Side.BUY else bid
        if order.status is OrderStatus.PENDING_NEW:
            # the venue fills part of it before it acknowledges it
            self.fake.fill_on_arrival[order.client_order_id] = (qty, price)
            return True
        if order.status is OrderStatus.PENDING_CANCEL:
            oid = self.fake.current_id(order.client_order_id)
            if oid is None:
                return False
            self.fake.fill(oid, qty, price)  # before the cancel request reaches the venue
            return True
        return False

    async def venue_order_id(self, order: Order) -> str | None:
        return self.fake.current_id(order.client_order_id)


async def wait_for(cond: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Poll ``cond`` until it holds (AssertionError after ``timeout`` s)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.01)
