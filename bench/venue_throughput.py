"""Quotes per second through the simulated venue (``PaperBroker.on_quote``) with two resting
orders, against a bare Python loop over the same quotes in the same run.

    python bench/venue_throughput.py [--quotes 1000000] [--seed 1]

The two orders (GTC) rest fifty dollars away from the market so they stay open: the figure is
the per-quote cost of the venue's matching bookkeeping (queue positions, crosses, marks).
"""

from __future__ import annotations

import argparse
import random
import time

from tradekit import Quote, Side
from tradekit.brokers.paper import PaperBroker
from tradekit.timeutil import to_ns


def make_quotes(n: int, seed: int) -> list[Quote]:
    rng = random.Random(seed)
    t = to_ns("2026-11-24T09:30:00-05:00")
    bid = 19000
    out = []
    for _ in range(n):
        t += rng.randrange(1, 40_000_000)
        bid += rng.choice((-1, 0, 0, 1))
        ask = bid + rng.randrange(1, 4)
        out.append(
            Quote(
                t,
                "AAPL",
                bid / 100,
                rng.randrange(1, 11) * 100,
                ask / 100,
                rng.randrange(1, 11) * 100,
                "paper",
            )
        )
    return out


def bare_loop(quotes: list[Quote]) -> float:
    """The least a venue must do per quote: remember it and compare it with two prices."""
    book: dict[str, Quote] = {}
    lo, hi = 100.0, 300.0
    crossed = 0
    t0 = time.perf_counter()
    for q in quotes:
        book[q.symbol] = q
        if q.ask <= lo or q.bid >= hi:
            crossed += 1
    return time.perf_counter() - t0


def venue_loop(quotes: list[Quote]) -> tuple[float, PaperBroker]:
    paper = PaperBroker(id_prefix="bench")
    paper.on_quote(quotes[0])
    mid = quotes[0].bid
    paper.submit_order("AAPL", Side.BUY, 100, limit_price=round(mid - 50.0, 2), tif="gtc")
    paper.submit_order("AAPL", Side.SELL, 100, limit_price=round(mid + 50.0, 2), tif="gtc")
    paper.process()
    on_quote = paper.on_quote
    t0 = time.perf_counter()
    for q in quotes:
        on_quote(q)
    return time.perf_counter() - t0, paper


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quotes", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    quotes = make_quotes(a.quotes, a.seed)
    base = bare_loop(quotes)
    venue, paper = venue_loop(quotes)
    n = len(quotes)
    print(f"quotes:               {n:,}")
    print(f"bare loop:            {n / base:,.0f} quotes/s")
    print(
        f"simulated venue:      {n / venue:,.0f} quotes/s  (2 resting orders, "
        f"{len(paper.open_orders())} still open at the end)"
    )
    print(f"venue / bare ratio:   {base / venue:.3f}  (the venue's share of the bare loop's speed)")


if __name__ == "__main__":
    main()
