"""Both live venues shut down the same way: ``close()``, safe twice (and before any start), and ``async with``;
an optional capability is a protocol checked with ``isinstance``."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from adapters.venues.base import Credentials, LiveVenue, RemembersOrderIds, VenueUnavailable
from adapters.venues.ccxt import CcxtVenue
from adapters.venues.openalgo import OpenAlgoVenue
from tests.fakes.binance import FakeBinance, ccxt_venue_for
from tests.fakes.openalgo import FakeOpenAlgo

KEY, SECRET = "life-test-key-0001", "life-test-secret-0002"


async def test_a_ccxt_venue_closes_twice_and_works_with_async_with() -> None:
    fake = FakeBinance(api_key=KEY, secret=SECRET, balances={"USDT": Decimal("100")})
    await fake.start()
    try:
        never_started = ccxt_venue_for(fake, api_key=KEY, secret=SECRET, name=f"life-{uuid.uuid4().hex[:8]}")
        await never_started.close()
        await never_started.close()

        async with ccxt_venue_for(fake, api_key=KEY, secret=SECRET, name=f"life-{uuid.uuid4().hex[:8]}") as venue:
            assert (await venue.balances())["USDT"] == Decimal("100")
        await venue.close()  # closed on leaving the block; again: nothing happens
        await venue.close()
    finally:
        await fake.stop()


async def test_an_openalgo_venue_closes_twice_and_works_with_async_with() -> None:
    fake = FakeOpenAlgo(KEY, cash=Decimal(1000))
    await fake.start()
    try:
        never_started = OpenAlgoVenue(fake.url, credentials=Credentials(KEY, ""), name="life-oa-idle")
        await never_started.close()
        await never_started.close()

        async with OpenAlgoVenue(fake.url, credentials=Credentials(KEY, ""), name="life-oa") as venue:
            assert (await venue.balances())["INR"] == Decimal(1000)
        await venue.close()
        await venue.close()
        with pytest.raises(VenueUnavailable) as exc:  # closed means closed: nothing is sent
            await venue.balances()
        assert exc.value.maybe_sent is False
    finally:
        await fake.stop()


def test_remembering_order_ids_is_a_capability_of_venues_without_client_order_ids() -> None:
    openalgo: LiveVenue = OpenAlgoVenue("http://127.0.0.1:9", credentials=Credentials(KEY, ""))
    ccxt: LiveVenue = CcxtVenue("binance", credentials=None)
    assert isinstance(openalgo, RemembersOrderIds)
    assert not isinstance(ccxt, RemembersOrderIds)  # binance finds an order by our client order id itself
