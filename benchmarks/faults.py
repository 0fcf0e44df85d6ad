"""The fault suite: the engine, projection workers, the broker and PostgreSQL killed at random moments, bad records
planted, workers churned; then what was lost, doubled and dead-lettered is counted.

    python benchmarks/faults.py                       # every scenario, 10 faults of each kind
    python benchmarks/faults.py --kills 3 --only postgres kafka

It runs on a Kafka broker and a PostgreSQL server of its own (free ports, a state directory under
``.state/faults``), never on the local stack's, since it kills them. Each scenario prints one line: the faults it
injected, the events lost (in the log, valid, and missing from the audit), doubled (a trade or an order stored
twice), dead-lettered (entries on the dead-letter topic, against the planted bad records), whether every process
was alive at the end, and whether the audit equals a fresh replay of the log (``engine diff``). It exits 1 if any
scenario lost or doubled anything, dead-lettered other than the planted records, or differs from its replay.

Scenarios:

- ``poison``: bad records of 16 kinds planted on the ticks, trading and control topics while an engine and a
  projection worker run, ``--kills`` rounds, both killed and restarted after each: every bad record parked once
  per consumer group, the next good tick traded;
- ``recorded``: a recorded run (the 12,477 real trades of ``tests/data``) killed with SIGKILL ``--kills`` times
  and restarted, then run to its end: the same ticks, orders, fills and fees as one clean run;
- ``engine``: the engine of a synthetic run killed and restarted ``--kills`` times, separate workers running;
- ``workers``: a projection worker killed and another started ``--kills`` times;
- ``postgres``: PostgreSQL killed (the postmaster and its backends, SIGKILL) and restarted ``--kills`` times;
- ``kafka``: the broker killed (SIGKILL) and restarted ``--kills`` times.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TRADES = REPO / "tests" / "data" / "binance-xrpeth-trades-2019-10-11.json.gz"
TRADES_COUNT = 12_477
# XRP/ETH at ~0.0014 ETH: orders of 100 XRP, at most 300 XRP long (as the tests trade it)
XRP_ETH = {
    "ENGINE_STRATEGY__ORDER_QUANTITY": "100",
    "ENGINE_RISK__MAX_POSITION": "300",
    "ENGINE_RISK__MAX_ORDER_NOTIONAL": "1",
}
SCENARIOS = ("poison", "recorded", "engine", "workers", "postgres", "kafka")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateStack:
    """A Kafka broker and a PostgreSQL server with ports and a state directory of their own, to kill at will."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        ports_file = state_dir / "ports.json"
        if ports_file.exists():  # the same servers as last time (their data directories hold their ports)
            ports = json.loads(ports_file.read_text())
        else:
            ports = {"kafka": _free_port(), "controller": _free_port(), "postgres": _free_port()}
            state_dir.mkdir(parents=True, exist_ok=True)
            ports_file.write_text(json.dumps(ports))
        self.kafka_port, self.controller_port, self.pg_port = ports["kafka"], ports["controller"], ports["postgres"]
        self.bootstrap = f"127.0.0.1:{self.kafka_port}"
        # its own password file named in the DSN (libpq's and asyncpg's passfile parameter), not in PGPASSFILE,
        # which the process may use for another PostgreSQL
        self.dsn = f"postgresql://engine@127.0.0.1:{self.pg_port}/engine?passfile={state_dir / 'pgpass'}"

    @property
    def env(self) -> dict[str, str]:
        return {
            "ENGINE_KAFKA__BOOTSTRAP": self.bootstrap,
            "ENGINE_POSTGRES__DSN": self.dsn,
            "ENGINE_STACK__STATE_DIR": str(self.state_dir),
            "ENGINE_STACK__KAFKA_CONTROLLER_PORT": str(self.controller_port),
        }

    def settings(self) -> Any:
        from engine.config import KafkaSettings, PostgresSettings, Settings, StackSettings

        return Settings(
            kafka=KafkaSettings(bootstrap=self.bootstrap),
            postgres=PostgresSettings(dsn=self.dsn),
            stack=StackSettings(state_dir=self.state_dir, kafka_controller_port=self.controller_port),
        )

    def up(self) -> None:
        from ops import stack

        stack.up(self.settings(), timeout=180)

    def down(self) -> None:
        from ops import stack

        stack.down(self.settings())

    def kafka_pid(self) -> int | None:
        from ops import _kafka

        return _kafka.running_pid(self.state_dir / "kafka")

    def kill_kafka(self) -> None:
        pid = self.kafka_pid()
        if pid is not None:
            _kill9([pid])

    def kill_postgres(self) -> None:
        """As a crash: the postmaster and every backend, SIGKILL."""
        from ops import _postgres

        pid = _postgres.pid(self.state_dir / "postgres")
        if pid is None:
            return
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
        _kill9([pid, *(int(c) for c in children.stdout.split())])

    def restart(self) -> None:
        self.up()


