"""`python -m engine run` on the default synthetic feed: /metrics and /healthz answer, SIGTERM stops it cleanly."""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support import engine_env, start_cli, unique, wait_for

pytestmark = pytest.mark.servers


def metric(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    total = None
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if want and want not in line:
                continue
            total = (total or 0.0) + float(line.rsplit(" ", 1)[1])
    return total


async def test_metrics_health_and_a_clean_stop_on_sigterm(servers: Any, tmp_path: Path) -> None:
    prefix, schema = unique("live"), unique("live")
    log = tmp_path / "engine.log"
    proc = start_cli(["run", "--rate", "400"], engine_env(servers, prefix, schema), log)
    try:
        url: list[str] = []

        async def listening() -> bool:
            m = re.search(r'"url": "(http://127\.0\.0\.1:\d+)/metrics"', log.read_text())
            if m:
                url.append(m.group(1))
            assert proc.poll() is None, log.read_text()[-3000:]
            return bool(m)

        await wait_for(listening, 60, "the HTTP server to listen")
        base = url[0]
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 200 and (await r.json())["status"] == "alive"
            seen: dict[str, str] = {}

            async def trading() -> bool:
                async with http.get(f"{base}/metrics") as r:
                    seen["text"] = await r.text()
                t = seen["text"]
                return bool(
                    (metric(t, "engine_fills_total") or 0) > 0
                    and metric(t, "engine_projection_lag_events", projection="audit") is not None
                    and metric(t, "engine_projection_lag_seconds", projection="metrics") is not None
                )

            await wait_for(trading, 120, "fills and the lag of both projections to show in /metrics")
            text = seen["text"]
            assert metric(text, "engine_events_consumed_total", type="TickReceived")
            assert metric(text, "engine_orders", status="filled")
            assert metric(text, "engine_last_price", instrument="BTC/USDT")
            assert metric(text, "engine_account_balance", currency="USDT")
            assert metric(text, "engine_kafka_messages_produced_total", topic=f"{prefix}.market.ticks")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(120)
    out = log.read_text()
    assert code == 0, out[-3000:]
    assert "stopped (SIGTERM)" in out
    m = re.search(r"(\d+) ticks published, (\d+) processed", out)
    assert m, out[-3000:]
    assert m.group(1) == m.group(2), f"every published tick was processed before exit: {m.group(0)}\n{out[-4000:]}"
