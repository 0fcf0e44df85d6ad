"""CcxtVenue against a fake Binance: ccxt's real binance code signs, rounds and maps errors; only URLs differ.

No Kafka or PostgreSQL needed: each test starts its own fake exchange on 127.0.0.1.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import structlog
from prometheus_client import REGISTRY

from adapters.venues.base import (
    Credentials,
    VenueAuthError,
    VenueDuplicateOrder,
    VenueOrderNotFound,
    VenueOrderStatus,
    VenueRejected,
    VenueUnavailable,
)
from adapters.venues.ccxt import CcxtVenue
from events import Liquidity, OrderSubmitted, OrderType, Side
from tests.fakes.binance import FakeBinance, ccxt_venue_for
from tests.integration.binance_venue import BTC, fake_binance, venue_on
from tests.support import wait_for

KEY = "venue-test-KEY-5e1d7c9a2b"
SECRET = "venue-test-SECRET-8f0a3b6c4d"


def coid() -> str:
    return f"t-{uuid.uuid4().hex[:16]}"


def order(
    qty: str,
    *,
    side: Side = Side.BUY,
    price: str | None = None,
    client_order_id: str | None = None,
    instrument: str = BTC,
) -> OrderSubmitted:
    return OrderSubmitted(
        instrument=instrument,
        client_order_id=client_order_id or coid(),
        strategy="test",
        side=side,
        order_type=OrderType.LIMIT if price else OrderType.MARKET,
        quantity=Decimal(qty),
        limit_price=Decimal(price) if price else None,
    )


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with fake_binance(KEY, SECRET) as f:
        yield f


@pytest.fixture
async def venue(fake: FakeBinance) -> AsyncIterator[CcxtVenue]:
    async with venue_on(fake, KEY, SECRET) as v:
        yield v


async def test_a_market_order_fills_and_its_trade_and_balances_show_it(fake: FakeBinance, venue: CcxtVenue) -> None:
    o = order("0.01")
    placed = await venue.submit(o)
    assert placed.status is VenueOrderStatus.FILLED and placed.filled == Decimal("0.01")
    assert placed.client_order_id == o.client_order_id and placed.venue_order_id
    assert placed.raw["clientOrderId"] == o.client_order_id  # the venue's own answer is kept

    trades = await venue.trades(BTC, None)
    (venue_trade,) = fake.all_trades()
    (t,) = trades
    assert t.trade_id == str(venue_trade["id"]) and t.venue_order_id == placed.venue_order_id
    assert t.client_order_id == o.client_order_id
    assert (t.side, t.quantity, t.price, t.liquidity) == (Side.BUY, Decimal("0.01"), Decimal("60000"), Liquidity.TAKER)
    assert (t.fee, t.fee_currency) == (Decimal("0.6"), "USDT")
    assert all(isinstance(v, Decimal) for v in (t.quantity, t.price, t.fee))

    balances = await venue.balances()
    assert balances["BTC"] == Decimal("1.01")
    assert balances["USDT"] == Decimal("100000") - Decimal("600") - Decimal("0.6")


async def test_the_venue_leaves_the_callers_decimal_context_as_it_was(venue: CcxtVenue) -> None:
    # ccxt's rounding sets the caller's context to ROUND_HALF_UP; the adapter keeps that inside its calls
    import decimal

    before = decimal.getcontext().rounding
    await venue.submit(order("0.0123456789"))
    await venue.trades(BTC, None)
    await venue.balances()
    assert decimal.getcontext().rounding == before == decimal.ROUND_HALF_EVEN


async def test_a_limit_order_rests_is_listed_and_can_be_cancelled(fake: FakeBinance, venue: CcxtVenue) -> None:
    o = order("0.01", price="50000")
    placed = await venue.submit(o)
    assert placed.status is VenueOrderStatus.OPEN and placed.filled == 0
    assert placed.limit_price == Decimal("50000") and placed.order_type is OrderType.LIMIT

    listed = await venue.open_orders([BTC])
    assert [(x.client_order_id, x.venue_order_id) for x in listed] == [(o.client_order_id, placed.venue_order_id)]
    assert await venue.open_orders([]) == listed  # no instrument: every market

    cancelled = await venue.cancel(BTC, o.client_order_id, placed.venue_order_id)
    assert cancelled.status is VenueOrderStatus.CANCELLED and cancelled.client_order_id == o.client_order_id
    assert await venue.open_orders([BTC]) == [] and fake.open_orders() == []
    assert (await venue.balances())["USDT"] == Decimal("100000")  # the funds it held are free again
    with pytest.raises(VenueOrderNotFound):  # nothing left to cancel
        await venue.cancel(BTC, o.client_order_id, None)


async def test_a_resting_limit_order_fills_as_maker_when_the_price_crosses_it(
    fake: FakeBinance, venue: CcxtVenue
) -> None:
    o = order("0.02", side=Side.SELL, price="61000")
    await venue.submit(o)
    fake.set_price(BTC, Decimal("61500"))
    got = await venue.fetch_order(BTC, o.client_order_id)
    assert got.status is VenueOrderStatus.FILLED and got.filled == Decimal("0.02")
    (t,) = await venue.trades(BTC, got.ts - 5_000_000_000)
    assert (t.price, t.liquidity, t.side) == (Decimal("61000"), Liquidity.MAKER, Side.SELL)


async def test_fetch_order_finds_an_order_by_its_client_order_id(venue: CcxtVenue) -> None:
    o = order("0.01", price="40000")
    placed = await venue.submit(o)
    got = await venue.fetch_order(BTC, o.client_order_id)
    assert (got.client_order_id, got.venue_order_id, got.status) == (
        o.client_order_id,
        placed.venue_order_id,
        VenueOrderStatus.OPEN,
    )
    assert got.quantity == Decimal("0.01") and got.side is Side.BUY
    with pytest.raises(VenueOrderNotFound):
        await venue.fetch_order(BTC, "never-sent-1")


async def test_a_client_order_id_used_twice_is_rejected_and_places_no_second_order(
    fake: FakeBinance, venue: CcxtVenue
) -> None:
    o = order("0.01")
    await venue.submit(o)
    with pytest.raises(VenueDuplicateOrder) as exc:  # proof the venue has it: the caller looks it up
        await venue.submit(o)
    assert "Duplicate order sent" in exc.value.reason
    assert len(fake.orders_by_client_id(o.client_order_id)) == 1
    assert metric("engine_exchange_errors_total", venue=venue.name, kind="duplicate") == 1
    assert metric("engine_exchange_errors_total", venue=venue.name, kind="rejected") == 0


async def test_insufficient_balance_is_rejected_with_rule_insufficient_funds(
    fake: FakeBinance, venue: CcxtVenue
) -> None:
    with pytest.raises(VenueRejected) as exc:
        await venue.submit(order("10"))  # 600k USDT, the account holds 100k
    assert exc.value.rule == "insufficient_funds" and not exc.value.retriable
    assert metric("engine_exchange_errors_total", venue=venue.name, kind="rejected") == 1
    assert fake.all_orders() == []


async def test_quantity_and_price_are_rounded_to_the_market_by_ccxt(fake: FakeBinance, venue: CcxtVenue) -> None:
    o = order("0.0123456789", price="50000.126")
    placed = await venue.submit(o)
    (at_venue,) = fake.orders_by_client_id(o.client_order_id)
    assert at_venue["origQty"] == "0.01234000"  # LOT_SIZE step 0.00001, truncated
    assert at_venue["price"] == "50000.13000000"  # PRICE_FILTER tick 0.01
    assert placed.quantity == Decimal("0.01234") and placed.limit_price == Decimal("50000.13")
    with pytest.raises(VenueRejected) as exc:  # below one step: ccxt refuses it before sending
        await venue.submit(order("0.000001"))
    assert exc.value.rule == "invalid_order"


async def test_a_wrong_secret_is_an_auth_error_that_never_shows_the_secret(
    fake: FakeBinance, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong_secret = "WRONG-secret-0f9e8d7c6b5a"
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as logs:
        for key, secret in ((KEY, wrong_secret), ("WRONG-key-1a2b3c4d5e", SECRET)):
            v = ccxt_venue_for(fake, api_key=key, secret=secret, name=f"binance-{uuid.uuid4().hex[:8]}")
            try:
                with pytest.raises(VenueAuthError) as at_start:
                    await v.start()  # start checks the credentials
                with pytest.raises(VenueAuthError) as on_submit:
                    await v.submit(order("0.01"))
            finally:
                await v.close()
            assert metric("engine_exchange_errors_total", venue=v.name, kind="auth") == 2
            for exc in (at_start.value, on_submit.value):
                assert not exc.retriable and exc.__context__ is None and exc.__cause__ is None
                text = f"{exc} {exc!r} {exc.raw}"
                assert secret not in text and key not in text
    printed = capsys.readouterr()
    everything = "\n".join([caplog.text, printed.out, printed.err, repr(logs)])
    assert "call_failed" in everything  # the failures were logged...
    for s in (wrong_secret, SECRET, KEY, "WRONG-key-1a2b3c4d5e"):
        assert s not in everything  # ...without a credential
    assert fake.all_orders() == []


async def test_a_429_burst_is_retried_for_reads_and_counted(fake: FakeBinance, venue: CcxtVenue) -> None:
    fake.rate_limit(2)
    balances = await venue.balances()
    assert balances["USDT"] == Decimal("100000")
    assert metric("engine_exchange_errors_total", venue=venue.name, kind="unavailable") == 2
    assert metric("engine_exchange_requests_total", venue=venue.name, endpoint="fetch_balance") == 4  # start + 3
    assert metric("engine_exchange_request_duration_seconds_count", venue=venue.name) >= 5

    fake.rate_limit(1)  # a submit is not retried here; refused before processing, it certainly was not placed
    o = order("0.01")
    with pytest.raises(VenueUnavailable) as exc:
        await venue.submit(o)
    assert exc.value.retriable and exc.value.maybe_sent is False
    assert fake.orders_by_client_id(o.client_order_id) == []


async def test_reads_give_up_after_read_retries(fake: FakeBinance) -> None:
    v = ccxt_venue_for(fake, api_key=KEY, secret=SECRET, read_retries=1, name=f"binance-{uuid.uuid4().hex[:8]}")
    async with v:
        fake.rate_limit(5)
        with pytest.raises(VenueUnavailable):
            await v.balances()
        assert metric("engine_exchange_requests_total", venue=v.name, endpoint="fetch_balance") == 3  # start + 2


async def test_an_answer_lost_after_the_venue_took_the_order_is_unavailable_and_the_order_exists_once(
    fake: FakeBinance,
) -> None:
    v = ccxt_venue_for(fake, api_key=KEY, secret=SECRET, timeout_ms=500, name=f"binance-{uuid.uuid4().hex[:8]}")
    async with v:
        fake.delay_responses_after_accept(1, 2.0)
        o = order("0.01")
        with pytest.raises(VenueUnavailable) as exc:
            await v.submit(o)
        assert exc.value.maybe_sent is True  # the outcome is unknown
        assert len(fake.orders_by_client_id(o.client_order_id)) == 1
        found = await v.fetch_order(BTC, o.client_order_id)  # what the caller does next: look it up
        assert found.status is VenueOrderStatus.FILLED
        with pytest.raises(VenueRejected):  # sending it again with the same id is refused
            await v.submit(o)
        assert len(fake.orders_by_client_id(o.client_order_id)) == 1


async def test_a_new_order_invisible_to_lookups_is_not_found_then_found(fake: FakeBinance, venue: CcxtVenue) -> None:
    fake.hide_new_orders(1.0)
    o = order("0.01")
    await venue.submit(o)
    with pytest.raises(VenueOrderNotFound):
        await venue.fetch_order(BTC, o.client_order_id)

    async def found() -> bool:
        try:
            return (await venue.fetch_order(BTC, o.client_order_id)).status is VenueOrderStatus.FILLED
        except VenueOrderNotFound:
            return False

    await wait_for(found, 15, "the hidden order to become visible")


async def test_trades_listed_twice_by_the_venue_come_back_once(fake: FakeBinance, venue: CcxtVenue) -> None:
    for _ in range(3):
        await venue.submit(order("0.01"))
    fake.duplicate_trades(True)
    trades = await venue.trades(BTC, None)
    assert len(trades) == 3 and len({t.trade_id for t in trades}) == 3
    assert [t.ts for t in trades] == sorted(t.ts for t in trades)


async def test_coinbase_and_alpaca_construct_in_sandbox_mode_with_rate_limiting() -> None:
    creds = Credentials("sandbox-key-0001", "sandbox-secret-0002", "pass-0003")
    for exchange_id in ("coinbase", "alpaca", "binance"):
        v = CcxtVenue(exchange_id, credentials=creds, sandbox=True)
        try:
            assert v.name == exchange_id
            assert v.exchange.enableRateLimit is True and v.exchange.isSandboxModeEnabled is True
            assert any(("sandbox" in u or "paper" in u or "testnet" in u) for u in _urls(v.exchange.urls["api"])), (
                v.exchange.urls["api"]
            )
        finally:
            await v.close()
            await v.close()  # safe twice
    with pytest.raises(ValueError, match="no-such-exchange"):
        CcxtVenue("no-such-exchange", credentials=None)


def _urls(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [u for v in node.values() for u in _urls(v)]
    return []
