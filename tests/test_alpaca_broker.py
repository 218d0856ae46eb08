"""AlpacaBroker against the fake Alpaca (tests/fakes/alpaca.py): the real alpaca-py REST client
and trade-updates stream end to end on 127.0.0.1. Construction and config, exact prices on the
wire, order types, replace, instruments, the request budget, 429 storms, 5xx and timeouts on
submit (looked up, never sent twice blindly), the stream dropping while orders fill
(reconciliation), duplicate and early fill events, credentials hygiene, and a live run of the
pure market maker wired through the config."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("alpaca")

from fakes.alpaca import AlpacaHarness, FakeAlpaca, wait_for

import tradekit.brokers
from tradekit.brokers.alpaca import (
    LIVE_URL,
    PAPER_URL,
    AlpacaBroker,
    AlpacaDataFeed,
    CredentialsMissing,
    MonotonicRateLimiter,
    stream_url_for,
)
from tradekit.enums import Liquidity, OrderStatus, OrderType, RejectReason, Side
from tradekit.errors import AuthError, ConfigError, OrderRejected
from tradekit.model import Order
from tradekit.rules import OrderRules, RulesProfile
from tradekit.testing import EventRecorder, et

SYM = "AAPL"


@pytest.fixture
async def h() -> AsyncIterator[AlpacaHarness]:
    async with AlpacaHarness() as harness:
        yield harness


def _bodies(fake: FakeAlpaca, method: str = "POST") -> list[dict[str, Any]]:
    return [json.loads(t) for m, _, t in fake.bodies if m == method]


async def _resting(
    h: AlpacaHarness, side: Side = Side.BUY, qty: float = 100, price: float = 189.90
) -> Order:
    o = h.broker.submit_order(SYM, side, qty, limit_price=price)
    await h.settle()
    assert o.status is OrderStatus.NEW, o
    return o


# ---------------------------------------------------------------------------- construction


def test_declared() -> None:
    assert tradekit.brokers.get("alpaca") is AlpacaBroker
    assert AlpacaBroker.name == "alpaca" and AlpacaBroker.rules_profile == "alpaca"
    assert AlpacaBroker.requests_per_minute == 200
    c = AlpacaBroker.capabilities
    assert (c.replace_in_place, c.fractional, c.extended_hours, c.shorting, c.depth) == (
        True,
        True,
        True,
        True,
        False,
    )


def test_urls_and_env_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APCA_API_BASE_URL", raising=False)
    b = AlpacaBroker()
    assert b.base_url == PAPER_URL
    assert b.trading_stream_url == "wss://paper-api.alpaca.markets/stream"
    assert AlpacaBroker(paper=False).base_url == LIVE_URL
    assert AlpacaBroker(paper=False).trading_stream_url == "wss://api.alpaca.markets/stream"
    monkeypatch.setenv("APCA_API_BASE_URL", "https://paper-api.alpaca.markets/v2/")
    assert AlpacaBroker().base_url == PAPER_URL
    b = AlpacaBroker(base_url="http://127.0.0.1:8080")
    assert b.trading_stream_url == "ws://127.0.0.1:8080/stream"
    assert stream_url_for("https://x.example/v2") == "wss://x.example/stream"
    b = AlpacaBroker(base_url="http://h:1", trading_stream_url="http://h:2/stream")
    assert b.trading_stream_url == "ws://h:2/stream"
    assert isinstance(b.throttle, MonotonicRateLimiter) and b.throttle.limit == 200


def test_keys_never_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APCA_API_SECRET_KEY", "env-secret-value")
    b = AlpacaBroker("my-key-id", "my-secret-value")
    for text in (repr(b), str(b), repr(vars(b))):
        assert "my-secret-value" not in text and "my-key-id" not in text
        assert "env-secret-value" not in text
    f = AlpacaDataFeed("my-key-id", "my-secret-value")
    assert "my-secret-value" not in repr(vars(f)) and "my-key-id" not in repr(f)


async def test_missing_keys_raise_auth_error_naming_the_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("APCA_API_KEY_ID", raising=False)
    monkeypatch.setenv("APCA_API_SECRET_KEY", "s3cr3t-value")
    b = AlpacaBroker(base_url="http://127.0.0.1:9")
    with pytest.raises(AuthError) as info:
        await b.connect()
    msg = str(info.value)
    assert "APCA_API_KEY_ID" in msg and "s3cr3t-value" not in msg
    assert isinstance(info.value, ConfigError)  # `tradekit run` exits 2 and says what to set
    assert not b.connected
    monkeypatch.delenv("APCA_API_SECRET_KEY")
    with pytest.raises(CredentialsMissing, match="APCA_API_KEY_ID and APCA_API_SECRET_KEY"):
        await AlpacaDataFeed().connect()


def test_from_venue_config() -> None:
    b = AlpacaBroker.from_venue_config(
        "alp",
        {
            "paper": False,
            "base_url": "https://example.test",
            "api_key": "k",
            "secret_key": "s",
            "data_feed": "sip",
            "data_url": "https://data.example.test",
        },
        risk={"max_order_qty": 10},
    )
    assert isinstance(b, AlpacaBroker) and b.venue == "alp" and not b.paper
    assert b.base_url == "https://example.test"
    assert b.trading_stream_url == "wss://example.test/stream"
    assert b.risk.limits.max_order_qty == 10
    with pytest.raises(ConfigError, match="unknown key"):
        AlpacaBroker.from_venue_config("alp", {"latency_ms": 3})
    f = AlpacaBroker.feed_from_venue_config(
        "alp", {"data_feed": "sip", "data_stream_url": "ws://127.0.0.1:1/v2/sip"}
    )
    assert isinstance(f, AlpacaDataFeed) and f.venue == "alp" and f.feed == "sip"
    assert f.data_stream_url == "ws://127.0.0.1:1/v2/sip"
    with pytest.raises(ConfigError, match="iex, sip"):
        AlpacaDataFeed(feed="otc")


# ---------------------------------------------------------------------------- orders out


async def test_exact_prices_on_the_wire(h: AlpacaHarness) -> None:
    b = h.broker
    b.submit_order(SYM, Side.BUY, 100, limit_price=189.01)
    b.submit_order(SYM, Side.BUY, 3, limit_price=0.1 + 0.2 + 189.0)  # 189.30000000000001
    b.submit_order("PENNY", Side.BUY, 1000, limit_price=0.1 + 0.2)  # 0.30000000000000004
    await h.settle()
    raw = sorted(
        (t for m, _, t in h.fake.bodies if m == "POST"),
        key=lambda t: json.loads(t)["client_order_id"],
    )
    assert len(raw) == 3
    assert '"limit_price": "189.01"' in raw[0] and '"qty": "100"' in raw[0]
    assert '"limit_price": "189.30"' in raw[1]
    assert '"limit_price": "0.3000"' in raw[2]
    for text in raw:
        assert "0000000" not in text
        body = json.loads(text)  # numbers never travel as JSON floats
        assert all(not isinstance(v, float) for v in body.values())
    assert all(o.status is OrderStatus.NEW for o in b.orders)


async def test_order_types_and_time_in_force(h: AlpacaHarness) -> None:
    b = h.broker
    b.submit_order(SYM, Side.BUY, 10, stop_price=191.50)
    b.submit_order(SYM, Side.BUY, 10, stop_price=191.50, limit_price=189.75)
    b.submit_order(SYM, Side.BUY, 10, limit_price=189.50, tif="gtc")
    b.submit_order(SYM, Side.BUY, 10, limit_price=189.50, tif="ioc")
    b.submit_order(SYM, Side.BUY, 10, limit_price=189.50, tif="fok")
    b.submit_order(SYM, Side.BUY, 10, limit_price=189.50, tif="cls")
    await h.settle()
    await h.set_time(et(2026, 11, 25, 8, 0))  # pre-market: opening-auction and extended orders
    b.submit_order(SYM, Side.BUY, 10, limit_price=189.40, tif="opg")
    b.submit_order(SYM, Side.BUY, 10, limit_price=189.30, extended_hours=True)
    await h.settle()
    bodies = sorted(_bodies(h.fake), key=lambda d: int(d["client_order_id"].split("-")[1]))
    got = [
        (
            d["type"],
            d["time_in_force"],
            d.get("limit_price"),
            d.get("stop_price"),
            d["extended_hours"],
        )
        for d in bodies
    ]
    assert got == [
        ("stop", "day", None, "191.50", False),
        ("stop_limit", "day", "189.75", "191.50", False),
        ("limit", "gtc", "189.50", None, False),
        ("limit", "ioc", "189.50", None, False),
        ("limit", "fok", "189.50", None, False),
        ("limit", "cls", "189.50", None, False),
        ("limit", "opg", "189.40", None, False),
        ("limit", "day", "189.30", None, True),
    ]
    statuses = [o.status for o in b.orders]
    # IOC and FOK limit orders below the ask are canceled by the venue at once
    assert statuses.count(OrderStatus.CANCELED) == 2
    assert [o.client_order_id for o in b.orders] == [d["client_order_id"] for d in bodies]


async def test_market_order_fills_as_taker_and_positions_are_signed(h: AlpacaHarness) -> None:
    b = h.broker
    o = b.submit_order(SYM, Side.SELL, 30)  # a short sale: flat, shortable, easy to borrow
    await h.settle()
    assert o.type is OrderType.MARKET and o.status is OrderStatus.FILLED
    assert o.fills[0].liquidity is Liquidity.TAKER and o.fills[0].price == 190.00
    assert o.fills[0].fee > 0  # SEC fee and TAF on sells
    pos = await b.get_positions()
    assert pos[SYM].qty == -30 and b.position(SYM) == -30
    acct = await b.get_account()
    assert acct.cash == pytest.approx(100_000 + 30 * 190.00 - o.fills[0].fee)


async def test_replace_keeps_client_id_and_follows_the_new_alpaca_id(h: AlpacaHarness) -> None:
    b = h.broker
    o = await _resting(h, Side.BUY, 100, 189.80)
    first = o.broker_order_id
    await h.fill(o, 40, 189.80)
    b.replace_order(o, qty=150, limit_price=189.85)
    await h.settle()
    assert o.status is OrderStatus.PARTIALLY_FILLED
    assert (o.qty, o.limit_price, o.filled_qty) == (150, 189.85, 40)
    assert o.broker_order_id != first and o.broker_order_id == h.fake.current_id(o.client_order_id)
    patch = _bodies(h.fake, "PATCH")[0]
    # the replacement order gets what remains to fill, with its own client order id
    assert patch == {
        "qty": "110",
        "client_order_id": f"{o.client_order_id}-r1",
        "limit_price": "189.85",
    }
    await h.fill(o, 110, 189.85)
    assert o.status is OrderStatus.FILLED and o.filled_qty == 150
    assert o.avg_fill_price == pytest.approx((40 * 189.80 + 110 * 189.85) / 150)
    assert (await b.get_positions())[SYM].qty == 150 == b.position(SYM)
    # a replace of a whole-share order to a fractional remainder is refused by Alpaca's rule
    o2 = await _resting(h, Side.BUY, 10, 189.70)
    await h.fill(o2, 1, 189.70)
    b.replace_order(o2, qty=9.5)
    await h.settle()
    assert o2.qty == 10 and o2.status is OrderStatus.PARTIALLY_FILLED


async def test_instruments_from_alpaca_assets(h: AlpacaHarness) -> None:
    b = h.broker
    h.fake.assets["HALF"] = {
        **h.fake.asset("AAPL"),
        "symbol": "HALF",  # type: ignore[dict-item]
        "price_increment": "0.005",
        "fractionable": False,
        "shortable": False,
        "easy_to_borrow": False,
    }
    inst = await b.get_instrument("HALF")
    assert inst.tick_at(20.0) == 0.005 and inst.tick_at(0.5) == 0.0001
    assert not inst.fractionable and not inst.shortable and inst.lot_size == 1
    assert b.rules.format_price("HALF", 20.005) == "20.005"
    aapl = await b.get_instrument(SYM)
    assert aapl.fractionable and aapl.tick_at(190) == 0.01 and aapl.tradable
    h.fake.unknown_symbols.add("NOPE")
    with pytest.raises(OrderRejected) as info:
        await b.get_instrument("NOPE")
    assert info.value.reason is RejectReason.UNKNOWN_SYMBOL
    # a short sale of a non-shortable asset is refused locally, nothing sent
    with pytest.raises(OrderRejected) as info:
        b.submit_order("HALF", Side.SELL, 10, limit_price=20.01)
    assert info.value.reason is RejectReason.SHORTING


async def test_first_quote_loads_the_asset(h: AlpacaHarness) -> None:
    # the harness gave the broker a quote of AAPL at start: its asset was fetched then
    assert h.fake.count("GET", "/v2/assets/AAPL") == 1
    assert SYM in h.broker.rules._registered


# ---------------------------------------------------------------------------- Alpaca says no


async def test_alpaca_side_rejections_are_typed(h: AlpacaHarness) -> None:
    # rules without the local wash-trade guard and with a finer tick than Alpaca's, so that
    # the orders reach the fake and Alpaca's own answers are exercised end to end
    prof = dataclasses.replace(
        RulesProfile.for_broker("alpaca"),
        wash_trade_guard=False,
        tick_rule=((0, 0.0001), (1, 0.001)),
    )
    b = h.broker
    b.rules = OrderRules(prof)
    await _resting(h, Side.SELL, 10, 190.50)
    rec = EventRecorder()
    b.add_listener(rec)
    wash = b.submit_order(SYM, Side.BUY, 10, limit_price=190.60)
    sub = b.submit_order(SYM, Side.BUY, 10, limit_price=189.015)
    bp = b.submit_order(SYM, Side.BUY, 5000, limit_price=189.00)
    await h.settle()
    assert (wash.status, wash.reject_reason) == (OrderStatus.REJECTED, RejectReason.WASH_TRADE)
    assert "wash trade" in (wash.reject_message or "")
    assert (sub.status, sub.reject_reason) == (OrderStatus.REJECTED, RejectReason.TICK_SIZE)
    assert "189.015" in (sub.reject_message or "")
    assert bp.reject_reason is RejectReason.INSUFFICIENT_BUYING_POWER
    assert h.fake.count("POST", "/v2/orders", 403) == 2
    assert h.fake.count("POST", "/v2/orders", 422) == 1
    assert [u[1] for u in rec.updates] == [OrderStatus.REJECTED] * 3


async def test_cancel_of_an_order_alpaca_already_filled(h: AlpacaHarness) -> None:
    b = h.broker
    o = await _resting(h, Side.BUY, 10, 189.90)
    oid = h.fake.current_id(o.client_order_id)
    assert oid is not None
    await h.fake.drop_trade_stream(refuse=True)  # the fill event never arrives
    await wait_for(lambda: not b.stream_up, what="stream down")
    h.fake.fill(oid, 10, 189.90)
    b.cancel_order(o)
    await h.settle()
    await wait_for(lambda: o.status is OrderStatus.FILLED, what="the fill found by REST")
    assert o.filled_qty == 10 and len(o.fills) == 1
    assert h.fake.count("DELETE", "/v2/orders", 422) == 1
    h.fake.restore_trade_stream()


# ---------------------------------------------------------------------------- stream faults


async def test_trade_stream_drop_while_orders_fill_loses_nothing(h: AlpacaHarness) -> None:
    b = h.broker
    rec = EventRecorder()
    b.add_listener(rec)
    a = await _resting(h, Side.BUY, 100, 189.90)
    c = await _resting(h, Side.BUY, 50, 189.80)
    d = await _resting(h, Side.BUY, 20, 189.70)
    await h.fill(a, 30, 189.90)
    await h.fake.drop_trade_stream(refuse=True)
    await wait_for(lambda: not b.stream_up, what="stream down")
    ida, idc = h.fake.current_id(a.client_order_id), h.fake.current_id(c.client_order_id)
    idd = h.fake.current_id(d.client_order_id)
    assert ida and idc and idd
    h.fake.fill(ida, 50, 189.90)  # events dropped: nobody listens
    h.fake.fill(idc, 50, 189.80)
    with h.fake.lock:
        h.fake._cancel(h.fake.orders[idd])
    await h.fake.flush()
    assert h.fake.dropped >= 3
    # the poller finds all of it over REST
    await wait_for(
        lambda: (
            c.status is OrderStatus.FILLED
            and a.filled_qty == 80
            and d.status is OrderStatus.CANCELED
        ),
        what="polled fills",
    )
    polled = b.reconciliations
    h.fake.fill(ida, 20, 189.95)
    h.fake.restore_trade_stream()
    await wait_for(lambda: b.stream_up, what="stream back")
    await wait_for(lambda: a.status is OrderStatus.FILLED, what="reconciled after reconnect")
    await h.settle()
    assert b.stream_connects == 2 and b.reconciliations > polled
    assert [f.qty for f in a.fills] == [30, 50, 20]
    assert a.avg_fill_price == pytest.approx((80 * 189.90 + 20 * 189.95) / 100)
    assert [f.qty for f in c.fills] == [50]
    assert len(rec.fills) == 4 and len({f.fill_id for f in rec.fills}) == 4
    assert b.position(SYM) == 150 == (await b.get_positions())[SYM].qty
    # after the reconnect, events flow on the stream again
    e = await _resting(h, Side.BUY, 10, 189.60)
    await h.fill(e, 10, 189.60)
    assert e.status is OrderStatus.FILLED and e.fills[0].fill_id.count("-") == 4  # execution id


async def test_duplicate_and_stale_fill_events_count_once(h: AlpacaHarness) -> None:
    b = h.broker
    o = await _resting(h, Side.BUY, 100, 190.00)
    await h.fill(o, 40, 190.00)
    await h.fill(o, 30, 190.00)
    oid = h.fake.current_id(o.client_order_id)
    assert oid is not None
    evs = [e for e in h.fake.events[oid] if e["data"]["event"] == "partial_fill"]
    for e in (evs[1], evs[0], evs[1], evs[0]):  # repeated, and an older one after a newer one
        h.fake._emit(e, None)
    await h.settle()
    assert o.filled_qty == 70 and len(o.fills) == 2
    assert b.position(SYM) == 70


async def test_fill_before_the_new_order_ack(h: AlpacaHarness) -> None:
    b = h.broker
    rec = EventRecorder()
    b.add_listener(rec)
    o = b.submit_order(SYM, Side.BUY, 100, limit_price=189.95)
    h.fake.fill_on_arrival[o.client_order_id] = (60, 189.95)
    await h.settle()
    oid = h.fake.current_id(o.client_order_id)
    assert oid is not None
    kinds = [e["data"]["event"] for e in h.fake.events[oid]]
    assert kinds == ["partial_fill", "new"]
    assert o.status is OrderStatus.PARTIALLY_FILLED and o.filled_qty == 60
    assert o.broker_order_id == oid and len(rec.fills) == 1
    await h.fill(o, 40)
    assert o.status is OrderStatus.FILLED


# ---------------------------------------------------------------------------- REST faults


async def test_5xx_on_submit_is_looked_up_then_sent_once_more(h: AlpacaHarness) -> None:
    b = h.broker
    h.fake.inject("POST", "/v2/orders", 503)  # refused before it took effect
    o = b.submit_order(SYM, Side.BUY, 10, limit_price=189.50)
    await h.settle()
    assert o.status is OrderStatus.NEW
    assert h.fake.count("POST", "/v2/orders") == 2
    assert h.fake.count("GET", "/v2/orders:by_client_order_id") == 1
    assert len(h.fake.by_cid) == 1 and b.resubmits == 1


async def test_5xx_after_the_order_took_effect_is_not_sent_twice(h: AlpacaHarness) -> None:
    b = h.broker
    h.fake.inject("POST", "/v2/orders", 500, apply=True)  # accepted, but the answer is lost
    o = b.submit_order(SYM, Side.BUY, 10, limit_price=189.50)
    await h.settle()
    assert o.status is OrderStatus.NEW and o.broker_order_id == h.fake.current_id(o.client_order_id)
    assert h.fake.count("POST", "/v2/orders") == 1
    assert h.fake.count("GET", "/v2/orders:by_client_order_id") == 1
    assert b.resubmits == 0 and len(h.fake.orders) == 1


async def test_timeout_on_submit_is_looked_up() -> None:
    async with AlpacaHarness(request_timeout=0.3) as h:
        h.fake.inject("POST", "/v2/orders", 200, apply=True, delay=0.6)
        o = h.broker.submit_order(SYM, Side.BUY, 10, limit_price=189.50)
        await h.settle()
        await wait_for(lambda: o.status is OrderStatus.NEW, what="found by lookup")
        await asyncio.sleep(0.4)  # the slow first POST lands too
        # looked up first; sent again only when Alpaca did not have it yet, and then Alpaca's
        # unique client order ids make sure it exists once
        assert h.fake.count("GET", "/v2/orders:by_client_order_id") >= 1
        assert len(h.fake.orders) == 1 and len(h.fake.by_cid) == 1
        assert o.broker_order_id == h.fake.current_id(o.client_order_id)


async def test_5xx_on_queries_retried(h: AlpacaHarness) -> None:
    h.fake.inject("GET", "/v2/account", 502, times=2)
    acct = await h.broker.get_account()
    assert acct.cash == 100_000 and h.fake.count("GET", "/v2/account", 502) == 2


async def test_429_storm_waits_and_duplicates_nothing(h: AlpacaHarness) -> None:
    b = h.broker
    h.fake.inject("*", "", 429, times=6, headers={"Retry-After": "0.2"})
    t0 = time.monotonic()
    orders = [b.submit_order(SYM, Side.BUY, 10, limit_price=189.00 + i / 100) for i in range(4)]
    acct, positions = await asyncio.gather(b.get_account(), b.get_positions())
    await h.settle()
    assert time.monotonic() - t0 >= 0.2
    assert acct.cash == 100_000 and positions == {}
    assert all(o.status is OrderStatus.NEW for o in orders)
    assert len(h.fake.orders) == 4  # nothing duplicated
    assert h.fake.count("POST", "/v2/orders", 200) == 4
    assert h.alpaca.rest.rate_limited >= 1
    assert h.fake.count("POST", "", 429) + h.fake.count("GET", "", 429) == 6


async def test_every_call_shares_the_budget_and_waits() -> None:
    # a budget of 20 a second (Alpaca's 200 a minute, sped up); the fake counts over 0.9 s so
    # that up to 100 ms of transit jitter on a loaded machine is not taken for an excess
    async with AlpacaHarness(
        rate_limit=(20, 1.0), fake_kwargs={"rate_limit": 20, "rate_window": 0.9}
    ) as h:
        await asyncio.sleep(1.1)  # a fresh window
        t0 = time.monotonic()
        calls = [h.broker.get_account() for _ in range(30)]
        calls += [h.broker.get_positions() for _ in range(10)]
        calls += [h.broker.get_open_orders() for _ in range(5)]
        got = await asyncio.gather(*calls)
        took = time.monotonic() - t0
        assert len(got) == 45 and took >= 1.9  # 45 requests at 20 a second: three windows
        assert h.fake.count("GET", "", 429) == 0, "the fake never had to refuse one"
        assert h.fake.max_requests_in_window(0.9) <= 20
        assert h.alpaca.rest.budget_waits > 0 and h.alpaca.rest.rate_limited == 0


async def test_new_orders_beyond_the_budget_refused_locally_cancels_pass() -> None:
    async with AlpacaHarness(rate_limit=(20, 60.0)) as h:
        b = h.broker
        used = b.throttle.used(0)  # connect and the asset took some
        sent = []
        with pytest.raises(OrderRejected) as info:
            for i in range(30):
                sent.append(b.submit_order(SYM, Side.BUY, 1, limit_price=180.00 + i / 100))
        assert info.value.reason is RejectReason.RATE_LIMIT
        assert len(sent) == 18 - used  # 20 less the 10% kept for cancels
        await h.settle()
        b.cancel_order(sent[0])  # the reserve serves cancels
        await h.settle()
        assert sent[0].status is OrderStatus.CANCELED
        assert h.fake.count("POST", "/v2/orders") == len(sent)


# ---------------------------------------------------------------------------- reconnect, adopt


async def test_connect_adopts_open_orders_and_takes_alpaca_positions(h: AlpacaHarness) -> None:
    b = h.broker
    o = await _resting(h, Side.BUY, 100, 189.90)
    await h.fill(o, 100, 189.90)
    await b.close()
    # meanwhile another program places an order on the account
    with h.fake.lock:
        h.fake._post_order(
            json.dumps(
                {
                    "symbol": SYM,
                    "qty": "5",
                    "side": "sell",
                    "type": "limit",
                    "time_in_force": "day",
                    "limit_price": "191.00",
                    "client_order_id": "other-1",
                }
            )
        )
    fresh = AlpacaBroker(
        "KEY",
        "SECRET",
        base_url=h.fake.base_url,
        trading_stream_url=h.fake.stream_url,
        clock=h.clock,
        stream_backoff=(0.05, 0.5),
    )
    async with fresh:
        assert fresh.position(SYM) == 100
        adopted = fresh.get_order("other-1")
        assert adopted is not None and adopted.status is OrderStatus.NEW
        assert adopted.broker_order_id == h.fake.current_id("other-1")
        assert [x.client_order_id for x in await fresh.get_open_orders()] == ["other-1"]
        # it counts for the wash-trade guard and can be cancelled
        with pytest.raises(OrderRejected) as info:
            fresh.submit_order(SYM, Side.BUY, 1, limit_price=191.00)
        assert info.value.reason is RejectReason.WASH_TRADE
        fresh.cancel_order("other-1")
        await wait_for(lambda: adopted.status is OrderStatus.CANCELED, what="cancel")


async def test_rest_only_mode_polls() -> None:
    async with AlpacaHarness(stream=False, poll_interval=0.05) as h:
        b = h.broker
        assert not b.stream_up and h.fake.trade_connections == 0
        o = b.submit_order(SYM, Side.BUY, 10, limit_price=189.90)
        await wait_for(lambda: o.status is OrderStatus.NEW, what="ack from the POST")
        oid = h.fake.current_id(o.client_order_id)
        assert oid is not None
        h.fake.fill(oid, 10, 189.90)
        await wait_for(lambda: o.status is OrderStatus.FILLED, what="polled fill")
        assert o.fills[0].fill_id == f"{oid}:10"


# ---------------------------------------------------------------------------- secrets


async def test_secrets_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "SECRET-do-not-log"
    h = AlpacaHarness(fake_kwargs={"secret": secret})
    h.alpaca._secret = type(h.alpaca._secret)(secret)
    async with h:
        h.fake.inject("*", "", 500, times=2)
        o = h.broker.submit_order(SYM, Side.BUY, 10, limit_price=189.90)
        await h.settle()
        assert o.status is OrderStatus.NEW
        await h.fake.drop_trade_stream(refuse=False)
        await wait_for(lambda: h.alpaca.stream_connects >= 2, what="reconnect")
    bad = AlpacaBroker("KEY", "wrong-" + secret, base_url=h.fake.base_url)
    async with FakeAlpaca(secret=secret) as fake:
        bad.base_url = fake.base_url
        with pytest.raises(AuthError) as info:
            await bad.connect()
    assert "401" in str(info.value) and secret not in str(info.value)
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert text and secret not in text


# ---------------------------------------------------------------------------- a live run


async def test_live_run_of_the_market_maker_wired_by_config(tmp_path: Path) -> None:
    from tradekit.live import run_async

    async with FakeAlpaca() as fake:
        cfg = {
            "venues": {
                "alpaca": {
                    "broker": "alpaca",
                    "feed": "alpaca",
                    "paper": True,
                    "api_key": "KEY",
                    "secret_key": "SECRET",
                    "base_url": fake.base_url,
                    "trading_stream_url": fake.stream_url,
                    "data_feed": "iex",
                    "data_url": fake.base_url,
                    "data_stream_url": fake.data_stream_url("iex"),
                }
            },
            "session": {"calendar": "NYSE", "hours": "regular"},
            "strategy": {
                "kind": "pure_market_making",
                "venue": "alpaca",
                "symbol": SYM,
                "bid_spread": 0.001,
                "ask_spread": 0.001,
                "order_amount": 10,
                "order_refresh_time": 1,
            },
        }
        fake.set_quote(SYM, 190.00, 500, 190.02, 500)

        async def market() -> None:
            await wait_for(lambda: fake.data_connections >= 1, what="data stream")
            for i in range(20):
                await fake.push_quote(SYM, 190.00, 500 + i, 190.02, 500)
                await asyncio.sleep(0.05)

        pusher = asyncio.create_task(market())
        result = await run_async(cfg, duration=1.5, out=tmp_path / "out")
        await pusher
    assert fake.trade_connections == 1 and fake.data_connections == 1
    assert any(m.get("quotes") == [SYM] for m in fake.data_subscribe_messages)
    assert result.summary["events"] >= 10
    assert (tmp_path / "out" / "summary.json").exists()


# ---------------------------------------------------------------------------- the example

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "alpaca_paper_market_making.py"


def _env_without_keys() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("APCA_")}


def test_example_without_keys_names_them_and_exits_2() -> None:
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, str(EXAMPLE), "--duration", "1"],
        env=_env_without_keys(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    assert "APCA_API_KEY_ID" in r.stderr and "APCA_API_SECRET_KEY" in r.stderr
    env = {
        **_env_without_keys(),
        "APCA_API_KEY_ID": "k",
        "APCA_API_SECRET_KEY": "s",
        "APCA_API_BASE_URL": "https://api.alpaca.markets",
    }
    r = subprocess.run(
        [sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2 and "not a paper endpoint" in r.stderr


def test_tradekit_run_of_the_example_without_keys_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from tradekit.cli import main

    for k in ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY", "APCA_API_BASE_URL"):
        monkeypatch.delenv(k, raising=False)
    toml = EXAMPLE.with_suffix(".toml")
    assert main(["check", str(toml)]) == 0
    rc = main(["run", str(toml), "--duration", "1", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "APCA_API_KEY_ID and APCA_API_SECRET_KEY" in err


# ---------------------------------------------------------------------------- more edges


async def test_cancel_before_the_order_left_sends_nothing(h: AlpacaHarness) -> None:
    b = h.broker
    o = b.submit_order(SYM, Side.BUY, 10, limit_price=189.50)
    b.cancel_order(o)  # in the same turn of the loop: the POST has not gone out yet
    await h.settle()
    assert o.status is OrderStatus.CANCELED and o.broker_order_id is None
    assert h.fake.count("POST", "/v2/orders") == 0 and h.fake.count("DELETE", "/v2/orders") == 0


async def test_429_without_end_rejects_with_rate_limit(h: AlpacaHarness) -> None:
    h.fake.inject("POST", "/v2/orders", 429, times=100, headers={"Retry-After": "0.01"})
    o = h.broker.submit_order(SYM, Side.BUY, 10, limit_price=189.50)
    await h.settle()
    assert o.status is OrderStatus.REJECTED and o.reject_reason is RejectReason.RATE_LIMIT
    n = h.alpaca.rest.max_attempts + h.alpaca.rest.max_rate_limited
    assert h.fake.count("POST", "/v2/orders", 429) == n
    assert h.fake.count("GET", "/v2/orders:by_client_order_id") == 0, "a 429 is never unknown"
    assert h.fake.orders == {}


async def test_lost_order_is_found_later(h: AlpacaHarness) -> None:
    b = h.broker
    h.fake.inject("POST", "/v2/orders", 500, apply=True)  # it exists, the answer is lost
    h.fake.inject("GET", "/v2/orders:by_client_order_id", 503, times=100)
    o = b.submit_order(SYM, Side.BUY, 10, limit_price=189.50)
    await h.settle()
    assert o.status is OrderStatus.LOST and o.is_done
    assert h.fake.count("POST", "/v2/orders") == 1, "unknown outcome: never sent blindly again"
    h.fake.faults.clear()
    await wait_for(lambda: o.status is OrderStatus.NEW, timeout=5, what="found again")
    assert o.broker_order_id == h.fake.current_id(o.client_order_id) and len(h.fake.orders) == 1
    await h.fill(o, 10)
    assert o.status is OrderStatus.FILLED and b.position(SYM) == 10
