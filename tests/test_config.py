"""Tests of tradekit.config: the CONTRACT §4 example, every kind of error (each naming file and
key), secrets never shown, dict input, round trips and overrides."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from tradekit import brokers
from tradekit.brokers.paper import PaperBroker
from tradekit.config import (
    FEEDS,
    STRATEGY_KINDS,
    Config,
    MarketConfig,
    SessionConfig,
    StrategyConfig,
    VenueConfig,
    build_strategy,
    is_secret_key,
    load_config,
    mask_secrets,
    strategy_kinds,
)
from tradekit.errors import ConfigError
from tradekit.risk import RiskLimits

# CONTRACT §4, verbatim.
CONTRACT_EXAMPLE = """\
[venues.NAME]                 # one table per venue
broker = "paper"              # paper | alpaca | ibkr | a registered name
feed = "synthetic"            # synthetic | replay | alpaca | ibkr  (paper's default: synthetic)
rules = "alpaca"              # paper only: default | alpaca | ibkr
latency_ms = 20               # paper only: one number for order entry, cancels and data
cash = 100000                 # paper only: starting cash
positions = { AAPL = 0 }      # paper only: starting positions (may be negative)
shorting = true               # paper only
# alpaca: paper, base_url, trading_stream_url, data_feed ("iex"|"sip"), data_url, data_stream_url
# ibkr:   host, port, client_id, account, route, currency

[market]                      # the synthetic feed
date = "2026-11-24"           # the trading day simulated
seed = 1
[market.symbols.AAPL]
start_price = 190.0           # optional further keys: volatility, spread_ticks, ...

[session]
calendar = "NYSE"
hours = "regular"             # regular | extended (extended: quote in pre and post too, as limit DAY extended-hours orders)
cancel_before_close_s = 60
flatten_at_close = false

[risk]                        # every key optional; absent means no limit
max_position = 1000           # shares per symbol per venue, absolute
max_order_qty = 500
max_order_notional = 100000
max_open_orders = 50
max_orders_per_minute = 150
max_daily_loss = 1000         # trips the kill switch
fat_finger = 0.05             # max distance of a limit price from the mid, as a fraction

