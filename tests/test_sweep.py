"""Parameter sweeps (tradekit.sweep, ``tradekit sweep``): the grid file, the plan of runs, local
processes vs a real Dask LocalCluster (identical tables), a Dask worker killed mid-sweep, lost
runs resubmitted, failing runs recorded, an interrupted sweep restarted, replay files by glob and
by URL, the Ray path (through a stand-in ``ray`` module), the command end to end."""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import json
import os
import signal
import sys
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import tradekit.sweep.worker as sweep_worker
from tradekit.cli import main
from tradekit.errors import ConfigError, DataError
from tradekit.sweep import (
    TIMING_COLUMNS,
    RayExecutor,
    SweepResult,
    load_grid,
    parse_days,
    run_sweep,
)

CONFIG = """\
[venues.paper]
broker = "paper"
feed = "synthetic"
rules = "alpaca"
latency_ms = 20
cash = 100000

[market]
date = "2026-11-24"
seed = 1
[market.symbols.AAPL]
start_price = 190.0
volatility = 0.25
spread_ticks = 2
quote_rate = 5.0
trade_rate = 10.0

[session]
hours = "regular"
cancel_before_close_s = 60

[risk]
max_position = 1000

[strategy]
kind = "pure_market_making"
venue = "paper"
symbol = "AAPL"
bid_spread = 0.00005
ask_spread = 0.00005
order_amount = 100
order_refresh_time = 2
filled_order_delay = 0.5
max_position = 800
"""

GRID = """\
[grid]
bid_spread = [0.00005, 0.0002]
order_amount = [50, 100]

[report]
x = "bid_spread"
y = "order_amount"
"""

DAYS = "2026-11-23:2026-11-24"
WINDOW = "09:30-09:33"  # three minutes a run: well under a second each
N_RUNS = 2 * 2 * 2


def stable(frame: pd.DataFrame) -> pd.DataFrame:
    """The table without the columns that measure the machine."""
    return frame.drop(columns=[c for c in TIMING_COLUMNS if c in frame.columns])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("sweep")
    cfg = d / "bot.toml"
    cfg.write_text(CONFIG, encoding="utf-8")
    grid = d / "grid.toml"
    grid.write_text(GRID, encoding="utf-8")
    return cfg, grid


@pytest.fixture
def cfg(files: tuple[Path, Path]) -> Path:
    return files[0]


@pytest.fixture
def grid(files: tuple[Path, Path]) -> Path:
    return files[1]


def sweep(cfg: Path, grid: Path | dict[str, Any], out: Path, **kw: Any) -> SweepResult:
    kw.setdefault("days", DAYS)
    kw.setdefault("window", WINDOW)
    kw.setdefault("progress", False)
    return run_sweep(cfg, grid, out=out, **kw)


@pytest.fixture(scope="module")
def local(files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> SweepResult:
    cfg, grid = files
    return sweep(cfg, grid, tmp_path_factory.mktemp("local"), executor="local", workers=2)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    import distributed

    with (
        distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            dashboard_address=None,
            silence_logs=50,
        ) as lc,
        distributed.Client(lc, set_as_default=False) as client,
    ):
        yield lc, client


class Counting:
    """Wraps the worker's backtest (in this process: thread executors) and counts the calls."""

    def __init__(self, fail: Callable[[Any], bool] | None = None) -> None:
        self.calls = 0
        self.fail = fail
        self.lock = threading.Lock()
        self.real = sweep_worker._run_backtest

    def __call__(self, cfg: Any, **kw: Any) -> Any:
        with self.lock:
            self.calls += 1
        if self.fail is not None and self.fail(cfg):
            raise ValueError("boom")
        return self.real(cfg, **kw)


