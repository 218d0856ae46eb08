"""The pure market maker through the real Alpaca adapter against the fake Alpaca for a simulated
hour of the trading day, on one simulated clock shared by the engine, the adapter's request
budget and the fake's rate limiter (the harness is ``bench/alpaca_market_maker_day.py``; the
bench runs the whole day). No request Alpaca would refuse, never more than 200 requests in any
60 simulated seconds, and the market maker trades."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("alpaca")

from tradekit.enums import Side
from tradekit.errors import RateLimited
from tradekit.timeutil import NS_PER_S

BENCH = Path(__file__).resolve().parent.parent / "bench" / "alpaca_market_maker_day.py"


def _bench() -> ModuleType:
    name = "alpaca_market_maker_day_bench"
    mod = sys.modules.get(name)
    if mod is None:
        spec = importlib.util.spec_from_file_location(name, BENCH)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return mod


amm = _bench()


async def test_clock_is_shared_by_engine_budget_and_fake() -> None:
    cfg = amm.load_example()
    market = amm.make_market(cfg, quote_rate=1.0, trade_rate=1.0)
    run = amm.DayRun(cfg, market)
    await run.start()
    try:
        assert run.engine.clock is run.clock and run.broker.clock is run.clock
        assert run.fake.clock() == run.clock.now_ns()
        assert run.broker.rest.throttle is run.broker.throttle
        assert run.broker.throttle.limit == 200 and run.broker.throttle.per_seconds == 60.0
        used = run.broker.throttle.used(0)
        assert used == len(run.fake.sim_requests) > 0  # connect's requests, on simulated time
        run.clock.set(run.clock.now_ns() + 62 * NS_PER_S)  # a minute later: the budget is back
        assert run.broker.throttle.used(0) == 0
        assert run.fake.sim_requests[-1][0] < run.clock.now_ns() / NS_PER_S
    finally:
        await run.stop()


async def test_fake_rate_limit_counts_simulated_time() -> None:
    cfg = amm.load_example()
    run = amm.DayRun(cfg, amm.make_market(cfg))
    run.fake.rate_limit = 4
    await run.start()  # connect: account, open orders, positions (3 requests; and the stream)
    try:
        b = run.broker
        assert len(run.fake.sim_requests) == 3
        await b.get_account()
        with pytest.raises(RateLimited):
            await b.rest.call("acct", lambda: b._need_client().get_account(), attempts=1)
        assert run.fake.sim_requests[-1][3] == 429
        run.clock.set(run.clock.now_ns() + 61 * NS_PER_S)
        b.rest.pause_until = 0.0  # the adapter's 429 pause is on the wall clock
        await b.get_account()
        assert run.fake.sim_requests[-1][3] == 200
    finally:
        await run.stop()


async def test_market_maker_hour_through_the_adapter_makes_no_refused_request() -> None:
    # an hour from the open at a fifth of the example's quote rate and a tenth of its trades:
    # a few thousand quote updates, seconds of wall time
    res = await amm.run_day(minutes=60, quote_rate=1.0, trade_rate=1.0)
    assert res.covered_ns == 3600 * NS_PER_S
    assert res.quotes >= 3000
    assert res.requests, "the adapter sent nothing"
    assert [r for r in res.requests if r[3] in (403, 422, 429)] == []
    assert all(r[3] < 400 for r in res.requests), res.refused
    assert res.max_in_window(60.0) <= 200
    assert res.budget_stalls == 0 and res.rate_limited == 0
    assert not res.local_rejects, res.local_rejects
    assert res.fills > 0 and res.market_fills > 0
    # the requests are the strategy's: new orders, replaces, cancels (and connect's four)
    assert res.count("POST", "/v2/orders") == res.n_new
    assert res.count("PATCH", "/v2/orders/") == res.n_replace > 0
    assert res.count("DELETE", "/v2/orders/") >= res.pairs
    # price changes are mostly amended in place
    assert res.replace_share > 0.5
    print()
    print(res.report())


async def test_side_of_fills_both_ways() -> None:
    # the harness' market fills resting orders of both sides
    cfg = amm.load_example()
    run = amm.DayRun(cfg, amm.make_market(cfg, quote_rate=1.0, trade_rate=1.0))
    await run.start()
    try:
        m = run.market
        await run.run(None, m.start_ns + 15 * 60 * NS_PER_S)
        sides = {f.side for o in run.broker.orders for f in o.fills}
        assert sides == {Side.BUY, Side.SELL}
        assert run.fake.position("AAPL") == run.broker.position("AAPL")
    finally:
        await run.stop()
