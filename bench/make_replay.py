"""Write a seeded quotes file for replay benchmarks, in the data-file contract format.

    python bench/make_replay.py OUT.(csv|csv.gz|parquet|pq) [--quotes N] [--seed S]
        [--symbol AAPL[,MSFT...]] [--date 2026-11-24] [--venue NAME] [--start-price 190]

Columns ``ts, symbol, bid, bid_size, ask, ask_size`` (+ ``venue`` with ``--venue``); ``ts`` is
integer nanoseconds since the epoch. Each symbol's bid is a random walk in one-cent steps, the
spread 1-3 cents, sizes 100-1000 shares in lots of 100; timestamps are non-decreasing and spread
over the regular session of ``--date`` (denser near the open and the close). Everything is
generated vectorized in chunks and streamed to the file, so memory stays flat: 10,000,000 rows
take a few seconds as Parquet.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Iterator
from datetime import date as Date
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tradekit.calendar import get_calendar

#: Rows generated and written per chunk.
CHUNK = 1_000_000
#: Rows per Parquet row group (a reader decodes a whole row group at a time: keep it modest).
ROW_GROUP = 250_000
#: Depth of the U-shaped intensity (0: uniform in time; must stay below 1 for monotone times).
_U_SHAPE = 0.6


class UsageError(ValueError):
    """A bad argument (the script exits with code 2)."""


def _format_of(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".parquet") or name.endswith(".pq"):
        return "parquet"
    if name.endswith(".csv") or name.endswith(".csv.gz"):
        return "csv"
    raise UsageError(f"{path}: unknown file type (allowed: .csv, .csv.gz, .parquet, .pq)")


def _schema(with_venue: bool) -> pa.Schema:
    fields = [
        pa.field("ts", pa.int64()),
        pa.field("symbol", pa.string()),
        pa.field("bid", pa.float64()),
        pa.field("bid_size", pa.int64()),
        pa.field("ask", pa.float64()),
        pa.field("ask_size", pa.int64()),
    ]
    if with_venue:
        fields.append(pa.field("venue", pa.string()))
    return pa.schema(fields)


def generate(
    n: int,
    *,
    seed: int,
    symbols: list[str],
    open_ns: int,
    close_ns: int,
    start_price: float = 190.0,
    venue: str | None = None,
    chunk: int = CHUNK,
) -> list[pa.RecordBatch]:
    """All batches at once (for tests and small files); see :func:`iter_batches`."""
    return list(
        iter_batches(
            n,
            seed=seed,
            symbols=symbols,
            open_ns=open_ns,
            close_ns=close_ns,
            start_price=start_price,
            venue=venue,
            chunk=chunk,
        )
    )


def iter_batches(
    n: int,
    *,
    seed: int,
    symbols: list[str],
    open_ns: int,
    close_ns: int,
    start_price: float = 190.0,
    venue: str | None = None,
    chunk: int = CHUNK,
) -> Iterator[pa.RecordBatch]:
    """Yield record batches of at most ``chunk`` quotes; ``n`` quotes in all, non-decreasing ts."""
    rng = np.random.default_rng(seed)
    schema = _schema(venue is not None)
    span = close_ns - open_ns
    n_sym = len(symbols)
    sym_arr = pa.array(symbols, pa.string())
    start_c = max(1, round(start_price * 100))
    # each symbol's bid (cents) starts near start_price, spread apart a little
    last_bid = np.array([start_c + 100 * k for k in range(n_sym)], dtype=np.int64)
    for lo in range(0, n, chunk):
        m = min(chunk, n - lo)
        # time: one event per bin of an evenly spaced grid, jittered inside its bin, then warped
        # by a monotone map so the intensity is U-shaped over the day (ordering is preserved)
        x = (np.arange(lo, lo + m, dtype=np.float64) + rng.random(m)) / n
        w = x - _U_SHAPE * np.sin(2 * math.pi * x) / (2 * math.pi)
        ts = open_ns + np.minimum((w * span).astype(np.int64), span - 1)
        ts = np.maximum.accumulate(ts)  # float rounding must never break the order
        sym_idx = rng.integers(0, n_sym, m) if n_sym > 1 else np.zeros(m, dtype=np.int64)
        steps = rng.choice(np.array([-1, 0, 1], dtype=np.int64), size=m, p=[0.25, 0.5, 0.25])
        bid_c = np.empty(m, dtype=np.int64)
        for k in range(n_sym):
            sel = np.flatnonzero(sym_idx == k)
            walk = last_bid[k] + np.cumsum(steps[sel])
            # reflect at one cent so prices stay positive
            walk = np.where(walk < 1, 2 - walk, walk)
            bid_c[sel] = walk
            if sel.size:
                last_bid[k] = walk[-1]
        ask_c = bid_c + rng.integers(1, 4, m)
        cols: list[pa.Array] = [
            pa.array(ts, pa.int64()),
            sym_arr.take(pa.array(sym_idx)),
            pa.array(bid_c / 100.0),
            pa.array(rng.integers(1, 11, m) * 100),
            pa.array(ask_c / 100.0),
            pa.array(rng.integers(1, 11, m) * 100),
        ]
        if venue is not None:
            cols.append(pa.array(np.full(m, venue, dtype=object), pa.string()))
        yield pa.RecordBatch.from_arrays(cols, schema=schema)


def write(
    out: Path,
    n: int,
    *,
    seed: int,
    symbols: list[str],
    date: str,
    start_price: float = 190.0,
    venue: str | None = None,
    chunk: int = CHUNK,
) -> None:
    """Write ``n`` quotes of the regular session of ``date`` to ``out`` (CSV or Parquet)."""
    fmt = _format_of(out)
    cal = get_calendar("NYSE")
    day = cal.day(date)
    if day.open_ns is None or day.close_ns is None:
        d = Date.fromisoformat(date)
        nxt = cal.trading_days(d, d + timedelta(days=14))[0]
        raise UsageError(f"the market is closed on {date}; the next trading day is {nxt}")
    batches = iter_batches(
        n,
        seed=seed,
        symbols=symbols,
        open_ns=day.open_ns,
        close_ns=day.close_ns,
        start_price=start_price,
        venue=venue,
        chunk=chunk,
    )
    schema = _schema(venue is not None)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        with pq.ParquetWriter(out, schema, compression="zstd") as pw:
            for b in batches:
                pw.write_batch(b, row_group_size=min(chunk, ROW_GROUP))
        return
    sink: pa.NativeFile = (
        pa.CompressedOutputStream(str(out), "gzip")
        if out.name.lower().endswith(".gz")
        else pa.OSFile(str(out), "wb")
    )
    with sink, pacsv.CSVWriter(sink, schema, write_options=_csv_options()) as cw:
        for b in batches:
            cw.write_batch(b)


def _csv_options() -> pacsv.WriteOptions:
    try:
        # plain CSV: symbols and venues never need quoting
        return pacsv.WriteOptions(quoting_style="none", quoting_header="none")
    except TypeError:  # older pyarrow: everything textual quoted, still valid CSV
        return pacsv.WriteOptions()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("out", type=Path, help="output file: .csv, .csv.gz, .parquet or .pq")
    ap.add_argument("--quotes", type=int, default=1_000_000, help="number of quotes (1000000)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (1)")
    ap.add_argument("--symbol", default="AAPL", help="symbol, or comma-separated symbols (AAPL)")
    ap.add_argument("--date", default="2026-11-24", help="trading day (2026-11-24)")
    ap.add_argument("--venue", default=None, help="add a venue column with this value")
    ap.add_argument("--start-price", type=float, default=190.0, help="first bid (190.0)")
    ap.add_argument("--chunk", type=int, default=CHUNK, help=f"rows per chunk ({CHUNK})")
    args = ap.parse_args(argv)
    symbols = [s.strip() for s in args.symbol.split(",") if s.strip()]
    if not symbols:
        ap.error("--symbol: give at least one symbol")
    if args.quotes < 0 or args.chunk <= 0 or not args.start_price > 0:
        ap.error("--quotes must be >= 0, --chunk > 0 and --start-price > 0")
    t0 = time.perf_counter()
    try:
        write(
            args.out,
            args.quotes,
            seed=args.seed,
            symbols=symbols,
            date=args.date,
            start_price=args.start_price,
            venue=args.venue,
            chunk=args.chunk,
        )
    except ValueError as e:  # UsageError, bad dates
        print(f"make_replay: {e}", file=sys.stderr)
        return 2
    dt = time.perf_counter() - t0
    size = args.out.stat().st_size
    print(
        f"wrote {args.quotes:,} quotes to {args.out} ({size / 1e6:.1f} MB) in {dt:.2f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
