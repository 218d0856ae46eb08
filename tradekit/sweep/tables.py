"""The tables of a sweep: ``runs`` (one row per run), ``aggregate`` (one row per parameter set)
and ``best`` (the top sets by a metric), built from the runs' records, and their files."""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeGuard

import pandas as pd

from ..errors import ConfigError
from ..results import SUMMARY_KEYS

__all__ = [
    "AGGREGATE_METRICS",
    "ID_COLUMNS",
    "TIMING_COLUMNS",
    "aggregate_frame",
    "best_frame",
    "metric_column",
    "param_columns",
    "runs_frame",
    "write_tables",
]

log = logging.getLogger("tradekit.sweep")

#: The columns of ``runs`` before the parameters and after them (then the summary metrics).
ID_COLUMNS: Final = ("run_id", "set_id")
RUN_COLUMNS: Final = ("symbol", "day", "seed", "status", "error")
#: Columns that measure the machine, not the strategy: equal sweeps differ only there.
TIMING_COLUMNS: Final = ("wall_seconds", "events_per_second", "run_seconds")
_RESERVED: Final = frozenset((*ID_COLUMNS, *RUN_COLUMNS, *SUMMARY_KEYS, *TIMING_COLUMNS))

#: Numeric columns of ``aggregate`` (over a set's ok runs), after the parameters and counts.
AGGREGATE_METRICS: Final = (
    "net_pnl_mean",
    "net_pnl_median",
    "net_pnl_std",
    "net_pnl_min",
    "net_pnl_max",
    "net_pnl_worst_day",
    "net_pnl_total",
    "realized_pnl_mean",
    "fees_total",
    "fills_mean",
    "fills_total",
    "volume_total",
    "notional_total",
    "orders_submitted_mean",
    "orders_rejected_total",
    "max_drawdown_mean",
    "max_drawdown_max",
    "max_abs_position_max",
    "sharpe_mean",
    "markout_1s_mean",
    "markout_10s_mean",
    "markout_60s_mean",
    "quote_uptime_mean",
    "events_total",
)
_COUNT_COLUMNS: Final = ("runs", "ok", "errors", "symbols", "days")
#: Metrics where less is better (ranked ascending).
_LOWER_IS_BETTER: Final = (
    "max_drawdown",
    "fees",
    "orders_rejected",
    "max_abs_position",
    "errors",
)
_DIGITS = 6


def param_columns(names: Sequence[str]) -> list[str]:
    """Column names of the parameters: the name itself, ``param_NAME`` where it would clash with
    another column (``fees`` is a parameter and a metric)."""
    return [f"param_{n}" if n in _RESERVED else n for n in names]


