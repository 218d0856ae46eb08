"""End to end: the example config through ``tradekit.backtest`` and the ``tradekit backtest``
command; results, determinism, outputs, and configs given as a dict or built in code."""

from __future__ import annotations

import datetime as dt
import json
import math
import tomllib
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import tradekit
from tradekit.brokers.paper import PaperBroker
from tradekit.cli import main as cli_main
from tradekit.config import MarketConfig, SessionConfig, VenueConfig
from tradekit.strategies import PureMarketMaking

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pure_market_making.toml"

# CONTRACT §7, summary.json
SUMMARY_KEYS = {
    "strategy",
    "start",
    "end",
    "events",
    "orders_submitted",
    "orders_rejected",
    "orders_canceled",
    "fills",
    "volume",
    "notional",
    "fees",
    "realized_pnl",
    "net_pnl",
    "final_positions",
    "max_abs_position",
    "max_drawdown",
    "sharpe",
    "markout_1s",
    "markout_10s",
    "markout_60s",
    "quote_uptime",
    "wall_seconds",
    "events_per_second",
}
ORDERS_COLUMNS = [
    "client_order_id",
    "venue",
    "symbol",
    "side",
    "type",
    "qty",
    "limit_price",
    "tif",
    "extended_hours",
    "status",
    "filled_qty",
    "avg_fill_price",
    "created_at",
    "accepted_at",
    "done_at",
    "reject_reason",
]
FILLS_COLUMNS = [
    "ts",
    "venue",
    "symbol",
    "side",
    "qty",
    "price",
    "fee",
    "liquidity",
    "client_order_id",
    "fill_id",
]
TIMING = ("wall_seconds", "events_per_second")
# determinism and the config variants are compared over the first minutes (a full day once)
SHORT_END = "2026-11-24T14:45:00Z"


def stable(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k not in TIMING}


@pytest.fixture(scope="module")
def result() -> tradekit.BacktestResult:
    return tradekit.backtest(str(EXAMPLE))


@pytest.fixture(scope="module")
def short() -> tradekit.BacktestResult:
    return tradekit.backtest(str(EXAMPLE), end=SHORT_END)


def test_example_produces_fills(result: tradekit.BacktestResult) -> None:
    s = result.summary
    assert s["fills"] > 0 and len(result.fills) == s["fills"]
    assert s["orders_submitted"] > 0 and len(result.orders) >= s["orders_submitted"]
    assert s["volume"] > 0 and s["notional"] > 0
    assert s["events"] > 1000
    assert s["strategy"] == "pure_market_making"
    # the configured regular session of 2026-11-24
    assert s["start"].startswith("2026-11-24T14:30:00")
    assert s["end"].startswith("2026-11-24T21:00:00")
    assert s["final_positions"].keys() == {"paper:AAPL"}


def test_summary_has_exactly_the_contract_keys(result: tradekit.BacktestResult) -> None:
    s = result.summary
    assert set(s) == SUMMARY_KEYS
    assert isinstance(s["events"], int)
    for k in ("orders_submitted", "orders_rejected", "orders_canceled", "fills"):
        assert isinstance(s[k], int) and s[k] >= 0, k
    for k in (
        "volume",
        "notional",
        "fees",
        "realized_pnl",
        "net_pnl",
        "max_abs_position",
        "max_drawdown",
        "wall_seconds",
        "events_per_second",
    ):
        assert isinstance(s[k], float | int) and math.isfinite(s[k]), k
    assert s["max_drawdown"] >= 0
    assert s["quote_uptime"] is None or 0.0 <= s["quote_uptime"] <= 1.0
    for k in ("markout_1s", "markout_10s", "markout_60s"):
        assert s[k] is None or isinstance(s[k], float)
    for k in ("start", "end"):
        parsed = dt.datetime.fromisoformat(s[k].replace("Z", "+00:00"))
        assert parsed.utcoffset() == dt.timedelta(0)
    json.dumps(s, allow_nan=False)  # plain JSON
    assert list(result.orders.columns) == ORDERS_COLUMNS
    assert list(result.fills.columns) == FILLS_COLUMNS
    # consistent with the tables
    assert s["fills"] == len(result.fills)
    assert s["volume"] == pytest.approx(result.fills["qty"].sum())
    assert s["orders_canceled"] == int((result.orders["status"] == "canceled").sum())


def test_same_seed_same_result(short: tradekit.BacktestResult) -> None:
    # a Path this time, and the seed given explicitly equal to the config's [market] seed
    again = tradekit.backtest(EXAMPLE, end=SHORT_END, seed=1)
    assert short.summary["fills"] > 0
    assert stable(short.summary) == stable(again.summary)
    pd.testing.assert_frame_equal(short.orders, again.orders)
    pd.testing.assert_frame_equal(short.fills, again.fills)


