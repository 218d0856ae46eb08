"""The journal's cost on backtests: the same backtest with and without ``journal=`` (every
command and broker event written to SQLite, ``tradekit.journal``), interleaved, fastest of N
each, in fresh processes.

    python bench/journal_overhead.py [--repeat 3] [--config examples/pure_market_making.toml]

The README's main job (the market maker's simulated day) by default. The order-per-quote
worst case is the ``mm``/``mmj`` pair of ``bench/engine_throughput.py``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def one(config: str, journal: bool) -> dict[str, float]:
    import logging

    import tradekit

    logging.disable(logging.WARNING)
    path = Path(tempfile.mkdtemp()) / "bench.journal" if journal else None
    s = tradekit.backtest(config, journal=path).summary
    rows = 0
    if path is not None:
        from tradekit.journal import Journal

        with Journal(path) as j:
            rows = sum(1 for _ in j.rows())
    return {"seconds": s["wall_seconds"], "events": s["events"], "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(HERE.parent / "examples" / "pure_market_making.toml"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", choices=("off", "on"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.only:
        print(json.dumps(one(a.config, a.only == "on")))
        return
    best: dict[str, dict[str, float]] = {}
    for _ in range(max(1, a.repeat)):
        for mode in ("off", "on"):
            cp = subprocess.run(
                [sys.executable, __file__, "--config", a.config, "--only", mode],
                check=True,
                capture_output=True,
                text=True,
            )
            r = json.loads(cp.stdout.strip().splitlines()[-1])
            if mode not in best or r["seconds"] < best[mode]["seconds"]:
                best[mode] = r
    off, on = best["off"], best["on"]
    print(f"config: {a.config} ({off['events']:,} market events), fastest of {a.repeat}")
    print(f"journal off: {off['seconds']:.3f} s")
    print(f"journal on:  {on['seconds']:.3f} s ({on['rows']:,} journal rows)")
    print(f"overhead: {on['seconds'] / off['seconds'] - 1:+.1%}")


if __name__ == "__main__":
    main()
