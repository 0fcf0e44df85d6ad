"""The built-in dashboard, driven in headless Chromium while the engine trades."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support import engine_env, start_cli, unique, wait_for

pytestmark = pytest.mark.servers

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def render(url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran for a few (virtual) seconds."""
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is required for the dashboard test (apt-get install chromium)"
    out = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=4000", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def applied(dom: str, projection: str) -> int:
    m = re.search(rf"{projection}: events behind · [\d.,]+ s · ([\d,]+) applied", dom)
    assert m, f"the dashboard shows no counter for projection {projection}"
    return int(m.group(1).replace(",", ""))


async def test_the_dashboard_shows_every_projection_and_its_numbers_move(servers: Any, tmp_path: Path) -> None:
    log = tmp_path / "engine.log"
    proc = start_cli(["run", "--rate", "300"], engine_env(servers, unique("dash"), unique("dash")), log)
    try:
        base: list[str] = []

        async def listening() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            m = re.search(r'"dashboard": "(http://127\.0\.0\.1:\d+)/dashboard"', log.read_text())
            if m:
                base.append(m.group(1))
            return bool(m)

        await wait_for(listening, 60, "the dashboard to be served")
        async with aiohttp.ClientSession() as http:

            async def trading() -> bool:
                async with http.get(f"{base[0]}/api/status") as r:
                    body = await r.json()
                return all(p["applied"] > 0 for p in body["projections"].values()) and len(body["projections"]) == 2

            await wait_for(trading, 60, "both projections to apply events")

        first = render(f"{base[0]}/dashboard", tmp_path / "profile1")
        assert "Kafka up" in first and "PostgreSQL up" in first
        for projection in ("audit", "metrics"):
            assert f'data-projection="{projection}"' in first
        assert "market.ticks[0]" in first and "trading.events[0]" in first
        assert "<polyline" in first, "the lag chart draws its series"
        before = {p: applied(first, p) for p in ("audit", "metrics")}

        async def moved() -> bool:
            dom = render(f"{base[0]}/dashboard", tmp_path / "profile2")
            return all(applied(dom, p) > before[p] for p in before)

        await wait_for(moved, 60, "the dashboard's numbers to grow as events flow", poll=0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0, log.read_text()[-3000:]
