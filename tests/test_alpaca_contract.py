"""The shared broker contract suite (tradekit.testing) run against AlpacaBroker: the real
alpaca-py client, REST and trade-updates stream, talking to the fake Alpaca on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

pytest.importorskip("alpaca")

from fakes.alpaca import AlpacaHarness

from tradekit.testing import BrokerContractTests


class TestAlpacaContract(BrokerContractTests):
    @pytest.fixture
    async def harness(self) -> AsyncIterator[AlpacaHarness]:
        async with AlpacaHarness() as h:
            yield h