def _kill9(pids: Sequence[int]) -> None:
    from ops._proc import alive

    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


class Proc:
    """One ``python -m engine`` process, its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args = args
        self.log = log
        self._fh = log.open("ab")
        self.killed = False  # stopped on purpose (killed, or interrupted): not a death
        self.p = subprocess.Popen(
            [sys.executable, "-m", "engine", *args],
            env=env,
            cwd=REPO,
            stdout=self._fh,
            stderr=self._fh,
            stdin=subprocess.DEVNULL,
        )

    def alive(self) -> bool:
        return self.p.poll() is None

    def kill9(self) -> None:
        self.killed = True
        if self.alive():
            self.p.kill()
        self.p.wait()

    def interrupt(self, timeout: float = 180) -> int:
        """SIGINT (a clean stop, with its drain), then the exit code."""
        self.killed = True
        if self.alive():
            self.p.send_signal(signal.SIGINT)
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return self.p.wait()

    def wait(self, timeout: float) -> int:
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            return -9

    def tail(self, lines: int = 30) -> str:
        self._fh.flush()
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Outcome:
    scenario: str
    faults: int = 0
    events: int = 0  # valid events in the log the audit should hold
    lost: int = 0
    doubled: int = 0
    dead_lettered: int = 0
    expected_dead_letters: int = 0
    all_alive: bool = True
    replay_equal: bool | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.doubled == 0
            and self.dead_lettered == self.expected_dead_letters
            and self.all_alive
            and self.replay_equal is not False
        )

    def line(self) -> str:
        replay = {True: "equal", False: "DIFFERENT", None: "n/a"}[self.replay_equal]
        return (
            f"{self.scenario:<9} faults {self.faults:>3}  events {self.events:>7}  lost {self.lost}  "
            f"doubled {self.doubled}  dead-lettered {self.dead_lettered} (planted {self.expected_dead_letters})  "
            f"alive {'yes' if self.all_alive else 'NO'}  replay {replay}  {self.seconds:.0f} s"
            + (f"  [{'; '.join(self.notes)}]" if self.notes else "")
        )


class Run:
    """One scenario's deployment on the private stack: a topic prefix and a schema of its own."""

    def __init__(self, stack: PrivateStack, name: str, logs: Path, extra: dict[str, str] | None = None) -> None:
        self.stack = stack
        tag = uuid.uuid4().hex[:8]
        self.prefix = f"f{name}_{tag}"
        self.schema = f"f{name}_{tag}"
        self.logs = logs
        self.env = {
            **os.environ,
            **stack.env,
            "ENGINE_KAFKA__TOPIC_PREFIX": f"{self.prefix}.",
            "ENGINE_POSTGRES__SCHEMA": self.schema,
            "ENGINE_HTTP__PORT": "0",
            "PYTHONUNBUFFERED": "1",
            **(extra or {}),
        }
        self.procs: list[Proc] = []
        self._n = 0

    def start(self, *args: str) -> Proc:
        self._n += 1
        p = Proc(list(args), self.env, self.logs / f"{self.prefix}-{self._n:02d}-{args[0]}.log")
        self.procs.append(p)
        return p

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "engine", *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    @property
    def topics(self) -> Any:
        from events import Topics

        return Topics(f"{self.prefix}.")


