"""IBKRDataFeed against the fake TWS: top-of-book quotes and trades (reqMktData and
tick-by-tick) with the venue set, depth per exchange, FX quotes and conversion, resubscription
after a reconnect or error 1101, historical bars and ticks (chunked, paged, paced) in the replay
columns, and ``download`` writing the replay file format."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fakes.tws import FakeTWS, IBLogGuard

from tradekit.brokers.ibkr import (
    DepthBook,
    HistoricalPacer,
    IBKRBroker,
    IBKRDataFeed,
    download_async,
)
from tradekit.clock import SimClock
from tradekit.errors import ConfigError, DataError
from tradekit.feeds.replay import COLUMNS, load_frame
from tradekit.model import Quote, Trade
from tradekit.testing import DEFAULT_START
from tradekit.timeutil import to_ns


@pytest.fixture(autouse=True)
def no_decode_errors() -> Iterator[IBLogGuard]:
    with IBLogGuard() as guard:
        yield guard
    assert not guard.records, "ib_async logged decode errors:\n" + "\n".join(guard.problems())


@pytest.fixture
async def fake() -> AsyncIterator[FakeTWS]:
    async with FakeTWS(clock=SimClock(DEFAULT_START)) as f:
        f.set_quote("AAPL", 190.00, 500, 190.02, 400)
        f.set_quote("USD.CAD", 1.3990, 1_000_000, 1.3992, 2_000_000)
        yield f


def feed_of(fake: FakeTWS, **kw: Any) -> tuple[IBKRDataFeed, list[Any]]:
    kw.setdefault("client_id", 5)
    kw.setdefault("reconnect_delay", 0.05)
    feed = IBKRDataFeed(port=fake.port, clock=fake._clock, venue="ib", **kw)
    got: list[Any] = []
    feed.add_listener(got.append)
    return feed, got


async def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def quotes(got: list[Any], symbol: str = "AAPL") -> list[tuple[float, float, float, float]]:
    return [
        (q.bid, q.bid_size, q.ask, q.ask_size)
        for q in got
        if isinstance(q, Quote) and q.symbol == symbol
    ]


async def test_quotes_and_trades_pushed_with_venue(fake: FakeTWS) -> None:
    feed, got = feed_of(fake)
    async with feed:
        feed.subscribe(["AAPL"])
        await feed.sync()
        assert quotes(got)[-1] == (190.00, 500, 190.02, 400)
        fake.set_quote("AAPL", 190.01, 300, 190.03, 200)
        fake.trade("AAPL", 190.02, 75)
        await feed.sync()
        assert quotes(got)[-1] == (190.01, 300, 190.03, 200)
        trades = [t for t in got if isinstance(t, Trade)]
        assert [(t.symbol, t.price, t.size) for t in trades] == [("AAPL", 190.02, 75)]
        assert all(x.venue == "ib" for x in got)
        assert all(x.ts == DEFAULT_START for x in got), "stamped by the feed's clock"
        n = len(got)
        feed.unsubscribe("AAPL")
        await feed.sync()
        fake.set_quote("AAPL", 190.05, 300, 190.07, 200)
        await feed.sync()
        assert len(got) == n
        assert fake.requests("cancelMktData") == 1


async def test_tick_by_tick(fake: FakeTWS) -> None:
    feed, got = feed_of(fake, tick_by_tick=True)
    async with feed:
        feed.subscribe("AAPL")
        await feed.sync()
        fake.set_quote("AAPL", 190.01, 100, 190.02, 100)
        fake.trade("AAPL", 190.02, 10)
        await feed.sync()
        assert fake.requests("reqTickByTickData") == 2 and fake.requests("reqMktData") == 0
        assert quotes(got) == [(190.00, 500, 190.02, 400), (190.01, 100, 190.02, 100)]
        assert [(t.price, t.size) for t in got if isinstance(t, Trade)] == [(190.02, 10)]


async def test_depth_per_exchange(fake: FakeTWS) -> None:
    fake.set_quote("AAPL", 190.00, 200, 190.03, 100, exchange="ARCA")
    feed, got = feed_of(fake)
    async with feed:
        feed.subscribe_depth("AAPL", rows=3, exchange="ARCA")
        await feed.sync()
        books = [b for b in got if isinstance(b, DepthBook)]
        assert books and books[-1].exchange == "ARCA" and books[-1].venue == "ib"
        last = books[-1]
        assert [p for p, _, _ in last.bids] == [190.00, 189.99, 189.98]
        assert [p for p, _, _ in last.asks] == [190.03, 190.04, 190.05]
        assert last.bids[0][1] == 200 and last.asks[0][1] == 100
        fake.set_quote("AAPL", 190.01, 250, 190.03, 100, exchange="ARCA")
        await feed.sync()
        assert [b for b in got if isinstance(b, DepthBook)][-1].bids[0][:2] == (190.01, 250)
        assert not [q for q in got if isinstance(q, Quote)], "depth alone publishes no quotes"


async def test_fx_quotes_and_conversion(fake: FakeTWS) -> None:
    feed, got = feed_of(fake)
    async with feed:
        feed.subscribe_fx("USD.CAD")
        await feed.sync()
        assert quotes(got, "USD.CAD") == [(1.3990, 1_000_000, 1.3992, 2_000_000)]
        assert feed.fx_rate("USD.CAD") == pytest.approx(1.3991)
        assert feed.fx_rate("CAD.USD") == pytest.approx(1 / 1.3991)
        assert feed.convert(100.0, "USD", "CAD") == pytest.approx(139.91)
        assert feed.convert(100.0, "USD", "USD") == 100.0
        assert feed.convert(1.0, "EUR", "USD") is None
        with pytest.raises(ConfigError):
            feed.subscribe_fx("USDCAD!")


async def test_feed_shares_the_broker_connection(fake: FakeTWS) -> None:
    broker = IBKRBroker(port=fake.port, client_id=5, clock=fake._clock, symbols=["AAPL"])
    feed, got = feed_of(fake)
    async with broker, feed:
        feed.subscribe("AAPL")
        await feed.sync()
        assert fake.connections == 1 and broker.session is feed.session
        assert quotes(got)
        # one contract-details request serves both
        assert fake.requests("reqContractDetails") == 1


async def test_resubscribes_after_reconnect_and_1101(fake: FakeTWS) -> None:
    feed, got = feed_of(fake)
    async with feed:
        feed.subscribe("AAPL")
        await feed.sync()
        s = feed.session
        assert s is not None
        fake.drop_clients()
        await wait_until(lambda: s.state != "ready")
        await wait_until(lambda: s.ready)
        await feed.sync()
        assert fake.requests("reqMktData") == 2
        fake.set_quote("AAPL", 190.10, 100, 190.12, 100)
        await feed.sync()
        assert quotes(got)[-1] == (190.10, 100, 190.12, 100)
        fake.broadcast_error(1101)
        await wait_until(lambda: fake.requests("reqMktData") == 3)
        fake.broadcast_error(1102)  # data maintained: no resubscription
        await feed.sync()
        await asyncio.sleep(0.05)
        assert fake.requests("reqMktData") == 3
        fake.set_quote("AAPL", 190.20, 100, 190.22, 100)
        await feed.sync()
        assert quotes(got)[-1] == (190.20, 100, 190.22, 100)


async def test_history_bars_chunked(fake: FakeTWS) -> None:
    feed, _ = feed_of(fake)
    async with feed:
        df = await feed.history(
            "AAPL", "2026-11-23T14:30:00Z", "2026-11-24T21:00:00Z", timeframe="1Min"
        )
        assert list(df.columns) == list(COLUMNS["bars"]) and df.attrs["kind"] == "bars"
        assert str(df["ts"].dtype) == "int64"
        lo, hi = to_ns("2026-11-23T14:30:00Z"), to_ns("2026-11-24T21:00:00Z")
        assert df["ts"].is_monotonic_increasing and df["ts"].is_unique
        assert df["ts"].iloc[0] == lo and df["ts"].iloc[-1] == hi - 60 * 10**9
        assert len(df) == (hi - lo) // (60 * 10**9)
        assert (df["symbol"] == "AAPL").all()
        assert (df["high"] >= df[["open", "close"]].max(axis=1)).all()
        assert fake.requests("reqHistoricalData") == 2, "one request per day of 1-min bars"
        daily = await feed.history("AAPL", "2026-11-02", "2026-11-24", timeframe="1Day")
        assert 20 <= len(daily) <= 23
        with pytest.raises(ConfigError, match="timeframe"):
            await feed.history("AAPL", "2026-11-23", "2026-11-24", timeframe="7Min")
        with pytest.raises(DataError, match="NOPE"):
            await feed.history("NOPE", "2026-11-23", "2026-11-24")


async def test_history_quotes_and_trades_paged(fake: FakeTWS) -> None:
    feed, _ = feed_of(fake)
    async with feed:
        start, end = "2026-11-24T14:30:00Z", "2026-11-24T18:00:00Z"
        q = await feed.history("AAPL", start, end, kind="quotes")
        assert list(q.columns) == list(COLUMNS["quotes"])
        # the fake prints two ticks every 5 s: 12,600 s -> 5,040 ticks, 1,000 a page
        assert len(q) == 2 * (12_600 // 5)
        assert q["ts"].is_monotonic_increasing
        assert not q.duplicated().any(), "no tick twice across page boundaries"
        assert (q["bid"] < q["ask"]).all()
        assert fake.requests("reqHistoricalTicks") == 6
        t = await feed.history("AAPL", start, "2026-11-24T14:40:00Z", kind="trades")
        assert list(t.columns) == list(COLUMNS["trades"]) and len(t) == 240
        with pytest.raises(DataError, match="no trades for FX"):
            await feed.history("USD.CAD", start, end, kind="trades")


async def test_historical_pacing_spaces_identical_requests(fake: FakeTWS) -> None:
    fake.hist_identical_gap = 0.3
    pacer = HistoricalPacer(identical_gap=0.3, same_contract=(5, 2.0))
    feed, _ = feed_of(fake, historical_pacer=pacer)
    async with feed:
        t0 = time.monotonic()
        for _ in range(3):
            await feed.history("AAPL", "2026-11-24T14:30:00Z", "2026-11-24T15:00:00Z")
        assert time.monotonic() - t0 >= 0.6
        assert fake.hist_violations == 0 and pacer.waits == 2


def test_historical_pacer_rules() -> None:
    now = [0.0]
    p = HistoricalPacer(
        max_requests=3,
        window=10.0,
        identical_gap=15.0,
        same_contract=(2, 2.0),
        clock=lambda: now[0],
    )
    p._log.extend([(0.0, "a", 1), (0.5, "b", 1)])
    assert p.delay("a", 2) == pytest.approx(15.0)  # identical within 15 s
    assert p.delay("c", 1) == pytest.approx(2.0)  # 2 for contract 1 within 2 s
    p._log.append((1.0, "d", 3))
    now[0] = 2.5
    assert p.delay("e", 4) == pytest.approx(7.5)  # 3 in 10 s


async def test_download_writes_the_replay_format(fake: FakeTWS, tmp_path: Path) -> None:
    out = await download_async(
        "AAPL",
        "2026-11-24T14:30:00Z",
        "2026-11-24T15:30:00Z",
        "bars",
        tmp_path / "aapl.csv",
        port=fake.port,
        client_id=99,
    )
    assert out == tmp_path / "aapl.csv"
    df = load_frame(out, strict=True)
    assert df.attrs["kind"] == "bars" and len(df) == 60
    assert df["ts"].iloc[0] == to_ns(datetime(2026, 11, 24, 14, 30, tzinfo=UTC))
    feed, _ = feed_of(fake)
    async with feed:
        pq = await feed.download(
            "AAPL",
            "2026-11-24T14:30:00Z",
            "2026-11-24T14:35:00Z",
            tmp_path / "q.parquet",
            kind="quotes",
        )
    back = pd.read_parquet(pq)
    assert list(back.columns) == list(COLUMNS["quotes"]) and len(back) == 120


def test_feed_from_venue_config_ignores_other_keys() -> None:
    feed = IBKRBroker.feed_from_venue_config(
        "paper_ib",
        {
            "host": "127.0.0.1",
            "port": 4002,
            "client_id": 3,
            "latency_ms": 5,
            "cash": 1000,
            "rules": "ibkr",
        },
    )
    assert (feed.venue, feed.port, feed.client_id, feed.route) == ("paper_ib", 4002, 3, "SMART")
    with pytest.raises(ConfigError, match="market_data_type"):
        IBKRDataFeed(market_data_type=7)
