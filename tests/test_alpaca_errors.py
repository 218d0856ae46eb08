"""Alpaca's REST error table, offline with ``responses`` (the real alpaca-py client and requests
session; ``responses`` answers at the transport): each documented error becomes the typed result
tradekit promises, and alpaca-py's own 3-second retry on 429 is off."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

pytest.importorskip("alpaca")
responses = pytest.importorskip("responses")

import requests  # noqa: E402

from tradekit.brokers.alpaca import (  # noqa: E402
    PAPER_URL,
    AlpacaBroker,
    AlpacaError,
    AlpacaServerError,
    classify_error,
)
from tradekit.clock import SimClock  # noqa: E402
from tradekit.enums import OrderStatus, RejectReason, Side  # noqa: E402
from tradekit.errors import (  # noqa: E402
    AuthError,
    RateLimited,
    TransientBrokerError,
)
from tradekit.testing import DEFAULT_START  # noqa: E402

V2 = f"{PAPER_URL}/v2"
OID = "61e69015-8549-4bfd-b9c3-01e75843f47d"

ACCOUNT = {
    "id": "e6fe16f3-64a4-4921-8928-cadf02f92f98",
    "account_number": "PA3XXXXXXXXX",
    "status": "ACTIVE",
    "crypto_status": "ACTIVE",
    "currency": "USD",
    "buying_power": "400000",
    "regt_buying_power": "200000",
    "non_marginable_buying_power": "100000",
    "cash": "100000",
    "accrued_fees": "0",
    "pending_transfer_in": "0",
    "portfolio_value": "100000",
    "trading_blocked": False,
    "transfers_blocked": False,
    "account_blocked": False,
    "created_at": "2024-06-01T12:00:00Z",
    "trade_suspended_by_user": False,
    "multiplier": "4",
    "shorting_enabled": True,
    "equity": "100000",
    "last_equity": "100000",
    "long_market_value": "0",
    "short_market_value": "0",
    "initial_margin": "0",
    "maintenance_margin": "0",
    "last_maintenance_margin": "0",
    "sma": "0",
    "options_buying_power": "100000",
    "options_approved_level": 2,
    "options_trading_level": 2,
}


def order_json(
    cid: str,
    *,
    oid: str = OID,
    status: str = "new",
    filled: str = "0",
    avg: str | None = None,
    qty: str = "100",
    limit: str = "189.99",
) -> dict[str, Any]:
    return {
        "id": oid,
        "client_order_id": cid,
        "created_at": "2026-11-24T15:00:00.123456Z",
        "updated_at": "2026-11-24T15:00:00.223456Z",
        "submitted_at": "2026-11-24T15:00:00.123456Z",
        "filled_at": None,
        "expired_at": None,
        "canceled_at": None,
        "failed_at": None,
        "replaced_at": None,
        "replaced_by": None,
        "replaces": None,
        "asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
        "symbol": "AAPL",
        "asset_class": "us_equity",
        "notional": None,
        "qty": qty,
        "filled_qty": filled,
        "filled_avg_price": avg,
        "order_class": "",
        "order_type": "limit",
        "type": "limit",
        "side": "buy",
        "position_intent": "buy_to_open",
        "time_in_force": "day",
        "limit_price": limit,
        "stop_price": None,
        "status": status,
        "extended_hours": False,
        "legs": None,
        "trail_percent": None,
        "trail_price": None,
        "hwm": None,
        "expires_at": "2026-11-24T21:00:00Z",
    }


@pytest.fixture
def rsps(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.delenv("APCA_API_BASE_URL", raising=False)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as r:
        yield r


def _connect_mocks(rsps: Any) -> None:
    rsps.add(responses.GET, f"{V2}/account", json=ACCOUNT)
    rsps.add(responses.GET, f"{V2}/positions", json=[])
    rsps.add(responses.GET, f"{V2}/orders", json=[])


@pytest.fixture
async def broker(rsps: Any) -> AsyncIterator[AlpacaBroker]:
    _connect_mocks(rsps)
    b = AlpacaBroker(
        "KEY",
        "SECRET",
        stream=False,
        poll_interval=3600,
        clock=SimClock(DEFAULT_START),
        backoff=(0.001, 0.01),
        auto_instruments=False,
        id_prefix="t",
    )
    await b.connect()
    yield b
    await b.close()


def _calls(rsps: Any, method: str, part: str) -> list[Any]:
    return [c for c in rsps.calls if c.request.method == method and part in c.request.url]


# ---------------------------------------------------------------------------- submit


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (
            403,
            {"code": 40310000, "message": "potential wash trade detected. use complex orders"},
            RejectReason.WASH_TRADE,
        ),
        (
            422,
            {
                "code": 42210000,
                "message": "invalid limit_price 189.995. sub-penny increment "
                "does not fulfill minimum pricing criteria",
            },
            RejectReason.TICK_SIZE,
        ),
        (
            403,
            {
                "code": 40310000,
                "message": "insufficient buying power",
                "buying_power": "10",
                "cost_basis": "18999",
            },
            RejectReason.INSUFFICIENT_BUYING_POWER,
        ),
        (
            403,
            {
                "code": 40310000,
                "message": "insufficient qty available for order (requested: 100, available: 0)",
                "available": "0",
                "existing_qty": "100",
                "held_for_orders": "100",
                "symbol": "AAPL",
                "related_orders": [OID],
            },
            RejectReason.INSUFFICIENT_QTY,
        ),
        (
            422,
            {"code": 40010001, "message": "us_equity orders not allowed for account"},
            RejectReason.BROKER,
        ),
        (
            422,
            {"code": 42210000, "message": "potential wash trade detected. use complex orders"},
            RejectReason.WASH_TRADE,
        ),
    ],
)
async def test_submit_rejections(
    broker: AlpacaBroker, rsps: Any, status: int, body: dict[str, Any], reason: RejectReason
) -> None:
    rsps.add(responses.POST, f"{V2}/orders", status=status, json=body)
    o = broker.submit_order("AAPL", Side.BUY, 100, limit_price=189.99)
    await broker.drain()
    assert o.status is OrderStatus.REJECTED and o.reject_reason is reason
    assert body["message"] in (o.reject_message or "")
    assert len(_calls(rsps, "POST", "/orders")) == 1, "a refused order is never sent again"
    sent = json.loads(_calls(rsps, "POST", "/orders")[0].request.body)
    assert sent["limit_price"] == "189.99" and sent["qty"] == "100"
    assert sent["client_order_id"] == o.client_order_id


async def test_submit_forbidden_is_an_auth_failure(
    broker: AlpacaBroker, rsps: Any, caplog: pytest.LogCaptureFixture
) -> None:
    rsps.add(responses.POST, f"{V2}/orders", status=403, json={"message": "forbidden"})
    o = broker.submit_order("AAPL", Side.BUY, 100, limit_price=189.99)
    await broker.drain()
    assert o.status is OrderStatus.REJECTED and o.reject_reason is RejectReason.BROKER
    assert "APCA_API_KEY_ID" in (o.reject_message or "")
    assert any("refused access" in r.getMessage() for r in caplog.records)


async def test_submit_5xx_looked_up_then_resent(broker: AlpacaBroker, rsps: Any) -> None:
    rsps.add(responses.POST, f"{V2}/orders", status=500, body="upstream error")
    rsps.add(
        responses.GET,
        f"{V2}/orders:by_client_order_id",
        status=404,
        json={"code": 40410000, "message": "order not found"},
    )
    o = broker.submit_order("AAPL", Side.BUY, 100, limit_price=189.99)
    rsps.add(responses.POST, f"{V2}/orders", json=order_json(o.client_order_id))
    await broker.drain()
    assert o.status is OrderStatus.NEW and o.broker_order_id == OID
    assert len(_calls(rsps, "POST", "/orders")) == 2
    look = _calls(rsps, "GET", "by_client_order_id")
    assert len(look) == 1 and f"client_order_id={o.client_order_id}" in look[0].request.url


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ReadTimeout("read timed out"),
        requests.exceptions.ConnectionError("connection reset"),
    ],
)
async def test_submit_unknown_outcome_found_by_lookup(
    broker: AlpacaBroker, rsps: Any, exc: Exception
) -> None:
    rsps.add(responses.POST, f"{V2}/orders", body=exc)
    o = broker.submit_order("AAPL", Side.BUY, 100, limit_price=189.99)
    rsps.add(responses.GET, f"{V2}/orders:by_client_order_id", json=order_json(o.client_order_id))
    await broker.drain()
    assert o.status is OrderStatus.NEW and o.broker_order_id == OID
    assert len(_calls(rsps, "POST", "/orders")) == 1, "found: never sent again"


async def test_submit_duplicate_id_answer_means_it_exists(broker: AlpacaBroker, rsps: Any) -> None:
    rsps.add(responses.POST, f"{V2}/orders", status=503, json={"message": "unavailable"})
    rsps.add(
        responses.GET,
        f"{V2}/orders:by_client_order_id",
        status=404,
        json={"code": 40410000, "message": "order not found"},
    )
    rsps.add(
        responses.POST,
        f"{V2}/orders",
        status=422,
        json={"code": 40010001, "message": "client_order_id must be unique"},
    )
    o = broker.submit_order("AAPL", Side.BUY, 100, limit_price=189.99)
    rsps.add(responses.GET, f"{V2}/orders:by_client_order_id", json=order_json(o.client_order_id))
    await broker.drain()
    assert o.status is OrderStatus.NEW and o.broker_order_id == OID


async def test_submit_gives_up_as_lost_after_repeated_5xx(broker: AlpacaBroker, rsps: Any) -> None:
    rsps.add(responses.POST, f"{V2}/orders", status=502, body="bad gateway")
    rsps.add(
        responses.GET,
        f"{V2}/orders:by_client_order_id",
        status=404,
        json={"code": 40410000, "message": "order not found"},
    )
    o = broker.submit_order("AAPL", Side.BUY, 100, limit_price=189.99)
    await broker.drain()
    assert o.status is OrderStatus.LOST and o.is_done
    n = broker.rest.max_attempts
    assert len(_calls(rsps, "POST", "/orders")) == n
    # every resend was preceded by a look-up that found nothing
    assert len(_calls(rsps, "GET", "by_client_order_id")) >= n - 1


# ---------------------------------------------------------------------------- cancel / replace


async def _acked(broker: AlpacaBroker, rsps: Any) -> Any:
    o = broker.submit_order("AAPL", Side.BUY, 100, limit_price=189.99)
    rsps.add(responses.POST, f"{V2}/orders", json=order_json(o.client_order_id))
    await broker.drain()
    assert o.status is OrderStatus.NEW
    return o


async def test_cancel_404_is_a_cancel_rejection(broker: AlpacaBroker, rsps: Any) -> None:
    o = await _acked(broker, rsps)
    rsps.add(
        responses.DELETE,
        f"{V2}/orders/{OID}",
        status=404,
        json={"code": 40410000, "message": "order not found"},
    )
    rsps.add(
        responses.GET,
        f"{V2}/orders:by_client_order_id",
        status=404,
        json={"code": 40410000, "message": "order not found"},
    )
    broker.cancel_order(o)
    assert o.status is OrderStatus.PENDING_CANCEL
    await broker.drain()
    assert o.status is OrderStatus.NEW, "the cancel was refused: the order is as it was"


async def test_cancel_of_a_filled_order_422(broker: AlpacaBroker, rsps: Any) -> None:
    o = await _acked(broker, rsps)
    rsps.add(
        responses.DELETE,
        f"{V2}/orders/{OID}",
        status=422,
        json={"code": 42210000, "message": 'order is already in "filled" state'},
    )
    rsps.add(
        responses.GET,
        f"{V2}/orders:by_client_order_id",
        json=order_json(o.client_order_id, status="filled", filled="100", avg="189.98"),
    )
    broker.cancel_order(o)
    await broker.drain()
    assert o.status is OrderStatus.FILLED and o.filled_qty == 100
    assert o.avg_fill_price == pytest.approx(189.98)
    assert [f.fill_id for f in o.fills] == [f"{OID}:100"]


async def test_cancel_204_waits_for_the_confirmation(broker: AlpacaBroker, rsps: Any) -> None:
    o = await _acked(broker, rsps)
    rsps.add(responses.DELETE, f"{V2}/orders/{OID}", status=204)
    broker.cancel_order(o)
    await broker.drain()
    assert o.status is OrderStatus.PENDING_CANCEL  # a request; the canceled event confirms it


async def test_replace_of_a_filled_order_422(broker: AlpacaBroker, rsps: Any) -> None:
    o = await _acked(broker, rsps)
    rsps.add(
        responses.PATCH,
        f"{V2}/orders/{OID}",
        status=422,
        json={"code": 42210000, "message": 'order is already in "filled" state'},
    )
    rsps.add(
        responses.GET,
        f"{V2}/orders:by_client_order_id",
        json=order_json(o.client_order_id, status="filled", filled="100", avg="189.99"),
    )
    broker.replace_order(o, limit_price=189.98)
    await broker.drain()
    assert o.status is OrderStatus.FILLED and o.limit_price == 189.99


async def test_replace_sub_penny_422_is_a_replace_rejection(
    broker: AlpacaBroker, rsps: Any
) -> None:
    o = await _acked(broker, rsps)
    rsps.add(
        responses.PATCH,
        f"{V2}/orders/{OID}",
        status=422,
        json={
            "code": 42210000,
            "message": "invalid limit_price 189.985. sub-penny "
            "increment does not fulfill minimum pricing "
            "criteria",
        },
    )
    broker.replace_order(o, limit_price=189.98, qty=120)
    await broker.drain()
    assert o.status is OrderStatus.NEW and (o.qty, o.limit_price) == (100, 189.99)
    body = json.loads(_calls(rsps, "PATCH", OID)[0].request.body)
    assert body == {
        "qty": "120",
        "limit_price": "189.98",
        "client_order_id": f"{o.client_order_id}-r1",
    }


async def test_replace_ok_gives_the_new_id(broker: AlpacaBroker, rsps: Any) -> None:
    o = await _acked(broker, rsps)
    new_id = "0f2d0a1c-1111-4bfd-b9c3-01e75843f47d"
    new = order_json(f"{o.client_order_id}-r1", oid=new_id, limit="189.98")
    new["replaces"] = OID
    rsps.add(responses.PATCH, f"{V2}/orders/{OID}", json=new)
    broker.replace_order(o, limit_price=189.98)
    await broker.drain()
    assert o.status is OrderStatus.NEW and o.limit_price == 189.98
    assert o.broker_order_id == new_id and broker.get_order(o.client_order_id) is o


# ---------------------------------------------------------------------------- auth, 429, 5xx


async def test_401_at_connect_is_an_auth_error(rsps: Any) -> None:
    rsps.add(responses.GET, f"{V2}/account", status=401, json={"message": "unauthorized"})
    b = AlpacaBroker("KEY", "wrong-secret-123", stream=False)
    with pytest.raises(AuthError) as info:
        await b.connect()
    assert "APCA_API_KEY_ID" in str(info.value) and "wrong-secret-123" not in str(info.value)
    assert not b.connected


async def test_403_forbidden_on_a_query_is_an_auth_error(broker: AlpacaBroker, rsps: Any) -> None:
    rsps.replace(responses.GET, f"{V2}/account", status=403, json={"message": "forbidden"})
    with pytest.raises(AuthError):
        await broker.get_account()


async def test_429_waits_as_retry_after_says(broker: AlpacaBroker, rsps: Any) -> None:
    rsps.replace(
        responses.GET,
        f"{V2}/account",
        status=429,
        json={"code": 42910000, "message": "rate limit exceeded"},
        headers={"Retry-After": "0.3"},
    )
    rsps.add(responses.GET, f"{V2}/account", json=ACCOUNT)
    t0 = time.monotonic()
    acct = await broker.get_account()
    took = time.monotonic() - t0
    assert acct.cash == 100_000 and 0.3 <= took < 2.5, took  # alpaca-py's 3 s sleep is off
    assert broker.rest.rate_limited == 1


async def test_429_plain_text_waits_for_the_reset(broker: AlpacaBroker, rsps: Any) -> None:
    reset = time.time() + 0.4
    rsps.replace(
        responses.GET,
        f"{V2}/positions",
        status=429,
        body="Too Many Requests",
        headers={
            "X-RateLimit-Limit": "200",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{reset:.3f}",
        },
    )
    rsps.add(responses.GET, f"{V2}/positions", json=[])
    t0 = time.monotonic()
    assert await broker.get_positions() == {}
    assert time.monotonic() - t0 >= 0.3


async def test_5xx_on_a_query_retried_then_raised(broker: AlpacaBroker, rsps: Any) -> None:
    rsps.replace(responses.GET, f"{V2}/account", status=503, body="unavailable")
    rsps.add(responses.GET, f"{V2}/account", status=500, json={"message": "oops"})
    rsps.add(responses.GET, f"{V2}/account", json=ACCOUNT)
    assert (await broker.get_account()).equity == 100_000
    rsps.replace(responses.GET, f"{V2}/account", status=500, json={"message": "oops"})
    with pytest.raises(AlpacaServerError) as info:
        await broker.get_account()
    assert isinstance(info.value, TransientBrokerError)
    assert len(_calls(rsps, "GET", "/account")) == 1 + 3 + broker.rest.max_attempts


# ---------------------------------------------------------------------------- the table


@pytest.mark.parametrize(
    ("status", "body", "headers", "kind", "check"),
    [
        (401, '{"message": "unauthorized"}', {}, AuthError, None),
        (403, '{"message": "forbidden"}', {}, AuthError, None),
        (
            403,
            '{"code": 40310000, "message": "potential wash trade detected. use complex orders"}',
            {},
            AlpacaError,
            ("reason", RejectReason.WASH_TRADE),
        ),
        (
            403,
            '{"code": 40310000, "message": "asset AAPL cannot be sold short"}',
            {},
            AlpacaError,
            ("reason", RejectReason.SHORTING),
        ),
        (
            404,
            '{"code": 40410000, "message": "order not found"}',
            {},
            AlpacaError,
            ("not_found", True),
        ),
        (
            422,
            '{"code": 42210000, "message": "order is already in \\"canceled\\" state"}',
            {},
            AlpacaError,
            ("not_open", True),
        ),
        (
            422,
            '{"code": 42210000, "message": "order is not replaceable in \\"pending_new\\" state"}',
            {},
            AlpacaError,
            ("retry_later", True),
        ),
        (
            422,
            '{"code": 40010001, "message": "client_order_id must be unique"}',
            {},
            AlpacaError,
            ("duplicate_id", True),
        ),
        (
            400,
            '{"code": 40010000, "message": "request body format is invalid"}',
            {},
            AlpacaError,
            ("reason", RejectReason.INVALID),
        ),
        (429, "rate limit exceeded", {"Retry-After": "2"}, RateLimited, ("retry_after", 2.0)),
        (
            429,
            '{"code": 42910000, "message": "rate limit exceeded"}',
            {},
            RateLimited,
            ("retry_after", None),
        ),
        (500, "<html>oops</html>", {}, AlpacaServerError, ("status", 500)),
        (504, "", {}, AlpacaServerError, ("status", 504)),
    ],
)
def test_classify_error(
    status: int, body: str, headers: dict[str, str], kind: type, check: tuple[str, Any] | None
) -> None:
    err = classify_error(status, body, headers, what="submit t-1")
    assert isinstance(err, kind)
    if check is not None:
        assert getattr(err, check[0]) == check[1]
    assert "submit t-1" in str(err)


def test_retry_after_from_the_reset_header() -> None:
    err = classify_error(429, "", {"X-RateLimit-Reset": str(int(time.time()) + 5)})
    assert isinstance(err, RateLimited) and err.retry_after is not None
    assert 3.5 <= err.retry_after <= 5.0
