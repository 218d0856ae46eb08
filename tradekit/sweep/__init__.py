"""Parameter sweeps (``tradekit sweep``): backtest every parameter set of a grid on every symbol
and trading day, on a local process pool, a Dask cluster, Ray or any
``concurrent.futures.Executor``, and collect the results.

``run_sweep(config, grid, ...) -> SweepResult`` writes, in its output directory: ``runs.jsonl``
(each run's record, appended as it finishes, so an interrupted sweep restarted with the same
directory skips what is done), ``runs.csv``/``.parquet`` (one row per run), ``aggregate.csv``/
``.parquet`` (one row per parameter set), ``best.csv`` and ``report.html``. See
:mod:`tradekit.sweep.grid` for the grid file. dask and ray are imported only when asked for.
"""

from __future__ import annotations

from .executors import RayExecutor, cpu_count, resolve_executor
from .grid import Grid, RunSpec, load_grid, parse_days, parse_window, plan_runs
from .runner import SweepResult, default_sweep_dir, expand_data, format_result, run_sweep
from .tables import AGGREGATE_METRICS, TIMING_COLUMNS, metric_column

__all__ = [
    "AGGREGATE_METRICS",
    "TIMING_COLUMNS",
    "Grid",
    "RayExecutor",
    "RunSpec",
    "SweepResult",
    "cpu_count",
    "default_sweep_dir",
    "expand_data",
    "format_result",
    "load_grid",
    "metric_column",
    "parse_days",
    "parse_window",
    "plan_runs",
    "resolve_executor",
    "run_sweep",
]
