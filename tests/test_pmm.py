"""PureMarketMaking on scripted quotes through the Engine and the PaperBroker."""

from __future__ import annotations

import math
import random
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import pytest

import tradekit
from tradekit.brokers.paper import PaperBroker
from tradekit.calendar import get_calendar
from tradekit.cli import main as cli_main
from tradekit.engine import Engine
from tradekit.enums import OrderStatus, OrderType, Session, Side, TimeInForce
from tradekit.errors import ConfigError
from tradekit.model import Order, Quote, Trade
from tradekit.strategies import PMMParams, PureMarketMaking
from tradekit.testing import et

SYM = "AAPL"
S = 1_000_000_000
MS = 1_000_000
T0 = et(2026, 11, 24, 10, 0)  # a Tuesday, regular session
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pure_market_making.toml"


class Harness:
    """One PaperBroker venue ("paper") and one strategy in an Engine, driven quote by quote."""

    def __init__(
        self,
        strategy: Any,
        *,
        start: int = T0,
        latency_ms: float = 0,
        rules: str = "default",
        positions: dict[str, float] | None = None,
        hours: str = "regular",
        cancel_before_close_s: float = 60,
        **broker_kw: Any,
    ) -> None:
        self.strategy = strategy
        self.engine = Engine(hours=hours, cancel_before_close_s=cancel_before_close_s)
        self.broker = PaperBroker(
            rules=rules, latency_ms=latency_ms, positions=positions, id_prefix="p", **broker_kw
        )
        self.engine.add_venue("paper", self.broker, data_latency_ms=latency_ms)
        self.engine.add_strategy(strategy)
        self.engine.start(start, start + 24 * 3600 * S)

    def quote(
        self, ts: int, bid: float, ask: float, bid_size: float = 500, ask_size: float = 500
    ) -> None:
        self.engine.step(Quote(ts, SYM, bid, bid_size, ask, ask_size, "paper"))
        self.engine.run_due(ts)

    def trade(self, ts: int, price: float, size: float) -> None:
        self.engine.step(Trade(ts, SYM, price, size, "paper"))
        self.engine.run_due(ts)

    def advance(self, ts: int) -> None:
        self.engine.run_due(ts)
        self.engine.clock._ns = max(self.engine.clock._ns, ts)

    def live(self, side: Side | None = None) -> list[Order]:
        return sorted(
            (o for o in self.broker.open_orders(SYM) if side is None or o.side is side),
            key=lambda o: o.limit_price or 0.0,
        )

    def book(self) -> dict[Side, list[tuple[float, float]]]:
        return {
            side: sorted(((o.limit_price or 0.0), o.qty) for o in self.live(side))
            for side in (Side.BUY, Side.SELL)
        }


def pmm(**kw: Any) -> PureMarketMaking:
    return PureMarketMaking(SYM, **kw)


def snap(x: float, side: Side, tick: str = "0.01") -> float:
    mode = ROUND_FLOOR if side is Side.BUY else ROUND_CEILING
    d = Decimal(repr(x)) / Decimal(tick)
    return float(d.to_integral_value(rounding=mode) * Decimal(tick))


# ---- levels -----------------------------------------------------------------------------------
def test_two_levels_prices_snapped_passively_and_sizes() -> None:
    s = pmm(
        bid_spread=0.00122,
        ask_spread=0.00122,
        order_levels=2,
        order_level_spread=0.001,
        order_amount=100,
        order_level_amount=50,
    )
    h = Harness(s)
    h.quote(T0, 99.99, 100.01)  # mid 100.00
    mid = 100.0
    # raw prices: 99.878 / 99.778 (a buy snaps DOWN: 99.87 / 99.77, not the nearest 99.88 / 99.78)
    #             100.122 / 100.222 (a sell snaps UP: 100.13 / 100.23, not 100.12 / 100.22)
    expected = {
        Side.BUY: sorted(
            [
                (snap(mid * (1 - 0.00122), Side.BUY), 100.0),
                (snap(mid * (1 - 0.00222), Side.BUY), 150.0),
            ]
        ),
        Side.SELL: sorted(
            [
                (snap(mid * (1 + 0.00122), Side.SELL), 100.0),
                (snap(mid * (1 + 0.00222), Side.SELL), 150.0),
            ]
        ),
    }
    assert expected == {
        Side.BUY: [(99.77, 150.0), (99.87, 100.0)],
        Side.SELL: [(100.13, 100.0), (100.23, 150.0)],
    }
    assert h.book() == expected
    for o in h.live():
        assert o.type is OrderType.LIMIT and o.tif is TimeInForce.DAY
        assert o.extended_hours is False
        assert o.status is OrderStatus.NEW
    assert s.stats.rejected == 0


