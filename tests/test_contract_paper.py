"""The shared broker contract suite (tradekit.testing) run against the paper broker, in three
set-ups: default rules without latency, Alpaca rules with 20 ms latency, IBKR rules and fees."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tradekit.enums import OrderStatus, Side
from tradekit.testing import BrokerContractTests, PaperHarness


class TestPaperContract(BrokerContractTests):
    @pytest.fixture
    async def harness(self) -> AsyncIterator[PaperHarness]:
        async with PaperHarness() as h:
            yield h


class TestPaperContractAlpacaLatency(BrokerContractTests):
    @pytest.fixture
    async def harness(self) -> AsyncIterator[PaperHarness]:
        async with PaperHarness(rules="alpaca", latency_ms=20) as h:
            yield h

    async def test_replace_gives_a_new_broker_id(self, harness: PaperHarness) -> None:
        b = harness.broker
        o = b.submit_order(harness.symbol, Side.BUY, 100, limit_price=189.90)
        await harness.settle()
        first = o.broker_order_id
        b.replace_order(o, limit_price=189.95)
        await harness.settle()
        assert o.broker_order_id and o.broker_order_id != first
        assert b._om.by_broker_id(o.broker_order_id) is o
        b.cancel_order(o.broker_order_id)
        await harness.settle()
        assert o.status is OrderStatus.CANCELED


class TestPaperContractIbkr(BrokerContractTests):
    @pytest.fixture
    async def harness(self) -> AsyncIterator[PaperHarness]:
        async with PaperHarness(rules="ibkr", latency_ms=3, cash=250_000.0) as h:
            yield h
