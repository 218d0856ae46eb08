"""Arbitrage between two simulated venues through the Python API: the same run as
``examples/arbitrage.toml``, with the venues and the strategy built in code.

    python examples/arbitrage.py
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
from tradekit.strategies.arbitrage import Arbitrage

RISK = RiskLimits(
    max_position=1000,
    max_order_qty=500,
    max_order_notional=100_000,
    max_orders_per_minute=120,
    max_daily_loss=2000,
    fat_finger=0.05,
)


def main() -> dict[str, object]:
    # leg events (retries, unwinds) are logged one per line; here they are counted below instead
    logging.getLogger("tradekit.strategy").setLevel(logging.ERROR)
    strategy = Arbitrage(
        "nyse",
        "arca",
        "AAPL",
        min_profitability=0.0002,  # 0.02 % net of both venues' fees
        order_amount=100,  # shares per arbitrage, at most
        cooloff_s=1.0,
        collar_ticks=1,
        max_leg_retries=3,
        retry_collar_ticks=2,
        retry_delay_s=0.2,
        on_leg_failure="unwind",
        max_unhedged_notional=25_000,
    )
    # brokers built in code (a Config also takes [venues] tables)
    venues: dict[str, Any] = {
        # Alpaca's rules and fees (no commission; SEC fee and TAF on sells)
        "nyse": PaperBroker(rules="alpaca", latency_ms=20, cash=100_000, risk=RISK),
        # IBKR's rules and fees ($0.005 a share, $1 minimum, SEC fee and TAF)
        "arca": PaperBroker(rules="ibkr", latency_ms=30, cash=100_000, risk=RISK),
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
    print(f"arbitrages: {strategy.attempts}, leg events: {kinds or 'none'}")
    print(f"largest unhedged notional: {strategy.max_exposure:,.2f}")
    return result.summary


if __name__ == "__main__":
    main()
