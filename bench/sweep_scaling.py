"""Scaling of ``tradekit sweep`` on the local executor: the same 64-run sweep (4 bid spreads x 4
order sizes x 4 trading days of the example market maker, a window of each day) with 1 worker,
then with 2, in one run; prints the speed-up and the scheduling overhead per run.

    python bench/sweep_scaling.py [--window 09:30-10:00] [--workers 1,2]

Overhead per run is measured two ways:
  idle   (execute wall x workers - sum of the runs' own wall time) / runs: what the pool,
         pickling, the result records and the progress bar cost a run of the real sweep
  no-op  execute wall x workers / runs of the same 64 runs with a one-second window (each run is
         then little more than building its config and engine)
Both sweeps' tables must be identical (timing columns aside). The target on 2 cores: a speed-up
of at least 1.8x.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parent / "examples" / "pure_market_making.toml"
GRID = {
    "grid": {
        "bid_spread": [0.00005, 0.0001, 0.0002, 0.0004],
        "order_amount": [25, 50, 100, 200],
    },
    "report": {"x": "bid_spread", "y": "order_amount"},
}
DAYS = "2026-11-02:2026-11-05"  # Monday to Thursday: four sessions


def sweep_once(workers: int, window: str, out: Path) -> tuple[dict[str, float], Any]:
    from tradekit.sweep import run_sweep

    t0 = time.perf_counter()
    res = run_sweep(
        CONFIG,
        GRID,
        days=DAYS,
        window=window,
        executor="local",
        workers=workers,
        out=out,
        progress=False,
    )
    total = time.perf_counter() - t0
    assert res.ok, res.runs[res.runs["status"] != "ok"][["run_id", "error"]]
    n = len(res.runs)
    busy = float(res.runs["run_seconds"].sum())
    execute = res.timings["execute"]
    stats = {
        "runs": n,
        "total": total,
        "execute": execute,
        "busy": busy,
        "idle_per_run": (execute * workers - busy) / n,
        "wall_per_run": execute * workers / n,
    }
    return stats, res.runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--window", default="09:30-10:00", help="each run's part of the day (ET)")
    ap.add_argument("--workers", default="1,2", help="worker counts to compare (first = base)")
    args = ap.parse_args()
    counts = [int(x) for x in args.workers.split(",")]
    logging.basicConfig(level=logging.WARNING)

    from tradekit.sweep import TIMING_COLUMNS, cpu_count

    load = os.getloadavg()[0]
    print(f"cpus available: {cpu_count()} (os.cpu_count {os.cpu_count()}), load average {load:.2f}")
    if load > 0.5:
        print("WARNING: the machine is busy; the speed-up measured now understates the sweep's")
    print(f"sweep: {CONFIG.name}, 4x4 grid x 4 days ({DAYS}), window {args.window} ET")
    rows: dict[int, dict[str, float]] = {}
    frames: dict[int, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tk-sweep-bench-") as tmp:
        for w in counts:
            rows[w], frames[w] = sweep_once(w, args.window, Path(tmp) / f"real-{w}")
            r = rows[w]
            print(
                f"  {w} worker(s): {r['runs']} runs, execute {r['execute']:.2f} s, "
                f"total {r['total']:.2f} s (incl. plan, tables, report), "
                f"sum of run times {r['busy']:.2f} s, idle per run {r['idle_per_run'] * 1e3:.1f} ms"
            )
        base = rows[counts[0]]
        for w in counts[1:]:
            a = frames[counts[0]].drop(columns=list(TIMING_COLUMNS))
            b = frames[w].drop(columns=list(TIMING_COLUMNS))
            same = a.equals(b)
            print(
                f"speed-up {counts[0]} -> {w} workers: "
                f"execute {base['execute'] / rows[w]['execute']:.2f}x, "
                f"total {base['total'] / rows[w]['total']:.2f}x; identical tables: {same}"
            )
            slower = rows[w]["busy"] / base["busy"] - 1
            print(
                f"  each run took {slower:+.0%} longer with {w} workers (cores shared with the "
                "other workers, the driver and any other process)"
            )
            if not same:
                print("ERROR: the tables differ", file=sys.stderr)
                return 1
        print("no-op runs (one-second window):")
        for w in counts:
            r, _ = sweep_once(w, "09:30:00-09:30:01", Path(tmp) / f"noop-{w}")
            print(
                f"  {w} worker(s): execute {r['execute']:.2f} s for {r['runs']} runs: "
                f"{r['wall_per_run'] * 1e3:.1f} ms per run per worker "
                f"(of which inside the run {r['busy'] / r['runs'] * 1e3:.1f} ms)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
