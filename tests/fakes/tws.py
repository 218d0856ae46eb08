"""A fake TWS / IB Gateway that speaks the real TWS socket protocol on 127.0.0.1.

The real ``ib_async`` client connects to it and runs end to end: framing (4-byte big-endian
length, fields terminated by ``\\0``), the ``API\\0`` handshake with a version range (the fake
answers with a server version <= 178, the text protocol), ``startApi``, next valid id and managed
accounts, the startup sync (positions, open and completed orders, account updates, executions),
contract details and market rules, market data (top of book, tick-by-tick, depth), historical
bars and ticks, orders (place, modify in place, cancel, global cancel) answered with
``openOrder``, ``orderStatus``, ``execDetails`` and ``commissionReport`` in the order TWS sends
them, errors (110, 201, 202, 10147, 10148, 1100/1101/1102, 2104/2106/2158) and pacing errors
(100 for more than ``msg_limit`` messages in a second, 162 for historical-data pacing).

Message layouts follow ``ib_async/decoder.py`` (server side) and ``ib_async/client.py`` (client
side) of ib_async 2.1; each outgoing message is built from one field list, with the version gates
(170 PEG offsets, 177 no faProfile, 178 pendingPriceRevision) in one place per message.

The fake is a venue too: ``set_quote``/``trade`` move its market (per symbol, optionally per
exchange), marketable orders fill at the touch as takers, resting limit orders fill when the
opposite touch reaches them (as makers), ``fill`` executes a resting order at a given price. It
tracks positions and cash (commission: $0.0035/share, min $0.35) and pushes position, portfolio
and account-value updates after fills, as TWS does for subscribed clients.

Fault scripting: ``fill_before_ack`` (the next order is partly executed before it is
acknowledged), ``fill_on_cancel`` (a cancel request is answered by a fill first, then the
confirmation; ``late=True``: the fill's messages go out after the confirmation), ``reject_next``
(an error code instead of an acknowledgement), ``repeat_last`` (duplicate the latest messages of
an order), ``drop_clients`` (TWS restart or a network cut), ``broadcast_error`` (1100/1101/1102/
2110 notices), ``stop``/``start`` (nothing listening), ``send_garbage(kind)`` (malformed or
unexpected messages, see ``GARBAGE_KINDS``). Live order messages (``openOrder``,
``orderStatus``, ``execDetails``, ``commissionReport`` and order errors sent as orders are
placed, modified, cancelled or filled; never answers to requests) can be duplicated
(``duplicate_events``: True or a share), shuffled in groups (``reorder_window``) and held back
(``delay_events_ms``), seeded by ``seed``; ``flush_events`` sends what is held back.
``cut_on(kind)``: the connection breaks while the next client message of that kind (``placeOrder``,
``modify``, ``cancelOrder``) is in flight: TWS never gets it.

Every message in and out is counted (``received``/``sent`` by message id, ``log``), so tests can
state how many messages an order costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import random
import struct
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

log = logging.getLogger("tests.fakes.tws")

ET = ZoneInfo("America/New_York")
MIN_CLIENT_VERSION = 157
#: the newest text-protocol version the fake speaks (ib_async 2.1 offers 157..178)
MAX_SERVER_VERSION = 178

# server -> client message ids
OUT_TICK_PRICE = 1
OUT_TICK_SIZE = 2
OUT_ORDER_STATUS = 3
OUT_ERR_MSG = 4
OUT_OPEN_ORDER = 5
OUT_ACCT_VALUE = 6
OUT_PORTFOLIO_VALUE = 7
OUT_ACCT_UPDATE_TIME = 8
OUT_NEXT_VALID_ID = 9
OUT_CONTRACT_DATA = 10
OUT_EXECUTION_DATA = 11
OUT_MARKET_DEPTH = 12
OUT_MANAGED_ACCTS = 15
OUT_HISTORICAL_DATA = 17
OUT_CURRENT_TIME = 49
OUT_CONTRACT_DATA_END = 52
OUT_OPEN_ORDER_END = 53
OUT_ACCT_DOWNLOAD_END = 54
OUT_EXECUTION_DATA_END = 55
OUT_MARKET_DATA_TYPE = 58
OUT_COMMISSION_REPORT = 59
OUT_POSITION_DATA = 61
OUT_POSITION_END = 62
OUT_ACCOUNT_SUMMARY = 63
OUT_ACCOUNT_SUMMARY_END = 64
OUT_ACCOUNT_UPDATE_MULTI = 73
OUT_ACCOUNT_UPDATE_MULTI_END = 74
OUT_TICK_REQ_PARAMS = 81
OUT_MARKET_RULE = 93
OUT_HISTORICAL_TICKS = 96
OUT_HISTORICAL_TICKS_BID_ASK = 97
OUT_HISTORICAL_TICKS_LAST = 98
OUT_TICK_BY_TICK = 99
OUT_COMPLETED_ORDER = 101
OUT_COMPLETED_ORDERS_END = 102

#: client -> server message ids (for the counters' labels)
IN_NAMES: dict[int, str] = {
    1: "reqMktData",
    2: "cancelMktData",
    3: "placeOrder",
    4: "cancelOrder",
    5: "reqOpenOrders",
    6: "reqAccountUpdates",
    7: "reqExecutions",
    8: "reqIds",
    9: "reqContractDetails",
    10: "reqMktDepth",
    11: "cancelMktDepth",
    15: "reqAutoOpenOrders",
    16: "reqAllOpenOrders",
    17: "reqManagedAccts",
    20: "reqHistoricalData",
    25: "cancelHistoricalData",
    49: "reqCurrentTime",
    58: "reqGlobalCancel",
    59: "reqMarketDataType",
    61: "reqPositions",
    62: "reqAccountSummary",
    63: "cancelAccountSummary",
    64: "cancelPositions",
    71: "startApi",
    76: "reqAccountUpdatesMulti",
    91: "reqMarketRule",
    96: "reqHistoricalTicks",
    97: "reqTickByTickData",
    98: "cancelTickByTickData",
    99: "reqCompletedOrders",
}

#: IB market rules: id -> ((low edge, increment), ...)
DEFAULT_RULES: dict[int, tuple[tuple[float, float], ...]] = {
    26: ((0.0, 0.0001), (1.0, 0.01)),  # US stocks (Rule 612)
    239: ((0.0, 0.0001), (1.0, 0.005)),  # a half-penny stock (Rule 612 as amended)
    62: ((0.0, 0.00005),),  # IDEALPRO FX pairs
}

_STOCK_EXCHANGES = ("SMART", "AMEX", "NYSE", "ARCA", "ISLAND", "BATS", "EDGX", "IEX", "MEMX")
#: live order messages subject to duplication, reordering and delay
_LIVE_IDS = frozenset({OUT_ORDER_STATUS, OUT_ERR_MSG, OUT_OPEN_ORDER, 11, OUT_COMMISSION_REPORT})
#: kinds of ``send_garbage``: ``decode`` (fields ib_async cannot decode), ``unknown_msg`` (an
#: unknown message id), ``truncated`` (half an ``openOrder``), ``unknown_order`` (an
#: ``orderStatus`` for an order nobody placed), ``unknown_exec`` (an execution and commission of
#: an unknown order), ``foreign_order`` (another client's order whose id collides with one of
#: ours: ``openOrder``, ``orderStatus`` Cancelled, an execution), ``odd_error`` (a warning code
#: for one of our live orders), ``stale_status`` (an old ``orderStatus`` of one of our orders)
GARBAGE_KINDS = (
    "decode",
    "unknown_msg",
    "truncated",
    "unknown_order",
    "unknown_exec",
    "foreign_order",
    "odd_error",
    "stale_status",
)
#: the kinds ib_async logs as decode errors ("Error handling fields")
GARBAGE_UNDECODABLE = frozenset({"decode", "unknown_msg", "truncated"})


@dataclass
class FakeContract:
    """What the fake knows about one instrument (its contract details)."""

    symbol: str
    con_id: int
    sec_type: str = "STK"
    currency: str = "USD"
    primary_exchange: str = "NASDAQ"
    min_tick: float = 0.01
    rule_id: int = 26
    valid_exchanges: tuple[str, ...] = _STOCK_EXCHANGES
    long_name: str = ""
    min_size: float = 0.0001
    size_increment: float = 0.0001
    suggested_size_increment: float = 100.0
    local_symbol: str = ""
    trading_class: str = ""
    stock_type: str = "COMMON"
    #: per-exchange market rule ids (default: ``rule_id`` everywhere)
    exchange_rules: dict[str, int] = field(default_factory=dict)

    def rule_for(self, exchange: str) -> int:
        return self.exchange_rules.get(exchange, self.rule_id)


def default_contracts() -> dict[str, FakeContract]:
    """AAPL, MSFT, SPY, a half-penny stock HALF, and the USD.CAD FX pair (CASH on IDEALPRO)."""
    return {
        "AAPL": FakeContract("AAPL", 265598, long_name="APPLE INC", trading_class="NMS"),
        "MSFT": FakeContract("MSFT", 272093, long_name="MICROSOFT CORP", trading_class="NMS"),
        "SPY": FakeContract(
            "SPY",
            756733,
            primary_exchange="ARCA",
            long_name="SPDR S&P 500 ETF TRUST",
            trading_class="SPY",
            stock_type="ETF",
        ),
        "HALF": FakeContract(
            "HALF",
            999001,
            min_tick=0.005,
            rule_id=239,
            long_name="HALF PENNY CORP",
            trading_class="NMS",
        ),
        "USD.CAD": FakeContract(
            "USD",
            15016062,
            sec_type="CASH",
            currency="CAD",
            primary_exchange="",
            min_tick=0.00005,
            rule_id=62,
            valid_exchanges=("IDEALPRO",),
            long_name="US Dollar/Canadian Dollar",
            min_size=1.0,
            size_increment=1.0,
            suggested_size_increment=1.0,
            local_symbol="USD.CAD",
            trading_class="USD.CAD",
            stock_type="",
        ),
    }


def _num(x: float | int | None) -> str:
    """A number as TWS prints it ("" for None)."""
    if x is None:
        return ""
    if isinstance(x, float):
        if math.isinf(x) or x >= 1.7e308:
            return ""
        if x.is_integer():
            return str(int(x)) if abs(x) < 1e15 else repr(x)
        return repr(x)
    return str(x)


def _flt(text: str) -> float | None:
    return float(text) if text not in ("", "1.7976931348623157E308") else None


def _on_grid(price: float, rule: Sequence[tuple[float, float]]) -> bool:
    inc = rule[0][1]
    for lo, i in rule:
        if price >= lo - 1e-12:
            inc = i
    n = price / inc
    return abs(n - round(n)) <= 1e-9 * max(1.0, n)


def commission_of(qty: float, price: float) -> float:
    """The fake's commission: IBKR-Pro-like $0.0035/share, min $0.35, max 1% of value."""
    fee = max(0.35, 0.0035 * qty)
    return round(min(fee, 0.01 * qty * price) if qty * price > 0 else fee, 4)


