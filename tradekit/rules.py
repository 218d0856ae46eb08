"""Order rules of a broker: ticks, lots, fractional shares, sessions, short selling, wash trades.

``OrderRules.for_broker(name)`` (``default``, ``alpaca``, ``ibkr``) gives a rule set built from a
``RulesProfile`` (a frozen description of what the broker accepts) and a per-symbol registry of
``Instrument`` values (tick rule, lot, minimum quantity, fractionable/shortable flags).

- ``snap_price(symbol, price, side)`` moves a price onto the tick in the passive direction (a buy
  down, a sell up); ``format_price`` prints an on-tick price exactly as it is sent to a broker.
- ``check(order, context)`` refuses an order that the broker would refuse, raising
  ``OrderRejected`` with a ``RejectReason`` and a message naming the offending value and what is
  allowed. It never changes a price.

``check`` applies, in this order (the first violation raises):

1. sanity: qty finite, > 0 and at most the profile's ``max_qty``, prices finite, > 0 and at most
   its ``max_price`` (``INVALID``: bools, strings and other non-numbers too); the order type
   matches its prices and the profile allows the type and time in force (``ORDER_TYPE``); the
   instrument is tradable (``INVALID``);
2. ticks: limit and stop prices on the tick at that price and at least one tick (``TICK_SIZE``);
3. quantity: fractional shares (``FRACTIONAL``), lot (``LOT_SIZE``), minimum quantity
   (``MIN_QTY``), minimum notional (``MIN_NOTIONAL``);
4. the extended-hours flag only with the profile's extended-hours types and TIFs
   (``EXTENDED_HOURS``);
5. the session at the broker's clock (``SESSION_CLOSED``; OPG/CLS at the wrong time:
   ``ORDER_TYPE``);
6. short selling (``INSUFFICIENT_QTY`` on Alpaca, ``SHORTING``, fractional shorts ``FRACTIONAL``);
7. the wash-trade guard (``WASH_TRADE``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .enums import OrderStatus, OrderType, RejectReason, Session, Side, TimeInForce
from .errors import ConfigError, OrderRejected
from .model import RULE_612, Instrument, Order, OrderRequest, Quote, TickRule

__all__ = ["OrderRules", "RuleContext", "RulesProfile", "PROFILES", "as_number"]

# Module-level aliases: attribute access on an Enum class costs more than a global lookup.
_BUY = Side.BUY
_SELL = Side.SELL
_MARKET = OrderType.MARKET
_LIMIT = OrderType.LIMIT
_STOP = OrderType.STOP
_STOP_LIMIT = OrderType.STOP_LIMIT
_DAY = TimeInForce.DAY
_GTC = TimeInForce.GTC
_OPG = TimeInForce.OPG
_CLS = TimeInForce.CLS
_CLOSED = Session.CLOSED
_PRE = Session.PRE
_REGULAR = Session.REGULAR
_POST = Session.POST

# StrEnum members hash and compare like their values, so these map both ``Side.BUY`` and "buy"
# to the member.
_SIDE_OF: dict[Any, Side] = {m: m for m in Side}
_TYPE_OF: dict[Any, OrderType] = {m: m for m in OrderType}
_TIF_OF: dict[Any, TimeInForce] = {m: m for m in TimeInForce}
_SESSION_OF: dict[Any, Session] = {m: m for m in Session}
_DONE = frozenset(s for s in OrderStatus if s.is_done)
_NOT_RESTING = frozenset({_STOP, _STOP_LIMIT})

_INF = math.inf
#: Relative tolerance for "on the tick" and "a whole number" (absorbs float error like 190.01/0.01).
_EPS = 1e-9
#: Band edges are compared with the same slack as ``TickRule.tick_at``.
_EDGE = 1e-12

_ALL_TYPES = frozenset(OrderType)
_ALL_TIFS = frozenset(TimeInForce)


def _enum_set(value: Iterable[Any], enum: Any, what: str) -> frozenset[Any]:
    if isinstance(value, str):
        value = (value,)
    out = set()
    for v in value:
        try:
            out.add(enum(v))
        except ValueError:
            allowed = ", ".join(m.value for m in enum)
            raise ConfigError(f"unknown {what} {v!r}; allowed: {allowed}", key=what)
    return frozenset(out)


def _names(values: Iterable[Any], upper: bool = False) -> str:
    vals = sorted(str(getattr(v, "value", v)) for v in values)
    if upper:
        vals = [v.upper() for v in vals]
    return "/".join(vals) if vals else "none"


@dataclass(frozen=True, slots=True)
class RulesProfile:
    """What a broker accepts, independent of the symbol.

    Build a custom one with ``RulesProfile(name=..., ...)`` or
    ``dataclasses.replace(RulesProfile.for_broker("alpaca"), wash_trade_guard=False)`` and pass it
    to ``OrderRules(profile)``. Sets of order types and TIFs accept enum members or their string
    values.

    - ``order_types`` / ``tifs``: what the broker accepts at all.
    - ``fractional``: whether fractional quantities are supported at all; then only with
      ``fractional_order_types`` and ``fractional_tifs``, in extended hours only if
      ``fractional_extended_hours``, as a short sale only if ``fractional_short``, and only for
      instruments whose ``fractionable`` flag is set.
    - ``extended_hours_order_types`` / ``extended_hours_tifs``: what ``extended_hours=True`` needs
      (an empty set: the broker has no extended-hours trading).
    - ``short_requires_easy_to_borrow``: a short sale needs ``instrument.easy_to_borrow``.
    - ``refuse_sell_beyond_held``: while long, a sell of more than the quantity not already
      committed to open sells is refused (``INSUFFICIENT_QTY``) instead of flipping short (Alpaca).
    - ``wash_trade_guard``: refuse orders that could trade against our own opposite-side orders.
    - ``tick_rule``, ``default_fractionable``: how an unregistered symbol's ``Instrument`` is built.
    - ``max_qty`` / ``max_price``: sanity bounds; a larger quantity (shares) or price is refused
      (``INVALID``) as a typo or garbage, whatever the risk limits (none by default) say.
    """

    name: str
    order_types: frozenset[OrderType] = _ALL_TYPES
    tifs: frozenset[TimeInForce] = _ALL_TIFS
    fractional: bool = False
    fractional_order_types: frozenset[OrderType] = frozenset()
    fractional_tifs: frozenset[TimeInForce] = frozenset()
    fractional_extended_hours: bool = False
    fractional_short: bool = False
    extended_hours_order_types: frozenset[OrderType] = frozenset({_LIMIT})
    extended_hours_tifs: frozenset[TimeInForce] = frozenset({_DAY})
    short_requires_easy_to_borrow: bool = False
    refuse_sell_beyond_held: bool = False
    wash_trade_guard: bool = True
    tick_rule: TickRule = RULE_612
    default_fractionable: bool = False
    max_qty: float = 1e9
    max_price: float = 1e7

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"profile name must be a non-empty string, not {self.name!r}")
        for fname, enum in (
            ("order_types", OrderType),
            ("tifs", TimeInForce),
            ("fractional_order_types", OrderType),
            ("fractional_tifs", TimeInForce),
            ("extended_hours_order_types", OrderType),
            ("extended_hours_tifs", TimeInForce),
        ):
            object.__setattr__(self, fname, _enum_set(getattr(self, fname), enum, fname))
        try:
            object.__setattr__(self, "tick_rule", TickRule.coerce(self.tick_rule))
        except (TypeError, ValueError) as e:
            raise ConfigError(str(e), key="tick_rule")
        for fname in ("max_qty", "max_price"):
            v = getattr(self, fname)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < _INF:
                raise ConfigError(f"{fname} must be a finite number > 0, not {v!r}", key=fname)
            object.__setattr__(self, fname, float(v))

    @classmethod
    def for_broker(cls, name: str) -> RulesProfile:
        """The built-in profile ``default``, ``alpaca`` or ``ibkr`` (``ConfigError`` otherwise)."""
        key = name.strip().lower() if isinstance(name, str) else name
        try:
            return PROFILES[key]
        except (KeyError, TypeError):
            raise ConfigError(
                f"unknown rules profile {name!r}; allowed: {', '.join(sorted(PROFILES))}",
                key="rules",
            )


#: The built-in profiles.
#:
#: - ``default`` (the paper broker): every order type and TIF; fractional market/limit DAY or GTC
#:   orders for fractionable instruments (none by default); extended hours with limit DAY orders.
#: - ``alpaca``: fractional only market/limit DAY orders, never short, never in extended hours;
#:   extended hours only limit DAY; shorts need easy-to-borrow; selling more than the long
#:   quantity not committed to open sells is refused ("insufficient qty available for order").
#: - ``ibkr``: whole shares only (fractional trading needs an account permission); extended hours
#:   (``outsideRth``) with limit DAY or GTC orders; CLS is sent as MOC/LOC.
PROFILES: dict[str, RulesProfile] = {
    "default": RulesProfile(
        name="default",
        fractional=True,
        fractional_order_types=frozenset({_MARKET, _LIMIT}),
        fractional_tifs=frozenset({_DAY, _GTC}),
    ),
    "alpaca": RulesProfile(
        name="alpaca",
        fractional=True,
        fractional_order_types=frozenset({_MARKET, _LIMIT}),
        fractional_tifs=frozenset({_DAY}),
        extended_hours_order_types=frozenset({_LIMIT}),
        extended_hours_tifs=frozenset({_DAY}),
        short_requires_easy_to_borrow=True,
        refuse_sell_beyond_held=True,
    ),
    "ibkr": RulesProfile(
        name="ibkr",
        tifs=frozenset(
            {TimeInForce.DAY, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.OPG, TimeInForce.CLS}
        ),  # IB offers no FOK for US stocks through the API
        fractional=False,
        extended_hours_order_types=frozenset({_LIMIT}),
        extended_hours_tifs=frozenset({_DAY, _GTC}),
    ),
}


@dataclass(slots=True)
class RuleContext:
    """What ``OrderRules.check`` needs to know besides the order, at one broker."""

    #: The session at the broker's clock now.
    session: Session
    #: The latest quote of the symbol at this broker (may be None).
    quote: Quote | None = None
    #: Signed shares of the symbol held at this broker.
    position: float = 0.0
    #: Our open orders at this broker (other symbols are ignored).
    open_orders: Sequence[Order] = field(default=())
    #: Whether the account/venue allows short selling at all.
    shorting: bool = True


# ---------------------------------------------------------------------------------------------
# Tick arithmetic on compiled bands: ((from_price, tick, decimals), ...) ascending.

_Band = tuple[float, float, int]


def _decimals(tick: float) -> int:
    r = repr(float(tick))
    if "e" in r or "E" in r:
        mant, _, exp = r.lower().partition("e")
        frac = mant.partition(".")[2].rstrip("0")
        return max(0, len(frac) - int(exp))
    frac = r.partition(".")[2].rstrip("0")
    return len(frac)


def _compile(rule: TickRule) -> tuple[_Band, ...]:
    return tuple((float(lo), float(t), _decimals(t)) for lo, t in rule.bands)


def _band_index(bands: tuple[_Band, ...], price: float) -> int:
    i = len(bands) - 1
    while i > 0 and price < bands[i][0] - _EDGE:
        i -= 1
    return i


def _on_tick(bands: tuple[_Band, ...], price: float) -> bool:
    tick = bands[0][1] if len(bands) == 1 else bands[_band_index(bands, price)][1]
    n = price / tick
    return abs(n - round(n)) <= _EPS * (n if n > 1.0 else 1.0)


def _snap_down(bands: tuple[_Band, ...], price: float) -> float:
    i = _band_index(bands, price)
    strict = False  # looking for the largest valid price strictly below ``price``
    while True:
        lo, tick, dec = bands[i]
        n = price / tick
        r = round(n)
        if abs(n - r) <= _EPS * (n if n > 1.0 else 1.0):
            k = r - 1 if strict else r
        else:
            k = math.floor(n)
        v = round(k * tick, dec)
        if i == 0 or v >= lo - _EDGE:
            return v + 0.0  # normalise -0.0
        # No multiple of this band's tick lies in [lo, price]: the answer is the largest valid
        # price of the band below, strictly under this band's start.
        price = lo
        i -= 1
        strict = True


def _snap_up(bands: tuple[_Band, ...], price: float) -> float:
    i = _band_index(bands, price)
    last = len(bands) - 1
    while True:
        _, tick, dec = bands[i]
        n = price / tick
        r = round(n)
        k = r if abs(n - r) <= _EPS * (n if n > 1.0 else 1.0) else math.ceil(n)
        v = round(k * tick, dec)
        if i == last or v < bands[i + 1][0] - _EDGE:
            return v
        # The next multiple lies in the next band: the answer is that band's first valid price.
        i += 1
        price = bands[i][0]


def _fmt(x: float) -> str:
    """A number for a message: integers without decimals, others in their shortest form."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x) if isinstance(x, float) else str(x)


