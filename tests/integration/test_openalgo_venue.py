"""The OpenAlgo venue adapter against a fake OpenAlgo server: orders, books, funds, faults, and a secret kept.

No Kafka or PostgreSQL needed: the fake is an aiohttp server on 127.0.0.1 (tests/fakes/openalgo.py).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from decimal import Decimal as D

import pytest
import structlog
from prometheus_client import REGISTRY

from adapters.venues.base import (
    Credentials,
    VenueAuthError,
    VenueOrderNotFound,
    VenueOrderStatus,
    VenueRejected,
    VenueUnavailable,
)
from adapters.venues.openalgo import OpenAlgoVenue
from events import Liquidity, OrderSubmitted, OrderType, Side
from tests.fakes.openalgo import FakeOpenAlgo

KEY = "oa-test-key-5f0c2a9e7d1b"
CASH = Decimal("1000000")
_ids = itertools.count(1)


def order(side: Side = Side.BUY, qty: str = "10", limit: str | None = None, symbol: str = "SBIN") -> OrderSubmitted:
    return OrderSubmitted(
        instrument=symbol, client_order_id=f"coid-{next(_ids)}", strategy="ma_cross", side=side,
        order_type=OrderType.LIMIT if limit is not None else OrderType.MARKET, quantity=Decimal(qty),
        limit_price=Decimal(limit) if limit is not None else None,
    )


def errors(venue: str, kind: str) -> float:
    return REGISTRY.get_sample_value("engine_exchange_errors_total", {"venue": venue, "kind": kind}) or 0.0


def requests(venue: str, endpoint: str) -> float:
    return REGISTRY.get_sample_value("engine_exchange_requests_total", {"venue": venue, "endpoint": endpoint}) or 0.0


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAlgo]:
    server = FakeOpenAlgo(KEY, cash=CASH)
    await server.start()
    server.set_price("SBIN", Decimal("800.50"))
    server.set_price("INFY", Decimal("1500.25"))
    yield server
    await server.stop()
    await server.stop()  # safe twice


@pytest.fixture
async def venue(fake: FakeOpenAlgo, request: pytest.FixtureRequest) -> AsyncIterator[OpenAlgoVenue]:
    v = OpenAlgoVenue(fake.url, credentials=Credentials(KEY, ""), timeout_s=5, backoff_s=0.01,
                      name=f"oa-{request.node.name}"[:60])
    await v.start()
    yield v
    await v.close()
    await v.close()  # safe twice


async def test_market_order_fills_at_the_price_and_shows_in_status_trades_and_balances(
        fake: FakeOpenAlgo, venue: OpenAlgoVenue) -> None:
    o = order(qty="10")
    placed = await venue.submit(o)
    assert placed.status is VenueOrderStatus.OPEN and placed.client_order_id == o.client_order_id
    assert placed.raw == {"status": "success", "orderid": placed.venue_order_id}

    sent = fake.last("placeorder")
    assert {k: sent[k] for k in ("strategy", "exchange", "symbol", "action", "pricetype", "product", "quantity")} == {
        "strategy": "engine", "exchange": "NSE", "symbol": "SBIN", "action": "BUY", "pricetype": "MARKET",
        "product": "MIS", "quantity": "10"}

    got = await venue.fetch_order("SBIN", o.client_order_id)
    assert (got.status, got.filled, got.quantity, got.side) == (VenueOrderStatus.FILLED, D(10), D(10), Side.BUY)
    assert got.venue_order_id == placed.venue_order_id and got.limit_price is None

    [trade] = await venue.trades("SBIN", None)
    assert (trade.quantity, trade.price, trade.fee, trade.fee_currency) == (D(10), D("800.50"), D(0), "INR")
    assert trade.client_order_id == o.client_order_id and trade.venue_order_id == placed.venue_order_id
    assert trade.liquidity is Liquidity.TAKER and isinstance(trade.price, Decimal)
    assert await venue.trades("INFY", None) == []
    again = await venue.trades("SBIN", trade.ts)
    assert [t.trade_id for t in again] == [trade.trade_id]  # a stable id across polls

    assert await venue.balances() == {"INR": CASH - Decimal("8005.00")}


async def test_limit_order_rests_then_fills_at_its_price_when_the_market_crosses(
        fake: FakeOpenAlgo, venue: OpenAlgoVenue) -> None:
    o = order(qty="4", limit="790.05")
    placed = await venue.submit(o)
    assert fake.last("placeorder")["pricetype"] == "LIMIT" and fake.last("placeorder")["price"] == "790.05"

    [working] = await venue.open_orders(["SBIN"])
    assert (working.venue_order_id, working.status, working.filled) == (placed.venue_order_id,
                                                                         VenueOrderStatus.OPEN, D(0))
    assert working.limit_price == Decimal("790.05") and working.client_order_id == o.client_order_id
    assert await venue.open_orders(["INFY"]) == []

    fake.set_price("SBIN", Decimal("789.00"))
    got = await venue.fetch_order("SBIN", o.client_order_id)
    assert (got.status, got.filled) == (VenueOrderStatus.FILLED, D(4))
    [trade] = await venue.trades("SBIN", None)
    assert trade.price == Decimal("790.05") and trade.liquidity is Liquidity.MAKER
    assert await venue.open_orders(["SBIN"]) == []


async def test_modify_a_resting_limit_order(fake: FakeOpenAlgo, venue: OpenAlgoVenue) -> None:
    placed = await venue.submit(order(qty="5", limit="700"))
    changed = await venue.modify(placed.venue_order_id, Decimal("8"), Decimal("705.5"))
    assert (changed.status, changed.quantity, changed.limit_price) == (VenueOrderStatus.OPEN, D(8), D("705.5"))
    sent = fake.last("modifyorder")
    assert {k: sent[k] for k in ("orderid", "symbol", "action", "exchange", "product", "pricetype", "quantity",
                                 "price")} == {
        "orderid": placed.venue_order_id, "symbol": "SBIN", "action": "BUY", "exchange": "NSE", "product": "MIS",
        "pricetype": "LIMIT", "quantity": "8", "price": "705.5"}
    fake.set_price("SBIN", Decimal("705"))
    [trade] = await venue.trades("SBIN", None)
    assert (trade.quantity, trade.price) == (D(8), D("705.5"))
    with pytest.raises(VenueRejected) as exc:  # a filled order cannot be modified
        await venue.modify(placed.venue_order_id, Decimal("9"), Decimal("705.5"))
    assert exc.value.rule == "invalid_state"


async def test_cancel_one_order_and_a_filled_one_reports_its_fill(fake: FakeOpenAlgo, venue: OpenAlgoVenue) -> None:
    resting = order(qty="3", limit="600")
    placed = await venue.submit(resting)
    cancelled = await venue.cancel("SBIN", resting.client_order_id, None)
    assert (cancelled.status, cancelled.filled, cancelled.venue_order_id) == (VenueOrderStatus.CANCELLED, D(0),
                                                                              placed.venue_order_id)
    assert fake.order(placed.venue_order_id).status == "cancelled"

    filled = order(qty="2")
    p2 = await venue.submit(filled)
    after = await venue.cancel("SBIN", filled.client_order_id, p2.venue_order_id)  # too late: it filled
    assert (after.status, after.filled) == (VenueOrderStatus.FILLED, D(2))

    with pytest.raises(VenueOrderNotFound):
        await venue.cancel("SBIN", "never-sent", None)
    with pytest.raises(VenueOrderNotFound):
        await venue.cancel("SBIN", "gone", "999")


async def test_cancel_all_and_the_order_book(fake: FakeOpenAlgo, venue: OpenAlgoVenue) -> None:
    resting = [await venue.submit(order(qty="1", limit=p)) for p in ("700", "710")]
    resting.append(await venue.submit(order(side=Side.SELL, qty="2", limit="1600", symbol="INFY")))
    done = await venue.submit(order(qty="1"))

    result = await venue.cancel_all()
    assert sorted(result.cancelled) == sorted(r.venue_order_id for r in resting) and result.failed == {}
    assert await venue.open_orders([]) == []

    book = {o.venue_order_id: o for o in await venue.order_history()}
    assert len(book) == 4
    assert book[done.venue_order_id].status is VenueOrderStatus.FILLED
    assert {book[r.venue_order_id].status for r in resting} == {VenueOrderStatus.CANCELLED}
    infy = book[resting[2].venue_order_id]
    assert (infy.instrument, infy.side, infy.quantity, infy.limit_price) == ("INFY", Side.SELL, D(2), D("1600"))


async def test_funds_are_decimals_and_balances_count_blocked_cash(fake: FakeOpenAlgo, venue: OpenAlgoVenue) -> None:
    await venue.submit(order(qty="10", limit="500"))  # blocks 5000.00
    funds = await venue.funds()
    assert funds["availablecash"] == CASH - 5000 and funds["utiliseddebits"] == Decimal("5000.00")
    assert all(isinstance(v, Decimal) for v in funds.values())
    assert set(funds) >= {"availablecash", "collateral", "m2mrealized", "m2munrealized", "utiliseddebits"}
    assert await venue.balances() == {"INR": CASH}  # free + used


async def test_an_error_answer_is_a_rejection_with_the_venue_reason(fake: FakeOpenAlgo, venue: OpenAlgoVenue) -> None:
    with pytest.raises(VenueRejected) as exc:
        await venue.submit(order(qty="100000"))  # 80 million rupees
    assert exc.value.rule == "insufficient_funds" and "Insufficient funds" in exc.value.reason
    assert exc.value.raw["status"] == "error"

    with pytest.raises(VenueRejected) as exc:
        await venue.submit(order(symbol="NOSUCH"))
    assert exc.value.rule == "invalid_symbol"

    calls = len(fake.requests)
    with pytest.raises(VenueRejected) as exc:  # NSE trades whole shares: refused before sending
        await venue.submit(order(qty="0.5"))
    assert exc.value.rule == "invalid_quantity" and len(fake.requests) == calls
    whole = await venue.submit(order(qty="2.7"))  # rounded down to what the venue accepts
    assert fake.order(whole.venue_order_id).quantity == 2 and whole.quantity == 2

    with pytest.raises(VenueOrderNotFound):
        await venue.fetch_order("SBIN", "unknown-client-id")


async def test_a_refused_key_is_an_auth_error_and_never_shows(fake: FakeOpenAlgo, caplog: pytest.LogCaptureFixture,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    wrong = "oa-wrong-key-77aa31c0e9"
    fake.echo_key = True  # even a server that repeats the key in its answer does not make it leak
    venue = OpenAlgoVenue(fake.url, credentials=Credentials(wrong, ""), backoff_s=0.01, name="oa-wrong-key")
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as logs, pytest.raises(VenueAuthError) as exc:
        await venue.start()
    assert fake.requests == ["funds"]  # not retried
    assert fake.last("funds")["apikey"] == wrong  # it was sent, in the body only
    out = capsys.readouterr()
    texts = [str(exc.value), repr(exc.value), str(exc.value.raw), repr(venue), caplog.text, str(logs), out.out,
             out.err]
    assert all(wrong not in t and KEY not in t for t in texts), texts
    assert errors("oa-wrong-key", "auth") == 1
    await venue.close()

    # started with the right key, a key revoked later is refused the same way on every call
    good = OpenAlgoVenue(fake.url, credentials=Credentials(KEY, ""), backoff_s=0.01, name="oa-revoked")
    await good.start()
    fake.api_key = "rotated-key-0000"
    with structlog.testing.capture_logs() as logs, pytest.raises(VenueAuthError) as exc2:
        await good.order_history()
    assert KEY not in str(exc2.value) and KEY not in str(exc2.value.raw) and KEY not in str(logs)
    assert "***" in str(exc2.value)  # the echoed key was there, and was masked
    await good.close()
    out = capsys.readouterr()
    assert KEY not in out.out + out.err + caplog.text


async def test_a_429_burst_on_reads_is_retried_and_counted(fake: FakeOpenAlgo, venue: OpenAlgoVenue) -> None:
    await venue.submit(order(qty="1", limit="700"))
    before_errors, before_calls = errors(venue.name, "rate_limited"), requests(venue.name, "orderbook")
    fake.rate_limit(3)
    [working] = await venue.open_orders(["SBIN"])
    assert working.status is VenueOrderStatus.OPEN
    assert errors(venue.name, "rate_limited") - before_errors == 3
    assert requests(venue.name, "orderbook") - before_calls == 4

    fake.fail_next(2)  # HTTP 500 on reads: retried too
    assert (await venue.funds())["availablecash"] == CASH - 700
    assert errors(venue.name, "unavailable") == 2

    fake.rate_limit(10)  # more than the retry budget (3): the caller gets the VenueUnavailable
    with pytest.raises(VenueUnavailable) as exc:
        await venue.balances()
    assert exc.value.maybe_sent is False


async def test_submit_is_never_retried_and_a_lost_answer_is_found_again(fake: FakeOpenAlgo,
                                                                         venue: OpenAlgoVenue) -> None:
    o = order(qty="3")
    fake.rate_limit(1)
    with pytest.raises(VenueUnavailable) as refused:
        await venue.submit(o)
    assert refused.value.maybe_sent is False and fake.requests.count("placeorder") == 1 and fake.orders == []

    fake.fail_next(1, after_processing=True)  # the order is placed, the answer is lost
    with pytest.raises(VenueUnavailable) as lost:
        await venue.submit(o)
    assert lost.value.maybe_sent is True and fake.requests.count("placeorder") == 2
    [placed] = fake.orders

    found = await venue.fetch_order("SBIN", o.client_order_id)  # adopted from the order book
    assert (found.venue_order_id, found.status, found.client_order_id) == (placed.orderid, VenueOrderStatus.FILLED,
                                                                           o.client_order_id)
    again = await venue.submit(o)  # the same client order id: never a second order
    assert again.venue_order_id == placed.orderid and len(fake.orders) == 1
    assert fake.requests.count("placeorder") == 2


async def test_after_a_restart_the_map_is_restored_from_the_log(fake: FakeOpenAlgo, venue: OpenAlgoVenue) -> None:
    o = order(qty="1", limit="650")
    placed = await venue.submit(o)
    fresh = OpenAlgoVenue(fake.url, credentials=Credentials(KEY, ""), name="oa-restarted")
    await fresh.start()
    with pytest.raises(VenueOrderNotFound):
        await fresh.fetch_order("SBIN", o.client_order_id)
    fresh.remember(o.client_order_id, placed.venue_order_id)  # e.g. from the OrderAccepted event
    got = await fresh.fetch_order("SBIN", o.client_order_id)
    assert (got.venue_order_id, got.client_order_id, got.status) == (placed.venue_order_id, o.client_order_id,
                                                                     VenueOrderStatus.OPEN)
    await fresh.close()


async def test_an_unreachable_server_is_unavailable_and_not_sent() -> None:
    server = FakeOpenAlgo(KEY)
    url = await server.start()
    await server.stop()
    venue = OpenAlgoVenue(url, credentials=Credentials(KEY, ""), read_retries=1, backoff_s=0.01, name="oa-down")
    with pytest.raises(VenueUnavailable) as exc:
        await venue.start()
    assert exc.value.maybe_sent is False and KEY not in str(exc.value)
    assert errors("oa-down", "network") == 2
    await venue.close()
