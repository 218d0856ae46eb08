"""Pure market making through the Python API: the same run as
``examples/pure_market_making.toml``, with the venue and the strategy built in code.

    python examples/pure_market_making.py [OUT_DIR]

Writes ``summary.json``, ``orders.csv``, ``fills.csv`` and ``report.html`` into ``OUT_DIR``
(default ``tradekit-out/pure_market_making``). ``TRADEKIT_EXAMPLE_END`` (ISO-8601 with an
offset, e.g. ``2026-11-24T15:00:00Z``) ends the run early.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

import tradekit
from tradekit import Config, RiskLimits
from tradekit.brokers.paper import PaperBroker
from tradekit.config import MarketConfig, SessionConfig
from tradekit.results import format_summary
from tradekit.strategies import PureMarketMaking

RISK = RiskLimits(
    max_position=1000,
    max_order_qty=500,
    max_order_notional=100_000,
    max_open_orders=20,
    max_orders_per_minute=150,
    max_daily_loss=5000,
    fat_finger=0.05,
)


def build_config() -> Config:
    strategy = PureMarketMaking(
        "AAPL",
        venue="paper",
        bid_spread=0.00005,  # fractions: 0.00005 = 0.005 % = about 1 cent at $190
        ask_spread=0.00005,
        order_amount=100,
        order_levels=1,
        order_refresh_time=2,
        order_refresh_tolerance_pct=0.0001,
        filled_order_delay=0.5,
        max_position=800,
        inventory_skew_enabled=True,
        inventory_range=400,  # shares: bids shrink to nothing at +400, asks at -400
        inventory_price_skew=0.0,
    )
    # Alpaca's order rules and fees (zero commission, SEC fee and TAF on sells)
    broker = PaperBroker(
        rules="alpaca", latency_ms=20, cash=100_000, positions={"AAPL": 0}, risk=RISK
    )
    return Config(
        venues={"paper": broker},  # type: ignore[dict-item]  # a Broker object is accepted
        market=MarketConfig(
            date=dt.date(2026, 11, 24),
            seed=1,
            symbols={
                "AAPL": {
                    "start_price": 190.0,
                    "volatility": 0.25,
                    "spread_ticks": 2,
                    "quote_rate": 5.0,  # quote updates per second
                    "trade_rate": 10.0,  # prints per second
                }
            },
        ),
        session=SessionConfig(
            calendar="NYSE", hours="regular", cancel_before_close_s=60, flatten_at_close=False
        ),
        risk=RISK,
        strategy=strategy,  # type: ignore[arg-type]  # a Strategy instance is accepted too
    )


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else Path("tradekit-out") / "pure_market_making"
    end = os.environ.get("TRADEKIT_EXAMPLE_END") or None
    result = tradekit.backtest(build_config(), end=end)
    print(format_summary(result.summary))
    path = result.write(out)
    print(f"outputs written to {path}")
    return result.summary


if __name__ == "__main__":
    main()
