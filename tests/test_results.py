"""Tests of tradekit.results and tradekit.report: summary.json keys, types and values, the CSV
tables, BacktestResult.write and the self-contained HTML report."""

from __future__ import annotations

import base64
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tradekit.enums import Liquidity, OrderStatus, OrderType, RejectReason, Side, TimeInForce
from tradekit.model import Fill, Order
from tradekit.report import write_report
from tradekit.results import (
    FILLS_COLUMNS,
    ORDERS_COLUMNS,
    SUMMARY_KEYS,
    BacktestResult,
    RunRecord,
    default_out_dir,
    fills_frame,
    format_summary,
    is_local_reject,
    max_drawdown,
    orders_frame,
    sharpe_ratio,
    summarize,
)
from tradekit.timeutil import NS_PER_MIN, NS_PER_S, parse_iso_ns

T0 = parse_iso_ns("2026-11-24T14:30:00Z")

EXPECTED_KEYS = [
    "strategy", "start", "end", "events", "orders_submitted", "orders_rejected",
    "orders_canceled", "fills", "volume", "notional", "fees", "realized_pnl", "net_pnl",
    "final_positions", "max_abs_position", "max_drawdown", "sharpe", "markout_1s",
    "markout_10s", "markout_60s", "quote_uptime", "wall_seconds", "events_per_second",
]  # fmt: skip


def s(seconds: float) -> int:
    return T0 + int(seconds * NS_PER_S)


def order(
    cid: str,
    status: OrderStatus,
    *,
    side: Side = Side.BUY,
    qty: float = 100.0,
    limit_price: float | None = 100.0,
    filled: float = 0.0,
    avg: float | None = None,
    accepted: int | None = None,
    done: int | None = None,
    broker_id: str | None = "B1",
    reason: RejectReason | None = None,
    type: OrderType = OrderType.LIMIT,
) -> Order:
    return Order(
        client_order_id=cid,
        venue="SIM",
        symbol="AAPL",
        side=side,
        qty=qty,
        type=type,
        limit_price=limit_price,
        tif=TimeInForce.DAY,
        status=status,
        filled_qty=filled,
        avg_fill_price=avg,
        broker_order_id=broker_id,
        created_ts=s(1),
        updated_ts=s(2),
        accepted_ts=accepted,
        done_ts=done,
        reject_reason=reason,
    )


def fill(fid: str, cid: str, side: Side, qty: float, price: float, t: float) -> Fill:
    return Fill(
        fill_id=fid,
        client_order_id=cid,
        venue="SIM",
        symbol="AAPL",
        side=side,
        qty=qty,
        price=price,
        fee=0.5,
        liquidity=Liquidity.MAKER,
        ts=s(t),
    )


def make_record(**changes: Any) -> RunRecord:
    orders = [
        order("o1", OrderStatus.FILLED, filled=100, avg=100.0, accepted=s(1.5), done=s(3)),
        order("o2", OrderStatus.FILLED, side=Side.SELL, limit_price=100.5, filled=50, avg=100.5,
              accepted=s(2), done=s(200)),
        order("o3", OrderStatus.NEW, accepted=s(2.5)),  # open: no done_at
        order("o4", OrderStatus.CANCELED, accepted=s(3), done=s(4)),
        # refused by our own checks: never sent
        order("o5", OrderStatus.REJECTED, broker_id=None, done=s(1),
              reason=RejectReason.TICK_SIZE),
        # refused by the broker after it was sent
        order("o6", OrderStatus.REJECTED, broker_id=None, done=s(5), reason=RejectReason.BROKER,
              type=OrderType.MARKET, limit_price=None),
    ]  # fmt: skip
    fills = [
        fill("f1", "o1", Side.BUY, 100, 100.0, 3),
        fill("f2", "o2", Side.SELL, 50, 100.5, 200),
    ]
    n = 400
    samples: dict[str, list[Any]] = {
        "ts": [s(i) for i in range(n)],
        "key": ["SIM:AAPL"] * n,
        "bid": [100.0 + 0.01 * (i % 7) for i in range(n)],
        "ask": [100.02 + 0.01 * (i % 7) for i in range(n)],
        "our_bid": [math.nan if i % 50 == 0 else 99.99 for i in range(n)],
        "our_ask": [100.05] * n,
        "position": [0.0 if i < 3 else (100.0 if i < 200 else 50.0) for i in range(n)],
    }
    rec = RunRecord(
        strategy="market_maker",
        start_ns=T0,
        end_ns=s(400),
        events=12_345,
        wall_seconds=2.5,
        orders=orders,
        fills=fills,
        initial_positions={"SIM:AAPL": 0.0},
        final_positions={"SIM:AAPL": 50.0},
        last_mid={"SIM:AAPL": 100.03},
        realized_pnl=25.0,
        fees=1.0,
        net_pnl=25.5,
        pnl_curve=[(s(3), -0.5), (s(70), 3.0), (s(130), 1.0), (s(200), 24.0), (s(390), 25.5)],
        samples=samples,
        markouts={1: (2.0, 150.0), 10: (-3.0, 150.0), 60: (0.0, 0.0)},
        quote_uptime=0.875,
        max_abs_position=100.0,
    )
    for k, v in changes.items():
        setattr(rec, k, v)
    return rec