class _Spec:
    """Everything ``check`` needs about one symbol, flattened for speed."""

    __slots__ = (
        "bands",
        "easy_to_borrow",
        "fractionable",
        "inst",
        "lot",
        "min_notional",
        "min_qty",
        "shortable",
        "tradable",
    )

    def __init__(self, inst: Instrument) -> None:
        self.inst = inst
        self.bands = _compile(inst.tick_size)
        self.lot = float(inst.lot_size)
        self.min_qty = float(inst.min_qty)
        self.min_notional = float(inst.min_notional)
        self.fractionable = bool(inst.fractionable)
        self.shortable = bool(inst.shortable)
        self.easy_to_borrow = bool(inst.easy_to_borrow)
        self.tradable = bool(inst.tradable)


def _show(value: Any) -> str:
    """An enum member by its value, anything else by its repr."""
    return repr(getattr(value, "value", value))


def _reject(reason: RejectReason, message: str) -> OrderRejected:
    return OrderRejected(reason, message)


def _short(value: Any) -> str:
    """``repr(value)``, cut to 80 characters (hostile values can be huge)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def as_number(value: Any, what: str, symbol: str = "") -> float:
    """``value`` (an order's qty or price) as a ``float``: ints, floats, numpy numbers and
    ``Decimal`` are taken; a bool, a string or anything else raises ``OrderRejected(INVALID)``
    naming the value and what is allowed (ranges are ``OrderRules.check``'s to judge)."""
    if value.__class__ is float:
        return value
    where = f" for {symbol}" if symbol else ""
    if isinstance(value, bool | str | bytes) or type(value).__name__ in ("bool", "bool_"):
        raise _reject(
            RejectReason.INVALID,
            f"{what} {_short(value)}{where} must be a number (an int or a float), "
            f"not {type(value).__name__}",
        )
    try:
        return float(value)
    except OverflowError:
        raise _reject(RejectReason.INVALID, f"{what} {_short(value)}{where} is too large")
    except (TypeError, ValueError, ArithmeticError):
        raise _reject(
            RejectReason.INVALID,
            f"{what} {_short(value)}{where} must be a number (an int or a float), "
            f"not {type(value).__name__}",
        )


_number = as_number


class OrderRules:
    """The order rules of one broker (a ``RulesProfile``) plus its per-symbol instruments.

    Create with ``OrderRules.for_broker("alpaca")`` or ``OrderRules(profile)``; every instance has
    its own instrument registry (``set_instrument``).
    """

    __slots__ = ("_defaults", "_registered", "_specs", "name", "profile")

    def __init__(self, profile: RulesProfile | str = "default") -> None:
        if isinstance(profile, str):
            profile = RulesProfile.for_broker(profile)
        if not isinstance(profile, RulesProfile):
            raise ConfigError(f"profile must be a RulesProfile or a name, not {profile!r}")
        self.profile: RulesProfile = profile
        self.name: str = profile.name
        self._registered: dict[str, Instrument] = {}
        self._defaults: dict[str, Instrument] = {}
        self._specs: dict[str, _Spec] = {}

    @classmethod
    def for_broker(cls, name: str) -> OrderRules:
        """A new rule set for ``default``, ``alpaca`` or ``ibkr`` (``ConfigError`` otherwise)."""
        return cls(RulesProfile.for_broker(name))

    def __repr__(self) -> str:
        return f"OrderRules({self.name!r}, instruments={len(self._registered)})"

    # -- instruments ---------------------------------------------------------------------------

    def instrument(self, symbol: str) -> Instrument:
        """The registered instrument of ``symbol``, else a default one built from the profile
        (its tick rule, lot 1, min qty 1, fractionable per the profile, shortable)."""
        inst = self._registered.get(symbol)
        if inst is not None:
            return inst
        inst = self._defaults.get(symbol)
        if inst is None:
            if not isinstance(symbol, str) or not symbol:
                raise _reject(
                    RejectReason.INVALID, f"symbol must be a non-empty string, not {symbol!r}"
                )
            frac = self.profile.default_fractionable
            inst = Instrument(
                symbol,
                tick_size=self.profile.tick_rule,
                lot_size=1.0,
                min_qty=0.0 if frac else 1.0,
                fractionable=frac,
                shortable=True,
            )
            self._defaults[symbol] = inst
        return inst

    def set_instrument(self, inst: Instrument) -> None:
        """Register (or replace) what the broker says about ``inst.symbol``."""
        if not isinstance(inst, Instrument):
            raise TypeError(f"set_instrument needs an Instrument, not {inst!r}")
        self._registered[inst.symbol] = inst
        self._specs.pop(inst.symbol, None)

    def _spec(self, symbol: str) -> _Spec:
        spec = self._specs.get(symbol)
        if spec is None:
            spec = _Spec(self.instrument(symbol))
            self._specs[symbol] = spec
        return spec

    # -- prices --------------------------------------------------------------------------------

    def tick_at(self, symbol: str, price: float) -> float:
        """The tick of ``symbol`` at ``price``."""
        bands = self._spec(symbol).bands
        return bands[_band_index(bands, price)][1]

    def is_on_tick(self, symbol: str, price: float) -> bool:
        """Whether ``price`` is a multiple of the tick at that price (float error tolerated)."""
        return _on_tick(self._spec(symbol).bands, price)

    def snap_price(self, symbol: str, price: float, side: Side | str) -> float:
        """``price`` moved onto the tick in the passive direction: a BUY down, a SELL up.

        A price already on the tick is returned as its exactly-rounded value (190.01 stays
        190.01). A buy below the smallest tick snaps to 0.0, which ``check`` refuses.
        """
        spec = self._specs.get(symbol)
        if spec is None:
            spec = self._spec(symbol)
        if price.__class__ is not float:
            price = _number(price, "price", symbol)
        if not 0.0 < price < _INF:
            raise _reject(
                RejectReason.INVALID, f"price {price!r} for {symbol} must be a finite number > 0"
            )
        s = _SIDE_OF.get(side)
        if s is None:
            raise _reject(RejectReason.INVALID, f"side {side!r} must be one of: buy, sell")
        bands = spec.bands
        i = len(bands) - 1
        while i > 0 and price < bands[i][0] - _EDGE:
            i -= 1
        lo, tick, dec = bands[i]
        n = price / tick
        r = round(n)
        if abs(n - r) <= _EPS * (n if n > 1.0 else 1.0):
            return round(r * tick, dec)
        # Fast path: the snapped price stays in the price's own band (always so for Rule 612).
        if s is _BUY:
            v = round(math.floor(n) * tick, dec)
            if i == 0 or v >= lo - _EDGE:
                return v + 0.0
            return _snap_down(bands, price)
        v = round(math.ceil(n) * tick, dec)
        if i == len(bands) - 1 or v < bands[i + 1][0] - _EDGE:
            return v
        return _snap_up(bands, price)

    def nearest_valid_prices(self, symbol: str, price: float) -> tuple[float, float]:
        """The valid prices just at-or-below and at-or-above ``price`` (equal when on tick)."""
        return (self.snap_price(symbol, price, _BUY), self.snap_price(symbol, price, _SELL))

    def format_price(self, symbol: str, price: float) -> str:
        """The exact string sent to a broker for ``price``, with the tick's decimals
        ("190.01", "190.005", "0.5123"). An off-tick price raises ``OrderRejected(TICK_SIZE)``."""
        spec = self._spec(symbol)
        if price.__class__ is not float:
            price = _number(price, "price", symbol)
        if not 0.0 < price < _INF:
            raise _reject(
                RejectReason.INVALID, f"price {price!r} for {symbol} must be a finite number > 0"
            )
        bands = spec.bands
        _, tick, dec = bands[_band_index(bands, price)]
        n = price / tick
        r = round(n)
        if abs(n - r) > _EPS * (n if n > 1.0 else 1.0) or r < 1:
            raise self._tick_error("price", symbol, price)
        return f"{round(r * tick, dec):.{dec}f}"

    def format_qty(self, symbol: str, qty: float) -> str:
        """The exact string sent for a quantity: "100", "0.5". A quantity with more than 9
        decimals (brokers take at most 9) raises ``OrderRejected(INVALID)``."""
        if qty.__class__ is not float:
            qty = _number(qty, "qty", symbol)
        if not 0.0 <= qty < _INF:
            raise _reject(
                RejectReason.INVALID, f"qty {qty!r} for {symbol} must be a finite number >= 0"
            )
        r = round(qty)
        if abs(qty - r) <= _EPS * (qty if qty > 1.0 else 1.0):
            return str(r)
        s = f"{qty:.9f}".rstrip("0").rstrip(".")
        if abs(float(s) - qty) > 1e-12 * (qty if qty > 1.0 else 1.0):
            raise _reject(
                RejectReason.INVALID,
                f"qty {qty!r} for {symbol} has more than 9 decimals; round it first",
            )
        return s

    def _range_error(self, what: str, value: float, symbol: str, most: float) -> OrderRejected:
        if value > most and value < _INF:
            return _reject(
                RejectReason.INVALID,
                f"{what} {_fmt(value)} for {symbol} is above the largest accepted, "
                f"{_fmt(most)} (a typo?)",
            )
        return _reject(
            RejectReason.INVALID,
            f"{what} {value!r} for {symbol} must be a finite number > 0 (at most {_fmt(most)})",
        )

    def _tick_error(self, what: str, symbol: str, price: float) -> OrderRejected:
        bands = self._spec(symbol).bands
        if price < 0.5 * bands[0][1]:
            low = bands[0][1]
            return _reject(
                RejectReason.TICK_SIZE,
                f"{what} {price!r} for {symbol} is below the smallest valid price "
                f"{low:.{bands[0][2]}f} (one tick)",
            )
        _, tick, dec = bands[_band_index(bands, price)]
        lo, hi = _snap_down(bands, price), _snap_up(bands, price)
        dlo = bands[_band_index(bands, lo)][2]
        dhi = bands[_band_index(bands, hi)][2]
        return _reject(
            RejectReason.TICK_SIZE,
            f"{what} {price!r} for {symbol} is not on the {tick:.{dec}f} tick; "
            f"nearest valid prices {lo:.{dlo}f} and {hi:.{dhi}f}",
        )

    # -- the check -----------------------------------------------------------------------------

    def check(self, order: OrderRequest | Order, context: RuleContext) -> None:
        """Raise ``OrderRejected`` if the broker would refuse ``order`` now; see the module doc
        for the checks and their order. ``order`` is an ``OrderRequest`` or an ``Order`` (for a
        replace: the order itself is left out of ``context.open_orders`` by identity or
        ``client_order_id``)."""
        prof = self.profile
        symbol = order.symbol
        spec = self._specs.get(symbol)
        if spec is None:
            spec = self._spec(symbol)

        # 1. sanity ---------------------------------------------------------------------------
        side = _SIDE_OF.get(order.side)
        if side is None:
            raise _reject(
                RejectReason.INVALID, f"side {_show(order.side)} for {symbol} must be buy or sell"
            )
        typ = _TYPE_OF.get(order.type)
        tif = _TIF_OF.get(order.tif)
        qty = order.qty
        if qty.__class__ is not float:
            qty = _number(qty, "qty", symbol)
        if not 0.0 < qty <= prof.max_qty:
            raise self._range_error("qty", qty, symbol, prof.max_qty)
        lp = order.limit_price
        if lp is not None:
            if lp.__class__ is not float:
                lp = _number(lp, "limit price", symbol)
            if not 0.0 < lp <= prof.max_price:
                raise self._range_error("limit price", lp, symbol, prof.max_price)
        sp = order.stop_price
        if sp is not None:
            if sp.__class__ is not float:
                sp = _number(sp, "stop price", symbol)
            if not 0.0 < sp <= prof.max_price:
                raise self._range_error("stop price", sp, symbol, prof.max_price)
        if typ is _LIMIT:
            if lp is None or sp is not None:
                raise self._type_price_error(typ, lp, sp, symbol)
        elif typ is _MARKET:
            if lp is not None or sp is not None:
                raise self._type_price_error(typ, lp, sp, symbol)
        elif typ is _STOP:
            if sp is None or lp is not None:
                raise self._type_price_error(typ, lp, sp, symbol)
        elif typ is _STOP_LIMIT and (lp is None or sp is None):
            raise self._type_price_error(typ, lp, sp, symbol)
        if typ is None or typ not in prof.order_types:
            raise _reject(
                RejectReason.ORDER_TYPE,
                f"order type {_show(order.type)} is not accepted by {self.name}; "
                f"allowed: {_names(prof.order_types)}",
            )
        if tif is None or tif not in prof.tifs:
            raise _reject(
                RejectReason.ORDER_TYPE,
                f"time in force {_show(order.tif)} is not accepted by {self.name}; "
                f"allowed: {_names(prof.tifs)}",
            )
        if (tif is _OPG or tif is _CLS) and typ is not _MARKET and typ is not _LIMIT:
            raise _reject(
                RejectReason.ORDER_TYPE,
                f"time in force {tif.value} (an auction) needs a market or limit order, "
                f"not {typ.value}",
            )
        if not spec.tradable:
            raise _reject(RejectReason.INVALID, f"{symbol} is not tradable at {self.name}")

        # 2. ticks ----------------------------------------------------------------------------
        if lp is not None:
            bands = spec.bands
            i = len(bands) - 1
            while i > 0 and lp < bands[i][0] - _EDGE:
                i -= 1
            n = lp / bands[i][1]
            if abs(n - round(n)) > _EPS * (n if n > 1.0 else 1.0) or n < 0.5:
                raise self._tick_error("limit price", symbol, lp)
        if sp is not None and (not _on_tick(spec.bands, sp) or sp < 0.5 * spec.bands[0][1]):
            raise self._tick_error("stop price", symbol, sp)

        # 3. quantity -------------------------------------------------------------------------
        whole = abs(qty - round(qty)) <= _EPS * (qty if qty > 1.0 else 1.0)
        ext = bool(order.extended_hours)
        if not whole:
            if abs(round(qty, 9) - qty) > 1e-12 * (qty if qty > 1.0 else 1.0):
                raise _reject(
                    RejectReason.INVALID,
                    f"qty {qty!r} for {symbol} has more than 9 decimals; round it first",
                )
            self._check_fractional(spec, symbol, qty, typ, tif, ext)
        lot = spec.lot
        if lot != 1.0:
            m = qty / lot
            if abs(m - round(m)) > _EPS * (m if m > 1.0 else 1.0):
                raise _reject(
                    RejectReason.LOT_SIZE,
                    f"qty {_fmt(qty)} for {symbol} is not a multiple of the lot size {_fmt(lot)}",
                )
        if qty < spec.min_qty * (1.0 - _EPS):
            raise _reject(
                RejectReason.MIN_QTY,
                f"qty {_fmt(qty)} for {symbol} is below the minimum quantity {_fmt(spec.min_qty)}",
            )
        if spec.min_notional > 0.0:
            self._check_notional(spec, symbol, side, qty, lp, sp, context.quote)

        # 4. extended-hours flag --------------------------------------------------------------
        if ext and (
            typ not in prof.extended_hours_order_types or tif not in prof.extended_hours_tifs
        ):
            raise _reject(
                RejectReason.EXTENDED_HOURS,
                f"extended_hours=True needs a {_names(prof.extended_hours_order_types)} order "
                f"with time in force {_names(prof.extended_hours_tifs, upper=True)} at "
                f"{self.name}, not {typ.value} {tif.value.upper()}"
                if prof.extended_hours_order_types and prof.extended_hours_tifs
                else f"{self.name} does not support extended-hours orders",
            )

        # 5. session --------------------------------------------------------------------------
        session = context.session
        if session is not _REGULAR or tif is _OPG or tif is _CLS:
            self._check_session(_SESSION_OF.get(session, session), tif, ext, symbol)

        # 6./7. open orders: shares committed to open sells, and our crossing orders ------------
        open_orders = context.open_orders
        committed = 0.0
        crossing: Order | None = None
        if open_orders:
            oid = getattr(order, "client_order_id", None)
            guard = prof.wash_trade_guard
            # Our order's executable price: None for market-like orders (MARKET, STOP).
            px = lp if typ is _LIMIT or typ is _STOP_LIMIT else None
            is_sell = side is _SELL
            for o in open_orders:
                if o is order or o.symbol != symbol or o.status in _DONE:
                    continue
                if oid is not None and o.client_order_id == oid:
                    continue
                if o.side == side:
                    if is_sell:
                        rem = o.qty - o.filled_qty
                        if rem > 0.0:
                            committed += rem
                    continue
                if not guard:
                    continue
                otyp = o.type
                if otyp in _NOT_RESTING:
                    continue  # not live in the book until triggered
                if o.qty - o.filled_qty <= 0.0:
                    continue
                op = o.limit_price
                if px is None or op is None or otyp == _MARKET:
                    crossing = _more_aggressive(crossing, o, side)
                elif is_sell:
                    if px <= op * (1.0 + _EPS):
                        crossing = _more_aggressive(crossing, o, side)
                elif px >= op * (1.0 - _EPS):
                    crossing = _more_aggressive(crossing, o, side)

        # 6. short selling --------------------------------------------------------------------
        if side is _SELL:
            held = float(context.position)
            available = held - committed
            if qty > (available if available > 0.0 else 0.0) * (1.0 + _EPS) + 1e-12:
                self._check_short(spec, symbol, qty, held, committed, whole, context)

        # 7. wash trades ----------------------------------------------------------------------
        if crossing is not None:
            raise self._wash_error(symbol, side, typ, lp, crossing)

    # -- slow paths of check -------------------------------------------------------------------

    def _type_price_error(
        self, typ: OrderType, lp: float | None, sp: float | None, symbol: str
    ) -> OrderRejected:
        need = {
            _LIMIT: "a limit price and no stop price",
            _MARKET: "neither a limit nor a stop price",
            _STOP: "a stop price and no limit price",
            _STOP_LIMIT: "both a limit and a stop price",
        }[typ]
        return _reject(
            RejectReason.ORDER_TYPE,
            f"a {typ.value} order for {symbol} needs {need}; got limit_price={lp!r}, "
            f"stop_price={sp!r}",
        )

    def _check_fractional(
        self,
        spec: _Spec,
        symbol: str,
        qty: float,
        typ: OrderType,
        tif: TimeInForce,
        ext: bool,
    ) -> None:
        prof = self.profile
        q = _fmt(qty)
        if not prof.fractional:
            raise _reject(
                RejectReason.FRACTIONAL,
                f"qty {q} for {symbol} is fractional; {self.name} takes whole shares only",
            )
        if not spec.fractionable:
            raise _reject(
                RejectReason.FRACTIONAL,
                f"qty {q} for {symbol} is fractional; {symbol} is not fractionable at {self.name}",
            )
        if typ not in prof.fractional_order_types or tif not in prof.fractional_tifs:
            raise _reject(
                RejectReason.FRACTIONAL,
                f"qty {q} for {symbol} is fractional; {self.name} takes fractional orders only as "
                f"{_names(prof.fractional_order_types)} orders with time in force "
                f"{_names(prof.fractional_tifs, upper=True)}, not {typ.value} "
                f"{tif.value.upper()}",
            )
        if ext and not prof.fractional_extended_hours:
            raise _reject(
                RejectReason.FRACTIONAL,
                f"qty {q} for {symbol} is fractional; {self.name} takes no fractional orders "
                f"with extended_hours=True",
            )

    def _check_notional(
        self,
        spec: _Spec,
        symbol: str,
        side: Side,
        qty: float,
        lp: float | None,
        sp: float | None,
        quote: Quote | None,
    ) -> None:
        px: float | None = lp if lp is not None else sp
        if px is None and quote is not None:
            px = quote.ask if side is _BUY else quote.bid
            if not (px > 0.0 and math.isfinite(px)):
                mid = quote.mid
                px = mid if mid > 0.0 and math.isfinite(mid) else None
        if px is None:
            return  # a market order without a quote: the notional is unknown
        notional = qty * px
        if notional < spec.min_notional * (1.0 - _EPS):
            raise _reject(
                RejectReason.MIN_NOTIONAL,
                f"notional {notional:.2f} ({_fmt(qty)} x {px!r}) for {symbol} is below the "
                f"minimum {_fmt(spec.min_notional)}",
            )

    def _check_session(self, session: Session, tif: TimeInForce, ext: bool, symbol: str) -> None:
        if session is _CLOSED:
            raise _reject(
                RejectReason.SESSION_CLOSED,
                f"the market is closed (session {session.value}); order for {symbol} refused",
            )
        if tif is _OPG:
            if session is not _PRE:
                raise _reject(
                    RejectReason.ORDER_TYPE,
                    f"time in force OPG (opening auction) is accepted only in the pre-market "
                    f"session, not in {session.value}",
                )
            return
        if tif is _CLS:
            if session is not _REGULAR:
                raise _reject(
                    RejectReason.ORDER_TYPE,
                    f"time in force CLS (closing auction) is accepted only in the regular "
                    f"session, not in {session.value}",
                )
            return
        if session is not _REGULAR and not ext:
            prof = self.profile
            raise _reject(
                RejectReason.SESSION_CLOSED,
                f"regular session closed (session {getattr(session, 'value', session)}); in "
                f"pre/post only {_names(prof.extended_hours_order_types)} "
                f"{_names(prof.extended_hours_tifs, upper=True)} orders with "
                f"extended_hours=True",
            )

    def sell_capacity(
        self, symbol: str, held: float, committed: float, *, shorting: bool = True
    ) -> float:
        """The most shares a new sell may have without being refused for short selling or held
        quantity (``inf`` when shorting is open), given the position ``held`` and the remaining
        quantity ``committed`` to our other open sells."""
        available = max(0.0, held - committed)
        spec = self._specs.get(symbol) or self._spec(symbol)
        prof = self.profile
        if prof.refuse_sell_beyond_held and held > 0.0:
            return available
        can_short = (
            shorting
            and spec.shortable
            and (not prof.short_requires_easy_to_borrow or spec.easy_to_borrow)
        )
        return _INF if can_short else available

    def _check_short(
        self,
        spec: _Spec,
        symbol: str,
        qty: float,
        held: float,
        committed: float,
        whole: bool,
        context: RuleContext,
    ) -> None:
        prof = self.profile
        available = held - committed
        if prof.refuse_sell_beyond_held and held > 0.0:
            raise _reject(
                RejectReason.INSUFFICIENT_QTY,
                f"insufficient qty available for order: sell {_fmt(qty)} {symbol} but only "
                f"{_fmt(max(available, 0.0))} available (held {_fmt(held)}, "
                f"{_fmt(committed)} committed to open sells); {self.name} does not sell "
                f"through a long position into a short",
            )
        short = qty - max(available, 0.0)
        what = f"sell {_fmt(qty)} {symbol} would sell {_fmt(short)} short"
        if not context.shorting:
            raise _reject(RejectReason.SHORTING, f"{what}; short selling is disabled")
        if not spec.shortable:
            raise _reject(RejectReason.SHORTING, f"{what}; {symbol} is not shortable")
        if prof.short_requires_easy_to_borrow and not spec.easy_to_borrow:
            raise _reject(
                RejectReason.SHORTING,
                f"{what}; {symbol} is not easy to borrow ({self.name} shorts only "
                f"easy-to-borrow symbols)",
            )
        if not whole and not prof.fractional_short:
            raise _reject(
                RejectReason.FRACTIONAL,
                f"{what}; fractional qty {_fmt(qty)} cannot be sold short at {self.name}",
            )

    def _wash_error(
        self, symbol: str, side: Side, typ: OrderType, lp: float | None, o: Order
    ) -> OrderRejected:
        ours = f"{side.value} {typ.value} {lp!r}" if lp is not None else f"{side.value} {typ.value}"
        theirs = (
            f"{o.side} limit {o.limit_price!r}"
            if o.limit_price is not None and o.type != _MARKET
            else f"{o.side} market"
        )
        oid = o.client_order_id or o.broker_order_id
        return _reject(
            RejectReason.WASH_TRADE,
            f"{ours} for {symbol} could trade against our own open {theirs} (order {oid}); "
            f"cancel it first or price the {side.value} "
            f"{'below' if side is _BUY else 'above'} it",
        )


def _more_aggressive(best: Order | None, o: Order, side: Side) -> Order:
    """Of two crossing resting orders, the one most in the way (a market order first, then the
    lowest sell for a buy, the highest buy for a sell)."""
    if best is None:
        return o
    bp, op = best.limit_price, o.limit_price
    if best.type == _MARKET or bp is None:
        return best
    if o.type == _MARKET or op is None:
        return o
    if side is _BUY:
        return o if op < bp else best
    return o if op > bp else best
