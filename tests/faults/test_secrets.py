"""API keys never appear in any output of a run: logs (every logger, DEBUG), stdout/stderr,
reprs, exceptions, summary/orders/fills/report, the journal and the reconciliation reports.

A ``tradekit run`` against the fake Alpaca (in a thread of its own, on 127.0.0.1) with the keys in
the environment; then a run whose keys the fake refuses (the authentication error is printed);
then every byte written is searched for the key values (also base64- and URL-encoded)."""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.alpaca import FakeAlpaca
from tradekit.cli import main as cli_main

KEY = "PKZ7Q2SECRETKEYID4711"
SECRET = "sK-9f8e7d6c5b4a3210-TOPSECRET-value"


def forms(value: str) -> list[bytes]:
    raw = value.encode()
    return [raw, base64.b64encode(raw), urllib.parse.quote(value).encode(), raw[4:-4]]


class FakeInThread:
    def __init__(self, **kw: object) -> None:
        self.fake = FakeAlpaca(key=KEY, secret=SECRET, **kw)  # type: ignore[arg-type]
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await self.fake.start()
        self._ready.set()
        await self._stop.wait()
        await self.fake.stop()

    def __enter__(self) -> FakeAlpaca:
        self._thread.start()
        assert self._ready.wait(30)
        return self.fake

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


def config(fake: FakeAlpaca) -> str:
    return f"""
[venues.alpaca]
broker = "alpaca"
feed = "alpaca"
base_url = "{fake.base_url}"
trading_stream_url = "{fake.stream_url}"
data_url = "{fake.base_url}"
data_stream_url = "{fake.data_stream_url()}"

[session]
shutdown_timeout_s = 1

[strategy]
kind = "pure_market_making"
venue = "alpaca"
symbol = "AAPL"
order_amount = 1
"""


def every_file(root: Path) -> Iterator[Path]:
    yield from (p for p in root.rglob("*") if p.is_file())


def test_keys_never_reach_any_output(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("APCA_API_KEY_ID", KEY)
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
    out = tmp_path / "out"
    with FakeInThread() as fake:
        fake.set_quote("AAPL", 190.00, 300, 190.02, 300)
        cfg = tmp_path / "bot.toml"
        cfg.write_text(config(fake))
        code = cli_main(
            ["run", str(cfg), "--duration", "2", "--out", str(out), "--journal",
             str(tmp_path / "bot.journal")]
        )  # fmt: skip
        assert code == 0, capsys.readouterr().err
        # keys the broker refuses: an authentication error, printed, exit code 1
        monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET + "-wrong")
        bad = cli_main(["run", str(cfg), "--duration", "1", "--out", str(tmp_path / "bad")])
        assert bad == 1
    # the keys also given in the config file: warned about, and still never shown
    text = cfg.read_text().replace(
        'broker = "alpaca"', f'broker = "alpaca"\napi_key = "{KEY}"\nsecret_key = "{SECRET}"'
    )
    cfg2 = tmp_path / "with-keys.toml"
    cfg2.write_text(text)
    cli_main(["check", str(cfg2)])
    from tradekit.brokers.alpaca import AlpacaBroker
    from tradekit.config import load_config

    loaded = load_config(cfg2)
    broker = AlpacaBroker(KEY, SECRET)
    captured = capsys.readouterr()
    blobs: dict[str, bytes] = {
        "stdout": captured.out.encode(),
        "stderr": captured.err.encode(),
        "logs": "\n".join(
            f"{r.name} {r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records
        ).encode(),
        "repr(config)": repr(loaded).encode() + str(loaded.to_dict()).encode(),
        "repr(broker)": repr(broker).encode() + str(vars(broker)).encode(),
    }
    files = list(every_file(tmp_path))
    names = {p.name for p in files}
    assert {"summary.json", "orders.csv", "fills.csv", "report.html", "bot.journal"} <= names
    for p in files:
        if p.name.endswith(".toml"):
            continue  # the user's own config file holds what the user put there
        blobs[str(p.relative_to(tmp_path))] = p.read_bytes()
    assert len(caplog.records) > 10
    for where, blob in blobs.items():
        for secret in (KEY, SECRET):
            for form in forms(secret):
                assert form not in blob, f"{secret[:4]}... found in {where}"
