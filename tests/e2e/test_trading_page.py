"""The /trading page, driven in headless Chromium while an engine runs three strategies on two instruments: every
position of the audit is on it, its numbers move as events flow, a halt shows within seconds; then, with the engine
stopped, a projection worker serves the same page with the audit's exact numbers."""

from __future__ import annotations

import re
import signal
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.test_dashboard import render, screenshot
from tests.e2e.test_pipeline import rows
from tests.e2e.test_several_strategies import TWO_INSTRUMENTS
from tests.support import REPO, engine_env, run_cli, start_cli, unique, wait_for

pytestmark = pytest.mark.servers

PAIRS = [("quotes", "BTC/USDT"), ("revert", "ETH/USDT"), ("trend", "BTC/USDT"), ("trend", "ETH/USDT")]


def _position_cells(dom: str) -> dict[tuple[str, str], list[str]]:
    """(strategy, instrument) -> the exact values of its row (position, avg price, last price, realized, unrealized,
    fees, fills), as the page holds them in data-value."""
    out = {}
    dom = re.sub(r"<script>.*?</script>", "", dom, flags=re.S)  # the page's own templates are not rows
    for m in re.finditer(r'<tr data-strategy="([^"]*)" data-instrument="([^"]*)">(.*?)</tr>', dom, re.S):
        out[(m.group(1), m.group(2))] = re.findall(r'data-value="([^"]*)"', m.group(3))
    return out


def _tail(log: Path) -> str:
    return log.read_text()


async def _base(proc: Any, log: Path) -> str:
    found: list[str] = []

    async def listening() -> bool:
        text = _tail(log)
        assert proc.poll() is None, text[-3000:]
        m = re.search(r'"trading": "(http://127\.0\.0\.1:\d+)/trading"', text)
        if m:
            found.append(m.group(1))
        return bool(m)

    await wait_for(listening, 60, "the trading page to be served")
    return found[0]


async def test_the_trading_page_shows_every_position_live_and_the_breaker(servers: Any, tmp_path: Path) -> None:
    config = tmp_path / "engine.toml"
    config.write_text(TWO_INSTRUMENTS)
    prefix, schema = unique("page"), unique("page")
    env = engine_env(servers, prefix, schema, {"ENGINE_CONFIG": str(config)})
    log = tmp_path / "engine.log"
    proc = start_cli(["run", "--duration", "40"], env, log)
    try:
        base = await _base(proc, log)
        async with aiohttp.ClientSession() as http:

            async def every_position() -> bool:
                async with http.get(f"{base}/api/trading") as r:
                    body = await r.json()
                return r.status == 200 and {(p["strategy"], p["instrument"]) for p in body["positions"]} == set(PAIRS)

            await wait_for(every_position, 60, "every strategy to hold a position")
        first = render(f"{base}/trading", tmp_path / "p1", budget_ms=2000)
        cells = _position_cells(first)
        assert sorted(cells) == PAIRS, "every position of the audit is on the page"
        assert "data-fill" in first and 'class="uplot' in first
        assert re.search(r'id="chart-pnl"[^>]*data-points="([1-9]\d*)"', first), "the PnL curve is drawn"
        assert 'data-state="trading"' in first
        fills_then = sum(int(c[-1]) for c in cells.values())

        async def moved() -> bool:
            now = _position_cells(render(f"{base}/trading", tmp_path / "p2", budget_ms=2000))
            return sum(int(c[-1]) for c in now.values()) > fills_then

        await wait_for(moved, 60, "the page's fills to grow as events flow", poll=0.5)

        # a notification Alertmanager delivers to the engine's webhook is on the page too
        async with aiohttp.ClientSession() as http:
            body = (REPO / "tests" / "data" / "alertmanager-0.25-webhook-firing.json").read_bytes()
            async with http.post(f"{base}/alerts/webhook", data=body) as r:
                assert r.status == 200, await r.text()

        async def alert_shown() -> bool:
            dom = render(f"{base}/trading", tmp_path / "p6", budget_ms=2000)
            return bool(re.search(r"<td[^>]*>firing</td>\s*<td[^>]*>KafkaConnectionLost</td>\s*<td[^>]*>cap</td>", dom))

        await wait_for(alert_shown, 60, "the page to show Alertmanager's notification", poll=0.5)

        res = run_cli(["halt", "--reason", "test: the page shows it"], env)
        assert res.returncode == 0, res.stderr[-2000:]

        async def halted() -> bool:
            dom = render(f"{base}/trading", tmp_path / "p3", budget_ms=2000)
            return 'data-state="halted"' in dom and "test: the page shows it" in dom

        await wait_for(halted, 60, "the page to show the halt", poll=0.5)
        shot = screenshot(f"{base}/trading", tmp_path / "p4", "trading.png")
        assert shot.stat().st_size > 20_000, "the screenshot is all but blank"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0, log.read_text()[-3000:]

    # the engine is gone: a projection worker serves the page, with exactly the audit's numbers
    wlog = tmp_path / "worker.log"
    worker = start_cli(["project", "--only", "audit", "--port", "0"], env, wlog)
    try:
        base = await _base(worker, wlog)
        expected = {
            (r[0], r[1]): [str(v) for v in r[2:]]
            for r in await rows(
                servers.pg_dsn,
                f"select strategy, instrument, quantity, avg_price, realized_pnl, fees, fills from {schema}.positions",
            )
        }
        dom = render(f"{base}/trading", tmp_path / "p5", budget_ms=2000)
        cells = _position_cells(dom)
        for pair, (qty, avg, realized, fees, fills) in expected.items():
            shown = cells[pair]  # position, avg price, last price, realized, unrealized, fees, fills
            assert [shown[0], shown[1], shown[3], shown[5], shown[6]] == [qty, avg, realized, fees, fills], pair
        # the equity curve ends where the positions stand: realized - fees + unrealized, per strategy and currency
        async with aiohttp.ClientSession() as http, http.get(f"{base}/api/trading") as r:
            view = await r.json()
        last_at = max(int(p["at"]) for p in view["curve"])
        ends = {(p["strategy"], p["currency"]): Decimal(p["equity"]) for p in view["curve"] if int(p["at"]) == last_at}
        now: dict[tuple[str, str], Decimal] = {}
        for p in view["positions"]:
            key = (p["strategy"], p["instrument"].split("/")[1])
            value = Decimal(p["realized_pnl"]) - Decimal(p["fees"]) + Decimal(p["unrealized_pnl"])
            now[key] = now.get(key, Decimal(0)) + value
        assert ends == now
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(120) == 0, wlog.read_text()[-3000:]