# -- what the log and the audit hold ---------------------------------------------------------------------


async def _read_topic(bootstrap: str, topic: str) -> list[Any]:
    from aiokafka import TopicPartition

    from adapters.kafka import make_consumer

    c = make_consumer(bootstrap, group_id=None, client_id="faults-reader")
    await c.start()
    try:
        parts = c.partitions_for_topic(topic)
        if parts is None:
            await c._client.force_metadata_update()
            parts = c.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return []
        end = await c.end_offsets(tps)
        todo = [tp for tp in tps if end[tp] > 0]
        if not todo:
            return []
        c.assign(todo)
        await c.seek_to_beginning(*todo)
        out: list[Any] = []
        left = set(todo)
        while left:
            for tp, msgs in (await c.getmany(*left, timeout_ms=1000, max_records=10_000)).items():
                out.extend(msgs)
                if msgs and msgs[-1].offset + 1 >= end[tp]:
                    left.discard(tp)
        return out
    finally:
        await c.stop()


async def log_events(bootstrap: str, topics: Any) -> tuple[set[uuid.UUID], Counter[tuple[str, str, str]]]:
    """The ids of the valid events the audit should hold (ticks from the ticks topic, everything on the trading
    and control topics; a live venue's reports are stored from the trading topic), and the ticks per trade."""
    from events import DecodeError, TickReceived, decode

    ids: set[uuid.UUID] = set()
    trades: Counter[tuple[str, str, str]] = Counter()
    for topic in (topics.ticks, topics.trading, topics.control):
        for m in await _read_topic(bootstrap, topic):
            try:
                env = decode(m.value)
            except DecodeError:
                continue
            if topic == topics.ticks and not isinstance(env.event, TickReceived):
                continue
            if isinstance(env.event, TickReceived):
                t = env.event
                if env.event_id not in ids:
                    trades[(t.venue, t.instrument, t.trade_id)] += 1
            ids.add(env.event_id)
    return ids, trades


async def dead_letters(bootstrap: str, topics: Any) -> list[tuple[str, str, int, int, str]]:
    """(consumer, topic, partition, offset, reason) of every entry of the dead-letter topic."""
    out = []
    for m in await _read_topic(bootstrap, topics.deadletter):
        h = {k: bytes(v).decode(errors="replace") for k, v in m.headers}
        out.append(
            (
                h.get("dlq.consumer", ""),
                h.get("dlq.topic", ""),
                int(h.get("dlq.partition", -1)),
                int(h.get("dlq.offset", -1)),
                h.get("dlq.reason", ""),
            )
        )
    return out


async def audit_counts(dsn: str, schema: str) -> dict[str, Any]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        s = f'"{schema}"'
        ids = {r[0] for r in await conn.fetch(f"SELECT event_id FROM {s}.events")}
        rows = await conn.fetchval(f"SELECT count(*) FROM {s}.events")
        double_orders = await conn.fetchval(
            f"SELECT count(*) - count(DISTINCT client_order_id) FROM {s}.order_events WHERE type = 'OrderSubmitted'"
        )
        double_trades = await conn.fetchval(
            f"SELECT count(*) - count(DISTINCT (payload->>'venue', key, payload->>'trade_id')) FROM {s}.events "
            "WHERE type = 'TickReceived'"
        )
        orders = [
            tuple(r)
            for r in await conn.fetch(
                f"SELECT client_order_id, side, quantity, status, filled_quantity, fees FROM {s}.orders ORDER BY 1"
            )
        ]
        fills = await conn.fetchrow(f"SELECT count(*), coalesce(sum(fee), 0) FROM {s}.fills")
        positions = [
            tuple(r)
            for r in await conn.fetch(
                f"SELECT instrument, quantity, avg_price, realized_pnl, fees FROM {s}.positions ORDER BY 1"
            )
        ]
        ticks = await conn.fetchval(f"SELECT count(*) FROM {s}.events WHERE type = 'TickReceived'")
        assert fills is not None
        return {
            "ids": ids,
            "rows": rows,
            "double": int(double_orders) + int(double_trades),
            "orders": orders,
            "fills": (int(fills[0]), Decimal(fills[1])),
            "positions": positions,
            "ticks": int(ticks),
        }
    finally:
        await conn.close()


