"""A backtest's feed publishes from a child process (:mod:`adapters.feeds.child`): killed with ``kill -9`` while it
publishes, the backtest leaves no feed publishing on alone (the child sees its parent's pipe end, and stops)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from adapters.kafka import LogInspector
from benchmarks.backtest_million import write_file
from tests.support import REPO, engine_env, run_cli, unique

pytestmark = pytest.mark.servers


def _feed_child_of(pid: int) -> int | None:
    """The pid of ``pid``'s child running the feed, if there is one now."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"adapters.feeds.child" in cmd:
            return int(entry.name)
    return None


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def _ticks_end(bootstrap: str, topic: str) -> int:
    async with LogInspector(bootstrap) as inspector:
        return sum((await inspector.end_offsets(await inspector.partitions([topic]))).values())


def test_a_backtest_killed_with_kill_9_leaves_no_feed_publishing(servers: Any, tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    write_file(path, 300_000)
    run = unique("killed")
    env = engine_env(servers, unique("btk"), unique("btk"))
    cmd = [sys.executable, "-m", "engine", "backtest", "--file", str(path), "--symbol", "XRP/ETH", "--run", run]
    proc = subprocess.Popen([*cmd, "--no-html"], env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    topic = f"bt_{run}.market.ticks"
    try:
        deadline = time.monotonic() + 180
        child = None
        while child is None and time.monotonic() < deadline and proc.poll() is None:
            child = _feed_child_of(proc.pid)
            time.sleep(0.2)
        assert child is not None, f"no feed process seen: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}"
        while asyncio.run(_ticks_end(servers.kafka_bootstrap, topic)) == 0 and time.monotonic() < deadline:
            time.sleep(0.5)  # publishing: then kill the backtest
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        deadline = time.monotonic() + 30
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(child), "the feed process went on publishing after its backtest was killed"
        first = asyncio.run(_ticks_end(servers.kafka_bootstrap, topic))
        time.sleep(2)
        assert asyncio.run(_ticks_end(servers.kafka_bootstrap, topic)) == first < 300_000
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        run_cli(["backtest", "drop", run], env)
