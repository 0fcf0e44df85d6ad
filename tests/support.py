"""Helpers shared by the integration and end-to-end tests (not fixtures: see conftest.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# 12,477 real Binance XRP/ETH trades, committed with the tests (tests/data/README.md): a fresh clone needs nothing else
TRADES = REPO / "tests" / "data" / "binance-xrpeth-trades-2019-10-11.json.gz"
SHARED_TRADES = TRADES  # the name the tests have used

# XRP/ETH trades at ~0.0014 ETH: orders of 100 XRP (~0.14 ETH), at most 300 XRP long
XRP_ETH_SETTINGS = {
    "ENGINE_STRATEGY__ORDER_QUANTITY": "100",
    "ENGINE_RISK__MAX_POSITION": "300",
    "ENGINE_RISK__MAX_ORDER_NOTIONAL": "1",
}


def unique(name: str) -> str:
    """A fresh lower-case name, valid as a schema and as a topic prefix."""
    return f"{name}_{uuid.uuid4().hex[:8]}"


def engine_env(servers: Any, prefix: str, schema: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "ENGINE_KAFKA__BOOTSTRAP": servers.kafka_bootstrap,
            "ENGINE_POSTGRES__DSN": servers.pg_dsn,
            "ENGINE_KAFKA__TOPIC_PREFIX": f"{prefix}.",
            "ENGINE_POSTGRES__SCHEMA": schema,
            "ENGINE_HTTP__PORT": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


def run_cli(args: list[str], env: Mapping[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m engine ARGS`` as a user runs it; the output is kept for assertion messages."""
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        env=dict(env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_cli(args: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    fh = log.open("wb")
    return subprocess.Popen([sys.executable, "-m", "engine", *args], env=dict(env), cwd=REPO, stdout=fh, stderr=fh)


async def wait_for(pred: Callable[[], Awaitable[bool]], timeout: float, what: str, poll: float = 0.05) -> None:
    """Poll ``pred`` until it is true; fail with ``what`` after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if await pred():
            return
        await asyncio.sleep(poll)
    raise AssertionError(f"timed out after {timeout}s waiting for: {what}")


async def until(cond: Callable[[], bool], what: str, timeout: float = 15.0, poll: float = 0.005) -> None:
    """Wait until the synchronous ``cond()`` is true; fail with ``what`` after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for: {what}")
        await asyncio.sleep(poll)


def write_trades(path: Path, rows: list[list[Any]]) -> Path:
    """Write a ccxt trade list (e.g. a slice of the shared file); Decimals are written as JSON numbers."""
    import json
    from decimal import Decimal

    def fmt(v: Any) -> str:
        return str(v) if isinstance(v, Decimal) else json.dumps(v)

    path.write_text("[" + ",\n".join("[" + ", ".join(fmt(v) for v in row) + "]" for row in rows) + "]")
    return path


async def project_until(bootstrap: str, pool: Any, schema: str, topics: Any, topic: str, records: int) -> Any:
    """Run the audit projection (as a consumer group) until it has passed ``records`` records of ``topic``."""
    from adapters.kafka import EventProducer
    from projections.audit import AuditProjection
    from projections.offsets import PgOffsets
    from projections.runner import ProjectionRunner

    async with EventProducer(bootstrap, topics) as dlq:
        runner = ProjectionRunner(
            AuditProjection(schema, topics), PgOffsets(pool, schema), bootstrap, dlq, group_id=topics.group("audit")
        )
        stop = asyncio.Event()
        await runner.start()
        task = asyncio.create_task(runner.run(stop))
        try:

            async def passed() -> bool:
                return bool(
                    await pool.fetchval(
                        f"select coalesce(sum(next_offset), 0) from {schema}.projection_offsets where topic = $1", topic
                    )
                    == records
                )

            await wait_for(passed, 60, f"the projection to pass {records} records of {topic}")
        finally:
            stop.set()
            await task
            await runner.stop()
    return runner
