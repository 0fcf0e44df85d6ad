"""One vocabulary for ``engine_exchange_errors_total{kind}``: the same failure gets the same kind from both live
adapters, each through its own call path (ccxt's exception raised inside a ccxt call; OpenAlgo's HTTP answer or
aiohttp's error inside a request), with no server."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace, TracebackType
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import pytest
from prometheus_client import REGISTRY

from adapters.venues.base import (
    ERROR_KINDS,
    Credentials,
    VenueAuthError,
    VenueDuplicateOrder,
    VenueError,
    VenueOrderNotFound,
    VenueRejected,
    VenueUnavailable,
    error_kind,
)
from adapters.venues.ccxt._transport import Transport as CcxtTransport
from adapters.venues.openalgo._transport import Transport as OpenAlgoTransport

KINDS = [kind for _, kind in ERROR_KINDS]


def counted(venue: str) -> dict[str, float]:
    """``engine_exchange_errors_total`` of ``venue``, by kind (0s left out)."""
    out: dict[str, float] = {}
    for kind in [*KINDS, "error"]:
        value = REGISTRY.get_sample_value("engine_exchange_errors_total", {"venue": venue, "kind": kind})
        if value:
            out[kind] = value
    return out


class _Answer:
    """What ``aiohttp.ClientSession.post`` gives, for a stub session: one HTTP answer."""

    def __init__(self, status: int, text: str) -> None:
        self.status, self._text = status, text

    async def text(self) -> str:
        return self._text

    async def __aenter__(self) -> _Answer:
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        return None


class _Session:
    """A stand-in for the OpenAlgo transport's session: every POST answers ``answer`` or raises ``error``."""

    closed = False

    def __init__(self, answer: tuple[int, str] | None = None, error: BaseException | None = None) -> None:
        self._answer, self._error = answer, error

    def post(self, *args: Any, **kwargs: Any) -> _Answer:
        if self._error is not None:
            raise self._error
        assert self._answer is not None
        return _Answer(*self._answer)


def _refused() -> aiohttp.ClientConnectorError:
    key: Any = SimpleNamespace(host="127.0.0.1", port=9, ssl=True)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))


@dataclass(frozen=True)
class Failure:
    name: str
    ccxt: Callable[[], BaseException]  # what ccxt raises for it
    openalgo: _Session  # what OpenAlgo's server (or aiohttp) does for it
    kind: str
    error: type[VenueError]


FAILURES = [
    Failure(
        "timeout",
        lambda: ccxt.RequestTimeout("binance GET timed out"),
        _Session(error=TimeoutError()),
        "unavailable",
        VenueUnavailable,
    ),
    Failure(
        "connection refused",
        lambda: ccxt.ExchangeNotAvailable("binance GET Cannot connect"),
        _Session(error=_refused()),
        "unavailable",
        VenueUnavailable,
    ),
    Failure(
        "connection dropped",
        lambda: ccxt.NetworkError("binance GET Server disconnected"),
        _Session(error=aiohttp.ServerDisconnectedError()),
        "unavailable",
        VenueUnavailable,
    ),
    Failure(
        "HTTP 429",
        lambda: ccxt.RateLimitExceeded('binance {"code":-1003,"msg":"Too many requests"}'),
        _Session((429, '{"status": "error", "message": "Rate limit exceeded"}')),
        "unavailable",
        VenueUnavailable,
    ),
    Failure(
        "HTTP 503",
        lambda: ccxt.ExchangeNotAvailable("binance 503 Service Unavailable"),
        _Session((503, "<html>Service Unavailable</html>")),
        "unavailable",
        VenueUnavailable,
    ),
    Failure(
        "credentials refused",
        lambda: ccxt.AuthenticationError('binance {"code":-2015,"msg":"Invalid API-key"}'),
        _Session((403, '{"status": "error", "message": "Invalid openalgo apikey"}')),
        "auth",
        VenueAuthError,
    ),
    Failure(
        "unknown order",
        lambda: ccxt.OrderNotFound('binance {"code":-2013,"msg":"Order does not exist."}'),
        _Session((404, '{"status": "error", "message": "Order not found"}')),
        "not_found",
        VenueOrderNotFound,
    ),
    Failure(
        "insufficient funds",
        lambda: ccxt.InsufficientFunds('binance {"code":-2010,"msg":"Account has insufficient balance"}'),
        _Session((400, '{"status": "error", "message": "Insufficient funds"}')),
        "rejected",
        VenueRejected,
    ),
    Failure(
        "invalid price",
        lambda: ccxt.InvalidOrder('binance {"code":-1013,"msg":"Filter failure: PRICE_FILTER"}'),
        _Session((400, '{"status": "error", "message": "Invalid price"}')),
        "rejected",
        VenueRejected,
    ),
]


