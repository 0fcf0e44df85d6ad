"""`stack up --with-prometheus`: Debian's Prometheus scrapes the engine, loads the alert rules and talks to a
local Alertmanager."""

from __future__ import annotations

import json
import signal
import socket
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from engine.config import load
from ops import _monitoring
from tests.support import engine_env, start_cli, unique, wait_for

pytestmark = pytest.mark.servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


async def test_prometheus_scrapes_the_engine_with_the_rules_and_alertmanager(servers: Any, tmp_path: Path) -> None:
    http_port, prom_port, am_port = free_port(), free_port(), free_port()
    env = engine_env(servers, unique("prom"), unique("prom"), {"ENGINE_HTTP__PORT": str(http_port)})
    engine = start_cli(["run", "--rate", "200"], env, tmp_path / "engine.log")
    settings = load(
        stack={"state_dir": str(tmp_path / "state"), "prometheus_port": prom_port, "alertmanager_port": am_port}
    )
    try:
        _monitoring.start(settings.stack.state_dir, f"127.0.0.1:{http_port}", prom_port, am_port, 60)
        base = f"http://127.0.0.1:{prom_port}/api/v1"
        rules = get(f"{base}/rules")["data"]["groups"]
        assert sum(len(g["rules"]) for g in rules) >= 11

        async def scraped() -> bool:
            assert engine.poll() is None, (tmp_path / "engine.log").read_text()[-3000:]
            res = get(f"{base}/query?query=engine_projection_lag_events")["data"]["result"]
            return len(res) > 0

        await wait_for(scraped, 90, "Prometheus to scrape the engine's lag gauges", poll=1.0)
        up = get(f"{base}/query?query=up")["data"]["result"]
        assert up and up[0]["metric"]["job"] == "engine" and up[0]["value"][1] == "1"

        async def alertmanager_known() -> bool:
            return bool(get(f"{base}/alertmanagers")["data"]["activeAlertmanagers"])

        await wait_for(alertmanager_known, 60, "Prometheus to find the local Alertmanager", poll=1.0)
    finally:
        _monitoring.stop(settings.stack.state_dir)
        engine.send_signal(signal.SIGTERM)
        assert engine.wait(120) == 0
    assert _monitoring.running(settings.stack.state_dir, "prometheus") is None
