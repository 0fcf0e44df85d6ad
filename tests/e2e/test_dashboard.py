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

from tests.support import REPO, engine_env, start_cli, unique, wait_for

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


ARTIFACTS = REPO / "tests" / "artifacts"  # screenshots a reviewer can look at (not committed)


def _chromium() -> str:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is required for the dashboard test (apt-get install chromium)"
    return chromium


def render(url: str, profile: Path, budget_ms: int = 4000) -> str:
    """The page's DOM after its scripts ran for ``budget_ms`` of virtual time."""
    out = subprocess.run(
        [
            _chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def screenshot(url: str, profile: Path, name: str) -> Path:
    """A PNG of the page as a person sees it, under tests/artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.unlink(missing_ok=True)
    out = subprocess.run(
        [
            _chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--virtual-time-budget=3000",
            "--window-size=1400,1100",
            "--hide-scrollbars",
            f"--screenshot={path}",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert out.returncode == 0 and path.is_file(), out.stderr[-2000:]
    print(f"screenshot: {path}")
    return path


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

            # the server keeps the history: wait until it holds 12 samples (one a second)
            async def history() -> bool:
                async with http.get(f"{base[0]}/api/history") as r:
                    return len((await r.json())["t"]) >= 12

            await wait_for(history, 60, "the server's history to hold 12 samples")
            async with http.get(f"{base[0]}/static/uPlot.iife.min.js") as r:
                assert r.status == 200 and r.content_type == "text/javascript"
            for bad in ("../dashboard.html", ".hidden.js", "nope.js", "README.md"):
                async with http.get(f"{base[0]}/static/{bad}") as r:
                    assert r.status == 404, bad

        # a page opened now draws the history at once: 12 samples or more after 1.5 s of its own time, which alone
        # could have polled twice
        first = render(f"{base[0]}/dashboard", tmp_path / "profile1", budget_ms=1500)
        assert "Kafka up" in first and "PostgreSQL up" in first
        for projection in ("audit", "metrics"):
            assert f'data-projection="{projection}"' in first
        assert "market.ticks[0]" in first and "trading.events[0]" in first
        for chart in ("events", "seconds", "rate"):
            m = re.search(rf'id="chart-{chart}"[^>]*data-points="(\d+)"', first)
            assert m and int(m.group(1)) >= 12, f"chart {chart} was not drawn from the server's history"
        assert first.count('class="uplot') == 3, "each chart is drawn by the vendored uPlot"
        for label in ("audit", "metrics", "log (produced)", "events/s"):
            assert label in first, label
        shot = screenshot(f"{base[0]}/dashboard", tmp_path / "profile3", "dashboard.png")
        assert shot.stat().st_size > 20_000, "the screenshot is all but blank"
        before = {p: applied(first, p) for p in ("audit", "metrics")}

        async def moved() -> bool:
            dom = render(f"{base[0]}/dashboard", tmp_path / "profile2")
            return all(applied(dom, p) > before[p] for p in before)

        await wait_for(moved, 60, "the dashboard's numbers to grow as events flow", poll=0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0, log.read_text()[-3000:]
