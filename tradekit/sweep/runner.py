"""Running a sweep: plan the runs, skip those already done in ``out``, run the rest on an
executor (recording each as it finishes, resubmitting runs lost with their worker), then write
the tables and the report."""

from __future__ import annotations

import concurrent.futures as cf
import glob
import importlib
import json
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd

from .._version import __version__
from ..config import Config, load_config
from ..errors import ConfigError, DataError
from .executors import ExecutorHandle, resolve_executor
from .grid import Grid, RunSpec, _plain, _short_hash, load_grid, parse_days, parse_window, plan_runs
from .report import heatmap_axes, write_sweep_report
from .tables import (
    aggregate_frame,
    best_frame,
    metric_column,
    param_columns,
    runs_frame,
    write_tables,
)
from .worker import execute

__all__ = [
    "RunStore",
    "SweepResult",
    "default_sweep_dir",
    "expand_data",
    "format_result",
    "run_sweep",
]

log = logging.getLogger("tradekit.sweep")

#: The append-only record of finished runs in the output directory.
RUNS_JSONL = "runs.jsonl"
#: What the output directory holds a sweep of (checked when a sweep is restarted there).
SWEEP_JSON = "sweep.json"


def default_sweep_dir(base: str | Path = "tradekit-out") -> Path:
    """``<base>/sweep-<UTC timestamp>`` (not created)."""
    return Path(base) / f"sweep-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"


@dataclass
class SweepResult:
    """The outcome of :func:`run_sweep`: the tables (``runs``, ``aggregate``, ``best``, as
    written to ``out``), the ranking ``metric`` (a column of ``aggregate``), the parameter
    columns ``params``, how many runs this
    call ``executed`` and how many were ``skipped`` (already done in ``out``), the executor's
    label, the phases' ``timings`` in seconds (``plan``, ``execute``, ``write``) and the files
    written."""

    out: Path
    runs: pd.DataFrame
    aggregate: pd.DataFrame
    best: pd.DataFrame
    metric: str
    params: list[str]
    executed: int
    skipped: int
    executor: str
    timings: dict[str, float] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    @property
    def errors(self) -> int:
        """Runs that ended in error."""
        return int((self.runs["status"] != "ok").sum()) if len(self.runs) else 0

    @property
    def ok(self) -> bool:
        """True when every run succeeded."""
        return self.errors == 0

    def __repr__(self) -> str:
        return (
            f"SweepResult(out={str(self.out)!r}, runs={len(self.runs)}, errors={self.errors}, "
            f"sets={len(self.aggregate)}, executed={self.executed}, skipped={self.skipped})"
        )


