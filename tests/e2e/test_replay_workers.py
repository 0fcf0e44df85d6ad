"""A replay shared among several processes, as a live consumer group shares the partitions, builds the same
schema as the live projection."""

from __future__ import annotations

import json
import multiprocessing
import threading
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

from events import Topics
from projections.replay import SchemaExists, replay
from tests.support import engine_env, run_cli, unique

pytestmark = pytest.mark.servers


async def test_a_replay_by_two_worker_processes_equals_the_live_projection(servers: Any, tmp_path: Path) -> None:
    prefix, schema = unique("wk"), unique("wk")
    env = engine_env(servers, prefix, schema, {"ENGINE_STRATEGY__FAST": "2", "ENGINE_STRATEGY__SLOW": "5"})
    res = run_cli(["run", "--ticks", "3000", "--rate", "3000"], env)
    assert res.returncode == 0, res.stderr[-3000:]
    fresh = unique("wkreplay")
    # the servers by host name, as in compose.yaml: resolving a name starts a thread, and the process still forks
    by_name = {
        **env,
        "ENGINE_KAFKA__BOOTSTRAP": servers.kafka_bootstrap.replace("127.0.0.1", "localhost"),
        "ENGINE_POSTGRES__DSN": servers.pg_dsn.replace("@127.0.0.1", "@localhost"),
    }
    assert servers.how != "local stack" or by_name["ENGINE_POSTGRES__DSN"] != servers.pg_dsn  # named, not numbered
    res = run_cli(["replay", "--schema", fresh, "--workers", "2"], by_name)
    assert res.returncode == 0, res.stderr[-3000:]
    started = [json.loads(line) for line in res.stderr.splitlines() if '"replay.started"' in line]
    assert [s["workers"] for s in started] == [2], res.stderr[-3000:]  # both instruments' partitions, one each
    assert [s["processes"] for s in started] == ["fork"]  # the other process is forked: it starts at once
    conn = await asyncpg.connect(servers.pg_dsn)
    try:
        live_events = await conn.fetchval(f"select count(*) from {schema}.events")
        assert await conn.fetchval(f"select count(*) from {schema}.fills") > 0  # something to compare
    finally:
        await conn.close()
    assert f"replayed {live_events} events" in res.stdout
    res = run_cli(["diff", schema, fresh], env)
    assert res.returncode == 0, res.stdout[-4000:]

    # in a process with another thread running, the other worker is spawned instead (a fork would copy no thread but
    # the caller's), and builds the same schema
    release = threading.Event()
    other = threading.Thread(target=release.wait, daemon=True)
    other.start()
    try:
        with capture_logs() as logs:
            spawned = await replay(
                servers.kafka_bootstrap,
                servers.pg_dsn,
                servers.pg_dsn,
                unique("wkspawn"),
                topics=Topics(f"{prefix}."),
                progress=False,
                workers=2,
            )
    finally:
        release.set()
        other.join()
    assert [e["processes"] for e in logs if e["event"] == "replay.started"] == ["spawn"]
    assert spawned.events == live_events
    res = run_cli(["diff", schema, spawned.schema], env)
    assert res.returncode == 0, res.stdout[-4000:]

    # by default, a log this small (under 20,000 events) is folded by one process: another would not earn back its start
    res = run_cli(["replay", "--schema", unique("wkauto")], env)
    assert res.returncode == 0, res.stderr[-3000:]
    started = [json.loads(line) for line in res.stderr.splitlines() if '"replay.started"' in line]
    assert [s["workers"] for s in started] == [1], res.stderr[-3000:]

    # a share that fails stops the replay with its own error (not wrapped), and leaves no worker behind
    scheme, rest = servers.pg_dsn.split("://", 1)
    no_role = f"{scheme}://{unique('norole')}@{rest.rsplit('@', 1)[-1]}"  # a writer role that does not exist
    with pytest.raises(asyncpg.PostgresError) as failed:
        await replay(
            servers.kafka_bootstrap,
            servers.pg_dsn,
            no_role,
            unique("wkfail"),
            topics=Topics(f"{prefix}."),
            progress=False,
            workers=2,
        )
    assert "norole" in str(failed.value)
    assert not multiprocessing.active_children()

    # a replay refused before it folds anything (its schema exists) leaves none behind either
    with pytest.raises(SchemaExists):
        await replay(
            servers.kafka_bootstrap,
            servers.pg_dsn,
            servers.pg_dsn,
            fresh,
            topics=Topics(f"{prefix}."),
            progress=False,
            workers=3,
        )
    assert not multiprocessing.active_children()