async def projected_to_end(bootstrap: str, dsn: str, schema: str, topics: Any) -> bool:
    """The audit's stored offsets are at the log's end, on every partition of its topics."""
    import asyncpg

    from adapters.kafka import LogInspector

    async with LogInspector(bootstrap) as inspector:
        tps = await inspector.partitions([topics.ticks, topics.trading, topics.control])
        end = await inspector.end_offsets(tps)
    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except (OSError, asyncpg.PostgresError):
        return False
    try:
        rows = await conn.fetch(
            f"SELECT topic, partition, next_offset FROM \"{schema}\".projection_offsets WHERE projection = 'audit'"
        )
    except asyncpg.PostgresError:
        return False
    finally:
        await conn.close()
    stored = {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
    return all(stored.get((tp.topic, tp.partition), -1) >= end[tp] for tp in tps)


def wait_for(pred: Callable[[], bool], seconds: float, what: str) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if pred():
                return
        except Exception:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"timed out after {seconds:.0f} s waiting for {what}")


def settle_and_check(run: Run, out: Outcome, *, replay: bool = True) -> None:
    """Wait until the audit holds the whole log, then count what is lost and doubled, and compare with a replay."""
    wait_for(
        lambda: asyncio.run(projected_to_end(run.stack.bootstrap, run.stack.dsn, run.schema, run.topics)),
        180,
        "the audit projection to reach the log's end",
    )
    ids, _ = asyncio.run(log_events(run.stack.bootstrap, run.topics))
    audit = asyncio.run(audit_counts(run.stack.dsn, run.schema))
    out.events = len(ids)
    out.lost = len(ids - audit["ids"])
    out.doubled = audit["double"] + (audit["rows"] - len(audit["ids"]))
    extra = len(audit["ids"] - ids)
    if extra:
        out.notes.append(f"{extra} audit events not in the log")
        out.doubled += extra
    if replay:
        fresh = f"{run.schema}_r"
        r = run.cli("replay", "--schema", fresh, "--replace")
        if r.returncode != 0:
            out.replay_equal = False
            out.notes.append(f"replay failed: {r.stderr.strip()[-300:]}")
            return
        d = run.cli("diff", run.schema, fresh)
        out.replay_equal = d.returncode == 0
        if d.returncode != 0:
            out.notes.append(" ".join(line for line in d.stdout.splitlines() if "DIFFERENT" in line)[:300])


def _stop_all(run: Run, out: Outcome) -> None:
    """Every process still running stops cleanly (SIGINT, drain); one that had died is a failure."""
    for p in run.procs:
        if not p.killed and not p.alive():
            out.all_alive = False
            out.notes.append(f"{p.args[0]} died: {p.tail(5)[-300:]}")
        if "Traceback" in p.log.read_text(errors="replace"):
            out.notes.append(f"a traceback in {p.log.name}")
            out.all_alive = False


# -- scenarios -------------------------------------------------------------------------------------------


