"""Nothing lost, nothing doubled, trading never stops: the fault suite's scenarios (benchmarks/faults.py), short.

They run on a Kafka broker and a PostgreSQL server of their own (free ports, a temporary state directory), started
here, since they kill them; the engine and the projection workers run as a user runs them (``python -m engine``).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks import faults
from benchmarks.faults import PrivateStack, Run
from tests.e2e.fault_checks import assert_nothing_lost_or_doubled

pytestmark = pytest.mark.servers


@pytest.fixture(scope="module")
def stack() -> Iterator[PrivateStack]:
    # under the repository's state directory, as the local stack's: the postgres user must reach its data directory
    state = faults.REPO / ".state" / f"faults-tests-{uuid.uuid4().hex[:8]}"
    try:
        with faults.private_stack(state) as s:
            yield s
    finally:
        shutil.rmtree(state, ignore_errors=True)


def test_every_kind_of_bad_record_on_every_topic_is_parked_once_per_group_and_trading_goes_on(
    stack: PrivateStack, tmp_path: Path
) -> None:
    o = faults.scenario_poison(stack, tmp_path, rounds=2)
    assert_nothing_lost_or_doubled(o)
    assert o.expected_dead_letters == 2 * (16 * 3 - 2 + 15 * 2 * 2)  # ticks: 3 groups (a conflicting copy: 1)


def test_a_recorded_run_killed_ten_times_ends_with_every_trade_once_and_the_orders_of_a_clean_run(
    stack: PrivateStack, tmp_path: Path
) -> None:
    o = faults.scenario_recorded(stack, tmp_path, 10, random.Random(15))
    assert_nothing_lost_or_doubled(o)


def test_postgres_killed_three_times_under_an_engine_and_two_workers(stack: PrivateStack, tmp_path: Path) -> None:
    assert_nothing_lost_or_doubled(faults.scenario_servers(stack, tmp_path, "postgres", 3, random.Random(3)))


def test_the_broker_killed_three_times_under_an_engine_and_two_workers(stack: PrivateStack, tmp_path: Path) -> None:
    assert_nothing_lost_or_doubled(faults.scenario_servers(stack, tmp_path, "kafka", 3, random.Random(4)))


def test_the_engine_killed_and_restarted_under_separate_workers(stack: PrivateStack, tmp_path: Path) -> None:
    assert_nothing_lost_or_doubled(faults.scenario_servers(stack, tmp_path, "engine", 2, random.Random(5)))


def test_projection_workers_killed_and_replaced(stack: PrivateStack, tmp_path: Path) -> None:
    assert_nothing_lost_or_doubled(faults.scenario_servers(stack, tmp_path, "workers", 2, random.Random(6)))


def _readyz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _port_of(proc: faults.Proc, deadline: float = 60) -> int:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        for line in proc.log.read_text(errors="replace").splitlines():
            if '"http.listening"' in line:
                return int(json.loads(line)["url"].rsplit(":", 1)[1].split("/")[0])
        assert proc.alive(), proc.tail()
        time.sleep(0.2)
    raise AssertionError(f"no http.listening line: {proc.tail()}")


def _until(pred: Any, seconds: float, what: str) -> float:
    """Seconds until ``pred()`` held (fails after ``seconds``)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if pred():
            return time.monotonic() - t0
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds} s: {what}")


def test_readyz_says_within_five_seconds_that_a_server_is_gone_and_the_outage_is_one_event_pair(
    stack: PrivateStack, tmp_path: Path
) -> None:
    run = Run(stack, "ready", tmp_path)
    engine = run.start("run", "--no-projections", "--rate", "50")
    worker = run.start("project", "--only", "audit")
    try:
        engine_port, worker_port = _port_of(engine), _port_of(worker)
        _until(lambda: _readyz(worker_port)[0] == 200, 60, "the worker ready")
        assert _readyz(engine_port)[0] == 200

        stack.kill_postgres()
        took = _until(lambda: "postgres" in _readyz(worker_port)[1]["failed"], 10, "/readyz to report PostgreSQL")
        assert took < 5, f"PostgreSQL reported down after {took:.1f} s"
        assert _readyz(engine_port)[0] == 200  # trading does not depend on PostgreSQL
        stack.restart()
        _until(lambda: _readyz(worker_port)[0] == 200, 60, "the worker ready again")

        lines_before = len(engine.log.read_text().splitlines())
        stack.kill_kafka()
        t0 = time.monotonic()
        _until(lambda: "kafka" in _readyz(engine_port)[1]["failed"], 10, "the engine's /readyz to report Kafka")
        _until(lambda: "kafka" in _readyz(worker_port)[1]["failed"], 10, "the worker's /readyz to report Kafka")
        took = time.monotonic() - t0
        assert took < 5, f"Kafka reported down by both after {took:.1f} s"
        time.sleep(max(0.0, 8 - took))  # an outage of some seconds: the clients retry many times a second meanwhile
        stack.restart()
        _until(lambda: _readyz(engine_port)[0] == 200 and _readyz(worker_port)[0] == 200, 90, "both ready again")
        outage_lines = len(engine.log.read_text().splitlines()) - lines_before
        assert outage_lines < 40, f"{outage_lines} log lines for one outage:\n{engine.tail(40)}"
        assert engine.alive() and worker.alive()

        async def changes() -> list[tuple[str, str]]:
            from events import ConnectionChanged, decode

            out = []
            for m in await faults._read_topic(stack.bootstrap, run.topics.control):
                e = decode(m.value).event
                if isinstance(e, ConnectionChanged):
                    out.append((e.component, e.state))
            return out

        def both_pairs() -> bool:
            seen = asyncio.run(changes())
            engine_kafka = [s for c, s in seen if c == "kafka"]
            return (
                engine_kafka.count("lost") >= 1
                and engine_kafka.count("restored") >= 1
                and ("postgres", "lost") in seen
                and ("postgres", "restored") in seen
            )

        _until(both_pairs, 30, "ConnectionChanged lost/restored for Kafka and PostgreSQL in the control topic")
        seen = asyncio.run(changes())
        # one pair per process that saw the outage: the engine and the worker each write theirs
        assert seen.count(("kafka", "lost")) == seen.count(("kafka", "restored")) == 2, seen
        assert seen.count(("postgres", "lost")) == seen.count(("postgres", "restored")) == 1, seen
    finally:
        for p in (engine, worker):
            p.interrupt()