# ---------------------------------------------------------------------------------- data


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def expand_data(items: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Replay files as the workers will get them: local paths made absolute and globs
    expanded (sorted); URLs (``s3://...``) kept as URLs, globs in them expanded with fsspec.
    Nothing is read here but directory listings. A path or pattern with no file is a
    ``DataError``."""
    out: list[str] = []
    for item in items:
        text = os.fspath(item)
        if "://" in text:
            if not _is_glob(text):
                out.append(text)
                continue
            try:
                fsspec = importlib.import_module("fsspec")
                fs, path = fsspec.core.url_to_fs(text)
                found = [fs.unstrip_protocol(m) for m in sorted(fs.glob(path))]
            except ImportError as e:
                raise DataError(f"{text}: expanding a URL pattern needs fsspec ({e})") from None
            if not found:
                raise DataError(f"{text}: the pattern matches no file")
            out.extend(found)
            continue
        path = os.path.expanduser(text)
        if _is_glob(path):
            found = sorted(glob.glob(path, recursive=True))
            found = [f for f in found if os.path.isfile(f)]
            if not found:
                raise DataError(f"{text}: the pattern matches no file")
            out.extend(os.path.abspath(f) for f in found)
        elif not os.path.isfile(path):
            raise DataError(f"{text}: no such data file")
        else:
            out.append(os.path.abspath(path))
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------------------------- records


class RunStore:
    """``runs.jsonl`` in the output directory: one JSON record per finished run, appended and
    flushed as each run finishes; when read back, the last record of a run wins and a torn last
    line (an interrupted write) is ignored."""

    def __init__(self, out: Path) -> None:
        self.path = out / RUNS_JSONL
        self._fh: BinaryIO | None = None

    def load(self) -> dict[str, dict[str, Any]]:
        """The last record of each run in the file."""
        records: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return records
        with open(self.path, "rb") as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and isinstance(rec.get("run_id"), str):
                    records[rec["run_id"]] = rec
        return records

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one record (and flush it to the OS)."""
        if self._fh is None:
            torn = False
            if self.path.exists() and self.path.stat().st_size > 0:
                with open(self.path, "rb") as fh:
                    fh.seek(-1, os.SEEK_END)
                    torn = fh.read(1) != b"\n"
            self._fh = open(self.path, "ab")  # noqa: SIM115 - kept open across appends
            if torn:
                self._fh.write(b"\n")
        self._fh.write((json.dumps(record, default=str) + "\n").encode("utf-8"))
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _error_record(spec: RunSpec, message: str) -> dict[str, Any]:
    rec = spec.record()
    rec.update(status="error", error=message, summary=None, run_seconds=None)
    return rec


# ---------------------------------------------------------------------------------- progress


class _Progress:
    """tqdm when installed, else one line on stderr rewritten at most 5 times a second."""

    def __init__(self, total: int, initial: int, enabled: bool) -> None:
        self.total = total
        self.count = initial
        self.errors = 0
        self.enabled = enabled and total > 0
        self._bar: Any = None
        self._t0 = time.perf_counter()
        self._last = 0.0
        if not self.enabled:
            return
        try:
            tqdm = importlib.import_module("tqdm").tqdm
        except ImportError:
            self._line(force=True)
            return
        self._bar = tqdm(
            total=total, initial=initial, unit="run", desc="sweep", file=sys.stderr, leave=True
        )

    def _line(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        sys.stderr.write(
            f"\rsweep: {self.count}/{self.total} runs, {self.errors} errors, {now - self._t0:.1f} s"
        )
        sys.stderr.flush()

    def update(self, record: Mapping[str, Any]) -> None:
        self.count += 1
        if record.get("status") != "ok":
            self.errors += 1
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix(errors=self.errors, refresh=False)
            self._bar.update(1)
        else:
            self._line(force=self.count >= self.total)

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
        else:
            self._line(force=True)
            sys.stderr.write("\n")
            sys.stderr.flush()


# ---------------------------------------------------------------------------------- executing


def _execute(
    handle: ExecutorHandle,
    config: Config,
    todo: Sequence[RunSpec],
    files: Sequence[str],
    *,
    retries: int,
    limit: int | None,
    on_record: Callable[[dict[str, Any]], None],
) -> None:
    """Run ``todo`` on the executor, ``on_record`` for each finished run (in the order they
    finish). A run whose future fails (its worker died, the executor lost it) is resubmitted up
    to ``retries`` times, then recorded as an error; a broken local pool is replaced."""
    executor = handle.executor
    generation = 0
    queue: deque[tuple[RunSpec, int]] = deque((s, 0) for s in todo)
    pending: dict[cf.Future[Any], tuple[RunSpec, int, int]] = {}

    def lost(spec: RunSpec, attempt: int, exc: BaseException) -> None:
        what = f"{type(exc).__name__}: {' '.join(str(exc).split()) or '(no message)'}"
        if attempt < retries:
            log.warning(
                "run %s lost (%s); resubmitting (attempt %d of %d)",
                spec.run_id,
                what,
                attempt + 2,
                retries + 1,
            )
            queue.append((spec, attempt + 1))
        else:
            on_record(
                _error_record(
                    spec,
                    f"the run was lost {attempt + 1} times (its worker died or the executor "
                    f"failed); last: {what}",
                )
            )

    def renew(broken_generation: int) -> None:
        nonlocal executor, generation
        if handle.renew is not None and broken_generation == generation:
            log.warning("a worker process died; starting a new pool")
            executor = handle.renew()
            generation += 1

    def submit(spec: RunSpec, attempt: int) -> None:
        for _ in range(2):
            try:
                fut = executor.submit(execute, config, spec, tuple(files), attempt)
            except cf.BrokenExecutor as exc:
                if handle.renew is None:
                    lost(spec, attempt, exc)
                    return
                renew(generation)
                continue
            except Exception as exc:
                lost(spec, attempt, exc)
                return
            pending[fut] = (spec, attempt, generation)
            return
        lost(spec, attempt, RuntimeError("the pool broke again at once"))

    try:
        while queue or pending:
            while queue and (limit is None or len(pending) < limit):
                submit(*queue.popleft())
            if not pending:
                continue
            done, _ = cf.wait(list(pending), return_when=cf.FIRST_COMPLETED)
            for fut in sorted(done, key=lambda f: pending[f][0].run_id):
                spec, attempt, gen = pending.pop(fut)
                try:
                    rec = fut.result()
                except (KeyboardInterrupt, SystemExit):
                    raise
                except BaseException as exc:  # CancelledError is a BaseException on some paths
                    if isinstance(exc, cf.BrokenExecutor):
                        renew(gen)
                    lost(spec, attempt, exc)
                    continue
                if not isinstance(rec, dict) or rec.get("run_id") != spec.run_id:
                    lost(spec, attempt, TypeError(f"unexpected result {type(rec).__name__}"))
                    continue
                on_record(rec)
    except BaseException:
        for fut in pending:
            fut.cancel()
        raise


# ---------------------------------------------------------------------------------- the sweep


def _fingerprint(cfg: Config, files: Sequence[str], window: Any) -> str:
    doc = {"config": cfg.to_dict(), "data": list(files), "window": window}
    return _short_hash(doc, 24)


def _check_out(out: Path, fingerprint: str, meta: Mapping[str, Any]) -> None:
    path = out / SWEEP_JSON
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        if isinstance(old, dict) and old.get("fingerprint") not in (None, fingerprint):
            raise ConfigError(
                f"{out} holds a sweep of another config, data or window (its records would "
                "not match these runs); give a new --out or delete the directory",
                key="out",
            )
    text = json.dumps({"fingerprint": fingerprint, **meta}, indent=2, default=str)
    path.write_text(text + "\n", encoding="utf-8")


def _days(cfg: Config, grid: Grid, days: Any) -> list[date | None]:
    if days is not None:
        return list(parse_days(days, cfg.session.calendar, key="days"))
    if grid.days is not None:
        return list(parse_days(grid.days, cfg.session.calendar, file=grid.path, key="sweep.days"))
    synthetic = [v.name for v in cfg.venues.values() if getattr(v, "feed", "") == "synthetic"]
    if not synthetic:
        return [None]
    if cfg.market.date is None:
        raise ConfigError(
            "the synthetic market needs a day: give --days or [market] date",
            file=cfg.path,
            key="market.date",
        )
    return [cfg.market.date]


def run_sweep(
    config: str | os.PathLike[str] | Mapping[str, Any] | Config,
    grid: str | os.PathLike[str] | Mapping[str, Any] | Grid,
    *,
    data: Iterable[str | os.PathLike[str]] | str | None = None,
    days: Any = None,
    window: Any = None,
    executor: Any = None,
    workers: int | None = None,
    out: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    metric: str | None = None,
    top: int | None = None,
    progress: bool = True,
    retries: int = 2,
    rerun_errors: bool = True,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> SweepResult:
    """Backtest every parameter set of ``grid`` on every symbol and day, and write the tables
    and the report to ``out``.

    ``config``: a TOML path, a dict or a ``Config`` (with a ``[strategy]`` table). ``grid``: a
    grid TOML path, a dict shaped like it or a :class:`Grid`. ``data``: replay files, paths,
    globs or fsspec URLs (passed to the workers as such). ``days``: ``"START:END"`` (the
    calendar's sessions, inclusive), a date or a list (default: ``[sweep] days``, else the
    config's ``[market] date``, else the whole data). ``window``: ``"HH:MM-HH:MM"`` New York time
    each day. ``executor``: ``None``/``"local"`` (a process pool of ``workers``, default one per
    CPU), ``"dask://HOST:PORT"``, ``"ray"``, ``"ray://HOST:PORT"`` or any
    ``concurrent.futures.Executor``. ``out``: the output directory (default
    ``./tradekit-out/sweep-<UTC timestamp>``); runs already recorded there are skipped (runs
    that ended in error are tried again unless ``rerun_errors`` is false). ``seed``: the base
    seed (default ``[sweep] seed``, else ``[market] seed``). ``metric``/``top``: what ranks
    ``best.csv`` and how many sets it keeps (default ``net_pnl``, 10). ``retries``: how many
    times a run lost with its worker is resubmitted. ``callback(record)`` is called in this
    process after each run is recorded.
    """
    t0 = time.perf_counter()
    cfg = load_config(config)
    g = load_grid(grid)
    try:
        metric_col, lower_better = metric_column(metric if metric is not None else g.metric)
    except ConfigError as e:
        if metric is None and g.metric is not None:
            raise ConfigError(e.message, file=g.path, key="report.metric") from None
        raise
    n_top = top if top is not None else g.top if g.top is not None else 10
    if isinstance(n_top, bool) or not isinstance(n_top, int) or n_top < 1:
        raise ConfigError(f"top must be a whole number >= 1, not {n_top!r}", key="top")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"retries must be a whole number >= 0, not {retries!r}", key="retries")
    base_seed = seed if seed is not None else g.seed if g.seed is not None else cfg.market.seed
    if isinstance(data, str | os.PathLike):
        data = [data]
    files = expand_data([*g.data, *(data or ())])
    win = parse_window(window, key="window") if window is not None else g.window
    day_list = _days(cfg, g, days)
    if win is not None and day_list == [None]:
        raise ConfigError("a window needs days (--days or [sweep] days)", key="window")
    specs, param_sets, names = plan_runs(cfg, g, days=day_list, window=win, seed=base_seed)
    pcols = dict(zip(names, param_columns(names), strict=True))
    for key, value in (("x", g.x), ("y", g.y)):
        if value is not None and value not in names:
            raise ConfigError(
                f"{value!r} is not a swept parameter; allowed: {', '.join(names) or '(none)'}",
                file=g.path,
                key=f"report.{key}",
            )
    hx, hy = heatmap_axes(names, g.x, g.y)

    out_dir = Path(out) if out is not None else default_sweep_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    window_text = None if win is None else [w.isoformat() for w in win]
    _check_out(
        out_dir,
        _fingerprint(cfg, files, window_text),
        {
            "tradekit": __version__,
            "config": cfg.path,
            "grid": g.path,
            "data": files,
            "window": window_text,
            "seed": base_seed,
            "runs": len(specs),
        },
    )
    store = RunStore(out_dir)
    latest = store.load()
    todo = [
        s
        for s in specs
        if s.run_id not in latest or (rerun_errors and latest[s.run_id].get("status") != "ok")
    ]
    skipped = len(specs) - len(todo)
    t_plan = time.perf_counter() - t0

    executed = 0
    bar = _Progress(len(specs), skipped, progress)

    def on_record(rec: dict[str, Any]) -> None:
        nonlocal executed
        rec = _plain(rec)
        store.append(rec)
        latest[rec["run_id"]] = rec
        executed += 1
        bar.update(rec)
        if callback is not None:
            callback(rec)

    t1 = time.perf_counter()
    label = "none (every run already done)"
    try:
        if todo:
            handle = resolve_executor(executor, workers, len(todo))
            label = handle.label
            try:
                _execute(
                    handle,
                    cfg,
                    todo,
                    files,
                    retries=retries,
                    limit=handle.inflight,
                    on_record=on_record,
                )
            except BaseException:
                handle.close(False)
                raise
            handle.close(True)
    except KeyboardInterrupt:
        log.warning(
            "interrupted: %d of %d runs are recorded in %s; run again with the same out to finish",
            sum(1 for s in specs if s.run_id in latest),
            len(specs),
            store.path,
        )
        raise
    finally:
        bar.close()
        store.close()
    t_exec = time.perf_counter() - t1

    t2 = time.perf_counter()
    records = [latest[s.run_id] for s in specs if s.run_id in latest]
    set_ids = list(dict.fromkeys(s.set_id for s in specs))
    runs = runs_frame(records, names)
    agg = aggregate_frame(records, param_sets, set_ids, names)
    best = best_frame(agg, metric_col, n_top)
    files_written = write_tables(out_dir, {"runs": runs, "aggregate": agg, "best": best})
    days_known = [d for d in day_list if d is not None]
    info = {
        "config": cfg.path or "(dict)",
        "grid": g.path or "(dict)",
        "days": (
            f"{days_known[0]} .. {days_known[-1]} ({len(days_known)} sessions)"
            if days_known
            else "the whole data"
        ),
        "window": "-".join(window_text) + " New York" if window_text else "whole session",
        "symbols": ", ".join(dict.fromkeys(s.symbol for s in specs)),
        "seed": base_seed,
        "data": f"{len(files)} file(s)" if files else "synthetic",
        "executor": label,
        "created": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }
    report = write_sweep_report(
        out_dir / "report.html",
        runs=runs,
        aggregate=agg,
        best=best,
        param_cols=list(pcols.values()),
        x=pcols.get(hx) if hx else None,
        y=pcols.get(hy) if hy else None,
        metric=metric_col,
        lower_better=lower_better,
        info=info,
    )
    files_written.append(report)
    t_write = time.perf_counter() - t2
    return SweepResult(
        out=out_dir,
        runs=runs,
        aggregate=agg,
        best=best,
        metric=metric_col,
        params=list(pcols.values()),
        executed=executed,
        skipped=skipped,
        executor=label,
        timings={"plan": t_plan, "execute": t_exec, "write": t_write},
        files=files_written,
    )


def format_result(result: SweepResult, rows: int = 10) -> str:
    """A few lines for the terminal: the counts and the best sets."""
    lines = [
        f"sweep: {len(result.runs)} runs ({len(result.runs) - result.errors} ok, "
        f"{result.errors} errors; {result.skipped} already done) on {result.executor}, "
        f"{result.timings.get('execute', 0.0):.1f} s",
    ]
    best = result.best.head(rows)
    if len(best):
        metric = result.metric
        keep = list(
            dict.fromkeys(
                [
                    "rank",
                    *result.params,
                    metric,
                    "net_pnl_mean",
                    "net_pnl_worst_day",
                    "fills_mean",
                    "errors",
                ]
            )
        )
        lines.append(f"best by {metric}:")
        lines.append(best[[c for c in keep if c in best.columns]].to_string(index=False))
    return "\n".join(lines)