def test_levels_follow_an_uneven_mid() -> None:
    s = pmm(
        bid_spread=0.0031,
        ask_spread=0.0047,
        order_levels=2,
        order_level_spread=0.0013,
        order_amount=30,
        order_level_amount=-10,
    )
    h = Harness(s)
    h.quote(T0, 187.13, 187.16)
    mid = (187.13 + 187.16) / 2
    assert h.book() == {
        Side.BUY: sorted(
            [(snap(mid * (1 - 0.0031), Side.BUY), 30.0), (snap(mid * (1 - 0.0044), Side.BUY), 20.0)]
        ),
        Side.SELL: sorted(
            [
                (snap(mid * (1 + 0.0047), Side.SELL), 30.0),
                (snap(mid * (1 + 0.0060), Side.SELL), 20.0),
            ]
        ),
    }


# ---- refresh tolerance ------------------------------------------------------------------------
def test_refresh_tolerance_keeps_then_replaces_in_place() -> None:
    s = pmm(
        bid_spread=0.01,
        ask_spread=0.01,
        order_refresh_time=10,
        order_refresh_tolerance_pct=0.002,
        filled_order_delay=0,
    )
    h = Harness(s)
    h.quote(T0, 100.00, 100.01)  # mid 100.005: bid 99.00495 -> 99.00, ask 101.00505 -> 101.01
    assert h.book() == {Side.BUY: [(99.00, 100.0)], Side.SELL: [(101.01, 100.0)]}
    bid, ask = h.live(Side.BUY)[0], h.live(Side.SELL)[0]
    ids = (bid.client_order_id, ask.client_order_id)

    # a move beyond tolerance before the refresh time: left alone
    h.quote(T0 + 3 * S, 100.50, 100.51)
    assert h.book() == {Side.BUY: [(99.00, 100.0)], Side.SELL: [(101.01, 100.0)]}
    # after the refresh time, a drift within tolerance (~0.1 %): left alone
    h.quote(T0 + 11 * S, 100.10, 100.11)
    assert h.book() == {Side.BUY: [(99.00, 100.0)], Side.SELL: [(101.01, 100.0)]}
    assert bid.status is OrderStatus.NEW and ask.status is OrderStatus.NEW
    # after the refresh time, beyond tolerance (~0.5 %): re-priced in place
    h.quote(T0 + 12 * S, 100.50, 100.51)  # mid 100.505: 99.49995 -> 99.49, 101.51005 -> 101.52
    assert h.book() == {Side.BUY: [(99.49, 100.0)], Side.SELL: [(101.52, 100.0)]}
    assert (h.live(Side.BUY)[0].client_order_id, h.live(Side.SELL)[0].client_order_id) == ids
    assert h.live(Side.BUY)[0] is bid and h.live(Side.SELL)[0] is ask
    assert len(h.broker.orders) == 2  # replaced, not cancelled and placed anew
    assert not any(o.status is OrderStatus.CANCELED for o in h.broker.orders)
    # and the refresh clock restarts at the replace
    h.quote(T0 + 15 * S, 100.00, 100.01)
    assert h.book() == {Side.BUY: [(99.49, 100.0)], Side.SELL: [(101.52, 100.0)]}
    h.quote(T0 + 23 * S, 100.00, 100.01)
    assert h.book() == {Side.BUY: [(99.00, 100.0)], Side.SELL: [(101.01, 100.0)]}
    assert len(h.broker.orders) == 2


