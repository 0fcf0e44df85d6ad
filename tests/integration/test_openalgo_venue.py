"""The OpenAlgo venue adapter against a fake OpenAlgo server: orders, books, funds, faults, a secret kept, and one
order per client order id when identical orders' answers are lost.

No Kafka or PostgreSQL needed: the fake is an aiohttp server on 127.0.0.1 (tests/fakes/openalgo.py).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from decimal import Decimal as D

import pytest
import structlog
from prometheus_client import REGISTRY

from adapters.venues.base import (
    Credentials,
    VenueAuthError,
    VenueOrder,
    VenueOrderNotFound,
    VenueOrderStatus,
    VenueRejected,
    VenueUnavailable,
)
from adapters.venues.openalgo import OpenAlgoVenue
from events import Liquidity, OrderSubmitted, OrderType, Side
from tests.fakes.openalgo import FakeOpenAlgo
from tests.support import until

KEY = "oa-test-key-5f0c2a9e7d1b"
CASH = Decimal("1000000")
_ids = itertools.count(1)


def order(side: Side = Side.BUY, qty: str = "10", limit: str | None = None, symbol: str = "SBIN") -> OrderSubmitted:
    return OrderSubmitted(
        instrument=symbol,
        client_order_id=f"coid-{next(_ids)}",
        strategy="ma_cross",
        side=side,
        order_type=OrderType.LIMIT if limit is not None else OrderType.MARKET,
        quantity=Decimal(qty),
        limit_price=Decimal(limit) if limit is not None else None,
    )


def errors(venue: str, kind: str) -> float:
    return REGISTRY.get_sample_value("engine_exchange_errors_total", {"venue": venue, "kind": kind}) or 0.0


def requests(venue: str, endpoint: str) -> float:
    return REGISTRY.get_sample_value("engine_exchange_requests_total", {"venue": venue, "endpoint": endpoint}) or 0.0


async def place_like_the_execution_service(
    venue: OpenAlgoVenue, o: OrderSubmitted, *, confirm_s: float = 1.0, within: float = 15.0
) -> VenueOrder:
    """What engine/execution.py does with one order: submit it; a refusal before sending (maybe_sent=False) is
    retried after a backoff; a lost answer (maybe_sent=True) is looked up by client order id for ``confirm_s``, and
    only then is the order sent again, with the same client order id."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            return await venue.submit(o)
        except VenueUnavailable as exc:
            if not exc.maybe_sent:
                await asyncio.sleep(0.05)
                continue
        confirm_until = time.monotonic() + confirm_s
        while time.monotonic() < confirm_until:
            try:
                return await venue.fetch_order(o.instrument, o.client_order_id)
            except (VenueOrderNotFound, VenueUnavailable):
                await asyncio.sleep(0.05)
    raise AssertionError(f"{o.client_order_id} was not placed within {within} s")


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
    v = OpenAlgoVenue(
        fake.url,
        credentials=Credentials(KEY, ""),
        timeout_s=5,
        backoff_s=0.01,
        settle_s=60,
        name=f"oa-{request.node.name}"[:60],
    )  # settle_s: no doubt is given up by time in a test
    await v.start()
    yield v
    await v.close()
    await v.close()  # safe twice


async def test_market_order_fills_at_the_price_and_shows_in_status_trades_and_balances(
    fake: FakeOpenAlgo, venue: OpenAlgoVenue
) -> None:
    o = order(qty="10")
    placed = await venue.submit(o)
    assert placed.status is VenueOrderStatus.OPEN and placed.client_order_id == o.client_order_id
    assert placed.raw == {"status": "success", "orderid": placed.venue_order_id}

    sent = fake.last("placeorder")
    assert {k: sent[k] for k in ("strategy", "exchange", "symbol", "action", "pricetype", "product", "quantity")} == {
        "strategy": "engine",
        "exchange": "NSE",
        "symbol": "SBIN",
        "action": "BUY",
        "pricetype": "MARKET",
        "product": "MIS",
        "quantity": "10",
    }

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
    fake: FakeOpenAlgo, venue: OpenAlgoVenue
) -> None:
    o = order(qty="4", limit="790.05")
    placed = await venue.submit(o)
    assert fake.last("placeorder")["pricetype"] == "LIMIT" and fake.last("placeorder")["price"] == "790.05"

    [working] = await venue.open_orders(["SBIN"])
    assert (working.venue_order_id, working.status, working.filled) == (
        placed.venue_order_id,
        VenueOrderStatus.OPEN,
        D(0),
    )
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
    assert {
        k: sent[k] for k in ("orderid", "symbol", "action", "exchange", "product", "pricetype", "quantity", "price")
    } == {
        "orderid": placed.venue_order_id,
        "symbol": "SBIN",
        "action": "BUY",
        "exchange": "NSE",
        "product": "MIS",
        "pricetype": "LIMIT",
        "quantity": "8",
        "price": "705.5",
    }
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
    assert (cancelled.status, cancelled.filled, cancelled.venue_order_id) == (
        VenueOrderStatus.CANCELLED,
        D(0),
        placed.venue_order_id,
    )
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


