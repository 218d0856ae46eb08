"""``tradekit run`` stopping cleanly: SIGTERM / SIGINT, the kill switch's flag file (with
flatten), the daily loss limit; and a run restarted from its journal writing outputs over the
whole history."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import tradekit.live
from tradekit.journal import Journal

CONFIG = """
[venues.paper]
broker = "paper"
feed = "synthetic"
rules = "alpaca"
latency_ms = 20
cash = 1000000
positions = {{ AAPL = 100 }}

[market]
date = "2026-11-24"
seed = 3
[market.symbols.AAPL]
start_price = 190.0
quote_rate = 8.0
trade_rate = 20.0

[session]
shutdown_timeout_s = 3
{session}

[risk]
max_position = 2000
{risk}

[strategy]
kind = "pure_market_making"
venue = "paper"
symbol = "AAPL"
bid_spread = 0.0002
ask_spread = 0.0002
order_amount = 50
"""


def write_config(tmp: Path, session: str = "", risk: str = "") -> Path:
    p = tmp / "bot.toml"
    p.write_text(CONFIG.format(session=session, risk=risk))
    return p


def stop_rows(journal: Path) -> list[dict[str, object]]:
    return [
        body
        for _, _, _, kind, _, body in Journal(journal).rows()
        if kind == "run" and body["event"] == "stop"
    ]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_cancels_waits_writes_and_exits_0(tmp_path: Path, sig: signal.Signals) -> None:
    cfg = write_config(tmp_path)
    out, journal = tmp_path / "out", tmp_path / "bot.journal"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradekit", "run", str(cfg), "--speed", "300",
         "--out", str(out), "--journal", str(journal)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    # wait until it trades (the journal has fills), then signal it
    while time.monotonic() < deadline:
        time.sleep(0.3)
        if journal.exists() and any(r[3] == "fill" for r in Journal(journal).rows()):
            break
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-2000:]
    assert "net_pnl" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fills"] > 0
    state = Journal(journal).load()
    assert [o for v in state.venues.values() for o in v.orders.values() if o.is_open] == []
    (stop,) = stop_rows(journal)
    assert sig.name in str(stop["reason"])


def test_kill_file_stops_and_flattens(tmp_path: Path) -> None:
    flag = tmp_path / "KILL"
    cfg = write_config(tmp_path, session=f'flatten_on_kill = true\nkill_file = "{flag}"')
    out, journal = tmp_path / "out", tmp_path / "j"
    threading.Timer(1.5, flag.touch).start()
    t0 = time.monotonic()
    result = tradekit.live.run(str(cfg), speed=300, out=out, journal=journal, duration=60)
    assert time.monotonic() - t0 < 30  # stopped by the flag, not by the duration
    assert result.summary["final_positions"] == {"paper:AAPL": 0.0}  # the 100 held, flattened
    assert all(o.is_done for o in result.record.orders)
    (stop,) = stop_rows(journal)
    assert "kill switch" in str(stop["reason"])


def test_daily_loss_limit_trips_the_kill_switch(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, risk="max_daily_loss = 0.01")
    journal = tmp_path / "j"
    result = tradekit.live.run(
        str(cfg), speed=300, out=tmp_path / "o", journal=journal, duration=60
    )
    (stop,) = stop_rows(journal)
    assert "kill switch" in str(stop["reason"]) and "loss" in str(stop["reason"])
    assert all(o.is_done for o in result.record.orders)


def test_restarted_run_outputs_cover_the_whole_history(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    journal = tmp_path / "j"
    first = tradekit.live.run(
        str(cfg), speed=300, out=tmp_path / "a", journal=journal, duration=1.5
    )
    second = tradekit.live.run(
        str(cfg), speed=300, out=tmp_path / "b", journal=journal, duration=1.5
    )
    assert first.summary["fills"] > 0
    s2 = second.summary
    assert s2["start"] == first.summary["start"]
    assert s2["end"] > first.summary["end"]  # the second run went on where the first stopped
    assert s2["fills"] > first.summary["fills"]
    assert s2["orders_submitted"] > first.summary["orders_submitted"]
    ids = set(second.orders["client_order_id"])
    assert set(first.orders["client_order_id"]) <= ids and len(ids) == len(second.orders)
    # positions: the starting 100 plus every fill of both runs
    fills = second.fills
    signed = fills["qty"].where(fills["side"] == "buy", -fills["qty"]).sum()
    assert s2["final_positions"]["paper:AAPL"] == pytest.approx(100 + signed)
    assert json.loads((tmp_path / "b" / "reconciliations.json").read_text())[-1]["clean"]


def test_journal_default_lives_beside_the_outputs(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    tradekit.live.run(str(cfg), speed=300, out=tmp_path / "o", duration=0.5)
    assert (tmp_path / "o" / "journal.sqlite").is_file()
    assert os.path.getsize(tmp_path / "o" / "journal.sqlite") > 0