def scenario_servers(stack: PrivateStack, logs: Path, kind: str, kills: int, rng: random.Random) -> Outcome:
    """A synthetic run with an engine and two projection workers; ``kind`` is what is killed and restarted:
    ``engine``, ``workers``, ``postgres`` or ``kafka``."""
    t0 = time.monotonic()
    out = Outcome(kind)
    run = Run(stack, kind[:4], logs)
    engine = run.start("run", "--no-projections", "--rate", "200")
    workers = [run.start("project"), run.start("project")]
    try:
        wait_for(lambda: asyncio.run(audit_has_rows(stack.dsn, run.schema)), 60, "the first projected events")
        for _ in range(kills):
            time.sleep(rng.uniform(1.0, 3.0))
            if kind == "engine":
                engine.kill9()
                time.sleep(rng.uniform(0.2, 1.5))
                engine = run.start("run", "--no-projections", "--rate", "200")
            elif kind == "workers":
                victim = rng.choice([w for w in workers if w.alive()])
                victim.kill9()
                workers.remove(victim)
                time.sleep(rng.uniform(0.2, 1.5))
                workers.append(run.start("project"))
            elif kind == "postgres":
                stack.kill_postgres()
                time.sleep(rng.uniform(0.5, 3.0))
                stack.restart()
            elif kind == "kafka":
                stack.kill_kafka()
                time.sleep(rng.uniform(0.5, 3.0))
                stack.restart()
            out.faults += 1
        time.sleep(3)
        _stop_all(run, out)
        code = engine.interrupt()
        if code != 0:
            out.notes.append(f"engine exit {code}: {engine.tail(3)[-300:]}")
        settle_and_check(run, out)
    finally:
        for w in workers:
            w.interrupt()
        for p in run.procs:
            p.kill9()
    out.seconds = time.monotonic() - t0
    return out


async def audit_has_rows(dsn: str, schema: str) -> bool:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return bool(await conn.fetchval(f'SELECT count(*) > 0 FROM "{schema}".events'))
    finally:
        await conn.close()


def scenario_recorded(
    stack: PrivateStack, logs: Path, kills: int, rng: random.Random, *, speed: float = 8000.0
) -> Outcome:
    """The recorded file run cleanly once; then, under another prefix, killed ``kills`` times and restarted, then
    run to its end: both audits must hold every trade once, and the same orders, fills, fees and positions."""
    t0 = time.monotonic()
    out = Outcome("recorded")
    clean = Run(stack, "clean", logs, XRP_ETH)
    r = clean.cli("run", "--file", str(TRADES), "--symbol", "XRP/ETH", timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"the clean run failed: {r.stderr[-800:]}")
    run = Run(stack, "rec", logs, XRP_ETH)
    args = ("run", "--file", str(TRADES), "--symbol", "XRP/ETH", "--speed", str(speed))
    for _ in range(kills):
        p = run.start(*args)
        time.sleep(rng.uniform(2.5, 5.0))
        if not p.alive():
            out.notes.append(f"a run ended before its kill: exit {p.p.returncode}")
        p.kill9()
        out.faults += 1
    last = run.start(*args)
    code = last.wait(600)
    if code != 0:
        out.all_alive = False
        out.notes.append(f"the last run exited {code}: {last.tail(5)[-400:]}")
    settle_and_check(run, out, replay=True)
    a = asyncio.run(audit_counts(stack.dsn, clean.schema))
    b = asyncio.run(audit_counts(stack.dsn, run.schema))
    if b["ticks"] != TRADES_COUNT:
        out.notes.append(f"{b['ticks']} ticks in the audit for {TRADES_COUNT} trades")
        out.lost += max(TRADES_COUNT - b["ticks"], 0)
        out.doubled += max(b["ticks"] - TRADES_COUNT, 0)
    for what in ("orders", "fills", "positions"):
        if a[what] != b[what]:
            out.notes.append(f"{what} differ from the clean run")
            out.doubled += 1
    out.notes.append(
        f"{len(b['orders'])} orders, {b['fills'][0]} fills, fees {b['fills'][1]} as the clean run"
        if a["orders"] == b["orders"] and a["fills"] == b["fills"]
        else ""
    )
    out.notes = [n for n in out.notes if n]
    out.seconds = time.monotonic() - t0
    return out


