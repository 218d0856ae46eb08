"""IBKRBroker against the fake TWS: order mapping (types, TIFs, outsideRth, orderRef, route),
tick rules from IB market rules, broker errors (110, 201, 200), the kill switch's global cancel,
pacing, messages per order, configuration, the connection errors, and the example script."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fakes.tws import FakeTWS, IBKRHarness, IBLogGuard

import tradekit.brokers
from tradekit.brokers.ibkr import (
    IBKRBroker,
    IBKRDataFeed,
    Pacer,
    ReconciliationReport,
    ibkr_rules_profile,
)
from tradekit.clock import SimClock
from tradekit.enums import OrderStatus, OrderType, RejectReason, Side, TimeInForce
from tradekit.errors import ConfigError, Disconnected, OrderRejected
from tradekit.model import Quote, TickRule
from tradekit.risk import KillSwitch
from tradekit.testing import DEFAULT_START, EventRecorder, et

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def no_decode_errors() -> Iterator[IBLogGuard]:
    with IBLogGuard() as guard:
        yield guard
    assert not guard.records, "ib_async logged decode errors:\n" + "\n".join(guard.problems())


@pytest.fixture
async def fake() -> AsyncIterator[FakeTWS]:
    clock = SimClock(DEFAULT_START)
    async with FakeTWS(clock=clock) as f:
        f.set_quote("AAPL", 190.00, 500, 190.02, 500)
        f.set_quote("HALF", 10.00, 300, 10.01, 300)
        yield f


def make(fake: FakeTWS, **kw: Any) -> IBKRBroker:
    kw.setdefault("client_id", 3)
    kw.setdefault("symbols", ["AAPL"])
    kw.setdefault("reconnect_delay", 0.05)
    return IBKRBroker(port=fake.port, clock=fake._clock, id_prefix="t", **kw)


def quote(b: IBKRBroker, sym: str, bid: float, ask: float, size: float = 500) -> None:
    b.on_quote(Quote(b.clock.now_ns(), sym, bid, size, ask, size, b.venue))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- identity and configuration ----------------------------------------------------------------


def test_registered_declared_and_contract_signature() -> None:
    assert tradekit.brokers.get("ibkr") is IBKRBroker
    b = IBKRBroker()
    assert (b.host, b.port, b.client_id, b.route, b.currency, b.account) == (
        "127.0.0.1",
        7497,
        1,
        "SMART",
        "USD",
        None,
    )
    assert IBKRBroker.name == "ibkr" and IBKRBroker.rules_profile == "ibkr"
    caps = IBKRBroker.capabilities
    assert caps.replace_in_place and caps.extended_hours and caps.shorting and caps.depth
    assert not caps.fractional
    assert TimeInForce.FOK not in caps.time_in_force
    assert b.rules.name == "ibkr" and TimeInForce.FOK not in b.rules.profile.tifs
    assert TimeInForce.FOK not in ibkr_rules_profile().tifs
    assert IBKRBroker(route="arca").venue == "ibkr_arca"


def test_from_venue_config_maps_the_keys() -> None:
    kill = KillSwitch()
    b = IBKRBroker.from_venue_config(
        "arca",
        {
            "host": "10.0.0.5",
            "port": 4002,
            "client_id": 11,
            "account": "DU42",
            "route": "ARCA",
            "currency": "USD",
        },
        risk={"max_order_qty": 100},
        kill_switch=kill,
    )
    assert isinstance(b, IBKRBroker)
    assert (b.venue, b.host, b.port, b.client_id, b.account, b.route) == (
        "arca",
        "10.0.0.5",
        4002,
        11,
        "DU42",
        "ARCA",
    )
    assert b.kill_switch is kill and b.risk.limits.max_order_qty == 100
    with pytest.raises(ConfigError, match=r"unknown key.*latency_ms"):
        IBKRBroker.from_venue_config("x", {"latency_ms": 5})
    feed = IBKRBroker.feed_from_venue_config(
        "arca", {"host": "h", "port": 4002, "client_id": 11, "route": "ARCA", "rules": "ibkr"}
    )
    assert isinstance(feed, IBKRDataFeed)
    assert (feed.venue, feed.host, feed.port, feed.client_id, feed.route) == (
        "arca",
        "h",
        4002,
        11,
        "ARCA",
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"port": 0}, "port"),
        ({"port": "7497"}, "port"),
        ({"client_id": -1}, "client_id"),
        ({"route": "AR CA"}, "route"),
        ({"currency": "US"}, "currency"),
        ({"host": ""}, "host"),
    ],
)
def test_bad_settings_raise_config_error(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        IBKRBroker(**kwargs)


def test_importing_tradekit_does_not_import_ib_async() -> None:
    code = (
        "import sys, tradekit, tradekit.brokers, tradekit.testing; "
        "assert 'ib_async' not in sys.modules, 'ib_async imported'; "
        "import tradekit.brokers.ibkr; assert 'ib_async' in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok" and out.stderr == ""


# ---- connecting ---------------------------------------------------------------------------------


async def test_nothing_listening_raises_disconnected_naming_host_port() -> None:
    port = free_port()
    b = IBKRBroker(port=port, client_id=5, connect_timeout=1.0)
    t0 = time.monotonic()
    with pytest.raises(Disconnected) as info:
        await b.connect()
    msg = str(info.value)
    assert f"127.0.0.1:{port}" in msg and "TWS or IB Gateway" in msg
    assert "7497" in msg and "4002" in msg and "Enable ActiveX and Socket Clients" in msg
    assert not b.connected and time.monotonic() - t0 < 3
    with pytest.raises(OrderRejected) as rej:
        b.submit_order("AAPL", "buy", 1, limit_price=1.0)
    assert rej.value.reason is RejectReason.BROKER and str(port) in rej.value.message


async def test_client_id_in_use(fake: FakeTWS) -> None:
    fake.refuse_client_ids.add(9)
    b = make(fake, client_id=9, connect_timeout=2.0)
    with pytest.raises(Disconnected, match="client id 9 is already in use"):
        await b.connect()


async def test_broker_and_feed_share_one_connection(fake: FakeTWS) -> None:
    b = make(fake)
    feed = IBKRDataFeed(port=fake.port, client_id=3)
    async with b, feed:
        s = b.session
        assert s is not None and s is feed.session and fake.connections == 1
        arca = IBKRDataFeed(port=fake.port, client_id=3, route="ARCA")
        with pytest.raises(ConfigError, match="its own client_id"):
            await arca.connect()
        await b.close()
        assert s.ib.isConnected(), "the feed still uses the connection"
    assert not s.ib.isConnected() and s.closed


# ---- orders out --------------------------------------------------------------------------------


async def test_order_fields_sent_to_tws(fake: FakeTWS) -> None:
    fake.set_quote("MSFT", 400.00, 500, 400.02, 500)
    async with make(fake, account="DU1234567", symbols=["AAPL", "MSFT"]) as b:
        quote(b, "AAPL", 190.00, 190.02)
        quote(b, "MSFT", 400.00, 400.02)
        lmt = b.submit_order(
            "AAPL", Side.BUY, 100, limit_price=189.50, tif="gtc", client_order_id="lmt-1"
        )
        mkt = b.submit_order("MSFT", Side.SELL, 5, client_order_id="mkt-1")
        await b.sync()
        stp = b.submit_order("MSFT", Side.SELL, 10, stop_price=390.0, client_order_id="stp-1")
        stl = b.submit_order(
            "MSFT",
            Side.BUY,
            10,
            stop_price=410.0,
            limit_price=410.5,
            tif="ioc",
            client_order_id="stl-1",
        )
        await b.sync()
        by_ref = {o.order_ref: o for o in fake.orders.values()}
        o = by_ref["lmt-1"]
        assert (o.action, o.qty, o.order_type, o.lmt, o.tif, o.account, o.exchange) == (
            "BUY",
            100,
            "LMT",
            189.5,
            "GTC",
            "DU1234567",
            "SMART",
        )
        assert not o.outside_rth
        assert str(o.order_id) == lmt.broker_order_id and lmt.status is OrderStatus.NEW
        assert (by_ref["mkt-1"].order_type, by_ref["mkt-1"].action) == ("MKT", "SELL")
        assert mkt.status is OrderStatus.FILLED and mkt.fills[0].price == 400.00
        assert mkt.fills[0].liquidity.value == "taker"
        assert (by_ref["stp-1"].order_type, by_ref["stp-1"].aux) == ("STP", 390.0)
        assert (
            by_ref["stl-1"].order_type,
            by_ref["stl-1"].aux,
            by_ref["stl-1"].lmt,
            by_ref["stl-1"].tif,
        ) == ("STP LMT", 410.0, 410.5, "IOC")
        assert stp.status is OrderStatus.NEW and stl.status is OrderStatus.NEW
        assert b.stats["placeOrder"] == 4


async def test_extended_hours_sets_outside_rth_and_cls_is_moc_loc(fake: FakeTWS) -> None:
    clock = fake._clock
    async with make(fake) as b:
        clock.set(et(2026, 11, 24, 17, 0))  # post-market
        quote(b, "AAPL", 190.00, 190.02)
        ext = b.submit_order(
            "AAPL", "buy", 10, limit_price=189.0, extended_hours=True, client_order_id="ext"
        )
        with pytest.raises(OrderRejected) as info:
            b.submit_order("AAPL", "buy", 10, limit_price=189.0)
        assert info.value.reason is RejectReason.SESSION_CLOSED
        clock.set(et(2026, 11, 25, 15, 0))
        moc = b.submit_order("AAPL", "buy", 10, tif="cls", client_order_id="moc")
        loc = b.submit_order("AAPL", "buy", 10, limit_price=189.5, tif="cls", client_order_id="loc")
        await b.sync()
        by_ref = {o.order_ref: o for o in fake.orders.values()}
        assert by_ref["ext"].outside_rth and ext.status is OrderStatus.NEW
        assert (by_ref["moc"].order_type, by_ref["moc"].tif) == ("MOC", "DAY")
        assert (by_ref["loc"].order_type, by_ref["loc"].lmt) == ("LOC", 189.5)
        assert moc.status is OrderStatus.NEW and loc.status is OrderStatus.NEW


async def test_fok_is_refused_locally(fake: FakeTWS) -> None:
    async with make(fake) as b:
        with pytest.raises(OrderRejected) as info:
            b.submit_order("AAPL", "buy", 10, limit_price=190.0, tif="fok")
        assert info.value.reason is RejectReason.ORDER_TYPE and "fok" in info.value.message
        assert fake.requests("placeOrder") == 0


async def test_tick_rules_come_from_ib_market_rules(fake: FakeTWS) -> None:
    async with make(fake, symbols=["AAPL", "HALF"]) as b:
        half = await b.get_instrument("HALF")
        assert half.tick_size == TickRule(((0.0, 0.0001), (1.0, 0.005)))
        assert half.lot_size == 1 and half.min_qty == 1 and not half.fractionable
        aapl = await b.get_instrument("AAPL")
        assert aapl.tick_at(190.0) == 0.01 and aapl.tick_at(0.5) == 0.0001
        quote(b, "HALF", 10.00, 10.01)
        o = b.submit_order("HALF", "buy", 100, limit_price=9.995)
        with pytest.raises(OrderRejected) as info:
            b.submit_order("HALF", "buy", 100, limit_price=9.993)
        assert info.value.reason is RejectReason.TICK_SIZE
        assert "9.99" in info.value.message and "9.995" in info.value.message
        await b.sync()
        assert o.status is OrderStatus.NEW
        assert {fo.lmt for fo in fake.orders.values()} == {9.995}
        # one market-rule request per rule id, one contract-details request per symbol
        assert fake.requests("reqMarketRule") == 2
        assert fake.requests("reqContractDetails") == 2


async def test_unknown_symbol_is_rejected(fake: FakeTWS) -> None:
    async with make(fake) as b:
        o = b.submit_order("NOPE", "buy", 1, limit_price=10.0)
        await b.sync()
        assert o.status is OrderStatus.REJECTED
        assert o.reject_reason is RejectReason.UNKNOWN_SYMBOL
        assert "no security definition for NOPE" in (o.reject_message or "")


# ---- broker errors ------------------------------------------------------------------------------


async def test_error_201_rejects_with_ib_message(fake: FakeTWS) -> None:
    async with make(fake) as b:
        rec = EventRecorder()
        b.add_listener(rec)
        fake.reject_next(201)
        o = b.submit_order("AAPL", "buy", 100, limit_price=189.0)
        await b.sync()
        assert o.status is OrderStatus.REJECTED and o.reject_reason is RejectReason.BROKER
        assert "EQUITY WITH LOAN VALUE" in (o.reject_message or "")
        assert "IB error 201" in (o.reject_message or "")
        assert rec.statuses(o.client_order_id) == [OrderStatus.REJECTED]
        # ib_async marked its trade Cancelled, then TWS sent Inactive: both absorbed
        assert b.ib.wrapper.trades[(3, int(o.broker_order_id or 0))].orderStatus.status == (
            "Inactive"
        )


async def test_error_110_on_a_modify_refuses_the_replace(fake: FakeTWS) -> None:
    async with make(fake) as b:
        quote(b, "AAPL", 190.00, 190.02)
        o = b.submit_order("AAPL", "buy", 100, limit_price=189.90)
        await b.sync()
        # a harness that bypasses the local rules: the off-tick price reaches TWS
        b._om.request_replace(o, 100, 189.905, b.clock.now_ns())
        b._send_replace(o, 100, 189.905)
        await b.sync()
        assert o.status is OrderStatus.NEW and o.limit_price == 189.90
        fo = next(iter(fake.orders.values()))
        assert fo.lmt == 189.9 and fo.is_open
        b.replace_order(o, limit_price=189.95)
        await b.sync()
        assert o.limit_price == 189.95 and fo.lmt == 189.95


async def test_commission_report_missing_fee_is_estimated(
    fake: FakeTWS, caplog: pytest.LogCaptureFixture
) -> None:
    async with make(fake, commission_wait_s=0.05) as b:
        quote(b, "AAPL", 190.00, 190.02)
        fake.send_commissions = False
        o = b.submit_order("AAPL", "buy", 100, limit_price=190.02)
        with caplog.at_level(logging.WARNING, "tradekit.brokers.ibkr"):
            await b.sync()
            assert o.filled_qty == 0, "the fill waits for its commission report"
            await asyncio.sleep(0.15)
        assert o.status is OrderStatus.FILLED and o.fees == pytest.approx(1.0)
        assert "no commission report" in caplog.text


# ---- kill switch, pacing, message counts ------------------------------------------------------


async def test_kill_switch_sends_one_global_cancel(fake: FakeTWS) -> None:
    kill = KillSwitch()
    async with make(fake, kill_switch=kill) as b:
        quote(b, "AAPL", 190.00, 190.02)
        orders = [b.submit_order("AAPL", "buy", 10, limit_price=189.0 - i * 0.1) for i in range(5)]
        await b.sync()
        kill.trip("daily loss")
        assert all(o.status is OrderStatus.PENDING_CANCEL for o in orders)
        await b.sync()
        assert all(o.status is OrderStatus.CANCELED for o in orders)
        assert fake.requests("reqGlobalCancel") == 1 and fake.requests("cancelOrder") == 0
        with pytest.raises(OrderRejected) as info:
            b.submit_order("AAPL", "buy", 10, limit_price=189.0)
        assert info.value.reason is RejectReason.KILL_SWITCH


async def test_pacing_keeps_bursts_under_the_limit(fake: FakeTWS) -> None:
    async with make(fake, max_msgs_per_sec=10) as b:
        quote(b, "AAPL", 190.00, 190.02)
        t0 = time.monotonic()
        orders = [
            b.submit_order("AAPL", "buy", 1, limit_price=round(180 + i * 0.01, 2))
            for i in range(25)
        ]
        await b.sync()
        elapsed = time.monotonic() - t0
        assert all(o.status is OrderStatus.NEW for o in orders)
        assert fake.max_orders_in_1s <= 10, fake.max_orders_in_1s
        assert fake.pacing_violations == 0
        assert b.session is not None and b.session.pacer.waits > 0
        assert elapsed >= 1.4, elapsed


async def test_pacer_unit() -> None:
    now = [0.0]
    p = Pacer(3, 1.0, clock=lambda: now[0], margin=0.0)
    for _ in range(3):
        await p.acquire()
    assert p.delay() == pytest.approx(1.0, abs=1e-3)
    now[0] = 0.5
    assert p.delay() == pytest.approx(0.5, abs=1e-3)
    now[0] = 1.0
    assert p.delay() == 0.0
    with pytest.raises(ValueError):
        Pacer(0)
    with pytest.raises(ConfigError, match=r"1\.\.50"):
        IBKRBroker(max_msgs_per_sec=60)
    with pytest.raises(ConfigError, match=r"1\.\.50"):
        IBKRDataFeed(max_msgs_per_sec=0)


async def test_messages_per_order(fake: FakeTWS, record_property: Any) -> None:
    """Figures: what one order costs on the wire (client -> TWS, TWS -> client)."""
    async with make(fake) as b:
        quote(b, "AAPL", 190.00, 190.02)
        await b.sync()
        fake.received.clear()
        fake.sent.clear()
        # rest, two partial fills, a modify, then cancel the rest
        o = b.submit_order("AAPL", "buy", 100, limit_price=189.90)
        await b.sync()
        fo = next(iter(fake.orders.values()))
        fake.execute(fo, 40, 189.90)
        fake.execute(fo, 20, 189.90)
        b.replace_order(o, limit_price=189.95)
        await b.sync()
        b.cancel_order(o)
        await b.sync()
        assert o.status is OrderStatus.CANCELED and o.filled_qty == 60
        client_msgs = {k: v for k, v in fake.received.items() if k != 49}  # 49: our pings
        order_msgs = {k: v for k, v in fake.sent.items() if k in (3, 4, 5, 11, 59)}
        record_property("client_messages_per_order", client_msgs)
        record_property("tws_order_messages", order_msgs)
        # placeOrder, placeOrder (modify), cancelOrder: one client message each
        assert client_msgs == {3: 2, 4: 1}
        # openOrder+orderStatus x2 (PreSubmitted, Submitted); per fill execDetails, orderStatus,
        # commissionReport; modify: openOrder+orderStatus; cancel: error 202 + orderStatus
        assert order_msgs == {5: 3, 3: 6, 11: 2, 59: 2, 4: 1}
        assert b.stats == {"placeOrder": 1, "modify": 1, "cancelOrder": 1}


# ---- account, positions, reconciliation on connect ---------------------------------------------


async def test_positions_seeded_and_avg_cost(fake: FakeTWS) -> None:
    fake.positions["AAPL"] = [50.0, 180.02]  # IB's avgCost includes commissions
    async with make(fake) as b:
        rep = b.last_reconciliation
        assert isinstance(rep, ReconciliationReport) and rep.reason == "connect"
        assert rep.positions == {"AAPL": 50.0} and rep.clean
        assert b.position("AAPL") == 50
        pos = await b.get_positions()
        assert pos["AAPL"].qty == 50 and pos["AAPL"].avg_price == pytest.approx(180.02)
        acct = await b.get_account()
        assert acct.currency == "USD" and acct.cash == pytest.approx(1_000_000.0)
        assert acct.equity == pytest.approx(1_000_000.0 + 50 * 190.01)


async def test_open_orders_of_a_previous_session_are_adopted(fake: FakeTWS) -> None:
    async with make(fake) as first:
        quote(first, "AAPL", 190.00, 190.02)
        o = first.submit_order("AAPL", "buy", 10, limit_price=189.0, client_order_id="old-1")
        await first.sync()
        assert o.status is OrderStatus.NEW
    async with make(fake) as second:
        rep = second.last_reconciliation
        assert rep is not None and rep.adopted == ("old-1",)
        adopted = second.get_order("old-1")
        assert adopted is not None and adopted.status is OrderStatus.NEW
        assert (adopted.symbol, adopted.side, adopted.qty, adopted.limit_price) == (
            "AAPL",
            Side.BUY,
            10,
            189.0,
        )
        assert adopted.type is OrderType.LIMIT and adopted.broker_order_id == o.broker_order_id
        assert [x.client_order_id for x in await second.get_open_orders()] == ["old-1"]
        second.cancel_order(adopted)
        await second.sync()
        assert adopted.status is OrderStatus.CANCELED


async def test_directed_routes_make_two_venues_of_one_account(fake: FakeTWS) -> None:
    fake.set_quote("AAPL", 190.00, 300, 190.03, 300, exchange="ARCA")
    fake.set_quote("AAPL", 190.04, 300, 190.06, 300, exchange="ISLAND")
    arca = make(fake, route="ARCA", client_id=11)
    island = make(fake, route="ISLAND", client_id=12)
    async with arca, island:
        assert (arca.venue, island.venue) == ("ibkr_arca", "ibkr_island")
        assert arca.session is not island.session
        quote(arca, "AAPL", 190.00, 190.03)
        quote(island, "AAPL", 190.04, 190.06)
        buy = arca.submit_order("AAPL", "buy", 100, limit_price=190.03)
        sell = island.submit_order("AAPL", "sell", 100, limit_price=190.04)
        await arca.sync()
        await island.sync()
        assert buy.status is OrderStatus.FILLED and sell.status is OrderStatus.FILLED
        assert {fo.exchange for fo in fake.orders.values()} == {"ARCA", "ISLAND"}
        assert buy.fills[0].venue == "ibkr_arca" and sell.fills[0].venue == "ibkr_island"
        assert arca.position("AAPL") == 100 and island.position("AAPL") == -100
        assert (await arca.get_positions()) == {}  # the account is flat


# ---- the example --------------------------------------------------------------------------------


def _load_example() -> ModuleType:
    path = ROOT / "examples" / "ibkr_paper_arbitrage.py"
    spec = importlib.util.spec_from_file_location("ibkr_paper_arbitrage", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_example_says_what_is_missing_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    mod = _load_example()
    assert mod.main(["--port", str(port), "--timeout", "0.5"]) == 2
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err
    assert "TWS" in err and "IB Gateway" in err and "Enable ActiveX and Socket Clients" in err
    assert "7497" in err and "4002" in err


def test_example_config_builds_two_directed_venues() -> None:
    mod = _load_example()
    doc = mod.build_config(mod.DEFAULT_TOML, host="127.0.0.1", port=4002)
    venues = doc["venues"]
    assert {v["route"] for v in venues.values()} == {"ARCA", "ISLAND"}
    assert {v["port"] for v in venues.values()} == {4002}
    assert len({v["client_id"] for v in venues.values()}) == 2
    strat = doc["strategy"]
    assert strat["kind"] == "arbitrage" and {strat["venue_a"], strat["venue_b"]} == set(venues)
    assert {"symbol", "min_profitability", "order_amount"} <= set(strat)
    for name in venues:
        b = IBKRBroker.from_venue_config(
            name, {k: v for k, v in venues[name].items() if k not in ("broker", "feed")}
        )
        assert b.route in ("ARCA", "ISLAND") and b.port == 4002


def test_example_toml_is_a_valid_config() -> None:
    from tradekit import strategies
    from tradekit.config import load_config

    if "arbitrage" not in strategies.registry:
        pytest.skip("the arbitrage strategy is not registered yet")
    cfg = load_config(ROOT / "examples" / "ibkr_paper_arbitrage.toml")
    assert {v.broker for v in cfg.venues.values()} == {"ibkr"}
    assert {v.options["route"] for v in cfg.venues.values()} == {"ARCA", "ISLAND"}


def test_example_script_runs_as_a_program() -> None:
    port = free_port()
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "ibkr_paper_arbitrage.py"),
            "--port",
            str(port),
            "--timeout",
            "0.5",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert f"127.0.0.1:{port}" in out.stderr and out.stdout == ""


async def test_harness_is_reusable_outside_the_suite() -> None:
    async with IBKRHarness() as h:
        o = h.broker.submit_order("AAPL", "buy", 10, limit_price=190.00)
        await h.settle()
        await h.fill(o, 10)
        assert o.status is OrderStatus.FILLED
        assert await h.venue_order_id(o) == o.broker_order_id


async def test_cancel_and_replace_while_closed_are_refused(fake: FakeTWS) -> None:
    b = make(fake)
    async with b:
        quote(b, "AAPL", 190.00, 190.02)
        o = b.submit_order("AAPL", "buy", 10, limit_price=189.0)
        await b.sync()
    b.cancel_order(o)
    assert o.status is OrderStatus.NEW, "the cancel could not be sent: back to working"
    with pytest.raises(OrderRejected) as info:
        b.replace_order(o, limit_price=189.5)
    assert info.value.reason is RejectReason.BROKER and "not connected" in info.value.message