async def _ccxt_kind(failure: Failure) -> tuple[VenueError, dict[str, float]]:
    name = f"kinds-ccxt-{uuid.uuid4().hex[:8]}"
    transport = CcxtTransport(
        "binance", name=name, credentials=None, sandbox=False, base_url=None, timeout_ms=1000, read_retries=0
    )

    async def fails() -> None:
        raise failure.ccxt()

    try:
        with pytest.raises(VenueError) as exc:
            await transport.call("fetch_order", fails)
    finally:
        await transport.close()
    return exc.value, counted(name)


async def _openalgo_kind(failure: Failure) -> tuple[VenueError, dict[str, float]]:
    name = f"kinds-openalgo-{uuid.uuid4().hex[:8]}"
    transport = OpenAlgoTransport(
        "http://127.0.0.1:9", name=name, credentials=Credentials("k" * 32, ""), timeout_s=1, read_retries=0, backoff_s=0
    )
    transport._session = failure.openalgo  # type: ignore[assignment]
    with pytest.raises(VenueError) as exc:
        await transport.call("orderstatus", {}, retries=0)
    return exc.value, counted(name)


@pytest.mark.parametrize("failure", FAILURES, ids=[f.name for f in FAILURES])
async def test_the_same_failure_is_counted_under_the_same_kind_by_both_adapters(failure: Failure) -> None:
    from_ccxt, ccxt_counted = await _ccxt_kind(failure)
    from_openalgo, openalgo_counted = await _openalgo_kind(failure)
    assert type(from_ccxt) is failure.error and type(from_openalgo) is failure.error
    assert ccxt_counted == openalgo_counted == {failure.kind: 1}
    assert error_kind(from_ccxt) == error_kind(from_openalgo) == failure.kind


async def test_a_duplicate_client_order_id_has_a_kind_of_its_own() -> None:
    """OpenAlgo has no client order ids, so only ccxt can say it; it is not counted as a refusal."""
    failure = Failure(
        "duplicate",
        lambda: ccxt.InvalidOrder('binance {"code":-2010,"msg":"Duplicate order sent."}'),
        _Session(),
        "duplicate",
        VenueDuplicateOrder,
    )
    err, by_kind = await _ccxt_kind(failure)
    assert isinstance(err, VenueDuplicateOrder) and by_kind == {"duplicate": 1}


def test_every_branch_of_the_error_tree_has_one_kind() -> None:
    examples: list[tuple[VenueError, str]] = [
        (VenueUnavailable("x", maybe_sent=True), "unavailable"),
        (VenueUnavailable("x", maybe_sent=False), "unavailable"),
        (VenueRejected("insufficient_funds", "x"), "rejected"),
        (VenueDuplicateOrder("x"), "duplicate"),
        (VenueOrderNotFound("x"), "not_found"),
        (VenueAuthError("x"), "auth"),
        (VenueError("x"), "error"),
    ]
    assert [error_kind(e) for e, _ in examples] == [k for _, k in examples]
    assert len(set(KINDS)) == len(KINDS) == len(ERROR_KINDS)


def test_the_kinds_are_documented_with_the_metric() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()
    section = doc[doc.index("engine_exchange_errors_total") :]
    assert all(f"`{kind}`" in section for kind in [*KINDS, "error"])
