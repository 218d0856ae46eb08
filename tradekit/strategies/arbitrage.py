"""Arbitrage between two venues: when one venue's bid is above the other's ask by more than both
venues' fees plus ``min_profitability``, buy on the cheap venue and sell on the dear one with two
taker orders (marketable limit IOC orders at the touch plus a collar, or market orders).

How it decides (on every quote of either venue, when no arbitrage is in progress, outside the
cool-off, in the regular session and while quoting is allowed):

1. Both directions are priced in the home venue's (``venue_a``'s) currency per home share through
   ``conversion`` (FX rate and share ratio: a Toronto listing in CAD against New York in USD, or
   an ADR against its ordinary shares).
2. Size: the buy venue's asks and the sell venue's bids are walked together (top-of-book data: the
   displayed size at each touch) while the bid stays above the ask, capped by ``order_amount``,
   the balances (buying power and cash on the buy venue; what the sell venue lets us sell, held
   or short, and the buying power a short needs), the venues' risk limits (``max_position``,
   ``max_order_qty``, ``max_order_notional``) and ``max_unhedged_notional``. The largest amount
   (on both venues' lots) whose profitability is at least ``min_profitability`` is taken.
3. Profitability = (sell proceeds - buy cost - buy fee - sell fee) / buy cost, with each venue's
   ``FeeModel`` (per-share commission with its minimum and cap, exchange fees, SEC fee and FINRA
   TAF on the sell leg); a venue whose broker has no fee model uses the ``fees`` parameter.

Leg risk (what Hummingbot never handled): the legs go out together (``leg_mode = "concurrent"``)
or one after the other (``"a_first"``/``"b_first"``: the second leg is sent for what the first
filled). When the legs end unequal (an IOC canceled, partly filled or rejected), the missing
quantity is retried on the lagging venue at the planned price widened by ``collar_ticks +
k * retry_collar_ticks`` ticks on retry k (k = 1..``max_leg_retries``); then the filled excess is
unwound on its own venue at the current touch with the same widening collar
(``on_leg_failure = "unwind"``), or the strategy pauses holding it (``"pause"``). No new
arbitrage starts while a leg is open; a size never risks more than ``max_unhedged_notional`` if
one leg fails entirely, and the strategy pauses if the exposure ever exceeds it. Every such event
is a ``LegEvent`` in ``strategy.leg_events`` and a log line on ``tradekit.strategy.arbitrage``.
After each arbitrage the strategy waits ``cooloff_s``. ``resume()`` clears a pause.

Units: fractions for profitability (0.001 = 0.1 %), shares for sizes (home-venue shares unless
said otherwise), seconds for times, money in the home venue's currency.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..enums import Liquidity, OrderStatus, Session, Side
from ..fees import FeeModel
from ..model import Fill, Order, Quote
from ..timeutil import NS_PER_S
from .base import Rejection, SessionChange, Strategy, Timer
from .conversion import (
    Conversion,
    buy_room,
    fee_model_for,
    levels,
    lot_down,
    parse_venue_pair_params,
    sell_room,
    send_taker,
    trade_fee,
    walk,
)
from .params import require

__all__ = [
    "ArbOpportunity",
    "Arbitrage",
    "ArbitrageParams",
    "LegEvent",
    "LegEventKind",
]

_EPS = 1e-9
_TOL = 1e-9  # profitability comparisons tolerate float noise of this size (a fraction)
_LEG_MODES = ("concurrent", "a_first", "b_first")
_FAILURE_POLICIES = ("unwind", "pause")


class LegEventKind(StrEnum):
    """What happened to a leg (shared by ``Arbitrage`` and ``CrossExchangeMarketMaking``)."""

    LEG_FAILED = "leg_failed"  # an order ended with less than it asked (IOC canceled/partial)
    REJECTED = "rejected"  # an order was refused (locally or by the venue)
    RETRY = "retry"  # the missing quantity was sent again with a wider collar
    HEDGED = "hedged"  # the exposure is closed by the lagging leg after a failure
    UNWIND = "unwind"  # an order unwinding the filled leg was sent
    UNWOUND = "unwound"  # the exposure is closed by unwinding
    RESIDUE = "residue"  # an imbalance below the venue's minimum quantity is left open
    FORCED = "forced"  # a residue was hedged rounded up to the minimum after its timeout
    PAUSED = "paused"  # the strategy stopped taking new risk
    RESUMED = "resumed"  # ... and started again
    TIMEOUT = "timeout"  # an order was still open after its timeout and was canceled


@dataclass(frozen=True, slots=True)
class LegEvent:
    """One leg-risk event.

    ``ts``: when (ns since the epoch, UTC); ``kind``: what; ``attempt``: the arbitrage number
    (cross-venue market making: 0); ``venue``/``symbol``/``side``: the order concerned;
    ``qty``: its shares on that venue; ``price``: its limit price (None: a market order or no
    order); ``retry``: the retry number (0: the first try); ``exposure``: the unhedged notional
    after the event (home currency); ``message``: a readable account (also logged)."""

    ts: int
    kind: LegEventKind
    attempt: int
    venue: str
    symbol: str
    side: Side | None
    qty: float
    price: float | None
    retry: int
    exposure: float
    message: str


@dataclass(slots=True)
class ArbitrageParams:
    """Parameters of ``Arbitrage`` (the ``[strategy]`` table with ``kind = "arbitrage"``).

    Venues and symbols:

    - ``venue_a``, ``venue_b``: the two venues (required). ``venue_a`` is home: profitability,
      ``order_amount`` and ``max_unhedged_notional`` are in its shares and currency.
    - ``symbol``: the symbol on both venues; or ``symbol_a`` and ``symbol_b`` (default None).

    Decision:

    - ``min_profitability``: net profit after both venues' fees as a fraction of the buy
      notional (default 0.0005 = 0.05 %).
    - ``order_amount``: most home shares per arbitrage (default 100).
    - ``cooloff_s``: seconds to wait after an arbitrage ends before the next (default 1.0).
    - ``max_quote_age_s``: ignore a venue whose latest quote is older than this, in seconds
      (default None: no limit).
    - ``conversion``: a ``Conversion`` or a table ``{rate, fx_symbol, fx_venue, invert,
      share_ratio}`` taking venue B's prices to venue A's (default: none).
    - ``fees``: a ``FeeModel``, a broker name or a ``FeeModel`` table for a venue whose broker has
      no fee model (default None: no commission, SEC fee and TAF on sells).

    Orders:

    - ``collar_ticks``: ticks beyond the touch for the limit price of each IOC leg (default 1).
    - ``use_market_orders``: send market IOC orders instead of marketable limits in the regular
      session (default False).
    - ``leg_mode``: ``"concurrent"`` (both legs at once), ``"a_first"`` or ``"b_first"`` (that
      venue's leg first, the other for what it filled) (default ``"concurrent"``).

    Leg risk:

    - ``max_leg_retries``: retries of a missing leg (and then of an unwind) (default 3).
    - ``retry_collar_ticks``: ticks the collar widens by on each retry (default 2).
    - ``retry_delay_s``: seconds between a failed order and its retry (default 0.2; 0: at once).
    - ``on_leg_failure``: ``"unwind"`` (sell back / buy back the filled excess) or ``"pause"``
      (keep it and stop) after the retries (default ``"unwind"``).
    - ``max_unhedged_notional``: most home-currency value one failed leg may leave unhedged; sizes
      are capped so, and the strategy pauses if it is exceeded (default None: no limit).
    - ``leg_timeout_s``: seconds after which an order still open is canceled (default 5.0).
    """

    venue_a: str  # home venue: sizes in its shares, money in its currency
    venue_b: str  # the other venue
    symbol: str | None = None  # the symbol on both venues
    symbol_a: str | None = None  # or the symbol on venue_a ...
    symbol_b: str | None = None  # ... and on venue_b
    min_profitability: float = 0.0005  # fraction of the buy notional, net of both fees
    order_amount: float = 100.0  # shares of venue_a per arbitrage, at most
    cooloff_s: float = 1.0  # seconds after an arbitrage ends
    max_quote_age_s: float | None = None  # seconds; None: any age
    conversion: Conversion = field(default_factory=Conversion)  # venue_b -> venue_a
    fees: FeeModel | None = None  # for a venue whose broker has no FeeModel
    collar_ticks: int = 1  # ticks beyond the touch for the IOC limit
    use_market_orders: bool = False  # market IOC legs in the regular session
    leg_mode: str = "concurrent"  # concurrent | a_first | b_first
    max_leg_retries: int = 3  # retries of a missing leg, then of an unwind
    retry_collar_ticks: int = 2  # ticks added to the collar per retry
    retry_delay_s: float = 0.2  # seconds between a failed order and its retry
    on_leg_failure: str = "unwind"  # unwind | pause
    max_unhedged_notional: float | None = None  # money of venue_a; None: no limit
    leg_timeout_s: float = 5.0  # seconds before an open leg is canceled

    @property
    def sym_a(self) -> str:
        return self.symbol_a or self.symbol or ""

    @property
    def sym_b(self) -> str:
        return self.symbol_b or self.symbol or ""

    def validate(self) -> None:
        require(bool(self.venue_a), "venue_a", "must name a venue")
        require(bool(self.venue_b), "venue_b", "must name a venue")
        require(
            bool(self.symbol) or (bool(self.symbol_a) and bool(self.symbol_b)),
            "symbol",
            "name the symbol (or both symbol_a and symbol_b)",
        )
        require(
            (self.venue_a, self.sym_a) != (self.venue_b, self.sym_b),
            "venue_b",
            "venue_b/symbol_b must differ from venue_a/symbol_a",
        )
        require(
            -1 < self.min_profitability < 1,
            "min_profitability",
            f"must be a fraction between -1 and 1 (0.001 = 0.1%), not {self.min_profitability}",
        )
        require(
            self.order_amount > 0, "order_amount", f"must be > 0 shares, not {self.order_amount}"
        )
        require(self.cooloff_s >= 0, "cooloff_s", f"must be >= 0 seconds, not {self.cooloff_s}")
        require(
            self.max_quote_age_s is None or self.max_quote_age_s > 0,
            "max_quote_age_s",
            "must be > 0 seconds",
        )
        require(
            isinstance(self.conversion, Conversion),
            "conversion",
            "must be a table: rate, fx_symbol, fx_venue, invert, share_ratio",
        )
        require(
            self.fees is None or isinstance(self.fees, FeeModel),
            "fees",
            "must be a broker name or a table of fee fields",
        )
        require(self.collar_ticks >= 0, "collar_ticks", "must be >= 0 ticks")
        require(
            self.leg_mode in _LEG_MODES,
            "leg_mode",
            f"must be one of {', '.join(_LEG_MODES)}, not {self.leg_mode!r}",
        )
        require(0 <= self.max_leg_retries <= 100, "max_leg_retries", "must be 0..100")
        require(self.retry_collar_ticks >= 0, "retry_collar_ticks", "must be >= 0 ticks")
        require(self.retry_delay_s >= 0, "retry_delay_s", "must be >= 0 seconds")
        require(
            self.on_leg_failure in _FAILURE_POLICIES,
            "on_leg_failure",
            f"must be one of {', '.join(_FAILURE_POLICIES)}, not {self.on_leg_failure!r}",
        )
        require(
            self.max_unhedged_notional is None or self.max_unhedged_notional > 0,
            "max_unhedged_notional",
            "must be > 0 (money of venue_a's currency)",
        )
        require(self.leg_timeout_s > 0, "leg_timeout_s", "must be > 0 seconds")


@dataclass(frozen=True, slots=True)
class ArbOpportunity:
    """A priced arbitrage: buy ``buy_qty`` on ``buy_venue`` (up to ``buy_price``, its own
    currency) and sell ``sell_qty`` on ``sell_venue`` (down to ``sell_price``). ``qty`` is in
    home shares; ``cost``, ``proceeds``, ``fees`` and ``profit`` in home currency;
    ``profitability`` = profit / cost."""

    buy_venue: str
    buy_symbol: str
    buy_qty: float
    buy_price: float
    sell_venue: str
    sell_symbol: str
    sell_qty: float
    sell_price: float
    qty: float
    cost: float
    proceeds: float
    fees: float
    profit: float
    profitability: float


@dataclass(slots=True)
class _Side:
    """One venue as the arbitrage sees it."""

    venue: str
    symbol: str
    ratio: float  # venue shares per home share
    fx: float  # home currency per venue currency


@dataclass(slots=True)
class _Attempt:
    """One arbitrage from its decision to flat (or paused)."""

    n: int
    opp: ArbOpportunity
    started: int
    buy: _Side
    sell: _Side
    orders: list[Order] = field(default_factory=list)
    net: float = 0.0  # home shares, + long
    second: _Side | None = None  # the leg still to send (sequential legs)
    retries: int = 0
    unwinds: int = 0
    unwinding: bool = False
    failed: bool = False
    waiting: bool = False  # a retry is scheduled
    residue_reported: bool = False


class Arbitrage(Strategy):
    """Two-venue arbitrage with leg-risk handling; see the module docstring. Parameters:
    ``ArbitrageParams``. Attributes: ``leg_events`` (``LegEvent`` list), ``paused``,
    ``pause_reason``, ``max_exposure`` (the largest unhedged notional seen, home currency),
    ``exposure`` (now), ``carried`` (home shares left unhedged by finished arbitrages: residues
    and paused legs), ``attempts`` (arbitrages started), ``last_opportunity``."""

    kind = "arbitrage"

    def __init__(
        self,
        venue_a: str | None = None,
        venue_b: str | None = None,
        symbol: str | None = None,
        *,
        params: ArbitrageParams | None = None,
        **kw: Any,
    ) -> None:
        super().__init__()
        if params is None:
            raw: dict[str, Any] = dict(kw)
            for k, v in (("venue_a", venue_a), ("venue_b", venue_b), ("symbol", symbol)):
                if v is not None:
                    raw[k] = v
            params = parse_venue_pair_params(ArbitrageParams, raw, None)
        self.p = params
        self.leg_events: list[LegEvent] = []
        self.paused = False
        self.pause_reason = ""
        self.max_exposure = 0.0
        self.exposure = 0.0
        self.carried = 0.0
        self.attempts = 0
        self.last_opportunity: ArbOpportunity | None = None
        self._quotes: dict[tuple[str, str], Quote] = {}
        self._att: _Attempt | None = None
        self._cool_until = 0
        self._by_cid: dict[str, _Attempt] = {}
        # liquidity we took at a touch, by (venue, symbol, book side): (price, shares); the
        # displayed size there is that much smaller until the touch moves
        self._taken: dict[tuple[str, str, Side], tuple[float, float]] = {}
        self._sent_at: dict[str, int] = {}

    @classmethod
    def from_config(cls, params: Mapping[str, Any], *, file: str | None = None) -> Arbitrage:
        return cls(params=parse_venue_pair_params(ArbitrageParams, params, file))

    def venues_used(self) -> list[str] | None:
        return [self.p.venue_a, self.p.venue_b]

    def symbols_used(self) -> list[str] | None:
        syms = [self.p.sym_a, self.p.sym_b]
        if self.p.conversion.fx_symbol:
            syms.append(self.p.conversion.fx_symbol)
        return sorted(set(syms))

    def __repr__(self) -> str:
        p = self.p
        return f"Arbitrage({p.venue_a}:{p.sym_a} / {p.venue_b}:{p.sym_b})"

    # ---- public controls ---------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while an arbitrage is in progress (legs open or being repaired)."""
        return self._att is not None

    def resume(self) -> None:
        """Clear a pause (new arbitrages may start again)."""
        if self.paused:
            self.paused = False
            self.pause_reason = ""
            self._event(LegEventKind.RESUMED, None, None, None, 0.0, None, "resumed by the user")

    # ---- market data -------------------------------------------------------------------------
    def on_quote(self, quote: Quote) -> None:
        key = (quote.venue, quote.symbol)
        self._quotes[key] = quote
        if self._taken:
            for side, px in ((Side.BUY, quote.bid), (Side.SELL, quote.ask)):
                t = self._taken.get((*key, side))
                if t is not None and abs(t[0] - px) > _EPS:
                    del self._taken[(*key, side)]
        p = self.p
        if key not in ((p.venue_a, p.sym_a), (p.venue_b, p.sym_b)) and (
            quote.symbol != p.conversion.fx_symbol
        ):
            return
        att = self._att
        if att is not None:
            if att.net:
                self._update_exposure(att)
            self._watchdog(att, quote.ts)
            return
        self.check(quote.ts)

    def on_start(self) -> None:
        self.p.conversion.check_venues(self.ctx.venues())

    def _fx_quote(self, venue: str, symbol: str) -> Quote | None:
        """The FX quote: as seen by the strategy, else (a venue it does not trade) the venue's
        latest."""
        q = self._quotes.get((venue, symbol))
        if q is None and venue in self.ctx.venues():
            q = self.ctx.broker(venue).last_quote(symbol)
        return q

    def _quote_of(self, venue: str, symbol: str) -> Quote | None:
        return self._quotes.get((venue, symbol))

    def _sides(self) -> tuple[_Side, _Side] | None:
        p = self.p
        fx = p.conversion.fx(self._fx_quote, p.venue_b)
        if fx is None:
            return None
        a = _Side(p.venue_a, p.sym_a, 1.0, 1.0)
        b = _Side(p.venue_b, p.sym_b, p.conversion.share_ratio, fx)
        return a, b

    # ---- the decision ------------------------------------------------------------------------
    def check(self, now: int) -> ArbOpportunity | None:
        """Look for an arbitrage now and start it; returns what was started (or None)."""
        if self.paused or self._att is not None or now < self._cool_until:
            return None
        if not self.quoting_allowed() or self.session() is not Session.REGULAR:
            return None
        sides = self._sides()
        if sides is None:
            return None
        a, b = sides
        best: ArbOpportunity | None = None
        for buy, sell in ((a, b), (b, a)):
            opp = self._opportunity(buy, sell, now)
            if opp is not None and (best is None or opp.profit > best.profit):
                best = opp
        if best is None:
            return None
        self.last_opportunity = best
        self._start(best, now)
        return best

    def _opportunity(self, buy: _Side, sell: _Side, now: int) -> ArbOpportunity | None:
        """The most profitable-enough arbitrage buying on ``buy`` and selling on ``sell``."""
        p = self.p
        qb = self._quote_of(buy.venue, buy.symbol)
        qs = self._quote_of(sell.venue, sell.symbol)
        if qb is None or qs is None:
            return None
        if p.max_quote_age_s is not None:
            age = int(p.max_quote_age_s * NS_PER_S)
            if now - qb.ts > age or now - qs.ts > age:
                return None
        asks = self._levels(buy, qb, Side.SELL)
        bids = self._levels(sell, qs, Side.BUY)
        if not asks or not bids:
            return None
        kb = buy.fx * buy.ratio  # home price per unit of venue price
        ks = sell.fx * sell.ratio
        if bids[0][0] * ks <= asks[0][0] * kb:
            return None  # no gross edge at the touch
        cap = self._cap(buy, sell, asks[0][0], bids[0][0])
        if cap <= _EPS:
            return None
        # walk both books together while the bid stays above the ask: candidate amounts
        amounts: list[float] = []
        i = j = 0
        ra, rb = asks[0][1] / buy.ratio, bids[0][1] / sell.ratio
        cum = 0.0
        while i < len(asks) and j < len(bids) and cum < cap - _EPS:
            if bids[j][0] * ks <= asks[i][0] * kb:
                break
            step = min(ra, rb, cap - cum)
            if step <= _EPS:
                break
            cum += step
            amounts.append(cum)
            ra -= step
            rb -= step
            if ra <= _EPS:
                i += 1
                ra = asks[i][1] / buy.ratio if i < len(asks) else 0.0
            if rb <= _EPS:
                j += 1
                rb = bids[j][1] / sell.ratio if j < len(bids) else 0.0
        for amount in reversed(amounts):
            q = self._on_lots(buy, sell, amount)
            if q <= _EPS:
                continue
            opp = self._price(buy, sell, asks, bids, q)
            if opp is not None and opp.profitability >= p.min_profitability - _TOL:
                return opp
        return None

    def _levels(self, v: _Side, q: Quote, side: Side) -> list[tuple[float, float]]:
        """Displayed liquidity of ``v`` on book ``side``, less what we took there already."""
        book = levels(q, side)
        t = self._taken.get((v.venue, v.symbol, side))
        if book and t is not None and abs(book[0][0] - t[0]) <= _EPS:
            px, size = book[0]
            book[0] = (px, size - t[1])
            if book[0][1] <= _EPS:
                book.pop(0)
        return book

    def _price(
        self,
        buy: _Side,
        sell: _Side,
        asks: list[tuple[float, float]],
        bids: list[tuple[float, float]],
        q: float,
    ) -> ArbOpportunity | None:
        bq, sq = q * buy.ratio, q * sell.ratio
        got_b, val_b, worst_b = walk(asks, bq)
        got_s, val_s, worst_s = walk(bids, sq)
        if got_b < bq - _EPS or got_s < sq - _EPS:
            return None
        fb = fee_model_for(self.ctx.broker(buy.venue), self.p.fees)
        fs = fee_model_for(self.ctx.broker(sell.venue), self.p.fees)
        fee_b = trade_fee(fb, Side.BUY, bq, val_b / bq, Liquidity.TAKER) * buy.fx
        fee_s = trade_fee(fs, Side.SELL, sq, val_s / sq, Liquidity.TAKER) * sell.fx
        cost = val_b * buy.fx
        proceeds = val_s * sell.fx
        fees = fee_b + fee_s
        profit = proceeds - cost - fees
        return ArbOpportunity(
            buy.venue,
            buy.symbol,
            bq,
            worst_b,
            sell.venue,
            sell.symbol,
            sq,
            worst_s,
            q,
            cost,
            proceeds,
            fees,
            profit,
            profit / cost if cost > 0 else -math.inf,
        )

    def _on_lots(self, buy: _Side, sell: _Side, q: float) -> float:
        """The largest home quantity <= ``q`` that both venues can trade (their lots)."""
        rb = self.ctx.broker(buy.venue).rules
        rs = self.ctx.broker(sell.venue).rules
        for _ in range(8):
            qb = lot_down(rb, buy.symbol, q * buy.ratio)
            qs = lot_down(rs, sell.symbol, qb / buy.ratio * sell.ratio)
            nq = min(qb / buy.ratio, qs / sell.ratio)
            if nq <= _EPS:
                return 0.0
            if abs(nq - q) <= _EPS:
                return nq
            q = nq
        return 0.0

    def _cap(self, buy: _Side, sell: _Side, ask: float, bid: float) -> float:
        """Most home shares the balances, the risk limits, ``order_amount`` and
        ``max_unhedged_notional`` allow."""
        p = self.p
        cap = p.order_amount
        bb = self.ctx.broker(buy.venue)
        bs = self.ctx.broker(sell.venue)
        tick_b = bb.rules.tick_at(buy.symbol, ask)
        tick_s = bs.rules.tick_at(sell.symbol, bid)
        limit_b = ask + p.collar_ticks * tick_b
        limit_s = max(bid - p.collar_ticks * tick_s, tick_s)
        # the buy venue: buying power for what opens a position, risk limits
        pos_b = bb.position(buy.symbol)
        cap = min(cap, buy_room(bb, buy.symbol, pos_b, limit_b) / buy.ratio)
        # the sell venue: what it lets us sell (held or short), the buying power of a short
        pos_s = bs.position(sell.symbol)
        cap = min(cap, sell_room(bs, sell.symbol, pos_s, limit_s) / sell.ratio)
        if p.max_unhedged_notional is not None:
            home_px = max(ask * buy.fx * buy.ratio, bid * sell.fx * sell.ratio)
            cap = min(cap, p.max_unhedged_notional / home_px)
        return max(cap, 0.0)

    # ---- running an arbitrage ----------------------------------------------------------------
    def _start(self, opp: ArbOpportunity, now: int) -> None:
        sides = self._sides()
        assert sides is not None
        a, b = sides
        buy, sell = (a, b) if opp.buy_venue == a.venue else (b, a)
        self.attempts += 1
        att = _Attempt(self.attempts, opp, now, buy, sell)
        self._att = att
        self.log.info(
            "arbitrage #%d: buy %g %s:%s <= %s, sell %g %s:%s >= %s, net %.4f (%.3f%%)",
            att.n,
            opp.buy_qty,
            opp.buy_venue,
            opp.buy_symbol,
            opp.buy_price,
            opp.sell_qty,
            opp.sell_venue,
            opp.sell_symbol,
            opp.sell_price,
            opp.profit,
            opp.profitability * 100,
        )
        self.set_timer("arb-watchdog", self.p.leg_timeout_s)
        mode = self.p.leg_mode
        first_venue = {"a_first": self.p.venue_a, "b_first": self.p.venue_b}.get(mode)
        if first_venue is None:
            legs = [(buy, Side.BUY), (sell, Side.SELL)]
        else:
            legs = [(buy, Side.BUY)] if buy.venue == first_venue else [(sell, Side.SELL)]
            att.second = sell if buy.venue == first_venue else buy
        for i, (side_v, side) in enumerate(legs):
            qty = opp.buy_qty if side is Side.BUY else opp.sell_qty
            px = self._planned(att, side_v, side, 0)
            o = self._send(att, side_v, side, qty, px)
            if o is None and i == 0:
                # the first leg was refused: nothing is exposed, stop here
                att.second = None
                self._finish(att, now, "first leg refused")
                return
        self._progress(att)

    def _planned(self, att: _Attempt, v: _Side, side: Side, retry: int) -> float:
        """The limit price of a leg on try ``retry``: the planned touch widened by the collar."""
        opp = att.opp
        base = opp.buy_price if side is Side.BUY else opp.sell_price
        ticks = self.p.collar_ticks + retry * self.p.retry_collar_ticks
        return self._collared(v, side, base, ticks)

    def _collared(self, v: _Side, side: Side, base: float, ticks: int) -> float:
        rules = self.ctx.broker(v.venue).rules
        tick = rules.tick_at(v.symbol, base)
        px = base + side.sign * ticks * tick
        if px <= 0:
            px = rules.tick_at(v.symbol, 0.0)
        return rules.snap_price(v.symbol, px, side)

    def _send(
        self, att: _Attempt, v: _Side, side: Side, qty: float, price: float | None
    ) -> Order | None:
        o = send_taker(self, v.venue, v.symbol, side, qty, price, market=self.p.use_market_orders)
        if o is None:
            self._event(
                LegEventKind.REJECTED,
                v.venue,
                v.symbol,
                side,
                qty,
                price,
                f"arbitrage #{att.n}: {side.value} {qty:g} {v.venue}:{v.symbol} refused: "
                f"{self.stats.last_rejections[-1].error if self.stats.last_rejections else '?'}",
                retry=att.retries + att.unwinds,
                attempt=att.n,
            )
            return None
        att.orders.append(o)
        self._by_cid[o.client_order_id] = att
        self._sent_at[o.client_order_id] = self.now_ns()
        return o

    def _inflight(self, att: _Attempt) -> bool:
        return any(o.is_open for o in att.orders)

    def on_fill(self, fill: Fill) -> None:
        att = self._by_cid.get(fill.client_order_id)
        if att is None:
            return
        v = att.buy if fill.venue == att.buy.venue and fill.symbol == att.buy.symbol else att.sell
        home = fill.qty / v.ratio
        att.net += home if fill.side is Side.BUY else -home
        # what we took at the touch is gone from it (the data may not show it yet)
        book_side = Side.SELL if fill.side is Side.BUY else Side.BUY
        q = self._quotes.get((fill.venue, fill.symbol))
        if q is not None:
            touch = q.ask if book_side is Side.SELL else q.bid
            if abs(touch - fill.price) <= _EPS:
                key = (fill.venue, fill.symbol, book_side)
                t = self._taken.get(key)
                had = t[1] if t is not None and abs(t[0] - touch) <= _EPS else 0.0
                self._taken[key] = (touch, had + fill.qty)
        self._update_exposure(att)

    def _update_exposure(self, att: _Attempt) -> None:
        """Mark the unhedged shares (those of this arbitrage and any carried) at the home
        price of the venue holding them; pause when above ``max_unhedged_notional``."""
        net = self.carried + att.net
        v = att.buy if net > 0 else att.sell
        q = self._quotes.get((v.venue, v.symbol))
        if q is not None and q.bid > 0 and q.ask > 0:
            px = q.mid * v.fx * v.ratio
        else:
            opp = att.opp
            px = opp.cost / opp.qty if opp.qty > 0 else 0.0
        self.exposure = abs(net) * px
        if self.exposure > self.max_exposure:
            self.max_exposure = self.exposure
        lim = self.p.max_unhedged_notional
        if lim is not None and self.exposure > lim + 1e-6 and not self.paused:
            self._pause(
                att,
                f"unhedged notional {self.exposure:,.2f} exceeds max_unhedged_notional {lim:,.2f}",
            )

    def on_order(self, order: Order) -> None:
        att = self._by_cid.get(order.client_order_id)
        if att is None or not order.is_done:
            return
        self._sent_at.pop(order.client_order_id, None)
        if order.status is OrderStatus.REJECTED:
            self._event(
                LegEventKind.REJECTED,
                order.venue,
                order.symbol,
                order.side,
                order.qty,
                order.limit_price,
                f"arbitrage #{att.n}: {order.side.value} {order.qty:g} {order.venue}:"
                f"{order.symbol} rejected by the venue: {order.reject_message or ''}",
                retry=att.retries + att.unwinds,
                attempt=att.n,
            )
        elif order.filled_qty < order.qty - _EPS:
            self._event(
                LegEventKind.LEG_FAILED,
                order.venue,
                order.symbol,
                order.side,
                order.qty - order.filled_qty,
                order.limit_price,
                f"arbitrage #{att.n}: {order.side.value} {order.venue}:{order.symbol} filled "
                f"{order.filled_qty:g} of {order.qty:g} ({order.status.value})",
                retry=att.retries + att.unwinds,
                attempt=att.n,
            )
        if self._att is att:
            self._progress(att)

    def on_reject(self, rejection: Rejection) -> None:
        self.log.info("refused: %s", rejection.error)

    def on_timer(self, timer: Timer) -> None:
        att = self._att
        if timer.name == "arb-retry":
            if att is not None and att.waiting:
                att.waiting = False
                self._act(att)
        elif timer.name == "arb-watchdog":
            if att is None:
                self.cancel_timer("arb-watchdog")
            else:
                self._watchdog(att, timer.ts)
        elif timer.name == "arb-cooloff" and att is None:
            self.check(timer.ts)

    def on_session(self, change: SessionChange) -> None:
        att = self._att
        if att is not None and change.session is not Session.REGULAR:
            # IOC orders end with the regular session: whatever is still open goes
            for o in att.orders:
                if o.is_open:
                    self.cancel(o)

    def _watchdog(self, att: _Attempt, now: int) -> None:
        limit = int(self.p.leg_timeout_s * NS_PER_S)
        for o in att.orders:
            if not o.is_open or o.status is OrderStatus.PENDING_CANCEL:
                continue
            sent = self._sent_at.get(o.client_order_id, o.created_ts)
            if now - sent >= limit:
                self._event(
                    LegEventKind.TIMEOUT,
                    o.venue,
                    o.symbol,
                    o.side,
                    o.qty - o.filled_qty,
                    o.limit_price,
                    f"arbitrage #{att.n}: {o.client_order_id} still {o.status.value} after "
                    f"{self.p.leg_timeout_s:g}s: canceled",
                    retry=att.retries + att.unwinds,
                    attempt=att.n,
                )
                self.cancel(o)

    def _progress(self, att: _Attempt) -> None:
        """Every order of the attempt is done (else wait): flat, or repair the imbalance."""
        if self._inflight(att) or att.waiting:
            return
        now = self.now_ns()
        if att.second is not None:
            v = att.second
            att.second = None
            if abs(att.net) > _EPS:
                side = Side.SELL if att.net > 0 else Side.BUY
                qty = lot_down(self.ctx.broker(v.venue).rules, v.symbol, abs(att.net) * v.ratio)
                if qty > 0:
                    self._send(att, v, side, qty, self._planned(att, v, side, 0))
                    if self._inflight(att):
                        return
        if self._flat(att):
            self._finish(att, now, "")
            return
        self._repair(att)

    def _flat(self, att: _Attempt) -> bool:
        if abs(att.net) <= _EPS:
            return True
        # an imbalance neither venue can trade (below both minimums) is a residue
        for v in (att.buy, att.sell):
            if lot_down(self.ctx.broker(v.venue).rules, v.symbol, abs(att.net) * v.ratio) > 0:
                return False
        if not att.residue_reported:
            att.residue_reported = True
            self._event(
                LegEventKind.RESIDUE,
                None,
                None,
                None,
                abs(att.net),
                None,
                f"arbitrage #{att.n}: {att.net:+g} home shares left: below both venues' minimum",
                attempt=att.n,
            )
        return True

    def _repair(self, att: _Attempt) -> None:
        p = self.p
        if not att.unwinding and att.retries >= p.max_leg_retries:
            att.failed = True
            if p.on_leg_failure == "pause":
                self._pause(
                    att,
                    f"arbitrage #{att.n}: leg still missing {abs(att.net):g} after "
                    f"{att.retries} retries; holding {att.net:+g} home shares",
                )
                self._release(att)
                return
            att.unwinding = True
        if att.unwinding and att.unwinds > p.max_leg_retries:
            self._pause(
                att,
                f"arbitrage #{att.n}: unwind still missing {abs(att.net):g} after "
                f"{att.unwinds} tries",
            )
            self._release(att)
            return
        if p.retry_delay_s > 0:
            att.waiting = True
            self.set_timer("arb-retry", p.retry_delay_s, repeat=False)
        else:
            self._act(att)

    def _act(self, att: _Attempt) -> None:
        """Send the next repair order: a retry of the lagging leg or an unwind."""
        if self._flat(att):
            self._finish(att, self.now_ns(), "")
            return
        side = Side.SELL if att.net > 0 else Side.BUY
        if not att.unwinding:
            # the lagging leg: the venue whose leg is short of the other
            v = att.sell if side is Side.SELL else att.buy
            att.retries += 1
            px: float | None = self._planned(att, v, side, att.retries)
            kind = LegEventKind.RETRY
            n = att.retries
        else:
            # unwind on the venue whose leg filled: back at its current touch
            v = att.buy if side is Side.SELL else att.sell
            q = self._quote_of(v.venue, v.symbol)
            touch = (q.bid if side is Side.SELL else q.ask) if q is not None else 0.0
            px = None
            if touch > 0:
                ticks = self.p.collar_ticks + att.unwinds * self.p.retry_collar_ticks
                px = self._collared(v, side, touch, ticks)
            elif not self.p.use_market_orders:
                att.unwinds += 1
                self._repair(att)  # no price to unwind at yet: try again later
                return
            att.unwinds += 1
            kind = LegEventKind.UNWIND
            n = att.unwinds
        qty = lot_down(self.ctx.broker(v.venue).rules, v.symbol, abs(att.net) * v.ratio)
        if qty <= 0:
            # this venue cannot trade that little; the other may (the other action)
            if not att.unwinding:
                att.retries = self.p.max_leg_retries
            else:
                att.unwinds = self.p.max_leg_retries + 1
            self._repair(att)
            return
        self._event(
            kind,
            v.venue,
            v.symbol,
            side,
            qty,
            px,
            f"arbitrage #{att.n}: {kind.value} {n}: {side.value} {qty:g} {v.venue}:{v.symbol} "
            f"limit {px}",
            retry=n,
            attempt=att.n,
        )
        o = self._send(att, v, side, qty, px)
        if o is None:
            self._repair(att)

    def _finish(self, att: _Attempt, now: int, why: str) -> None:
        if att.retries or att.unwinds:
            kind = LegEventKind.UNWOUND if att.unwinding else LegEventKind.HEDGED
            self._event(
                kind,
                None,
                None,
                None,
                0.0,
                None,
                f"arbitrage #{att.n}: flat after {att.retries} retries and {att.unwinds} "
                f"unwind orders",
                attempt=att.n,
            )
        elif why:
            self.log.info("arbitrage #%d: %s", att.n, why)
        self._release(att)

    def _release(self, att: _Attempt) -> None:
        for o in att.orders:
            self._by_cid.pop(o.client_order_id, None)
            self._sent_at.pop(o.client_order_id, None)
        if self._att is att:
            self._att = None
        if abs(att.net) > _EPS:
            self.carried += att.net  # a residue, or held by a pause
            att.net = 0.0
            self._update_exposure(att)
        else:
            att.net = 0.0
            self.exposure = abs(self.carried) * (att.opp.cost / att.opp.qty)
        self.cancel_timer("arb-watchdog")
        self.cancel_timer("arb-retry")
        now = self.now_ns()
        self._cool_until = now + int(self.p.cooloff_s * NS_PER_S)
        if self.p.cooloff_s > 0 and not self.paused:
            self.set_timer("arb-cooloff", self.p.cooloff_s, repeat=False)

    def _pause(self, att: _Attempt | None, why: str) -> None:
        self.paused = True
        self.pause_reason = why
        self._event(
            LegEventKind.PAUSED,
            None,
            None,
            None,
            abs(att.net) if att else 0.0,
            None,
            why,
            attempt=att.n if att else 0,
        )

    def _event(
        self,
        kind: LegEventKind,
        venue: str | None,
        symbol: str | None,
        side: Side | None,
        qty: float,
        price: float | None,
        message: str,
        *,
        retry: int = 0,
        attempt: int = 0,
    ) -> None:
        ev = LegEvent(
            self.now_ns(),
            kind,
            attempt,
            venue or "",
            symbol or "",
            side,
            qty,
            price,
            retry,
            self.exposure,
            message,
        )
        self.leg_events.append(ev)
        if kind in (LegEventKind.PAUSED, LegEventKind.UNWIND, LegEventKind.RESIDUE):
            self.log.warning("%s", message)
        else:
            self.log.info("%s", message)
