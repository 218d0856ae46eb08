"""The shared broker contract suite (``tradekit.testing.BrokerContractTests``) run against
``IBKRBroker`` and the real ib_async client talking to the fake TWS (tests/fakes/tws.py), at
server versions 176 and 178. Any ib_async decode error fails the test (``IBLogGuard``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from fakes.tws import IBKRHarness, IBLogGuard

from tradekit.testing import BrokerContractTests, BrokerHarness


@pytest.fixture(autouse=True)
def no_decode_errors() -> Iterator[IBLogGuard]:
    with IBLogGuard() as guard:
        yield guard
    assert not guard.records, "ib_async logged decode errors:\n" + "\n".join(guard.problems())


class TestIBKRContract(BrokerContractTests):
    @pytest.fixture
    async def harness(self) -> AsyncIterator[BrokerHarness]:
        async with IBKRHarness(server_version=176) as h:
            yield h


class TestIBKRContractV178(BrokerContractTests):
    @pytest.fixture
    async def harness(self) -> AsyncIterator[BrokerHarness]:
        async with IBKRHarness(server_version=178) as h:
            yield h