def bad_records(instrument: str, good: bytes) -> list[tuple[str, bytes | None]]:
    """(what it is, the record value) of every kind of bad record; ``good`` is a valid tick of the log, copied with
    other content under its own id (a conflicting duplicate)."""
    obj = json.loads(good)

    def tick(**data: Any) -> bytes:
        d = {**obj["data"], **data}
        return json.dumps({**obj, "id": str(uuid.uuid4()), "data": d}).encode()

    def env(**fields: Any) -> bytes:
        return json.dumps({**obj, "id": str(uuid.uuid4()), **fields}).encode()

    return [
        ("negative quantity", tick(quantity="-500")),
        ("zero price", tick(price="0")),
        ("huge price", tick(price="1E+400")),
        ("NaN price", tick(price="NaN")),
        ("Infinity price", tick(price="Infinity")),
        ("text price", tick(price="abc")),
        ("float price", tick(price=0.0014)),
        ("before 1970", env(ts_event=-1_000_000_000)),
        ("wrong key", env(key="ETH/USDT" if instrument != "ETH/USDT" else "BTC/USDT")),
        ("random bytes", os.urandom(64)),
        ("900 KB payload", tick(trade_id="x" * 900_000)),
        ("empty value", b""),
        ("tombstone", None),
        ("unknown type", env(type="NoSuchEvent")),
        ("future version", env(v=99)),
        ("conflicting duplicate", json.dumps({**obj, "data": {**obj["data"], "price": "7"}}).encode()),
    ]


async def _plant(
    bootstrap: str, topics: Any, instrument: str, records: list[tuple[str, bytes | None]]
) -> list[tuple[str, str, int, int]]:
    """Write the records raw to the ticks, trading and control topics; (what, topic, partition, offset) of each."""
    from aiokafka import AIOKafkaProducer

    from adapters.kafka_security import client_args

    p = AIOKafkaProducer(**client_args(bootstrap), max_request_size=2 * 1024 * 1024)
    await p.start()
    planted = []
    try:
        for topic in (topics.ticks, topics.trading, topics.control):
            for what, value in records:
                if what == "conflicting duplicate" and topic != topics.ticks:
                    continue  # the copy of a tick: on the ticks topic only
                md = await p.send_and_wait(topic, value=value, key=instrument.encode())
                planted.append((what, topic, md.partition, md.offset))
    finally:
        await p.stop()
    return planted


def scenario_poison(stack: PrivateStack, logs: Path, rounds: int = 1) -> Outcome:
    """Every kind of bad record on every topic while an engine and a worker run, ``rounds`` times; after each round
    the engine and the worker are killed and restarted (the engine recovers through the bad records, the metrics
    projection folds the log again from its start): each bad record is parked once per consumer group, every
    process stays up, and the next good tick is traded."""
    t0 = time.monotonic()
    out = Outcome("poison")
    run = Run(stack, "pois", logs)
    engine = run.start("run", "--no-projections", "--rate", "100")
    worker = run.start("project")
    expected: set[tuple[str, str, int, int]] = set()
    try:
        wait_for(lambda: asyncio.run(audit_has_rows(stack.dsn, run.schema)), 60, "the first projected events")
        for _ in range(rounds):
            ticks = asyncio.run(_read_topic(stack.bootstrap, run.topics.ticks))
            good = ticks[-1]
            instrument = good.key.decode()
            planted = asyncio.run(_plant(stack.bootstrap, run.topics, instrument, bad_records(instrument, good.value)))
            out.faults += len(planted)
            # who must park what: every group reading the topic; a conflicting duplicate only the audit (the engine
            # and the metrics take the first record of an id and skip the others as repeats)
            for what, topic, part, off in planted:
                groups = ["projection:audit", "projection:metrics"]
                if topic == run.topics.ticks:
                    groups.append(f"{run.prefix}.engine")
                if what == "conflicting duplicate":
                    groups = ["projection:audit"]
                expected.update((g, topic, part, off) for g in groups)
            last = max(off for _, topic, _, off in planted if topic == run.topics.ticks)
            part = next(p for _, topic, p, _ in planted if topic == run.topics.ticks)
            wait_for(
                functools.partial(_traded_after_sync, stack, run, part, last),
                90,
                "the engine and the audit past the planted records, on a good tick",
            )
            _stop_all(run, out)
            engine.kill9()  # its recovery runs through the bad records: it must neither stop nor park them again
            worker.kill9()  # the metrics fold the log again from its start: the same
            engine = run.start("run", "--no-projections", "--rate", "100")
            worker = run.start("project")
        time.sleep(8)
        _stop_all(run, out)
        engine.interrupt()
        settle_and_check(run, out)
        out.expected_dead_letters = len(expected)
        got = asyncio.run(dead_letters(stack.bootstrap, run.topics))
        keys = Counter((c, t, p, o) for c, t, p, o, _ in got)
        out.dead_lettered = sum(keys.values())
        missing = expected - set(keys)
        twice = [k for k, n in keys.items() if n > 1]
        stray = set(keys) - expected
        if missing:
            out.notes.append(f"not parked: {sorted(missing)[:3]}")
        if twice:
            out.notes.append(f"parked twice: {twice[:3]}")
        if stray:
            out.notes.append(f"parked, not planted: {sorted(stray)[:3]}")
            out.dead_lettered += 1_000_000  # never ok
    finally:
        worker.interrupt()
        for p in run.procs:
            p.kill9()
    out.seconds = time.monotonic() - t0
    return out


