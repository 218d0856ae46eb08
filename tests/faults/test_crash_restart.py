"""Crash-restart campaign: a paper bot (``tradekit run --journal``) is killed with SIGKILL at
random moments, many times, and restarted from its journal each time.

After every crash and restart the journal must show:
- no client order id submitted twice and no fill counted twice (no duplicate at the broker),
- at each restart, the reconciled positions equal the starting inventory plus every fill
  journaled before it, and every order open at the crash was either found at the venue
  (matched) or marked lost: none is left unknown,
- every order's filled quantity equals the sum of its fills.
A last clean run then stops normally and its outputs cover the journal's whole history.

The processes are forked from a server that has imported tradekit once (``forkserver``), so a
cycle costs the run, not the interpreter's start; ``Process.kill`` is a real SIGKILL.

``python tests/faults/test_crash_restart.py CYCLES`` runs a longer campaign and prints figures.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from tradekit.enums import OrderStatus, Side
from tradekit.journal import Journal

CONFIG = """
[venues.paper]
broker = "paper"
feed = "synthetic"
rules = "alpaca"
latency_ms = 30
cash = 1000000
positions = { AAPL = 100, MSFT = -50 }

[market]
date = "2026-11-24"
seed = 7
[market.symbols.AAPL]
start_price = 190.0
quote_rate = 8.0
trade_rate = 20.0

[session]
shutdown_timeout_s = 2

[risk]
max_position = 2000
max_order_qty = 500

[strategy]
kind = "pure_market_making"
venue = "paper"
symbol = "AAPL"
bid_spread = 0.0002
ask_spread = 0.0002
order_amount = 50
order_levels = 3
order_refresh_time = 2
"""

_EPS = 1e-6


def _child(argv: list[str], log_path: str) -> None:
    import logging
    import os

    from tradekit.cli import main

    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    logging.basicConfig(level=logging.WARNING, force=True)
    sys.exit(main(argv))


def _context() -> Any:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(
        ["tradekit.cli", "tradekit.live", "tradekit.backtesting", "tradekit.feeds", "pandas"]
    )
    return ctx


def check_journal(path: Path) -> dict[str, int]:
    """Assert the campaign's invariants over the whole journal; return counts."""
    j = Journal(path)
    try:
        meta = j.meta()
        rows = list(j.rows())
        state = j.load()
    finally:
        j.close()
    initial = {k: float(v) for k, v in (meta.get("initial_positions") or {}).items()}
    submitted: set[str] = set()
    fill_ids: set[str] = set()
    pos: dict[str, float] = defaultdict(float, initial)
    status: dict[str, OrderStatus] = {}
    fills_of: dict[str, float] = defaultdict(float)
    qty_of: dict[str, float] = {}
    restarts = 0
    for _seq, _ts, venue, kind, cid, body in rows:
        if kind == "submit":
            assert cid not in submitted, f"client order id {cid} submitted twice"
            submitted.add(cid)
            status[cid] = OrderStatus(body[0])
            qty_of[cid] = body[1]
        elif kind == "order":
            status[cid] = OrderStatus(body[0])
            qty_of[cid] = body[1]
        elif kind == "fill":
            fid = body[0]
            assert fid not in fill_ids, f"fill {fid} journaled twice"
            fill_ids.add(fid)
            signed = body[3] if Side(body[2]) is Side.BUY else -body[3]
            pos[f"{venue}:{body[1]}"] += signed
            fills_of[cid] += body[3]
        elif kind == "recon" and body["reason"] == "restart":
            restarts += 1
            mine = {f"{venue}:{s}": q for s, q in body["positions"].items()}
            for key in set(mine) | {k for k, v in pos.items() if abs(v) > _EPS}:
                assert abs(mine.get(key, 0.0) - pos[key]) < _EPS, (
                    f"restart {restarts}: position {key} {mine.get(key, 0.0)} != "
                    f"initial + fills {pos[key]}"
                )
            known = set(body["matched"]) | set(body["lost"])
            for c, st in status.items():
                filled_out = fills_of[c] >= qty_of[c] - _EPS
                if st.is_open and not filled_out:
                    assert c in known, f"restart {restarts}: open order {c} left unknown"
            for c in body["lost"]:
                status[c] = OrderStatus.LOST
    for vs in state.venues.values():
        for o in vs.orders.values():
            assert abs(o.filled_qty - sum(f.qty for f in o.fills)) < _EPS, o
    return {
        "rows": len(rows),
        "orders": len(submitted),
        "fills": len(fill_ids),
        "restarts": restarts,
        "open": sum(1 for v in state.venues.values() for o in v.orders.values() if o.is_open),
        "lost": sum(1 for st in status.values() if st is OrderStatus.LOST),
    }


def campaign(tmp: Path, cycles: int, seed: int = 1) -> dict[str, Any]:
    cfg = tmp / "bot.toml"
    cfg.write_text(CONFIG)
    journal = tmp / "bot.journal"
    out = tmp / "out"
    log_path = tmp / "bot.log"
    argv = [
        "run", str(cfg), "--speed", "400", "--journal", str(journal), "--out", str(out)
    ]  # fmt: skip
    ctx = _context()
    rng = random.Random(seed)
    kills = 0
    t0 = time.perf_counter()
    for _ in range(cycles):
        p = ctx.Process(target=_child, args=(argv, str(log_path)))
        p.start()
        p.join(rng.uniform(0.1, 1.6))
        if p.is_alive():
            p.kill()
            kills += 1
        p.join()
        if journal.exists():
            check_journal(journal)
    # a last, clean run: it stops by itself and writes outputs over the whole history
    p = ctx.Process(target=_child, args=([*argv, "--duration", "1.5"], str(log_path)))
    p.start()
    p.join(120)
    assert p.exitcode == 0, log_path.read_text()[-3000:]
    figures = check_journal(journal)
    figures.update(kills=kills, cycles=cycles, seconds=round(time.perf_counter() - t0, 1))
    assert figures["open"] == 0, "a clean stop leaves no order open"
    summary = json.loads((out / "summary.json").read_text())
    j = Journal(journal)
    try:
        state = j.load()
        initial = {k: float(v) for k, v in j.meta()["initial_positions"].items()}
    finally:
        j.close()
    expect = defaultdict(float, initial)
    for f in state.fills:
        expect[f"{f.venue}:{f.symbol}"] += f.signed_qty
    for key, qty in summary["final_positions"].items():
        assert abs(qty - expect[key]) < _EPS, (key, qty, expect[key])
    assert summary["fills"] == figures["fills"]
    orders_csv = (out / "orders.csv").read_text().splitlines()
    assert len(orders_csv) - 1 == figures["orders"]
    return figures


def test_sigkill_campaign(tmp_path: Path) -> None:
    figures = campaign(tmp_path, cycles=55)
    # the kills landed: most cycles were killed, and the bot traded across them
    assert figures["kills"] >= 50
    assert figures["restarts"] >= 25  # (the other kills landed while the bot was starting)
    assert figures["fills"] > 0 and figures["orders"] > 100


if __name__ == "__main__":
    import tempfile

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    with tempfile.TemporaryDirectory() as d:
        print(campaign(Path(d), cycles=n))