def _cell(value: Any) -> Any:
    """A table cell: scalars as they are, tables and arrays as JSON text."""
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return value


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> TypeGuard[int | float]:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _column(values: list[Any]) -> pd.Series:
    """One column with a single type (so Parquet can hold it): bools, whole numbers (nullable),
    numbers, else text."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pd.Series(values, dtype="boolean")
    if present and all(_is_int(v) for v in present):
        return pd.Series(values, dtype="Int64")
    if present and all(_is_num(v) for v in present):
        return pd.Series([math.nan if v is None else float(v) for v in values], dtype="float64")
    if all(isinstance(v, str) for v in present):
        return pd.Series(values, dtype="object")
    return pd.Series(
        [None if v is None else v if isinstance(v, str) else json.dumps(v) for v in values],
        dtype="object",
    )


def runs_frame(records: Iterable[Mapping[str, Any]], names: Sequence[str]) -> pd.DataFrame:
    """``runs``: ``run_id, set_id``, the parameters, ``symbol, day, seed, status, error``, every
    ``summary.json`` metric (``final_positions`` as JSON text) and ``run_seconds``; sorted by
    ``run_id``."""
    recs = sorted(records, key=lambda r: str(r["run_id"]))
    pcols = param_columns(names)
    data: dict[str, list[Any]] = {c: [] for c in (*ID_COLUMNS, *pcols, *RUN_COLUMNS)}
    for k in (*SUMMARY_KEYS, "run_seconds"):
        data[k] = []
    for r in recs:
        for c in ID_COLUMNS:
            data[c].append(r.get(c))
        params = r.get("params") or {}
        for n, c in zip(names, pcols, strict=True):
            data[c].append(_cell(params.get(n)))
        for c in RUN_COLUMNS:
            data[c].append(r.get(c))
        summary = r.get("summary") or {}
        for k in SUMMARY_KEYS:
            data[k].append(_cell(summary.get(k)))
        data["run_seconds"].append(r.get("run_seconds"))
    return pd.DataFrame({c: _column(v) for c, v in data.items()})


def _round(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(x, _DIGITS) + 0.0


def _values(runs: list[Mapping[str, Any]], key: str) -> list[float]:
    out = []
    for r in runs:
        v = (r.get("summary") or {}).get(key)
        if _is_num(v) and math.isfinite(v):
            out.append(float(v))
    return out


def _stats(runs: list[Mapping[str, Any]]) -> dict[str, Any]:
    def mean(key: str) -> float | None:
        v = _values(runs, key)
        return math.fsum(v) / len(v) if v else None

    def total(key: str) -> float | None:
        v = _values(runs, key)
        return math.fsum(v) if v else None

    def most(key: str) -> float | None:
        v = _values(runs, key)
        return max(v) if v else None

    pnl = _values(runs, "net_pnl")
    by_day: dict[Any, list[float]] = {}
    for r in runs:
        v = (r.get("summary") or {}).get("net_pnl")
        if _is_num(v):
            by_day.setdefault(r.get("day"), []).append(float(v))
    out: dict[str, Any] = {
        "net_pnl_mean": mean("net_pnl"),
        "net_pnl_median": statistics.median(pnl) if pnl else None,
        "net_pnl_std": statistics.stdev(pnl) if len(pnl) > 1 else None,
        "net_pnl_min": min(pnl) if pnl else None,
        "net_pnl_max": max(pnl) if pnl else None,
        "net_pnl_worst_day": min(math.fsum(v) for v in by_day.values()) if by_day else None,
        "net_pnl_total": total("net_pnl"),
        "realized_pnl_mean": mean("realized_pnl"),
        "fees_total": total("fees"),
        "fills_mean": mean("fills"),
        "fills_total": total("fills"),
        "volume_total": total("volume"),
        "notional_total": total("notional"),
        "orders_submitted_mean": mean("orders_submitted"),
        "orders_rejected_total": total("orders_rejected"),
        "max_drawdown_mean": mean("max_drawdown"),
        "max_drawdown_max": most("max_drawdown"),
        "max_abs_position_max": most("max_abs_position"),
        "sharpe_mean": mean("sharpe"),
        "quote_uptime_mean": mean("quote_uptime"),
        "events_total": total("events"),
    }
    for h in ("1s", "10s", "60s"):  # per share over every fill: weighted by each run's volume
        num = den = 0.0
        for r in runs:
            s = r.get("summary") or {}
            m, vol = s.get(f"markout_{h}"), s.get("volume")
            if _is_num(m) and _is_num(vol) and vol > 0:
                num += float(m) * float(vol)
                den += float(vol)
        out[f"markout_{h}_mean"] = num / den if den > 0 else None
    return {k: _round(out[k]) for k in AGGREGATE_METRICS}


def aggregate_frame(
    records: Iterable[Mapping[str, Any]],
    param_sets: Sequence[Mapping[str, Any]],
    set_ids: Sequence[str],
    names: Sequence[str],
) -> pd.DataFrame:
    """``aggregate``: one row per parameter set in plan order: ``set_id``, the parameters, the
    counts (``runs, ok, errors, symbols, days``) and :data:`AGGREGATE_METRICS` over its ok runs
    (``net_pnl_worst_day``: the lowest day total over its symbols; mark-outs per share over all
    its fills)."""
    by_set: dict[str, list[Mapping[str, Any]]] = {}
    for r in sorted(records, key=lambda r: str(r["run_id"])):
        by_set.setdefault(str(r["set_id"]), []).append(r)
    pcols = param_columns(names)
    rows: list[dict[str, Any]] = []
    for params, sid in zip(param_sets, set_ids, strict=True):
        runs = by_set.get(sid, [])
        ok = [r for r in runs if r.get("status") == "ok"]
        row: dict[str, Any] = {"set_id": sid}
        for n, c in zip(names, pcols, strict=True):
            row[c] = _cell(params.get(n))
        row.update(
            runs=len(runs),
            ok=len(ok),
            errors=len(runs) - len(ok),
            symbols=len({r.get("symbol") for r in runs}),
            days=len({r.get("day") for r in runs}),
        )
        row.update(_stats(ok))
        rows.append(row)
    cols = ["set_id", *pcols, *_COUNT_COLUMNS, *AGGREGATE_METRICS]
    return pd.DataFrame({c: _column([row[c] for row in rows]) for c in cols})


def metric_column(name: str | None) -> tuple[str, bool]:
    """The ``aggregate`` column a metric name ranks by and whether lower is better: the column
    itself (``net_pnl_worst_day``) or a summary metric (``net_pnl`` -> ``net_pnl_mean``,
    ``fees`` -> ``fees_total``). Raises ``ConfigError`` listing what is allowed."""
    text = (name or "net_pnl").strip()
    allowed = (*AGGREGATE_METRICS, "errors")
    for col in (text, f"{text}_mean", f"{text}_total", f"{text}_max"):
        if col in allowed:
            return col, any(col.startswith(p) for p in _LOWER_IS_BETTER)
    summary = sorted({c.rsplit("_", 1)[0] for c in AGGREGATE_METRICS} - {"net_pnl_worst"})
    raise ConfigError(
        f"unknown metric {text!r}; allowed: {', '.join(summary)} (their mean or total) or a "
        f"column of aggregate.csv: {', '.join(allowed)}",
        key="metric",
    )


def best_frame(agg: pd.DataFrame, metric: str, top: int = 10) -> pd.DataFrame:
    """The ``top`` parameter sets by ``metric`` (a :func:`metric_column` name; sets without a
    value last, ties in plan order), with their ``rank``."""
    col, ascending = metric_column(metric)
    values = pd.to_numeric(agg[col], errors="coerce").astype("float64")
    key = values if ascending else -values
    order = sorted(
        range(len(agg)),
        key=lambda i: (math.isnan(key.iloc[i]), 0.0 if math.isnan(key.iloc[i]) else key.iloc[i], i),
    )
    best = agg.iloc[order[:top]].reset_index(drop=True)
    best.insert(0, "rank", pd.Series(range(1, len(best) + 1), dtype="int64"))
    return best


def _parquet_ok() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def write_tables(out: Path, tables: Mapping[str, pd.DataFrame]) -> list[Path]:
    """Write each table as ``NAME.csv`` and (with pyarrow) ``NAME.parquet``, ``best`` as CSV
    only; returns the files written."""
    written: list[Path] = []
    parquet = _parquet_ok()
    if not parquet:
        log.warning("pyarrow is not installed: no Parquet tables (pip install 'tradekit[parquet]')")
    for name, frame in tables.items():
        path = out / f"{name}.csv"
        frame.to_csv(path, index=False)
        written.append(path)
        if parquet and name != "best":
            ppath = out / f"{name}.parquet"
            frame.to_parquet(ppath, index=False)
            written.append(ppath)
    return written