def _traded_after_sync(stack: PrivateStack, run: Run, partition: int, offset: int) -> bool:
    return asyncio.run(_traded_after(stack.bootstrap, stack.dsn, run, partition, offset))


async def _traded_after(bootstrap: str, dsn: str, run: Run, partition: int, offset: int) -> bool:
    """The engine's group committed past ``offset`` of the ticks partition (it took the next records), and the
    audit holds a tick of that partition after it."""
    import asyncpg
    from aiokafka import TopicPartition

    from adapters.kafka import make_consumer

    c = make_consumer(bootstrap, group_id=f"{run.prefix}.engine", client_id="faults-check")
    await c.start()
    try:
        committed = await c.committed(TopicPartition(run.topics.ticks, partition))
    finally:
        await c.stop()
    if committed is None or committed <= offset + 1:
        return False
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return bool(
            await conn.fetchval(
                f'SELECT count(*) > 0 FROM "{run.schema}".events WHERE topic = $1 AND partition = $2 AND "offset" > $3 '
                "AND type = 'TickReceived'",
                run.topics.ticks,
                partition,
                offset,
            )
        )
    finally:
        await conn.close()


@contextlib.contextmanager
def private_stack(state_dir: Path) -> Iterator[PrivateStack]:
    stack = PrivateStack(state_dir)
    stack.up()
    try:
        yield stack
    finally:
        stack.down()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=10, help="faults of each kind per scenario (default 10)")
    ap.add_argument("--only", nargs="+", choices=SCENARIOS, help="these scenarios (default: all)")
    ap.add_argument("--seed", type=int, default=None, help="random seed of the fault times (default: random)")
    ap.add_argument("--state-dir", type=Path, default=REPO / ".state" / "faults")
    args = ap.parse_args(argv)
    if args.kills < 1:
        ap.error("--kills must be at least 1")
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    logs = args.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    print(f"fault suite: seed {seed}, {args.kills} faults of each kind, logs in {logs}", flush=True)
    outcomes = []
    with private_stack(args.state_dir) as stack:
        for name in args.only or SCENARIOS:
            if name == "poison":
                o = scenario_poison(stack, logs, args.kills)
            elif name == "recorded":
                o = scenario_recorded(stack, logs, args.kills, rng)
            else:
                o = scenario_servers(stack, logs, name, args.kills, rng)
            outcomes.append(o)
            print(o.line(), flush=True)
    failed = [o.scenario for o in outcomes if not o.ok]
    print(f"{len(outcomes) - len(failed)} passed, {len(failed)} failed" + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
