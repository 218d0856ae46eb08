"""Tests of the ``tradekit`` command (tradekit.cli), run in-process through ``main([...])``; the
engine modules (backtest, live, results, data) are replaced by fakes in ``sys.modules`` so these
tests check the command layer only: argument passing, output and exit codes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tomllib
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tradekit import __version__
from tradekit.cli import main
from tradekit.config import Config, load_config
from tradekit.errors import ConfigError, DataError

GOOD = """\
[venues.sim]
broker = "paper"
rules = "alpaca"
latency_ms = 20
positions = { AAPL = -10 }

[market]
date = "2026-11-24"
seed = 3
[market.symbols.AAPL]
start_price = 190.0

[session]
hours = "extended"

[risk]
max_position = 1000

[strategy]
kind = "pure_market_making"
venue = "sim"
symbol = "AAPL"
"""

SUMMARY = {"strategy": "pure_market_making", "fills": 12, "net_pnl": 3.25}


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "bot.toml"
    path.write_text(GOOD, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _no_debug_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRADEKIT_DEBUG", raising=False)


class FakeResult:
    def __init__(self) -> None:
        self.summary = dict(SUMMARY)
        self.written: list[Path] = []

    def write(self, dir: str | os.PathLike[str]) -> Path:
        self.written.append(Path(dir))
        return Path(dir)


def fake_module(monkeypatch: pytest.MonkeyPatch, name: str, **attrs: Any) -> types.ModuleType:
    mod = types.ModuleType(name)
    for k, v in attrs.items():
        setattr(mod, k, v)
    monkeypatch.setitem(sys.modules, name, mod)
    return mod


@pytest.fixture
def results(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> types.ModuleType:
    """A fake ``tradekit.results`` (format_summary, default_out_dir)."""

    def format_summary(summary: dict[str, Any]) -> str:
        return "\n".join(f"SUMMARY {k} = {v}" for k, v in summary.items())

    return fake_module(
        monkeypatch,
        "tradekit.results",
        format_summary=format_summary,
        default_out_dir=lambda: tmp_path / "tradekit-out" / "20261124T000000Z",
    )


def fake_backtest(
    monkeypatch: pytest.MonkeyPatch, behaviour: Callable[[], None] | None = None
) -> list[dict[str, Any]]:
    """Install a fake ``tradekit.backtesting``; returns the recorded calls."""
    calls: list[dict[str, Any]] = []

    def backtest(config: Any, **kwargs: Any) -> FakeResult:
        calls.append({"config": config, **kwargs})
        if behaviour is not None:
            behaviour()
        result = FakeResult()
        calls[-1]["result"] = result
        return result

    fake_module(monkeypatch, "tradekit.backtesting", backtest=backtest)
    return calls


def fake_live(
    monkeypatch: pytest.MonkeyPatch, behaviour: Callable[[], None] | None = None
) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def run(config: Any, **kwargs: Any) -> FakeResult:
        calls.append(
            {"config": config, "level": logging.getLogger("tradekit").getEffectiveLevel(),
             **kwargs}
        )
        if behaviour is not None:
            behaviour()
        return FakeResult()

    fake_module(monkeypatch, "tradekit.live", run=run)
    return calls


def raiser(exc: BaseException) -> Callable[[], None]:
    def f() -> None:
        raise exc

    return f


# ------------------------------------------------------------------------------ check


def test_check_prints_resolved_settings(
    good: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(good)]) == 0
    out = capsys.readouterr().out
    assert str(good) in out
    doc = tomllib.loads(out)  # the output is TOML
    assert doc["venues"]["sim"]["feed"] == "synthetic"  # the default, resolved
    assert doc["session"]["calendar"] == "NYSE"
    assert doc["session"]["cancel_before_close_s"] == 60.0
    # and it loads back to the same settings
    again = load_config(doc)
    assert again.to_dict() == load_config(good).to_dict()


def test_check_json(good: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(good), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["market"] == {"date": "2026-11-24", "seed": 3,
                             "symbols": {"AAPL": {"start_price": 190.0}}}
    assert doc["venues"]["sim"]["positions"] == {"AAPL": -10}


def test_check_masks_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "alpaca.toml"
    path.write_text(
        '[venues.a]\nbroker = "alpaca"\napi_key = "AKFAKE-123456"\nsecret_key = "SKFAKE-654321"\n'
    )
    assert main(["check", str(path)]) == 0
    cap = capsys.readouterr()
    for text in (cap.out, cap.err):
        assert "AKFAKE-123456" not in text and "SKFAKE-654321" not in text
    assert 'api_key = "***"' in cap.out
    assert "environment" in cap.err  # the warning about credentials in a file


def test_check_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace("latency_ms = 20", "latncy_ms = 20"))
    assert main(["check", str(path)]) == 2
    cap = capsys.readouterr()
    assert "venues.sim.latncy_ms" in cap.err and str(path) in cap.err
    assert "Traceback" not in cap.err
    assert cap.err.count("\n") == 1  # one line


def test_check_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / "none.toml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_check_validates_strategy_params(
    good: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    built: list[Any] = []

    def build(kind: str, params: dict[str, Any], *, file: str | None = None) -> object:
        built.append((kind, params, file))
        if "bid_sprad" in params:
            raise ConfigError("unknown parameter", file=file, key="strategy.bid_sprad")
        return object()

    fake_module(monkeypatch, "tradekit.strategies", build=build, registry={})
    assert main(["check", str(good)]) == 0
    assert built == [("pure_market_making", {"venue": "sim", "symbol": "AAPL"}, str(good))]
    capsys.readouterr()
    good.write_text(GOOD + "bid_sprad = 0.01\n")
    assert main(["check", str(good)]) == 2
    assert "strategy.bid_sprad" in capsys.readouterr().err


def test_check_without_strategy_registry(
    good: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "tradekit.strategies", None)
    assert main(["check", str(good)]) == 0
    assert "not checked" in capsys.readouterr().err


# ------------------------------------------------------------------------------ calendar


def test_calendar_early_close(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calendar", "2026-11-27"]) == 0
    out = capsys.readouterr().out
    assert "early close" in out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "09:30-13:00 ET" in lines["regular"]  # the 13:00 ET close
    assert "13:00-17:00 ET" in lines["post"]  # post session until 17:00 ET
    assert "14:30-18:00 UTC" in lines["regular"]
    assert "04:00-09:30 ET" in lines["pre"]


def test_calendar_holiday(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calendar", "2026-11-26"]) == 0
    out = capsys.readouterr().out
    assert "closed" in out and "holiday" in out
    assert "next trading day: 2026-11-27" in out


def test_calendar_regular_day_in_summer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calendar", "2026-07-02"]) == 0
    out = capsys.readouterr().out
    assert "09:30-16:00 ET" in out and "13:30-20:00 UTC" in out  # EDT: UTC-4


def test_calendar_default_is_today(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calendar"]) == 0
    assert "NYSE" in capsys.readouterr().out


def test_calendar_bad_date_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calendar", "27/11/2026"]) == 2
    assert "bad date" in capsys.readouterr().err


def test_calendar_unknown_calendar_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calendar", "2026-11-27", "--calendar", "LSE"]) == 2
    assert "LSE" in capsys.readouterr().err


# ------------------------------------------------------------------------------ usage


def test_unknown_subcommand_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_no_subcommand_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage:" in capsys.readouterr().err


def test_missing_config_argument_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest"]) == 2
    assert "CONFIG" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"tradekit {__version__}"


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--help"]) == 0
    assert "--strict" in capsys.readouterr().out


# ------------------------------------------------------------------------------ backtest


def test_backtest_passes_arguments(
    good: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    results: types.ModuleType,
    capsys: pytest.CaptureFixture[str],
) -> None:
    calls = fake_backtest(monkeypatch)
    out = tmp_path / "out"
    code = main([
        "backtest", str(good), "--data", "a.csv", "--data", "b.parquet",
        "--start", "2026-11-24T14:30:00Z", "--end", "2026-11-24T21:00:00+00:00",
        "--seed", "9", "--out", str(out), "--strict", "--quiet",
    ])
    assert code == 0
    (call,) = calls
    assert isinstance(call["config"], Config) and call["config"].path == str(good)
    assert call["data"] == ["a.csv", "b.parquet"]
    assert call["start"] == "2026-11-24T14:30:00Z"
    assert call["end"] == "2026-11-24T21:00:00+00:00"
    assert call["seed"] == 9
    assert call["strict"] is True
    assert call["progress"] is False
    assert call["result"].written == [out]
    stdout = capsys.readouterr().out
    assert "SUMMARY net_pnl = 3.25" in stdout and "SUMMARY fills = 12" in stdout
    assert str(out) in stdout


def test_backtest_defaults(
    good: Path, monkeypatch: pytest.MonkeyPatch, results: types.ModuleType,
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    calls = fake_backtest(monkeypatch)
    assert main(["backtest", str(good)]) == 0
    (call,) = calls
    assert call["data"] is None and call["start"] is None and call["end"] is None
    assert call["seed"] is None and call["strict"] is False and call["progress"] is True
    default = tmp_path / "tradekit-out" / "20261124T000000Z"
    assert call["result"].written == [default]
    assert str(default) in capsys.readouterr().out


def test_backtest_default_out_dir_of_the_real_results_module(
    good: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("tradekit.results")
    calls = fake_backtest(monkeypatch)
    monkeypatch.chdir(tmp_path)
    assert main(["backtest", str(good), "--quiet"]) == 0
    (written,) = calls[0]["result"].written
    assert written.parts[0] == "tradekit-out" and written.name.endswith("Z")


def test_backtest_log_level(
    good: Path, monkeypatch: pytest.MonkeyPatch, results: types.ModuleType
) -> None:
    levels: list[int] = []
    fake_backtest(
        monkeypatch, lambda: levels.append(logging.getLogger("tradekit").getEffectiveLevel())
    )
    before = logging.getLogger("tradekit").level
    assert main(["backtest", str(good)]) == 0
    assert main(["backtest", str(good), "--log-level", "debug"]) == 0
    assert main(["--log-level", "ERROR", "backtest", str(good)]) == 0
    assert levels == [logging.WARNING, logging.DEBUG, logging.ERROR]
    assert logging.getLogger("tradekit").level == before  # restored


def test_backtest_bad_timestamp_exits_2(
    good: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = fake_backtest(monkeypatch)
    assert main(["backtest", str(good), "--start", "yesterday"]) == 2
    assert "--start" in capsys.readouterr().err
    assert main(["backtest", str(good), "--seed", "x"]) == 2
    assert calls == []


@pytest.mark.parametrize(
    ("exc", "code", "text"),
    [
        (ConfigError("unknown venue", file="bot.toml", key="strategy.venue"), 2,
         "bot.toml: strategy.venue: unknown venue"),
        (DataError("q.csv:3: crossed quote"), 2, "q.csv:3: crossed quote"),
        (RuntimeError("engine exploded"), 1, "RuntimeError: engine exploded"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
)
def test_backtest_exit_codes(
    good: Path,
    monkeypatch: pytest.MonkeyPatch,
    results: types.ModuleType,
    capsys: pytest.CaptureFixture[str],
    exc: BaseException,
    code: int,
    text: str,
) -> None:
    fake_backtest(monkeypatch, raiser(exc))
    assert main(["backtest", str(good)]) == code
    cap = capsys.readouterr()
    assert text in cap.err
    assert "Traceback" not in cap.err
    assert "SUMMARY" not in cap.out


def test_backtest_bad_config_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = fake_backtest(monkeypatch)
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace('hours = "extended"', 'hours = "always"'))
    assert main(["backtest", str(path)]) == 2
    assert "session.hours" in capsys.readouterr().err
    assert calls == []


def test_traceback_only_with_debug(
    good: Path, monkeypatch: pytest.MonkeyPatch, results: types.ModuleType,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_backtest(monkeypatch, raiser(RuntimeError("boom")))
    assert main(["backtest", str(good), "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: boom" in err
    assert main(["--debug", "backtest", str(good)]) == 1
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("TRADEKIT_DEBUG", "1")
    assert main(["backtest", str(good)]) == 1
    assert "Traceback" in capsys.readouterr().err


# ------------------------------------------------------------------------------ run


def test_run_passes_arguments(
    good: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, results: types.ModuleType,
    capsys: pytest.CaptureFixture[str],
) -> None:
    calls = fake_live(monkeypatch)
    journal = tmp_path / "j.sqlite"
    code = main([
        "run", str(good), "--duration", "30", "--speed", "10", "--out", str(tmp_path / "o"),
        "--journal", str(journal),
    ])
    assert code == 0
    (call,) = calls
    assert isinstance(call["config"], Config)
    assert call["duration"] == 30.0 and call["speed"] == 10.0
    assert Path(call["out"]) == tmp_path / "o"
    assert call["journal"] == str(journal)
    assert call["level"] == logging.INFO  # run logs at INFO by default
    out = capsys.readouterr().out
    assert "SUMMARY net_pnl = 3.25" in out


def test_run_defaults(
    good: Path, monkeypatch: pytest.MonkeyPatch, results: types.ModuleType, tmp_path: Path
) -> None:
    calls = fake_live(monkeypatch)
    assert main(["run", str(good)]) == 0
    (call,) = calls
    assert call["duration"] is None and call["speed"] == 1.0 and call["journal"] is None
    assert Path(call["out"]) == tmp_path / "tradekit-out" / "20261124T000000Z"


@pytest.mark.parametrize(
    ("exc", "code"),
    [(ConfigError("x", key="journal"), 2), (DataError("bad"), 2), (RuntimeError("no"), 1),
     (KeyboardInterrupt(), 130)],
)
def test_run_exit_codes(
    good: Path, monkeypatch: pytest.MonkeyPatch, results: types.ModuleType,
    exc: BaseException, code: int, capsys: pytest.CaptureFixture[str],
) -> None:
    fake_live(monkeypatch, raiser(exc))
    assert main(["run", str(good)]) == code
    assert capsys.readouterr().err


def test_run_bad_speed_exits_2(good: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(good), "--speed", "0"]) == 2
    assert "--speed" in capsys.readouterr().err


# ------------------------------------------------------------------------------ data download

DOWNLOAD = ["data", "download", "--venue", "alpaca", "AAPL", "--start", "2026-11-24",
            "--end", "2026-11-25T00:00:00Z", "--kind", "quotes", "--out", "q.csv"]


def test_data_download_without_adapter_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "tradekit.data", None)  # not installed
    assert main(DOWNLOAD) == 2
    err = capsys.readouterr().err
    assert "alpaca" in err and "not available" in err


def test_data_download_calls_the_adapter(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[dict[str, Any]] = []

    def download(**kw: Any) -> str:
        calls.append(kw)
        return str(kw["out"])

    fake_module(monkeypatch, "tradekit.data", download=download)
    assert main(DOWNLOAD) == 0
    assert calls == [{"venue": "alpaca", "symbol": "AAPL", "start": "2026-11-24",
                      "end": "2026-11-25T00:00:00Z", "kind": "quotes", "out": "q.csv"}]
    assert "q.csv" in capsys.readouterr().out


def test_data_download_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data"]) == 2
    bad = [a if a != "quotes" else "ticks" for a in DOWNLOAD]
    assert main(bad) == 2
    assert "ticks" in capsys.readouterr().err


# ------------------------------------------------------------------------------ entry points


def test_python_m_tradekit_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tradekit", "--version"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"tradekit {__version__}"


def test_console_script_exit_code(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "tradekit"
    if not script.exists():
        pytest.skip("tradekit console script not installed next to this interpreter")
    proc = subprocess.run(
        [str(script), "check", str(tmp_path / "missing.toml")],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 2
    assert "not found" in proc.stderr