# ---- the local executor: outputs ----------------------------------------------------------------
def test_local_sweep_outputs(local: SweepResult) -> None:
    out = local.out
    for name in (
        "runs.csv",
        "runs.parquet",
        "aggregate.csv",
        "aggregate.parquet",
        "best.csv",
        "report.html",
        "runs.jsonl",
        "sweep.json",
    ):
        assert (out / name).is_file(), name
    runs = local.runs
    assert len(runs) == N_RUNS and local.ok and local.executed == N_RUNS and local.skipped == 0
    assert list(runs["run_id"]) == sorted(runs["run_id"])
    assert runs["run_id"].is_unique
    head = [
        "run_id",
        "set_id",
        "bid_spread",
        "order_amount",
        "symbol",
        "day",
        "seed",
        "status",
        "error",
    ]
    assert list(runs.columns[: len(head)]) == head
    for k in (
        "net_pnl",
        "fills",
        "markout_1s",
        "markout_10s",
        "markout_60s",
        "wall_seconds",
        "events_per_second",
        "final_positions",
        "sharpe",
        "quote_uptime",
    ):
        assert k in runs.columns
    assert set(runs["day"]) == {"2026-11-23", "2026-11-24"}
    assert set(runs["symbol"]) == {"AAPL"}
    assert (runs["events"] > 0).all() and (runs["fills"] > 0).all()
    assert set(runs["start"]) == {"2026-11-23T14:30:00Z", "2026-11-24T14:30:00Z"}
    # one seed per day, the same for every parameter set (common random numbers)
    assert runs.groupby("day")["seed"].nunique().eq(1).all()
    assert runs["seed"].nunique() == 2
    # files hold the same table
    csv = pd.read_csv(out / "runs.csv", keep_default_na=False, na_values=[""])
    assert list(csv.columns) == list(runs.columns)
    assert len(pd.read_parquet(out / "runs.parquet")) == N_RUNS
    assert len((out / "runs.jsonl").read_text(encoding="utf-8").splitlines()) == N_RUNS