def test_a_second_ctrl_c_during_a_drain_that_cannot_finish_stops_at_once_and_says_so(
    stack: PrivateStack, tmp_path: Path
) -> None:
    run = Run(stack, "ctrlc", tmp_path)
    engine = run.start("run", "--rate", "50", "--drain-timeout", "120")
    try:
        _port_of(engine)
        time.sleep(2)
        stack.kill_kafka()  # the drain waits for the broker: it cannot end by itself
        engine.p.send_signal(2)
        time.sleep(1.5)
        assert engine.alive(), "the first Ctrl-C starts a drain, it does not exit"
        t0 = time.monotonic()
        engine.p.send_signal(2)
        code = engine.wait(10)
        assert code == 130 and time.monotonic() - t0 < 5, f"exit {code} after {time.monotonic() - t0:.1f} s"
        out = engine.log.read_text()
        assert "stopping at once, without draining" in out and "Traceback" not in out
    finally:
        stack.restart()
        engine.kill9()


def _gauges(port: int) -> dict[str, float]:
    """The engine's connection gauges, as Prometheus scrapes them (never /readyz)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("engine_kafka_up", "engine_postgres_up"):
            out[name] = float(value)
    return out


def test_the_connection_gauges_follow_the_servers_with_no_readiness_request(
    stack: PrivateStack, tmp_path: Path
) -> None:
    # nobody asks /readyz here: the gauges come from the background probe alone (issue: they used to stay 0 until
    # someone requested /readyz, so the ConnectionLost alerts fired on a healthy system)
    run = Run(stack, "gauges", tmp_path)
    worker = run.start("project", "--only", "audit")
    try:
        port = _port_of(worker)
        both_up = {"engine_kafka_up": 1.0, "engine_postgres_up": 1.0}
        took = _until(lambda: _gauges(port) == both_up, 30, "both gauges 1 after start")
        assert took < 10, f"the gauges said up {took:.1f} s after the port opened"
        stack.kill_postgres()
        took = _until(lambda: _gauges(port).get("engine_postgres_up") == 0.0, 10, "engine_postgres_up 0")
        assert took < 5 and _gauges(port)["engine_kafka_up"] == 1.0, f"PostgreSQL seen down after {took:.1f} s"
        stack.restart()
        _until(lambda: _gauges(port) == both_up, 90, "both gauges 1 again")
        stack.kill_kafka()
        took = _until(lambda: _gauges(port).get("engine_kafka_up") == 0.0, 10, "engine_kafka_up 0")
        assert took < 5, f"Kafka seen down after {took:.1f} s"
        stack.restart()
        _until(lambda: _gauges(port) == both_up, 90, "both gauges 1 again after Kafka")
        assert worker.alive()
    finally:
        worker.interrupt()


def test_a_broker_hung_then_killed_under_a_worker_leaves_no_commit_unobserved_and_the_stop_is_prompt(
    stack: PrivateStack, tmp_path: Path
) -> None:
    # the runner gave Kafka's copy of its offsets 5 s (asyncio.wait_for); aiokafka sends it shielded, so with the
    # broker hung the request outlived the cancelled wait and failed later, unobserved: "Task exception was never
    # retrieved" and a traceback in the worker's log. A broker that hangs longer than that, then dies:
    run = Run(stack, "hung", tmp_path)
    engine = run.start("run", "--no-projections", "--rate", "200")
    worker = run.start("project", "--only", "audit")
    try:
        faults.wait_for(lambda: asyncio.run(faults.audit_has_rows(stack.dsn, run.schema)), 90, "the first events")
        pid = stack.kafka_pid()
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # hung: every request in flight waits, none fails
        time.sleep(8)  # longer than the commit's 5 s
        stack.kill_kafka()  # dead: every request in flight fails at once
        time.sleep(2)  # the failures' callbacks run (asyncio reports an unretrieved one when the task is freed)
        t0 = time.monotonic()
        code = worker.interrupt(timeout=60)
        took = time.monotonic() - t0
        text = worker.log.read_text(errors="replace")
        assert "Task exception was never retrieved" not in text and "Traceback" not in text, worker.tail(40)
        assert took < 30, f"the worker took {took:.1f} s to stop with the broker gone"
        # it exits by itself (not killed after the 60 s); with the broker gone its stop ends as an interrupted one
        # (130, "interrupted"), as it did before this test
        assert code in (0, 130), f"exit {code}: {worker.tail(10)}"
        print(f"the worker stopped in {took:.1f} s (exit {code}) with the broker hung 8 s, then killed")
    finally:
        stack.restart()
        for p in (worker, engine):
            p.interrupt()