def test_different_seed_differs(short: tradekit.BacktestResult) -> None:
    other = tradekit.backtest(EXAMPLE, end=SHORT_END, seed=2)
    assert other.summary["fills"] > 0
    assert stable(other.summary) != stable(short.summary)
    assert not short.fills.equals(other.fills)
    assert not short.orders.equals(other.orders)


def test_write_outputs(short: tradekit.BacktestResult, tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    ret = short.write(out)
    assert Path(ret) == out
    for name in ("summary.json", "orders.csv", "fills.csv", "report.html"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    pngs = sorted(out.glob("*.png"))
    assert pngs
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", p
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary == json.loads(json.dumps(short.summary))
    orders = pd.read_csv(out / "orders.csv")
    fills = pd.read_csv(out / "fills.csv")
    assert list(orders.columns) == ORDERS_COLUMNS
    assert list(fills.columns) == FILLS_COLUMNS
    assert len(orders) == len(short.orders) and len(fills) == len(short.fills)
    # ISO-8601 UTC times
    assert fills["ts"].str.endswith("Z").all() or fills["ts"].str.endswith("+00:00").all()
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<html" in html.lower()
    assert 'src="http' not in html and "src='http" not in html  # self-contained


def test_cli_backtest_exit_0_and_prints_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], short: tradekit.BacktestResult
) -> None:
    out = tmp_path / "out"
    code = cli_main(["backtest", str(EXAMPLE), "--end", SHORT_END, "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    for key in ("fills", "net_pnl", "quote_uptime", "markout_1s"):
        assert key in captured.out, key
    assert str(out) in captured.out
    written = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert stable(written) == stable(json.loads(json.dumps(short.summary)))
    for name in ("orders.csv", "fills.csv", "report.html"):
        assert (out / name).is_file()


def test_cli_backtest_bad_config_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(EXAMPLE.read_text(encoding="utf-8") + "\n[bogus]\nx = 1\n", encoding="utf-8")
    assert cli_main(["backtest", str(bad), "--out", str(tmp_path / "o2"), "--quiet"]) == 2
    assert "bogus" in capsys.readouterr().err


def test_dict_config(short: tradekit.BacktestResult) -> None:
    doc = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    r = tradekit.backtest(doc, end=SHORT_END)
    assert stable(r.summary) == stable(short.summary)
    pd.testing.assert_frame_equal(r.fills, short.fills)


def _code_config(venue: Any, strategy: Any) -> tradekit.Config:
    doc = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    return tradekit.Config(
        venues={"paper": venue},
        market=MarketConfig(
            date=dt.date(2026, 11, 24),
            seed=1,
            symbols={"AAPL": dict(doc["market"]["symbols"]["AAPL"])},
        ),
        session=SessionConfig(hours="regular", cancel_before_close_s=60),
        strategy=strategy,
    )


def _strategy() -> PureMarketMaking:
    return PureMarketMaking(
        "AAPL",
        venue="paper",
        bid_spread=0.0002,
        ask_spread=0.0002,
        order_amount=100,
        order_refresh_time=5,
        order_refresh_tolerance_pct=0.0001,
        filled_order_delay=2,
        max_position=800,
    )


def test_config_built_in_code_with_a_strategy_instance() -> None:
    strat = _strategy()
    venue = VenueConfig(
        name="paper",
        broker="paper",
        feed="synthetic",
        options={"rules": "alpaca", "latency_ms": 20},
    )
    r = tradekit.backtest(_code_config(venue, strat), end=SHORT_END)
    assert r.summary["fills"] > 0
    assert r.summary["strategy"] == "pure_market_making"
    assert set(r.summary) == SUMMARY_KEYS
    assert strat._ctx is not None  # this very instance ran
    assert set(r.fills["venue"]) == {"paper"}


def test_config_built_in_code_with_broker_object() -> None:
    strat = _strategy()
    broker = PaperBroker(rules="alpaca", latency_ms=20)
    r = tradekit.backtest(_code_config(broker, strat), end=SHORT_END)
    assert r.summary["fills"] > 0
    assert r.summary["final_positions"].keys() == {"paper:AAPL"}
    assert broker.orders and len(broker.orders) == len(r.orders)
    # the same run as the equivalent config given as data
    strat2 = _strategy()
    venue = VenueConfig(
        name="paper",
        broker="paper",
        feed="synthetic",
        options={"rules": "alpaca", "latency_ms": 20},
    )
    r2 = tradekit.backtest(_code_config(venue, strat2), end=SHORT_END)
    assert stable(r.summary) == stable(r2.summary)
