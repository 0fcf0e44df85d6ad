"""A fake Binance (tests/fakes/binance.py) with a BTC/USDT price and a CcxtVenue on it, for the integration tests of
the ccxt venue (test_ccxt_venue.py, test_ccxt_native_stops.py)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

from adapters.venues.ccxt import CcxtVenue
from tests.fakes.binance import FakeBinance, ccxt_venue_for

BTC = "BTC/USDT"


@contextlib.asynccontextmanager
async def fake_binance(key: str, secret: str) -> AsyncIterator[FakeBinance]:
    """Started, with 100,000 USDT and 1 BTC for ``key``, BTC/USDT at 60,000; stopped at the end."""
    f = FakeBinance(api_key=key, secret=secret, balances={"USDT": Decimal("100000"), "BTC": Decimal("1")})
    await f.start()
    f.set_price(BTC, Decimal("60000"))
    try:
        yield f
    finally:
        await f.stop()


@contextlib.asynccontextmanager
async def venue_on(fake: FakeBinance, key: str, secret: str) -> AsyncIterator[CcxtVenue]:
    """A started CcxtVenue (ccxt's binance code) on ``fake``, under a name of its own; closed at the end."""
    v = ccxt_venue_for(fake, api_key=key, secret=secret, name=f"binance-{uuid.uuid4().hex[:8]}")
    await v.start()
    try:
        yield v
    finally:
        await v.close()