def empty_record() -> RunRecord:
    return RunRecord(strategy="idle", start_ns=T0, end_ns=T0, events=0, wall_seconds=0.0)


# ---- summary ----------------------------------------------------------------------------------
def test_summary_keys_exact_and_in_order() -> None:
    summary = summarize(make_record())
    assert list(summary) == EXPECTED_KEYS
    assert list(SUMMARY_KEYS) == EXPECTED_KEYS
    assert list(summarize(empty_record())) == EXPECTED_KEYS


def test_summary_types() -> None:
    summary = summarize(make_record())
    ints = {"events", "orders_submitted", "orders_rejected", "orders_canceled", "fills"}
    strs = {"strategy", "start", "end"}
    optional = {"sharpe", "markout_1s", "markout_10s", "markout_60s", "quote_uptime"}
    for k, v in summary.items():
        if k in ints:
            assert type(v) is int, k
        elif k in strs:
            assert type(v) is str, k
        elif k == "final_positions":
            assert type(v) is dict
            assert all(type(q) is float for q in v.values())
        elif k in optional:
            assert v is None or type(v) is float, k
        else:
            assert type(v) is float, k


def test_summary_values() -> None:
    summary = summarize(make_record())
    assert summary["strategy"] == "market_maker"
    assert summary["start"] == "2026-11-24T14:30:00Z"
    assert summary["end"] == "2026-11-24T14:36:40Z"
    assert summary["events"] == 12_345
    assert summary["orders_submitted"] == 5  # all but the locally rejected o5
    assert summary["orders_rejected"] == 2  # local and broker rejections
    assert summary["orders_canceled"] == 1
    assert summary["fills"] == 2
    assert summary["volume"] == 150.0
    assert summary["notional"] == pytest.approx(100 * 100.0 + 50 * 100.5)
    assert summary["fees"] == 1.0
    assert summary["realized_pnl"] == 25.0
    assert summary["net_pnl"] == 25.5
    assert summary["final_positions"] == {"SIM:AAPL": 50.0}
    assert summary["max_abs_position"] == 100.0
    assert summary["max_drawdown"] == 2.0  # peak 3.0 (t=70s) to 1.0 (t=130s)
    assert summary["quote_uptime"] == 0.875
    assert summary["wall_seconds"] == 2.5
    assert summary["events_per_second"] == pytest.approx(12_345 / 2.5)


def test_local_reject_detection() -> None:
    rec = make_record()
    flags = {o.client_order_id: is_local_reject(o) for o in rec.orders}
    assert flags == {"o1": False, "o2": False, "o3": False, "o4": False, "o5": True, "o6": False}


def test_markouts_mean_per_share_and_null_without_qty() -> None:
    summary = summarize(make_record())
    assert summary["markout_1s"] == pytest.approx(2.0 / 150.0, abs=1e-6)
    assert summary["markout_10s"] == pytest.approx(-3.0 / 150.0, abs=1e-6)
    assert summary["markout_60s"] is None  # no qty reached that horizon
    empty = summarize(empty_record())
    assert empty["markout_1s"] is empty["markout_10s"] is empty["markout_60s"] is None


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0, 10, 4, 12, 1], 11.0),
        ([], 0.0),
        ([1, 2, 3], 0.0),
        ([-5, -2], 5.0),  # the peak starts at 0
        ([5, 5, 5], 0.0),
    ],
)
def test_max_drawdown_known_curves(values: list[float], expected: float) -> None:
    curve = [(s(i), float(v)) for i, v in enumerate(values)]
    assert max_drawdown(curve) == pytest.approx(expected)
    summary = summarize(make_record(pnl_curve=curve))
    assert summary["max_drawdown"] == pytest.approx(expected)


def test_max_drawdown_from_record_when_given() -> None:
    assert summarize(make_record(max_drawdown=7.25))["max_drawdown"] == 7.25
    assert summarize(make_record(max_drawdown=math.nan))["max_drawdown"] == 2.0


