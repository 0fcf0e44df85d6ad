"""Venue-native stops through ccxt's real binance code against the fake Binance: STOP_LOSS / STOP_LOSS_LIMIT.

No Kafka or PostgreSQL needed: each test starts its own fake exchange on 127.0.0.1.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from adapters.venues.base import VenueOrderStatus, VenueRejected
from adapters.venues.ccxt import CcxtVenue, native_stops
from events import Liquidity, OrderSubmitted, OrderType, Side
from tests.fakes.binance import FakeBinance
from tests.integration.binance_venue import BTC, fake_binance, venue_on

KEY = "stops-test-KEY-5e1d7c9a2b"
SECRET = "stops-test-SECRET-8f0a3b6c4d"


def stop(qty: str, trigger: str, *, side: Side = Side.SELL, limit: str | None = None) -> OrderSubmitted:
    return OrderSubmitted(
        instrument=BTC,
        client_order_id=f"t-{uuid.uuid4().hex[:16]}",
        strategy="test",
        side=side,
        order_type=OrderType.STOP_LIMIT if limit else OrderType.STOP,
        quantity=Decimal(qty),
        limit_price=Decimal(limit) if limit else None,
        trigger_price=Decimal(trigger),
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with fake_binance(KEY, SECRET) as f:
        yield f


@pytest.fixture
async def venue(fake: FakeBinance) -> AsyncIterator[CcxtVenue]:
    async with venue_on(fake, KEY, SECRET) as v:
        yield v


def test_binance_has_native_stops_and_exchanges_the_adapter_does_not_map_do_not() -> None:
    assert native_stops("binance")
    assert not native_stops("coinbase") and not native_stops("kraken") and not native_stops("no-such-exchange")


async def test_a_stop_loss_rests_untriggered_then_fills_at_the_first_price_that_reaches_it(
    fake: FakeBinance, venue: CcxtVenue
) -> None:
    o = stop("0.02", "59000.004")  # rounded by ccxt to the tick (0.01)
    placed = await venue.submit(o)
    assert placed.status is VenueOrderStatus.OPEN and placed.filled == 0 and placed.order_type is OrderType.STOP
    (sent,) = fake.orders_by_client_id(o.client_order_id)
    assert (sent["type"], sent["side"], sent["stopPrice"], sent["isWorking"]) == (
        "STOP_LOSS",
        "SELL",
        "59000.00000000",
        False,
    )
    assert [x.client_order_id for x in await venue.open_orders([BTC])] == [o.client_order_id]
    assert (await venue.balances())["BTC"] == Decimal("1")  # locked, still ours

    fake.set_price(BTC, Decimal("59000.01"))  # above the trigger: nothing
    assert (await venue.fetch_order(BTC, o.client_order_id)).status is VenueOrderStatus.OPEN
    fake.set_price(BTC, Decimal("58990"))  # reaches it: sold at that price, as taker
    got = await venue.fetch_order(BTC, o.client_order_id)
    assert got.status is VenueOrderStatus.FILLED and got.filled == Decimal("0.02")
    (t,) = await venue.trades(BTC, None)
    assert (t.side, t.quantity, t.price, t.liquidity) == (Side.SELL, Decimal("0.02"), Decimal("58990"), Liquidity.TAKER)
    assert t.client_order_id == o.client_order_id
    assert (await venue.balances())["BTC"] == Decimal("0.98")


async def test_a_stop_limit_becomes_a_limit_at_its_price_and_rests_until_crossed(
    fake: FakeBinance, venue: CcxtVenue
) -> None:
    o = stop("0.01", "61000", side=Side.BUY, limit="61100")
    placed = await venue.submit(o)
    assert placed.order_type is OrderType.STOP_LIMIT and placed.limit_price == Decimal("61100")
    (sent,) = fake.orders_by_client_id(o.client_order_id)
    assert (sent["type"], sent["price"], sent["stopPrice"]) == ("STOP_LOSS_LIMIT", "61100.00000000", "61000.00000000")
    fake.set_price(BTC, Decimal("61200"))  # triggers it, above its limit: it rests as a buy limit at 61100
    got = await venue.fetch_order(BTC, o.client_order_id)
    assert got.status is VenueOrderStatus.OPEN and got.filled == 0
    assert fake.orders_by_client_id(o.client_order_id)[0]["isWorking"] is True
    fake.set_price(BTC, Decimal("61050"))
    got = await venue.fetch_order(BTC, o.client_order_id)
    assert got.status is VenueOrderStatus.FILLED
    (t,) = await venue.trades(BTC, None)
    assert (t.price, t.liquidity) == (Decimal("61100"), Liquidity.MAKER)


async def test_a_stop_that_would_trigger_at_once_is_refused_by_the_venue(venue: CcxtVenue) -> None:
    with pytest.raises(VenueRejected) as err:
        await venue.submit(stop("0.01", "60500"))  # a sell stop above the last price (60000)
    assert "trigger immediately" in str(err.value)


async def test_a_stop_is_cancelled_before_it_triggers_and_never_fills(fake: FakeBinance, venue: CcxtVenue) -> None:
    o = stop("0.01", "59000")
    placed = await venue.submit(o)
    cancelled = await venue.cancel(BTC, o.client_order_id, placed.venue_order_id)
    assert cancelled.status is VenueOrderStatus.CANCELLED
    fake.set_price(BTC, Decimal("58000"))
    assert fake.all_trades() == [] and (await venue.balances())["BTC"] == Decimal("1")