# ---- filled order delay -----------------------------------------------------------------------
def test_filled_order_delay_after_a_complete_fill() -> None:
    s = pmm(bid_spread=0.001, ask_spread=0.001, order_refresh_time=1000, filled_order_delay=5)
    h = Harness(s)
    h.quote(T0, 100.00, 100.01)  # bid 99.904995 -> 99.90, ask 100.105005 -> 100.11
    assert h.book() == {Side.BUY: [(99.90, 100.0)], Side.SELL: [(100.11, 100.0)]}
    bid = h.live(Side.BUY)[0]
    h.quote(T0 + 1 * S, 99.80, 99.90)  # the ask comes down to our bid: filled in full
    assert bid.status is OrderStatus.FILLED and h.broker.position(SYM) == 100
    for t in (2, 3, 4, 5, 5.9):
        h.quote(T0 + int(t * S), 99.80, 99.90)
        assert h.live(Side.BUY) == [], t
        assert len(h.broker.orders) == 2, t  # nothing new at all
    h.quote(T0 + 6 * S, 99.80, 99.90)
    new_bids = h.live(Side.BUY)
    assert len(new_bids) == 1
    assert new_bids[0].created_ts == T0 + 6 * S
    assert new_bids[0].limit_price == snap(99.85 * 0.999, Side.BUY)


# ---- max position -----------------------------------------------------------------------------
def test_max_position_no_bid_at_the_limit() -> None:
    s = pmm(bid_spread=0.001, ask_spread=0.001, max_position=150)
    h = Harness(s, positions={SYM: 150})
    h.quote(T0, 100.00, 100.01)
    assert h.live(Side.BUY) == []
    assert [o.qty for o in h.live(Side.SELL)] == [100.0]


def test_max_position_bid_reduced_near_the_limit() -> None:
    s = pmm(bid_spread=0.001, ask_spread=0.001, max_position=150)
    h = Harness(s, positions={SYM: 100})
    h.quote(T0, 100.00, 100.01)
    assert [o.qty for o in h.live(Side.BUY)] == [50.0]


def test_max_position_reached_by_fills_stops_the_bid_side() -> None:
    # the ask is far away (never hit): only the bid side trades
    s = pmm(
        bid_spread=0.001,
        ask_spread=0.05,
        max_position=150,
        filled_order_delay=0,
        order_refresh_time=0,
    )
    h = Harness(s)
    t = T0
    bids_seen: list[float] = []
    for _ in range(4):
        h.quote(t, 100.00, 100.01)
        bids_seen += [o.qty for o in h.live(Side.BUY)]
        open_buys = sum(o.qty - o.filled_qty for o in h.live(Side.BUY))
        assert h.broker.position(SYM) + open_buys <= 150 + 1e-9
        t += S
        b = h.live(Side.BUY)
        if b:  # the market sells down to our bid price: filled in full
            px = b[-1].limit_price
            assert px is not None
            h.quote(t, round(px - 0.10, 2), px)
            t += S
    assert h.broker.position(SYM) == 150
    h.quote(t, 100.00, 100.01)
    assert h.live(Side.BUY) == []
    assert len(h.live(Side.SELL)) == 1
    assert 100.0 in bids_seen and 50.0 in bids_seen
    assert s.stats.rejected == 0


# ---- inventory skew ---------------------------------------------------------------------------
@pytest.mark.parametrize("pos", [60, -60, 0])
def test_inventory_skew_sizes(pos: float) -> None:
    s = pmm(bid_spread=0.001, ask_spread=0.001, inventory_skew_enabled=True, order_amount=100)
    h = Harness(s, positions={SYM: pos})
    h.quote(T0, 100.00, 100.01)
    (b,), (a,) = h.live(Side.BUY), h.live(Side.SELL)
    if pos > 0:  # long: buy less, sell more
        assert b.qty < 100 < a.qty
    elif pos < 0:  # short: buy more, sell less
        assert a.qty < 100 < b.qty
    else:
        assert a.qty == b.qty == 100


def test_inventory_skew_disabled_keeps_sizes() -> None:
    s = pmm(bid_spread=0.001, ask_spread=0.001, inventory_skew_enabled=False, order_amount=100)
    h = Harness(s, positions={SYM: 60})
    h.quote(T0, 100.00, 100.01)
    assert [o.qty for o in h.live()] == [100.0, 100.0]


# ---- sessions ---------------------------------------------------------------------------------
def _day_quotes(start: int, end: int, step_s: float, seed: int = 3) -> list[Quote]:
    rng = random.Random(seed)
    mid = 100.0
    out = []
    t = start
    while t <= end:
        mid = max(50.0, mid + rng.choice((-0.06, -0.03, 0.0, 0.03, 0.06)))
        bid = round(mid - 0.01 * rng.randint(0, 1), 2)
        ask = round(bid + 0.01 * rng.randint(1, 3), 2)
        out.append(Quote(t, SYM, bid, 300.0, ask, 300.0, "paper"))
        t += int(step_s * S)
    return out


