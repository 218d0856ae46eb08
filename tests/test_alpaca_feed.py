"""AlpacaDataFeed against the fake Alpaca: alpaca-py's StockDataStream (msgpack, Timestamp ext)
and historical client end to end on 127.0.0.1. Quotes, trades and bars as tradekit values with
exact timestamps, halts and LULD bands as MarketStatus, reconnect and resubscribe, the watchdog
on a silent stream, paginated history and the replay-format download."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("alpaca")

from fakes.alpaca import FakeAlpaca, iso_ns, wait_for

from tradekit.brokers.alpaca import AlpacaDataFeed, CredentialsMissing, download
from tradekit.errors import ConfigError
from tradekit.feeds.replay import load_frame
from tradekit.model import Bar, MarketStatus, Quote, Trade
from tradekit.timeutil import parse_iso_ns

T0 = parse_iso_ns("2026-11-24T15:00:00.123456789Z")


@pytest.fixture
async def fake() -> AsyncIterator[FakeAlpaca]:
    async with FakeAlpaca(page_size=2) as f:
        yield f


def _feed(fake: FakeAlpaca, **kw: Any) -> AlpacaDataFeed:
    kw.setdefault("reconnect_backoff", (0.05, 0.3))
    return AlpacaDataFeed(
        "KEY",
        "SECRET",
        data_url=fake.base_url,
        data_stream_url=fake.data_stream_url("iex"),
        venue="alp",
        **kw,
    )


async def test_quotes_trades_bars_reach_listeners(fake: FakeAlpaca) -> None:
    got: list[Any] = []
    feed = _feed(fake)
    feed.add_listener(got.append)
    async with feed:
        feed.subscribe(["AAPL", "MSFT"], quotes=True, trades=True, bars=True)
        await wait_for(lambda: fake.subscribed("bars", "MSFT"), what="subscribed")
        assert fake.subscribed("quotes", "AAPL") and fake.subscribed("statuses", "AAPL")
        await fake.push_quote("AAPL", 190.00, 5, 190.02, 3, ts=T0)
        await fake.push_trade("MSFT", 410.5, 100, ts=T0 + 1)
        await fake.push_bar("AAPL", 190.0, 190.5, 189.5, 190.2, 12345, ts=T0 + 2)
        await fake.push_quote("TSLA", 1.0, 1, 1.01, 1, ts=T0 + 3)  # not subscribed
        await wait_for(lambda: len(got) == 3, what="three items")
    assert got[0] == Quote(T0, "AAPL", 190.00, 5.0, 190.02, 3.0, "alp")
    assert got[1] == Trade(T0 + 1, "MSFT", 410.5, 100.0, "alp")
    assert got[2] == Bar(T0 + 2, "AAPL", 190.0, 190.5, 189.5, 190.2, 12345.0, "alp")
    assert got[0].time.tzinfo is not None
    assert feed.messages == 3 and not feed.connected


async def test_halts_and_luld_bands(fake: FakeAlpaca) -> None:
    got: list[MarketStatus] = []
    feed = _feed(fake)
    feed.add_listener(got.append)
    async with feed:
        feed.subscribe("AAPL")
        await wait_for(lambda: fake.subscribed("lulds", "AAPL"), what="subscribed")
        await fake.push_status("AAPL", "H", "Trading Halt", "T1", ts=T0)
        await fake.push_luld("AAPL", 180.5, 199.5, ts=T0 + 1)
        await fake.push_status("AAPL", "T", "Trading Resumption", ts=T0 + 2)
        await wait_for(lambda: len(got) == 3, what="statuses")
    halt, band, resume = got
    assert halt.halted and halt.symbol == "AAPL" and "Trading Halt" in halt.reason
    assert band.halted and (band.lower_band, band.upper_band) == (180.5, 199.5)
    assert not resume.halted and resume.ts == T0 + 2 and resume.venue == "alp"


async def test_reconnect_resubscribes(fake: FakeAlpaca) -> None:
    got: list[Any] = []
    feed = _feed(fake, watchdog_s=None)
    feed.subscribe(["AAPL"], quotes=True, trades=False)  # before connect: applied at connect
    feed.add_listener(got.append)
    async with feed:
        await wait_for(lambda: fake.subscribed("quotes", "AAPL"), what="subscribed")
        feed.subscribe("MSFT", quotes=False, trades=True)  # while running
        await wait_for(lambda: fake.subscribed("trades", "MSFT"), what="MSFT")
        await fake.drop_data_streams()
        await wait_for(
            lambda: (
                fake.data_connections == 2
                and fake.subscribed("trades", "MSFT")
                and fake.subscribed("quotes", "AAPL")
            ),
            what="resubscribed",
        )
        assert feed.reconnects == 1
        await fake.push_quote("AAPL", 190.0, 1, 190.01, 1, ts=T0)
        await fake.push_trade("MSFT", 400.0, 10, ts=T0)
        await wait_for(lambda: len(got) == 2, what="data after the reconnect")
        feed.unsubscribe("MSFT")
        await wait_for(lambda: not fake.subscribed("trades", "MSFT"), what="unsubscribed")
        assert fake.subscribed("quotes", "AAPL")
        assert feed.subscriptions["trades"] == set()


async def test_watchdog_reconnects_a_silent_stream(fake: FakeAlpaca) -> None:
    got: list[Any] = []
    feed = _feed(fake, watchdog_s=0.3)
    feed.add_listener(got.append)
    async with feed:
        feed.subscribe("AAPL", trades=False)
        await wait_for(lambda: fake.subscribed("quotes", "AAPL"), what="subscribed")
        fake.data_muted = True  # connected, but nothing arrives
        await wait_for(lambda: fake.data_connections >= 2, timeout=5, what="watchdog")
        fake.data_muted = False
        await wait_for(lambda: fake.subscribed("quotes", "AAPL"), what="resubscribed")
        await fake.push_quote("AAPL", 190.0, 1, 190.01, 1, ts=T0)
        await wait_for(lambda: len(got) == 1, what="data again")
    assert feed.reconnects >= 1


def _rows(n: int, step_s: int = 60) -> list[int]:
    return [T0 + i * step_s * 1_000_000_000 for i in range(n)]


async def test_history_paginates(fake: FakeAlpaca) -> None:
    fake.history["quotes"]["AAPL"] = [
        {
            "t": iso_ns(t),
            "bx": "V",
            "bp": 190 + i / 100,
            "bs": 1 + i,
            "ax": "V",
            "ap": 190.05 + i / 100,
            "as": 2,
            "c": ["R"],
            "z": "C",
        }
        for i, t in enumerate(_rows(5))
    ]
    fake.history["bars"]["AAPL"] = [
        {
            "t": iso_ns(t),
            "o": 190,
            "h": 191,
            "l": 189,
            "c": 190.5,
            "v": 1000 + i,
            "n": 5,
            "vw": 190.2,
        }
        for i, t in enumerate(_rows(3, 300))
    ]
    feed = _feed(fake, page_size=100)
    df = await feed.get_quotes("AAPL", "2026-11-24", "2026-11-24")
    assert list(df.columns) == ["ts", "symbol", "bid", "bid_size", "ask", "ask_size", "venue"]
    assert len(df) == 5 and df["ts"].tolist() == _rows(5)
    assert df["bid"].tolist() == pytest.approx([190.0, 190.01, 190.02, 190.03, 190.04])
    reqs = [r for r in fake.history_requests if r["kind"] == "quotes"]
    assert len(reqs) == 3, "three pages of two"
    assert [r.get("page_token") for r in reqs] == [None, "2", "4"]
    assert reqs[0]["feed"] == "iex" and reqs[0]["symbols"] == "AAPL"
    assert reqs[0]["start"].startswith("2026-11-24T05:00:00")  # midnight in New York
    bars = await feed.get_bars("AAPL", T0, T0 + 3600 * 10**9, timeframe="5Min")
    assert len(bars) == 3 and bars["volume"].tolist() == [1000, 1001, 1002]
    assert next(r for r in fake.history_requests if r["kind"] == "bars")["timeframe"] == "5Min"
    empty = await feed.get_trades("AAPL", T0, T0 + 10**9)
    assert len(empty) == 0 and list(empty.columns)[:4] == ["ts", "symbol", "price", "size"]
    with pytest.raises(ConfigError):
        await feed.history("AAPL", T0, T0 + 1, kind="depth")
    await feed.close()


@pytest.fixture
def fake_in_thread() -> Iterator[FakeAlpaca]:
    """A fake served from its own event loop in a thread (for the blocking ``download``)."""
    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    fake = FakeAlpaca(page_size=2)
    asyncio.run_coroutine_threadsafe(fake.start(), loop).result(10)
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)
        loop.close()


def test_download_writes_the_replay_format(fake_in_thread: FakeAlpaca, tmp_path: Path) -> None:
    fake = fake_in_thread
    fake.history["trades"]["AAPL"] = [
        {
            "t": iso_ns(t),
            "x": "V",
            "p": 190 + i / 100,
            "s": 10 * (i + 1),
            "c": ["@"],
            "i": i,
            "z": "C",
        }
        for i, t in enumerate(_rows(5))
    ]
    out = download(
        "alpaca",
        symbol="AAPL",
        start="2026-11-24T14:00:00Z",
        end="2026-11-24T21:00:00Z",
        kind="trades",
        out=tmp_path / "aapl.csv",
        api_key="KEY",
        secret_key="SECRET",
        data_url=fake.base_url,
    )
    df = load_frame(out, strict=True)
    assert df["ts"].tolist() == _rows(5)
    assert df["price"].tolist() == pytest.approx([190.0, 190.01, 190.02, 190.03, 190.04])
    assert df["size"].tolist() == [10, 20, 30, 40, 50]
    assert set(df["venue"]) == {"alpaca"}
    with pytest.raises(ConfigError):
        download("ibkr", symbol="AAPL", start="2026-11-24", end="2026-11-24", out="x.csv")


def test_download_without_keys_names_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APCA_API_KEY_ID", raising=False)
    monkeypatch.delenv("APCA_API_SECRET_KEY", raising=False)
    with pytest.raises(CredentialsMissing, match="APCA_API_KEY_ID and APCA_API_SECRET_KEY"):
        download(
            symbol="AAPL",
            start="2026-11-24",
            end="2026-11-24",
            kind="bars",
            out="unused.csv",
            data_url="http://127.0.0.1:9",
        )


def test_importing_tradekit_never_imports_alpaca() -> None:
    code = (
        "import sys, tradekit, tradekit.brokers, tradekit.live, tradekit.config;"
        "assert 'alpaca' not in sys.modules, sorted(m for m in sys.modules if 'alpaca' in m)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