def test_sharpe_undefined_is_none() -> None:
    # under two minutes
    assert sharpe_ratio([(s(10), 1.0)], T0, s(50)) is None
    # flat curve: zero spread
    assert sharpe_ratio([], T0, s(600)) is None
    assert summarize(empty_record())["sharpe"] is None
    # a constant PnL change every minute: zero spread too
    steady = [(s(60 * i + 30), float(i + 1)) for i in range(10)]
    assert sharpe_ratio(steady, T0, s(600)) is None


def test_sharpe_value() -> None:
    # minute-end levels 1, 3, 2, 5 -> changes 1, 2, -1, 3
    curve = [(s(30), 1.0), (s(90), 3.0), (s(150), 2.0), (s(210), 5.0)]
    changes = pd.Series([1.0, 2.0, -1.0, 3.0])
    expected = changes.mean() / changes.std(ddof=1) * math.sqrt(252 * 390)
    assert sharpe_ratio(curve, T0, T0 + 4 * NS_PER_MIN) == pytest.approx(expected)
    got = summarize(make_record(pnl_curve=curve, end_ns=T0 + 4 * NS_PER_MIN))["sharpe"]
    assert got == pytest.approx(expected, abs=1e-4)


def test_nan_becomes_none_and_json_is_strict() -> None:
    rec = make_record(
        quote_uptime=math.nan,
        markouts={1: (math.nan, 10.0), 10: (1.0, math.inf), 60: (1.0, 2.0)},
        net_pnl=math.nan,
        final_positions={"SIM:AAPL": math.nan},
    )
    summary = summarize(rec)
    assert summary["quote_uptime"] is None
    assert summary["markout_1s"] is None
    assert summary["markout_10s"] is None
    assert summary["markout_60s"] == 0.5
    assert summary["net_pnl"] == 0.0
    text = json.dumps(summary, allow_nan=False)  # raises on NaN or numpy types
    assert json.loads(text) == summary


def test_events_per_second_zero_wall() -> None:
    summary = summarize(make_record(wall_seconds=0.0))
    assert summary["events_per_second"] == 0.0


# ---- tables -----------------------------------------------------------------------------------
def test_orders_frame_columns_and_values() -> None:
    df = orders_frame(make_record().orders)
    assert list(df.columns) == list(ORDERS_COLUMNS)
    assert len(df) == 6
    row = df.set_index("client_order_id")
    assert row.loc["o1", "side"] == "buy"
    assert row.loc["o1", "type"] == "limit"
    assert row.loc["o1", "tif"] == "day"
    assert row.loc["o1", "status"] == "filled"
    assert row.loc["o1", "created_at"] == "2026-11-24T14:30:01Z"
    assert row.loc["o1", "accepted_at"] == "2026-11-24T14:30:01.500000Z"
    assert row.loc["o1", "done_at"] == "2026-11-24T14:30:03Z"
    assert row.loc["o3", "done_at"] == ""  # still open
    assert row.loc["o5", "accepted_at"] == ""
    assert row.loc["o5", "reject_reason"] == "tick_size"
    assert row.loc["o1", "reject_reason"] == ""
    assert math.isnan(row.loc["o6", "limit_price"])


def test_fills_frame_columns_and_values() -> None:
    df = fills_frame(make_record().fills)
    assert list(df.columns) == list(FILLS_COLUMNS)
    assert df["ts"].tolist() == ["2026-11-24T14:30:03Z", "2026-11-24T14:33:20Z"]
    assert df["side"].tolist() == ["buy", "sell"]
    assert df["liquidity"].tolist() == ["maker", "maker"]
    assert df["qty"].sum() == 150.0


def test_empty_frames_have_columns() -> None:
    assert list(orders_frame([]).columns) == list(ORDERS_COLUMNS)
    assert list(fills_frame([]).columns) == list(FILLS_COLUMNS)
    assert len(orders_frame([])) == 0