[strategy]
kind = "pure_market_making"   # pure_market_making | arbitrage | cross_exchange_market_making
# pure_market_making:  venue, symbol, then its parameters
# arbitrage:           venue_a, venue_b, symbol (or symbol_a, symbol_b), then its parameters
# cross_exchange_market_making: maker_venue, taker_venue, symbol (or maker_symbol, taker_symbol), ...
"""  # noqa: E501

# a minimal valid config (one paper venue on the synthetic feed)
MINIMAL = """\
[venues.sim]
[market.symbols.AAPL]
start_price = 190.0
"""

API_KEY = "AKFAKEKEYVALUE0001"
SECRET = "s3cr3t-FAKE-VALUE-0002"


def write(tmp_path: Path, text: str, name: str = "bot.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def minimal_dict(**extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "venues": {"sim": {}},
        "market": {"symbols": {"AAPL": {"start_price": 190.0}}},
    }
    doc.update(extra)
    return doc


def error_of(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert err.file == str(path), f"file not named: {err}"
    assert str(path) in str(err)
    return err


# ------------------------------------------------------------------------------ the contract


def test_contract_example_parses(tmp_path: Path) -> None:
    path = write(tmp_path, CONTRACT_EXAMPLE)
    cfg = load_config(path)
    assert cfg.path == str(path)
    assert list(cfg.venues) == ["NAME"]
    v = cfg.venues["NAME"]
    assert (v.name, v.broker, v.feed) == ("NAME", "paper", "synthetic")
    assert v.options == {
        "rules": "alpaca",
        "latency_ms": 20,
        "cash": 100000,
        "positions": {"AAPL": 0},
        "shorting": True,
    }
    assert cfg.market == MarketConfig(
        date=dt.date(2026, 11, 24), seed=1, symbols={"AAPL": {"start_price": 190.0}}, options={}
    )
    assert cfg.session == SessionConfig("NYSE", "regular", 60.0, False, None)
    assert cfg.risk == RiskLimits(
        max_position=1000,
        max_order_qty=500,
        max_order_notional=100000,
        max_open_orders=50,
        max_orders_per_minute=150,
        max_daily_loss=1000,
        fat_finger=0.05,
    )
    assert cfg.strategy == StrategyConfig("pure_market_making", {})
    assert cfg.data == ()


def test_values_are_frozen(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, CONTRACT_EXAMPLE))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.path = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.market.seed = 3  # type: ignore[misc]
    assert not hasattr(cfg, "__dict__")  # slots


def test_defaults() -> None:
    cfg = load_config(minimal_dict())
    assert cfg.path is None
    assert cfg.venues["sim"] == VenueConfig("sim", "paper", "synthetic", {})
    assert cfg.market.date is None and cfg.market.seed == 1
    assert cfg.session == SessionConfig()
    assert cfg.risk == RiskLimits() and not cfg.risk.any
    assert cfg.strategy is None
    alpaca = load_config({"venues": {"a": {"broker": "alpaca"}}}).venues["a"]
    assert alpaca.feed == "alpaca"
    ibkr = load_config({"venues": {"i": {"broker": "ibkr"}}}).venues["i"]
    assert ibkr.feed == "ibkr"


def test_all_broker_keys_accepted() -> None:
    cfg = load_config(
        {
            "venues": {
                "sim": {
                    "broker": "paper",
                    "feed": "replay",
                    "rules": "ibkr",
                    "latency_ms": {"order_ms": 5, "cancel_ms": 2.5, "data_ms": 0},
                    "cash": 5e4,
                    "positions": {"AAPL": -100, "MSFT": 12.5},
                    "shorting": False,
                    "fees": {"broker": "ibkr", "per_share": 0.0035},
                    "leverage": 4,
                },
                "alp": {
                    "broker": "alpaca",
                    "paper": True,
                    "base_url": "https://paper-api.alpaca.markets",
                    "trading_stream_url": "wss://paper-api.alpaca.markets/stream",
                    "data_feed": "sip",
                    "data_url": "https://data.alpaca.markets",
                    "data_stream_url": "wss://stream.data.alpaca.markets",
                },
                "ib": {
                    "broker": "ibkr",
                    "host": "127.0.0.1",
                    "port": 4002,
                    "client_id": 7,
                    "account": "DU123456",
                    "route": "SMART",
                    "currency": "USD",
                },
                # a paper venue fed by Alpaca's data may carry the feed's settings
                "shadow": {"broker": "paper", "feed": "alpaca", "data_feed": "iex"},
            }
        }
    )
    assert cfg.venues["sim"].options["positions"] == {"AAPL": -100, "MSFT": 12.5}
    assert cfg.venues["ib"].options["port"] == 4002
    assert cfg.venues["shadow"].options == {"data_feed": "iex"}
    assert set(FEEDS) == {"synthetic", "replay", "alpaca", "ibkr"}


def test_fees_as_schedule_name() -> None:
    cfg = load_config(minimal_dict(venues={"sim": {"fees": "alpaca"}}))
    assert cfg.venues["sim"].options["fees"] == "alpaca"


def test_market_options_and_symbol_keys_pass_through() -> None:
    cfg = load_config(
        minimal_dict(
            market={
                "date": dt.date(2026, 11, 24),
                "seed": 7,
                "lead_lag_ms": 30,
                "dislocation_rate": 0.01,
                "symbols": {"AAPL": {"start_price": 190.0, "volatility": 0.3, "spread_ticks": 2}},
            }
        )
    )
    assert cfg.market.options == {"lead_lag_ms": 30, "dislocation_rate": 0.01}
    assert cfg.market.symbols["AAPL"]["volatility"] == 0.3
    assert cfg.market.date == dt.date(2026, 11, 24)


def test_replay_feed_needs_no_start_price() -> None:
    cfg = load_config({"venues": {"r": {"feed": "replay"}}, "market": {"symbols": {"AAPL": {}}}})
    assert cfg.venues["r"].feed == "replay"


def test_session_values() -> None:
    cfg = load_config(
        minimal_dict(
            session={
                "calendar": "nasdaq",
                "hours": "extended",
                "cancel_before_close_s": 0,
                "flatten_at_close": True,
                "stale_data_s": 2.5,
            }
        )
    )
    assert cfg.session == SessionConfig("NASDAQ", "extended", 0.0, True, 2.5)
    assert cfg.session.extended


def test_data_files_relative_to_the_config(tmp_path: Path) -> None:
    sub = tmp_path / "cfg"
    sub.mkdir()
    path = write(sub, MINIMAL.replace("[venues.sim]", 'data = ["q.csv", "/abs/t.parquet"]\n'
                                      "[venues.sim]"))
    cfg = load_config(path)
    assert cfg.data == (str(sub.resolve() / "q.csv"), "/abs/t.parquet")
    # a single string is one file
    assert load_config(minimal_dict(data="x.csv")).data == ("x.csv",)


def test_third_party_broker_passes_keys_through(monkeypatch: pytest.MonkeyPatch) -> None:
    class MyBroker(PaperBroker):
        name = "mybroker"

    monkeypatch.setitem(brokers._registered, "mybroker", MyBroker)
    cfg = load_config(
        {
            "venues": {"m": {"broker": "mybroker", "anything": {"x": 1}, "token": "T0KEN-FAKE"}},
            "market": {"symbols": {"AAPL": {"start_price": 10}}},
        }
    )
    v = cfg.venues["m"]
    assert v.broker == "mybroker" and v.feed == "synthetic"
    assert v.options == {"anything": {"x": 1}, "token": "T0KEN-FAKE"}
    assert "T0KEN-FAKE" not in repr(cfg) and "T0KEN-FAKE" not in str(cfg.to_dict())


def test_load_config_passes_a_config_through() -> None:
    cfg = Config(venues={"sim": VenueConfig("sim")})
    assert load_config(cfg) is cfg


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("colour = 1\n" + MINIMAL, "colour", ["allowed: venues, market, session, risk"]),
        ("[venues.nyse]\nlatncy_ms = 20\n" + MINIMAL, "venues.nyse.latncy_ms",
         ["unknown key", "latency_ms", "rules"]),
        ("[venues.nyse]\ncash = true\n" + MINIMAL, "venues.nyse.cash", ["number", "true"]),
        ("[venues.nyse]\nlatency_ms = true\n" + MINIMAL, "venues.nyse.latency_ms",
         ["number", "true", "boolean"]),
        ('[venues.nyse]\nlatency_ms = "fast"\n' + MINIMAL, "venues.nyse.latency_ms",
         ['"fast"', "string"]),
        ("[venues.nyse]\nlatency_ms = -5\n" + MINIMAL, "venues.nyse.latency_ms", [">= 0", "-5"]),
        ("[venues.nyse]\nlatency_ms = { order_ms = -1 }\n" + MINIMAL,
         "venues.nyse.latency_ms.order_ms", [">= 0"]),
        ("[venues.nyse]\nlatency_ms = { orders_ms = 1 }\n" + MINIMAL,
         "venues.nyse.latency_ms.orders_ms", ["order_ms"]),
        ("[venues.nyse]\ncash = 0\n" + MINIMAL, "venues.nyse.cash", ["> 0"]),
        ('[venues.nyse]\nshorting = "yes"\n' + MINIMAL, "venues.nyse.shorting", ["boolean"]),
        ('[venues.nyse]\nrules = "nasdaq"\n' + MINIMAL, "venues.nyse.rules",
         ["default | alpaca | ibkr"]),
        ('[venues.nyse]\npositions = { AAPL = "10" }\n' + MINIMAL, "venues.nyse.positions.AAPL",
         ["number"]),
        ('[venues.nyse]\nfees = { per_shar = 1 }\n' + MINIMAL, "venues.nyse.fees.per_shar",
         ["per_share"]),
        ('[venues.nyse]\nbroker = "schwab"\n' + MINIMAL, "venues.nyse.broker",
         ["schwab", "paper", "alpaca", "ibkr"]),
        ('[venues.nyse]\nfeed = "bloomberg"\n' + MINIMAL, "venues.nyse.feed",
         ["bloomberg", "synthetic | replay | alpaca | ibkr"]),
        ('[venues.a]\nbroker = "alpaca"\ndata_feed = "otc"\n', "venues.a.data_feed",
         ["iex | sip"]),
        ('[venues.a]\nbroker = "alpaca"\nbase_url = "paper-api.alpaca.markets"\n',
         "venues.a.base_url", ["https://"]),
        ('[venues.a]\nbroker = "alpaca"\nrules = "alpaca"\n', "venues.a.rules", ["allowed:"]),
        ('[venues.i]\nbroker = "ibkr"\nport = 70000\n', "venues.i.port", ["1 to 65535"]),
        ('[venues.i]\nbroker = "ibkr"\nclient_id = 1.5\n', "venues.i.client_id", ["integer"]),
        ('[venues.i]\nbroker = "ibkr"\ncurrency = "usd"\n', "venues.i.currency", ["USD"]),
        ("[market]\nseed = 1\n", "venues", ["at least one"]),
        ("venues = 3\n", "venues", ["table"]),
        ("[venues.sim]\n", "market.symbols", ["synthetic", "start_price"]),
        ("[venues.sim]\n[market.symbols.AAPL]\nvolatility = 0.2\n",
         "market.symbols.AAPL.start_price", ["required", "synthetic"]),
        ("[venues.sim]\n[market.symbols.AAPL]\nstart_price = -1\n",
         "market.symbols.AAPL.start_price", ["> 0"]),
        (MINIMAL + "[market]\nseed = true\n", "market.seed", ["integer", "true"]),
        (MINIMAL + "[market]\ndate = 2026-11-26\n", "market.date",
         ["2026-11-26", "Thursday", "not a trading day", "holiday",
          "next trading day: 2026-11-27"]),
        (MINIMAL + '[market]\ndate = "2026-11-28"\n', "market.date",
         ["weekend", "next trading day: 2026-11-30"]),
        (MINIMAL + '[market]\ndate = "24/11/2026"\n', "market.date", ["YYYY", "24/11/2026"]),
        (MINIMAL + "[market]\ndate = 2026-11-24T09:30:00Z\n", "market.date", ["datetime"]),
        (MINIMAL + '[session]\nhours = "overnight"\n', "session.hours",
         ["regular | extended", "overnight"]),
        (MINIMAL + '[session]\ncalendar = "LSE"\n', "session.calendar", ["LSE", "NYSE"]),
        (MINIMAL + "[session]\ncancel_before_close_s = -1\n", "session.cancel_before_close_s",
         [">= 0"]),
        (MINIMAL + "[session]\nstale_data_s = 0\n", "session.stale_data_s", ["> 0"]),
        (MINIMAL + "[session]\nflatten_at_close = 1\n", "session.flatten_at_close",
         ["boolean"]),
        (MINIMAL + "[session]\ntimezone = 1\n", "session.timezone", ["allowed:", "hours"]),
        (MINIMAL + "[risk]\nmax_positon = 5\n", "risk.max_positon", ["max_position"]),
        (MINIMAL + "[risk]\nmax_position = true\n", "risk.max_position", ["number"]),
        (MINIMAL + '[strategy]\nkind = "market_maker"\n', "strategy.kind",
         ["market_maker", "pure_market_making"]),
        (MINIMAL + "[strategy]\nsymbol = \"AAPL\"\n", "strategy.kind", ["required"]),
        (MINIMAL + '[strategy]\nkind = "arbitrage"\nvenue_a = "sim"\nvenue_b = "nasdaq"\n',
         "strategy.venue_b", ["nasdaq", "defined venues: sim"]),
        (MINIMAL + '[strategy]\nkind = "pure_market_making"\nvenue = 3\n', "strategy.venue",
         ["defined venues"]),
        (MINIMAL + '[strategy]\nkind = "cross_exchange_market_making"\nmaker_venue = "sim"\n'
         'taker_venue = "x"\n', "strategy.taker_venue", ['"x"']),
        (MINIMAL.replace("[venues.sim]", "data = [1]\n[venues.sim]"), "data[0]", ["file"]),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, text: str, key: str, words: list[str]) -> None:
    err = error_of(tmp_path, text)
    assert err.key == key, str(err)
    assert f"{key}:" in str(err)
    for w in words:
        assert w in str(err), f"{w!r} not in {err}"


def test_toml_syntax_error_names_file(tmp_path: Path) -> None:
    err = error_of(tmp_path, "[venues.sim\n")
    assert "invalid TOML" in str(err) and "line 1" in str(err)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="not found") as info:
        load_config(path)
    assert info.value.file == str(path)


def test_directory_is_not_a_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="directory"):
        load_config(tmp_path)


def test_dict_errors_have_no_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"venues": {"sim": {"latncy_ms": 1}}})
    assert info.value.file is None
    assert info.value.key == "venues.sim.latncy_ms"


def test_venue_name_with_dots_is_quoted() -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"venues": {"my.venue": {"bogus": 1}}})
    assert info.value.key == 'venues."my.venue".bogus'


def test_venue_name_with_colon_refused() -> None:
    with pytest.raises(ConfigError, match="':'"):
        load_config({"venues": {"a:b": {}}})


# ------------------------------------------------------------------------------ secrets


def secret_config_text() -> str:
    return (
        '[venues.alp]\nbroker = "alpaca"\n'
        f'api_key = "{API_KEY}"\nsecret_key = "{SECRET}"\n'
    )


def test_secrets_are_masked_and_warned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, secret_config_text())
    with caplog.at_level(logging.WARNING, logger="tradekit.config"):
        cfg = load_config(path)
    # kept for the broker...
    assert cfg.venues["alp"].options["api_key"] == API_KEY
    # ...but never shown
    shown = [repr(cfg), str(cfg), repr(cfg.venues), str(cfg.to_dict()), caplog.text]
    for text in shown:
        assert API_KEY not in text and SECRET not in text
    assert cfg.to_dict()["venues"]["alp"]["api_key"] == "***"
    assert cfg.to_dict()["venues"]["alp"]["secret_key"] == "***"
    warnings = [r for r in caplog.records if r.name == "tradekit.config"]
    assert warnings and all(r.levelno == logging.WARNING for r in warnings)
    assert "environment" in caplog.text and "venues.alp.api_key" in caplog.text


def test_secrets_not_in_error_messages(tmp_path: Path) -> None:
    # a wrong type for a secret: the message names the type, never the value
    err = error_of(tmp_path, f'[venues.alp]\nbroker = "alpaca"\nsecret_key = ["{SECRET}"]\n')
    assert err.key == "venues.alp.secret_key"
    assert SECRET not in str(err) and "hidden" in str(err)
    # an error elsewhere in a config holding secrets shows none of them
    err = error_of(tmp_path, secret_config_text() + "paper = 1\n")
    assert err.key == "venues.alp.paper"
    assert API_KEY not in str(err) and SECRET not in str(err)
    # nor in a ConfigError built from a dict
    with pytest.raises(ConfigError) as info:
        load_config({"venues": {"a": {"broker": "alpaca", "api_key": 12345678901}}})
    assert "12345678901" not in str(info.value)


def test_secret_key_names() -> None:
    for k in ("api_key", "secret_key", "password", "token", "apikey", "private_key", "key"):
        assert is_secret_key(k), k
    for k in ("host", "port", "latency_ms", "keyboard", "base_url", "data_feed"):
        assert not is_secret_key(k), k
    assert mask_secrets({"a": {"password": "x", "n": [{"token": "y"}]}}) == {
        "a": {"password": "***", "n": [{"token": "***"}]}
    }


# ------------------------------------------------------------------------------ to_dict, overrides


def test_to_dict_round_trip(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, CONTRACT_EXAMPLE))
    d = cfg.to_dict()
    assert d["market"]["date"] == "2026-11-24"
    assert d["session"] == {
        "calendar": "NYSE",
        "hours": "regular",
        "cancel_before_close_s": 60.0,
        "flatten_at_close": False,
        "unknown_orders": "adopt",
        "shutdown_timeout_s": 10.0,
        "flatten_on_kill": False,
    }
    assert d["risk"]["fat_finger"] == 0.05
    assert d["strategy"] == {"kind": "pure_market_making"}
    again = load_config(d)
    assert again == dataclasses.replace(cfg, path=None)


def test_with_overrides(tmp_path: Path) -> None:
    text = CONTRACT_EXAMPLE.replace(
        'kind = "pure_market_making"', 'kind = "pure_market_making"\nvenue = "NAME"'
    )
    cfg = load_config(write(tmp_path, text))
    new = cfg.with_overrides(
        seed=42, date="2026-11-27", data=["a.csv"], strategy_params={"bid_spread": 0.002}
    )
    assert new.market.seed == 42 and new.market.date == dt.date(2026, 11, 27)
    assert new.data == ("a.csv",)
    assert new.strategy is not None
    assert new.strategy.params == {"venue": "NAME", "bid_spread": 0.002}
    assert cfg.market.seed == 1  # the original is unchanged
    assert cfg.with_overrides() == cfg
    with pytest.raises(ConfigError) as info:
        cfg.with_overrides(seed=-1)
    assert info.value.key == "market.seed" and info.value.file == cfg.path
    with pytest.raises(ConfigError, match="next trading day: 2026-11-27"):
        cfg.with_overrides(date=dt.date(2026, 11, 26))
    with pytest.raises(ConfigError) as info:
        cfg.with_overrides(strategy_params={"venue": "elsewhere"})
    assert info.value.key == "strategy.venue"


# ------------------------------------------------------------------------------ strategy registry


def fake_strategies(monkeypatch: pytest.MonkeyPatch, kinds: dict[str, Any]) -> list[Any]:
    """Install a fake ``tradekit.strategies`` package (registry + build); returns the calls."""
    calls: list[Any] = []
    mod = types.ModuleType("tradekit.strategies")

    def build(kind: str, params: dict[str, Any], *, file: str | None = None) -> object:
        calls.append((kind, params, file))
        if "bad" in params:
            raise ConfigError("must be > 0", file=file, key="strategy.bad")
        return object()

    mod.registry = kinds  # type: ignore[attr-defined]
    mod.build = build  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tradekit.strategies", mod)
    return calls


def test_registry_kinds_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_strategies(monkeypatch, {"my_grid": object})
    assert "my_grid" in strategy_kinds()
    assert set(STRATEGY_KINDS) <= set(strategy_kinds())
    cfg = load_config(minimal_dict(strategy={"kind": "my_grid", "levels": 3}))
    assert cfg.strategy == StrategyConfig("my_grid", {"levels": 3})


def test_registry_absent_is_tolerated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tradekit.strategies", None)  # import fails
    assert strategy_kinds() == sorted(STRATEGY_KINDS)
    cfg = load_config(minimal_dict(strategy={"kind": "arbitrage", "venue_a": "sim"}))
    assert cfg.strategy is not None and cfg.strategy.kind == "arbitrage"
    assert build_strategy(cfg) is None


def test_build_strategy_uses_the_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = fake_strategies(monkeypatch, {})
    path = write(tmp_path, MINIMAL + '[strategy]\nkind = "arbitrage"\nvenue_a = "sim"\n')
    cfg = load_config(path)
    assert build_strategy(cfg) is not None
    assert calls == [("arbitrage", {"venue_a": "sim"}, str(path))]
    bad = cfg.with_overrides(strategy_params={"bad": 1})
    with pytest.raises(ConfigError) as info:
        build_strategy(bad)
    assert info.value.key == "strategy.bad" and info.value.file == str(path)
