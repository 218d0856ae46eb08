"""The order manager: client order ids, the order state machine (an explicit transition table),
and the absorption of duplicate, late and out-of-order broker events.

Adapters never mutate ``Order`` handles themselves; they report what the broker said
(``on_accepted``, ``on_status``, ``on_fill``, ``on_replaced``, ``on_replace_rejected``) and the
manager decides what that means for the handle, then tells the listeners.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from .enums import OrderStatus, OrderType, RejectReason, Side, TimeInForce
from .errors import OrderRejected
from .model import Fill, Order
from .rules import _short, as_number

log = logging.getLogger("tradekit.orders")

S = OrderStatus
_WORKING = (S.NEW, S.PARTIALLY_FILLED)

#: Allowed status transitions (from, to). Fills move quantities through ``on_fill``; a status
#: event that is not in this table is stale, duplicated or out of order and is absorbed.
TRANSITIONS: frozenset[tuple[OrderStatus, OrderStatus]] = frozenset(
    [
        (S.PENDING_NEW, t)
        for t in (
            S.NEW,
            S.PARTIALLY_FILLED,
            S.FILLED,
            S.PENDING_CANCEL,
            S.PENDING_REPLACE,
            S.CANCELED,
            S.REJECTED,
            S.EXPIRED,
            S.LOST,
        )
    ]
    + [
        (S.NEW, t)
        for t in (
            S.PARTIALLY_FILLED,
            S.FILLED,
            S.PENDING_CANCEL,
            S.PENDING_REPLACE,
            S.CANCELED,
            S.EXPIRED,
            S.REJECTED,
            S.LOST,
        )
    ]
    + [
        (S.PARTIALLY_FILLED, t)
        for t in (S.FILLED, S.PENDING_CANCEL, S.PENDING_REPLACE, S.CANCELED, S.EXPIRED, S.LOST)
    ]
    # a NEW/PARTIALLY_FILLED status while a cancel or replace is pending is a late ack, not an
    # answer: those come through on_cancel_rejected / on_replaced / on_replace_rejected
    + [(S.PENDING_CANCEL, t) for t in (S.FILLED, S.CANCELED, S.EXPIRED, S.REJECTED, S.LOST)]
    + [
        (S.PENDING_REPLACE, t)
        for t in (S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED, S.REJECTED, S.LOST)
    ]
    # a broker may confirm a cancel we never saw acknowledged, or find a "lost" order again
    + [
        (S.LOST, t)
        for t in (S.NEW, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED, S.REJECTED)
    ]
)

_EPS = 1e-9
#: Longest symbol and client order id accepted (Alpaca takes client order ids of up to 128).
_MAX_SYMBOL = 64
_MAX_CLIENT_ID = 128


def can_transition(src: OrderStatus, dst: OrderStatus) -> bool:
    return (src, dst) in TRANSITIONS


class ClientOrderIds:
    """Client order ids unique across restarts: ``PREFIX-N`` where the default prefix is made of
    the start time (ms, base 36) and random bits, so two runs never collide. Backtests pass a fixed
    prefix for determinism."""

    __slots__ = ("_n", "prefix")

    def __init__(self, prefix: str | None = None, start: int = 0) -> None:
        if prefix is None:
            prefix = "tk" + _b36(time.time_ns() // 1_000_000) + os.urandom(2).hex()
        self.prefix = prefix
        self._n = start

    def __call__(self) -> str:
        self._n += 1
        return f"{self.prefix}-{self._n}"


def highest_suffix(ids: Iterable[str | None], prefix: str) -> int:
    """The largest N among the ids that are ``prefix`` + N (0 if none): where a counter of ids
    must continue after a restart."""
    top = 0
    n = len(prefix)
    for i in ids:
        if i and i.startswith(prefix) and i[n:].isdigit():
            top = max(top, int(i[n:]))
    return top


def _b36(n: int) -> str:
    chars = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = chars[r] + out
    return out or "0"


Emit = Callable[[Any], None]


class OrderManager:
    """Holds every order of one broker (venue), applies events through the transition table and
    notifies ``emit`` with each changed ``Order`` and each new ``Fill``."""

    def __init__(self, venue: str, emit: Emit, *, ids: ClientOrderIds | None = None) -> None:
        self.venue = venue
        self._emit = emit
        self.ids = ids or ClientOrderIds()
        self.orders: dict[str, Order] = {}  # every order, by client order id
        self.open: dict[str, Order] = {}  # open orders only
        self._by_broker_id: dict[str, str] = {}
        self._fill_ids: set[str] = set()
        self._pending_replace: dict[str, tuple[float, float | None, OrderStatus]] = {}
        self.orphans: list[Any] = []  # events for orders we do not know, kept for reconciliation
        self.on_fill_hook: Callable[[Fill, Order], None] | None = None

    # ---- creation -------------------------------------------------------------------------
    def create(
        self,
        symbol: str,
        side: Side | str,
        qty: float,
        *,
        type: OrderType | str | None,
        limit_price: float | None,
        stop_price: float | None,
        tif: TimeInForce | str,
        extended_hours: bool,
        client_order_id: str | None,
        ts: int,
    ) -> Order:
        """Build a PENDING_NEW handle (not yet registered). Raises ``OrderRejected(INVALID)`` for
        values of the wrong kind."""
        if side.__class__ is not Side:
            try:
                side = Side(side)
            except ValueError:
                raise OrderRejected(RejectReason.INVALID, f"side {side!r} is not one of buy, sell")
        if type is None:
            otype = OrderType.LIMIT if limit_price is not None else OrderType.MARKET
            if stop_price is not None:
                otype = OrderType.STOP_LIMIT if limit_price is not None else OrderType.STOP
        else:
            try:
                otype = OrderType(type)
            except ValueError:
                allowed = ", ".join(t.value for t in OrderType)
                raise OrderRejected(
                    RejectReason.ORDER_TYPE, f"order type {type!r} is not one of {allowed}"
                )
        try:
            tif = tif if tif.__class__ is TimeInForce else TimeInForce(tif)
        except ValueError:
            allowed = ", ".join(t.value for t in TimeInForce)
            raise OrderRejected(
                RejectReason.ORDER_TYPE, f"time in force {tif!r} is not one of {allowed}"
            )
        if (
            not isinstance(symbol, str)
            or not symbol
            or len(symbol) > _MAX_SYMBOL
            or not symbol.isprintable()
            or symbol != symbol.strip()
        ):
            raise OrderRejected(
                RejectReason.INVALID,
                f"symbol {_short(symbol)} must be a non-empty str of at most {_MAX_SYMBOL} "
                f"printable characters without surrounding spaces",
            )
        # qty and prices: ints, floats, numpy numbers, Decimal; never bools or strings
        qty_f = qty if qty.__class__ is float else as_number(qty, "qty", symbol)
        lp = limit_price
        if lp is not None and lp.__class__ is not float:
            lp = as_number(lp, "limit_price", symbol)
        sp = stop_price
        if sp is not None and sp.__class__ is not float:
            sp = as_number(sp, "stop_price", symbol)
        if extended_hours is not False and extended_hours is not True:
            # also numpy bools and the ints 0 and 1; never a string ("no" is truthy)
            cls = extended_hours.__class__
            if not (
                (cls.__module__ == "numpy" and cls.__name__ in ("bool", "bool_"))
                or (cls is int and extended_hours in (0, 1))
            ):
                raise OrderRejected(
                    RejectReason.INVALID,
                    f"extended_hours {_short(extended_hours)} must be True or False",
                )
        if client_order_id is None:
            client_order_id = self.ids()
        elif (
            not isinstance(client_order_id, str)
            or not client_order_id
            or len(client_order_id) > _MAX_CLIENT_ID
            or not client_order_id.isprintable()
        ):
            raise OrderRejected(
                RejectReason.INVALID,
                f"client_order_id {_short(client_order_id)} must be a non-empty str of at most "
                f"{_MAX_CLIENT_ID} printable characters",
            )
        elif client_order_id in self.orders:
            raise OrderRejected(
                RejectReason.DUPLICATE_ID,
                f"client_order_id {client_order_id!r} was already used at {self.venue}",
            )
        return Order(
            client_order_id=client_order_id,
            venue=self.venue,
            symbol=symbol,
            side=side,
            qty=qty_f,
            type=otype,
            limit_price=lp,
            stop_price=sp,
            tif=tif,
            extended_hours=bool(extended_hours),
            created_ts=ts,
            updated_ts=ts,
        )

    def register(self, order: Order) -> None:
        """An order that passed every check and is being sent."""
        self.orders[order.client_order_id] = order
        self.open[order.client_order_id] = order

    def reject_local(self, order: Order, err: OrderRejected) -> None:
        """Record an order refused before it left (kept for the reports). Listeners are not
        called: the caller has the ``OrderRejected`` in hand, and a listener that reacted by
        ordering again would recurse inside the refused call."""
        order.status = S.REJECTED
        order.reject_reason = err.reason
        order.reject_message = err.message
        order.done_ts = order.updated_ts
        if order.client_order_id not in self.orders:
            self.orders[order.client_order_id] = order

    def adopt(self, order: Order) -> None:
        """Take over an order found at the broker that we did not place in this process."""
        self.orders[order.client_order_id] = order
        if order.is_open:
            self.open[order.client_order_id] = order
        if order.broker_order_id:
            self._by_broker_id[order.broker_order_id] = order.client_order_id

    def restore(self, orders: Iterable[Order], fills: Iterable[Fill]) -> None:
        """Take back orders and fills rebuilt from a journal. A cancel or replace that was
        pending when the journal ended is treated as not applied (the order is working again):
        the broker says what became of it at reconciliation. New client order ids continue
        after the highest restored one of this prefix."""
        orders = list(orders)
        for o in orders:
            if o.status is S.PENDING_CANCEL or o.status is S.PENDING_REPLACE:
                o.status = S.PARTIALLY_FILLED if o.filled_qty > _EPS else S.NEW
                if o.broker_order_id is None:
                    o.status = S.PENDING_NEW
            self.adopt(o)
        self.ids._n = max(
            self.ids._n, highest_suffix((o.client_order_id for o in orders), self.ids.prefix + "-")
        )
        for f in fills:
            self._fill_ids.add(f.fill_id)

    # ---- lookup ---------------------------------------------------------------------------
    def get(self, client_order_id: str) -> Order | None:
        return self.orders.get(client_order_id)

    def by_broker_id(self, broker_order_id: str) -> Order | None:
        cid = self._by_broker_id.get(broker_order_id)
        return None if cid is None else self.orders.get(cid)

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        if symbol is None:
            return list(self.open.values())
        return [o for o in self.open.values() if o.symbol == symbol]

    def _find(self, client_order_id: str | None, broker_order_id: str | None) -> Order | None:
        order = None
        if client_order_id is not None:
            order = self.orders.get(client_order_id)
        if order is None and broker_order_id is not None:
            order = self.by_broker_id(broker_order_id)
        return order

    def _orphan(self, kind: str, event: Any) -> None:
        log.warning(
            "%s: event for an unknown order kept for reconciliation: %s %r", self.venue, kind, event
        )
        self.orphans.append((kind, event))

    # ---- events from the broker -----------------------------------------------------------
    def on_accepted(
        self, client_order_id: str | None, broker_order_id: str | None, ts: int
    ) -> Order | None:
        order = self._find(client_order_id, broker_order_id)
        if order is None:
            self._orphan("accepted", (client_order_id, broker_order_id, ts))
            return None
        changed = False
        if (
            broker_order_id
            and order.broker_order_id != broker_order_id
            and broker_order_id not in self._by_broker_id  # a late ack must not revert a newer id
        ):
            self._set_broker_id(order, broker_order_id)
            changed = True
        if order.accepted_ts is None:
            order.accepted_ts = ts
        if order.status is S.PENDING_NEW:
            order.status = S.PARTIALLY_FILLED if order.filled_qty > _EPS else S.NEW
            changed = True
        elif order.status is S.LOST:  # the broker found a "lost" order again: it is working
            self._set_status(order, S.PARTIALLY_FILLED if order.filled_qty > _EPS else S.NEW, ts)
            changed = True
        if changed:
            order.updated_ts = max(order.updated_ts, ts)
            self._emit(order)
        return order

    def _set_broker_id(self, order: Order, broker_order_id: str) -> None:
        order.broker_order_id = broker_order_id
        self._by_broker_id[broker_order_id] = order.client_order_id

    def on_status(
        self,
        client_order_id: str | None,
        status: OrderStatus,
        ts: int,
        *,
        broker_order_id: str | None = None,
        reason: RejectReason | None = None,
        message: str | None = None,
    ) -> Order | None:
        """A status the broker reported. Stale or repeated statuses are absorbed."""
        order = self._find(client_order_id, broker_order_id)
        if order is None:
            self._orphan("status", (client_order_id, broker_order_id, status, ts, message))
            return None
        if broker_order_id and order.broker_order_id is None:
            self._set_broker_id(order, broker_order_id)
        if status is S.NEW or (status is S.PARTIALLY_FILLED and order.status is not S.NEW):
            # acknowledgements (possibly late); quantities come with the fills
            return self.on_accepted(order.client_order_id, broker_order_id, ts)
        if status is order.status or not can_transition(order.status, status):
            log.debug(
                "%s: absorbed status %s for %s (now %s)",
                self.venue,
                status.value,
                order.client_order_id,
                order.status.value,
            )
            return order
        self._set_status(order, status, ts)
        if status is S.REJECTED:
            order.reject_reason = reason or RejectReason.BROKER
            order.reject_message = message
        self._emit(order)
        return order

    def _set_status(self, order: Order, status: OrderStatus, ts: int) -> None:
        order.status = status
        order.updated_ts = max(order.updated_ts, ts)
        if status is not S.PENDING_NEW and order.accepted_ts is None and status is not S.REJECTED:
            order.accepted_ts = ts
        if status.is_done:
            order.done_ts = ts
            self.open.pop(order.client_order_id, None)
            self._pending_replace.pop(order.client_order_id, None)
        else:
            order.done_ts = None  # (reopened from LOST)
            if order.client_order_id not in self.open:
                self.open[order.client_order_id] = order

    def on_fill(self, fill: Fill) -> Order | None:
        """An execution. Duplicates (same ``fill_id``) are absorbed; a fill always counts, even
        after a cancel request or a cancel confirmation (it happened at the exchange)."""
        if fill.fill_id in self._fill_ids:
            log.debug("%s: duplicate fill %s absorbed", self.venue, fill.fill_id)
            return None
        order = self.orders.get(fill.client_order_id)
        if order is None:
            self._orphan("fill", fill)
            return None
        self._fill_ids.add(fill.fill_id)
        prev = order.filled_qty
        new_qty = prev + fill.qty
        order.avg_fill_price = (
            fill.price
            if not prev
            else ((order.avg_fill_price or 0.0) * prev + fill.price * fill.qty) / new_qty
        )
        order.filled_qty = new_qty
        order.fees += fill.fee
        order.fills.append(fill)
        order.updated_ts = max(order.updated_ts, fill.ts)
        if order.accepted_ts is None:
            order.accepted_ts = fill.ts
        st = order.status
        if new_qty >= order.qty - _EPS:
            if st is not S.FILLED:
                self._set_status(order, S.FILLED, fill.ts)
        elif st is S.PENDING_NEW or st is S.NEW or st is S.LOST:
            self._set_status(order, S.PARTIALLY_FILLED, fill.ts)
        if self.on_fill_hook is not None:
            self.on_fill_hook(fill, order)
        self._emit(fill)
        self._emit(order)
        return order

    def request_cancel(self, order: Order, ts: int) -> bool:
        """Mark a cancel request; False when there is nothing to cancel (done or already asked)."""
        if order.is_done or order.status is S.PENDING_CANCEL:
            return False
        self._set_status(order, S.PENDING_CANCEL, ts)
        self._emit(order)
        return True

    def on_cancel_rejected(self, client_order_id: str, ts: int, message: str = "") -> Order | None:
        """The broker refused a cancel (too late, or unknown there): back to working."""
        order = self.orders.get(client_order_id)
        if order is None or order.status is not S.PENDING_CANCEL:
            return order
        self._set_status(order, S.PARTIALLY_FILLED if order.filled_qty > _EPS else S.NEW, ts)
        log.info("%s: cancel of %s refused: %s", self.venue, client_order_id, message)
        self._emit(order)
        return order

    def request_replace(self, order: Order, qty: float, limit_price: float | None, ts: int) -> None:
        self._pending_replace[order.client_order_id] = (qty, limit_price, order.status)
        self._set_status(order, S.PENDING_REPLACE, ts)
        self._emit(order)

    def pending_replace(self, client_order_id: str) -> tuple[float, float | None] | None:
        p = self._pending_replace.get(client_order_id)
        return None if p is None else (p[0], p[1])

    def on_replaced(
        self,
        client_order_id: str | None,
        ts: int,
        *,
        broker_order_id: str | None = None,
        old_broker_order_id: str | None = None,
        qty: float | None = None,
        limit_price: float | None = None,
    ) -> Order | None:
        """The broker confirmed a replace; the handle takes the new values and newest id."""
        order = self._find(client_order_id, old_broker_order_id or broker_order_id)
        if order is None:
            self._orphan("replaced", (client_order_id, broker_order_id, qty, limit_price, ts))
            return None
        pending = self._pending_replace.pop(order.client_order_id, None)
        if pending is not None:
            qty = pending[0] if qty is None else qty
            limit_price = pending[1] if limit_price is None else limit_price
        if qty is not None:
            order.qty = float(qty)
        if limit_price is not None:
            order.limit_price = float(limit_price)
        if broker_order_id:
            self._set_broker_id(order, broker_order_id)
        if order.is_done:  # a late confirmation after the order ended
            self._emit(order)
            return order
        if order.filled_qty >= order.qty - _EPS:
            self._set_status(order, S.FILLED, ts)
        elif order.status is not S.PENDING_CANCEL:
            self._set_status(order, S.PARTIALLY_FILLED if order.filled_qty > _EPS else S.NEW, ts)
        self._emit(order)
        return order

    def on_restated(self, client_order_id: str, qty: float, ts: int) -> Order | None:
        """The broker works a different total quantity for the order than the handle shows (a
        replacement sized before fills that were reported later): the handle takes it."""
        order = self.orders.get(client_order_id)
        if order is None or abs(order.qty - qty) <= _EPS:
            return order
        order.qty = float(qty)
        order.updated_ts = max(order.updated_ts, ts)
        if order.is_open and order.filled_qty >= order.qty - _EPS:
            self._set_status(order, S.FILLED, ts)
        self._emit(order)
        return order

    def on_replace_rejected(self, client_order_id: str, ts: int, message: str = "") -> Order | None:
        order = self.orders.get(client_order_id)
        if order is None:
            return None
        self._pending_replace.pop(client_order_id, None)
        if order.status is S.PENDING_REPLACE:
            self._set_status(order, S.PARTIALLY_FILLED if order.filled_qty > _EPS else S.NEW, ts)
            log.info("%s: replace of %s refused: %s", self.venue, client_order_id, message)
            self._emit(order)
        return order

    def all_orders(self) -> Iterable[Order]:
        return self.orders.values()
