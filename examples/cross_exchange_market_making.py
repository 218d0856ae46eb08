"""Cross-venue market making through the Python API: the same run as
``examples/cross_exchange_market_making.toml``, with the venues and the strategy built in code.
Quotes on arca are priced off what nyse pays for the hedge (net of both venues' fees and
``min_profitability``); every arca fill is hedged on nyse at once.

    python examples/cross_exchange_market_making.py
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import tradekit
from tradekit import Config, RiskLimits
from tradekit.brokers.paper import PaperBroker
from tradekit.config import MarketConfig, SessionConfig
from tradekit.results import format_summary
from tradekit.strategies.cross_exchange_market_making import CrossExchangeMarketMaking

RISK = RiskLimits(
    max_position=1000,
    max_order_qty=500,
    max_order_notional=100_000,
    max_open_orders=20,
    max_orders_per_minute=150,
    max_daily_loss=2000,
    fat_finger=0.05,
)


def main() -> dict[str, object]:
    # leg events (failed hedges, residues) are logged one per line; here they are counted below
    logging.getLogger("tradekit.strategy").setLevel(logging.ERROR)
    strategy = CrossExchangeMarketMaking(
        "arca",  # the maker venue: where we quote
        "nyse",  # the taker venue: where fills are hedged
        "AAPL",
        min_profitability=0.0003,  # 0.03 % over the hedge, after both venues' fees
        order_amount=100,
        adjust_order_enabled=True,
        anti_hysteresis_duration=2,
        order_size_taker_volume_factor=0.5,
        slippage_buffer=0.001,
        hedge_residue_timeout_s=5,
        max_hedge_retries=3,
        retry_collar_ticks=2,
        max_unhedged_notional=40_000,
    )
    # brokers built in code (a Config also takes [venues] tables)
    venues: dict[str, Any] = {
        "nyse": PaperBroker(rules="alpaca", latency_ms=20, cash=100_000, risk=RISK),
        "arca": PaperBroker(rules="ibkr", latency_ms=20, cash=100_000, risk=RISK),
    }
    config = Config(
        venues=venues,
        market=MarketConfig(
            date=dt.date(2026, 11, 24),
            seed=1,
            symbols={"AAPL": {"start_price": 190.0, "volatility": 0.25, "spread_ticks": 2}},
            options={"lead_lag_ms": 300, "dislocation_rate": 20},
        ),
        session=SessionConfig(calendar="NYSE", hours="regular", cancel_before_close_s=60),
        risk=RISK,
        strategy=strategy,  # type: ignore[arg-type]  # a Strategy instance is accepted too
    )
    result = tradekit.backtest(config)
    print(format_summary(result.summary))
    kinds: dict[str, int] = {}
    for event in strategy.leg_events:
        kinds[event.kind.value] = kinds.get(event.kind.value, 0) + 1
    print(
        f"maker fills: {strategy.maker_fills}, hedges sent: {strategy.hedges_sent}, "
        f"leg events: {kinds or 'none'}"
    )
    print(f"largest unhedged notional: {strategy.max_exposure:,.2f}")
    return result.summary


if __name__ == "__main__":
    main()
