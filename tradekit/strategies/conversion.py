"""What the two cross-venue strategies (``arbitrage`` and ``cross_exchange_market_making``) share:
converting prices and sizes between two venues, the fees of a trade, displayed liquidity as price
levels, quantities on the lot, and the taker order.

Conversion (``Conversion``). One venue is *home* (``venue_a`` of an arbitrage, the maker venue of
cross-venue market making); every price is compared in the home venue's currency per home share.
The other venue's prices are converted with an FX rate (home currency per unit of the other
venue's currency: a fixed ``rate``, or the mid of an FX quote ``fx_symbol``) and a share ratio
(``share_ratio``: how many of the other venue's shares one home share stands for; an ADR that
represents 2 ordinary shares has ``share_ratio = 2``)::

    home price of one home share = other price x fx x share_ratio
    other-venue quantity         = home quantity x share_ratio

So a dual-listed stock traded in New York (home, USD) and Toronto (CAD) at CAD 100.00 with
USD/CAD at 1.37 (``rate = 1 / 1.37``, or ``fx_symbol = "USDCAD"`` with ``invert = true``) is
worth USD 72.99 a share at home.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ..enums import Liquidity, OrderType, Session, Side, TimeInForce
from ..errors import ConfigError
from ..fees import FeeModel
from ..model import Order, Quote

P = TypeVar("P")

if TYPE_CHECKING:
    from ..brokers.base import Broker
    from ..rules import OrderRules
    from .base import Strategy

__all__ = [
    "Conversion",
    "Level",
    "buy_room",
    "fee_model_for",
    "fees_from_config",
    "levels",
    "lot_down",
    "lot_up",
    "sell_room",
    "send_taker",
    "trade_fee",
    "walk",
]

_EPS = 1e-9

#: a price level: (price, displayed size), best first
Level = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Conversion:
    """From the other venue's prices and sizes to the home venue's.

    - ``rate``: fixed FX rate, home currency per one unit of the other venue's currency
      (default: 1.0 when no ``fx_symbol`` is given). A fraction-free number, e.g. 0.73 USD per CAD.
    - ``fx_symbol``: a symbol whose quote mid is the FX rate (instead of ``rate``); quoted on
      ``fx_venue`` (default: the other venue). The strategy does nothing until it has a quote.
    - ``fx_venue``: the venue that quotes ``fx_symbol`` (default None: the other venue).
    - ``invert``: the ``fx_symbol`` quote is other-currency per home-currency (USDCAD for a USD
      home venue and a CAD other venue): the rate is 1 / mid (default False).
    - ``share_ratio``: other-venue shares per home share (default 1.0; an ADR standing for 2
      ordinary shares: 2.0).
    """

    rate: float | None = None
    fx_symbol: str | None = None
    fx_venue: str | None = None
    invert: bool = False
    share_ratio: float = 1.0

    def __post_init__(self) -> None:
        key = "strategy.conversion"
        if self.rate is not None and (
            isinstance(self.rate, bool)
            or not isinstance(self.rate, int | float)
            or not (math.isfinite(self.rate) and self.rate > 0)
        ):
            raise ConfigError(f"must be a number > 0, not {self.rate!r}", key=f"{key}.rate")
        if (
            isinstance(self.share_ratio, bool)
            or not isinstance(self.share_ratio, int | float)
            or not (math.isfinite(self.share_ratio) and self.share_ratio > 0)
        ):
            raise ConfigError(
                f"must be a number > 0 (other-venue shares per home share), not "
                f"{self.share_ratio!r}",
                key=f"{key}.share_ratio",
            )
        if self.fx_symbol is not None and (
            not isinstance(self.fx_symbol, str) or not self.fx_symbol
        ):
            raise ConfigError(
                f"must be a symbol name, not {self.fx_symbol!r}", key=f"{key}.fx_symbol"
            )
        if self.rate is not None and self.fx_symbol is not None:
            raise ConfigError(
                "give either a fixed rate or an fx_symbol, not both", key=f"{key}.fx_symbol"
            )
        if self.fx_venue is not None and self.fx_symbol is None:
            raise ConfigError("fx_venue needs fx_symbol", key=f"{key}.fx_venue")
        if not isinstance(self.invert, bool):
            raise ConfigError(f"must be true or false, not {self.invert!r}", key=f"{key}.invert")
        object.__setattr__(self, "share_ratio", float(self.share_ratio))
        if self.rate is not None:
            object.__setattr__(self, "rate", float(self.rate))

    @classmethod
    def from_config(cls, value: Any, *, file: str | None = None) -> Conversion:
        """From a ``conversion`` table (``rate``, ``fx_symbol``, ``fx_venue``, ``invert``,
        ``share_ratio``), a ``Conversion``, or None (no conversion)."""
        if value is None:
            return cls()
        if isinstance(value, Conversion):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"must be a table (rate, fx_symbol, fx_venue, invert, share_ratio), not {value!r}",
                file=file,
                key="strategy.conversion",
            )
        allowed = ("rate", "fx_symbol", "fx_venue", "invert", "share_ratio")
        for k in value:
            if k not in allowed:
                raise ConfigError(
                    f"unknown key; allowed: {', '.join(allowed)}",
                    file=file,
                    key=f"strategy.conversion.{k}",
                )
        try:
            return cls(**dict(value))
        except ConfigError as e:
            raise ConfigError(e.message, file=file, key=e.key) from None

    @property
    def is_identity(self) -> bool:
        """True when prices and sizes are the same on both venues."""
        return self.fx_symbol is None and (self.rate or 1.0) == 1.0 and self.share_ratio == 1.0

    def fx(self, quote_of: Callable[[str, str], Quote | None], other_venue: str) -> float | None:
        """The FX rate now (home currency per other currency); None while the FX quote is
        missing. ``quote_of(venue, symbol)`` gives the latest quote seen."""
        if self.fx_symbol is None:
            return 1.0 if self.rate is None else self.rate
        q = quote_of(self.fx_venue or other_venue, self.fx_symbol)
        if q is None or not (q.bid > 0 and q.ask > 0):
            return None
        mid = (q.bid + q.ask) * 0.5
        return 1.0 / mid if self.invert else mid

    def check_venues(self, venues: list[str]) -> None:
        """Raise ``ConfigError`` when ``fx_venue`` is not one of the run's ``venues``."""
        if self.fx_venue is not None and self.fx_venue not in venues:
            raise ConfigError(
                f"unknown venue {self.fx_venue!r}; defined venues: {', '.join(venues)}",
                key="strategy.conversion.fx_venue",
            )

    def price_factor(self, fx: float) -> float:
        """Home price of one home share per unit of other-venue price: ``fx x share_ratio``."""
        return fx * self.share_ratio


