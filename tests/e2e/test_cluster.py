"""A replicated cluster: three KRaft nodes (``stack up --brokers 3``'s code), topics of replication factor 3 and
``min.insync.replicas=2``; brokers killed and restarted under a running engine and projection workers, and an engine
killed under another sharing its partitions. Nothing lost, nothing doubled, the audit equals a fresh replay.

The cluster is this module's own (free ports, a temporary state directory, stopped at the end), since it kills its
nodes; PostgreSQL is the session's. The engine and the workers run as a user runs them (``python -m engine``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks import faults
from benchmarks.faults import Outcome, Proc, Run
from ops import _kafka
from ops._proc import alive, port_open, terminate
from tests.e2e.fault_checks import assert_nothing_lost_or_doubled

pytestmark = pytest.mark.servers

NODES = 3
# the test nodes' JVMs compile with C1 only: a node (re)starts in much less CPU time on a small, shared machine, and
# six restarts are most of this module's time; a test broker's throughput needs no C2
_JVM_OPTIONS = "-XX:TieredStopAtLevel=1"


@contextlib.contextmanager
def _jvm_options() -> Iterator[None]:
    """``JDK_JAVA_OPTIONS`` (read by the java launcher) for the nodes started meanwhile, and for nothing else."""
    before = os.environ.get("JDK_JAVA_OPTIONS")
    os.environ["JDK_JAVA_OPTIONS"] = _JVM_OPTIONS
    try:
        yield
    finally:
        if before is None:
            del os.environ["JDK_JAVA_OPTIONS"]
        else:
            os.environ["JDK_JAVA_OPTIONS"] = before


def _free_range() -> list[tuple[int, int]]:
    """Ports for the nodes: the first free range after the local stack's cluster (stack.kafka_cluster_port), not
    random free ports: those are in the ephemeral range, where the nodes' own connections to each other may take one
    before the node that is to listen on it starts."""
    from engine.config import load

    first = load().stack.kafka_cluster_port + 2 * NODES
    for _ in range(20):
        ports = _kafka.node_ports(first, NODES)
        if not any(port_open("127.0.0.1", p) for pair in ports for p in pair):
            return ports
        first += 2 * NODES
    raise AssertionError(f"no {2 * NODES} free ports from {first}")


class Cluster:
    """Three nodes on ports of their own; quacks as :class:`benchmarks.faults.PrivateStack` for :class:`Run`."""

    def __init__(self, state: Path, dsn: str) -> None:
        self.state = state
        self.ports = _free_range()
        self.bootstrap = _kafka.cluster_bootstrap(self.ports)
        self.dsn = dsn
        self.lib = _kafka.ensure_jars("4.1.1", state / "jars.log")

    @property
    def env(self) -> dict[str, str]:
        return {
            "ENGINE_KAFKA__BOOTSTRAP": self.bootstrap,
            # the cluster's own state directory: no secure.toml there (the suite's stack may be the secure one, whose
            # client settings would be SASL_SSL for this plaintext cluster); the suite's PostgreSQL keeps its TLS
            # parameters in its DSN, and its password file is the test process's PGPASSFILE
            "ENGINE_STACK__STATE_DIR": str(self.state),
            "ENGINE_POSTGRES__DSN": self.dsn,
            "ENGINE_KAFKA__REPLICATION_FACTOR": "3",
            "ENGINE_KAFKA__MIN_INSYNC_REPLICAS": "2",
        }

    def up(self) -> None:
        with _jvm_options():
            _kafka.cluster_up(self.lib, self.state, self.ports, "256m", 180)

    def down(self) -> None:
        """At the end: every node killed at once (their data is thrown away: a clean stop would only cost time)."""
        for node in range(1, NODES + 1):
            pid = _kafka.running_pid(_kafka.node_dir(self.state, node))
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
        _kafka.cluster_stop(self.state)

    def pid(self, node: int) -> int:
        pid = _kafka.running_pid(_kafka.node_dir(self.state, node))
        assert pid is not None, f"node {node} is not running"
        return pid

    def kill9(self, node: int) -> None:
        pid = self.pid(node)
        os.kill(pid, signal.SIGKILL)
        faults.wait_for(lambda: not alive(pid), 30, f"node {node} gone")

    def stop(self, node: int) -> None:
        terminate(self.pid(node), grace=60)

    def restart(self) -> None:
        """Start the nodes that are down; wait until every partition has all its replicas in sync again."""
        self.up()


async def _partitions(bootstrap: str, topics: list[str]) -> list[dict[str, Any]]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        return [p for t in await admin.describe_topics(topics) for p in t["partitions"]]
    finally:
        await admin.close()


def _run_topics(run: Run) -> list[str]:
    t = run.topics
    return [t.ticks, t.trading, t.control]


async def _log_end(bootstrap: str, topic: str) -> int:
    """How many records ``topic`` holds (the sum of its partitions' end offsets)."""
    from adapters.kafka import LogInspector

    async with LogInspector(bootstrap) as log:
        return sum((await log.end_offsets(await log.partitions([topic]))).values())


def log_ends(cluster: Cluster, run: Run) -> tuple[int, int] | None:
    """(ticks, trading events) in the run's log now; None if the cluster did not answer (a node just killed: aiokafka
    may then raise even CancelledError from its own tasks)."""
    try:
        return (
            asyncio.run(_log_end(cluster.bootstrap, run.topics.ticks)),
            asyncio.run(_log_end(cluster.bootstrap, run.topics.trading)),
        )
    except (Exception, asyncio.CancelledError):
        return None


def wait_trading_goes_on(
    cluster: Cluster, run: Run, what: str, since: tuple[int, int] | None = None, seconds: float = 60
) -> None:
    """Wait until 100 more ticks are in the log (written with ``acks=all``) and the engine has written more trading
    events than ``since`` (default: now): the feed and the engine go on (not a fixed sleep that hopes they did)."""
    if since is None:
        faults.wait_for(lambda: log_ends(cluster, run) is not None, seconds, "the log's ends")
        since = log_ends(cluster, run)
        assert since is not None

    def grew() -> bool:
        ends = log_ends(cluster, run)
        return ends is not None and ends[0] >= since[0] + 100 and ends[1] > since[1]

    faults.wait_for(grew, seconds, what)


def leaders_node(cluster: Cluster, run: Run) -> int:
    """The node leading most partitions of the run's topics."""
    parts = asyncio.run(_partitions(cluster.bootstrap, _run_topics(run)))
    return Counter(int(p["leader"]) for p in parts).most_common(1)[0][0]


def wait_in_sync(cluster: Cluster, run: Run, seconds: float = 120) -> None:
    def full() -> bool:
        parts = asyncio.run(_partitions(cluster.bootstrap, _run_topics(run)))
        return bool(parts) and all(len(p["isr"]) == NODES and int(p["leader"]) >= 0 for p in parts)

    faults.wait_for(full, seconds, "every partition's three replicas in sync")


@pytest.fixture(scope="module")
def cluster(servers: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("cluster"), servers.pg_dsn)
    try:
        c.up()
        yield c
    finally:
        c.down()


async def _log_orders(bootstrap: str, run: Run) -> tuple[dict[str, set[Any]], dict[str, set[str]], Counter[Any]]:
    """From the trading topic, every record: the OrderSubmitted event ids per client order id, the venue order ids
    per client order id, and the tick records per (venue, instrument, trade id) from the ticks topic."""
    from events import DecodeError, OrderAccepted, OrderSubmitted, TickReceived, decode

    submitted: dict[str, set[Any]] = defaultdict(set)
    venue_ids: dict[str, set[str]] = defaultdict(set)
    for m in await faults._read_topic(bootstrap, run.topics.trading):
        try:
            env = decode(m.value)
        except DecodeError:
            continue
        e = env.event
        if isinstance(e, OrderSubmitted):
            submitted[e.client_order_id].add(env.event_id)
        elif isinstance(e, OrderAccepted):
            venue_ids[e.client_order_id].add(e.venue_order_id)
    ticks: Counter[Any] = Counter()
    seen: set[Any] = set()
    for m in await faults._read_topic(bootstrap, run.topics.ticks):
        env = decode(m.value)
        if isinstance(env.event, TickReceived) and env.event_id not in seen:
            seen.add(env.event_id)
            ticks[(env.event.venue, env.event.instrument, env.event.trade_id)] += 1
    return submitted, venue_ids, ticks


def _no_order_twice_no_tick_twice(cluster: Cluster, run: Run, killed_seed: int | None = None) -> int:
    """Every client order id submitted once and placed at the venue once; every trade once in the log, and none
    missing from each feed's numbering (but the killed engine's feed's: what it had not sent died with it)."""
    submitted, venue_ids, ticks = asyncio.run(_log_orders(cluster.bootstrap, run))
    assert submitted, "no order was placed"
    twice = {c: ids for c, ids in submitted.items() if len(ids) != 1}
    assert not twice, f"client order ids submitted twice: {list(twice)[:5]}"
    venue_twice = {c: v for c, v in venue_ids.items() if len(v) != 1}
    assert not venue_twice, f"client order ids with several venue orders: {list(venue_twice.items())[:5]}"
    assert set(venue_ids) <= set(submitted)
    doubled = [k for k, n in ticks.items() if n > 1]
    assert not doubled, f"trades in the log twice, under other ids: {doubled[:5]}"
    # the synthetic feed numbers its trades: none missing between the first and the last of each feed run
    by_run: dict[str, list[int]] = defaultdict(list)
    for _, _, trade_id in ticks:
        head, _, n = trade_id.rpartition("-")
        by_run[head].append(int(n))
    for head, ns in by_run.items():
        if killed_seed is not None and head.startswith(f"syn-{killed_seed}-"):
            continue
        assert sorted(ns) == list(range(min(ns), max(ns) + 1)), f"feed {head}: ticks missing from the log"
    return len(submitted)


def _trading_run(cluster: Cluster, logs: Path, name: str) -> tuple[Run, Proc, list[Proc]]:
    run = Run(cluster, name, logs)  # a Cluster quacks as a PrivateStack
    engine = run.start("run", "--no-projections", "--rate", "100")
    workers = [run.start("project"), run.start("project")]
    faults.wait_for(
        lambda: asyncio.run(faults.audit_has_rows(cluster.dsn, run.schema)), 90, "the first projected events"
    )
    return run, engine, workers


def _finish(cluster: Cluster, run: Run, engine: Proc, out: Outcome) -> None:
    wait_trading_goes_on(cluster, run, "trading on, on the whole cluster again")
    faults._stop_all(run, out)  # a death, or any traceback (an unretrieved task's too), fails
    code = engine.interrupt()
    if code != 0:
        out.notes.append(f"engine exit {code}: {engine.tail(3)[-300:]}")
        out.all_alive = False
    faults.settle_and_check(run, out)


def test_the_leaders_broker_killed_three_times_under_an_engine_and_two_workers(
    cluster: Cluster, tmp_path: Path
) -> None:
    t0 = time.monotonic()
    out = Outcome("leader")
    run, engine, workers = _trading_run(cluster, tmp_path, "lead")
    rng = random.Random(20)
    killed = []
    try:
        wait_in_sync(cluster, run)
        for _ in range(3):
            time.sleep(rng.uniform(0.5, 1.5))  # a kill at a random point of the run
            node = leaders_node(cluster, run)
            killed.append(node)
            at_kill = log_ends(cluster, run)
            cluster.kill9(node)
            wait_trading_goes_on(cluster, run, f"trading on, on the two others (node {node} killed)", at_kill)
            cluster.restart()
            wait_in_sync(cluster, run)
            out.faults += 1
        _finish(cluster, run, engine, out)
    finally:
        for p in (*workers, engine):
            p.interrupt()
    out.seconds = time.monotonic() - t0
    out.notes.append(f"killed nodes {killed}")
    assert_nothing_lost_or_doubled(out)
    orders = _no_order_twice_no_tick_twice(cluster, run)
    print(f"{orders} orders, each placed once")


def test_a_rolling_restart_of_the_three_brokers_while_trading(cluster: Cluster, tmp_path: Path) -> None:
    t0 = time.monotonic()
    out = Outcome("rolling")
    run, engine, workers = _trading_run(cluster, tmp_path, "roll")
    try:
        wait_in_sync(cluster, run)
        for node in range(1, NODES + 1):
            cluster.stop(node)  # a clean stop (SIGTERM: its leadership moves first), as an upgrade does
            cluster.restart()
            wait_in_sync(cluster, run)
            out.faults += 1
        _finish(cluster, run, engine, out)
    finally:
        for p in (*workers, engine):
            p.interrupt()
    out.seconds = time.monotonic() - t0
    assert_nothing_lost_or_doubled(out)
    _no_order_twice_no_tick_twice(cluster, run)


async def _members(bootstrap: str, group: str, topic: str) -> dict[str, set[int]]:
    """The partitions of ``topic`` each member of the consumer group ``group`` holds (none: the group rebalances)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        (resp,) = await admin.describe_consumer_groups([group])
        (g,) = resp.groups
        if g[2] != "Stable":
            return {}
        out = {}
        for member_id, _, _, _, assignment in g[5]:
            a = ConsumerProtocolMemberAssignment.decode(assignment)
            out[member_id] = {p for t, parts in a.assignment if t == topic for p in parts}
        return out
    finally:
        await admin.close()


async def _committed_where_ticks(bootstrap: str, group: str, topic: str) -> bool:
    """Every partition of ``topic`` holding records has an offset committed by ``group`` past its start: whoever
    takes such a partition over has state to recover (from a snapshot or the log) before it goes on."""
    from aiokafka.admin import AIOKafkaAdminClient

    from adapters.kafka import LogInspector

    async with LogInspector(bootstrap) as log:
        ends = await log.end_offsets(await log.partitions([topic]))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return all(tp in committed and committed[tp].offset > 0 for tp, end in ends.items() if end > 0)


def _group_when(
    cluster: Cluster, group: str, topic: str, pred: Callable[[dict[str, set[int]]], bool], what: str
) -> dict[str, set[int]]:
    """The members of ``group`` and their partitions of ``topic`` once ``pred`` holds of them (fails after 120 s)."""
    seen: dict[str, set[int]] = {}

    def holds() -> bool:
        seen.clear()
        seen.update(asyncio.run(_members(cluster.bootstrap, group, topic)))
        return pred(seen)

    faults.wait_for(holds, 120, what)
    return seen


def _recovered(proc: Proc) -> list[tuple[int, int]]:
    """(line number, partition) of each ``engine.recovered`` line of an engine's log."""
    out = []
    for i, line in enumerate(proc.log.read_text(errors="replace").splitlines()):
        if '"engine.recovered"' in line:
            out.append((i, int(json.loads(line)["partition"])))
    return out


def test_an_engine_killed_under_another_its_partitions_move_and_no_order_is_placed_twice(
    cluster: Cluster, tmp_path: Path
) -> None:
    t0 = time.monotonic()
    out = Outcome("engines")
    run = Run(cluster, "twoe", tmp_path)
    a = run.start("run", "--no-projections", "--rate", "50", "--seed", "11")
    b = run.start("run", "--no-projections", "--rate", "50", "--seed", "12")
    workers = [run.start("project"), run.start("project")]
    try:
        faults.wait_for(lambda: asyncio.run(faults.audit_has_rows(cluster.dsn, run.schema)), 90, "the first events")

        group, ticks = run.topics.group("engine"), run.topics.ticks
        both = _group_when(cluster, group, ticks, lambda m: len(m) == 2 and all(m.values()), "both holding partitions")
        wait_trading_goes_on(cluster, run, "both engines trading")
        faults.wait_for(
            lambda: asyncio.run(_committed_where_ticks(cluster.bootstrap, group, ticks)),
            120,
            "the engines' offsets committed on every partition with ticks",
        )
        before = _group_when(cluster, group, ticks, lambda m: True, "the group's members")
        assert before == both, f"the group changed meanwhile: {both} then {before}"
        lines_before = len(b.log.read_text(errors="replace").splitlines())
        a.kill9()
        out.faults += 1
        after = _group_when(cluster, group, ticks, lambda m: len(m) == 1, "the killed engine's member gone")
        gone = set(before) - set(after)
        assert len(gone) == 1, (before, after)
        a_parts = before[gone.pop()]
        assert a_parts <= next(iter(after.values())), f"partitions {sorted(a_parts)} did not move: {after}"

        # the survivor rebuilds the state of those holding ticks from the log (its snapshots, then the records)
        held = {m.partition for m in asyncio.run(faults._read_topic(cluster.bootstrap, ticks))}
        a_parts &= held
        assert a_parts, f"the killed engine held no partition with ticks ({before}; ticks on {sorted(held)})"

        def moved() -> bool:
            return a_parts <= {p for i, p in _recovered(b) if i >= lines_before}

        faults.wait_for(moved, 120, f"the killed engine's partitions {sorted(a_parts)} recovered by the other")
        wait_trading_goes_on(cluster, run, "the survivor trading on")
        faults._stop_all(run, out)  # a death, or any traceback (an unretrieved task's too), fails
        code = b.interrupt()
        if code != 0:
            out.notes.append(f"engine exit {code}: {b.tail(3)[-300:]}")
            out.all_alive = False
        faults.settle_and_check(run, out)
    finally:
        for p in (*workers, a, b):
            p.interrupt()
    out.seconds = time.monotonic() - t0
    assert_nothing_lost_or_doubled(out)
    _no_order_twice_no_tick_twice(cluster, run, killed_seed=11)