@dataclass
class FakeOrder:
    """An order as the fake TWS holds it."""

    order_id: int
    client_id: int
    perm_id: int
    contract: FakeContract
    exchange: str
    action: str
    qty: float
    order_type: str
    lmt: float | None
    aux: float | None
    tif: str
    account: str
    order_ref: str
    outside_rth: bool
    status: str = "PendingSubmit"
    filled: float = 0.0
    avg_price: float = 0.0
    last_fill_price: float = 0.0
    triggered: bool = True
    completed_time: str = ""
    #: the latest orderStatus fields and the latest (execDetails, commissionReport) sent
    last_status: list[str] | None = None
    last_exec: tuple[list[str], list[str]] | None = None

    @property
    def remaining(self) -> float:
        return max(0.0, self.qty - self.filled)

    @property
    def is_open(self) -> bool:
        return self.status not in ("Filled", "Cancelled", "ApiCancelled", "Inactive")

    @property
    def sign(self) -> int:
        return 1 if self.action == "BUY" else -1


@dataclass
class FakeExecution:
    exec_id: str
    order: FakeOrder
    time_str: str
    side: str
    shares: float
    price: float
    cum_qty: float
    avg_price: float
    liquidity: int
    commission: float


class _Client:
    """One API connection."""

    def __init__(
        self, fake: FakeTWS, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.fake = fake
        self.reader = reader
        self.writer = writer
        self.version = 0
        self.client_id = -1
        self.started = False
        self.mkt: dict[int, tuple[str, str]] = {}
        self.tbt: dict[int, tuple[str, str, str]] = {}
        self.depth: dict[int, tuple[str, str, int]] = {}
        self.depth_rows_sent: dict[int, tuple[int, int]] = {}
        self.account_updates = False
        self.positions = False
        self.closed = False
        self.held: list[list[str]] = []
        self.flush_timer: asyncio.TimerHandle | None = None

    def send(self, fields: Iterable[Any]) -> None:
        if self.closed:
            return
        parts = ["" if f is None else str(f) for f in fields]
        if self.fake._capture is not None:
            self.fake._capture.append((self, parts))
            return
        live = self.fake._live and self.fake.event_faults
        if live and parts and parts[0].isdigit() and int(parts[0]) in _LIVE_IDS:
            self.fake._hold(self, parts)
            return
        self.write(parts)

    def write(self, parts: list[str]) -> None:
        if self.closed:
            return
        payload = ("\0".join(parts) + "\0").encode()
        self.writer.write(struct.pack(">I", len(payload)) + payload)
        msg_id = int(parts[0]) if parts and parts[0].isdigit() else -1
        self.fake.sent[msg_id] += 1
        self.fake.log.append(("out", self.client_id, parts))

    def error(self, req_id: int, code: int, msg: str) -> None:
        self.send([OUT_ERR_MSG, 2, req_id, code, msg, ""])

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.held.clear()
            if self.flush_timer is not None:
                self.flush_timer.cancel()
            with contextlib.suppress(Exception):
                self.writer.close()


class FakeTWS:
    """A TWS stand-in on ``host:port`` (port 0: any free port; see ``port`` after ``start``).

    ``clock``: where "now" comes from (a callable or an object with ``now_ns()``; default the
    wall clock), used for execution times and ``currentTime``. ``server_version``: 157..178.
    ``msg_limit``: messages a second before error 100 (TWS: 50)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        server_version: int = 176,
        accounts: Sequence[str] = ("DU1234567",),
        cash: float = 1_000_000.0,
        clock: Any = None,
        contracts: dict[str, FakeContract] | None = None,
        rules: dict[int, tuple[tuple[float, float], ...]] | None = None,
        msg_limit: int = 50,
        hist_limit: tuple[int, float] = (60, 600.0),
        hist_identical_gap: float = 15.0,
        next_order_id: int = 1,
        seed: int = 0,
    ) -> None:
        if not MIN_CLIENT_VERSION <= server_version <= MAX_SERVER_VERSION:
            raise ValueError(f"server_version {server_version} outside 157..178")
        self.host = host
        self.port = port
        self.server_version = server_version
        self.accounts = list(accounts)
        self.cash = float(cash)
        self.start_cash = float(cash)
        self._clock = clock
        self.contracts = contracts if contracts is not None else default_contracts()
        self.rules = dict(DEFAULT_RULES if rules is None else rules)
        self.msg_limit = msg_limit
        self.hist_limit = hist_limit
        self.hist_identical_gap = hist_identical_gap
        self._next_id = next_order_id
        self._perm = itertools.count(1_000_001)
        self._exec_seq = itertools.count(1)
        self.clients: list[_Client] = []
        self.server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: orders by (client id, order id): order ids are per API client at TWS
        self.orders: dict[tuple[int, int], FakeOrder] = {}
        self.executions: list[FakeExecution] = []
        self.positions: dict[str, list[float]] = {}  # symbol -> [qty, avg cost incl. fees]
        self.quotes: dict[tuple[str, str], list[float]] = {}
        self.last: dict[str, tuple[float, float]] = {}
        # counters
        self.received: Counter[int] = Counter()
        self.sent: Counter[int] = Counter()
        self.log: list[tuple[str, int, list[str]]] = []
        self.pacing_violations = 0
        self.max_msgs_in_1s = 0
        self.max_orders_in_1s = 0
        self._arrivals: dict[int, deque[float]] = {}
        self._order_arrivals: deque[float] = deque()
        self._hist_requests: deque[tuple[float, tuple[str, ...]]] = deque()
        self.hist_violations = 0
        # fault scripting
        self._fill_before_ack: deque[float] = deque()
        self._fill_on_cancel: dict[int, float] = {}
        self._reject_next: deque[tuple[int, str]] = deque()
        self.connections = 0
        self.refuse_client_ids: set[int] = set()
        #: False: executions come without commission reports (a lost message)
        self.send_commissions = True
        # live-message faults
        self.rng = random.Random(seed)
        self.duplicate_events: bool | float = False
        self.reorder_window = 0
        self.delay_events_ms = 0.0
        self._live = 0
        self._capture: list[tuple[_Client, list[str]]] | None = None
        self._late_on_cancel: set[int] = set()
        self._cut_on: set[str] = set()
        #: client messages lost with a connection (``cut_on``), by kind
        self.cut_messages: Counter[str] = Counter()
        #: live messages duplicated, held back for reordering or delay; garbage sent
        self.duplicated = 0
        self.held_back = 0
        self.garbage_sent: Counter[str] = Counter()

    # ---- life --------------------------------------------------------------------------------
    async def start(self) -> int:
        """Listen (again, on the same port after a ``stop``); returns the port."""
        self.server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        """Stop listening and drop every connection (TWS shut down)."""
        if self.server is not None:
            self.server.close()
            self.drop_clients()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()
            self.server = None
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> FakeTWS:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- live-message faults -------------------------------------------------------------------
    @property
    def event_faults(self) -> bool:
        return bool(self.duplicate_events) or self.reorder_window > 1 or self.delay_events_ms > 0

    @contextlib.contextmanager
    def _live_events(self) -> Iterator[None]:
        self._live += 1
        try:
            yield
        finally:
            self._live -= 1

    def _hold(self, c: _Client, parts: list[str]) -> None:
        dup = self.duplicate_events
        twice = dup is True or (isinstance(dup, float) and dup > 0 and self.rng.random() < dup)
        c.held.append(parts)
        if twice:
            self.duplicated += 1
            c.held.append(list(parts))
        if self.reorder_window <= 1 and self.delay_events_ms <= 0:
            self._flush_client(c)
            return
        self.held_back += 1
        if self.reorder_window > 1 and len(c.held) >= self.reorder_window:
            self._flush_client(c)
        elif c.flush_timer is None:
            wait = (
                self.rng.uniform(0, self.delay_events_ms) / 1000 if self.delay_events_ms else 0.01
            )
            c.flush_timer = asyncio.get_running_loop().call_later(wait, self._flush_client, c)

    def _flush_client(self, c: _Client) -> None:
        if c.flush_timer is not None:
            c.flush_timer.cancel()
            c.flush_timer = None
        held, c.held = c.held, []
        if self.reorder_window > 1:
            self.rng.shuffle(held)
        for parts in held:
            c.write(parts)

    def flush_events(self) -> None:
        """Send every live message held back (for reordering or delay) now."""
        for c in list(self.clients):
            self._flush_client(c)

    def send_garbage(self, kind: str = "decode", client_id: int | None = None) -> int:
        """Send a malformed or unexpected message (see ``GARBAGE_KINDS``) to every started
        connection (of ``client_id``); returns how many connections got it."""
        if kind not in GARBAGE_KINDS:
            raise ValueError(f"garbage kind {kind!r} is not one of {GARBAGE_KINDS}")
        n = 0
        for c in list(self.clients):
            if not c.started or c.closed or (client_id is not None and c.client_id != client_id):
                continue
            mine = [o for (cl, _), o in self.orders.items() if cl == c.client_id]
            live = [o for o in mine if o.is_open and o.status != "PendingSubmit"]
            msgs: list[list[Any]] = []
            if kind == "decode":
                msgs.append([OUT_ORDER_STATUS, "GARBAGE", "Submitted", "x", "", "", "", "", ""])
            elif kind == "unknown_msg":
                msgs.append([9999, 1, "GARBAGE"])
            elif kind == "truncated":
                if mine:
                    msgs.append(self._open_order_fields(mine[-1], c.version)[:60])
                else:
                    msgs.append([OUT_OPEN_ORDER, "GARBAGE"])
            elif kind == "unknown_order":
                oid = 900_000 + sum(self.garbage_sent.values())
                msgs.append(
                    [
                        OUT_ORDER_STATUS,
                        oid,
                        "Submitted",
                        "0",
                        "1",
                        "0",
                        0,
                        0,
                        "0",
                        c.client_id,
                        "",
                        "0",
                    ]
                )
            elif kind == "unknown_exec":
                ghost = self._ghost(c, 800_000 + sum(self.garbage_sent.values()))
                ex = self._ghost_exec(ghost)
                msgs += [self._exec_fields(-1, ex, c.version), self._commission_fields(ex)]
            elif kind == "foreign_order":
                oid = mine[-1].order_id if mine else 1
                ghost = self._ghost(c, oid, client_id=c.client_id + 1000)
                ghost.status = "Submitted"
                msgs.append(self._open_order_fields(ghost, c.version))
                ex = self._ghost_exec(ghost)
                msgs.append(self._exec_fields(-1, ex, c.version))
                msgs.append(self._commission_fields(ex))
                ghost.status = "Cancelled"
                msgs.append(self._status_fields(ghost))
            elif kind == "odd_error":
                if live:
                    msgs.append([OUT_ERR_MSG, 2, live[-1].order_id, 399, "Order message: odd", ""])
                else:
                    msgs.append([OUT_ERR_MSG, 2, -1, 2137, "an odd notice", ""])
            elif kind == "stale_status" and live:
                o = live[-1]
                stale = self._status_fields(o)
                stale[2:6] = ["PreSubmitted", "0", _num(o.qty), "0"]
                msgs.append(stale)
            for m in msgs:
                c.write([str(x) for x in m])
            n += 1 if msgs else 0
        if n:
            self.garbage_sent[kind] += 1
        return n

    def _ghost(self, c: _Client, oid: int, *, client_id: int | None = None) -> FakeOrder:
        """An order nobody placed here (not in ``orders``)."""
        con = next(iter(self.contracts.values()))
        return FakeOrder(
            order_id=oid,
            client_id=c.client_id if client_id is None else client_id,
            perm_id=next(self._perm),
            contract=con,
            exchange="SMART",
            action="BUY",
            qty=7.0,
            order_type="LMT",
            lmt=1.0,
            aux=None,
            tif="DAY",
            account=self.accounts[0],
            order_ref=f"ghost-{oid}",
            outside_rth=False,
        )

    def _ghost_exec(self, o: FakeOrder) -> FakeExecution:
        n = next(self._exec_seq)
        return FakeExecution(
            exec_id=f"0000ghost.{n:08x}.01.01",
            order=o,
            time_str=self._time_str(),
            side="BOT",
            shares=7.0,
            price=1.0,
            cum_qty=7.0,
            avg_price=1.0,
            liquidity=1,
            commission=0.35,
        )

    def drop_clients(self) -> None:
        """Close every API connection (a TWS restart or a network cut)."""
        for c in list(self.clients):
            c.close()
        self.clients.clear()

    def send_raw(self, client_id: int, fields: Sequence[Any]) -> int:
        """Send one message as given to the connections of ``client_id`` (how many got it)."""
        n = 0
        for c in self.clients:
            if c.client_id == client_id and c.started:
                c.send(fields)
                n += 1
        return n

    def broadcast_error(self, code: int, msg: str = "") -> None:
        """A notice to every connection (1100 lost, 1101/1102 restored, 2110, ...)."""
        text = msg or {
            1100: "Connectivity between IB and Trader Workstation has been lost.",
            1101: "Connectivity between IB and TWS has been restored- data lost.",
            1102: "Connectivity between IB and TWS has been restored- data maintained.",
            2110: "Connectivity between Trader Workstation and server is broken. "
            "It will be restored automatically.",
        }.get(code, "notice")
        for c in self.clients:
            c.error(-1, code, text)

    # ---- time --------------------------------------------------------------------------------
    def now_ns(self) -> int:
        c = self._clock
        if c is None:
            return time.time_ns()
        if hasattr(c, "now_ns"):
            return int(c.now_ns())
        return int(c())

    def _time_str(self) -> str:
        dt = datetime.fromtimestamp(self.now_ns() / 1e9, UTC).astimezone(ET)
        return f"{dt:%Y%m%d %H:%M:%S} US/Eastern"

    # ---- scripting ---------------------------------------------------------------------------
    def fill_before_ack(self, qty: float) -> None:
        """The next new order is executed for ``qty`` (at its limit) before it is acknowledged."""
        self._fill_before_ack.append(qty)

    def fill_on_cancel(self, order_id: int, qty: float, *, late: bool = False) -> None:
        """When a cancel of ``order_id`` arrives, execute ``qty`` first, then confirm the cancel
        (``late``: the execution's messages go out after the confirmation)."""
        self._fill_on_cancel[order_id] = qty
        if late:
            self._late_on_cancel.add(order_id)
        else:
            self._late_on_cancel.discard(order_id)

    def reject_next(self, code: int = 201, msg: str = "") -> None:
        """The next new order is refused with error ``code`` (201: rejected, 110: tick, ...)."""
        self._reject_next.append((code, msg))

    def find(self, order: FakeOrder | int, client_id: int | None = None) -> FakeOrder:
        """An order by its id (and client id when several clients used that id)."""
        if isinstance(order, FakeOrder):
            return order
        found = [
            o
            for (cid, oid), o in self.orders.items()
            if oid == order and (client_id is None or cid == client_id)
        ]
        if len(found) != 1:
            raise KeyError(f"{len(found)} orders with id {order} (client {client_id})")
        return found[0]

    def repeat_last(self, order_id: FakeOrder | int) -> bool:
        """Send again the latest execution (with its commission report) and status of an order."""
        try:
            o: FakeOrder | None = self.find(order_id)
        except KeyError:
            o = None
        c = self._owner(o) if o else None
        if o is None or c is None:
            return False
        if o.last_exec is not None:
            c.send(o.last_exec[0])
            c.send(o.last_exec[1])
        if o.last_status is not None:
            c.send(o.last_status)
        return True

    # ---- the market --------------------------------------------------------------------------
    def quote_of(self, symbol: str, exchange: str = "SMART") -> list[float] | None:
        return self.quotes.get((symbol, exchange)) or self.quotes.get((symbol, "SMART"))

    def set_quote(
        self,
        symbol: str,
        bid: float,
        bid_size: float,
        ask: float,
        ask_size: float,
        exchange: str = "SMART",
    ) -> None:
        """Move the top of book of ``symbol`` (on ``exchange``; SMART stands for every exchange
        without its own quote), push it to subscribers and match resting orders against it."""
        self.quotes[(symbol, exchange)] = [bid, bid_size, ask, ask_size]
        for c in list(self.clients):
            for req, (sym, ex) in c.mkt.items():
                if sym == symbol and self.quote_of(sym, ex) is self.quotes[(symbol, exchange)]:
                    self._send_top(c, req, sym, ex)
            for req, (sym, ex, kind) in c.tbt.items():
                if sym == symbol and kind == "BidAsk" and self.quote_of(sym, ex) is not None:
                    self._send_tbt_bidask(c, req, sym, ex)
            for req, (sym, ex, rows) in c.depth.items():
                if sym == symbol:
                    self._send_depth(c, req, sym, ex, rows)
        self._match(symbol)
        self._push_account()

    def trade(self, symbol: str, price: float, size: float, exchange: str = "SMART") -> None:
        """A print on the tape: last price/size ticks and AllLast tick-by-tick."""
        self.last[symbol] = (price, size)
        for c in list(self.clients):
            for req, (sym, _ex) in c.mkt.items():
                if sym == symbol:
                    c.send([OUT_TICK_PRICE, 6, req, 4, _num(price), _num(size), 0])
                    c.send([OUT_TICK_SIZE, 6, req, 5, _num(size)])
            for req, (sym, _ex, kind) in c.tbt.items():
                if sym == symbol and kind in ("Last", "AllLast"):
                    c.send(
                        [
                            OUT_TICK_BY_TICK,
                            req,
                            2 if kind == "AllLast" else 1,
                            self.now_ns() // 1_000_000_000,
                            _num(price),
                            _num(size),
                            0,
                            exchange if exchange != "SMART" else "NASDAQ",
                            "",
                        ]
                    )

    def _mid(self, symbol: str) -> float | None:
        q = self.quote_of(symbol)
        if q is None or q[0] <= 0 or q[2] <= 0:
            return self.last.get(symbol, (None, 0))[0]
        return (q[0] + q[2]) / 2

    # ---- orders: matching --------------------------------------------------------------------
    def _owner(self, o: FakeOrder | None) -> _Client | None:
        if o is None:
            return None
        for c in self.clients:
            if c.client_id == o.client_id and c.started:
                return c
        return None

    def _limit_of(self, o: FakeOrder) -> float | None:
        if o.order_type in ("LMT", "LOC") or (o.order_type == "STP LMT" and o.triggered):
            return o.lmt
        return None

    def _match(self, symbol: str) -> None:
        for o in list(self.orders.values()):
            if o.contract.symbol != symbol or not o.is_open or o.status == "PendingSubmit":
                continue
            if o.tif in ("OPG",) or o.order_type in ("MOC", "LOC"):
                continue  # waits for its auction
            q = self.quote_of(symbol, o.exchange)
            if q is None:
                continue
            bid, bid_size, ask, ask_size = q
            if not o.triggered:
                stop = o.aux or 0.0
                if (o.sign > 0 and ask > 0 and ask >= stop) or (o.sign < 0 and 0 < bid <= stop):
                    o.triggered = True
                else:
                    continue
            touch, size = (ask, ask_size) if o.sign > 0 else (bid, bid_size)
            if touch <= 0 or size <= 0:
                continue
            lmt = self._limit_of(o)
            if o.order_type in ("MKT", "STP") or lmt is None:
                self.execute(o, min(o.remaining, size), touch, liquidity=2)
            elif (o.sign > 0 and touch <= lmt + 1e-9) or (o.sign < 0 and touch >= lmt - 1e-9):
                self.execute(o, min(o.remaining, size), lmt, liquidity=1)

    def _arrive_match(self, o: FakeOrder) -> None:
        """A new (or modified) order takes what is marketable at once, as a taker."""
        if o.tif == "OPG" or o.order_type in ("MOC", "LOC") or not o.triggered:
            return
        q = self.quote_of(o.contract.symbol, o.exchange)
        if q is None:
            return
        bid, bid_size, ask, ask_size = q
        touch, size = (ask, ask_size) if o.sign > 0 else (bid, bid_size)
        if touch <= 0 or size <= 0:
            return
        lmt = self._limit_of(o)
        if (
            lmt is None
            or (o.sign > 0 and touch <= lmt + 1e-9)
            or (o.sign < 0 and touch >= lmt - 1e-9)
        ):
            self.execute(o, min(o.remaining, size), touch, liquidity=2)
        if o.is_open and o.tif == "IOC":
            self._cancel(o, "")

    def execute(
        self,
        order_id: FakeOrder | int,
        qty: float,
        price: float | None = None,
        liquidity: int = 1,
        *,
        status: bool = True,
    ) -> FakeExecution:
        """Execute ``qty`` of an open order at ``price`` (default its limit), sending
        ``execDetails`` -> ``orderStatus`` -> ``commissionReport`` (the last fill:
        ``execDetails`` -> ``openOrder(Filled)`` -> ``orderStatus(Filled)`` ->
        ``commissionReport``), then position, portfolio and account updates.
        ``liquidity``: 1 added (maker), 2 removed (taker); ``status=False``: no ``orderStatus``
        (nor ``openOrder``) now, as when the execution overtakes the acknowledgement."""
        with self._live_events():
            return self._execute(order_id, qty, price, liquidity, status=status)

    def _execute(
        self,
        order_id: FakeOrder | int,
        qty: float,
        price: float | None,
        liquidity: int,
        *,
        status: bool,
    ) -> FakeExecution:
        o = self.find(order_id)
        if not o.is_open:
            raise ValueError(f"order {o.order_id} is {o.status}")
        qty = min(float(qty), o.remaining)
        if qty <= 0:
            raise ValueError(f"nothing to fill on order {o.order_id}")
        px = o.lmt if price is None else float(price)
        if px is None:
            raise ValueError("execute() of a market order needs a price")
        prev = o.filled
        o.filled += qty
        o.avg_price = (o.avg_price * prev + px * qty) / o.filled
        o.last_fill_price = px
        fee = commission_of(qty, px)
        n = next(self._exec_seq)
        ex = FakeExecution(
            exec_id=f"0000e0d5.{n:08x}.01.01",
            order=o,
            time_str=self._time_str(),
            side="BOT" if o.sign > 0 else "SLD",
            shares=qty,
            price=px,
            cum_qty=o.filled,
            avg_price=o.avg_price,
            liquidity=liquidity,
            commission=fee,
        )
        self.executions.append(ex)
        self._book(o, qty, px, fee)
        c = self._owner(o)
        exec_msg = self._exec_fields(-1, ex, c.version if c else self.server_version)
        comm_msg = self._commission_fields(ex)
        o.last_exec = (exec_msg, comm_msg)
        done = o.filled >= o.qty - 1e-9
        if done:
            o.status = "Filled"
            o.completed_time = self._time_str()
        if c is not None:
            c.send(exec_msg)
            if status:
                if done:
                    c.send(self._open_order_fields(o, c.version))
                self._send_status(c, o)
            if self.send_commissions:
                c.send(comm_msg)
        self._push_position(o.contract)
        self._push_account()
        return ex

    def _book(self, o: FakeOrder, qty: float, px: float, fee: float) -> None:
        """Cash and the position (IB's avgCost includes commissions)."""
        sym = o.contract.symbol if o.contract.sec_type == "STK" else o.contract.local_symbol
        signed = o.sign * qty
        self.cash -= signed * px + fee
        pos = self.positions.setdefault(sym, [0.0, 0.0])
        q0, a0 = pos
        q1 = q0 + signed
        if q0 == 0 or (q0 > 0) == (signed > 0):
            pos[1] = (q0 * a0 + signed * px + fee * (1 if signed > 0 else -1)) / q1 if q1 else 0.0
        elif abs(q1) < 1e-9:
            pos[1] = 0.0
        elif (q1 > 0) != (q0 > 0):
            pos[1] = px
        pos[0] = q1

    def _cancel(self, o: FakeOrder, reason: str = "") -> None:
        with self._live_events():
            o.status = "Cancelled"
            o.completed_time = self._time_str()
            c = self._owner(o)
            if c is not None:
                c.error(o.order_id, 202, f"Order Canceled - reason:{reason}")
                self._send_status(c, o)

    # ---- orders: messages --------------------------------------------------------------------
    def _send_status(self, c: _Client, o: FakeOrder) -> None:
        fields = self._status_fields(o)
        o.last_status = [str(f) for f in fields]
        c.send(fields)

    def _status_fields(self, o: FakeOrder) -> list[Any]:
        return [
            OUT_ORDER_STATUS,
            o.order_id,
            o.status,
            _num(o.filled),
            _num(o.remaining),
            _num(o.avg_price),
            o.perm_id,
            0,
            _num(o.last_fill_price),
            o.client_id,
            "",
            "0",
        ]

    def _contract11(self, con: FakeContract, exchange: str) -> list[Any]:
        return [
            con.con_id,
            con.symbol,
            con.sec_type,
            "",
            "0",
            "",
            "",
            exchange,
            con.currency,
            con.local_symbol or con.symbol,
            con.trading_class or con.symbol,
        ]

    def _open_order_fields(self, o: FakeOrder, version: int) -> list[Any]:
        """``openOrder`` exactly as ib_async 2.1's decoder reads it (128 fields at v176, 127 from
        v177 on: no faProfile). Built from (name, value) pairs so the layout reads like the
        decoder."""
        lmt = _num(o.lmt) if o.lmt is not None else ""
        aux = _num(o.aux) if o.aux is not None else ""
        named: list[tuple[str, Any]] = [
            ("msgId", OUT_OPEN_ORDER),
            ("orderId", o.order_id),
            *(("contract", v) for v in self._contract11(o.contract, o.exchange)),
            ("action", o.action),
            ("totalQuantity", _num(o.qty)),
            ("orderType", o.order_type),
            ("lmtPrice", lmt),
            ("auxPrice", aux),
            ("tif", o.tif),
            ("ocaGroup", ""),
            ("account", o.account),
            ("openClose", "O"),
            ("origin", 0),
            ("orderRef", o.order_ref),
            ("clientId", o.client_id),
            ("permId", o.perm_id),
            ("outsideRth", int(o.outside_rth)),
            ("hidden", 0),
            ("discretionaryAmt", "0"),
            ("goodAfterTime", ""),
            ("sharesAllocation", ""),
            ("faGroup", ""),
            ("faMethod", ""),
            ("faPercentage", ""),
        ]
        if version < 177:
            named.append(("faProfile", ""))
        named += [
            ("modelCode", ""),
            ("goodTillDate", ""),
            ("rule80A", ""),
            ("percentOffset", ""),
            ("settlingFirm", ""),
            ("shortSaleSlot", 0),
            ("designatedLocation", ""),
            ("exemptCode", -1),
            ("auctionStrategy", 0),
            ("startingPrice", ""),
            ("stockRefPrice", ""),
            ("delta", ""),
            ("stockRangeLower", ""),
            ("stockRangeUpper", ""),
            ("displaySize", 0),
            ("blockOrder", 0),
            ("sweepToFill", 0),
            ("allOrNone", 0),
            ("minQty", ""),
            ("ocaType", 3),
            ("eTradeOnly", 0),
            ("firmQuoteOnly", 0),
            ("nbboPriceCap", ""),
            ("parentId", 0),
            ("triggerMethod", 0),
            ("volatility", ""),
            ("volatilityType", 0),
            ("deltaNeutralOrderType", ""),
            ("deltaNeutralAuxPrice", ""),
            ("continuousUpdate", 0),
            ("referencePriceType", 0),
            ("trailStopPrice", ""),
            ("trailingPercent", ""),
            ("basisPoints", ""),
            ("basisPointsType", ""),
            ("comboLegsDescrip", ""),
            ("numLegs", 0),
            ("numOrderLegs", 0),
            ("numSmartComboParams", 0),
            ("scaleInitLevelSize", ""),
            ("scaleSubsLevelSize", ""),
            ("scalePriceIncrement", ""),
            ("hedgeType", ""),
            ("optOutSmartRouting", 0),
            ("clearingAccount", ""),
            ("clearingIntent", ""),
            ("notHeld", 0),
            ("deltaNeutralContractPresent", 0),
            ("algoStrategy", ""),
            ("solicited", 0),
            ("whatIf", 0),
            ("status", o.status),
            *(
                (name, "")
                for name in (
                    "initMarginBefore",
                    "maintMarginBefore",
                    "equityWithLoanBefore",
                    "initMarginChange",
                    "maintMarginChange",
                    "equityWithLoanChange",
                    "initMarginAfter",
                    "maintMarginAfter",
                    "equityWithLoanAfter",
                    "commission",
                    "minCommission",
                    "maxCommission",
                    "commissionCurrency",
                    "warningText",
                )
            ),
            ("randomizeSize", 0),
            ("randomizePrice", 0),
            ("numConditions", 0),
            ("adjustedOrderType", ""),
            ("triggerPrice", ""),
            ("trailStopPrice", ""),
            ("lmtPriceOffset", ""),
            ("adjustedStopPrice", ""),
            ("adjustedStopLimitPrice", ""),
            ("adjustedTrailingAmount", ""),
            ("adjustableTrailingUnit", 0),
            ("softDollarTierName", ""),
            ("softDollarTierVal", ""),
            ("softDollarTierDisplayName", ""),
            ("cashQty", ""),
            ("dontUseAutoPriceForHedge", 0),
            ("isOmsContainer", 0),
            ("discretionaryUpToLimitPrice", 0),
            ("usePriceMgmtAlgo", 0),
            ("duration", ""),
            ("postToAts", ""),
            ("autoCancelParent", 0),
        ]
        if version >= 170:
            named += [
                ("minTradeQty", ""),
                ("minCompeteSize", ""),
                ("competeAgainstBestOffset", ""),
                ("midOffsetAtWhole", ""),
                ("midOffsetAtHalf", ""),
            ]
        return [v for _, v in named]

    def _completed_order_fields(self, o: FakeOrder, version: int) -> list[Any]:
        """``completedOrder`` as ib_async 2.1's decoder reads it (no orderId: matched by permId
        and orderRef)."""
        lmt = _num(o.lmt) if o.lmt is not None else ""
        aux = _num(o.aux) if o.aux is not None else ""
        named: list[tuple[str, Any]] = [
            ("msgId", OUT_COMPLETED_ORDER),
            *(("contract", v) for v in self._contract11(o.contract, o.exchange)),
            ("action", o.action),
            ("totalQuantity", _num(o.qty)),
            ("orderType", o.order_type),
            ("lmtPrice", lmt),
            ("auxPrice", aux),
            ("tif", o.tif),
            ("ocaGroup", ""),
            ("account", o.account),
            ("openClose", "O"),
            ("origin", 0),
            ("orderRef", o.order_ref),
            ("permId", o.perm_id),
            ("outsideRth", int(o.outside_rth)),
            ("hidden", 0),
            ("discretionaryAmt", "0"),
            ("goodAfterTime", ""),
            ("faGroup", ""),
            ("faMethod", ""),
            ("faPercentage", ""),
        ]
        if version < 177:
            named.append(("faProfile", ""))
        named += [
            ("modelCode", ""),
            ("goodTillDate", ""),
            ("rule80A", ""),
            ("percentOffset", ""),
            ("settlingFirm", ""),
            ("shortSaleSlot", 0),
            ("designatedLocation", ""),
            ("exemptCode", -1),
            ("startingPrice", ""),
            ("stockRefPrice", ""),
            ("delta", ""),
            ("stockRangeLower", ""),
            ("stockRangeUpper", ""),
            ("displaySize", 0),
            ("sweepToFill", 0),
            ("allOrNone", 0),
            ("minQty", ""),
            ("ocaType", 3),
            ("triggerMethod", 0),
            ("volatility", ""),
            ("volatilityType", 0),
            ("deltaNeutralOrderType", ""),
            ("deltaNeutralAuxPrice", ""),
            ("continuousUpdate", 0),
            ("referencePriceType", 0),
            ("trailStopPrice", ""),
            ("trailingPercent", ""),
            ("comboLegsDescrip", ""),
            ("numLegs", 0),
            ("numOrderLegs", 0),
            ("numSmartComboParams", 0),
            ("scaleInitLevelSize", ""),
            ("scaleSubsLevelSize", ""),
            ("scalePriceIncrement", ""),
            ("hedgeType", ""),
            ("clearingAccount", ""),
            ("clearingIntent", ""),
            ("notHeld", 0),
            ("deltaNeutralContractPresent", 0),
            ("algoStrategy", ""),
            ("solicited", 0),
            ("status", o.status),
            ("randomizeSize", 0),
            ("randomizePrice", 0),
            ("numConditions", 0),
            ("trailStopPrice", ""),
            ("lmtPriceOffset", ""),
            ("cashQty", ""),
            ("dontUseAutoPriceForHedge", 0),
            ("isOmsContainer", 0),
            ("autoCancelDate", ""),
            ("filledQuantity", _num(o.filled)),
            ("refFuturesConId", 0),
            ("autoCancelParent", 0),
            ("shareholder", ""),
            ("imbalanceOnly", 0),
            ("routeMarketableToBbo", 0),
            ("parentPermId", ""),
            ("completedTime", o.completed_time),
            ("completedStatus", o.status),
        ]
        if version >= 170:
            named += [
                ("minTradeQty", ""),
                ("minCompeteSize", ""),
                ("competeAgainstBestOffset", ""),
                ("midOffsetAtWhole", ""),
                ("midOffsetAtHalf", ""),
            ]
        return [v for _, v in named]

    def _exec_fields(self, req_id: int, ex: FakeExecution, version: int) -> list[str]:
        o = ex.order
        f: list[Any] = [
            OUT_EXECUTION_DATA,
            req_id,
            o.order_id,
            *self._contract11(o.contract, o.exchange),
        ]
        f += [
            ex.exec_id,
            ex.time_str,
            o.account,
            o.exchange if o.exchange != "SMART" else o.contract.primary_exchange or "ISLAND",
            ex.side,
            _num(ex.shares),
            _num(ex.price),
            o.perm_id,
            o.client_id,
            0,
            _num(ex.cum_qty),
            _num(ex.avg_price),
            o.order_ref,
            "",
            "",
            "",
            ex.liquidity,
        ]
        if version >= 178:
            f += [0]  # pendingPriceRevision
        return [str(x) for x in f]

    def _commission_fields(self, ex: FakeExecution) -> list[str]:
        return [
            str(x)
            for x in (
                OUT_COMMISSION_REPORT,
                1,
                ex.exec_id,
                _num(ex.commission),
                ex.order.contract.currency,
                "1.7976931348623157E308",
                "1.7976931348623157E308",
                "",
            )
        ]

    # ---- account pushes ----------------------------------------------------------------------
    def net_liquidation(self) -> float:
        value = self.cash
        for sym, (qty, avg) in self.positions.items():
            mark = self._mid(sym)
            value += qty * (mark if mark is not None else avg)
        return value

    def account_values(self) -> list[tuple[str, str, str]]:
        """(tag, value, currency) rows of the account."""
        nlv = self.net_liquidation()
        gross = sum(abs(q) * (self._mid(s) or a) for s, (q, a) in self.positions.items())
        cur = "USD"
        return [
            ("AccountType", "INDIVIDUAL", ""),
            ("NetLiquidation", f"{nlv:.2f}", cur),
            ("TotalCashValue", f"{self.cash:.2f}", cur),
            ("SettledCash", f"{self.cash:.2f}", cur),
            ("BuyingPower", f"{max(0.0, nlv * 4 - gross):.2f}", cur),
            ("EquityWithLoanValue", f"{nlv:.2f}", cur),
            ("GrossPositionValue", f"{gross:.2f}", cur),
            ("AvailableFunds", f"{max(0.0, nlv - gross / 4):.2f}", cur),
            ("CashBalance", f"{self.cash:.2f}", "BASE"),
            ("NetLiquidationByCurrency", f"{nlv:.2f}", "BASE"),
        ]

    def _position_rows(self) -> list[tuple[FakeContract, float, float]]:
        rows = []
        for sym, (qty, avg) in self.positions.items():
            con = self.contracts.get(sym)
            if con is not None:
                rows.append((con, qty, avg))
        return rows

    def _position_fields(
        self, account: str, con: FakeContract, qty: float, avg: float
    ) -> list[Any]:
        return [
            OUT_POSITION_DATA,
            3,
            account,
            con.con_id,
            con.symbol,
            con.sec_type,
            "",
            "0",
            "",
            "",
            "",
            con.currency,
            con.local_symbol or con.symbol,
            con.trading_class or con.symbol,
            _num(qty),
            _num(round(avg, 6)),
        ]

    def _portfolio_fields(
        self, account: str, con: FakeContract, qty: float, avg: float
    ) -> list[Any]:
        mark = self._mid(con.symbol) or avg
        return [
            OUT_PORTFOLIO_VALUE,
            8,
            con.con_id,
            con.symbol,
            con.sec_type,
            "",
            "0",
            "",
            "",
            con.primary_exchange,
            con.currency,
            con.local_symbol or con.symbol,
            con.trading_class or con.symbol,
            _num(qty),
            _num(mark),
            _num(qty * mark),
            _num(round(avg, 6)),
            _num(round(qty * (mark - avg), 2)),
            "0",
            account,
        ]

    def _push_position(self, con: FakeContract) -> None:
        sym = con.symbol if con.sec_type == "STK" else con.local_symbol
        qty, avg = self.positions.get(sym, [0.0, 0.0])
        for c in self.clients:
            if c.positions:
                c.send(self._position_fields(self.accounts[0], con, qty, avg))
            if c.account_updates:
                c.send(self._portfolio_fields(self.accounts[0], con, qty, avg))

    def _push_account(self) -> None:
        for c in self.clients:
            if c.account_updates:
                self._send_account_values(c)

    def _send_account_values(self, c: _Client) -> None:
        acct = self.accounts[0]
        for tag, value, cur in self.account_values():
            c.send([OUT_ACCT_VALUE, 2, tag, value, cur, acct])

    # ---- market data messages ----------------------------------------------------------------
    def _send_top(self, c: _Client, req: int, sym: str, ex: str) -> None:
        q = self.quote_of(sym, ex)
        if q is None:
            return
        bid, bs, ask, asz = q
        c.send([OUT_TICK_PRICE, 6, req, 1, _num(bid), _num(bs), 0])
        c.send([OUT_TICK_SIZE, 6, req, 0, _num(bs)])
        c.send([OUT_TICK_PRICE, 6, req, 2, _num(ask), _num(asz), 0])
        c.send([OUT_TICK_SIZE, 6, req, 3, _num(asz)])

    def _send_tbt_bidask(self, c: _Client, req: int, sym: str, ex: str) -> None:
        q = self.quote_of(sym, ex)
        if q is None:
            return
        bid, bs, ask, asz = q
        c.send(
            [
                OUT_TICK_BY_TICK,
                req,
                3,
                self.now_ns() // 1_000_000_000,
                _num(bid),
                _num(ask),
                _num(bs),
                _num(asz),
                0,
            ]
        )

    def depth_levels(
        self, sym: str, ex: str, rows: int
    ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """A synthetic book: the touch, then levels one tick apart with growing sizes."""
        q = self.quote_of(sym, ex)
        if q is None:
            return [], []
        bid, bs, ask, asz = q
        con = self.contracts[sym]
        rule = self.rules.get(con.rule_for(ex), ((0.0, con.min_tick),))
        inc = rule[-1][1] if bid >= rule[-1][0] else rule[0][1]
        bids = [(round(bid - i * inc, 6), bs + 100 * i) for i in range(rows) if bid - i * inc > 0]
        asks = [(round(ask + i * inc, 6), asz + 100 * i) for i in range(rows)]
        return bids, asks

    def _send_depth(self, c: _Client, req: int, sym: str, ex: str, rows: int) -> None:
        bids, asks = self.depth_levels(sym, ex, rows)
        nb, na = c.depth_rows_sent.get(req, (0, 0))
        for side, levels, had in ((1, bids, nb), (0, asks, na)):
            for pos, (px, size) in enumerate(levels):
                op = 1 if pos < had else 0
                c.send([OUT_MARKET_DEPTH, 1, req, pos, op, side, _num(px), _num(size)])
            for pos in range(len(levels), had):
                c.send([OUT_MARKET_DEPTH, 1, req, pos, 2, side, "0", "0"])
        c.depth_rows_sent[req] = (len(bids), len(asks))

    # ---- history -----------------------------------------------------------------------------
    @staticmethod
    def price_at(symbol: str, ts_s: float) -> float:
        """A deterministic synthetic price path (for historical bars and ticks)."""
        base = 100.0 + (sum(map(ord, symbol)) % 100)
        return round(base + 2.0 * math.sin(ts_s / 3600.0) + 0.3 * math.sin(ts_s / 97.0), 2)

    # ---- the server --------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        c = _Client(self, reader, writer)
        self.clients.append(c)
        self.connections += 1
        try:
            head = await reader.readexactly(4)
            if head != b"API\0":
                c.close()
                return
            n = struct.unpack(">I", await reader.readexactly(4))[0]
            versions = (await reader.readexactly(n)).decode()
            lo, hi = versions.lstrip("v").split(" ")[0].split("..")
            if int(hi) < MIN_CLIENT_VERSION or int(lo) > self.server_version:
                c.close()  # no version in common
                return
            c.version = min(int(hi), self.server_version)
            dt = datetime.fromtimestamp(self.now_ns() / 1e9, UTC).astimezone(ET)
            hello = f"{c.version}\0{dt:%Y%m%d %H:%M:%S} EST\0".encode()
            writer.write(struct.pack(">I", len(hello)) + hello)
            while not c.closed:
                size = struct.unpack(">I", await reader.readexactly(4))[0]
                payload = await reader.readexactly(size)
                fields = payload.decode(errors="backslashreplace").split("\0")[:-1]
                self._count_in(c, fields)
                kind = self._kind_in(c, fields)
                if kind in self._cut_on:  # the connection breaks with this message in flight
                    self._cut_on.discard(kind)
                    self.cut_messages[kind] += 1
                    self.drop_clients()
                    return
                try:
                    self._handle(c, fields)
                except Exception:
                    log.exception("fake TWS failed on %r", fields)
                    raise
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            c.close()
            if c in self.clients:
                self.clients.remove(c)
            if task is not None:
                self._tasks.discard(task)

    def _count_in(self, c: _Client, fields: list[str]) -> None:
        msg_id = int(fields[0])
        self.received[msg_id] += 1
        self.log.append(("in", c.client_id, fields))
        now = time.monotonic()
        # IB's 50 messages per second is per client connection
        arr = self._arrivals.setdefault(c.client_id, deque())
        arr.append(now)
        while arr and now - arr[0] > 1.0:
            arr.popleft()
        self.max_msgs_in_1s = max(self.max_msgs_in_1s, len(arr))
        if msg_id in (3, 4):
            oa = self._order_arrivals
            oa.append(now)
            while oa and now - oa[0] > 1.0:
                oa.popleft()
            self.max_orders_in_1s = max(self.max_orders_in_1s, len(oa))
        if len(arr) > self.msg_limit:
            self.pacing_violations += 1
            c.error(-1, 100, "Max rate of messages per second has been exceeded:max=50 rec=51")

    def cut_on(self, kind: str) -> None:
        """The next client message of ``kind`` (``placeOrder``, ``modify``, ``cancelOrder``, or
        any name of ``IN_NAMES``) is lost: the connection breaks while it is in flight (every
        connection drops, as with ``drop_clients``)."""
        self._cut_on.add(kind)

    def _kind_in(self, c: _Client, fields: list[str]) -> str:
        msg_id = int(fields[0]) if fields and fields[0].isdigit() else -1
        name = IN_NAMES.get(msg_id, str(msg_id))
        placed = msg_id == 3 and len(fields) > 1 and fields[1].isdigit()
        if placed and (c.client_id, int(fields[1])) in self.orders:
            return "modify"
        return name

    def requests(self, name: str) -> int:
        """How many client messages of a kind (``placeOrder``, ``cancelOrder``, ...) arrived."""
        ids = [k for k, v in IN_NAMES.items() if v == name]
        return sum(self.received[i] for i in ids)

    def _handle(self, c: _Client, f: list[str]) -> None:
        msg = int(f[0])
        if msg == 71:  # startApi
            c.client_id = int(f[2])
            if c.client_id in self.refuse_client_ids or any(
                o is not c
                and o.started
                and not o.closed
                and not o.reader.at_eof()
                and o.client_id == c.client_id
                for o in self.clients
            ):
                c.error(
                    -1,
                    326,
                    f"Unable to connect as the client id {c.client_id} is already "
                    "in use. Retry with a unique client id.",
                )
                c.close()
                return
            c.started = True
            c.send([OUT_MANAGED_ACCTS, 1, ",".join(self.accounts)])
            c.send([OUT_NEXT_VALID_ID, 1, self._next_id])
            for code, text in (
                (2104, "Market data farm connection is OK:usfarm"),
                (2106, "HMDS data farm connection is OK:ushmds"),
                (2158, "Sec-def data farm connection is OK:secdefnj"),
            ):
                c.error(-1, code, text)
        elif msg == 61:  # reqPositions
            c.positions = True
            for con, qty, avg in self._position_rows():
                c.send(self._position_fields(self.accounts[0], con, qty, avg))
            c.send([OUT_POSITION_END, 1])
        elif msg == 64:  # cancelPositions
            c.positions = False
        elif msg in (5, 16):  # reqOpenOrders / reqAllOpenOrders
            for o in self.orders.values():
                if (
                    o.is_open
                    and o.status != "PendingSubmit"
                    and (msg == 16 or o.client_id == c.client_id)
                ):
                    c.send(self._open_order_fields(o, c.version))
                    self._send_status(c, o)
            c.send([OUT_OPEN_ORDER_END, 1])
        elif msg == 15:  # reqAutoOpenOrders
            pass
        elif msg == 99:  # reqCompletedOrders
            for o in self.orders.values():
                if not o.is_open:
                    c.send(self._completed_order_fields(o, c.version))
            c.send([OUT_COMPLETED_ORDERS_END])
        elif msg == 6:  # reqAccountUpdates
            subscribe = f[2] == "1"
            c.account_updates = subscribe
            if subscribe:
                self._send_account_values(c)
                for con, qty, avg in self._position_rows():
                    c.send(self._portfolio_fields(self.accounts[0], con, qty, avg))
                dt = datetime.fromtimestamp(self.now_ns() / 1e9, UTC).astimezone(ET)
                c.send([OUT_ACCT_UPDATE_TIME, 1, f"{dt:%H:%M}"])
                c.send([OUT_ACCT_DOWNLOAD_END, 1, f[3] or self.accounts[0]])
        elif msg == 76:  # reqAccountUpdatesMulti
            req, acct, model = int(f[2]), f[3], f[4]
            for tag, value, cur in self.account_values():
                c.send([OUT_ACCOUNT_UPDATE_MULTI, 1, req, acct, model, tag, value, cur])
            c.send([OUT_ACCOUNT_UPDATE_MULTI_END, 1, req])
        elif msg == 62:  # reqAccountSummary
            req = int(f[2])
            for tag, value, cur in self.account_values():
                c.send([OUT_ACCOUNT_SUMMARY, 1, req, self.accounts[0], tag, value, cur])
            c.send([OUT_ACCOUNT_SUMMARY_END, 1, req])
        elif msg == 63:  # cancelAccountSummary
            pass
        elif msg == 7:  # reqExecutions
            req = int(f[2])
            want_client = int(f[3] or 0)
            for ex in self.executions:
                if want_client and ex.order.client_id != want_client:
                    continue
                c.send(self._exec_fields(req, ex, c.version))
                c.send(self._commission_fields(ex))
            c.send([OUT_EXECUTION_DATA_END, 1, req])
        elif msg == 8:  # reqIds
            c.send([OUT_NEXT_VALID_ID, 1, self._next_id])
        elif msg == 17:  # reqManagedAccts
            c.send([OUT_MANAGED_ACCTS, 1, ",".join(self.accounts)])
        elif msg == 49:  # reqCurrentTime
            c.send([OUT_CURRENT_TIME, 1, self.now_ns() // 1_000_000_000])
        elif msg == 9:
            self._contract_details(c, f)
        elif msg == 91:  # reqMarketRule
            rid = int(f[1])
            rule = self.rules.get(rid)
            if rule is None:
                c.error(-1, 321, f"Error validating request:-'bN' : cause - invalid rule {rid}")
                return
            c.send(
                [
                    OUT_MARKET_RULE,
                    rid,
                    len(rule),
                    *(x for lo, inc in rule for x in (_num(lo), _num(inc))),
                ]
            )
        elif msg == 59:  # reqMarketDataType
            pass
        elif msg == 1:
            self._req_mkt_data(c, f)
        elif msg == 2:  # cancelMktData
            c.mkt.pop(int(f[2]), None)
        elif msg == 97:
            self._req_tbt(c, f)
        elif msg == 98:
            c.tbt.pop(int(f[1]), None)
        elif msg == 10:
            self._req_depth(c, f)
        elif msg == 11:
            c.depth.pop(int(f[2]), None)
            c.depth_rows_sent.pop(int(f[2]), None)
        elif msg == 3:
            with self._live_events():
                self._place_order(c, f)
        elif msg == 4:
            with self._live_events():
                self._cancel_order(c, int(f[2]))
        elif msg == 58:  # reqGlobalCancel
            for o in list(self.orders.values()):
                if o.is_open:
                    self._cancel(o, "Global Cancel")
        elif msg == 20:
            self._historical_data(c, f)
        elif msg == 25:
            pass
        elif msg == 96:
            self._historical_ticks(c, f)
        else:
            log.warning("fake TWS: unhandled message %s %r", IN_NAMES.get(msg, msg), f)

    # ---- request handlers --------------------------------------------------------------------
    def _find_contract(
        self, sym: str, sec_type: str, currency: str, con_id: int, local_symbol: str
    ) -> FakeContract | None:
        for key, con in self.contracts.items():
            if con_id and con.con_id == con_id:
                return con
            if sec_type and con.sec_type != sec_type:
                continue
            if con.sec_type == "CASH":
                if (con.symbol == sym and con.currency == currency) or key == local_symbol:
                    return con
            elif con.symbol == sym and (not currency or con.currency == currency):
                return con
        return None

    def _contract_details(self, c: _Client, f: list[str]) -> None:
        # 9, 8, reqId, conId, symbol, secType, lastTrade, strike, right, multiplier, exchange,
        # primaryExchange, currency, localSymbol, tradingClass, includeExpired, secIdType, secId
        req = int(f[2])
        con_id = int(f[3] or 0)
        sym, sec_type, exchange, currency, local = f[4], f[5], f[10], f[12], f[13]
        con = self._find_contract(sym, sec_type, currency, con_id, local)
        if con is None or (exchange and exchange not in con.valid_exchanges):
            c.error(req, 200, "No security definition has been found for the request")
            return
        ex = exchange or con.valid_exchanges[0]
        rules = ",".join(str(con.rule_for(e)) for e in con.valid_exchanges)
        hours = "20261124:0400-20261124:2000;20261125:0400-20261125:2000;20261126:CLOSED"
        liquid = "20261124:0930-20261124:1600;20261125:0930-20261125:1600;20261126:CLOSED"
        c.send(
            [
                OUT_CONTRACT_DATA,
                req,
                con.symbol,
                con.sec_type,
                "",
                "0",
                "",
                ex,
                con.currency,
                con.local_symbol or con.symbol,
                con.trading_class or con.symbol,
                con.trading_class or con.symbol,
                con.con_id,
                _num(con.min_tick),
                "",
                "ACTIVETIM,AD,ADJUST,ALERT,ALGO,ALLOC,AON,AVGCOST,BASKET,COND,CONDORDER,DAY,DEACT,"
                "GAT,GTC,GTD,IOC,LIT,LMT,LOC,MIT,MKT,MOC,MTL,NONALGO,OCA,OPG,PEGMID,POSTONLY,REL,"
                "SCALE,STP,STPLMT,TRAIL,WHATIF",
                ",".join(con.valid_exchanges),
                1,
                0,
                con.long_name,
                con.primary_exchange,
                "",
                "Technology" if con.sec_type == "STK" else "",
                "",
                "",
                "US/Eastern",
                hours,
                liquid,
                "",
                "",
                0,
                1,
                "",
                "",
                rules,
                "",
                con.stock_type,
                _num(con.min_size),
                _num(con.size_increment),
                _num(con.suggested_size_increment),
            ]
        )
        c.send([OUT_CONTRACT_DATA_END, 1, req])

    def _req_mkt_data(self, c: _Client, f: list[str]) -> None:
        # 1, 11, reqId, <12 contract fields>, dnc flag, genericTicks, snapshot, regSnapshot, opts
        req = int(f[2])
        con = self._find_contract(f[4], f[5], f[12], int(f[3] or 0), f[13])
        if con is None:
            c.error(req, 200, "No security definition has been found for the request")
            return
        key = con.local_symbol if con.sec_type == "CASH" else con.symbol
        ex = f[10] or "SMART"
        c.mkt[req] = (key, ex)
        c.send([OUT_MARKET_DATA_TYPE, 1, req, 1])
        c.send([OUT_TICK_REQ_PARAMS, req, _num(con.min_tick), "9c0001", 3])
        self._send_top(c, req, key, ex)

    def _req_tbt(self, c: _Client, f: list[str]) -> None:
        # 97, reqId, <12 contract fields>, tickType, numberOfTicks, ignoreSize
        req = int(f[1])
        con = self._find_contract(f[3], f[4], f[11], int(f[2] or 0), f[12])
        if con is None:
            c.error(req, 200, "No security definition has been found for the request")
            return
        key = con.local_symbol if con.sec_type == "CASH" else con.symbol
        kind = f[14]
        c.tbt[req] = (key, f[9] or "SMART", kind)
        if kind == "BidAsk":
            self._send_tbt_bidask(c, req, key, f[9] or "SMART")

    def _req_depth(self, c: _Client, f: list[str]) -> None:
        # 10, 5, reqId, <12 contract fields>, numRows, isSmartDepth, options
        req = int(f[2])
        con = self._find_contract(f[4], f[5], f[12], int(f[3] or 0), f[13])
        if con is None:
            c.error(req, 200, "No security definition has been found for the request")
            return
        rows = int(f[15] or 5)
        key = con.local_symbol if con.sec_type == "CASH" else con.symbol
        c.depth[req] = (key, f[10] or "SMART", rows)
        self._send_depth(c, req, key, f[10] or "SMART", rows)

    def _place_order(self, c: _Client, f: list[str]) -> None:
        # 3, orderId, <12 contract fields: 2..13>, secIdType, secId, action(16), qty(17),
        # orderType(18), lmtPrice(19), auxPrice(20), tif(21), ocaGroup, account(23), openClose,
        # origin, orderRef(26), transmit, parentId, blockOrder, sweepToFill, displaySize,
        # triggerMethod, outsideRth(33), hidden, ...
        oid = int(f[1])
        con = self._find_contract(f[3], f[4], f[11], int(f[2] or 0), f[12])
        exchange = f[9] or "SMART"
        qty, otype = float(f[17] or 0), f[18]
        lmt, aux, tif = _flt(f[19]), _flt(f[20]), f[21] or "DAY"
        existing = self.orders.get((c.client_id, oid))
        if con is None:
            c.error(oid, 200, "No security definition has been found for the request")
            return
        rule = self.rules.get(con.rule_for(exchange), ((0.0, con.min_tick),))
        for px in (lmt, aux):
            if px is not None and not _on_grid(px, rule):
                c.error(
                    oid,
                    110,
                    "The price does not conform to the minimum price variation for this contract.",
                )
                return
        if qty <= 0:
            c.error(oid, 434, "The order size cannot be zero.")
            return
        if existing is not None:
            self._modify(c, existing, qty, lmt, aux, f)
            return
        if self._reject_next:
            code, text = self._reject_next.popleft()
            c.error(
                oid,
                code,
                text
                or {
                    201: "Order rejected - reason:YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN "
                    "THE DESIRED POSITION YOUR EQUITY WITH LOAN VALUE [0.00 USD] MUST EXCEED THE "
                    "INITIAL MARGIN",
                    110: "The price does not conform to the minimum price variation for this "
                    "contract.",
                }.get(code, "rejected"),
            )
            if code == 201:
                o = self._new_order(c, oid, con, exchange, f, qty, otype, lmt, aux, tif)
                o.status = "Inactive"
                self._send_status(c, o)
            return
        if otype not in ("MKT", "LMT", "STP", "STP LMT", "MOC", "LOC"):
            c.error(
                oid, 387, f"Unsupported order type for this exchange and security type: {otype}"
            )
            return
        o = self._new_order(c, oid, con, exchange, f, qty, otype, lmt, aux, tif)
        self._next_id = max(self._next_id, oid + 1)
        if self._fill_before_ack:
            early = self._fill_before_ack.popleft()
            o.status = "PreSubmitted"
            c.send(self._open_order_fields(o, c.version))  # permId mapping for the commission
            self.execute(o, early, o.lmt if o.lmt is not None else self._touch(o), 1, status=False)
            o.status = "Submitted" if o.is_open else o.status
            c.send(self._open_order_fields(o, c.version))
            self._send_status(c, o)
            return
        waiting = o.order_type in ("STP", "STP LMT") or o.tif == "OPG" or otype in ("MOC", "LOC")
        o.status = "PreSubmitted"
        c.send(self._open_order_fields(o, c.version))
        self._send_status(c, o)
        if not waiting:
            o.status = "Submitted"
            c.send(self._open_order_fields(o, c.version))
            self._send_status(c, o)
            self._arrive_match(o)

    def _touch(self, o: FakeOrder) -> float:
        q = self.quote_of(o.contract.symbol, o.exchange)
        if q is None:
            raise ValueError("no quote to fill a market order at")
        return q[2] if o.sign > 0 else q[0]

    def _new_order(
        self,
        c: _Client,
        oid: int,
        con: FakeContract,
        exchange: str,
        f: list[str],
        qty: float,
        otype: str,
        lmt: float | None,
        aux: float | None,
        tif: str,
    ) -> FakeOrder:
        o = FakeOrder(
            order_id=oid,
            client_id=c.client_id,
            perm_id=next(self._perm),
            contract=con,
            exchange=exchange,
            action=f[16],
            qty=qty,
            order_type=otype,
            lmt=lmt,
            aux=aux,
            tif=tif,
            account=f[23] or self.accounts[0],
            order_ref=f[26],
            outside_rth=f[33] == "1",
            triggered=otype not in ("STP", "STP LMT"),
        )
        self.orders[(c.client_id, oid)] = o
        return o

    def _modify(
        self,
        c: _Client,
        o: FakeOrder,
        qty: float,
        lmt: float | None,
        aux: float | None,
        f: list[str],
    ) -> None:
        if not o.is_open:
            c.error(o.order_id, 104, "Can't modify a filled order.")
            return
        if qty < o.filled - 1e-9:
            c.error(o.order_id, 105, "Order being modified does not match original order.")
            return
        o.qty, o.lmt, o.aux = qty, lmt, aux
        o.outside_rth = f[33] == "1"
        c.send(self._open_order_fields(o, c.version))
        self._send_status(c, o)
        self._arrive_match(o)

    def _cancel_order(self, c: _Client, oid: int) -> None:
        o = self.orders.get((c.client_id, oid))
        if o is None:
            c.error(oid, 10147, f"OrderId {oid} that needs to be cancelled is not found.")
            return
        early = self._fill_on_cancel.pop(oid, None)
        late: list[tuple[_Client, list[str]]] = []
        if early is not None and o.is_open:
            if oid in self._late_on_cancel:
                self._late_on_cancel.discard(oid)
                self._capture = late
                try:
                    self.execute(o, early, None, 1)
                finally:
                    self._capture = None
            else:
                self.execute(o, early, None, 1)
        if late and o.is_open:
            self._cancel(o)
            for client, parts in late:  # the execution's messages after the confirmation
                client.send(parts)
            return
        for client, parts in late:
            client.send(parts)
        if not o.is_open:
            c.error(
                oid,
                10148,
                f"OrderId {oid} that needs to be cancelled cannot be cancelled, state: {o.status}.",
            )
            return
        self._cancel(o)

    def _historical_data(self, c: _Client, f: list[str]) -> None:
        # 20, reqId, <12 contract fields: 2..13>, includeExpired(14), endDateTime(15),
        # barSize(16), duration(17), useRTH(18), whatToShow(19), formatDate(20), keepUpToDate,
        # chartOptions
        req = int(f[1])
        sym = f[3] if f[4] != "CASH" else f"{f[3]}.{f[11]}"
        if not self._hist_pacing(c, req, ("bars", sym, f[9], f[15], f[16], f[17], f[19])):
            return
        end = _parse_end(f[15]) or self.now_ns() / 1e9
        step = _bar_seconds(f[16])
        span = _duration_seconds(f[17])
        start = end - span
        t = math.floor(start / step) * step
        if t < start:
            t += step
        rows: list[Any] = []
        n = 0
        fmt = f[20] or "1"
        while t < end and n < 100_000:
            o = self.price_at(sym, t)
            cl = self.price_at(sym, t + step - 1)
            hi, lo = max(o, cl) + 0.05, min(o, cl) - 0.05
            date = (
                str(int(t))
                if fmt == "2"
                else datetime.fromtimestamp(t, UTC).strftime("%Y%m%d %H:%M:%S UTC")
            )
            rows += [
                date,
                _num(o),
                _num(round(hi, 2)),
                _num(round(lo, 2)),
                _num(cl),
                _num(1000 + n % 50),
                _num(round((o + cl) / 2, 4)),
                10,
            ]
            t += step
            n += 1
        s_str = datetime.fromtimestamp(start, UTC).strftime("%Y%m%d %H:%M:%S UTC")
        e_str = datetime.fromtimestamp(end, UTC).strftime("%Y%m%d %H:%M:%S UTC")
        c.send([OUT_HISTORICAL_DATA, req, s_str, e_str, n, *rows])

    def _historical_ticks(self, c: _Client, f: list[str]) -> None:
        # 96, reqId, <12 contract fields: 2..13>, includeExpired(14), start(15), end(16),
        # numberOfTicks(17), whatToShow(18), useRth(19), ignoreSize(20), miscOptions(21)
        req = int(f[1])
        sym = f[3]
        if not self._hist_pacing(c, req, ("ticks", sym, f[9], f[15], f[16], f[17], f[18])):
            return
        start = _parse_end(f[15])
        end = _parse_end(f[16])
        count = min(int(f[17] or 1000), 1000)
        what = f[18]
        t0 = int(start if start is not None else (end or self.now_ns() / 1e9) - 3600)
        stop = end if end is not None else t0 + 10**9
        ticks: list[Any] = []
        n = 0
        t = t0
        # two ticks every 5 seconds (two share each second: clients must page on time)
        while n < count and t < stop:
            for k in range(2):
                if n >= count:
                    break
                p = self.price_at(sym, t + k)
                if what == "BID_ASK":
                    ticks += [
                        t,
                        0,
                        _num(round(p - 0.01, 2)),
                        _num(round(p + 0.01, 2)),
                        _num(100 + k),
                        _num(200 + k),
                    ]
                elif what == "TRADES":
                    ticks += [t, 0, _num(p), _num(10 + k), "NASDAQ", ""]
                else:
                    ticks += [t, "", _num(p), "0"]
                n += 1
            t += 5
        done = 1  # TWS answers a request in one message; clients page by time themselves
        msg_id = {"BID_ASK": OUT_HISTORICAL_TICKS_BID_ASK, "TRADES": OUT_HISTORICAL_TICKS_LAST}
        c.send([msg_id.get(what, OUT_HISTORICAL_TICKS), req, n, *ticks, done])

    def _hist_pacing(self, c: _Client, req: int, key: tuple[str, ...]) -> bool:
        now = time.monotonic()
        limit, window = self.hist_limit
        q = self._hist_requests
        while q and now - q[0][0] > window:
            q.popleft()
        identical = any(k == key and now - t < self.hist_identical_gap for t, k in q)
        q.append((now, key))
        if len(q) > limit or identical:
            self.hist_violations += 1
            c.error(
                req,
                162,
                "Historical Market Data Service error message:Historical data "
                "request pacing violation",
            )
            return False
        return True


# ---------------------------------------------------------------------------------------------
# test support: the decode-error guard and the contract-suite harness


#: ib_async log messages that mean the fake and the client disagree on a message layout
DECODE_ERROR_PATTERNS: tuple[str, ...] = (
    "Error handling fields",
    "Error for ",
    "No order found",
    "Unknown reqId",
    "malformed",
    "unhandled value",
)
#: ib_async.client errors that are part of a connection's life, not of decoding
_CONNECTION_LIFE = (
    "Peer closed connection",
    "[Errno ",  # socket errors (reset by peer, broken pipe) as a connection drops
    "API connection failed",
    "Make sure API port",
    "TWS/gateway version",
)


class IBLogGuard(logging.Handler):
    """Collects ib_async log records that reveal a decode error: any ERROR of the
    ``ib_async.Decoder`` logger, ``ib_async.client`` errors other than connection life, and
    messages of the other ib_async loggers matching ``DECODE_ERROR_PATTERNS``."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._logger = logging.getLogger("ib_async")
        self._old_level = self._logger.level

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if record.name == "ib_async.Decoder" and record.levelno >= logging.ERROR:
            self.records.append(record)
        elif record.name == "ib_async.client" and record.levelno >= logging.ERROR:
            if not msg.startswith(_CONNECTION_LIFE):
                self.records.append(record)
        elif record.levelno >= logging.ERROR and any(p in msg for p in DECODE_ERROR_PATTERNS):
            self.records.append(record)

    def __enter__(self) -> IBLogGuard:
        self._logger.addHandler(self)
        if self._logger.getEffectiveLevel() > logging.ERROR:
            self._logger.setLevel(logging.ERROR)  # errors must reach the guard
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._old_level)

    def problems(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()[:300]}" for r in self.records]


def _harness_base() -> Any:
    from tradekit.testing import BrokerHarness

    return BrokerHarness


class IBKRHarness(_harness_base()):  # type: ignore[misc]
    """The shared contract suite's harness for ``IBKRBroker`` against a :class:`FakeTWS`: the
    broker and the fake share a ``SimClock`` set inside the regular session; the harness moves
    the fake's market (and tells the broker, as its feed would), fills resting orders at the
    fake, repeats its messages, and makes it execute ahead of an acknowledgement or a cancel
    confirmation. Broker keyword arguments go to ``IBKRBroker``."""

    features = frozenset({"set_time", "inject_duplicate", "inject_out_of_order"})

    def __init__(
        self,
        symbol: str = "AAPL",
        *,
        server_version: int = 176,
        start: Any = None,
        fake: FakeTWS | None = None,
        **broker_kwargs: Any,
    ) -> None:
        from tradekit.brokers.ibkr import IBKRBroker
        from tradekit.clock import SimClock
        from tradekit.testing import DEFAULT_START
        from tradekit.timeutil import to_ns

        self.start_ns = to_ns(start if start is not None else DEFAULT_START)
        self.clock = SimClock(self.start_ns)
        self.fake = fake or FakeTWS(clock=self.clock, server_version=server_version)
        broker_kwargs.setdefault("id_prefix", "ib")
        broker_kwargs.setdefault("symbols", [symbol])
        broker_kwargs.setdefault("client_id", 7)
        broker_kwargs.setdefault("reconnect_delay", 0.05)
        self.ibkr = IBKRBroker(port=1, clock=self.clock, **broker_kwargs)
        super().__init__(self.ibkr, symbol)

    async def start(self) -> None:
        if self.fake.server is None:
            await self.fake.start()
        self.ibkr.port = self.fake.port
        await super().start()

    async def stop(self) -> None:
        try:
            await super().stop()
        finally:
            await self.fake.stop()

    async def set_time(self, ts: Any) -> None:
        from tradekit.timeutil import to_ns

        self.clock.set(to_ns(ts))

    async def settle(self) -> None:
        if self.ibkr.connected and self.ibkr.session is not None:
            await self.ibkr.sync()

    async def set_quote(self, bid: float, bid_size: float, ask: float, ask_size: float) -> None:
        from tradekit.model import Quote

        self.quote = (bid, bid_size, ask, ask_size)
        self.fake.set_quote(self.symbol, bid, bid_size, ask, ask_size)
        self.ibkr.on_quote(
            Quote(self.clock.now_ns(), self.symbol, bid, bid_size, ask, ask_size, self.ibkr.venue)
        )

    async def trade(self, price: float, size: float) -> None:
        from tradekit.model import Trade

        self.fake.trade(self.symbol, price, size)
        self.ibkr.on_trade(Trade(self.clock.now_ns(), self.symbol, price, size, self.ibkr.venue))

    def fake_order(self, order: Any) -> FakeOrder | None:
        """The fake's record of a tradekit order (found by its orderRef)."""
        for o in self.fake.orders.values():
            if o.order_ref == order.client_order_id and o.client_id == self.ibkr.client_id:
                return o
        return None

    async def fill(self, order: Any, qty: float, price: float | None = None) -> None:
        await self.settle()
        fo = self.fake_order(order)
        if fo is None:
            raise AssertionError(f"the fake TWS has no order for {order!r}")
        self.fake.execute(fo, qty, price if price is not None else order.limit_price, 1)
        await self.settle()

    async def inject_duplicate_last_event(self, order: Any) -> bool:
        await self.settle()
        fo = self.fake_order(order)
        return fo is not None and self.fake.repeat_last(fo)

    async def inject_out_of_order(self, order: Any) -> bool:
        from tradekit.enums import OrderStatus

        qty = max(1.0, math.floor(order.remaining_qty / 2))
        if order.status is OrderStatus.PENDING_NEW:
            # the order is still in the adapter's send queue: the fake executes it on arrival,
            # before acknowledging it
            self.fake.fill_before_ack(qty)
            return True
        if order.status is OrderStatus.PENDING_CANCEL:
            # the cancel is still queued: the execution reaches the client before it
            fo = self.fake_order(order)
            if fo is None:
                return False
            self.fake.execute(fo, qty, order.limit_price, 1)
            return True
        return False

    async def venue_order_id(self, order: Any) -> str | None:
        fo = self.fake_order(order)
        return None if fo is None else str(fo.order_id)

    def submit_unchecked(self, side: str, qty: float, limit_price: float) -> Any:
        """Send a limit order past the broker's local checks (rules, session, risk): what
        TWS answers is then all that decides."""
        b = self.ibkr
        now = b.clock.now_ns()
        order = b._om.create(
            self.symbol,
            side,
            qty,
            type=None,
            limit_price=limit_price,
            stop_price=None,
            tif="day",
            extended_hours=False,
            client_order_id=None,
            ts=now,
        )
        b._om.register(order)
        b._send_submit(order)
        return order


def _parse_end(text: str) -> float | None:
    """An IB date-time ("20261124 15:00:00 UTC", "20261124-15:00:00", epoch) -> epoch s."""
    s = text.strip()
    if not s:
        return None
    if s.isdigit() and len(s) > 8:
        return float(s)
    s = s.replace("-", " ")
    parts = s.split(" ")
    tz = ZoneInfo(parts[2]) if len(parts) > 2 else UTC
    dt = datetime.strptime(parts[0] + parts[1], "%Y%m%d%H:%M:%S").replace(tzinfo=tz)
    return dt.timestamp()


def _bar_seconds(bar: str) -> int:
    n, unit = bar.split(" ", 1)
    mult = {
        "secs": 1,
        "sec": 1,
        "min": 60,
        "mins": 60,
        "hour": 3600,
        "hours": 3600,
        "day": 86400,
        "days": 86400,
        "week": 604800,
        "month": 2592000,
    }[unit.strip()]
    return int(n) * mult


def _duration_seconds(duration: str) -> int:
    n, unit = duration.split(" ")
    return int(n) * {"S": 1, "D": 86400, "W": 604800, "M": 2592000, "Y": 31536000}[unit]


__all__ = [
    "DECODE_ERROR_PATTERNS",
    "DEFAULT_RULES",
    "IBKRHarness",
    "IBLogGuard",
    "FakeContract",
    "FakeExecution",
    "FakeOrder",
    "FakeTWS",
    "commission_of",
    "default_contracts",
]
