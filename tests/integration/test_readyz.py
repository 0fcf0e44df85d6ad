"""/readyz says which check failed; /healthz only says the process is alive."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from adapters.http import HttpServer
from adapters.kafka import EventProducer, LogInspector
from adapters.postgres import create_pool
from engine.status import ConnectionMonitor, StatusBoard
from events import Topics
from projections.metrics import MetricsProjection
from projections.offsets import MemoryOffsets
from projections.runner import ProjectionRunner

pytestmark = pytest.mark.servers


async def test_readyz_is_ready_with_reachable_servers_and_names_a_projection_that_is_not(servers: Any) -> None:
    topics = Topics("readyz.")
    pool = await create_pool(servers.pg_dsn)
    async with LogInspector(servers.kafka_bootstrap) as inspector, EventProducer(servers.kafka_bootstrap, topics) as p:
        # a projection that was never started owns no partitions: it is not ready
        runner = ProjectionRunner(
            MetricsProjection(topics), MemoryOffsets(), servers.kafka_bootstrap, p, group_id="readyz"
        )
        monitor = ConnectionMonitor(inspector, pool)
        await monitor.probe_once()
        board = StatusBoard(monitor, [runner], max_lag_events=10, max_lag_seconds=5)
        server = HttpServer("127.0.0.1", 0, ready=board.checks, status=board.snapshot)
        await server.start()
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{server.port}/healthz") as r:
                    assert r.status == 200
                async with http.get(f"http://127.0.0.1:{server.port}/readyz") as r:
                    body = await r.json()
                    assert r.status == 503
                assert body["failed"] == ["projection:metrics"]
                assert body["checks"]["kafka"]["ok"] and body["checks"]["postgres"]["ok"]
                assert body["checks"]["projection:metrics"]["detail"] == "waiting for partitions"
                runner.ready.set()  # now it owns (no) partitions and has no lag
                async with http.get(f"http://127.0.0.1:{server.port}/readyz") as r:
                    assert r.status == 200 and (await r.json())["status"] == "ready"
                await pool.close()  # PostgreSQL gone for this process
                await monitor.probe_once()
                async with http.get(f"http://127.0.0.1:{server.port}/readyz") as r:
                    body = await r.json()
                    assert r.status == 503 and body["failed"] == ["postgres"]
        finally:
            await server.stop()
            await runner.stop()
