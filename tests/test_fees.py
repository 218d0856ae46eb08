"""Tests of tradekit.fees.FeeModel."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradekit.enums import Liquidity, Side
from tradekit.errors import ConfigError
from tradekit.fees import FeeModel

IB = FeeModel.for_broker("ibkr")
ZERO_REG = {"sec_fee_rate": 0.0, "taf_per_share": 0.0}


def fills_of_order(
    model: FeeModel, side: Side, fills: list[tuple[float, float]], liq: Liquidity = Liquidity.MAKER
) -> list[float]:
    """The fee of each fill of one order, as a broker would charge them."""
    out = []
    q = v = 0.0
    for qty, px in fills:
        out.append(model.fee(side, qty, px, liq, order_qty_before=q, order_value_before=v))
        q += qty
        v += qty * px
    return out


def test_ib_minimum_charged_once_over_three_partial_fills() -> None:
    ib = FeeModel(per_share=0.005, min_per_order=1.0, max_pct_of_value=0.01, **ZERO_REG)
    fees = fills_of_order(ib, Side.BUY, [(20, 50.0), (20, 50.0), (20, 50.0)])
    assert fees[0] == pytest.approx(1.0)
    assert fees[1] == pytest.approx(0.0) and fees[2] == pytest.approx(0.0)
    assert sum(fees) == pytest.approx(1.0)


def test_ib_per_share_beyond_minimum_over_partial_fills() -> None:
    ib = FeeModel(per_share=0.005, min_per_order=1.0, max_pct_of_value=0.01, **ZERO_REG)
    fees = fills_of_order(ib, Side.BUY, [(100, 50.0), (400, 50.0), (500, 50.0)])
    assert fees == pytest.approx([1.0, 1.5, 2.5])
    assert sum(fees) == pytest.approx(ib.commission(1000, 50_000.0)) == pytest.approx(5.0)


def test_ib_one_percent_cap() -> None:
    # 1000 shares at $0.30: $5.00 per share commission, capped at 1% of $300 = $3.00.
    assert IB.fee(Side.BUY, 1000, 0.30, Liquidity.TAKER) == pytest.approx(3.0)
    # The cap wins over the minimum: 10 shares at $5 -> 1% of $50 = $0.50.
    assert IB.fee(Side.BUY, 10, 5.0, Liquidity.TAKER) == pytest.approx(0.5)
    # Over partial fills the cap applies to the whole order.
    fees = fills_of_order(IB, Side.BUY, [(500, 0.30), (500, 0.30)])
    assert sum(fees) == pytest.approx(3.0)


def test_sells_pay_sec_and_taf_buys_do_not() -> None:
    alpaca = FeeModel.for_broker("alpaca")
    assert alpaca.fee(Side.BUY, 100, 190.0, Liquidity.MAKER) == 0.0
    sell = alpaca.fee(Side.SELL, 100, 190.0, Liquidity.MAKER)
    assert sell == pytest.approx(0.0000278 * 19_000 + 0.000166 * 100)
    # IB: commission on both sides, regulatory fees on the sell only.
    buy_ib = IB.fee("buy", 1000, 50.0, "taker")
    sell_ib = IB.fee("sell", 1000, 50.0, "taker")
    assert buy_ib == pytest.approx(5.0)
    assert sell_ib == pytest.approx(5.0 + 0.0000278 * 50_000 + 0.166)


def test_taf_cap() -> None:
    m = FeeModel()
    fee = m.fee(Side.SELL, 100_000, 1.0, Liquidity.TAKER)
    assert fee == pytest.approx(8.30 + 0.0000278 * 100_000)
    assert m.fee(Side.SELL, 40_000, 1.0, Liquidity.TAKER) == pytest.approx(
        0.000166 * 40_000 + 0.0000278 * 40_000
    )


def test_alpaca_and_default_zero_commission() -> None:
    for name in ("alpaca", "default"):
        m = FeeModel.for_broker(name)
        assert m.per_share == 0.0 and m.min_per_order == 0.0 and m.max_pct_of_value is None
        assert m.fee(Side.BUY, 1, 10.0, Liquidity.TAKER) == 0.0
        assert fills_of_order(m, Side.BUY, [(1, 10.0), (2, 10.0)]) == [0.0, 0.0]


def test_ibkr_schedule() -> None:
    assert IB.per_share == 0.005 and IB.min_per_order == 1.0 and IB.max_pct_of_value == 0.01
    assert IB.sec_fee_rate == pytest.approx(0.0000278) and IB.taf_per_share == 0.000166


def test_maker_rebate_and_taker_fee() -> None:
    m = FeeModel(maker_fee_per_share=-0.002, taker_fee_per_share=0.003, **ZERO_REG)
    assert m.fee(Side.BUY, 100, 10.0, Liquidity.MAKER) == pytest.approx(-0.2)
    assert m.fee(Side.BUY, 100, 10.0, Liquidity.TAKER) == pytest.approx(0.3)


def test_zero() -> None:
    z = FeeModel.zero()
    assert z.fee(Side.SELL, 1000, 100.0, Liquidity.TAKER) == 0.0
    assert z.fee(Side.BUY, 1000, 100.0, Liquidity.MAKER) == 0.0


def test_zero_qty_and_bad_input() -> None:
    assert IB.fee(Side.BUY, 0, 10.0, Liquidity.MAKER) == 0.0
    with pytest.raises(ValueError, match="hold"):
        IB.fee("hold", 1, 10.0, Liquidity.MAKER)
    with pytest.raises(ValueError, match="both"):
        IB.fee(Side.BUY, 1, 10.0, "both")
    with pytest.raises(ValueError, match="nan"):
        IB.fee(Side.BUY, math.nan, 10.0, Liquidity.MAKER)


def test_from_config() -> None:
    assert FeeModel.from_config(None) is None
    assert FeeModel.from_config(IB) is IB
    assert FeeModel.from_config("ibkr") == IB
    assert FeeModel.from_config("alpaca") == FeeModel()
    m = FeeModel.from_config({"per_share": 0.0035, "min_per_order": 0.35})
    assert m == FeeModel(per_share=0.0035, min_per_order=0.35)
    m = FeeModel.from_config({"broker": "ibkr", "per_share": 0.0035})
    assert m is not None and m.per_share == 0.0035 and m.min_per_order == 1.0
    assert FeeModel.from_config({"max_pct_of_value": None}) == FeeModel()


def test_from_config_unknown_key() -> None:
    with pytest.raises(ConfigError) as ei:
        FeeModel.from_config({"per_shares": 0.005})
    msg = str(ei.value)
    assert "per_shares" in msg
    assert "per_share," in msg and "taf_max_per_trade" in msg  # the allowed keys


@pytest.mark.parametrize(
    ("cfg", "bad"),
    [
        ({"per_share": -0.005}, "-0.005"),
        ({"min_per_order": -1}, "-1"),
        ({"sec_fee_rate": -0.1}, "-0.1"),
        ({"taf_max_per_trade": -8.3}, "-8.3"),
        ({"max_pct_of_value": 0.0}, "0.0"),
        ({"per_share": "0.005"}, "'0.005'"),
        ({"per_share": True}, "True"),
        ({"per_share": math.nan}, "nan"),
    ],
)
def test_from_config_bad_values(cfg: dict[str, object], bad: str) -> None:
    with pytest.raises(ConfigError) as ei:
        FeeModel.from_config(cfg)
    assert bad in str(ei.value)
    assert next(iter(cfg)) in str(ei.value)


def test_from_config_bad_name_and_type() -> None:
    with pytest.raises(ConfigError) as ei:
        FeeModel.from_config("robinhood")
    assert "robinhood" in str(ei.value) and "ibkr" in str(ei.value)
    with pytest.raises(ConfigError) as ei:
        FeeModel.from_config(3)  # type: ignore[arg-type]
    assert "3" in str(ei.value)
    with pytest.raises(ConfigError) as ei:
        FeeModel.from_config({"broker": "nope"})
    assert "nope" in str(ei.value)
    with pytest.raises(ConfigError) as ei:
        FeeModel.from_config({"per_shares": 1}, file="bot.toml")
    assert ei.value.file == "bot.toml" and "bot.toml" in str(ei.value)


def test_negative_direct_construction() -> None:
    with pytest.raises(ConfigError, match="per_share"):
        FeeModel(per_share=-1.0)
    assert FeeModel(maker_fee_per_share=-0.002).maker_fee_per_share == -0.002


@settings(max_examples=200, deadline=None)
@given(
    fills=st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=5000), st.floats(min_value=0.01, max_value=2000)
        ),
        min_size=1,
        max_size=8,
    ),
    side=st.sampled_from(list(Side)),
)
def test_commission_sums_to_order_level(fills: list[tuple[int, float]], side: Side) -> None:
    ib = FeeModel(per_share=0.005, min_per_order=1.0, max_pct_of_value=0.01, **ZERO_REG)
    fees = fills_of_order(ib, side, [(float(q), p) for q, p in fills])
    total_q = sum(q for q, _ in fills)
    total_v = sum(q * p for q, p in fills)
    expected = min(max(0.005 * total_q, 1.0), 0.01 * total_v)
    assert sum(fees) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert all(f >= -1e-12 for f in fees)
