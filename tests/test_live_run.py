"""``tradekit run`` on paper + synthetic data: the example config played in wall-clock time
(sped up), stopped after ``duration``, with its orders logged, cancelled at the end and the
outputs written."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

import tradekit.live
from tradekit.cli import main as cli_main
from tradekit.enums import OrderStatus
from tradekit.testing import et

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pure_market_making.toml"
OPEN_NS = et(2026, 11, 24, 9, 30)


def test_run_paper_synthetic_sped_up(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tradekit.run")
    out = tmp_path / "out"
    t0 = time.monotonic()
    result = tradekit.live.run(str(EXAMPLE), duration=2, speed=3600, out=out)
    elapsed = time.monotonic() - t0
    assert elapsed < 10, elapsed  # 2 s of play, then stop, cancel and write

    # outputs
    for name in ("summary.json", "orders.csv", "fills.csv", "report.html"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary == json.loads(json.dumps(result.summary))
    assert summary["strategy"] == "pure_market_making"
    assert summary["start"].startswith("2026-11-24T14:30:00")  # the configured day's open
    # up to 2 s x 3600 of simulated time was played (less when the machine cannot keep up
    # with the pace, but not the whole day, and not nothing)
    rec = result.record
    played_s = (rec.end_ns - rec.start_ns) / 1e9
    assert 120 <= played_s <= 2.5 * 3600, played_s
    assert summary["events"] > 1000

    # orders were placed, and none is left open: what was resting was cancelled
    orders = rec.orders
    assert orders, "no orders in two simulated hours"
    assert summary["fills"] > 0
    still_open = [o for o in orders if not o.is_done]
    assert still_open == []
    done = {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
    assert {o.status for o in orders} <= done
    canceled = [o for o in orders if o.status is OrderStatus.CANCELED]
    assert canceled, "the quotes resting at the stop were not cancelled"
    # (whether quotes were resting at the very stop depends on how far a loaded machine got,
    # so the stop's own cancels are asserted through "nothing left open" above)
    assert set(result.orders["status"]) <= {s.value for s in done}

    # orders and fills were logged on "tradekit.run" as they happened
    msgs = [r.getMessage() for r in caplog.records if r.name == "tradekit.run"]
    order_lines = [m for m in msgs if " order " in m]
    assert order_lines
    ids = {o.client_order_id for o in orders}
    logged_ids = {w for m in order_lines for w in m.split() if w in ids}
    assert logged_ids == ids
    assert any(" fill " in m for m in msgs)
    assert any("canceled" in m for m in order_lines)
    assert any(str(out) in m for m in msgs)  # where the outputs went


def test_run_cli_duration_speed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli-out"
    t0 = time.monotonic()
    code = cli_main(["run", str(EXAMPLE), "--duration", "1", "--speed", "600", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert time.monotonic() - t0 < 10
    assert "net_pnl" in captured.out and str(out) in captured.out
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["events"] > 0
    assert summary["start"].startswith("2026-11-24T14:30:00")
    for name in ("orders.csv", "fills.csv", "report.html"):
        assert (out / name).is_file()


def test_run_bad_arguments_exit_2(tmp_path: Path) -> None:
    assert cli_main(["run", str(EXAMPLE), "--duration", "0", "--out", str(tmp_path)]) == 2
    assert cli_main(["run", str(EXAMPLE), "--speed", "-1", "--out", str(tmp_path)]) == 2