# ---- files ------------------------------------------------------------------------------------
def assert_self_contained(text: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert "http://" not in text
    assert "https://" not in text


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "nested" / "out"
    result = BacktestResult(make_record())
    assert result.write(out) == out
    return out


def test_write_creates_files(written: Path) -> None:
    pytest.importorskip("matplotlib")
    for name in ("summary.json", "orders.csv", "fills.csv", "report.html"):
        assert (written / name).is_file(), name
    for name in ("price_SIM_AAPL.png", "inventory.png", "pnl.png", "markout.png"):
        data = (written / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), name
    summary = json.loads((written / "summary.json").read_text())
    assert summary == summarize(make_record())
    assert list(summary) == EXPECTED_KEYS


def test_csv_headers_and_times(written: Path) -> None:
    orders_lines = (written / "orders.csv").read_text().splitlines()
    assert orders_lines[0] == (
        "client_order_id,venue,symbol,side,type,qty,limit_price,tif,extended_hours,status,"
        "filled_qty,avg_fill_price,created_at,accepted_at,done_at,reject_reason"
    )
    fills_lines = (written / "fills.csv").read_text().splitlines()
    assert fills_lines[0] == "ts,venue,symbol,side,qty,price,fee,liquidity,client_order_id,fill_id"
    assert fills_lines[1].startswith("2026-11-24T14:30:03Z,SIM,AAPL,buy,100.0,100.0,0.5,maker,")
    df = pd.read_csv(written / "orders.csv", keep_default_na=False, dtype=str)
    o3 = df[df["client_order_id"] == "o3"].iloc[0]
    assert o3["done_at"] == ""
    assert o3["created_at"] == "2026-11-24T14:30:01Z"
    o6 = df[df["client_order_id"] == "o6"].iloc[0]
    assert o6["limit_price"] == ""
    assert o6["avg_fill_price"] == ""
    for col in ("created_at", "accepted_at", "done_at"):
        for v in df[col]:
            assert v == "" or (v.endswith("Z") and "T" in v), (col, v)


def test_report_self_contained_with_images(written: Path) -> None:
    pytest.importorskip("matplotlib")
    text = (written / "report.html").read_text()
    assert_self_contained(text)
    imgs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(imgs) == 4
    assert all(base64.b64decode(b).startswith(b"\x89PNG") for b in imgs)
    for key in EXPECTED_KEYS:
        assert f">{key}<" in text
    assert "market_maker" in text


def test_empty_run_renders(tmp_path: Path) -> None:
    result = BacktestResult(empty_record())
    out = result.write(tmp_path / "empty")
    text = (out / "report.html").read_text()
    assert "no fills" in text
    assert_self_contained(text)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fills"] == 0
    assert summary["max_drawdown"] == 0.0
    assert summary["sharpe"] is None
    assert (out / "fills.csv").read_text().strip() == ",".join(FILLS_COLUMNS)
    assert (out / "orders.csv").read_text().strip() == ",".join(ORDERS_COLUMNS)
    assert not list(out.glob("price_*.png"))


def test_report_escapes_text(tmp_path: Path) -> None:
    rec = make_record(strategy="<script>alert(1)</script>", fills=[], samples={})
    path = write_report(rec, tmp_path / "r" / "report.html")
    text = path.read_text()
    assert "<script>" not in text
    assert "&lt;script&gt;" in text


def test_report_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes any import of it fail
    path = BacktestResult(make_record()).report(tmp_path / "report.html")
    text = path.read_text()
    assert "matplotlib is not installed" in text
    assert "data:image/png" not in text
    assert ">net_pnl<" in text


def test_report_downsamples_large_runs(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    n = 60_000
    samples: dict[str, list[Any]] = {
        "ts": [T0 + i * 10_000_000 for i in range(n)],
        "key": ["SIM:AAPL"] * n,
        "bid": [100.0] * n,
        "ask": [100.02] * n,
        "our_bid": [99.99] * n,
        "our_ask": [100.05] * n,
        "position": [float(i % 100) for i in range(n)],
    }
    curve = [(T0 + i * NS_PER_S, float(i % 13)) for i in range(n)]
    rec = make_record(samples=samples, pnl_curve=curve, end_ns=T0 + n * NS_PER_S)
    path = write_report(rec, tmp_path / "big.html", png_dir=tmp_path / "png")
    assert "data:image/png;base64," in path.read_text()
    assert (tmp_path / "png" / "pnl.png").is_file()


# ---- terminal and helpers ---------------------------------------------------------------------
def test_format_summary_aligned() -> None:
    summary = summarize(make_record())
    text = format_summary(summary)
    lines = text.splitlines()
    assert len(lines) == len(EXPECTED_KEYS)
    width = max(len(k) for k in EXPECTED_KEYS)
    for key, line in zip(EXPECTED_KEYS, lines, strict=True):
        assert line.startswith(key.ljust(width) + "  ")
    assert "SIM:AAPL 50" in text
    assert "market_maker" in text
    none_line = next(line for line in lines if line.startswith("markout_60s"))
    assert none_line.rstrip().endswith("-")


def test_result_caches_and_repr() -> None:
    result = BacktestResult(make_record())
    assert result.summary is result.summary
    assert result.orders is result.orders
    assert result.fills is result.fills
    assert list(result.orders.columns) == list(ORDERS_COLUMNS)
    r = repr(result)
    assert r.startswith("BacktestResult(") and "market_maker" in r
    assert len(r) < 200


def test_default_out_dir() -> None:
    d = default_out_dir()
    assert d.parent == Path("tradekit-out")
    assert re.fullmatch(r"\d{8}T\d{6}Z", d.name)
    assert default_out_dir("/tmp/x").parent == Path("/tmp/x")
