"""The shared broker contract suite run against the example adapter of a user's own broker
(examples/custom_broker_adapter.py), loaded by path as a user's module would be."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import pytest

import tradekit.brokers
from tradekit.testing import BrokerContractTests, BrokerHarness

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "custom_broker_adapter.py"


def _load() -> ModuleType:
    name = "custom_broker_adapter"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


example = _load()


class TestMemoryBrokerContract(BrokerContractTests):
    @pytest.fixture
    async def harness(self) -> AsyncIterator[BrokerHarness]:
        async with example.MemoryHarness() as h:
            yield h


def test_registered_under_its_name() -> None:
    assert tradekit.brokers.get("memory") is example.MemoryBroker
    assert "memory" in tradekit.brokers.names()


async def test_demo_runs(capsys: pytest.CaptureFixture[str]) -> None:
    await example.demo()
    out = capsys.readouterr().out
    assert "filled=100" in out
    assert "Position(symbol='AAPL', qty=100.0" in out


async def test_rejected_market_order_without_quote() -> None:
    exchange = example.MemoryExchange()
    async with example.MemoryBroker(exchange, clock=example.SimClock(example.DEFAULT_START)) as b:
        o = b.submit_order("AAPL", "buy", 10)
        await b.drain()
        assert o.status.value == "rejected" and o.reject_reason == "broker"
        assert "no quote" in (o.reject_message or "")