def test_never_quotes_while_quoting_is_not_allowed() -> None:
    cal = get_calendar()
    s = pmm(bid_spread=0.0005, ask_spread=0.0005, order_refresh_time=30, filled_order_delay=1)
    start, end = et(2026, 11, 24, 7, 0), et(2026, 11, 24, 20, 30)
    eng = Engine(hours="regular", cancel_before_close_s=60)
    b = PaperBroker(latency_ms=20, id_prefix="p")
    eng.add_venue("paper", b, data_latency_ms=20)
    eng.add_strategy(s)
    rec = eng.run_backtest(_day_quotes(start, end, 15), start, end)
    orders = rec.orders
    assert len(orders) > 4 and rec.fills  # (re-pricing replaces in place: few orders)
    closing = et(2026, 11, 24, 15, 59)
    for o in orders:
        assert cal.session_at(o.created_ts) is Session.REGULAR, o
        assert o.created_ts < closing, o
        assert o.is_done and o.done_ts is not None
        assert o.done_ts <= closing + 20 * MS, o
        assert o.extended_hours is False
    assert any(o.status is OrderStatus.CANCELED and o.done_ts == closing + 20 * MS for o in orders)


def test_after_the_closing_point_no_new_quotes_even_when_filled() -> None:
    s = pmm(bid_spread=0.0005, ask_spread=0.0005, order_refresh_time=0, filled_order_delay=0)
    h = Harness(s, start=et(2026, 11, 24, 15, 58))
    h.quote(et(2026, 11, 24, 15, 58), 100.00, 100.01)
    assert len(h.live()) == 2
    h.quote(et(2026, 11, 24, 15, 59, 1), 100.00, 100.01)
    assert h.live() == []
    for sec in range(2, 59):
        h.quote(et(2026, 11, 24, 15, 59, sec), 100.00 + 0.01 * (sec % 3), 100.05)
    assert all(o.created_ts == et(2026, 11, 24, 15, 58) for o in h.broker.orders)


def test_extended_hours_quotes_in_pre_and_post_with_the_flag() -> None:
    cal = get_calendar()
    s = pmm(bid_spread=0.0005, ask_spread=0.0005, order_refresh_time=30, filled_order_delay=1)
    start, end = et(2026, 11, 24, 3, 0), et(2026, 11, 24, 21, 0)
    eng = Engine(hours="extended", cancel_before_close_s=60)
    b = PaperBroker(latency_ms=20, id_prefix="p", rules="alpaca")
    eng.add_venue("paper", b, data_latency_ms=20)
    eng.add_strategy(s)
    rec = eng.run_backtest(_day_quotes(start, end, 30), start, end)
    closing = et(2026, 11, 24, 20, 0) - 60 * S
    for o in rec.orders:
        assert cal.session_at(o.created_ts) is not Session.CLOSED
        assert o.created_ts < closing
        assert o.done_ts is not None and o.done_ts <= closing + 20 * MS
        if cal.session_at(o.created_ts) is not Session.REGULAR:
            assert o.extended_hours is True and o.type is OrderType.LIMIT
            assert o.tif is TimeInForce.DAY
    assert any(cal.session_at(o.created_ts) is Session.PRE for o in rec.orders)
    # quoted (both sides) in each of pre, regular and post, never while closed
    quoted: dict[Session, int] = {}
    smp = rec.samples
    for ts, ob, oa in zip(smp["ts"], smp["our_bid"], smp["our_ask"], strict=True):
        both = not (math.isnan(ob) or math.isnan(oa))
        sess = cal.session_at(ts)
        if both:
            quoted[sess] = quoted.get(sess, 0) + 1
        if sess is Session.CLOSED or ts > closing + 20 * MS:
            assert math.isnan(ob) and math.isnan(oa), ts
    assert set(quoted) == {Session.PRE, Session.REGULAR, Session.POST}
    assert s.stats.rejected == 0


# ---- never crosses itself ---------------------------------------------------------------------
def _pending_prices(h: Harness, o: Order) -> list[float]:
    out = [o.limit_price] if o.limit_price is not None else []
    p = h.broker._om.pending_replace(o.client_order_id)
    if p is not None and p[1] is not None:
        out.append(p[1])
    return out


