"""Results of a run: the record the engine hands over, the metrics of ``summary.json``, the
``orders.csv``/``fills.csv`` tables and ``BacktestResult`` (CONTRACT sections 7 and 8).

Nothing here talks to a broker: everything is computed from a ``RunRecord``. matplotlib is only
needed for ``BacktestResult.write``/``.report`` (see ``tradekit.report``), and even there a
missing matplotlib gives a report without plots rather than an error.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .enums import OrderStatus, RejectReason
from .model import Fill, Order
from .timeutil import NS_PER_MIN, iso

__all__ = [
    "FILLS_COLUMNS",
    "MARKOUT_HORIZONS",
    "ORDERS_COLUMNS",
    "SUMMARY_KEYS",
    "BacktestResult",
    "RunRecord",
    "default_out_dir",
    "fills_frame",
    "format_summary",
    "is_local_reject",
    "max_drawdown",
    "orders_frame",
    "sharpe_ratio",
    "summarize",
]

#: The keys of ``summary.json``, in order (CONTRACT section 7).
SUMMARY_KEYS: tuple[str, ...] = (
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
)

#: The columns of ``orders.csv``, in order (CONTRACT section 7).
ORDERS_COLUMNS: tuple[str, ...] = (
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
)

#: The columns of ``fills.csv``, in order (CONTRACT section 7).
FILLS_COLUMNS: tuple[str, ...] = (
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
)

#: Mark-out horizons in seconds reported in the summary.
MARKOUT_HORIZONS: tuple[int, ...] = (1, 10, 60)

#: Annualization of 1-minute returns: 252 trading days of 390 regular-session minutes.
_MINUTES_PER_YEAR = 252 * 390

_MONEY_DIGITS = 6
_QTY_DIGITS = 6
_RATIO_DIGITS = 6


@dataclass(slots=True)
class RunRecord:
    """Everything the engine hands over at the end of a run (backtest or live).

    Positions, last mids and mark-outs are keyed ``"VENUE:SYMBOL"``. ``samples`` holds columns
    of equal length: ``ts`` (ns), ``key``, ``bid``, ``ask``, ``our_bid``, ``our_ask`` (NaN when we
    have no quote on that side) and ``position``. ``markouts`` maps a horizon in seconds to
    ``(sum of qty * signed markout, sum of qty)`` where the signed mark-out of a buy is
    ``mid_later - price`` and of a sell ``price - mid_later``. ``max_drawdown`` left ``None`` is
    computed from ``pnl_curve``.
    """

    strategy: str
    start_ns: int
    end_ns: int
    events: int
    wall_seconds: float
    orders: list[Order] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    initial_positions: dict[str, float] = field(default_factory=dict)
    final_positions: dict[str, float] = field(default_factory=dict)
    last_mid: dict[str, float] = field(default_factory=dict)
    realized_pnl: float = 0.0
    fees: float = 0.0
    net_pnl: float = 0.0
    pnl_curve: list[tuple[int, float]] = field(default_factory=list)
    samples: dict[str, list[Any]] = field(default_factory=dict)
    markouts: dict[int, tuple[float, float]] = field(default_factory=dict)
    quote_uptime: float | None = None
    max_abs_position: float = 0.0
    max_drawdown: float | None = None


# ---- small helpers --------------------------------------------------------------------------
def _num(value: Any, digits: int) -> float | None:
    """A finite number as a plain rounded ``float`` (no ``-0.0``); NaN, inf and None -> None."""
    if value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(x):
        return None
    return round(x, digits) + 0.0


def _num0(value: Any, digits: int) -> float:
    """Like ``_num`` but 0.0 where there is no finite number."""
    x = _num(value, digits)
    return 0.0 if x is None else x


def _val(x: Any) -> str:
    """An enum's ``.value`` (or the text itself); '' for None."""
    if x is None:
        return ""
    return str(getattr(x, "value", x))


def _fnan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def is_local_reject(order: Order) -> bool:
    """True for an order refused by tradekit's own checks before it was sent: REJECTED without a
    broker acknowledgement (no ``accepted_ts``, no ``broker_order_id``) and with a reason other
    than ``RejectReason.BROKER`` (the reason a broker's own rejection carries)."""
    return (
        order.status is OrderStatus.REJECTED
        and order.accepted_ts is None
        and order.broker_order_id is None
        and order.reject_reason is not RejectReason.BROKER
    )


