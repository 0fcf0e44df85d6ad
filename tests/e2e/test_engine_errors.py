"""The engine fails plainly: a missing file before anything starts, a bad file with the reason, recorded in the log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support import engine_env, run_cli, unique

pytestmark = pytest.mark.servers


def test_a_missing_file_is_refused_before_anything_starts(servers: Any, tmp_path: Path) -> None:
    res = run_cli(["run", "--file", str(tmp_path / "nope.json"), "--symbol", "X/Y"],
                  engine_env(servers, unique("err"), unique("err")))
    assert res.returncode == 2
    assert "feed.path" in res.stderr and "no such file" in res.stderr


async def test_a_bad_file_stops_the_engine_with_the_reason_and_leaves_an_event(servers: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[[1570752011620, "1", null, "hold", 0.0014, 1.0, 0.0014]]')
    prefix, schema = unique("err"), unique("err")
    env = engine_env(servers, prefix, schema)
    res = run_cli(["run", "--file", str(bad), "--symbol", "XRP/ETH"], env)
    assert res.returncode == 1
    assert "trade #0 has side 'hold'" in res.stderr
    fresh = unique("errlog")
    assert run_cli(["replay", "--schema", fresh], env).returncode == 0
    conn = await asyncpg.connect(servers.pg_dsn)
    try:
        reason = await conn.fetchval(
            f"select detail->>'reason' from {fresh}.system_events where type = 'EngineStopped'")
    finally:
        await conn.close()
    assert reason is not None and reason.startswith("error: ") and "'hold'" in reason
