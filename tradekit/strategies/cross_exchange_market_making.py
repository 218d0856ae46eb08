"""Cross-venue market making: quote a bid and an ask on ``maker_venue`` priced off what the
liquid ``taker_venue`` would pay for the hedge, and hedge every maker fill there at once,
Hummingbot's ``cross_exchange_market_making`` (XEMM) made for stocks.

Maker prices (one bid and one ask of ``s`` maker shares). With ``t`` the taker venue's price for
the hedge of ``s`` (the average over its displayed liquidity: its bids for the bid, its asks for
the ask, converted to maker currency per maker share by ``conversion``), ``f_t`` the taker fee of
that hedge and ``f_m`` the maker fee of our order, both per maker share (each venue's
``FeeModel``: commission, exchange fee or rebate, SEC fee and FINRA TAF on sells)::

    bid = (t - f_t - f_m) / (1 + min_profitability)      snapped down to the tick
    ask = (t + f_t + f_m) * (1 + min_profitability)      snapped up to the tick

so fees are part of the edge (Hummingbot leaves them out). With ``adjust_order_enabled`` the bid
is at most one tick above the competing top bid (the best bid over the last minute, the
displayed size at it less our own order and ``top_depth_tolerance``) and the ask at least one
tick below the competing top ask; a quote never crosses the maker venue's opposite touch.

Sizes: ``order_amount`` (or, when 0, ``order_size_portfolio_ratio_limit`` of the maker
account's value in shares), at most ``order_size_taker_volume_factor`` of the taker's displayed
hedge liquidity, at most ``order_size_taker_balance_factor`` of what the taker account can hedge
(buying power with ``slippage_buffer``, sellable shares), what the maker account can trade, the
venues' risk limits, and what keeps a full fill within ``max_unhedged_notional``.

Keeping quotes: the profitability of a resting quote is re-checked on every quote (bid:
``(t - f_t - f_m) / bid - 1``; ask: ``ask / (t + f_t + f_m) - 1``). Below ``min_profitability``
(``active_order_canceling``) it is moved to the new price at once; a size above what the
balances allow is reduced; a price that drifted is moved at most once per
``anti_hysteresis_duration``. Moves are amendments (``replace_order``) where the broker can, else
cancel and re-place. Passive cancelling (``active_order_canceling = false``): a quote is only
cancelled when its profitability falls below ``cancel_order_threshold``.

Hedging: every maker fill, partial fills included, is hedged on the taker venue as it arrives
with a marketable limit IOC at the taker's price for the quantity widened by ``slippage_buffer``
(market IOC with ``use_market_hedges``). What is below the taker's minimum quantity or lot is kept
and added to later fills; once it reaches the minimum it is hedged, and after
``hedge_residue_timeout_s`` it is hedged rounded up to the taker's lot. A hedge that does not fill
is retried with the collar widened by ``retry_collar_ticks`` per consecutive failure; after
``max_hedge_retries`` failures the maker quotes are pulled until the exposure is hedged. The
quotes keep being managed while a hedge is in flight. Above ``max_unhedged_notional`` of unhedged
exposure the maker quotes are pulled. Quotes only while ``quoting_allowed()`` (the session and the
engine's close). Leg-risk events are ``LegEvent`` records in ``strategy.leg_events``.

Units: fractions for profitabilities, buffers and factors (0.001 = 0.1 %), shares for sizes
(maker shares unless said otherwise), seconds for times, money in the maker venue's currency.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..enums import Liquidity, OrderStatus, Side, TimeInForce
from ..fees import FeeModel
from ..model import Fill, Order, Quote
from ..timeutil import NS_PER_S
from .arbitrage import LegEvent, LegEventKind
from .base import Rejection, SessionChange, Strategy, Timer
from .conversion import (
    Conversion,
    buy_room,
    fee_model_for,
    levels,
    lot_down,
    lot_up,
    parse_venue_pair_params,
    sell_room,
    send_taker,
    trade_fee,
    walk,
)
from .params import require

__all__ = ["CrossExchangeMarketMaking", "MakerTarget", "XEMMParams"]

_EPS = 1e-9
_TOL = 1e-9
_PENDING = (OrderStatus.PENDING_NEW, OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_REPLACE)


@dataclass(slots=True)
class XEMMParams:
    """Parameters of ``CrossExchangeMarketMaking`` (the ``[strategy]`` table with
    ``kind = "cross_exchange_market_making"``).

    Venues and symbols:

    - ``maker_venue``, ``taker_venue``: where we quote and where we hedge (required).
    - ``symbol``: the symbol on both; or ``maker_symbol`` and ``taker_symbol`` (default None).
    - ``conversion``: a ``Conversion`` or a table ``{rate, fx_symbol, fx_venue, invert,
      share_ratio}`` taking the taker venue's prices to the maker venue's (default: none).
    - ``fees``: a ``FeeModel``, a broker name or a ``FeeModel`` table for a venue whose broker has
      no fee model (default None: no commission, SEC fee and TAF on sells).

    Pricing:

    - ``min_profitability``: the edge over the hedge after both fees, a fraction (default 0.001).
    - ``adjust_order_enabled``: keep the bid at most one tick above the competing top bid and the
      ask at most one tick below the competing top ask (default True).
    - ``top_depth_tolerance``: shares at the maker's top of book ignored as dust when finding the
      competing top (default 0).
    - ``anti_hysteresis_duration``: seconds between two re-pricings of a quote whose price merely
      drifted (default 60.0).

    Sizes:

    - ``order_amount``: maker shares per quote; 0 sizes from ``order_size_portfolio_ratio_limit``
      (default 100).
    - ``order_size_taker_volume_factor``: most of the taker's displayed hedge liquidity a quote
      may be, a fraction (default 0.25).
    - ``order_size_taker_balance_factor``: most of what the taker account can hedge that a quote
      may be, a fraction (default 0.995).
    - ``order_size_portfolio_ratio_limit``: with ``order_amount = 0``, the quote size as a
      fraction of the maker account's value in shares (default 0.1667).
    - ``slippage_buffer``: the hedge's limit price beyond the taker's price for its quantity, a
      fraction (default 0.005 = 0.5 %; also used to size asks against the taker's buying power).

    Keeping quotes:

    - ``active_order_canceling``: re-price unprofitable, oversized and drifted quotes (default
      True); False: passive, only cancel below ``cancel_order_threshold``.
    - ``cancel_order_threshold``: passive mode's profitability floor, a fraction (default 0.0).
    - ``amend``: move quotes with ``replace_order`` where the broker can (default True).
    - ``tif``: the maker orders' time in force, ``"day"`` or ``"gtc"`` (default ``"day"``).
    - ``max_quote_age_s``: quote nothing while a venue's latest quote is older than this, in
      seconds (default None: no limit).

    Hedging:

    - ``use_market_hedges``: hedge with market IOC orders in the regular session (default False).
    - ``hedge_residue_timeout_s``: seconds after which a residue below the taker's minimum is
      hedged rounded up to its lot (default 5.0; None: only once it reaches the minimum).
    - ``max_hedge_retries``: consecutive failed hedges before the quotes are pulled (default 3).
    - ``retry_collar_ticks``: ticks the hedge collar widens by per consecutive failure (default
      2).
    - ``hedge_retry_delay_s``: seconds between a failed hedge and its retry (default 0.2).
    - ``hedge_timeout_s``: seconds after which a hedge still open is canceled (default 5.0).
    - ``max_unhedged_notional``: maker-currency value of unhedged shares above which the quotes
      are pulled; quote sizes keep a full fill within it (default None: no limit).
    """

    maker_venue: str  # where we quote: sizes in its shares, money in its currency
    taker_venue: str  # where fills are hedged
    symbol: str | None = None  # the symbol on both venues
    maker_symbol: str | None = None  # or the symbol on the maker venue ...
    taker_symbol: str | None = None  # ... and on the taker venue
    conversion: Conversion = field(default_factory=Conversion)  # taker -> maker
    fees: FeeModel | None = None  # for a venue whose broker has no FeeModel
    min_profitability: float = 0.001  # fraction, after both venues' fees
    adjust_order_enabled: bool = True  # at most one tick better than the competing top
    top_depth_tolerance: float = 0.0  # shares of dust ignored at the maker's top
    anti_hysteresis_duration: float = 60.0  # seconds between re-pricings of a drifted quote
    order_amount: float = 100.0  # maker shares per quote; 0: from the portfolio
    order_size_taker_volume_factor: float = 0.25  # fraction of the taker's displayed size
    order_size_taker_balance_factor: float = 0.995  # fraction of what the taker can hedge
    order_size_portfolio_ratio_limit: float = 0.1667  # fraction of the maker account's value
    slippage_buffer: float = 0.005  # fraction beyond the taker's price for the hedge limit
    active_order_canceling: bool = True  # re-price; False: passive, cancel below threshold
    cancel_order_threshold: float = 0.0  # fraction (passive mode)
    amend: bool = True  # replace_order where the broker can
    tif: str = "day"  # day | gtc (maker orders)
    max_quote_age_s: float | None = None  # seconds; None: any age
    use_market_hedges: bool = False  # market IOC hedges in the regular session
    hedge_residue_timeout_s: float | None = 5.0  # seconds; None: wait for the minimum
    max_hedge_retries: int = 3  # consecutive failed hedges before the quotes are pulled
    retry_collar_ticks: int = 2  # ticks the hedge collar widens by per failure
    hedge_retry_delay_s: float = 0.2  # seconds between a failed hedge and its retry
    hedge_timeout_s: float = 5.0  # seconds before an open hedge is canceled
    max_unhedged_notional: float | None = None  # money of the maker venue; None: no limit

    @property
    def sym_maker(self) -> str:
        return self.maker_symbol or self.symbol or ""

    @property
    def sym_taker(self) -> str:
        return self.taker_symbol or self.symbol or ""

    def validate(self) -> None:
        require(bool(self.maker_venue), "maker_venue", "must name a venue")
        require(bool(self.taker_venue), "taker_venue", "must name a venue")
        require(
            bool(self.symbol) or (bool(self.maker_symbol) and bool(self.taker_symbol)),
            "symbol",
            "name the symbol (or both maker_symbol and taker_symbol)",
        )
        require(
            (self.maker_venue, self.sym_maker) != (self.taker_venue, self.sym_taker),
            "taker_venue",
            "the taker venue/symbol must differ from the maker venue/symbol",
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
        require(
            -1 < self.min_profitability < 1,
            "min_profitability",
            f"must be a fraction between -1 and 1 (0.001 = 0.1%), not {self.min_profitability}",
        )
        require(self.top_depth_tolerance >= 0, "top_depth_tolerance", "must be >= 0 shares")
        require(
            self.anti_hysteresis_duration >= 0,
            "anti_hysteresis_duration",
            "must be >= 0 seconds",
        )
        require(
            self.order_amount >= 0,
            "order_amount",
            f"must be >= 0 shares (0: size from the portfolio), not {self.order_amount}",
        )
        require(
            0 < self.order_size_taker_volume_factor <= 1,
            "order_size_taker_volume_factor",
            f"must be a fraction in (0, 1], not {self.order_size_taker_volume_factor}",
        )
        require(
            0 < self.order_size_taker_balance_factor <= 1,
            "order_size_taker_balance_factor",
            f"must be a fraction in (0, 1], not {self.order_size_taker_balance_factor}",
        )
        require(
            0 < self.order_size_portfolio_ratio_limit <= 1,
            "order_size_portfolio_ratio_limit",
            f"must be a fraction in (0, 1], not {self.order_size_portfolio_ratio_limit}",
        )
        require(
            0 <= self.slippage_buffer < 0.5,
            "slippage_buffer",
            f"must be a fraction in [0, 0.5) (0.005 = 0.5%), not {self.slippage_buffer}",
        )
        require(
            -1 < self.cancel_order_threshold < 1,
            "cancel_order_threshold",
            "must be a fraction between -1 and 1",
        )
        require(self.tif in ("day", "gtc"), "tif", f"must be day or gtc, not {self.tif!r}")
        require(
            self.max_quote_age_s is None or self.max_quote_age_s > 0,
            "max_quote_age_s",
            "must be > 0 seconds",
        )
        require(
            self.hedge_residue_timeout_s is None or self.hedge_residue_timeout_s > 0,
            "hedge_residue_timeout_s",
            "must be > 0 seconds",
        )
        require(0 <= self.max_hedge_retries <= 100, "max_hedge_retries", "must be 0..100")
        require(self.retry_collar_ticks >= 0, "retry_collar_ticks", "must be >= 0 ticks")
        require(self.hedge_retry_delay_s >= 0, "hedge_retry_delay_s", "must be >= 0 seconds")
        require(self.hedge_timeout_s > 0, "hedge_timeout_s", "must be > 0 seconds")
        require(
            self.max_unhedged_notional is None or self.max_unhedged_notional > 0,
            "max_unhedged_notional",
            "must be > 0 (money of the maker venue's currency)",
        )


class MakerTarget(NamedTuple):
    """A wanted maker quote: ``price`` (on the tick), ``size`` (maker shares) and the raw
    fee-inclusive price before the top-of-book adjustment and snapping."""

    price: float
    size: float
    raw: float


class _Priced(NamedTuple):
    t: float  # taker price per maker share, maker currency
    fee_t: float  # taker fee per maker share, maker currency
    fm: FeeModel  # the maker venue's fees


class CrossExchangeMarketMaking(Strategy):
    """Cross-venue market making; see the module docstring. Parameters: ``XEMMParams``.
    Attributes: ``leg_events`` (``LegEvent`` list), ``unhedged`` (maker shares not yet hedged,
    + long), ``exposure`` / ``max_exposure`` (unhedged notional now / at most, maker currency),
    ``hedges_sent``, ``maker_fills``."""

    kind = "cross_exchange_market_making"
    #: seconds between samples of the maker's top of book (``adjust_order_enabled``)
    SAMPLE_INTERVAL_S: float = 5.0
    #: samples kept (about a minute)
    SAMPLE_WINDOW: int = 12

    def __init__(
        self,
        maker_venue: str | None = None,
        taker_venue: str | None = None,
        symbol: str | None = None,
        *,
        params: XEMMParams | None = None,
        **kw: Any,
    ) -> None:
        super().__init__()
        if params is None:
            raw: dict[str, Any] = dict(kw)
            for k, v in (
                ("maker_venue", maker_venue),
                ("taker_venue", taker_venue),
                ("symbol", symbol),
            ):
                if v is not None:
                    raw[k] = v
            params = parse_venue_pair_params(XEMMParams, raw, None)
        self.p = params
        self.leg_events: list[LegEvent] = []
        self.unhedged = 0.0
        self.exposure = 0.0
        self.max_exposure = 0.0
        self.hedges_sent = 0
        self.maker_fills = 0
        self._tif = TimeInForce(params.tif)
        self._quotes: dict[tuple[str, str], Quote] = {}
        self._maker: dict[Side, Order] = {}
        self._maker_ids: set[str] = set()
        self._hedges: dict[str, Order] = {}
        self._hedge_sent_at: dict[str, int] = {}
        self._fails = 0
        self._hedge_paused = False
        self._over_limit = False
        self._residue_since: int | None = None
        self._residue_armed = False
        self._forced = False
        self._retry_waiting = False
        self._hyst_until = 0
        self._retry_after = 0
        self._last_sum = 0.0
        self._samples: deque[tuple[float, float]] = deque(maxlen=self.SAMPLE_WINDOW)
        self._next_sample = 0
        self._rehedge = False  # restored unhedged: hedge at the first taker quote

    @classmethod
    def from_config(
        cls, params: Mapping[str, Any], *, file: str | None = None
    ) -> CrossExchangeMarketMaking:
        return cls(params=parse_venue_pair_params(XEMMParams, params, file))

    def venues_used(self) -> list[str] | None:
        return [self.p.maker_venue, self.p.taker_venue]

    def symbols_used(self) -> list[str] | None:
        syms = {self.p.sym_maker, self.p.sym_taker}
        if self.p.conversion.fx_symbol:
            syms.add(self.p.conversion.fx_symbol)
        return sorted(syms)

    def __repr__(self) -> str:
        p = self.p
        return (
            f"CrossExchangeMarketMaking(maker={p.maker_venue}:{p.sym_maker}, "
            f"taker={p.taker_venue}:{p.sym_taker})"
        )

    # ---- state ---------------------------------------------------------------------------------
    def maker_order(self, side: Side) -> Order | None:
        """Our resting maker order on ``side`` (None: none)."""
        o = self._maker.get(side)
        return o if o is not None and not o.is_done else None

    @property
    def hedges_in_flight(self) -> list[Order]:
        """Hedge orders sent and not yet done."""
        return [o for o in self._hedges.values() if o.is_open]

    @property
    def quoting_paused(self) -> bool:
        """True while the quotes are pulled for exposure (over the limit, or failing hedges)."""
        return self._over_limit or self._hedge_paused

    def on_start(self) -> None:
        self.p.conversion.check_venues(self.ctx.venues())

    def on_restore(self, orders: list[Order], fills: list[Fill]) -> None:
        """After a restart: the restored quotes are cancelled, and what the fills before the
        crash left unhedged (maker fills less their hedges) is hedged at the first taker quote,
        so a crash between a maker fill and its hedge leaves no one-legged position."""
        super().on_restore(orders, fills)
        p = self.p
        ratio = p.conversion.share_ratio
        for f in fills:
            if f.venue == p.maker_venue and f.symbol == p.sym_maker:
                self.unhedged += f.signed_qty
            elif f.venue == p.taker_venue and f.symbol == p.sym_taker:
                self.unhedged += f.signed_qty / ratio
        if abs(self.unhedged) > _EPS:
            self.log.warning("restored with %+g maker shares unhedged", self.unhedged)
            self._rehedge = True

    def _fx_quote(self, venue: str, symbol: str) -> Quote | None:
        """The FX quote: as seen by the strategy, else (a venue it does not trade) the venue's
        latest."""
        q = self._quotes.get((venue, symbol))
        if q is None and venue in self.ctx.venues():
            q = self.ctx.broker(venue).last_quote(symbol)
        return q

    def _quote_of(self, venue: str, symbol: str) -> Quote | None:
        return self._quotes.get((venue, symbol))

    def _fx(self) -> float | None:
        return self.p.conversion.fx(self._fx_quote, self.p.taker_venue)

    # ---- pricing -------------------------------------------------------------------------------
    def _hedge_price(self, side: Side, size: float, tq: Quote, fx: float) -> _Priced | None:
        """The taker's price and fee for hedging ``size`` maker shares of a maker ``side``
        order, per maker share in maker currency."""
        p = self.p
        ratio = p.conversion.share_ratio
        tqty = size * ratio
        book = levels(tq, Side.BUY if side is Side.BUY else Side.SELL)  # bids hedge a bid
        got, value, _ = walk(book, tqty)
        if tqty <= 0 or got < tqty - _EPS:
            return None
        vwap = value / tqty
        ft = fee_model_for(self.ctx.broker(p.taker_venue), p.fees)
        fm = fee_model_for(self.ctx.broker(p.maker_venue), p.fees)
        fee_t = trade_fee(ft, side.opposite, tqty, vwap, Liquidity.TAKER) * fx / size
        return _Priced(vwap * fx * ratio, fee_t, fm)

    def maker_price(self, side: Side, size: float, tq: Quote, fx: float) -> float | None:
        """The fee-inclusive maker price for ``size`` maker shares before the top-of-book
        adjustment and snapping (see the module docstring); None when the taker's displayed
        liquidity cannot hedge ``size``."""
        hp = self._hedge_price(side, size, tq, fx)
        if hp is None:
            return None
        k = 1.0 + self.p.min_profitability
        px = hp.t / k if side is Side.BUY else hp.t * k
        for _ in range(6):  # the maker fee may depend (slightly) on the price: a fixed point
            fee_m = trade_fee(hp.fm, side, size, max(px, 0.0), Liquidity.MAKER) / size
            if side is Side.BUY:
                nxt = (hp.t - hp.fee_t - fee_m) / k
            else:
                nxt = (hp.t + hp.fee_t + fee_m) * k
            done = abs(nxt - px) <= 1e-12 * max(1.0, abs(px))
            px = nxt
            if done:
                break
        return px if px > 0 else None

    def profitability(
        self, side: Side, price: float, size: float, tq: Quote, fx: float
    ) -> float | None:
        """Profitability of a maker order at ``price`` for ``size`` hedged now: for a bid
        ``(t - f_t - f_m) / bid - 1``, for an ask ``ask / (t + f_t + f_m) - 1``."""
        if size <= _EPS or price <= 0:
            return None
        hp = self._hedge_price(side, size, tq, fx)
        if hp is None:
            return None
        fee_m = trade_fee(hp.fm, side, size, price, Liquidity.MAKER) / size
        if side is Side.BUY:
            return (hp.t - hp.fee_t - fee_m) / price - 1.0
        cost = hp.t + hp.fee_t + fee_m
        return price / cost - 1.0 if cost > 0 else None

    def _top(self, side: Side, mq: Quote) -> float | None:
        """The competing top of the maker book on ``side``: the best of now and the recent
        samples (see ``_top_now``)."""
        px = self._top_now(side, mq)
        samples = [s[0] if side is Side.BUY else s[1] for s in self._samples]
        samples = [s for s in samples if s > 0]
        if samples and px > 0:
            px = max(px, *samples) if side is Side.BUY else min(px, *samples)
        return px if px > 0 else None

    def _top_now(self, side: Side, mq: Quote) -> float:
        """The competing top of the maker book on ``side`` now: the touch, or a tick behind it
        when what is displayed there, less our own order, is within ``top_depth_tolerance``
        (with top-of-book data the next level is not known: one tick is assumed); 0: none."""
        px, size = (mq.bid, mq.bid_size) if side is Side.BUY else (mq.ask, mq.ask_size)
        if px <= 0:
            return 0.0
        cur = self.maker_order(side)
        own = cur.remaining_qty if cur is not None and cur.limit_price == px else 0.0
        if size - own <= self.p.top_depth_tolerance:
            tick = self.ctx.broker(self.p.maker_venue).rules.tick_at(self.p.sym_maker, px)
            px -= side.sign * tick
        return max(px, 0.0)

    def target(self, side: Side, mq: Quote, tq: Quote, fx: float) -> MakerTarget | None:
        """The quote wanted on ``side`` now (None: none)."""
        size = self.quote_size(side, mq, tq, fx)
        if size <= 0:
            return None
        raw = self.maker_price(side, size, tq, fx)
        if raw is None:
            return None
        p = self.p
        rules = self.ctx.broker(p.maker_venue).rules
        sym = p.sym_maker
        px = raw
        if p.adjust_order_enabled:
            top = self._top(side, mq)
            if top is not None:
                tick = rules.tick_at(sym, top)
                px = min(px, top + tick) if side is Side.BUY else max(px, top - tick)
        # never cross the maker venue's opposite touch (post-only, enforced here)
        if side is Side.BUY and mq.ask > 0:
            px = min(px, mq.ask - rules.tick_at(sym, mq.ask))
        elif side is Side.SELL and mq.bid > 0:
            px = max(px, mq.bid + rules.tick_at(sym, mq.bid))
        if px <= 0:
            return None
        px = rules.snap_price(sym, px, side)
        if px <= 0:
            return None
        return MakerTarget(px, size, raw)

    def quote_size(self, side: Side, mq: Quote, tq: Quote, fx: float) -> float:
        """Maker shares to quote on ``side`` (0: none); see the module docstring."""
        p = self.p
        ratio = p.conversion.share_ratio
        bm = self.ctx.broker(p.maker_venue)
        bt = self.ctx.broker(p.taker_venue)
        msym, tsym = p.sym_maker, p.sym_taker
        mid = mq.mid if mq.bid > 0 and mq.ask > 0 else 0.0
        ref = mid or tq.mid * fx * ratio
        if ref <= 0:
            return 0.0
        pos_m = bm.position(msym)
        size = p.order_amount
        if size <= 0:
            value = bm.portfolio.cash + pos_m * ref
            size = max(0.0, value / ref) * p.order_size_portfolio_ratio_limit
        # the taker's displayed hedge liquidity
        book = levels(tq, Side.BUY if side is Side.BUY else Side.SELL)
        shown = sum(s for _, s in book) / ratio
        size = min(size, shown * p.order_size_taker_volume_factor)
        # what the taker account can hedge
        pos_t = bt.position(tsym)
        factor = p.order_size_taker_balance_factor
        if side is Side.BUY:  # hedged by a taker sell
            tpx = tq.bid * (1 - p.slippage_buffer)
            size = min(size, sell_room(bt, tsym, pos_t, tpx) * factor / ratio)
        else:  # hedged by a taker buy
            tpx = tq.ask * (1 + p.slippage_buffer)
            size = min(size, buy_room(bt, tsym, pos_t, tpx) * factor / ratio)
        # what the maker account can trade (our own quote on that side is replaceable)
        cur = self.maker_order(side)
        if side is Side.BUY:
            size = min(size, buy_room(bm, msym, pos_m, ref, cur))
        else:
            size = min(size, sell_room(bm, msym, pos_m, ref, cur))
        # a full fill must leave the unhedged shares within max_unhedged_notional (a fill that
        # offsets what is unhedged may be larger)
        if p.max_unhedged_notional is not None:
            room = p.max_unhedged_notional / ref - side.sign * self.unhedged
            size = min(size, max(0.0, room))
        return lot_down(bm.rules, msym, size)

    # ---- callbacks -----------------------------------------------------------------------------
    def on_quote(self, quote: Quote) -> None:
        key = (quote.venue, quote.symbol)
        p = self.p
        self._quotes[key] = quote
        if key not in ((p.maker_venue, p.sym_maker), (p.taker_venue, p.sym_taker)) and (
            quote.symbol != p.conversion.fx_symbol
        ):
            return
        now = quote.ts
        if self._rehedge and key == (p.taker_venue, p.sym_taker):
            self._rehedge = False
            self._update_exposure()
            self.hedge()
        if key == (p.maker_venue, p.sym_maker) and now >= self._next_sample:
            self._samples.append(self._raw_top(quote))
            self._next_sample = now + int(self.SAMPLE_INTERVAL_S * NS_PER_S)
        self._watchdog(now)
        self.update(now)

    def _raw_top(self, mq: Quote) -> tuple[float, float]:
        return (self._top_now(Side.BUY, mq), self._top_now(Side.SELL, mq))

    def on_fill(self, fill: Fill) -> None:
        cid = fill.client_order_id
        ratio = self.p.conversion.share_ratio
        if cid in self._maker_ids:
            self.maker_fills += 1
            self.unhedged += fill.qty if fill.side is Side.BUY else -fill.qty
            self._forced = False
            self._update_exposure()
            self.hedge()
            self.update(fill.ts)
        elif cid in self._hedges:
            home = fill.qty / ratio
            self.unhedged += home if fill.side is Side.BUY else -home
            self._update_exposure()

    def on_order(self, order: Order) -> None:
        cid = order.client_order_id
        if cid in self._hedges:
            if order.is_done:
                self._hedge_done(order)
            return
        if cid in self._maker_ids and order.is_done:
            # the id stays known: a late fill (a cancel/fill race) is still hedged
            for side, o in list(self._maker.items()):
                if o is order:
                    del self._maker[side]

    def on_reject(self, rejection: Rejection) -> None:
        # a refused maker order is not retried at once: wait a second of market time
        self._retry_after = rejection.ts + NS_PER_S
        self.log.info("refused: %s", rejection.error)

    def on_session(self, change: SessionChange) -> None:
        if change.closing or not self.quoting_allowed():
            self._pull()

    def on_timer(self, timer: Timer) -> None:
        if timer.name == "xemm-hedge-retry":
            self._retry_waiting = False
            self.hedge()
        elif timer.name == "xemm-residue":
            self._residue_armed = False
            if not self._forced and not self.hedges_in_flight:
                self.hedge(force=True)
        elif timer.name == "xemm-watchdog":
            self._watchdog(timer.ts)
            if not self.hedges_in_flight:
                self.cancel_timer("xemm-watchdog")

    # ---- quoting -------------------------------------------------------------------------------
    def _pull(self) -> None:
        for o in list(self._maker.values()):
            if o.is_open and o.status is not OrderStatus.PENDING_CANCEL:
                self.cancel(o)

    def update(self, now: int) -> None:
        """Manage the maker quotes now (called on every quote of either venue and after
        fills)."""
        p = self.p
        mq = self._quote_of(p.maker_venue, p.sym_maker)
        tq = self._quote_of(p.taker_venue, p.sym_taker)
        if not self.quoting_allowed():
            self._pull()
            return
        if self.unhedged:
            self._update_exposure()  # marked to the market now: may pull the quotes
        if self.quoting_paused:
            self._pull()
            return
        fx = self._fx()
        if mq is None or tq is None or fx is None or not (tq.bid > 0 and tq.ask > 0):
            self._pull()
            return
        if p.max_quote_age_s is not None:
            age = int(p.max_quote_age_s * NS_PER_S)
            if now - mq.ts > age or now - tq.ts > age:
                self._pull()
                return
        # move the ask first when prices rise and the bid first when they fall, so a move never
        # has to wait for (or cross) our own opposite quote
        total = tq.bid + tq.ask
        rising = total >= self._last_sum
        self._last_sum = total
        order = (Side.SELL, Side.BUY) if rising else (Side.BUY, Side.SELL)
        adjust_due = now >= self._hyst_until
        adjusted = False
        thr = p.min_profitability if p.active_order_canceling else p.cancel_order_threshold
        for side in order:
            cur = self.maker_order(side)
            if cur is None:
                if now >= self._retry_after:
                    tgt = self.target(side, mq, tq, fx)
                    if tgt is not None:
                        self._place(side, tgt)
                continue
            if cur.status in _PENDING or cur.limit_price is None:
                continue  # wait for the venue's answer
            tgt = self.target(side, mq, tq, fx)
            prof = self.profitability(side, cur.limit_price, cur.remaining_qty, tq, fx)
            if prof is None or prof < thr - _TOL:
                # no longer profitable enough: to the new price at once (or away)
                if not (tgt is not None and p.active_order_canceling and self._move(cur, tgt)):
                    self.cancel(cur)
                continue
            if not p.active_order_canceling:
                continue
            if tgt is None:
                self.cancel(cur)
                continue
            if cur.remaining_qty > tgt.size + _EPS:
                self._move(cur, tgt)
                continue
            drifted = abs(tgt.price - cur.limit_price) > _EPS
            if adjust_due and drifted and self._move(cur, tgt):
                adjusted = True
        if adjusted:
            self._hyst_until = now + int(p.anti_hysteresis_duration * NS_PER_S)

    def _crosses_own(self, side: Side, px: float, exclude: Order | None) -> bool:
        other = self.maker_order(side.opposite)
        if other is None or other is exclude:
            return False
        lp = other.limit_price
        if lp is None:
            return True
        return px >= lp if side is Side.BUY else px <= lp

    def _place(self, side: Side, tgt: MakerTarget) -> None:
        if self._crosses_own(side, tgt.price, None):
            return
        p = self.p
        o = self.order(side, p.sym_maker, tgt.size, tgt.price, venue=p.maker_venue, tif=self._tif)
        if o is not None:
            self._maker[side] = o
            self._maker_ids.add(o.client_order_id)

    def _move(self, cur: Order, tgt: MakerTarget) -> bool:
        """Move ``cur`` to ``tgt`` (amend where possible, else cancel); True when done."""
        if self._crosses_own(cur.side, tgt.price, cur):
            return False
        broker = self.ctx.broker(cur.venue)
        new_qty = cur.filled_qty + tgt.size
        qty = None if abs(new_qty - cur.qty) <= _EPS else new_qty
        if self.p.amend and broker.capabilities.replace_in_place:
            if abs(tgt.price - (cur.limit_price or 0.0)) <= _EPS and qty is None:
                return False
            if self.replace(cur, price=tgt.price, qty=qty) is not None:
                return True
            # the amendment was refused (logged): take the quote away instead
        self.cancel(cur)  # placed anew once the cancel is confirmed
        return True

    # ---- hedging -------------------------------------------------------------------------------
    def _inflight(self) -> float:
        """Signed maker shares of the hedges still open (a sell is negative)."""
        ratio = self.p.conversion.share_ratio
        total = 0.0
        for o in self._hedges.values():
            if o.is_open:
                rem = (o.qty - o.filled_qty) / ratio
                total += rem if o.side is Side.BUY else -rem
        return total

    def _update_exposure(self) -> None:
        p = self.p
        mq = self._quote_of(p.maker_venue, p.sym_maker)
        ref = mq.mid if mq is not None and mq.bid > 0 and mq.ask > 0 else 0.0
        if ref <= 0:
            tq = self._quote_of(p.taker_venue, p.sym_taker)
            fx = self._fx()
            if tq is not None and fx is not None:
                ref = tq.mid * fx * p.conversion.share_ratio
        self.exposure = abs(self.unhedged) * ref if abs(self.unhedged) > _EPS else 0.0
        if self.exposure > self.max_exposure:
            self.max_exposure = self.exposure
        self._check_limit()

    def _check_limit(self) -> None:
        lim = self.p.max_unhedged_notional
        over = lim is not None and self.exposure > lim + 1e-6
        if over and not self._over_limit:
            self._over_limit = True
            self._event(
                LegEventKind.PAUSED,
                None,
                0.0,
                None,
                f"unhedged notional {self.exposure:,.2f} exceeds max_unhedged_notional "
                f"{lim:,.2f}: maker quotes pulled",
            )
            self._pull()
        elif not over and self._over_limit:
            self._over_limit = False
            self._event(
                LegEventKind.RESUMED, None, 0.0, None, "unhedged notional back within the limit"
            )

    def hedge(self, *, force: bool = False) -> Order | None:
        """Send the hedge of what is neither hedged nor being hedged (``force``: a residue
        below the taker's minimum, rounded up to its lot). Returns the order sent."""
        p = self.p
        x = self.unhedged + self._inflight()  # > 0: long maker shares still to sell
        if abs(x) <= _EPS:
            self._residue_since = None
            self._settled()
            return None
        side = Side.SELL if x > 0 else Side.BUY
        bt = self.ctx.broker(p.taker_venue)
        tsym = p.sym_taker
        raw = abs(x) * p.conversion.share_ratio
        qty = lot_up(bt.rules, tsym, raw) if force else lot_down(bt.rules, tsym, raw)
        now = self.now_ns()
        if qty <= 0:
            self._residue(now, x, raw)
            return None
        if self._retry_waiting:
            return None  # a retry is scheduled: it will cover this too
        if any(o.side is not side for o in self.hedges_in_flight):
            # a hedge the other way is on its way (fills on both sides of the maker): it would
            # trade against this one; what is left is hedged when it is done
            return None
        price = self._hedge_limit(side, qty)
        if price is None and not p.use_market_hedges:
            self._failed_hedge(None, "no taker quote to price the hedge")
            return None
        o = send_taker(self, p.taker_venue, tsym, side, qty, price, market=p.use_market_hedges)
        if o is None:
            err = self.stats.last_rejections[-1].error if self.stats.last_rejections else "?"
            self._event(
                LegEventKind.REJECTED,
                side,
                qty,
                price,
                f"hedge {side.value} {qty:g} {p.taker_venue}:{tsym} refused: {err}",
            )
            self._failed_hedge(None, "refused")
            return None
        self.hedges_sent += 1
        self._hedges[o.client_order_id] = o
        self._hedge_sent_at[o.client_order_id] = now
        self.set_timer("xemm-watchdog", p.hedge_timeout_s)
        if force:
            self._forced = True
            self._event(
                LegEventKind.FORCED,
                side,
                qty,
                price,
                f"residue {x:+g} maker shares hedged after {p.hedge_residue_timeout_s:g}s, "
                f"rounded up: {side.value} {qty:g} {p.taker_venue}:{tsym}",
            )
        elif self._fails:
            self._event(
                LegEventKind.RETRY,
                side,
                qty,
                price,
                f"hedge retry {self._fails}: {side.value} {qty:g} {p.taker_venue}:{tsym} "
                f"limit {price}",
                retry=self._fails,
            )
        self._residue_since = None
        return o

    def _hedge_limit(self, side: Side, qty: float) -> float | None:
        """Limit price of a hedge of ``qty`` taker shares: the taker's price for the quantity
        widened by ``slippage_buffer`` and by ``retry_collar_ticks`` per failure."""
        p = self.p
        tq = self._quote_of(p.taker_venue, p.sym_taker)
        book = levels(tq, Side.SELL if side is Side.BUY else Side.BUY)
        if not book:
            return None
        _, _, worst = walk(book, qty)
        if worst <= 0:
            worst = book[-1][0]
        # beyond the displayed liquidity the price is unknown: at least the last level
        rules = self.ctx.broker(p.taker_venue).rules
        sym = p.sym_taker
        k = min(self._fails, p.max_hedge_retries)
        px = worst * (1 + side.sign * p.slippage_buffer)
        px += side.sign * k * p.retry_collar_ticks * rules.tick_at(sym, worst)
        if px <= 0:
            px = rules.tick_at(sym, 0.0)
        return rules.snap_price(sym, px, side)

    def _residue(self, now: int, x: float, raw: float) -> None:
        p = self.p
        if self._residue_since is None:
            self._residue_since = now
            self._event(
                LegEventKind.RESIDUE,
                Side.SELL if x > 0 else Side.BUY,
                raw,
                None,
                f"{x:+g} maker shares ({raw:g} taker shares) below the taker's minimum: kept "
                f"until it reaches it"
                + (
                    f" or for {p.hedge_residue_timeout_s:g}s"
                    if p.hedge_residue_timeout_s is not None and not self._forced
                    else ""
                ),
            )
        if (
            p.hedge_residue_timeout_s is not None
            and not self._forced
            and not self._residue_armed
            and not self.hedges_in_flight
        ):
            self._residue_armed = True
            self.set_timer("xemm-residue", p.hedge_residue_timeout_s, repeat=False)

    def _hedge_done(self, order: Order) -> None:
        self._hedge_sent_at.pop(order.client_order_id, None)
        if order.filled_qty >= order.qty - _EPS:
            if self._fails:
                self._event(
                    LegEventKind.HEDGED,
                    order.side,
                    order.qty,
                    order.limit_price,
                    f"hedge {order.client_order_id} filled after {self._fails} failure(s)",
                )
            self._fails = 0
            del self._hedges[order.client_order_id]
            self.hedge()  # fills that came meanwhile, or a residue to keep
            return
        del self._hedges[order.client_order_id]
        failed = order.status is not OrderStatus.REJECTED
        kind = LegEventKind.LEG_FAILED if failed else LegEventKind.REJECTED
        self._event(
            kind,
            order.side,
            order.qty - order.filled_qty,
            order.limit_price,
            f"hedge {order.side.value} {order.venue}:{order.symbol} filled {order.filled_qty:g} "
            f"of {order.qty:g} ({order.status.value}"
            + (f": {order.reject_message}" if order.reject_message else "")
            + ")",
            retry=self._fails,
        )
        self._failed_hedge(order, "")

    def _failed_hedge(self, order: Order | None, why: str) -> None:
        p = self.p
        self._fails += 1
        if self._fails > p.max_hedge_retries and not self._hedge_paused:
            self._hedge_paused = True
            self._event(
                LegEventKind.PAUSED,
                None,
                abs(self.unhedged),
                None,
                f"{self._fails} hedges in a row failed: maker quotes pulled until hedged",
            )
            self._pull()
        if self._retry_waiting:
            return
        if self.ctx.broker(p.taker_venue).kill_switch.tripped:
            # every order is refused from now on: retrying would only fill the log
            self.log.error("kill switch tripped: %+g maker shares stay unhedged", self.unhedged)
            return
        delay = p.hedge_retry_delay_s
        if self._fails > p.max_hedge_retries or order is None:
            # keep trying without hammering the venue (a local refusal needs time to clear)
            delay = max(delay, 1.0)
        if delay > 0:
            self._retry_waiting = True
            self.set_timer("xemm-hedge-retry", delay, repeat=False)
        else:
            self.hedge()

    def _settled(self) -> None:
        """Nothing left to hedge: quoting may resume after failed hedges."""
        if self._hedge_paused and not self.hedges_in_flight:
            self._hedge_paused = False
            self._fails = 0
            self._event(LegEventKind.RESUMED, None, 0.0, None, "hedged: maker quotes resume")

    def _watchdog(self, now: int) -> None:
        limit = int(self.p.hedge_timeout_s * NS_PER_S)
        for cid, o in list(self._hedges.items()):
            if not o.is_open or o.status is OrderStatus.PENDING_CANCEL:
                continue
            if now - self._hedge_sent_at.get(cid, o.created_ts) >= limit:
                self._event(
                    LegEventKind.TIMEOUT,
                    o.side,
                    o.qty - o.filled_qty,
                    o.limit_price,
                    f"hedge {cid} still {o.status.value} after {self.p.hedge_timeout_s:g}s: "
                    f"canceled",
                )
                self.cancel(o)

    def _event(
        self,
        kind: LegEventKind,
        side: Side | None,
        qty: float,
        price: float | None,
        message: str,
        *,
        retry: int = 0,
    ) -> None:
        p = self.p
        ev = LegEvent(
            self.now_ns(),
            kind,
            0,
            p.taker_venue if side is not None else "",
            p.sym_taker if side is not None else "",
            side,
            qty,
            price,
            retry,
            self.exposure,
            message,
        )
        self.leg_events.append(ev)
        if kind in (LegEventKind.PAUSED, LegEventKind.LEG_FAILED, LegEventKind.REJECTED):
            self.log.warning("%s", message)
        else:
            self.log.info("%s", message)