def _curve_arrays(curve: Iterable[tuple[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    """``pnl_curve`` as (ts int64, value float64), finite points only, stably sorted by ts."""
    pts = [(int(t), float(v)) for t, v in curve if v is not None and math.isfinite(float(v))]
    if not pts:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    ts = np.fromiter((p[0] for p in pts), dtype=np.int64, count=len(pts))
    vals = np.fromiter((p[1] for p in pts), dtype=np.float64, count=len(pts))
    order = np.argsort(ts, kind="stable")
    return ts[order], vals[order]


def max_drawdown(curve: Iterable[tuple[int, float]]) -> float:
    """The largest peak-to-trough fall of a PnL curve, as a positive amount (0 if none). The
    peak starts at 0 (the PnL before the first point)."""
    _, vals = _curve_arrays(curve)
    if vals.size == 0:
        return 0.0
    path = np.concatenate(([0.0], vals))
    peak = np.maximum.accumulate(path)
    return float(np.max(peak - path))


def sharpe_ratio(curve: Iterable[tuple[int, float]], start_ns: int, end_ns: int) -> float | None:
    """Annualized Sharpe ratio of 1-minute PnL changes (``sqrt(252 * 390)`` scaling).

    The curve is a step function (0 before its first point). It is read at the end of every
    UTC calendar minute from the minute holding the run's start to the one holding its end; the
    changes between consecutive readings (the first against 0) are the 1-minute returns.
    ``None`` when there are fewer than 2 minutes or the changes have zero spread.
    """
    ts, vals = _curve_arrays(curve)
    lo = int(start_ns)
    hi = int(end_ns)
    if ts.size:
        lo = min(lo, int(ts[0]))
        hi = max(hi, int(ts[-1]))
    if hi < lo:
        return None
    first = (lo // NS_PER_MIN) * NS_PER_MIN
    n = max(1, -(-(hi - first) // NS_PER_MIN))  # ceil; a point exactly on an edge closes a minute
    if n < 2:
        return None
    edges = first + NS_PER_MIN * np.arange(1, n + 1, dtype=np.int64)
    if ts.size:
        idx = np.searchsorted(ts, edges, side="right") - 1
        level = np.where(idx >= 0, vals[np.clip(idx, 0, None)], 0.0)
    else:
        level = np.zeros(n)
    changes = np.diff(np.concatenate(([0.0], level)))
    std = float(np.std(changes, ddof=1))
    if not math.isfinite(std) or std <= 1e-12:
        return None
    return float(np.mean(changes)) / std * math.sqrt(_MINUTES_PER_YEAR)


# ---- summary ----------------------------------------------------------------------------------
def summarize(rec: RunRecord) -> dict[str, Any]:
    """The ``summary.json`` mapping of a run: exactly ``SUMMARY_KEYS`` in that order, plain
    JSON types only (money rounded to 6 decimals; NaN and undefined values are ``None``).

    ``orders_submitted`` counts orders sent to a broker (every order but the locally rejected
    ones, see ``is_local_reject``); ``orders_rejected`` counts every REJECTED order, local or
    from a broker; ``orders_canceled`` the CANCELED ones.
    """
    orders = rec.orders
    fills = rec.fills
    submitted = sum(1 for o in orders if not is_local_reject(o))
    rejected = sum(1 for o in orders if o.status is OrderStatus.REJECTED)
    canceled = sum(1 for o in orders if o.status is OrderStatus.CANCELED)
    volume = math.fsum(float(f.qty) for f in fills)
    notional = math.fsum(float(f.qty) * float(f.price) for f in fills)

    dd: float | None = None
    if rec.max_drawdown is not None:
        dd = _num(abs(float(rec.max_drawdown)), _MONEY_DIGITS)
    if dd is None:
        dd = _num0(max_drawdown(rec.pnl_curve), _MONEY_DIGITS)

    markouts: dict[int, float | None] = {}
    for h in MARKOUT_HORIZONS:
        total, qty = rec.markouts.get(h, (0.0, 0.0))
        ok = bool(fills) and qty is not None and math.isfinite(float(qty)) and float(qty) > 0
        markouts[h] = _num(float(total) / float(qty), _MONEY_DIGITS) if ok else None

    uptime = _num(rec.quote_uptime, _RATIO_DIGITS)
    if uptime is not None:
        uptime = min(1.0, max(0.0, uptime))
    wall = _num0(rec.wall_seconds, 6)
    eps = _num0(int(rec.events) / wall, 3) if wall > 0 else 0.0

    return {
        "strategy": str(rec.strategy),
        "start": iso(int(rec.start_ns)),
        "end": iso(int(rec.end_ns)),
        "events": int(rec.events),
        "orders_submitted": submitted,
        "orders_rejected": rejected,
        "orders_canceled": canceled,
        "fills": len(fills),
        "volume": _num0(volume, _QTY_DIGITS),
        "notional": _num0(notional, _MONEY_DIGITS),
        "fees": _num0(rec.fees, _MONEY_DIGITS),
        "realized_pnl": _num0(rec.realized_pnl, _MONEY_DIGITS),
        "net_pnl": _num0(rec.net_pnl, _MONEY_DIGITS),
        "final_positions": {str(k): _num0(v, _QTY_DIGITS) for k, v in rec.final_positions.items()},
        "max_abs_position": _num0(rec.max_abs_position, _QTY_DIGITS),
        "max_drawdown": dd,
        "sharpe": _num(sharpe_ratio(rec.pnl_curve, rec.start_ns, rec.end_ns), 4),
        "markout_1s": markouts[1],
        "markout_10s": markouts[10],
        "markout_60s": markouts[60],
        "quote_uptime": uptime,
        "wall_seconds": wall,
        "events_per_second": eps,
    }


# ---- tables -------------------------------------------------------------------------------
def orders_frame(orders: Iterable[Order]) -> pd.DataFrame:
    """The ``orders.csv`` table: exactly ``ORDERS_COLUMNS``. Enums as their string values,
    times ISO-8601 UTC (``...Z``) with '' where not applicable (``done_at`` of an open order),
    missing prices NaN (written empty)."""
    rows = []
    for o in orders:
        done = o.done_ts if o.status.is_done else None
        rows.append(
            (
                o.client_order_id,
                o.venue,
                o.symbol,
                _val(o.side),
                _val(o.type),
                float(o.qty),
                _fnan(o.limit_price),
                _val(o.tif),
                bool(o.extended_hours),
                _val(o.status),
                float(o.filled_qty),
                _fnan(o.avg_fill_price),
                iso(o.created_ts),
                iso(o.accepted_ts),
                iso(done),
                _val(o.reject_reason),
            )
        )
    return pd.DataFrame.from_records(rows, columns=list(ORDERS_COLUMNS))


def fills_frame(fills: Iterable[Fill]) -> pd.DataFrame:
    """The ``fills.csv`` table: exactly ``FILLS_COLUMNS``, ``ts`` ISO-8601 UTC."""
    rows = [
        (
            iso(f.ts),
            f.venue,
            f.symbol,
            _val(f.side),
            float(f.qty),
            float(f.price),
            float(f.fee),
            _val(f.liquidity),
            f.client_order_id,
            f.fill_id,
        )
        for f in fills
    ]
    return pd.DataFrame.from_records(rows, columns=list(FILLS_COLUMNS))


# ---- the result object ------------------------------------------------------------------------
class BacktestResult:
    """The result of a run: ``.summary`` (the ``summary.json`` dict), ``.orders`` and ``.fills``
    (DataFrames with the CSV columns), ``.record`` (the raw ``RunRecord``); ``.write(dir)`` and
    ``.report(path)`` write the output files."""

    def __init__(self, record: RunRecord) -> None:
        self.record = record

    @cached_property
    def summary(self) -> dict[str, Any]:
        """The ``summary.json`` mapping (computed once)."""
        return summarize(self.record)

    @cached_property
    def orders(self) -> pd.DataFrame:
        """Every order of the run as the ``orders.csv`` table (computed once)."""
        return orders_frame(self.record.orders)

    @cached_property
    def fills(self) -> pd.DataFrame:
        """Every fill of the run as the ``fills.csv`` table (computed once)."""
        return fills_frame(self.record.fills)

    def write(self, dir: str | Path) -> Path:
        """Write ``summary.json``, ``orders.csv``, ``fills.csv``, ``report.html`` and the PNG
        plots into ``dir`` (created with its parents) and return it."""
        from .report import write_report

        out = Path(dir)
        out.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.summary, indent=2, allow_nan=False)
        (out / "summary.json").write_text(text + "\n", encoding="utf-8")
        self.orders.to_csv(out / "orders.csv", index=False)
        self.fills.to_csv(out / "fills.csv", index=False)
        write_report(self, out / "report.html", png_dir=out)
        return out

    def report(self, path: str | Path) -> Path:
        """Write the self-contained HTML report to ``path`` and return it."""
        from .report import write_report

        return write_report(self, path)

    def __repr__(self) -> str:
        s = self.summary
        return (
            f"BacktestResult(strategy={s['strategy']!r}, {s['start']} -> {s['end']}, "
            f"orders={len(self.record.orders)}, fills={s['fills']}, net_pnl={s['net_pnl']})"
        )


# ---- terminal ---------------------------------------------------------------------------------
def _fmt_value(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "-"
        text = f"{v:,.6f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    if isinstance(v, Mapping):
        if not v:
            return "(none)"
        return ", ".join(f"{k} {_fmt_value(x)}" for k, x in v.items())
    return str(v)


def format_summary(summary: Mapping[str, Any]) -> str:
    """A summary as an aligned two-column text table for the terminal (one metric a line;
    ``-`` for undefined values)."""
    if not summary:
        return ""
    width = max(len(str(k)) for k in summary)
    return "\n".join(f"{k!s:<{width}}  {_fmt_value(v)}" for k, v in summary.items())


def default_out_dir(base: str | Path = "tradekit-out") -> Path:
    """``<base>/<UTC timestamp>``, e.g. ``tradekit-out/20261125T134501Z`` (relative to the
    working directory unless ``base`` is absolute). Not created."""
    return Path(base) / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
