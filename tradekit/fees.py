"""What a fill costs: broker commission, exchange fees or rebates, and US regulatory fees.

``FeeModel.fee(side, qty, price, liquidity, order_qty_before=..., order_value_before=...)`` is the
money charged for one fill (negative for a net rebate). The commission is computed per order: the
sum over an order's fills equals ``clamp(per_share * total_qty, min_per_order,
max_pct_of_value * total_value)``, so the minimum is charged once, on the first fill, and the cap
applies to the whole order (where the cap is below the minimum, the cap wins, as at IBKR).
Exchange fees are per share of each fill (``maker_fee_per_share`` / ``taker_fee_per_share``,
negative = rebate). Regulatory fees are charged on sells only: the SEC fee
(``sec_fee_rate`` x proceeds) and the FINRA TAF (``taf_per_share``, at most ``taf_max_per_trade``
per fill). Amounts are not rounded to cents.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from .enums import Liquidity, Side
from .errors import ConfigError

__all__ = ["FeeModel"]

#: SEC Section 31 fee rate: $27.80 per million dollars of sale proceeds.
SEC_FEE_RATE = 27.80 / 1_000_000
#: FINRA Trading Activity Fee per share sold, and its maximum per trade.
TAF_PER_SHARE = 0.000166
TAF_MAX_PER_TRADE = 8.30

_SELL = Side.SELL
_MAKER = Liquidity.MAKER
_SIDES: dict[Any, Side] = {m: m for m in Side}
_LIQUIDITY: dict[Any, Liquidity] = {m: m for m in Liquidity}

#: Fields that may be negative (exchange rebates).
_SIGNED = frozenset({"maker_fee_per_share", "taker_fee_per_share"})


@dataclass(frozen=True, slots=True)
class FeeModel:
    """Fees of one broker. Money in the venue's currency; rates are fractions (0.01 = 1 %).

    - ``per_share``: commission per share; ``min_per_order``: minimum commission per order;
      ``max_pct_of_value``: commission cap as a fraction of the order's traded value (None: none).
    - ``maker_fee_per_share`` / ``taker_fee_per_share``: exchange fee per share (negative = rebate).
    - ``sec_fee_rate``: SEC fee as a fraction of sale proceeds (sells only).
    - ``taf_per_share`` / ``taf_max_per_trade``: FINRA TAF per share sold, capped per fill.
    """

    per_share: float = 0.0
    min_per_order: float = 0.0
    max_pct_of_value: float | None = None
    maker_fee_per_share: float = 0.0
    taker_fee_per_share: float = 0.0
    sec_fee_rate: float = SEC_FEE_RATE
    taf_per_share: float = TAF_PER_SHARE
    taf_max_per_trade: float = TAF_MAX_PER_TRADE

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None and f.name == "max_pct_of_value":
                continue
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ConfigError(f"must be a finite number, not {v!r}", key=f"fees.{f.name}")
            if v < 0 and f.name not in _SIGNED:
                raise ConfigError(f"must not be negative, not {v!r}", key=f"fees.{f.name}")
            if f.name == "max_pct_of_value" and v <= 0:
                raise ConfigError(
                    f"must be a positive fraction of the trade value (0.01 = 1%) or None, "
                    f"not {v!r}",
                    key="fees.max_pct_of_value",
                )
            object.__setattr__(self, f.name, float(v))

    # -- constructors --------------------------------------------------------------------------

    @classmethod
    def zero(cls) -> FeeModel:
        """No fees at all (no commission, no exchange or regulatory fees)."""
        return cls(sec_fee_rate=0.0, taf_per_share=0.0, taf_max_per_trade=0.0)

    @classmethod
    def for_broker(cls, name: str) -> FeeModel:
        """The fees of ``default`` or ``alpaca`` (no commission; SEC fee and TAF on sells) or
        ``ibkr`` (IBKR Pro Fixed: $0.005/share, min $1.00, max 1% of trade value; plus SEC fee
        and TAF)."""
        key = name.strip().lower() if isinstance(name, str) else name
        if key in ("default", "alpaca"):
            return cls()
        if key == "ibkr":
            return cls(per_share=0.005, min_per_order=1.0, max_pct_of_value=0.01)
        raise ConfigError(
            f"unknown fee schedule {name!r}; allowed: {', '.join(BROKERS)}", key="fees"
        )

    @classmethod
    def from_config(
        cls, value: FeeModel | str | Mapping[str, Any] | None, *, file: str | None = None
    ) -> FeeModel | None:
        """A ``FeeModel`` from a config value: None (-> None), a ``FeeModel``, a broker name
        (``default``, ``alpaca``, ``ibkr``) or a table of field names; a table may start from a
        broker's schedule with the key ``broker`` (``{broker = "ibkr", per_share = 0.0035}``).
        Unknown keys, wrong types and negative amounts raise ``ConfigError``."""
        if value is None:
            return None
        if isinstance(value, FeeModel):
            return value
        try:
            if isinstance(value, str):
                return cls.for_broker(value)
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"must be a broker name ({', '.join(BROKERS)}) or a table, not {value!r}",
                    key="fees",
                )
            allowed = ["broker", *(f.name for f in fields(cls))]
            for k in value:
                if k not in allowed:
                    raise ConfigError(
                        f"unknown key {k!r}; allowed: {', '.join(allowed)}", key=f"fees.{k}"
                    )
            params = {k: v for k, v in value.items() if k != "broker"}
            base = cls.for_broker(value["broker"]) if "broker" in value else cls()
            return replace(base, **params)
        except ConfigError as e:
            if file is not None and e.file is None:
                raise ConfigError(e.message, file=file, key=e.key)
            raise

    # -- fees ----------------------------------------------------------------------------------

    def commission(self, qty: float, value: float) -> float:
        """The commission of a whole order that traded ``qty`` shares worth ``value`` in total
        (0 when nothing traded)."""
        if qty <= 0.0:
            return 0.0
        c = self.per_share * qty
        if c < self.min_per_order:
            c = self.min_per_order
        cap = self.max_pct_of_value
        if cap is not None and c > cap * value:
            c = cap * value
        return c

    def fee(
        self,
        side: Side | str,
        qty: float,
        price: float,
        liquidity: Liquidity | str,
        *,
        order_qty_before: float = 0.0,
        order_value_before: float = 0.0,
    ) -> float:
        """The money charged for this fill of ``qty`` at ``price`` of an order that had already
        filled ``order_qty_before`` shares worth ``order_value_before`` (negative: a rebate)."""
        s = _SIDES.get(side)
        if s is None:
            raise ValueError(f"side {side!r} must be buy or sell")
        liq = _LIQUIDITY.get(liquidity)
        if liq is None:
            raise ValueError(f"liquidity {liquidity!r} must be maker or taker")
        if not (0.0 <= qty < math.inf and 0.0 <= price < math.inf):
            raise ValueError(f"qty {qty!r} and price {price!r} must be finite and >= 0")
        if qty == 0.0:
            return 0.0
        value = qty * price
        total = 0.0
        if self.per_share or self.min_per_order:
            total = self.commission(
                order_qty_before + qty, order_value_before + value
            ) - self.commission(order_qty_before, order_value_before)
        total += (self.maker_fee_per_share if liq is _MAKER else self.taker_fee_per_share) * qty
        if s is _SELL:
            taf = self.taf_per_share * qty
            if taf > self.taf_max_per_trade:
                taf = self.taf_max_per_trade
            total += self.sec_fee_rate * value + taf
        return total


#: The broker names ``FeeModel.for_broker`` knows.
BROKERS: tuple[str, ...] = ("default", "alpaca", "ibkr")