def parse_venue_pair_params(cls: type[P], params: Mapping[str, Any], file: str | None) -> P:
    """Parameters of a two-venue strategy: ``conversion`` and ``fees`` tables become their
    values, then the dataclass ``cls`` checks every key."""
    from .params import parse_params

    raw = dict(params)
    if "conversion" in raw:
        raw["conversion"] = Conversion.from_config(raw["conversion"], file=file)
    if "fees" in raw:
        raw["fees"] = fees_from_config(raw["fees"], file=file)
    return parse_params(cls, raw, file=file)


def fees_from_config(value: Any, *, file: str | None = None) -> FeeModel | None:
    """The ``fees`` strategy parameter: None, a ``FeeModel``, a broker name or a table of
    ``FeeModel`` fields; errors name ``strategy.fees.KEY``."""
    try:
        return FeeModel.from_config(value)
    except ConfigError as e:
        key = e.key or "fees"
        raise ConfigError(e.message, file=file, key=f"strategy.{key}") from None


def fee_model_for(broker: Broker, fallback: FeeModel | None) -> FeeModel:
    """The venue's fees: the broker's own ``fees`` model when it has one (the paper broker does),
    else ``fallback``, else the default schedule (no commission; SEC fee and FINRA TAF on
    sells)."""
    model = getattr(broker, "fees", None)
    if isinstance(model, FeeModel):
        return model
    return fallback if fallback is not None else FeeModel()


def trade_fee(model: FeeModel, side: Side, qty: float, price: float, liquidity: Liquidity) -> float:
    """The fee of one whole order of ``qty`` at the average ``price`` (venue currency)."""
    if qty <= 0:
        return 0.0
    return model.fee(side, qty, price, liquidity)


def levels(quote: Quote | None, side: Side) -> list[Level]:
    """Displayed liquidity on ``side`` of the book (``BUY``: the bids, ``SELL``: the asks) as
    levels, best first. With top-of-book data that is the touch and its size."""
    if quote is None:
        return []
    if side is Side.BUY:
        return [(quote.bid, quote.bid_size)] if quote.bid > 0 and quote.bid_size > 0 else []
    return [(quote.ask, quote.ask_size)] if quote.ask > 0 and quote.ask_size > 0 else []


