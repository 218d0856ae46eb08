"""Pure market making: keep a bid and an ask (or several levels) around a reference price on one
venue, Hummingbot's ``pure_market_making`` made for stocks.

Each quote update runs Hummingbot's pipeline: the base proposal (levels, or ``order_override``),
level modifiers (static and moving price bands, ping-pong), price modifiers (order optimization,
transaction costs), size modifiers (inventory skew), then the limits (``max_position``, what the
broker lets us sell, the end-of-day target), the taker filter and ``minimum_spread``; then the
live orders are reconciled with it.

What differs from Hummingbot, for stocks: an order whose price must move is amended
(``replace_order``) where the broker can, so queue place and the rate budget are spent only when
the price truly moves (Hummingbot always cancels and re-creates); inventory skew can move prices
(``inventory_price_skew``: a reservation-price shift), not only sizes, on a signed position
(shorting where allowed); limits are hard; quotes respect the session (none while closed or the
symbol is halted, pulled before the close by the engine, extended hours only as limit DAY
orders when the run quotes extended hours); every price is snapped to the tick after every
transform and never crosses our own opposite order (the wash-trade guard).

All spreads, tolerances and percentages are fractions (0.001 = 0.1 %), even where Hummingbot's
name ends in ``_pct``; sizes in shares; times in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..enums import Liquidity, OrderStatus, Side, TimeInForce
from ..errors import ConfigError
from ..model import MarketStatus, Order, Quote, Trade
from ..timeutil import NS_PER_S
from .base import Rejection, SessionChange, Strategy
from .params import parse_params, require

_PENDING = (OrderStatus.PENDING_NEW, OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_REPLACE)
PRICE_SOURCES = ("mid", "last_trade", "last_own_trade", "best_bid", "best_ask", "inventory_cost")

#: a proposed order: (side, slot name, price, size)
Proposal = list[tuple[Side, str, float, float]]


@dataclass(slots=True)
class PMMParams:
    """Parameters of ``PureMarketMaking`` (units: fractions, shares, seconds)."""

    symbol: str
    venue: str | None = None
    bid_spread: float = 0.001  # fraction below the reference for level 0
    ask_spread: float = 0.001  # fraction above the reference for level 0
    minimum_spread: float | None = None  # cancel/skip quotes closer than this to the mid
    order_amount: float = 100.0  # shares at level 0
    order_levels: int = 1
    order_level_spread: float = 0.001  # further fraction per level
    order_level_amount: float = 0.0  # further shares per level (may be negative)
    order_override: dict[str, Any] | None = None  # name -> [side, spread, size]
    order_refresh_time: float = 30.0  # s before a quote may be re-priced
    order_refresh_tolerance_pct: float = 0.0  # keep quotes within this fraction (<0: never keep)
    max_order_age: float = 1800.0  # s: re-price any quote older than this
    filled_order_delay: float = 60.0  # s to wait after a complete fill before new quotes
    max_position: float | None = None  # shares, absolute: hard inventory limit
    inventory_target: float = 0.0  # shares (signed) the skew steers toward
    inventory_target_base_pct: float | None = None  # Hummingbot's target: stock share of value
    inventory_skew_enabled: bool = False
    inventory_range: float | None = None  # shares of deviation at which one side's size is 0
    inventory_range_multiplier: float = 1.0  # range = multiplier x total order size (both sides)
    inventory_price_skew: float = 0.0  # reservation-price shift, in half-spreads at full range
    eod_inventory_target: float | None = None  # shares to hold into the close
    eod_window_s: float = 900.0  # s before the close when only the side toward it is quoted
    hanging_orders_enabled: bool = False
    hanging_orders_cancel_pct: float = 0.1  # cancel a hanging order this far from the reference
    ping_pong_enabled: bool = False
    order_optimization_enabled: bool = False
    bid_order_optimization_depth: float = 0.0  # shares of dust to skip at the top of book
    ask_order_optimization_depth: float = 0.0
    add_transaction_costs: bool = False
    price_ceiling: float | None = None  # no bids at or above (price)
    price_floor: float | None = None  # no asks at or below (price)
    moving_price_band_enabled: bool = False
    price_ceiling_pct: float = 0.01  # moving ceiling = reference x (1 + this)
    price_floor_pct: float = -0.01  # moving floor = reference x (1 + this)
    price_band_refresh_time: float = 86400.0  # s before the moving band re-anchors
    price_source: str = (
        "mid"  # mid | last_trade | last_own_trade | best_bid | best_ask | inventory_cost
    )
    price_source_venue: str | None = None  # take the reference from another venue's book
    take_if_crossed: bool = False  # allow quotes that take liquidity
    amend: bool = True  # re-price by replacing in place where the broker can
    tif: str = "day"

    def validate(self) -> None:
        for key in ("bid_spread", "ask_spread"):
            v = getattr(self, key)
            require(0 <= v < 1, key, f"must be a fraction in [0, 1) (0.001 = 0.1%), not {v}")
        require(bool(self.symbol), "symbol", "must name a symbol")
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
        require(
            self.inventory_target_base_pct is None or 0 <= self.inventory_target_base_pct <= 1,
            "inventory_target_base_pct",
            "must be a fraction in [0, 1] (0.5 = 50%)",
        )
        require(0 <= self.inventory_price_skew <= 10, "inventory_price_skew", "must be in 0..10")
        require(self.eod_window_s >= 0, "eod_window_s", "must be >= 0 seconds")
        require(
            0 < self.hanging_orders_cancel_pct < 1,
            "hanging_orders_cancel_pct",
            "must be a fraction in (0, 1)",
        )
        require(
            self.bid_order_optimization_depth >= 0, "bid_order_optimization_depth", "must be >= 0"
        )
        require(
            self.ask_order_optimization_depth >= 0, "ask_order_optimization_depth", "must be >= 0"
        )
        require(self.price_ceiling_pct > -1, "price_ceiling_pct", "must be > -1 (a fraction)")
        require(self.price_floor_pct > -1, "price_floor_pct", "must be > -1 (a fraction)")
        require(self.price_band_refresh_time > 0, "price_band_refresh_time", "must be > 0 seconds")
        require(
            self.price_source in PRICE_SOURCES,
            "price_source",
            f"must be one of {', '.join(PRICE_SOURCES)}, not {self.price_source!r}",
        )
        require(self.tif in ("day", "gtc"), "tif", f"must be day or gtc, not {self.tif!r}")
        if self.price_ceiling is not None and self.price_floor is not None:
            require(
                self.price_floor < self.price_ceiling, "price_floor", "must be below price_ceiling"
            )
        for name, spec in (self.order_override or {}).items():
            ok = (
                isinstance(spec, list | tuple)
                and len(spec) == 3
                and spec[0] in ("buy", "sell")
                and all(isinstance(x, int | float) and not isinstance(x, bool) for x in spec[1:])
                and 0 <= spec[1] < 1
                and spec[2] > 0
            )
            require(
                ok,
                f"order_override.{name}",
                f'must be ["buy"|"sell", spread fraction in [0, 1), size > 0], not {spec!r}',
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
        self._slots: dict[tuple[Side, str], Order] = {}
        self._hanging: dict[str, Order] = {}  # client order id -> hanging order
        self._priced_at: dict[str, int] = {}  # client order id -> when its price was last set
        self._create_after = 0
        self._last_touch = 0.0
        self._retry_after = 0
        self._tif = TimeInForce(params.tif)
        self._last_trade: float | None = None
        self._last_own_trade: float | None = None
        self._filled = {Side.BUY: 0, Side.SELL: 0}  # ping-pong balance of complete fills
        self._band: tuple[float, float, int] | None = None  # (floor, ceiling, anchored at)

    @classmethod
    def from_config(cls, params: Mapping[str, Any], *, file: str | None = None) -> PureMarketMaking:
        return cls(params=parse_params(PMMParams, params, file=file))

    def venues_used(self) -> list[str] | None:
        p = self.p
        if p.venue is None:
            return None
        return [p.venue] + ([p.price_source_venue] if p.price_source_venue else [])

    def symbols_used(self) -> list[str] | None:
        return [self.p.symbol]

    # ---- reference price --------------------------------------------------------------------
    def reference_price(self, q: Quote, side: Side | None = None) -> float | None:
        """The price levels are set around (``side``: for ``inventory_cost``, which never sells
        below the average cost of a long, nor buys above that of a short)."""
        p = self.p
        src = q
        if p.price_source_venue is not None:
            other = self.quote(p.symbol, venue=p.price_source_venue)
            if other is None:
                return None
            src = other
        if src.bid <= 0 or src.ask <= 0:
            return None
        mid = (src.bid + src.ask) * 0.5
        kind = p.price_source
        if kind == "best_bid":
            return src.bid
        if kind == "best_ask":
            return src.ask
        if kind == "last_trade":
            return self._last_trade or mid
        if kind == "last_own_trade":
            return self._last_own_trade or mid
        if kind == "inventory_cost" and side is not None:
            pos = self.broker(p.venue).portfolio.position(p.symbol)
            if side is Side.SELL and pos.qty > 0:
                return max(mid, pos.avg_price)
            if side is Side.BUY and pos.qty < 0:
                return min(mid, pos.avg_price)
        return mid

    # ---- the proposal -----------------------------------------------------------------------
    def _levels(self, bid_ref: float, ask_ref: float) -> Proposal:
        p = self.p
        out: Proposal = []
        if p.order_override:
            for name, (side, spread, size) in p.order_override.items():
                if side == "buy":
                    out.append((Side.BUY, name, bid_ref * (1 - spread), float(size)))
                else:
                    out.append((Side.SELL, name, ask_ref * (1 + spread), float(size)))
            return out
        for i in range(p.order_levels):
            size = p.order_amount + i * p.order_level_amount
            if size <= 0:
                continue
            out.append(
                (Side.BUY, str(i), bid_ref * (1 - p.bid_spread - i * p.order_level_spread), size)
            )
            out.append(
                (Side.SELL, str(i), ask_ref * (1 + p.ask_spread + i * p.order_level_spread), size)
            )
        return out

    def _inventory_adjust(self, position: float, price: float) -> tuple[float, float, float]:
        """(bid size factor, ask size factor, deviation in [-1, 1]) from the inventory."""
        p = self.p
        L = p.order_levels
        total = 2 * (L * p.order_amount + L * (L - 1) / 2 * p.order_level_amount)
        if p.inventory_target_base_pct is not None:  # Hummingbot's formula, on portfolio value
            cash = self.broker(p.venue).portfolio.cash
            value = position * price + cash
            vb = position * price
            rng_v = min(total * p.inventory_range_multiplier * price, 0.5 * value)
            target = value * p.inventory_target_base_pct
            if value <= 0 or rng_v <= 0:
                return 0.0, 0.0, 0.0
            left, right = max(target - rng_v, 0.0), target + rng_v
            if vb < target:
                x = _interp(vb, left, target, 0.0, 0.5)
                bid_adj = _interp(x, 0.0, 0.5, 2.0, 1.0)
            else:
                x = _interp(vb, target, right, 0.5, 1.0)
                bid_adj = _interp(x, 0.5, 1.0, 1.0, 0.0)
            dev = (vb - target) / rng_v
        else:
            rng = p.inventory_range or total * p.inventory_range_multiplier
            dev = (position - p.inventory_target) / rng if rng > 0 else 0.0
            bid_adj = min(2.0, max(0.0, 1.0 - dev))
        if not p.inventory_skew_enabled:
            bid_adj = 1.0
        return bid_adj, 2.0 - bid_adj, max(-1.0, min(1.0, dev))

    def proposal(self, q: Quote, position: float, ref: float | None = None) -> Proposal:
        """[(side, slot, price, size)] before snapping and limits (``ref``: the reference
        price when the caller has it already)."""
        p = self.p
        if ref is None:
            ref = self.reference_price(q)
            if ref is None:
                return []
        bid_ref = ask_ref = ref
        if p.price_source == "inventory_cost":  # the only source that differs by side
            bid_ref = self.reference_price(q, Side.BUY) or ref
            ask_ref = self.reference_price(q, Side.SELL) or ref
        bid_adj, ask_adj, dev = self._inventory_adjust(position, ref)
        if p.inventory_price_skew:  # a reservation price: lean against the inventory
            shift = p.inventory_price_skew * dev * ref * (p.bid_spread + p.ask_spread) * 0.5
            bid_ref -= shift
            ask_ref -= shift
        out = self._levels(bid_ref, ask_ref)
        # level modifiers: price bands, ping-pong
        floor, ceiling = self._price_band(ref, q.ts)
        if ceiling is not None and ref >= ceiling:
            out = [o for o in out if o[0] is not Side.BUY]
        if floor is not None and ref <= floor:
            out = [o for o in out if o[0] is not Side.SELL]
        if p.ping_pong_enabled:
            diff = self._filled[Side.BUY] - self._filled[Side.SELL]
            if diff:
                heavy = Side.BUY if diff > 0 else Side.SELL
                drop = {
                    o[1]
                    for o in sorted(
                        (o for o in out if o[0] is heavy), key=lambda o: abs(o[2] - ref)
                    )[: abs(diff)]
                }
                out = [o for o in out if not (o[0] is heavy and o[1] in drop)]
        # price modifiers: order optimization, transaction costs
        if p.order_optimization_enabled:
            out = self._optimize(out, q)
        if p.add_transaction_costs:
            out = [
                (s, n, px * (1 - s.sign * self._fee_fraction(s, sz, px)), sz)
                for s, n, px, sz in out
            ]
        # size modifiers: inventory skew
        return [(s, n, px, sz * (bid_adj if s is Side.BUY else ask_adj)) for s, n, px, sz in out]

    def _price_band(self, ref: float, now: int) -> tuple[float | None, float | None]:
        p = self.p
        floor, ceiling = p.price_floor, p.price_ceiling
        if p.moving_price_band_enabled:
            band = self._band
            if band is None or now - band[2] >= p.price_band_refresh_time * NS_PER_S:
                band = self._band = (
                    ref * (1 + p.price_floor_pct),
                    ref * (1 + p.price_ceiling_pct),
                    now,
                )
            floor = band[0] if floor is None else max(floor, band[0])
            ceiling = band[1] if ceiling is None else min(ceiling, band[1])
        return floor, ceiling

    def _optimize(self, out: Proposal, q: Quote) -> Proposal:
        """Hummingbot's "jumping": never sit more than one tick above the best competing bid
        (below the best competing ask); a touch showing no more than the dust depth does not
        count as competition (the level behind it is taken as one tick further). Deeper levels
        keep their distance from level 0 and are snapped again (Hummingbot leaves them off
        tick)."""
        p = self.p
        rules = self.broker(p.venue).rules
        sym = p.symbol
        tick = rules.tick_at(sym, q.bid if q.bid > 0 else q.ask)
        top_bid = q.bid if q.bid_size > p.bid_order_optimization_depth else q.bid - tick
        top_ask = q.ask if q.ask_size > p.ask_order_optimization_depth else q.ask + tick
        res: Proposal = []
        for side in (Side.BUY, Side.SELL):
            lv = sorted((o for o in out if o[0] is side), key=lambda o: -o[2] * side.sign)
            if not lv:
                continue
            first = lv[0][2]
            best = min(first, top_bid + tick) if side is Side.BUY else max(first, top_ask - tick)
            for s, n, px, sz in lv:
                res.append((s, n, best * (px / first) if first else px, sz))
        return res

    def _fee_fraction(self, side: Side, size: float, price: float) -> float:
        fees = getattr(self.broker(self.p.venue), "fees", None)
        if fees is None or size <= 0 or price <= 0:
            return 0.0
        return float(fees.fee(side, size, price, Liquidity.MAKER)) / (size * price)

    # ---- callbacks --------------------------------------------------------------------------
    def on_quote(self, quote: Quote) -> None:
        p = self.p
        if quote.symbol != p.symbol:
            return
        if p.venue is not None and quote.venue != p.venue:
            if quote.venue != p.price_source_venue:
                return
            own = self.quote(p.symbol, venue=p.venue)  # the reference moved: quote again
            if own is None:
                return
            quote = own
        if not self.quoting_allowed() or self.broker(p.venue).is_halted(p.symbol):
            if self._slots or self._hanging:
                self._pull()
            return
        self.update(quote)

    def on_trade(self, trade: Trade) -> None:
        if trade.symbol == self.p.symbol:
            self._last_trade = trade.price

    def on_status(self, status: MarketStatus) -> None:
        # a halt pulls the quotes at once: feeds are usually silent until the halt ends
        if status.symbol == self.p.symbol and status.halted:
            self._pull()

    def on_reject(self, rejection: Rejection) -> None:
        # a refused command is not retried at once: wait a second of market time
        self._retry_after = rejection.ts + NS_PER_S
        self.log.info("%s", rejection.error)

    def on_session(self, change: SessionChange) -> None:
        if change.closing or not self.quoting_allowed():
            self._pull()

    def on_order(self, order: Order) -> None:
        if not order.is_done:
            return
        if order.status is OrderStatus.FILLED and order.symbol == self.p.symbol:
            # Hummingbot's last_own_trade: the price of our last completely filled order
            self._last_own_trade = order.avg_fill_price
        cid = order.client_order_id
        self._priced_at.pop(cid, None)
        if self._hanging.pop(cid, None) is not None:
            return  # hanging orders' fills start no delay and no ping-pong
        for key, o in list(self._slots.items()):
            if o is order:
                del self._slots[key]
                if order.status is OrderStatus.FILLED:
                    self._on_complete_fill(key)

    def _on_complete_fill(self, key: tuple[Side, str]) -> None:
        p = self.p
        self._create_after = self.now_ns() + int(p.filled_order_delay * NS_PER_S)
        if p.ping_pong_enabled:
            f = self._filled
            f[key[0]] += 1
            if f[Side.BUY] == f[Side.SELL]:
                f[Side.BUY] = f[Side.SELL] = 0
        if p.hanging_orders_enabled:  # the pair's other side hangs: kept, not refreshed
            pair = self._slots.pop((key[0].opposite, key[1]), None)
            if pair is not None and pair.is_open:
                self._hanging[pair.client_order_id] = pair

    # ---- the quoting loop -------------------------------------------------------------------
    def _pull(self) -> None:
        for o in [*self._slots.values(), *self._hanging.values()]:
            if o.is_open:
                self.cancel(o)

    def _manage_hanging(self, ref: float, now: int) -> None:
        """Hanging orders end when they drift more than ``hanging_orders_cancel_pct`` from the
        reference or outlive ``max_order_age`` (then the normal quotes take over)."""
        p = self.p
        max_age = p.max_order_age * NS_PER_S
        for o in list(self._hanging.values()):
            if o.status in _PENDING or o.limit_price is None:
                continue
            age = now - self._priced_at.get(o.client_order_id, o.created_ts)
            if abs(o.limit_price - ref) / ref > p.hanging_orders_cancel_pct or age >= max_age:
                self.cancel(o)

    def _eod_sides(self, now: int, position: float) -> tuple[bool, bool]:
        """(bids allowed, asks allowed): inside ``eod_window_s`` of the close only the side
        that moves the position toward ``eod_inventory_target`` is quoted."""
        p = self.p
        if p.eod_inventory_target is None:
            return True, True
        left = self.ctx.calendar().time_to_close(now)
        if left is None or left > p.eod_window_s:
            return True, True
        gap = p.eod_inventory_target - position
        return gap > 0, gap < 0

    def update(self, q: Quote) -> None:
        p = self.p
        broker = self.broker(p.venue)
        rules = broker.rules
        sym = p.symbol
        now = q.ts
        position = broker.position(sym)
        ref = self.reference_price(q)
        if ref is None:
            return
        if self._hanging:
            self._manage_hanging(ref, now)
        bids_ok, asks_ok = self._eod_sides(now, position)
        # room left on each side: the position limit, and for sells what the broker lets us
        # sell (held quantity, short selling), counting our own quotes as replaceable
        # our sells this pass may re-price (their quantity is ours to re-use); pending ones
        # stay committed at the broker until it answers
        ours = [
            o
            for (sd, _), o in self._slots.items()
            if sd is Side.SELL and o.is_open and o.status not in _PENDING
        ]
        inf = math.inf
        lim = p.max_position
        sell_room = min(
            broker.sell_capacity(sym, exclude=ours), inf if lim is None else lim + position
        )
        room = {
            Side.BUY: (inf if lim is None else lim - position) if bids_ok else 0.0,
            Side.SELL: sell_room if asks_ok else 0.0,
        }
        mid = (q.bid + q.ask) * 0.5
        wanted: dict[tuple[Side, str], tuple[float, float]] = {}
        for side, name, raw_px, raw_size in self.proposal(q, position, ref):
            size = self._size(rules, sym, min(raw_size, max(0.0, room[side])))
            if size <= 0 or raw_px <= 0:
                continue
            px = rules.snap_price(sym, raw_px, side)
            if not p.take_if_crossed:  # never take: stay one tick off the opposite touch
                if side is Side.BUY and px >= q.ask > 0:
                    px = rules.snap_price(sym, q.ask - rules.tick_at(sym, q.ask), side)
                elif side is Side.SELL and q.bid > 0 and px <= q.bid:
                    px = rules.snap_price(sym, q.bid + rules.tick_at(sym, q.bid), side)
            if p.minimum_spread is not None and side.sign * (mid - px) / mid < p.minimum_spread:
                continue
            if px <= 0:
                continue
            room[side] -= size
            wanted[(side, name)] = (px, size)
        asks = [v[0] for k, v in wanted.items() if k[0] is Side.SELL]
        if asks:  # our bids stay strictly below our lowest ask (zero spreads can meet)
            low_ask = min(asks)
            below = rules.snap_price(sym, low_ask - rules.tick_at(sym, low_ask), Side.BUY)
            for k, (bpx, bsz) in list(wanted.items()):
                if k[0] is Side.BUY and bpx >= low_ask:
                    wanted[k] = (below, bsz)
        # cancel slots no longer wanted, or closer to the mid than minimum_spread
        for key, o in list(self._slots.items()):
            if o.status in _PENDING:
                continue
            too_close = (
                p.minimum_spread is not None
                and o.limit_price is not None
                and key[0].sign * (mid - o.limit_price) / mid < p.minimum_spread
            )
            if key not in wanted or too_close:
                self.cancel(o)
        refresh_ns = int(p.order_refresh_time * NS_PER_S)
        max_age_ns = int(p.max_order_age * NS_PER_S)
        tol = p.order_refresh_tolerance_pct
        can_create = now >= self._create_after and now >= self._retry_after
        # move asks first when prices rise and bids first when they fall, so a replace never
        # has to wait for the opposite side (``_crosses_own`` defers any that would cross)
        rising = q.bid + q.ask >= self._last_touch
        self._last_touch = q.bid + q.ask
        for key in sorted(wanted, key=lambda k: (k[0] is Side.BUY) == rising):
            px, size = wanted[key]
            live = self._slots.get(key)
            if live is not None and (live.status in _PENDING or live.is_done):
                continue
            if key[0] is Side.SELL:
                # just in time: what the broker lets us sell now (cancels sent in this pass
                # still hold their shares until confirmed)
                cap = broker.sell_capacity(sym, exclude=live) + (
                    live.filled_qty if live is not None else 0.0
                )
                size = self._size(rules, sym, min(size, cap))
                if size <= 0:
                    if live is not None:
                        self.cancel(live)
                    continue
            if live is not None:
                self._reprice(broker, live, key[0], px, size, q, now, refresh_ns, max_age_ns, tol)
                continue
            if not can_create or self._crosses_own(key[0], px, None):
                continue
            placed = self.order(key[0], sym, size, px, venue=p.venue, tif=self._tif)
            if placed is not None:
                self._slots[key] = placed
                self._priced_at[placed.client_order_id] = now

    def _reprice(
        self,
        broker: Any,
        o: Order,
        side: Side,
        px: float,
        size: float,
        q: Quote,
        now: int,
        refresh_ns: int,
        max_age_ns: int,
        tol: float,
    ) -> None:
        cur = o.limit_price or px
        age = now - self._priced_at.get(o.client_order_id, o.created_ts)
        drift = abs(px - cur) / cur if cur else 1.0
        crosses = (side is Side.BUY and cur >= q.ask > 0) or (
            side is Side.SELL and q.bid > 0 and cur <= q.bid
        )
        due = age >= refresh_ns and (tol < 0 or drift > tol)
        if not (due or crosses or age >= max_age_ns):
            return
        if px == cur and age < max_age_ns and not crosses:
            return
        if self._crosses_own(side, px, o):
            return
        new_qty = None if size == o.qty else size
        if (
            self.p.amend
            and broker.capabilities.replace_in_place
            and (new_qty is None or new_qty > o.filled_qty)
        ):
            if self.replace(o, price=px, qty=new_qty) is not None:
                self._priced_at[o.client_order_id] = now
        else:
            self.cancel(o)  # placed anew once the cancel is confirmed

    def _crosses_own(self, side: Side, px: float, exclude: Order | None) -> bool:
        """Would ``px`` on ``side`` meet one of our opposite orders, at its price or at the
        price a pending replace is moving it to?"""
        broker = self.broker(self.p.venue)
        for o in [*self._slots.values(), *self._hanging.values()]:
            if o is exclude or o.side is side or o.is_done:
                continue
            prices = [o.limit_price]
            pending = broker.pending_replace(o)
            if pending is not None:
                prices.append(pending[1])
            for lp in prices:
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


def _interp(x: float, x0: float, x1: float, y0: float, y1: float) -> float:
    """``numpy.interp`` on one segment: linear, clamped at the ends."""
    if x1 <= x0:
        return y1 if x >= x1 else y0
    t = min(1.0, max(0.0, (x - x0) / (x1 - x0)))
    return y0 + t * (y1 - y0)
