"""Pure market making: keep a bid and an ask (or several levels) around a reference price on one
venue, Hummingbot's ``pure_market_making`` made for stocks.

Differences from Hummingbot that matter on stocks: an order whose price must move is amended
(``replace_order``) where the broker can, so queue place and the rate budget are spent only when
the price truly moves; inventory limits are hard (``max_position``); quotes respect the session
(none while closed, pulled before the close by the engine); every price is snapped to the tick
after every transform and never crosses our own opposite order (the wash-trade guard).

All spreads and tolerances are fractions (0.001 = 0.1 %), sizes in shares, times in seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..enums import OrderStatus, Side, TimeInForce
from ..errors import ConfigError
from ..model import Order, Quote
from ..timeutil import NS_PER_S
from .base import Rejection, SessionChange, Strategy
from .params import parse_params, require

_PENDING = (OrderStatus.PENDING_NEW, OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_REPLACE)


@dataclass(slots=True)
class PMMParams:
    symbol: str
    venue: str | None = None
    bid_spread: float = 0.001
    ask_spread: float = 0.001
    minimum_spread: float | None = None
    order_amount: float = 100.0
    order_levels: int = 1
    order_level_spread: float = 0.001
    order_level_amount: float = 0.0
    order_refresh_time: float = 30.0
    order_refresh_tolerance_pct: float = 0.0
    max_order_age: float = 1800.0
    filled_order_delay: float = 60.0
    max_position: float | None = None
    inventory_target: float = 0.0
    inventory_skew_enabled: bool = False
    inventory_range: float | None = None
    inventory_range_multiplier: float = 1.0
    inventory_price_skew: float = 0.0
    price_ceiling: float | None = None
    price_floor: float | None = None
    take_if_crossed: bool = False
    amend: bool = True
    tif: str = "day"

    def validate(self) -> None:
        require(bool(self.symbol), "symbol", "must name a symbol")
        require(
            self.bid_spread >= 0, "bid_spread", f"must be >= 0 (a fraction), not {self.bid_spread}"
        )
        require(
            self.ask_spread >= 0, "ask_spread", f"must be >= 0 (a fraction), not {self.ask_spread}"
        )
        require(
            self.bid_spread < 1,
            "bid_spread",
            f"must be < 1 (a fraction: 0.001 = 0.1%), not {self.bid_spread}",
        )
        require(
            self.ask_spread < 1,
            "ask_spread",
            f"must be < 1 (a fraction: 0.001 = 0.1%), not {self.ask_spread}",
        )
        require(
            self.order_amount > 0, "order_amount", f"must be > 0 shares, not {self.order_amount}"
        )
        require(
            1 <= self.order_levels <= 50, "order_levels", f"must be 1..50, not {self.order_levels}"
        )
        require(self.order_level_spread >= 0, "order_level_spread", "must be >= 0")
        require(self.order_refresh_time >= 0, "order_refresh_time", "must be >= 0 seconds")
        require(self.max_order_age > 0, "max_order_age", "must be > 0 seconds")
        require(self.filled_order_delay >= 0, "filled_order_delay", "must be >= 0 seconds")
        require(
            self.max_position is None or self.max_position > 0, "max_position", "must be > 0 shares"
        )
        require(
            self.inventory_range is None or self.inventory_range > 0,
            "inventory_range",
            "must be > 0 shares",
        )
        require(self.inventory_range_multiplier > 0, "inventory_range_multiplier", "must be > 0")
        require(0 <= self.inventory_price_skew <= 10, "inventory_price_skew", "must be in 0..10")
        require(self.tif in ("day", "gtc"), "tif", f"must be day or gtc, not {self.tif!r}")
        if self.price_ceiling is not None and self.price_floor is not None:
            require(
                self.price_floor < self.price_ceiling, "price_floor", "must be below price_ceiling"
            )


class PureMarketMaking(Strategy):
    """See the module docstring; parameters in ``PMMParams`` (and the README)."""

    kind = "pure_market_making"

    def __init__(
        self, symbol: str | None = None, *, params: PMMParams | None = None, **kw: Any
    ) -> None:
        super().__init__()
        if params is None:
            if symbol is None:
                raise ConfigError("PureMarketMaking needs a symbol", key="strategy.symbol")
            params = parse_params(PMMParams, {"symbol": symbol, **kw})
        self.p = params
        self._slots: dict[tuple[Side, int], Order] = {}
        self._priced_at: dict[str, int] = {}  # client order id -> when its price was last set
        self._create_after = 0
        self._last_touch = 0.0
        self._retry_after = 0
        self._tif = TimeInForce(params.tif)

    @classmethod
    def from_config(cls, params: Mapping[str, Any], *, file: str | None = None) -> PureMarketMaking:
        return cls(params=parse_params(PMMParams, params, file=file))

    def venues_used(self) -> list[str] | None:
        return [self.p.venue] if self.p.venue else None

    def symbols_used(self) -> list[str] | None:
        return [self.p.symbol]

    # ---- proposal -------------------------------------------------------------------------
    def reference_price(self, q: Quote) -> float | None:
        if q.bid <= 0 or q.ask <= 0:
            return None
        return (q.bid + q.ask) * 0.5

    def proposal(self, q: Quote, position: float) -> list[tuple[Side, int, float, float]]:
        """[(side, level, price, size)] before snapping."""
        p = self.p
        ref = self.reference_price(q)
        if ref is None:
            return []
        total = 2 * (
            p.order_levels * p.order_amount
            + p.order_levels * (p.order_levels - 1) / 2 * p.order_level_amount
        )
        rng = p.inventory_range or total * p.inventory_range_multiplier
        dev = (position - p.inventory_target) / rng if rng > 0 else 0.0
        bid_adj = ask_adj = 1.0
        if p.inventory_skew_enabled:
            bid_adj = min(2.0, max(0.0, 1.0 - dev))
            ask_adj = 2.0 - bid_adj
        center = ref
        if p.inventory_price_skew:
            # reservation price: shift both quotes against the inventory, in half-spreads
            half = ref * (p.bid_spread + p.ask_spread) * 0.5
            center = ref - p.inventory_price_skew * max(-1.0, min(1.0, dev)) * half
        out: list[tuple[Side, int, float, float]] = []
        buys = not (p.price_ceiling is not None and ref >= p.price_ceiling)
        sells = not (p.price_floor is not None and ref <= p.price_floor)
        for i in range(p.order_levels):
            size = p.order_amount + i * p.order_level_amount
            if size <= 0:
                continue
            if buys:
                out.append(
                    (
                        Side.BUY,
                        i,
                        center * (1 - p.bid_spread - i * p.order_level_spread),
                        size * bid_adj,
                    )
                )
            if sells:
                out.append(
                    (
                        Side.SELL,
                        i,
                        center * (1 + p.ask_spread + i * p.order_level_spread),
                        size * ask_adj,
                    )
                )
        return out

    # ---- callbacks ------------------------------------------------------------------------
    def on_quote(self, quote: Quote) -> None:
        p = self.p
        if quote.symbol != p.symbol or (p.venue is not None and quote.venue != p.venue):
            return
        if not self.quoting_allowed():
            if self._slots:
                self._pull()
            return
        self.update(quote)

    def on_reject(self, rejection: Rejection) -> None:
        # a refused command is not retried at once: wait a second of market time
        self._retry_after = rejection.ts + NS_PER_S
        self.log.info("%s", rejection.error)

    def on_session(self, change: SessionChange) -> None:
        if change.closing or not self.quoting_allowed():
            self._pull()

    def on_order(self, order: Order) -> None:
        if order.is_done:
            for key, o in list(self._slots.items()):
                if o is order:
                    del self._slots[key]
            self._priced_at.pop(order.client_order_id, None)
            if order.status is OrderStatus.FILLED:
                self._create_after = self.now_ns() + int(self.p.filled_order_delay * NS_PER_S)

    # ---- the quoting loop -----------------------------------------------------------------
    def _pull(self) -> None:
        for o in list(self._slots.values()):
            if o.is_open:
                self.cancel(o)

    def update(self, q: Quote) -> None:
        p = self.p
        broker = self.broker(p.venue)
        rules = broker.rules
        sym = p.symbol
        now = q.ts
        position = broker.position(sym)
        wanted: dict[tuple[Side, int], tuple[float, float]] = {}
        # room left on each side: the position limit, and for sells what the broker lets us
        # sell (held quantity, short selling) counting our own quotes as replaceable
        ours = sum(
            o.qty - o.filled_qty
            for (sd, _), o in self._slots.items()
            if sd is Side.SELL and o.is_open
        )
        inf = float("inf")
        lim = p.max_position
        room = {
            Side.BUY: inf if lim is None else lim - position,
            Side.SELL: min(
                broker.sell_capacity(sym) + ours, inf if lim is None else lim + position
            ),
        }
        for side, level, raw_px, raw_size in self.proposal(q, position):
            size = self._size(rules, sym, min(raw_size, max(0.0, room[side])))
            if size <= 0:
                continue
            room[side] -= size
            px = rules.snap_price(sym, raw_px, side)
            if not p.take_if_crossed:  # never take: stay one tick off the opposite touch
                if side is Side.BUY and px >= q.ask > 0:
                    px = rules.snap_price(sym, q.ask - rules.tick_at(sym, q.ask), side)
                elif side is Side.SELL and q.bid > 0 and px <= q.bid:
                    px = rules.snap_price(sym, q.bid + rules.tick_at(sym, q.bid), side)
            if p.minimum_spread is not None:
                ref = (q.bid + q.ask) * 0.5
                if side.sign * (ref - px) / ref < p.minimum_spread:
                    continue
            wanted[(side, level)] = (px, size)
        # cancel slots no longer wanted
        for key, o in list(self._slots.items()):
            if key not in wanted and o.status not in _PENDING:
                self.cancel(o)
        refresh_ns = int(p.order_refresh_time * NS_PER_S)
        max_age_ns = int(p.max_order_age * NS_PER_S)
        tol = p.order_refresh_tolerance_pct
        can_create = now >= self._create_after and now >= self._retry_after
        # move asks first when prices rise and bids first when they fall, so a replace never
        # has to wait for the opposite side (``_crosses_own`` defers any that would cross)
        rising = q.bid + q.ask >= self._last_touch
        self._last_touch = q.bid + q.ask
        keys = sorted(wanted, key=lambda k: (k[0] is Side.BUY) == rising)
        for key in keys:
            px, size = wanted[key]
            cur_order = self._slots.get(key)
            if cur_order is not None:
                o = cur_order
                if o.status in _PENDING or o.is_done:
                    continue
                cur = o.limit_price or px
                age = now - self._priced_at.get(o.client_order_id, o.created_ts)
                drift = abs(px - cur) / cur if cur else 1.0
                crosses = (key[0] is Side.BUY and cur >= q.ask > 0) or (
                    key[0] is Side.SELL and q.bid > 0 and cur <= q.bid
                )
                due = age >= refresh_ns and (tol < 0 or drift > tol)
                if not (due or crosses or age >= max_age_ns):
                    continue
                if px == cur and age < max_age_ns and not crosses:
                    continue
                if self._crosses_own(key[0], px, o):
                    continue
                new_qty = None if size == o.qty else size
                if (
                    p.amend
                    and broker.capabilities.replace_in_place
                    and (new_qty is None or new_qty > o.filled_qty)
                ):
                    if self.replace(o, price=px, qty=new_qty) is not None:
                        self._priced_at[o.client_order_id] = now
                else:
                    self.cancel(o)  # placed anew once the cancel is confirmed
                continue
            if not can_create or self._crosses_own(key[0], px, None):
                continue
            placed = self.order(key[0], sym, size, px, venue=p.venue, tif=self._tif)
            if placed is not None:
                self._slots[key] = placed
                self._priced_at[placed.client_order_id] = now

    def _crosses_own(self, side: Side, px: float, exclude: Order | None) -> bool:
        for o in self._slots.values():
            if o is exclude or o.side is side or o.is_done:
                continue
            lp = o.limit_price
            if lp is None:
                return True
            if (side is Side.BUY and px >= lp) or (side is Side.SELL and px <= lp):
                return True
        return False

    @staticmethod
    def _size(rules: Any, symbol: str, size: float) -> float:
        """Whole lots (a market maker quotes whole shares even where fractions are allowed:
        fractional orders are market/DAY-only and never short at some brokers)."""
        inst = rules.instrument(symbol)
        lot = max(1.0, inst.lot_size)
        size = (size // lot) * lot
        return size if size >= max(inst.min_qty, lot) else 0.0
