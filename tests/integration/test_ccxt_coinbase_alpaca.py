"""CcxtVenue on Coinbase Advanced Trade and on Alpaca crypto: ccxt's real coinbase and alpaca code against local
fakes of their REST APIs (Coinbase: each request's CDP JWT verified; Alpaca: the key headers checked).

Only the origin differs from the real venues. No Kafka or PostgreSQL needed: each test starts its own fake on
127.0.0.1. Where the venues differ (fees, duplicate client order ids, liquidity), the expectation says which.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import pytest
import structlog

from adapters.venues.base import (
    VenueAuthError,
    VenueDuplicateOrder,
    VenueError,
    VenueOrderNotFound,
    VenueOrderStatus,
    VenueRejected,
    VenueUnavailable,
)
from adapters.venues.ccxt import CcxtVenue
from adapters.venues.ccxt import _exchanges as ccxt_exchanges
from events import Liquidity, OrderSubmitted, Side
from tests.fakes import ccxt_venue
from tests.fakes.alpaca import FakeAlpaca
from tests.fakes.coinbase import FakeCoinbase, cdp_key
from tests.integration.test_ccxt_venue import metric
from tests.integration.test_ccxt_venue import order as binance_order
from tests.support import wait_for

BTC, ETH = "BTC/USD", "ETH/USD"
START = {"USD": Decimal("100000"), "BTC": Decimal("1"), "ETH": Decimal("0")}
ALPACA_KEY, ALPACA_SECRET = "PKFAKE5E1D7C9A2B3C4D", "alpaca-SECRET-8f0a3b6c4d5e6f708192a3b4"
# where the two venues differ, as each documents it
BUY_MOVES = {
    "coinbase": {"USD": Decimal("-603.6"), "BTC": Decimal("0.01")},  # 0.6 % taker fee, in USD
    "alpaca": {"USD": Decimal("-600"), "BTC": Decimal("0.009975")},
}  # 0.25 %, out of the BTC received
FEE_RATE = {"coinbase": Decimal("0.006"), "alpaca": Decimal("0.0025")}  # taker
TRADE_FEE = {"coinbase": (Decimal("3.6"), "USD"), "alpaca": (Decimal(0), "USD")}  # alpaca: separate CFEE activities
MAKER = {"coinbase": Liquidity.MAKER, "alpaca": Liquidity.TAKER}  # alpaca's fills do not say
FILLS_PATH = {"coinbase": "/api/v3/brokerage/orders/historical/fills", "alpaca": "/v2/account/activities/FILL"}


@dataclass(frozen=True)
class Case:
    """One venue under test: its fake (started, BTC/USD at 60000) and the credentials it accepts."""

    exchange: str
    fake: FakeCoinbase | FakeAlpaca
    key: str
    secret: str

    def venue(self, **kw: Any) -> CcxtVenue:
        kw.setdefault("name", f"{self.exchange}-{uuid.uuid4().hex[:8]}")
        return ccxt_venue(self.exchange, self.fake, api_key=self.key, secret=self.secret, **kw)

    def wrong_credentials(self) -> list[tuple[str, str]]:
        if self.exchange == "coinbase":  # another key's private key; a key name the venue does not know
            return [(self.key, cdp_key()[1]), ("organizations/fake-org/apiKeys/WRONG-key-1a2b3c", self.secret)]
        return [(self.key, "WRONG-secret-0f9e8d7c6b5a49382716"), ("WRONG-key-1a2b3c4d5e", self.secret)]


def order(qty: str, **kw: Any) -> OrderSubmitted:
    return binance_order(qty, instrument=kw.pop("instrument", BTC), **kw)


@pytest.fixture(params=["coinbase", "alpaca"])
async def case(request: pytest.FixtureRequest) -> AsyncIterator[Case]:
    fake: FakeCoinbase | FakeAlpaca
    if request.param == "coinbase":
        key, secret = cdp_key()
        fake = FakeCoinbase(api_key=key, private_key_pem=secret, balances=START)
    else:
        key, secret = ALPACA_KEY, ALPACA_SECRET
        fake = FakeAlpaca(api_key=key, secret=secret, balances=START)
    await fake.start()
    fake.set_price(BTC, Decimal("60000"))
    fake.set_price(ETH, Decimal("3000"))
    yield Case(request.param, fake, key, secret)
    await fake.stop()


@pytest.fixture
async def venue(case: Case) -> AsyncIterator[CcxtVenue]:
    v = case.venue()
    await v.start()
    yield v
    await v.close()


async def filled(venue: CcxtVenue, o: OrderSubmitted) -> None:
    """Wait until the venue shows ``o`` filled (not found yet counts as not filled yet)."""

    async def done() -> bool:
        try:
            return (await venue.fetch_order(o.instrument, o.client_order_id)).status is VenueOrderStatus.FILLED
        except VenueOrderNotFound:
            return False

    await wait_for(done, 10, f"order {o.client_order_id} to be filled")


async def test_a_market_order_fills_and_its_trade_and_balances_move_in_decimal(case: Case, venue: CcxtVenue) -> None:
    o = order("0.01")
    placed = await venue.submit(o)
    (at_venue,) = case.fake.book.orders
    assert (placed.client_order_id, placed.venue_order_id, placed.quantity) == (
        o.client_order_id,
        at_venue.id,
        Decimal("0.01"),
    )
    await filled(venue, o)

    (t,) = await venue.trades(BTC, None)
    assert [t.raw] == case.fake.all_trades() and t.venue_order_id == placed.venue_order_id  # the venue's own fill
    assert (t.client_order_id, t.side, t.quantity, t.price) == (
        o.client_order_id,
        Side.BUY,
        Decimal("0.01"),
        Decimal("60000"),
    )
    assert (t.fee, t.fee_currency, t.liquidity) == (*TRADE_FEE[case.exchange], Liquidity.TAKER)

    balances = await venue.balances()
    for currency, moved in BUY_MOVES[case.exchange].items():
        assert balances[currency] == START[currency] + moved == case.fake.balances()[currency]
    assert all(isinstance(v, Decimal) for v in (*balances.values(), t.quantity, t.price, t.fee))


async def test_a_market_sell_is_sent_in_base_units_and_credits_the_quote(case: Case, venue: CcxtVenue) -> None:
    o = order("0.5", side=Side.SELL)
    await venue.submit(o)
    await filled(venue, o)
    (t,) = await venue.trades(BTC, None)
    assert (t.side, t.quantity, t.price) == (Side.SELL, Decimal("0.5"), Decimal("60000"))
    assert (await venue.balances())["BTC"] == Decimal("0.5")
    assert (await venue.balances())["USD"] == START["USD"] + Decimal("30000") * (1 - FEE_RATE[case.exchange])


async def test_a_limit_order_rests_is_listed_and_is_cancelled_by_its_client_order_id_alone(
    case: Case, venue: CcxtVenue
) -> None:
    o = order("0.01", price="50000")
    placed = await venue.submit(o)
    assert (placed.status, placed.filled, placed.limit_price) == (VenueOrderStatus.OPEN, Decimal(0), Decimal("50000"))
    listed = await venue.open_orders([BTC])
    assert [(x.client_order_id, x.venue_order_id, x.quantity) for x in listed] == [
        (o.client_order_id, placed.venue_order_id, Decimal("0.01"))
    ]
    assert await venue.open_orders([]) == listed  # no instrument: every market
    assert (await venue.balances())["USD"] == START["USD"]  # held, not spent

    fresh = case.venue()  # knows nothing of the order: finds it by the client order id
    async with fresh:
        cancelled = await fresh.cancel(BTC, o.client_order_id, None)
        assert (cancelled.status, cancelled.venue_order_id) == (VenueOrderStatus.CANCELLED, placed.venue_order_id)
        assert await fresh.open_orders([BTC]) == []
        assert case.fake.balances()["USD"] == START["USD"] and case.fake.book.held["USD"] == 0  # released
        with pytest.raises(VenueOrderNotFound):  # nothing left to cancel
            await fresh.cancel(BTC, o.client_order_id, placed.venue_order_id)


async def test_a_resting_limit_sell_fills_at_its_price_when_the_price_crosses_it(case: Case, venue: CcxtVenue) -> None:
    o = order("0.02", side=Side.SELL, price="61000")
    await venue.submit(o)
    case.fake.set_price(BTC, Decimal("61500"))
    await filled(venue, o)
    (t,) = await venue.trades(BTC, time.time_ns() - 60_000_000_000)
    assert (t.side, t.quantity, t.price, t.liquidity) == (
        Side.SELL,
        Decimal("0.02"),
        Decimal("61000"),
        MAKER[case.exchange],
    )


async def test_an_order_submitted_twice_with_one_client_order_id_is_placed_once(case: Case, venue: CcxtVenue) -> None:
    o = order("0.01")
    first = await venue.submit(o)
    if case.exchange == "coinbase":  # documented: the order already placed under that id is returned
        assert (await venue.submit(o)).venue_order_id == first.venue_order_id
    else:
        with pytest.raises(VenueDuplicateOrder, match="client_order_id must be unique"):
            await venue.submit(o)
    assert len(case.fake.orders_by_client_id(o.client_order_id)) == 1


async def test_a_submit_whose_answer_was_lost_is_found_by_its_client_order_id(case: Case) -> None:
    async with case.venue(timeout_ms=500) as v:
        case.fake.delay_responses_after_accept(1, 2.0)
        o = order("0.01")
        with pytest.raises(VenueUnavailable) as exc:
            await v.submit(o)
        assert exc.value.maybe_sent is True  # the outcome is unknown
        (at_venue,) = case.fake.book.orders
        found = await v.fetch_order(BTC, o.client_order_id)  # what the caller does next: look it up
        assert (found.status, found.venue_order_id) == (VenueOrderStatus.FILLED, at_venue.id)
        with pytest.raises(VenueDuplicateOrder) if case.exchange == "alpaca" else contextlib.nullcontext():
            await v.submit(o)  # sent again: coinbase answers with the same order, alpaca refuses the id
        assert len(case.fake.orders_by_client_id(o.client_order_id)) == 1


async def test_a_429_burst_is_retried_and_places_one_order(case: Case, venue: CcxtVenue) -> None:
    case.fake.rate_limit(2)
    assert (await venue.balances())["USD"] == START["USD"]  # a read: retried
    assert metric("engine_exchange_errors_total", venue=venue.name, kind="unavailable") == 2

    case.fake.rate_limit(1)  # a submit is not retried here; refused before processing, it certainly was not placed
    o = order("0.01")
    with pytest.raises(VenueUnavailable) as exc:
        await venue.submit(o)
    assert exc.value.retriable and exc.value.maybe_sent is False
    assert case.fake.orders_by_client_id(o.client_order_id) == []
    await venue.submit(o)  # what the execution service does: send it again, with the same id
    assert len(case.fake.book.orders) == 1


async def test_a_fill_listed_twice_is_one_trade(case: Case, venue: CcxtVenue) -> None:
    orders = [order("0.01") for _ in range(3)]
    for o in orders:
        await venue.submit(o)
    case.fake.duplicate_trades(True)
    trades = await venue.trades(BTC, None)
    assert sorted(t.client_order_id or "" for t in trades) == sorted(o.client_order_id for o in orders)
    assert len({t.trade_id for t in trades}) == 3 and [t.ts for t in trades] == sorted(t.ts for t in trades)


async def test_trades_are_read_page_by_page_each_once_and_only_the_instruments(
    case: Case, venue: CcxtVenue, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, paging = ccxt_exchanges.TRADE_PAGING[case.exchange]
    monkeypatch.setitem(ccxt_exchanges.TRADE_PAGING, case.exchange, (2, paging))
    await venue.submit(order("0.1", instrument=ETH))
    orders = [order("0.01") for _ in range(5)]
    for o in orders:
        await venue.submit(o)
    case.fake.duplicate_trades(True)
    before = len(case.fake.requests)
    trades = await venue.trades(BTC, None)
    assert [t.client_order_id for t in trades] == [o.client_order_id for o in orders]  # oldest first, each once
    assert sum(path == FILLS_PATH[case.exchange] for _, path in case.fake.requests[before:]) >= 3


async def test_a_new_order_invisible_to_lookups_is_not_found_then_found(case: Case, venue: CcxtVenue) -> None:
    case.fake.hide_new_orders(1.0)
    o = order("0.01")
    await venue.submit(o)
    with pytest.raises(VenueOrderNotFound):
        await venue.fetch_order(BTC, o.client_order_id)
    await filled(venue, o)


async def test_an_order_never_placed_is_not_found(venue: CcxtVenue) -> None:
    with pytest.raises(VenueOrderNotFound):
        await venue.fetch_order(BTC, "never-sent-1")
    with pytest.raises(VenueOrderNotFound):
        await venue.cancel(BTC, "never-sent-2", None)


async def test_insufficient_funds_are_rejected_with_rule_insufficient_funds(case: Case, venue: CcxtVenue) -> None:
    with pytest.raises(VenueRejected) as exc:
        await venue.submit(order("10"))  # 600k USD, the account holds 100k
    assert exc.value.rule == "insufficient_funds" and not exc.value.retriable
    assert case.fake.book.orders == []


async def refusals(v: CcxtVenue) -> list[VenueError]:
    """What ``v`` raises on start (which checks the credentials) and on a submit; ``v`` is closed after."""
    errors: list[VenueError] = []
    for call in (v.start, lambda: v.submit(order("0.01"))):
        try:
            await call()
        except VenueError as exc:
            errors.append(exc)
    await v.close()
    return errors


async def test_bad_credentials_fail_with_venue_auth_error_and_the_secret_is_in_no_message(
    case: Case, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    messages: list[str] = []
    with structlog.testing.capture_logs() as logs:
        for key, secret in case.wrong_credentials():
            v = ccxt_venue(case.exchange, case.fake, api_key=key, secret=secret, name=f"bad-{uuid.uuid4().hex[:8]}")
            errors = await refusals(v)
            assert [type(e) for e in errors] == [VenueAuthError, VenueAuthError]
            assert metric("engine_exchange_errors_total", venue=v.name, kind="auth") == 2
            assert all(not e.retriable and e.__context__ is None and e.__cause__ is None for e in errors)
            messages += [f"{e} {e!r} {e.raw}" for e in errors]
    out, err = capsys.readouterr()
    everything = "\n".join([*messages, caplog.text, out, err, repr(logs)])
    assert "call_failed" in everything  # the failures were logged...
    for key, secret in [(case.key, case.secret), *case.wrong_credentials()]:
        for part in (key, *(line for line in secret.splitlines() if len(line) > 16)):  # a PEM: each of its lines
            assert part not in everything  # ...without a credential
    assert case.fake.book.orders == []


async def test_coinbase_checks_the_signature_time_and_uri_of_every_private_request() -> None:
    key, pem = cdp_key()
    fake = FakeCoinbase(api_key=key, private_key_pem=pem)
    base = await fake.start()
    signer = ccxt.coinbase({"apiKey": key, "secret": pem})
    accounts, orders = f"{base}/api/v3/brokerage/accounts", f"{base}/api/v3/brokerage/orders/historical/batch"
    now = int(time.time())
    try:
        async with aiohttp.ClientSession() as http:

            async def status(url: str, token: str) -> int:
                async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
                    return r.status

            good = signer.create_auth_token(now, "GET", accounts)
            assert await status(accounts, good) == 200
            assert await status(orders, good) == 401  # signed for another path
            assert await status(accounts, signer.create_auth_token(now - 600, "GET", accounts)) == 401  # expired
            assert await status(accounts, signer.create_auth_token(now, "POST", accounts)) == 401  # another method
            head, claims, sig = good.split(".")
            assert await status(accounts, f"{head}.{claims}.{sig[:-4]}AAAA") == 401  # a signature not the key's
            other = ccxt.coinbase({"apiKey": key, "secret": cdp_key()[1]})
            assert await status(accounts, other.create_auth_token(now, "GET", accounts)) == 401
    finally:
        await signer.close()
        await fake.stop()
