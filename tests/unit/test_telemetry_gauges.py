"""``engine_build_info{version, python, ccxt} 1`` on the /metrics of every process that serves it, and the
settings exported as gauges (``engine_daily_loss_limit_ratio``)."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from adapters.http import HttpServer
from engine import __version__
from tests.support import REPO


def build_info(text: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "engine_build_info"
    ]


EXPECTED = {"version": __version__, "python": platform.python_version(), "ccxt": metadata.version("ccxt")}


async def test_the_metrics_endpoint_says_which_versions_run() -> None:
    import adapters.telemetry  # noqa: F401  (what engine.status, hence every /metrics server, imports)

    async with HttpServer("127.0.0.1", 0) as server, aiohttp.ClientSession() as http:
        resp = await http.get(f"http://127.0.0.1:{server.port}/metrics")
        assert resp.status == 200
        text = await resp.text()
    assert build_info(text) == [(EXPECTED, 1.0)]


def test_the_composition_root_exports_it_without_anything_else_imported() -> None:
    """``run`` and ``project`` serve /metrics from engine.app: importing it alone registers the gauge."""
    code = "import engine.app, prometheus_client; print(prometheus_client.generate_latest().decode())"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    assert build_info(out.stdout) == [(EXPECTED, 1.0)]


def test_the_daily_loss_limit_is_absent_until_the_engine_sets_it() -> None:
    """Absent (no sample at all, not 0: ``-0`` would make DailyLossLimit fire on any loss) in a process whose loop
    checks no limit, such as a ``project`` worker; the limit itself once ``run`` sets it."""
    from decimal import Decimal

    from prometheus_client import REGISTRY

    from adapters.telemetry import DAILY_LOSS_LIMIT

    before = DAILY_LOSS_LIMIT.value
    try:
        DAILY_LOSS_LIMIT.set(None)
        assert REGISTRY.get_sample_value("engine_daily_loss_limit_ratio") is None
        DAILY_LOSS_LIMIT.set(Decimal("0.03"))
        assert REGISTRY.get_sample_value("engine_daily_loss_limit_ratio") == 0.03
    finally:
        DAILY_LOSS_LIMIT.set(before)
