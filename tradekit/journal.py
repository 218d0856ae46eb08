"""The journal: every command before it is sent, every broker event after it arrives (SQLite, WAL).

One file per bot. ``tradekit run --journal PATH`` writes it and, when the file already holds a
history, rebuilds the bot from it before anything else happens: orders (open and done), fills,
positions, the client order id counters, the simulated time reached, the starting inventory.
Then every broker reconciles against what it really has (see :mod:`tradekit.reconcile`).

Ordering and durability
    Rows are appended in the order things happened. A *command* (``submit``, ``cancel``,
    ``replace``) is written before the broker adapter is asked to send it. For a broker outside
    the process (``Broker.journal_sync``: Alpaca, IB, users' adapters) the command is committed
    to the WAL before the send, together with every event buffered before it (group commit): a
    command that reached the broker is always in the journal. Events are buffered and committed
    in batches (``flush_every`` rows; at the latest ``flush_interval_s`` apart when the run calls
    :meth:`Journal.tick`; at every synchronous command and at close); an event lost in a crash
    is recovered from the broker by reconciliation. The paper broker's venue lives in the
    process: its "send" is an in-process call, so its commands are buffered like events and the
    journal is always a consistent prefix of what happened, which is exactly the venue's state
    after a crash. A failed commit (disk full) raises and keeps the rows buffered.

Schema (``meta.version`` = 1; values msgpack-encoded)::

    meta(key TEXT PRIMARY KEY, value BLOB)
    batch(seq INTEGER PRIMARY KEY, first_ts INTEGER, last_ts INTEGER, n INTEGER, rows BLOB)

One ``batch`` per commit; ``rows`` is a msgpack array of ``[ts, venue, kind, cid, body]`` rows,
each encoded as it arrives (bytes wait in memory, not objects the garbage collector must walk),
one insert per batch; :meth:`Journal.rows` iterates them. ``kind``: ``submit`` | ``cancel`` |
``replace`` (commands), ``order`` (an order update: :data:`ORDER_FIELDS`, then
:data:`ORDER_STATIC` on an order's first row only; the row's ``ts`` is the order's
``updated_ts``; its fees are its fills'), ``fill`` (:data:`FILL_FIELDS`), ``recon`` (a
reconciliation report), ``venue`` (connection up or down), ``run`` (a run started, restarted or
stopped). ``ts`` is nanoseconds since the epoch, UTC.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from .enums import Liquidity, OrderStatus, OrderType, RejectReason, Side, TimeInForce
from .errors import ConfigError
from .model import Fill, Order
from .reconcile import ReconciliationReport, VenueStatus

if TYPE_CHECKING:
    from .brokers.base import Broker

__all__ = ["FILL_FIELDS", "ORDER_FIELDS", "Journal", "JournalState"]

log = logging.getLogger("tradekit.journal")

VERSION = 1

#: the dynamic fields of an ``order`` row, then (first row of an order only) the static ones
ORDER_FIELDS = (
    "status",
    "qty",
    "limit_price",
    "filled_qty",
    "avg_fill_price",
    "broker_order_id",
    "accepted_ts",
    "done_ts",
    "reject_reason",
    "reject_message",
)
ORDER_STATIC = (
    "symbol",
    "side",
    "type",
    "stop_price",
    "tif",
    "extended_hours",
    "created_ts",
    "tag",
)
FILL_FIELDS = ("fill_id", "symbol", "side", "qty", "price", "fee", "liquidity", "ts")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS batch (
    seq INTEGER PRIMARY KEY,
    first_ts INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    n INTEGER NOT NULL,
    rows BLOB NOT NULL
);
"""
_INSERT = "INSERT INTO batch (first_ts, last_ts, n, rows) VALUES (?, ?, ?, ?)"

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.decode


def _order_row(o: Order, first: bool) -> tuple[Any, ...]:
    dyn = (
        o.status,
        o.qty,
        o.limit_price,
        o.filled_qty,
        o.avg_fill_price,
        o.broker_order_id,
        o.accepted_ts,
        o.done_ts,
        o.reject_reason,
        o.reject_message,
    )
    if not first:
        return dyn
    static = (o.symbol, o.side, o.type, o.stop_price, o.tif, o.extended_hours, o.created_ts, o.tag)
    return (*dyn, *static)


