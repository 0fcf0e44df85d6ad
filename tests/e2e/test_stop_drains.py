"""A stop by signal drains, however slow the feed: every tick published is traded and projected, and the stop is an
event in the log and in the audit (a slow feed once let the stop skip the drain and the EngineStopped event)."""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support import engine_env, start_cli, unique, wait_for

pytestmark = pytest.mark.servers


async def test_sigterm_on_a_slow_feed_drains_and_records_the_stop(servers: Any, tmp_path: Path) -> None:
    prefix, schema = unique("stop"), unique("stop")
    log = tmp_path / "engine.log"
    engine = start_cli(["run", "--rate", "2"], engine_env(servers, prefix, schema), log)
    conn = await asyncpg.connect(servers.pg_dsn)
    try:

        async def ticks_stored() -> bool:
            assert engine.poll() is None, log.read_text()[-3000:]
            try:
                return (
                    int(await conn.fetchval(f"select count(*) from {schema}.events where type = 'TickReceived'")) >= 3
                )
            except asyncpg.UndefinedTableError:
                return False

        await wait_for(ticks_stored, 120, "the live projection to store ticks")
        engine.send_signal(signal.SIGTERM)
        assert engine.wait(120) == 0, log.read_text()[-3000:]
        out = log.read_text()
        m = re.search(r"(\d+) ticks published, (\d+) processed", out)
        assert m, out[-3000:]
        published = int(m.group(1))
        assert int(m.group(2)) == published, out[-3000:]
        stops = await conn.fetch(
            f"select source, detail->>'reason' as reason from {schema}.system_events where type = 'EngineStopped'"
        )
        assert [s["reason"] for s in stops] == ["SIGTERM"], out[-3000:]
        stored = await conn.fetchval(f"select count(*) from {schema}.events where type = 'TickReceived'")
        assert stored == published, f"{stored} ticks projected of {published} published\n{out[-3000:]}"
    finally:
        if engine.poll() is None:
            engine.kill()
        await conn.close()


async def test_the_engine_stopped_event_counts_the_ticks_taken_while_draining(servers: Any, tmp_path: Path) -> None:
    # a feed faster than the engine: when the duration ends, ticks published are still to be traded, and the drain
    # takes them; the EngineStopped event once counted only those taken before the drain began
    prefix, schema = unique("stopn"), unique("stopn")
    log = tmp_path / "engine.log"
    engine = start_cli(["run", "--rate", "5000", "--duration", "4"], engine_env(servers, prefix, schema), log)
    assert engine.wait(180) == 0, log.read_text()[-3000:]
    out = log.read_text()
    m = re.search(r"(\d+) ticks published, (\d+) processed", out)
    assert m, out[-3000:]
    published, processed = int(m.group(1)), int(m.group(2))
    assert processed == published, out[-3000:]
    conn = await asyncpg.connect(servers.pg_dsn)
    try:
        stops = await conn.fetch(
            f"select (detail->>'ticks_processed')::int as n from {schema}.system_events where type = 'EngineStopped'"
        )
        stored = await conn.fetchval(f"select count(*) from {schema}.events where type = 'TickReceived'")
    finally:
        await conn.close()
    assert stored == published, f"{stored} ticks in the audit of {published} published\n{out[-3000:]}"
    assert [s["n"] for s in stops] == [published], f"EngineStopped says {[s['n'] for s in stops]} of {published}"
