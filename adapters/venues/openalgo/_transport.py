"""OpenAlgo's REST API: ``POST /api/v1/<endpoint>`` with the API key in the body; counted, timed, retried, mapped.

The API key goes only into request bodies; every message raised or logged is redacted, and so are the answers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import aiohttp
import structlog

from adapters.venues._metrics import count_error, request
from adapters.venues._retry import Backoff, retry_unavailable
from adapters.venues.base import Credentials, VenueError, VenueUnavailable, redact
from adapters.venues.openalgo._errors import answer_error, request_error

log = structlog.get_logger(__name__)

READS = frozenset({"funds", "orderstatus", "orderbook", "tradebook", "positionbook"})
RETRY_CAP_S = 5.0


class Transport:
    """One OpenAlgo server's API for the venue ``name`` (on every metric and every message)."""

    def __init__(
        self,
        base_url: str,
        *,
        name: str,
        credentials: Credentials,
        timeout_s: float,
        read_retries: int,
        backoff_s: float,
    ) -> None:
        root = base_url.rstrip("/")
        if root.endswith("/api/v1"):
            root = root[: -len("/api/v1")]
        self.root = root
        self.name = name
        self._key = credentials.api_key
        self.secrets = credentials.values
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._read_retries = max(0, read_retries)
        self._backoff_s = backoff_s
        self._session: aiohttp.ClientSession | None = None

    def open(self) -> None:
        """Open the HTTP session (again, after a close)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def close(self) -> None:
        """Close the HTTP session; safe twice."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    async def call(self, endpoint: str, body: Mapping[str, Any], *, retries: int | None = None) -> dict[str, Any]:
        """POST one endpoint; ``retries``: None = the read policy, 0 = never, -1 = only on a certain refusal (429)."""
        budget = (self._read_retries if endpoint in READS else 0) if retries is None else retries
        unsent_only = budget == -1
        backoff = Backoff(self._read_retries if unsent_only else max(budget, 0), self._backoff_s, RETRY_CAP_S)

        def retrying(attempt: int, delay: float, exc: VenueUnavailable) -> None:
            log.warning(
                "openalgo.retry",
                venue=self.name,
                endpoint=endpoint,
                attempt=attempt,
                delay=round(delay, 3),
                error=str(exc),
            )

        return await retry_unavailable(
            lambda: self._post(endpoint, body), backoff, unsent_only=unsent_only, on_retry=retrying
        )

    async def _post(self, endpoint: str, body: Mapping[str, Any]) -> dict[str, Any]:
        session = self._session
        if session is None or session.closed:
            raise VenueUnavailable(f"{self.name}: not started (call start() first)", maybe_sent=False)
        payload = json.dumps({"apikey": self._key, **body})
        answer: dict[str, Any] | None = None
        with request(self.name, endpoint):
            try:
                async with session.post(
                    f"{self.root}/api/v1/{endpoint}", data=payload, headers={"Content-Type": "application/json"}
                ) as resp:
                    status = resp.status
                    text = await resp.text()
            except (TimeoutError, aiohttp.ClientError) as exc:
                err: VenueError | None = request_error(exc, venue=self.name, endpoint=endpoint, secrets=self.secrets)
            else:
                err = None
        if err is None:
            answer = self._decode(text)
            err = answer_error(status, answer, venue=self.name, endpoint=endpoint, secrets=self.secrets)
        if err is not None:
            count_error(self.name, err)
            raise err  # outside the except block: no __context__ pointing at aiohttp's exception
        assert answer is not None  # a success is a JSON object
        return answer

    def _decode(self, text: str) -> dict[str, Any] | None:
        """The venue's JSON answer (numbers as Decimal), with any secret it might echo scrubbed; None if not JSON."""
        try:
            value = json.loads(self.redact(text), parse_float=Decimal)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None
