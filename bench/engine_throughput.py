"""Backtest throughput of the full engine (replay feed, strategy callbacks, order manager,
rules, risk, simulated venue) on one stock's top-of-book quotes, against a bare Python loop doing
the same market-making bookkeeping in the same run.

    python bench/engine_throughput.py [--quotes 1000000] [--format parquet] [--repeat N]
                                      [--only raw|mm|mmj|bare]

Workloads (each in its own process, so peak memory is its own):
  raw   a strategy that subscribes and does nothing
  mm    per side keep one 100-share limit at the touch; when the touch moves cancel and place
        anew; when filled place anew (about one order action per quote)
  mmj   mm with the journal on (every command and event to SQLite, tradekit.journal): the
        journal's overhead is mmj's time over mm's
  bare  the mm bookkeeping as a plain Python loop over the quotes (no tradekit), the baseline
The data set is a seeded replay file (bench/make_replay.py: mid a random walk in one-cent steps,
spread 1-3 cents), made once under bench/data/.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def data_file(n: int, fmt: str) -> Path:
    path = HERE / "data" / f"quotes_{n}.{fmt}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                str(HERE / "make_replay.py"),
                str(path),
                "--quotes",
                str(n),
                "--seed",
                "1",
            ],
            check=True,
        )
    return path


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_engine(path: Path, workload: str) -> dict[str, float]:
    import logging

    import tradekit
    from tradekit import Order, OrderStatus, Quote, Side
    from tradekit.strategies import Strategy

    logging.disable(logging.WARNING)

    class Raw(Strategy):
        kind = "raw"

        def on_quote(self, quote: Quote) -> None:
            pass

    class TouchMaker(Strategy):
        kind = "touch_mm"

        def on_start(self) -> None:
            self.orders: dict[Side, Order | None] = {Side.BUY: None, Side.SELL: None}

        def on_quote(self, q: Quote) -> None:
            for side, px in ((Side.BUY, q.bid), (Side.SELL, q.ask)):
                o = self.orders[side]
                if o is not None and o.is_open:
                    if o.limit_price != px and o.status is not OrderStatus.PENDING_CANCEL:
                        self.cancel(o)
                    continue
                if o is None or o.is_done:
                    self.orders[side] = self.order(side, q.symbol, 100, px)

    strategy = Raw() if workload == "raw" else TouchMaker()
    cfg = {
        "venues": {
            "bench": {
                "broker": "paper",
                "feed": "replay",
                "rules": "default",
                "latency_ms": 0,
                "cash": 1e12,
                "shorting": True,
            }
        },
        "session": {"cancel_before_close_s": 0},
        "data": [str(path)],
    }
    journal = None
    if workload == "mmj":
        import tempfile

        journal = Path(tempfile.mkdtemp()) / "bench.journal"
    t0 = time.perf_counter()
    res = tradekit.backtest(cfg, strategies=strategy, journal=journal)
    wall = time.perf_counter() - t0
    s = res.summary
    # ``seconds``: the run itself (the engine's wall time); ``setup``: config, calendar tables,
    # file opening and the report-ready result around it
    return {
        "quotes": s["events"],
        "seconds": s["wall_seconds"],
        "setup": wall - s["wall_seconds"],
        "fills": s["fills"],
        "orders": s["orders_submitted"],
        "peak_mb": peak_mb(),
    }


def run_bare(path: Path) -> dict[str, float]:
    """The mm bookkeeping with no library: remember our two orders, re-place them when the
    touch moves, count a fill when the market trades through them."""
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    n = fills = orders = 0
    bid_o = ask_o = None
    for batch in pq.ParquetFile(path).iter_batches(batch_size=50_000):
        cols = batch.to_pydict()
        for ts, bid, ask in zip(cols["ts"], cols["bid"], cols["ask"], strict=True):
            n += 1
            if bid_o is not None and ask <= bid_o:
                fills += 1
                bid_o = None
            if ask_o is not None and bid >= ask_o:
                fills += 1
                ask_o = None
            if bid_o != bid:
                bid_o = bid
                orders += 1
            if ask_o != ask:
                ask_o = ask
                orders += 1
            del ts
    wall = time.perf_counter() - t0
    return {
        "quotes": n,
        "seconds": wall,
        "setup": 0.0,
        "fills": fills,
        "orders": orders,
        "peak_mb": peak_mb(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quotes", type=int, default=1_000_000)
    ap.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    ap.add_argument("--only", choices=("raw", "mm", "mmj", "bare"))
    ap.add_argument(
        "--repeat", type=int, default=1, help="run each workload N times, keep the fastest"
    )
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    path = data_file(a.quotes, a.format)
    if a.only:
        out = run_bare(path) if a.only == "bare" else run_engine(path, a.only)
        print(json.dumps(out))
        return
    results: dict[str, dict[str, float]] = {}
    for _ in range(max(1, a.repeat)):  # interleaved, so a busy moment hits every workload
        for w in ("bare", "raw", "mm", "mmj"):
            cp = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--quotes",
                    str(a.quotes),
                    "--format",
                    a.format,
                    "--only",
                    w,
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            r = json.loads(cp.stdout.strip().splitlines()[-1])
            if w not in results or r["seconds"] < results[w]["seconds"]:
                results[w] = r
    bare = results["bare"]["quotes"] / results["bare"]["seconds"]
    print(f"data: {path.name} ({a.quotes:,} quotes)")
    print(
        f"{'workload':<8} {'quotes/s':>12} {'vs bare':>8} {'fills':>9} {'orders':>9} "
        f"{'peak MB':>8} {'setup s':>8}"
    )
    for w, r in results.items():
        qps = r["quotes"] / r["seconds"]
        print(
            f"{w:<8} {qps:>12,.0f} {qps / bare:>8.3f} {r['fills']:>9,} {r['orders']:>9,} "
            f"{r['peak_mb']:>8.0f} {r['setup']:>8.2f}"
        )
    mm, mmj = results["mm"], results["mmj"]
    print(f"journal overhead (mmj time / mm time - 1): {mmj['seconds'] / mm['seconds'] - 1:+.1%}")


if __name__ == "__main__":
    main()