async def test_a_refused_key_is_an_auth_error_and_never_shows(
    fake: FakeOpenAlgo, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "oa-wrong-key-77aa31c0e9"
    fake.echo_key = True  # even a server that repeats the key in its answer does not make it leak
    venue = OpenAlgoVenue(fake.url, credentials=Credentials(wrong, ""), backoff_s=0.01, name="oa-wrong-key")
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as logs, pytest.raises(VenueAuthError) as exc:
        await venue.start()
    assert fake.requests == ["funds"]  # not retried
    assert fake.last("funds")["apikey"] == wrong  # it was sent, in the body only
    out = capsys.readouterr()
    texts = [str(exc.value), repr(exc.value), str(exc.value.raw), repr(venue), caplog.text, str(logs), out.out, out.err]
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
    before_errors, before_calls = errors(venue.name, "unavailable"), requests(venue.name, "orderbook")
    fake.rate_limit(3)
    [working] = await venue.open_orders(["SBIN"])
    assert working.status is VenueOrderStatus.OPEN
    assert errors(venue.name, "unavailable") - before_errors == 3  # a 429 is "unavailable", as with ccxt
    assert requests(venue.name, "orderbook") - before_calls == 4

    fake.fail_next(2)  # HTTP 500 on reads: retried too
    assert (await venue.funds())["availablecash"] == CASH - 700
    assert errors(venue.name, "unavailable") - before_errors == 5

    fake.rate_limit(10)  # more than the retry budget (3): the caller gets the VenueUnavailable
    with pytest.raises(VenueUnavailable) as exc:
        await venue.balances()
    assert exc.value.maybe_sent is False


async def test_submit_is_never_retried_and_a_lost_answer_is_found_again(
    fake: FakeOpenAlgo, venue: OpenAlgoVenue
) -> None:
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
    assert (found.venue_order_id, found.status, found.client_order_id) == (
        placed.orderid,
        VenueOrderStatus.FILLED,
        o.client_order_id,
    )
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
    assert (got.venue_order_id, got.client_order_id, got.status) == (
        placed.venue_order_id,
        o.client_order_id,
        VenueOrderStatus.OPEN,
    )
    await fresh.close()


async def test_two_identical_orders_whose_answers_are_both_lost_become_two_orders_each_adopted_never_a_third(
    fake: FakeOpenAlgo, venue: OpenAlgoVenue
) -> None:
    first, second = order(qty="5", limit="790"), order(qty="5", limit="790")  # same symbol, side, type, qty, price
    fake.fail_next(2, after_processing=True, endpoint="placeorder")  # both reach the broker, both answers are lost

    got = await asyncio.wait_for(
        asyncio.gather(place_like_the_execution_service(venue, first), place_like_the_execution_service(venue, second)),
        30,
    )

    assert len(fake.orders) == 2 and fake.requests.count("placeorder") == 2  # never a third: nothing was resent
    earlier, later = (o.orderid for o in fake.orders)  # sent one after the other: the first order is the first's
    assert [(g.client_order_id, g.venue_order_id) for g in got] == [
        (first.client_order_id, earlier),
        (second.client_order_id, later),
    ]
    assert venue.known_orders == {first.client_order_id: earlier, second.client_order_id: later}


async def test_an_identical_order_submitted_while_anothers_answer_is_in_doubt_is_deferred_and_placed_once(
    fake: FakeOpenAlgo, venue: OpenAlgoVenue
) -> None:
    first, second = order(qty="7", limit="795"), order(qty="7", limit="795")
    fake.fail_next(1, endpoint="placeorder")  # HTTP 500 before processing: not placed, but the adapter cannot know
    with pytest.raises(VenueUnavailable) as lost:
        await venue.submit(first)
    assert lost.value.maybe_sent is True and fake.orders == []

    with pytest.raises(VenueUnavailable) as deferred:  # placed now, it would make the first one's order ambiguous
        await venue.submit(second)
    assert deferred.value.maybe_sent is False and fake.requests.count("placeorder") == 1 and fake.orders == []
    assert first.client_order_id in str(deferred.value) and KEY not in str(deferred.value)

    meanwhile = asyncio.create_task(place_like_the_execution_service(venue, second))  # retried after backoffs
    with pytest.raises(VenueOrderNotFound):  # the first one's caller finds it absent...
        await venue.fetch_order("SBIN", first.client_order_id)
    resent = await venue.submit(first)  # ...and sends it again, with the same client order id
    placed = await asyncio.wait_for(meanwhile, 20)

    assert fake.requests.count("placeorder") == 3  # the lost one, its resend, and the second order: once
    assert [o.orderid for o in fake.orders] == [resent.venue_order_id, placed.venue_order_id]
    assert venue.known_orders == {
        first.client_order_id: resent.venue_order_id,
        second.client_order_id: placed.venue_order_id,
    }


async def test_an_identical_order_waits_while_another_is_in_flight_and_a_different_one_does_not(
    fake: FakeOpenAlgo, venue: OpenAlgoVenue
) -> None:
    first, second, other = order(qty="2", limit="780"), order(qty="2", limit="780"), order(qty="3", limit="780")
    in_flight = fake.hold("placeorder")  # the server receives placements but does not answer yet
    tasks: list[asyncio.Task[VenueOrder]] = []
    try:
        with structlog.testing.capture_logs() as logs:
            tasks.append(asyncio.create_task(venue.submit(first)))
            await until(lambda: fake.requests.count("placeorder") == 1, "the first order reaches the server")
            tasks.append(asyncio.create_task(venue.submit(other)))  # another quantity: another shape, not held up
            await until(lambda: fake.requests.count("placeorder") == 2, "a different order is sent at once")
            tasks.append(asyncio.create_task(venue.submit(second)))
            await until(
                lambda: any(
                    e["event"] == "openalgo.shape_busy" and e.get("client_order_id") == second.client_order_id
                    for e in logs
                ),
                "the identical order waits for the first one's answer",
            )
            assert fake.requests.count("placeorder") == 2 and not tasks[2].done()
            in_flight.set()
            a, c, b = await asyncio.wait_for(asyncio.gather(*tasks), 10)
    finally:
        in_flight.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
    assert fake.requests.count("placeorder") == 3 and len(fake.orders) == 3
    assert venue.known_orders == {
        first.client_order_id: a.venue_order_id,
        second.client_order_id: b.venue_order_id,
        other.client_order_id: c.venue_order_id,
    }
    assert len({a.venue_order_id, b.venue_order_id, c.venue_order_id}) == 3


async def test_a_lost_order_its_caller_gave_up_on_holds_its_shape_only_until_found_or_settle_s(
    fake: FakeOpenAlgo,
) -> None:
    venue = OpenAlgoVenue(
        fake.url, credentials=Credentials(KEY, ""), timeout_s=5, backoff_s=0.01, settle_s=1, name="oa-settle"
    )
    await venue.start()
    try:
        # placed, answer lost, nobody looks it up: the next identical order finds it, adopts it by its own id, goes out
        lost, nxt = order(qty="4", limit="1490", symbol="INFY"), order(qty="4", limit="1490", symbol="INFY")
        fake.fail_next(1, after_processing=True, endpoint="placeorder")
        with pytest.raises(VenueUnavailable):
            await venue.submit(lost)
        placed = await venue.submit(nxt)
        [its, new] = [o.orderid for o in fake.orders]
        assert placed.venue_order_id == new and venue.known_orders[lost.client_order_id] == its
        assert (await venue.fetch_order("INFY", lost.client_order_id)).venue_order_id == its

        # never placed, answer lost, nobody looks it up: the next identical order waits settle_s (1 s), then goes out
        absent, after = order(qty="4", limit="770"), order(qty="4", limit="770")
        fake.fail_next(1, endpoint="placeorder")
        with pytest.raises(VenueUnavailable):
            await venue.submit(absent)
        with pytest.raises(VenueUnavailable) as deferred:
            await venue.submit(after)
        assert deferred.value.maybe_sent is False
        sent = await asyncio.wait_for(place_like_the_execution_service(venue, after), 10)
        assert [o.orderid for o in fake.orders if o.symbol == "SBIN"] == [sent.venue_order_id]
        assert fake.requests.count("placeorder") == 4
        with pytest.raises(VenueOrderNotFound):  # given up: never adopted later by guess
            await venue.fetch_order("SBIN", absent.client_order_id)
    finally:
        await venue.close()


async def test_after_a_restart_orders_restored_from_the_log_are_never_taken_for_a_lost_one(
    fake: FakeOpenAlgo, venue: OpenAlgoVenue
) -> None:
    before = order(qty="6", limit="760")
    accepted = await venue.submit(before)  # its OrderAccepted is in the log
    fresh = OpenAlgoVenue(fake.url, credentials=Credentials(KEY, ""), backoff_s=0.01, name="oa-restarted-2")
    await fresh.start()
    try:
        fresh.remember(before.client_order_id, accepted.venue_order_id)  # the execution service, from the log
        after = order(qty="6", limit="760")  # identical, after the restart, its answer lost
        fake.fail_next(1, after_processing=True, endpoint="placeorder")
        with pytest.raises(VenueUnavailable):
            await fresh.submit(after)
        found = await fresh.fetch_order("SBIN", after.client_order_id)
        [new] = [o.orderid for o in fake.orders if o.orderid != accepted.venue_order_id]
        assert found.venue_order_id == new and found.client_order_id == after.client_order_id
        assert fresh.known_orders == {before.client_order_id: accepted.venue_order_id, after.client_order_id: new}
    finally:
        await fresh.close()


async def test_an_unreachable_server_is_unavailable_and_not_sent() -> None:
    server = FakeOpenAlgo(KEY)
    url = await server.start()
    await server.stop()
    venue = OpenAlgoVenue(url, credentials=Credentials(KEY, ""), read_retries=1, backoff_s=0.01, name="oa-down")
    with pytest.raises(VenueUnavailable) as exc:
        await venue.start()
    assert exc.value.maybe_sent is False and KEY not in str(exc.value)
    assert errors("oa-down", "unavailable") == 2
    await venue.close()