def test_never_locks_its_own_quotes_when_both_sides_move_together() -> None:
    """Both quotes re-priced in one update to the same price: the bid's target is checked
    against the ask's old price while the ask's replace to that price is still pending."""
    s = pmm(bid_spread=0.0, ask_spread=0.0, order_refresh_time=0, filled_order_delay=0)
    h = Harness(s)
    h.quote(T0, 100.03, 100.03)  # locked market: one tick off each touch, 100.02 / 100.04
    assert h.book() == {Side.BUY: [(100.02, 100.0)], Side.SELL: [(100.04, 100.0)]}
    h.quote(T0 + S, 100.02, 100.04)  # mid 100.03: both sides want 100.03
    for t in (2, 3):
        h.quote(T0 + t * S, 100.02, 100.04)
        bids = [o.limit_price for o in h.live(Side.BUY)]
        asks = [o.limit_price for o in h.live(Side.SELL)]
        assert bids and asks
        assert max(bids) < min(asks), h.live()  # type: ignore[type-var]
    assert s.stats.rejected == 0


@pytest.mark.parametrize("seed", [1, 2])
def test_never_crosses_its_own_opposite_quote(seed: int) -> None:
    s = pmm(
        bid_spread=0.0,
        ask_spread=0.0,
        order_levels=2,
        order_level_spread=0.0001,
        order_amount=10,
        order_level_amount=5,
        order_refresh_time=0,
        order_refresh_tolerance_pct=0.0,
        filled_order_delay=0,
    )
    h = Harness(s, latency_ms=20)
    rng = random.Random(seed)
    mid = 100.0
    t = T0
    checks = 0
    for _ in range(1500):
        mid += rng.choice((-0.02, -0.01, -0.005, 0.0, 0.005, 0.01, 0.02))
        bid = round(math.floor(mid * 100) / 100 - 0.01 * rng.randint(0, 1), 2)
        ask = round(bid + 0.01 * rng.randint(1, 2), 2)
        t += rng.randint(5, 400) * MS
        h.quote(t, bid, ask, 200, 200)
        if rng.random() < 0.2:
            h.trade(t + MS, rng.choice((bid, ask)), 50)
        buys = [p for o in h.live(Side.BUY) for p in _pending_prices(h, o)]
        sells = [p for o in h.live(Side.SELL) for p in _pending_prices(h, o)]
        if buys and sells:
            checks += 1
            assert max(buys) < min(sells), (t, h.live())
    assert checks > 500
    assert s.stats.rejected == 0, [str(r.error) for r in s.stats.last_rejections[:5]]
    assert not any(o.status is OrderStatus.REJECTED for o in h.broker.orders)


# ---- alpaca rules: no selling through a long position ------------------------------------------
def test_alpaca_ask_resized_after_a_partial_buy_fill_makes_us_long() -> None:
    """The ask was placed while flat (a short sale); a partial fill of the bid makes us long 25:
    re-pricing the 100-share ask must not try to sell 100 through a 25-share long."""
    s = pmm(bid_spread=0.001, ask_spread=0.001, order_refresh_time=0, filled_order_delay=0)
    h = Harness(s, rules="alpaca")
    h.quote(T0, 100.00, 100.01)
    assert h.book() == {Side.BUY: [(99.90, 100.0)], Side.SELL: [(100.11, 100.0)]}
    h.quote(T0 + S, 99.80, 99.90, ask_size=25)  # 25 of our bid filled
    assert h.broker.position(SYM) == 25
    for i in range(2, 6):
        h.quote(T0 + i * S, 99.80 + 0.01 * i, 99.92 + 0.01 * i)
    assert s.stats.rejected == 0, [str(r.error) for r in s.stats.last_rejections[:2]]
    (ask,) = h.live(Side.SELL)
    assert ask.limit_price != 100.11  # re-priced (refresh time 0)
    assert ask.qty - ask.filled_qty <= 25


def _example_dict(**venue: Any) -> dict[str, Any]:
    import tomllib

    doc = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    doc["venues"]["paper"].update(venue)
    doc.pop("risk", None)
    return doc


def _day_config(*, positions: dict[str, float], shorting: bool) -> dict[str, Any]:
    return {
        "venues": {
            "paper": {
                "broker": "paper",
                "feed": "synthetic",
                "rules": "alpaca",
                "latency_ms": 20,
                "positions": positions,
                "shorting": shorting,
            }
        },
        "market": {
            "date": "2026-11-24",
            "seed": 7,
            "symbols": {SYM: {"start_price": 190.0, "quote_rate": 1.0, "trade_rate": 1.0}},
        },
        "session": {"hours": "regular", "cancel_before_close_s": 60},
    }


