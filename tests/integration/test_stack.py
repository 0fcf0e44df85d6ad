"""`python -m engine stack`: the local Kafka and PostgreSQL, without Docker.

These tests start a second stack of their own (its own state directory and ports), so they neither depend
on nor disturb the servers the rest of the suite uses.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from adapters.kafka import LogInspector
from engine.config import STACK_PASSFILE, Settings, load
from ops import stack
from tests.support import run_cli

pytestmark = pytest.mark.servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, dict[str, str]]]:
    kport, cport, pport = free_port(), free_port(), free_port()
    state = tmp_path_factory.mktemp("stack") / "state"
    env = {
        **os.environ,
        "ENGINE_KAFKA__BOOTSTRAP": f"127.0.0.1:{kport}",
        "ENGINE_POSTGRES__DSN": f"postgresql://engine@127.0.0.1:{pport}/engine",
        "ENGINE_STACK__STATE_DIR": str(state),
        "ENGINE_STACK__KAFKA_CONTROLLER_PORT": str(cport),
    }
    settings = load(
        kafka={"bootstrap": env["ENGINE_KAFKA__BOOTSTRAP"]},
        postgres={"dsn": env["ENGINE_POSTGRES__DSN"]},
        stack={"state_dir": str(state), "kafka_controller_port": cport},
    )
    res = run_cli(["stack", "up"], env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    try:
        yield settings, env
    finally:
        stack.down(settings)


def test_up_starts_both_and_status_names_endpoints_and_logs(own_stack: tuple[Settings, dict[str, str]]) -> None:
    settings, env = own_stack
    res = run_cli(["stack", "status"], env)
    lines = dict(line.split(None, 1) for line in res.stdout.splitlines())
    assert lines["kafka"].startswith("running") and settings.kafka.bootstrap in lines["kafka"]
    assert "server.log" in lines["kafka"] and "postgres.log" in lines["postgres"]
    assert lines["postgres"].startswith("running")
    for s in stack.status(settings):
        assert s.log_file is not None and s.log_file.exists(), f"{s.name} log missing"


def test_a_second_up_is_idempotent_and_quick(own_stack: tuple[Settings, dict[str, str]]) -> None:
    settings, env = own_stack
    before = {s.name: s.pid for s in stack.status(settings)}
    t0 = time.monotonic()
    res = run_cli(["stack", "up"], env)
    assert res.returncode == 0, res.stderr
    assert time.monotonic() - t0 < 20
    assert {s.name: s.pid for s in stack.status(settings)} == before  # nothing restarted


async def test_both_really_answer(own_stack: tuple[Settings, dict[str, str]]) -> None:
    settings, _ = own_stack
    async with LogInspector(settings.kafka.bootstrap) as log:
        await log.ping()
    port = settings.postgres.dsn.rsplit(":", 1)[1].split("/")[0]
    for user in ("engine", "engine_writer", "engine_reader"):  # each with its password, from the stack's file
        conn = await asyncpg.connect(
            f"postgresql://{user}@127.0.0.1:{port}/engine", passfile=settings.stack.state_dir / STACK_PASSFILE
        )
        assert await conn.fetchval("select current_user") == user
        await conn.close()


def test_down_stops_what_up_started_and_twice_is_harmless(
    own_stack: tuple[Settings, dict[str, str]], servers: Any
) -> None:
    settings, _ = own_stack
    assert {s.name: s.state for s in stack.down(settings)} == {"kafka": "stopped", "postgres": "stopped"}
    assert {s.name: s.state for s in stack.down(settings)} == {"kafka": "stopped", "postgres": "stopped"}
    if servers.how == "local stack":  # the suite's own stack was not touched
        assert {s.name: s.state for s in stack.status(load())} == {"kafka": "running", "postgres": "running"}


def test_a_remote_endpoint_is_reported_external_and_left_alone() -> None:
    settings = load(
        kafka={"bootstrap": "kafka.example.internal:9092"},
        postgres={"dsn": "postgresql://engine@db.example.internal/engine"},
    )
    assert {s.name: s.state for s in stack.status(settings)} == {"kafka": "external", "postgres": "external"}