@dataclass
class VenueState:
    """One venue's history as rebuilt from a journal."""

    orders: dict[str, Order] = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class JournalState:
    """Everything a journal holds, rebuilt: per venue orders and fills, the last time reached,
    the run markers and the metadata (``initial_positions``, ``start_ns``, ...)."""

    venues: dict[str, VenueState] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    last_ts: int = 0
    rows: int = 0
    runs: int = 0

    @property
    def empty(self) -> bool:
        return self.rows == 0

    def venue(self, name: str) -> VenueState:
        return self.venues.setdefault(name, VenueState())

    @property
    def fills(self) -> list[Fill]:
        """Every fill of every venue, in time order."""
        out = [f for v in self.venues.values() for f in v.fills]
        out.sort(key=lambda f: f.ts)
        return out


class Journal:
    """An append-only SQLite (WAL) journal of one bot. See the module docstring.

    ``Journal(path)`` opens (creating) the file; :meth:`load` rebuilds its history;
    :meth:`attach` starts journaling a broker (its commands and its events); :meth:`close`
    commits what is buffered.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        flush_every: int = 4096,
        flush_interval_s: float = 0.1,
    ) -> None:
        self.path = Path(path)
        if self.path.exists() and self.path.is_dir():
            raise ConfigError(f"--journal {str(self.path)!r} is a directory, not a file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            # checkpoints (the WAL copied into the file, with an fsync) every ~40 MB, not 4 MB
            self._db.execute("PRAGMA wal_autocheckpoint=10000")
            self._db.executescript(_SCHEMA)
            version = self._meta_get("version")
        except sqlite3.DatabaseError as e:
            raise ConfigError(f"--journal {str(self.path)!r} is not a tradekit journal: {e}") from e
        if version is not None and version != VERSION:
            raise ConfigError(
                f"--journal {str(self.path)!r} has version {version!r}; this tradekit reads "
                f"version {VERSION}"
            )
        self.flush_every = int(flush_every)
        self.flush_interval_ns = int(flush_interval_s * 1e9)
        self._buf: list[bytes] = []  # encoded rows not yet committed
        self._known: dict[str, set[str]] = {}  # venue -> ids whose static fields are written
        self._last_flush = time.monotonic_ns()
        self.rows_written = 0
        self.closed = False
        if version is None:
            self.set_meta("version", VERSION)

    def _commit(self, meta: tuple[tuple[str, Any], ...] = ()) -> None:
        """Commit the buffered rows (one batch, one transaction) and ``meta`` updates."""
        if self.closed:
            raise ConfigError(f"journal {str(self.path)!r} is closed")
        buf = self._buf
        self._last_flush = time.monotonic_ns()
        if not buf and not meta:
            return
        db = self._db
        db.execute("BEGIN")
        try:
            if buf:
                # the rows are msgpack-encoded as they arrive (bytes: nothing for the garbage
                # collector to traverse while they wait); the batch is a msgpack array of them
                blob = b"\xdd" + len(buf).to_bytes(4, "big") + b"".join(buf)
                first, last = _decode(buf[0])[0], _decode(buf[-1])[0]
                db.execute(_INSERT, (first, last, len(buf), blob))
            for key, value in meta:
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    (key, _encode(value)),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")  # the rows stay buffered: nothing is lost
            raise
        self.rows_written += len(buf)
        buf.clear()

    def _add(self, ts: int, venue: str, kind: str, cid: str | None, body: Any) -> None:
        """Buffer one row (encoded now)."""
        self._buf.append(_encode((ts, venue, kind, cid, body)))

    # ---- metadata ------------------------------------------------------------------------------
    def _meta_get(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else _decode(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        """Set a metadata value (committed, after every row buffered before it)."""
        self._commit(((key, value),))

    def meta(self) -> dict[str, Any]:
        self.sync()
        return {k: _decode(v) for k, v in self._db.execute("SELECT key, value FROM meta")}

    # ---- writing -------------------------------------------------------------------------------
    def attach(self, broker: Broker) -> None:
        """Journal ``broker``'s commands (write-before-send) and events (before any other
        listener sees them, so a reaction is always journaled after its cause)."""
        broker.journal = self
        venue = broker.venue
        known = self._known.setdefault(venue, set())
        for o in broker.orders:  # restored or adopted before attaching: already journaled
            known.add(o.client_order_id)
        buf = self._buf
        limit = self.flush_every
        add = self._add
        enc = _encode
        pending_cancel = OrderStatus.PENDING_CANCEL
        pending_replace = OrderStatus.PENDING_REPLACE

        def on_event(obj: Any) -> None:
            t = type(obj)
            if t is Order:
                st = obj.status
                if st is pending_cancel or st is pending_replace:
                    return  # the command row before it says as much
                cid = obj.client_order_id
                first = cid not in known
                if first:
                    known.add(cid)
                buf.append(enc((obj.updated_ts, venue, "order", cid, _order_row(obj, first))))
            elif t is Fill:
                fill_row = (
                    obj.fill_id,
                    obj.symbol,
                    obj.side,
                    obj.qty,
                    obj.price,
                    obj.fee,
                    obj.liquidity,
                    obj.ts,
                )
                add(obj.ts, venue, "fill", obj.client_order_id, fill_row)
            else:
                return
            if len(buf) >= limit:
                self._commit()

        def on_status(obj: Any) -> None:
            if type(obj) is ReconciliationReport:
                add(obj.ts, venue, "recon", None, obj.to_dict())
                self._commit()
            elif type(obj) is VenueStatus:
                add(obj.ts, venue, "venue", None, (obj.up, obj.reason))

        broker._status_listeners.insert(0, on_status)
        broker._listeners.insert(0, on_event)

    def command(self, broker: Broker, kind: str, order: Order, body: tuple[Any, ...] = ()) -> None:
        """Journal a command about to be sent (``submit``: the order's fields; ``replace``:
        (qty, limit price); ``cancel``: nothing). Committed before returning when the broker is
        outside the process (``broker.journal_sync``)."""
        venue = broker._venue
        cid = order.client_order_id
        if kind == "submit":
            self._known.setdefault(venue, set()).add(cid)
            body = _order_row(order, True)
        # (the order's updated_ts is the command's time: set by the request just made)
        buf = self._buf
        buf.append(_encode((order.updated_ts, venue, kind, cid, body)))
        if broker.journal_sync or len(buf) >= self.flush_every:
            self._commit()

    def record(
        self, kind: str, ts: int, body: Any, *, venue: str = "", cid: str | None = None
    ) -> None:
        """Append any other row (``run`` markers, ...) and commit it."""
        self._add(ts, venue, kind, cid, body)
        self._commit()

    def tick(self) -> None:
        """Hand the buffered events to the writer when ``flush_interval_s`` has passed (live
        loops call it)."""
        if self._buf and time.monotonic_ns() - self._last_flush >= self.flush_interval_ns:
            self._commit()

    def flush(self) -> None:
        """Hand everything buffered to the writer (it commits in the background)."""
        self._commit()

    def sync(self) -> None:
        """Commit everything buffered and wait until it is in the file."""
        if not self.closed:
            self._commit()

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.sync()
        finally:
            self.closed = True
            self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"

    # ---- reading -------------------------------------------------------------------------------
    def rows(self) -> Iterator[tuple[int, int, str, str, str | None, Any]]:
        """(seq, ts, venue, kind, cid, body) of every row (what is buffered is committed
        first), in order."""
        self.sync()
        seq = 0
        for (blob,) in self._db.execute("SELECT rows FROM batch ORDER BY seq"):
            for ts, venue, kind, cid, body in _decode(blob):
                seq += 1
                yield seq, ts, venue, kind, cid, body

    def load(self) -> JournalState:
        """Rebuild the history: orders with their latest state, fills (deduplicated by id)."""
        state = JournalState(meta=self.meta())
        seen_fills: set[tuple[str, str]] = set()
        for _seq, ts, venue, kind, cid, body in self.rows():
            state.rows += 1
            if ts > state.last_ts:
                state.last_ts = ts
            if kind == "run":
                if body.get("event") in ("start", "restart"):
                    state.runs += 1
                continue
            vs = state.venue(venue)
            if kind == "submit" or kind == "order":
                assert cid is not None
                order = vs.orders.get(cid)
                if order is None:
                    if len(body) < len(ORDER_FIELDS) + len(ORDER_STATIC):
                        log.warning("journal: update of unknown order %s skipped", cid)
                        continue
                    order = _new_order(cid, venue, body[len(ORDER_FIELDS) :])
                    vs.orders[cid] = order
                _apply_dynamic(order, body, ts)
            elif kind == "fill":
                assert cid is not None
                fill = _fill(cid, venue, body)
                if (venue, fill.fill_id) in seen_fills:
                    continue
                seen_fills.add((venue, fill.fill_id))
                vs.fills.append(fill)
                o = vs.orders.get(cid)
                if o is not None:
                    o.fills.append(fill)
            elif kind == "recon":
                vs.reports.append(body)
        for vs in state.venues.values():
            for o in vs.orders.values():
                _settle_fills(o)
        return state


def _settle_fills(o: Order) -> None:
    """An order's fills are the truth: a crash between a fill's row and the order's next
    snapshot leaves the snapshot behind; bring it up to its fills."""
    if not o.fills:
        return
    o.fees = sum(f.fee for f in o.fills)  # (fees come with fills only: not in order rows)
    qty = sum(f.qty for f in o.fills)
    if qty <= o.filled_qty + 1e-9:
        return
    o.avg_fill_price = sum(f.qty * f.price for f in o.fills) / qty
    o.filled_qty = qty
    o.updated_ts = max(o.updated_ts, max(f.ts for f in o.fills))
    if qty >= o.qty - 1e-9:
        if o.status is not OrderStatus.FILLED:
            o.status = OrderStatus.FILLED
            o.done_ts = o.updated_ts
    elif o.is_open:
        o.status = OrderStatus.PARTIALLY_FILLED


def _new_order(cid: str, venue: str, s: list[Any]) -> Order:
    symbol, side, type_, stop, tif, ext, created, tag = s
    return Order(
        client_order_id=cid,
        venue=venue,
        symbol=symbol,
        side=Side(side),
        qty=0.0,
        type=OrderType(type_),
        stop_price=stop,
        tif=TimeInForce(tif),
        extended_hours=bool(ext),
        created_ts=int(created),
        updated_ts=int(created),
        tag=tag,
    )


def _apply_dynamic(o: Order, d: list[Any], ts: int) -> None:
    (status, qty, limit, filled, avg, bid, acc, done, reason, message) = d[: len(ORDER_FIELDS)]
    o.status = OrderStatus(status)
    o.qty = float(qty)
    o.limit_price = limit
    o.filled_qty = float(filled)
    o.avg_fill_price = avg
    o.broker_order_id = bid
    o.accepted_ts = acc
    o.done_ts = done
    o.reject_reason = None if reason is None else RejectReason(reason)
    o.reject_message = message
    o.updated_ts = max(o.updated_ts, int(ts))


def _fill(cid: str, venue: str, b: list[Any]) -> Fill:
    fill_id, symbol, side, qty, price, fee, liq, ts = b
    return Fill(
        fill_id,
        cid,
        venue,
        symbol,
        Side(side),
        float(qty),
        float(price),
        float(fee),
        Liquidity(liq),
        int(ts),
    )


def initial_positions(meta: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in (meta.get("initial_positions") or {}).items()}


def restore_brokers(state: JournalState, brokers: Iterable[Broker]) -> None:
    """Give each broker its venue's journaled orders and fills (before it connects)."""
    for b in brokers:
        vs = state.venues.get(b.venue)
        if vs is not None and (vs.orders or vs.fills):
            b.restore(list(vs.orders.values()), vs.fills)