def test_alpaca_rules_no_local_rejection_example_day() -> None:
    # the example's venue and strategy over a whole day (a calmer tape than the example's, to
    # keep the test fast)
    cfg = _example_dict(rules="alpaca")
    cfg["market"]["symbols"][SYM].update(quote_rate=1.0, trade_rate=1.0)
    params = dict(cfg["strategy"])
    params.pop("kind")
    s = PureMarketMaking.from_config(params)
    res = tradekit.backtest(cfg, strategies=s)
    assert res.summary["fills"] > 50
    assert s.stats.rejected == 0, [str(r.error) for r in s.stats.last_rejections[:5]]
    assert res.summary["orders_rejected"] == 0


@pytest.mark.parametrize(
    ("positions", "shorting", "levels"),
    [
        ({SYM: 37}, True, 2),
        ({SYM: 0}, False, 2),
    ],
)
def test_alpaca_rules_no_local_rejection_over_a_synthetic_day(
    positions: dict[str, float], shorting: bool, levels: int
) -> None:
    cfg = _day_config(positions=positions, shorting=shorting)
    s = pmm(
        venue="paper",
        bid_spread=0.0002,
        ask_spread=0.0002,
        order_amount=100,
        order_levels=levels,
        order_level_amount=25,
        order_level_spread=0.0002,
        order_refresh_time=5,
        order_refresh_tolerance_pct=0.0001,
        filled_order_delay=2,
        max_position=800,
        inventory_skew_enabled=True,
    )
    # the first two hours of the day
    res = tradekit.backtest(cfg, strategies=s, end="2026-11-24T16:30:00Z")
    assert res.summary["fills"] > 50
    assert s.stats.rejected == 0, [str(r.error) for r in s.stats.last_rejections[:5]]
    assert res.summary["orders_rejected"] == 0
    # it did hold long positions while quoting an ask (the situation the rule is about)
    assert res.summary["max_abs_position"] > 0


# ---- parameter errors -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"symbol": SYM, "bogus": 1}, "strategy.bogus"),
        ({"symbol": SYM, "bid_spread": -0.001}, "strategy.bid_spread"),
        ({"symbol": SYM, "ask_spread": -0.5}, "strategy.ask_spread"),
        ({"symbol": SYM, "bid_spread": 1.0}, "strategy.bid_spread"),
        ({"symbol": SYM, "ask_spread": 1.5}, "strategy.ask_spread"),
        ({"symbol": SYM, "bid_spread": "0.1"}, "strategy.bid_spread"),
        ({"symbol": SYM, "order_amount": 0}, "strategy.order_amount"),
        ({"bid_spread": 0.001}, "strategy.symbol"),
    ],
)
def test_config_parameter_errors_name_the_key(params: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as ei:
        PureMarketMaking.from_config(params)
    assert ei.value.key == key
    assert key in str(ei.value)


def test_config_parameter_errors_through_backtest_and_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _example_dict()
    cfg["strategy"]["ask_spread"] = 1.0
    with pytest.raises(ConfigError) as ei:
        tradekit.backtest(cfg)
    assert ei.value.key == "strategy.ask_spread"

    cfg = _example_dict()
    cfg["strategy"]["not_a_param"] = 3
    with pytest.raises(ConfigError) as ei:
        tradekit.backtest(cfg)
    assert ei.value.key == "strategy.not_a_param"

    text = (
        '[venues.paper]\nbroker = "paper"\nfeed = "synthetic"\n\n'
        '[market]\ndate = "2026-11-24"\n[market.symbols.AAPL]\nstart_price = 190.0\n\n'
        '[strategy]\nkind = "pure_market_making"\nvenue = "paper"\nsymbol = "AAPL"\n'
        "bid_spread = -0.0002\n"
    )
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as ei:
        tradekit.backtest(str(path))
    assert ei.value.key == "strategy.bid_spread"
    assert ei.value.file is not None and Path(ei.value.file).name == "bad.toml"
    assert cli_main(["backtest", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "strategy.bid_spread" in err and "bad.toml" in err


def test_keyword_construction_validates_too() -> None:
    with pytest.raises(ConfigError) as ei:
        PureMarketMaking(SYM, bid_spread=-1.0)
    assert ei.value.key == "strategy.bid_spread"
    p = PMMParams(symbol=SYM)
    p.validate()