def test_aggregate_and_best(local: SweepResult) -> None:
    runs, agg, best = local.runs, local.aggregate, local.best
    assert len(agg) == 4 and (agg["runs"] == 2).all() and (agg["ok"] == 2).all()
    assert list(zip(agg["bid_spread"], agg["order_amount"], strict=True)) == [
        (0.00005, 50),
        (0.00005, 100),
        (0.0002, 50),
        (0.0002, 100),
    ]
    for _, row in agg.iterrows():
        mine = runs[runs["set_id"] == row["set_id"]]
        assert row["net_pnl_mean"] == pytest.approx(mine["net_pnl"].mean(), abs=1e-6)
        assert row["net_pnl_median"] == pytest.approx(mine["net_pnl"].median(), abs=1e-6)
        assert row["net_pnl_worst_day"] == pytest.approx(mine["net_pnl"].min(), abs=1e-6)
        assert row["fills_total"] == mine["fills"].sum()
    assert local.metric == "net_pnl_mean"
    assert list(best["rank"]) == [1, 2, 3, 4]
    assert list(best["net_pnl_mean"]) == sorted(agg["net_pnl_mean"], reverse=True)
    html = (local.out / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") >= 4
    assert "<script" not in html and "http://" not in html and "https://" not in html


# ---- lost runs, failing runs, restarts ----------------------------------------------------------
class Flaky(cf.Executor):
    """A thread pool whose first submissions of some runs fail as if their worker died."""

    def __init__(self, failures: dict[str, int]) -> None:
        self.inner = cf.ThreadPoolExecutor(2)
        self.failures = failures
        self.submits: dict[str, int] = {}

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        run_id = args[1].run_id
        self.submits[run_id] = self.submits.get(run_id, 0) + 1
        if self.failures.get(run_id, 0) > 0:
            self.failures[run_id] -= 1
            fut: cf.Future[Any] = cf.Future()
            fut.set_exception(RuntimeError("worker lost"))
            return fut
        return self.inner.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.inner.shutdown(wait=wait, cancel_futures=cancel_futures)


def test_lost_runs_are_resubmitted_then_recorded(
    local: SweepResult, cfg: Path, grid: Path, tmp_path: Path
) -> None:
    ids = list(local.runs["run_id"])
    flaky = Flaky({ids[0]: 2, ids[1]: 10})
    try:
        res = sweep(cfg, grid, tmp_path, executor=flaky, retries=2)
    finally:
        flaky.shutdown()
    assert flaky.submits[ids[0]] == 3 and flaky.submits[ids[1]] == 3
    status = dict(zip(res.runs["run_id"], res.runs["status"], strict=True))
    assert status[ids[0]] == "ok" and status[ids[1]] == "error"
    assert sum(s == "ok" for s in status.values()) == N_RUNS - 1
    err = res.runs.set_index("run_id").loc[ids[1], "error"]
    assert "lost 3 times" in err and "RuntimeError: worker lost" in err
    ok = res.runs["status"] == "ok"
    pd.testing.assert_frame_equal(
        stable(res.runs[ok]).reset_index(drop=True),
        stable(local.runs[ok]).reset_index(drop=True),
    )


def test_a_failing_run_is_recorded_and_the_others_complete(
    monkeypatch: pytest.MonkeyPatch, cfg: Path, grid: Path, tmp_path: Path
) -> None:
    def bad(c: Any) -> bool:
        p = c.strategy.params
        return p["bid_spread"] == 0.0002 and p["order_amount"] == 100 and c.market.date.day == 24

    counting = Counting(fail=bad)
    monkeypatch.setattr(sweep_worker, "_run_backtest", counting)
    with cf.ThreadPoolExecutor(2) as pool:
        res = sweep(cfg, grid, tmp_path, executor=pool)
    assert counting.calls == N_RUNS
    failed = res.runs[res.runs["status"] == "error"]
    assert len(failed) == 1 and res.errors == 1 and not res.ok
    row = failed.iloc[0]
    assert (row["bid_spread"], row["order_amount"], row["day"]) == (0.0002, 100, "2026-11-24")
    assert row["error"].startswith("ValueError: boom")
    assert "test_sweep.py" in row["error"]  # the traceback summary
    assert pd.isna(row["net_pnl"])
    agg = res.aggregate.set_index(["bid_spread", "order_amount"])
    assert agg.loc[(0.0002, 100), "errors"] == 1 and agg.loc[(0.0002, 100), "ok"] == 1


def test_a_window_outside_an_early_close_is_an_error_run(cfg: Path, tmp_path: Path) -> None:
    # the day after Thanksgiving closes at 13:00 New York; the window starts after that
    g = {"grid": {"order_amount": [50, 100]}}
    with cf.ThreadPoolExecutor(2) as pool:
        res = sweep(
            cfg, g, tmp_path, days="2026-11-25:2026-11-27", window="13:30-13:32", executor=pool
        )
    by_day = res.runs.groupby("day")["status"].agg(set).to_dict()
    assert by_day == {"2026-11-25": {"ok"}, "2026-11-27": {"error"}}
    err = res.runs[res.runs["status"] == "error"]["error"].iloc[0]
    assert "outside the regular session of 2026-11-27" in err and "early close" in err


def test_interrupted_sweep_restarts_where_it_stopped(
    monkeypatch: pytest.MonkeyPatch, local: SweepResult, cfg: Path, grid: Path, tmp_path: Path
) -> None:
    counting = Counting()
    monkeypatch.setattr(sweep_worker, "_run_backtest", counting)
    seen: list[str] = []

    def stop_after_three(record: dict[str, Any]) -> None:
        seen.append(record["run_id"])
        if len(seen) == 3:
            raise KeyboardInterrupt

    pool = cf.ThreadPoolExecutor(1)
    with pytest.raises(KeyboardInterrupt):
        sweep(cfg, grid, tmp_path, executor=pool, callback=stop_after_three)
    pool.shutdown(wait=True)
    lines = (tmp_path / "runs.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["run_id"] for x in lines] == seen
    with open(tmp_path / "runs.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"run_id": "torn-by-a-crash", "sta')  # a write cut short

    counting.calls = 0
    with cf.ThreadPoolExecutor(2) as pool2:
        res = sweep(cfg, grid, tmp_path, executor=pool2)
    assert counting.calls == N_RUNS - 3
    assert (res.executed, res.skipped) == (N_RUNS - 3, 3)
    assert res.ok
    pd.testing.assert_frame_equal(stable(res.runs), stable(local.runs))

    # a third time: nothing left to run (no executor is even started)
    counting.calls = 0
    res3 = sweep(cfg, grid, tmp_path, executor="no-such-executor")
    assert counting.calls == 0 and res3.executed == 0 and res3.skipped == N_RUNS
    pd.testing.assert_frame_equal(stable(res3.runs), stable(local.runs))


def test_restart_with_another_window_is_refused(local: SweepResult, cfg: Path, grid: Path) -> None:
    with pytest.raises(ConfigError, match="another config, data or window"):
        sweep(cfg, grid, local.out, window="10:00-10:03")


def test_progress_line_without_tqdm(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    local: SweepResult,
    cfg: Path,
    grid: Path,
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    res = sweep(cfg, grid, local.out, progress=True)
    assert res.skipped == N_RUNS
    assert f"sweep: {N_RUNS}/{N_RUNS} runs, 0 errors" in capsys.readouterr().err


# ---- the grid -----------------------------------------------------------------------------------
def test_unknown_grid_key_is_a_config_error(cfg: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[grid]\nbid_spread = [0.001]\nbid_spred = [0.002]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        run_sweep(cfg, bad, days=DAYS, out=tmp_path / "o", progress=False)
    assert e.value.file == str(bad) and e.value.key == "grid.bid_spred"
    assert "allowed" in e.value.message and "bid_spread" in e.value.message
    assert not (tmp_path / "o").exists()  # nothing ran, nothing written


@pytest.mark.parametrize(
    ("text", "key", "what"),
    [
        ("[grid]\nbid_spread = [-0.5]\n", "grid.bid_spread", "fraction"),
        (
            "[[sets]]\nbid_spread = 0.001\n[[sets]]\nask_sprad = 0.001\n",
            "sets[1].ask_sprad",
            "allowed",
        ),
        ("[grid]\nsymbols = ['MSFT']\n", "grid.symbols", "market.symbols.MSFT"),
        ("[grids]\nbid_spread = [0.001]\n", "grids", "allowed: grid, sets, sweep, report"),
        ("[grid]\norder_amount = [50, 50]\n", "grid.order_amount", "twice"),
        ("[grid]\norder_amount = [50]\n[report]\nx = 'bid_spread'\n", "report.x", "swept"),
        ("[grid]\norder_amount = [50]\n[report]\nmetric = 'pnl'\n", "report.metric", "allowed"),
    ],
)
def test_bad_grids(cfg: Path, tmp_path: Path, text: str, key: str, what: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        run_sweep(cfg, bad, days=DAYS, out=tmp_path / "o", progress=False)
    assert e.value.file == str(bad)
    assert e.value.key == key
    assert what in e.value.message


def test_grid_product_crossed_with_sets() -> None:
    g = load_grid(
        {
            "grid": {"order_amount": [50, 100], "symbols": ["AAPL", "MSFT"]},
            "sets": [{"bid_spread": 0.001, "ask_spread": 0.002}, {"bid_spread": 0.003}],
        }
    )
    assert g.symbols == ["AAPL", "MSFT"]
    assert g.param_names() == ["order_amount", "bid_spread", "ask_spread"]
    assert g.param_sets() == [
        {"order_amount": 50, "bid_spread": 0.001, "ask_spread": 0.002},
        {"order_amount": 50, "bid_spread": 0.003},
        {"order_amount": 100, "bid_spread": 0.001, "ask_spread": 0.002},
        {"order_amount": 100, "bid_spread": 0.003},
    ]


def test_days_are_sessions_only() -> None:
    d = dt.date
    assert parse_days("2026-11-25:2026-11-30") == [
        d(2026, 11, 25),
        d(2026, 11, 27),
        d(2026, 11, 30),
    ]
    assert parse_days("2026-11-24,2026-11-02:2026-11-03") == [
        d(2026, 11, 2),
        d(2026, 11, 3),
        d(2026, 11, 24),
    ]
    with pytest.raises(ConfigError, match="not a trading day"):
        parse_days("2026-11-26")
    with pytest.raises(ConfigError, match="no trading day"):
        parse_days("2026-11-28:2026-11-29")


def test_symbol_axis(cfg: Path, tmp_path: Path) -> None:
    two = tmp_path / "two.toml"
    two.write_text(
        CONFIG.replace(
            "[session]", "[market.symbols.MSFT]\nstart_price = 420.0\nquote_rate = 5.0\n\n[session]"
        ),
        encoding="utf-8",
    )
    g = {"grid": {"order_amount": [50], "symbols": ["AAPL", "MSFT"]}}
    with cf.ThreadPoolExecutor(2) as pool:
        res = sweep(two, g, tmp_path / "o", days="2026-11-24", window="09:30-09:31", executor=pool)
    assert res.ok and sorted(res.runs["symbol"]) == ["AAPL", "MSFT"]
    pos = {r["symbol"]: json.loads(r["final_positions"]) for _, r in res.runs.iterrows()}
    assert set(pos["MSFT"]) <= {"paper:MSFT"} and set(pos["AAPL"]) <= {"paper:AAPL"}
    assert res.aggregate.loc[0, "symbols"] == 2


# ---- replay files: globs and URLs ---------------------------------------------------------------
def _replay_files(d: Path) -> None:
    rng = np.random.default_rng(5)
    for day in ("2026-11-23", "2026-11-24"):
        t0 = pd.Timestamp(f"{day}T14:30:00Z").value
        n = 600
        ts = t0 + np.arange(n) * 200_000_000  # every 200 ms for two minutes
        mid = 100 + np.cumsum(rng.choice([-0.01, 0, 0.01], n))
        pd.DataFrame(
            {
                "ts": ts,
                "symbol": "AAPL",
                "bid": (mid - 0.01).round(2),
                "bid_size": 300,
                "ask": (mid + 0.01).round(2),
                "ask_size": 300,
            }
        ).to_csv(d / f"quotes_{day}.csv", index=False)
        pd.DataFrame(
            {"ts": ts[::2] + 1, "symbol": "AAPL", "price": (mid[::2] - 0.01).round(2), "size": 400}
        ).to_csv(d / f"trades_{day}.csv", index=False)


def test_replay_data_by_glob_and_by_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import fsspec

    data = tmp_path / "data"
    data.mkdir()
    _replay_files(data)
    cfg = tmp_path / "replay.toml"
    cfg.write_text(
        '[venues.paper]\nbroker = "paper"\nfeed = "replay"\n\n[strategy]\n'
        'kind = "pure_market_making"\nvenue = "paper"\nsymbol = "AAPL"\n'
        "order_refresh_time = 1\nfilled_order_delay = 0.2\n",
        encoding="utf-8",
    )
    g = {"grid": {"bid_spread": [0.0001, 0.0003]}}
    with cf.ThreadPoolExecutor(2) as pool:
        by_path = sweep(
            cfg, g, tmp_path / "o1", data=[str(data / "*.csv")], window=None, executor=pool
        )
    assert by_path.ok and len(by_path.runs) == 4
    assert (by_path.runs["events"] == 900).all() and by_path.runs["fills"].sum() > 0
    meta = json.loads((tmp_path / "o1" / "sweep.json").read_text())
    assert sorted(Path(f).name for f in meta["data"]) == sorted(p.name for p in data.iterdir())

    # the same files behind URLs: the workers fetch them (once) into their cache
    mem = fsspec.filesystem("memory")
    for p in data.iterdir():
        mem.pipe(f"/tk-sweep-test/{p.name}", p.read_bytes())
    cache = tmp_path / "cache"
    monkeypatch.setenv(sweep_worker.CACHE_ENV, str(cache))
    try:
        with cf.ThreadPoolExecutor(2) as pool:
            by_url = sweep(
                cfg,
                g,
                tmp_path / "o2",
                data=["memory://tk-sweep-test/*.csv"],
                window=None,
                executor=pool,
            )
    finally:
        mem.rm("/tk-sweep-test", recursive=True)
    assert by_url.ok
    pd.testing.assert_frame_equal(stable(by_url.runs), stable(by_path.runs))
    assert len(list(cache.iterdir())) == 4  # one copy per file, however many runs read it

    with pytest.raises(DataError, match="matches no file"):
        sweep(cfg, g, tmp_path / "o3", data=[str(data / "*.parquet")], window=None)


# ---- executors ----------------------------------------------------------------------------------
def fake_ray(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A stand-in ``ray`` module with the interface the sweep uses (remote functions whose
    ObjectRefs give ``concurrent.futures`` futures), running tasks on threads."""
    state: dict[str, Any] = {"initialized": False, "init": [], "shutdown": 0, "options": []}
    pool = cf.ThreadPoolExecutor(2)

    class Ref:
        def __init__(self, fut: cf.Future[Any]) -> None:
            self._fut = fut

        def future(self) -> cf.Future[Any]:
            return self._fut

    def remote(**options: Any) -> Callable[[Callable[..., Any]], Any]:
        state["options"].append(options)

        def wrap(fn: Callable[..., Any]) -> Any:
            return types.SimpleNamespace(remote=lambda *a, **k: Ref(pool.submit(fn, *a, **k)))

        return wrap

    def init(**kw: Any) -> None:
        state["init"].append(kw)
        state["initialized"] = True

    def shutdown() -> None:
        state["shutdown"] += 1
        state["initialized"] = False

    mod = types.ModuleType("ray")
    mod.is_initialized = lambda: state["initialized"]  # type: ignore[attr-defined]
    mod.init = init  # type: ignore[attr-defined]
    mod.shutdown = shutdown  # type: ignore[attr-defined]
    mod.remote = remote  # type: ignore[attr-defined]
    mod.cancel = lambda ref, **kw: ref.future().cancel()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ray", mod)
    return state


def test_ray_executor(
    monkeypatch: pytest.MonkeyPatch, local: SweepResult, cfg: Path, grid: Path, tmp_path: Path
) -> None:
    state = fake_ray(monkeypatch)
    res = sweep(cfg, grid, tmp_path / "a", executor="ray", workers=2)
    assert res.ok and res.executor == "ray local"
    pd.testing.assert_frame_equal(stable(res.runs), stable(local.runs))
    assert state["init"] == [{"ignore_reinit_error": True, "num_cpus": 2}]
    assert state["shutdown"] == 1
    assert state["options"][0] == {"num_cpus": 1, "max_retries": 3}

    g = {"grid": {"order_amount": [50]}}
    sweep(
        cfg, g, tmp_path / "b", executor="ray://head:10001", days="2026-11-24", window="09:30-09:31"
    )
    assert state["init"][-1] == {"ignore_reinit_error": True, "address": "ray://head:10001"}

    # an already initialised Ray is used and left running
    state["initialized"] = True
    sweep(cfg, g, tmp_path / "c", executor="ray", days="2026-11-24", window="09:30-09:31")
    assert len(state["init"]) == 2 and state["shutdown"] == 2


def test_ray_executor_is_a_concurrent_futures_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_ray(monkeypatch)
    ex = RayExecutor()
    assert isinstance(ex, cf.Executor)
    assert [f.result() for f in [ex.submit(pow, 2, k) for k in range(4)]] == [1, 2, 4, 8]
    assert list(ex.map(abs, [-1, -2])) == [1, 2]
    ex.shutdown()
    with pytest.raises(RuntimeError):
        ex.submit(abs, 1)


@pytest.mark.parametrize(
    ("executor", "module", "extra"),
    [
        ("dask://127.0.0.1:8786", "distributed", "dask"),
        ("ray", "ray", "ray"),
    ],
)
def test_missing_package_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
    cfg: Path,
    grid: Path,
    tmp_path: Path,
    executor: str,
    module: str,
    extra: str,
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import fails
    with pytest.raises(ConfigError, match=rf'pip install "tradekit\[{extra}\]"'):
        sweep(cfg, grid, tmp_path, executor=executor)


def test_unknown_executor(cfg: Path, grid: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown executor 'spark'"):
        sweep(cfg, grid, tmp_path, executor="spark")


def test_importing_the_sweep_imports_neither_dask_nor_ray() -> None:
    import subprocess

    code = (
        "import sys, tradekit.sweep, tradekit.cli; "
        "print(sorted(m for m in ('distributed', 'dask', 'ray') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---- the command --------------------------------------------------------------------------------
def test_cli_end_to_end(
    capsys: pytest.CaptureFixture[str], local: SweepResult, cfg: Path, grid: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cli"
    argv = [
        "sweep",
        str(cfg),
        "--grid",
        str(grid),
        "--days",
        DAYS,
        "--window",
        WINDOW,
        "--executor",
        "local",
        "--workers",
        "2",
        "--out",
        str(out),
        "--quiet",
        "--metric",
        "fills",
        "--top",
        "3",
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "sweep: 8 runs (8 ok, 0 errors; 0 already done)" in text
    assert "best by fills_mean" in text and f"outputs: {out}" in text
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == N_RUNS
    pd.testing.assert_frame_equal(stable(runs), stable(pd.read_csv(local.out / "runs.csv")))
    best = pd.read_csv(out / "best.csv")
    assert len(best) == 3 and list(best["fills_mean"]) == sorted(best["fills_mean"], reverse=True)

    assert main(argv) == 0  # again: everything is done already
    assert "8 already done" in capsys.readouterr().out


def test_cli_bad_grid_exits_2(
    capsys: pytest.CaptureFixture[str], cfg: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[grid]\nspread = [0.001]\n", encoding="utf-8")
    assert main(["sweep", str(cfg), "--grid", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "grid.spread" in err and "allowed" in err


def test_cli_failed_runs_exit_1(
    capsys: pytest.CaptureFixture[str], cfg: Path, tmp_path: Path
) -> None:
    g = tmp_path / "g.toml"
    g.write_text("[grid]\norder_amount = [50]\n", encoding="utf-8")
    argv = [
        "sweep",
        str(cfg),
        "--grid",
        str(g),
        "--days",
        "2026-11-27",
        "--window",
        "13:30-13:31",
        "--workers",
        "1",
        "--out",
        str(tmp_path / "o"),
        "--quiet",
    ]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "1 of 1 runs failed" in captured.err and "runs.csv" in captured.err
    assert (tmp_path / "o" / "runs.csv").is_file()


def test_cli_help_lists_sweep(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "--help"]) == 0
    out = capsys.readouterr().out
    for opt in (
        "--grid",
        "--data",
        "--days",
        "--executor",
        "--workers",
        "--out",
        "--metric",
        "--seed",
    ):
        assert opt in out


# ---- Dask (last: its cluster lives until the module ends) ---------------------------------------
def test_dask_cluster_gives_the_same_table(
    local: SweepResult, cluster: Any, cfg: Path, grid: Path, tmp_path: Path
) -> None:
    lc, _ = cluster
    address = "dask://" + lc.scheduler_address.removeprefix("tcp://")
    res = sweep(cfg, grid, tmp_path, executor=address)
    assert res.executor.startswith("dask") and res.ok
    pd.testing.assert_frame_equal(stable(res.runs), stable(local.runs))
    pd.testing.assert_frame_equal(res.aggregate, local.aggregate)
    assert (tmp_path / "runs.csv").read_text() != ""


def test_dask_worker_killed_mid_sweep(
    local: SweepResult, cluster: Any, cfg: Path, grid: Path, tmp_path: Path
) -> None:
    _, client = cluster
    killed: list[int] = []

    def kill_one(record: dict[str, Any]) -> None:
        if killed:
            return
        busy = [a for a, keys in client.processing().items() if keys]
        assert busy, "no task in flight"
        pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    res = sweep(cfg, grid, tmp_path, executor=client, callback=kill_one)
    assert killed, "no worker was killed"
    assert killed[0] not in client.run(os.getpid).values()  # that worker process is gone
    assert res.ok, res.runs[["status", "error"]]
    pd.testing.assert_frame_equal(stable(res.runs), stable(local.runs))
