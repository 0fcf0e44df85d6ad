"""An engine run against the fake Binance (tests/fakes/binance.py), as test_live_venue.py and test_native_stops.py
start and stop it."""

from __future__ import annotations

import signal
import subprocess

from tests.support import wait_for


def ccxt_binance_settings(
    symbol: str, *, rest_url: str, ws_url: str, venue_url: str, key: str, secret: str
) -> dict[str, str]:
    """The engine's settings for ccxt's binance as both the feed (the fake market) and the venue (the fake
    exchange), with ``key`` and ``secret``, and a 0.2 s poll of the venue."""
    return {
        "ENGINE_FEED__KIND": "ccxt",
        "ENGINE_FEED__EXCHANGE": "binance",
        "ENGINE_FEED__INSTRUMENTS": f'["{symbol}"]',
        "ENGINE_FEED__REST_URL": rest_url,
        "ENGINE_FEED__WS_URL": ws_url,
        "ENGINE_VENUE__KIND": "ccxt",
        "ENGINE_VENUE__EXCHANGE": "binance",
        "ENGINE_VENUE__BASE_URL": venue_url,
        "ENGINE_VENUE__API_KEY": key,
        "ENGINE_VENUE__SECRET": secret,
        "ENGINE_EXECUTION__POLL_INTERVAL": "0.2",
    }


async def sigterm_and_wait(engine: subprocess.Popen[bytes], seconds: float) -> int:
    """SIGTERM to ``engine``, then its exit code once it stopped (fails after ``seconds``); waits without blocking
    the event loop, on which the fakes live."""
    engine.send_signal(signal.SIGTERM)

    async def exited() -> bool:
        return engine.poll() is not None

    await wait_for(exited, seconds, "the engine to stop after SIGTERM")
    return engine.returncode