def walk(book: list[Level], qty: float) -> tuple[float, float, float]:
    """Take ``qty`` from ``book``: (filled quantity, its value, the worst price reached)."""
    left = qty
    value = 0.0
    worst = 0.0
    for px, size in book:
        if left <= _EPS:
            break
        take = min(size, left)
        if take <= 0:
            continue
        value += take * px
        worst = px
        left -= take
    return qty - max(left, 0.0), value, worst


def lot_down(rules: OrderRules, symbol: str, qty: float) -> float:
    """``qty`` rounded down to what ``symbol`` may trade (its lot, whole shares unless
    fractionable); 0 when below the minimum quantity."""
    if not qty > 0 or not math.isfinite(qty):
        return 0.0
    inst = rules.instrument(symbol)
    lot = inst.lot_size if not inst.fractionable else 0.0
    if lot > 0:
        qty = math.floor(qty / lot + 1e-9) * lot
    return qty if qty >= inst.min_qty - _EPS and qty > _EPS else 0.0


def lot_up(rules: OrderRules, symbol: str, qty: float) -> float:
    """``qty`` rounded up to what ``symbol`` may trade (its lot, at least the minimum)."""
    if not qty > 0 or not math.isfinite(qty):
        return 0.0
    inst = rules.instrument(symbol)
    lot = inst.lot_size if not inst.fractionable else 0.0
    if lot > 0:
        qty = math.ceil(qty / lot - 1e-9) * lot
    return max(qty, inst.min_qty)


def send_taker(
    strategy: Strategy,
    venue: str,
    symbol: str,
    side: Side,
    qty: float,
    price: float | None,
    *,
    market: bool = False,
) -> Order | None:
    """A taker order: in the regular session a marketable limit IOC at ``price`` (a market IOC
    when ``market`` or ``price`` is None); in pre/post-market (extended-hours runs) a DAY limit
    with the extended-hours flag, which the caller cancels after its timeout. None when refused
    locally (the strategy's ``on_reject`` is told)."""
    regular = strategy.session() is Session.REGULAR
    if price is None or (market and regular):
        return strategy.order(
            side, symbol, qty, None, venue=venue, tif=TimeInForce.IOC, type=OrderType.MARKET
        )
    tif = TimeInForce.IOC if regular else TimeInForce.DAY
    return strategy.order(side, symbol, qty, price, venue=venue, tif=tif, snap=False)


def buy_room(
    broker: Broker, symbol: str, pos: float, limit_price: float, exclude: Order | None = None
) -> float:
    """Most shares a buy of ``symbol`` may have now: the buying power for the part that opens a
    long (where the broker reports it synchronously, as the paper broker does) and the venue's
    risk limits (``max_position``, ``max_order_qty``, ``max_order_notional``). ``exclude``: our
    open order that the new one would replace (its reservation is freed)."""
    room = math.inf
    bp_fn = getattr(broker, "buying_power", None)
    if callable(bp_fn) and limit_price > 0:
        room = max(0.0, -pos) + _bp(bp_fn, exclude) / limit_price
    room = min(room, _risk_room(broker, pos, Side.BUY, limit_price))
    return max(room, 0.0)


def sell_room(
    broker: Broker, symbol: str, pos: float, limit_price: float, exclude: Order | None = None
) -> float:
    """Most shares a sell of ``symbol`` may have now: what the venue lets us sell (held, or short
    where allowed), the buying power of the part that opens a short, and the venue's risk
    limits. ``exclude``: our open order that the new one would replace."""
    room = float(broker.sell_capacity(symbol, exclude))
    bp_fn = getattr(broker, "buying_power", None)
    if callable(bp_fn) and limit_price > 0:
        room = min(room, max(0.0, pos) + _bp(bp_fn, exclude) / limit_price)
    room = min(room, _risk_room(broker, pos, Side.SELL, limit_price))
    return max(room, 0.0)


def _risk_room(broker: Broker, pos: float, side: Side, price: float) -> float:
    lim = broker.risk.limits
    room = math.inf
    if lim.max_position is not None:
        room = lim.max_position - pos if side is Side.BUY else lim.max_position + pos
    if lim.max_order_qty is not None:
        room = min(room, lim.max_order_qty)
    if lim.max_order_notional is not None and price > 0:
        room = min(room, lim.max_order_notional / price)
    return max(room, 0.0)


def _bp(fn: Callable[..., Any], exclude: Order | None) -> float:
    return float(fn(exclude) if exclude is not None else fn())
