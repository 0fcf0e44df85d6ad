"""Alertmanager's notifications recorded once as AlertNotified events (adapters/alerts.py), on the real servers.

On a Kafka broker and a PostgreSQL server of their own (they stop Kafka; as tests/e2e/test_faults.py, the stack is
made under the stack's state directory, or ``TESTS_PRIVATE_STACK_DIR`` names a private stack's directory to use
and leave running): the webhook of running processes, POSTed to as Alertmanager does; then the issue's "done
when": Debian's Prometheus and Alertmanager, with the shipped rules and the shipped receiver, watching an engine
while Kafka is stopped under it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import TopicPartition

from adapters.kafka import make_consumer
from benchmarks.faults import PrivateStack, Proc, Run
from engine.config import load
from events import AlertNotified, Envelope, decode
from tests.support import REPO

pytestmark = pytest.mark.servers

DATA = REPO / "tests" / "data"
FIRING = (DATA / "alertmanager-0.25-webhook-firing.json").read_bytes()
RESOLVED = (DATA / "alertmanager-0.25-webhook-resolved.json").read_bytes()
OPS = REPO / "ops"


@pytest.fixture(scope="module")
def stack() -> Iterator[PrivateStack]:
    given = os.environ.get("TESTS_PRIVATE_STACK_DIR")
    state = Path(given) if given else load().stack.state_dir / f"alerts-tests-{uuid.uuid4().hex[:8]}"
    s = PrivateStack(state)
    s.up()
    try:
        yield s
    finally:
        if given:
            s.restart()  # as it was found: running
        else:
            s.down()
            shutil.rmtree(state, ignore_errors=True)


def _until(pred: Callable[[], Any], seconds: float, what: str, poll: float = 0.2) -> Any:
    """``pred()``'s first truthy value; fails after ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"not within {seconds} s: {what}")


def _port_of(proc: Proc, deadline: float = 60) -> int:
    def port() -> int | None:
        for line in proc.log.read_text(errors="replace").splitlines():
            if '"http.listening"' in line:
                return int(json.loads(line)["url"].rsplit(":", 1)[1].split("/")[0])
        assert proc.alive(), proc.tail()
        return None

    found: int = _until(port, deadline, "the http.listening line")
    return found


def post(port: int, body: bytes, *, chunked: bool = False) -> tuple[int, dict[str, Any]]:
    """POST to the webhook as Alertmanager does; the status and the answer (one line of JSON, always)."""
    headers = {"Content-Type": "application/json", "User-Agent": "Alertmanager/0.25.0"}
    data: Any = iter([body[i : i + 8192] for i in range(0, len(body), 8192)]) if chunked else body
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
    req = urllib.request.Request(f"http://127.0.0.1:{port}/alerts/webhook", data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    text = raw.decode()
    assert "\n" not in text.strip() and "Traceback" not in text, text
    return status, json.loads(text)


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


async def _read_all(bootstrap: str, topic: str) -> list[Envelope]:
    c = make_consumer(bootstrap, group_id=None, client_id="test-alerts")
    await c.start()
    try:
        if c.partitions_for_topic(topic) is None:
            await c._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
        assert tps, f"no topic {topic}"
        end = await c.end_offsets(tps)
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        out: list[Envelope] = []
        while [tp for tp in tps if await c.position(tp) < end[tp]]:
            for msgs in (await c.getmany(timeout_ms=500)).values():
                out.extend(decode(m.value) for m in msgs if m.value is not None)
        return out
    finally:
        await c.stop()


def recorded(stack: PrivateStack, run: Run) -> list[AlertNotified]:
    """Every AlertNotified in the run's control topic, in log order."""
    envs = asyncio.run(_read_all(stack.bootstrap, f"{run.prefix}.engine.control"))
    return [e.event for e in envs if isinstance(e.event, AlertNotified)]


def _with(raw: bytes, **changes: Any) -> bytes:
    doc = json.loads(raw)
    for k, v in changes.items():
        if k == "startsAt":
            doc["alerts"][0][k] = v
        else:
            doc[k] = v
    return json.dumps(doc).encode()


def test_a_notification_is_recorded_once_across_resends_restarts_processes_and_a_kafka_outage(
    stack: PrivateStack, tmp_path: Path
) -> None:
    run = Run(stack, "alerts", tmp_path)
    worker = run.start("project", "--only", "audit")
    other: Proc | None = None
    try:
        port = _port_of(worker)
        assert post(port, FIRING)[0] == 200
        assert [e.status for e in recorded(stack, run)] == ["firing"]
        status, answer = post(port, FIRING)  # a resend (repeat_interval, a lost answer)
        assert (status, answer["duplicate"]) == (200, True)
        assert len(recorded(stack, run)) == 1

        # bad bodies: 400 with the reason in one line; too big: 413; nothing written
        for body, reason in (
            (b"\xff\x00garbage", "not JSON"),
            (b"[1, 2]", "expected a JSON object"),
            (_with(FIRING, version="3"), "version: expected '4'"),
            (_with(FIRING, status=7), "status: expected 'firing' or 'resolved'"),
        ):
            status, answer = post(port, body)
            assert status == 400 and answer["error"].startswith(reason), (status, answer)
        for chunked in (False, True):  # with a Content-Length, and without one
            status, answer = post(port, b" " * (200 * 1024), chunked=chunked)
            assert status == 413 and "max_alerts" in answer["error"], answer
        assert len(recorded(stack, run)) == 1

        # a restart: the new process reads what the log holds, a resend is still known
        assert worker.interrupt() == 0
        worker = run.start("project", "--only", "audit")
        port = _port_of(worker)
        status, answer = post(port, FIRING)
        assert (status, answer["duplicate"], answer["recorded"]) == (200, True, True), answer
        assert len(recorded(stack, run)) == 1
        shown = get(f"http://127.0.0.1:{port}/alerts.json")["notifications"]
        assert [(n["status"], n["recorded"], n["alertnames"]) for n in shown] == [
            ("firing", True, ["KafkaConnectionLost"])
        ]

        # two processes: the resolved notification written by one, resent to the other, is written once
        other = run.start("project", "--only", "metrics")
        other_port = _port_of(other)
        assert post(port, RESOLVED)[0] == 200
        status, answer = post(other_port, RESOLVED)
        assert (status, answer["duplicate"]) == (200, True), answer
        assert [e.status for e in recorded(stack, run)] == ["firing", "resolved"]

        # Kafka stopped: answered 202 (kept), written once when Kafka is back, a resend meanwhile changes nothing
        again = _with(FIRING, startsAt="2026-12-03T07:00:00Z")  # the alert fired again: a new notification
        stack.kill_kafka()
        t0 = time.monotonic()
        status, answer = post(port, again)
        assert (status, answer["recorded"]) == (202, False) and time.monotonic() - t0 < 15, answer
        assert post(port, again)[1]["duplicate"] is True
        shown = get(f"http://127.0.0.1:{port}/alerts.json")["notifications"]
        assert (shown[0]["recorded"], shown[0]["dedupe_key"]) == (False, answer["dedupe_key"])
        stack.restart()
        _until(lambda: len(recorded(stack, run)) == 3, 90, "the kept notification written")
        _until(
            lambda: get(f"http://127.0.0.1:{port}/alerts.json")["notifications"][0]["recorded"], 30, "shown recorded"
        )
        assert post(port, again)[1]["duplicate"] is True
        assert post(other_port, again)[1]["duplicate"] is True
        assert [e.status for e in recorded(stack, run)] == ["firing", "resolved", "firing"]
        assert len({e.dedupe_key for e in recorded(stack, run)}) == 3

        # the audit projection records each one in system_events
        async def rows() -> list[Any]:
            import asyncpg

            conn = await asyncpg.connect(stack.dsn)
            try:
                q = f"SELECT detail->>'status' FROM {run.schema}.system_events WHERE type = 'AlertNotified'"
                return list(await conn.fetch(q + " ORDER BY ts_event"))
            finally:
                await conn.close()

        _until(lambda: len(asyncio.run(rows())) == 3, 60, "three AlertNotified rows in system_events")
        assert [r[0] for r in asyncio.run(rows())] == ["firing", "resolved", "firing"]
        assert worker.alive() and other.alive()
    finally:
        worker.interrupt()
        if other is not None:
            other.interrupt()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _monitoring_configs(tmp: Path, engine_port: int, am_port: int) -> tuple[Path, Path, float]:
    """Prometheus with the shipped rules unchanged (scraping and evaluating every second), Alertmanager with the
    shipped receiver (its port: the engine's) and short group timings; and KafkaConnectionLost's ``for``."""
    shutil.copy(OPS / "prometheus" / "alerts.yml", tmp / "alerts.yml")
    rules = yaml.safe_load((tmp / "alerts.yml").read_text())
    (lost,) = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "KafkaConnectionLost"]
    hold = float(lost["for"].rstrip("s"))
    prom = tmp / "prometheus.yml"
    prom.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": ["alerts.yml"],
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
                "scrape_configs": [
                    {"job_name": "engine", "static_configs": [{"targets": [f"127.0.0.1:{engine_port}"]}]}
                ],
            }
        )
    )
    am = yaml.safe_load((OPS / "alertmanager" / "alertmanager.yml").read_text())
    am["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    (receiver,) = [r for r in am["receivers"] if r["name"] == am["route"]["receiver"]]
    (hook,) = receiver["webhook_configs"]
    assert hook["url"] == "http://127.0.0.1:8000/alerts/webhook"
    hook["url"] = f"http://127.0.0.1:{engine_port}/alerts/webhook"
    (tmp / "alertmanager.yml").write_text(yaml.safe_dump(am))
    return prom, tmp / "alertmanager.yml", hold


def _daemon(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which(args[0])
    if binary is None:
        pytest.fail(f"{args[0]} is not installed: apt-get install prometheus prometheus-alertmanager", pytrace=False)
    return subprocess.Popen(
        [binary, *args[1:]], stdout=log.open("ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )


def test_kafka_stopped_under_the_engine_fires_and_resolves_exactly_kafka_connection_lost_through_alertmanager(
    stack: PrivateStack, tmp_path: Path
) -> None:
    t_start = time.time()
    run = Run(stack, "amalerts", tmp_path)
    engine = run.start("run", "--rate", "20")
    daemons: list[subprocess.Popen[bytes]] = []
    try:
        port = _port_of(engine)
        prom_port, am_port = _free_port(), _free_port()
        prom_conf, am_conf, hold = _monitoring_configs(tmp_path, port, am_port)
        daemons.append(
            _daemon(
                [
                    "prometheus-alertmanager",
                    f"--config.file={am_conf}",
                    f"--storage.path={tmp_path / 'am-data'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                ],
                tmp_path / "alertmanager.log",
            )
        )
        daemons.append(
            _daemon(
                [
                    "prometheus",
                    f"--config.file={prom_conf}",
                    f"--storage.tsdb.path={tmp_path / 'prom-data'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                tmp_path / "prometheus.log",
            )
        )
        api = f"http://127.0.0.1:{prom_port}/api/v1"

        def query(q: str, at: float | None = None) -> list[dict[str, Any]]:
            url = f"{api}/query?query={urllib.parse.quote(q)}" + (f"&time={at}" if at is not None else "")
            try:
                result: list[dict[str, Any]] = get(url)["data"]["result"]
            except OSError:
                return []
            return result

        def alerts_shown() -> list[dict[str, Any]]:
            shown: list[dict[str, Any]] = get(f"http://127.0.0.1:{port}/alerts.json")["notifications"]
            return shown

        _until(lambda: query("engine_kafka_up == 1"), 60, "Prometheus to scrape engine_kafka_up 1")
        _until(lambda: get(f"{api}/alertmanagers")["data"]["activeAlertmanagers"], 30, "Alertmanager known")
        healthy_from = time.time()
        # healthy for longer than KafkaConnectionLost's `for`: the gauges used to read 0 on a healthy system
        time.sleep(hold + 5)  # nothing to wait for: the healthy period is the observation
        assert engine.alive(), engine.tail()
        stack.kill_kafka()
        t_kill = time.time()
        healthy = query(f"count by (alertname, alertstate) (count_over_time(ALERTS[{int(t_kill - healthy_from)}s]))")
        assert healthy == [], f"alerts on a healthy system: {healthy}"

        firing = _until(
            lambda: [n for n in alerts_shown() if n["status"] == "firing"], hold + 60, "the firing notification"
        )
        t_fired = time.time()
        assert firing[0]["alertnames"] == ["KafkaConnectionLost"]
        assert firing[0]["recorded"] is False  # Kafka is down: kept, answered 202
        stack.restart()
        t_back = time.time()

        def resolved() -> bool:
            shown = alerts_shown()
            return any(n["status"] == "resolved" for n in shown) and all(n["recorded"] for n in shown)

        _until(resolved, 90, "the resolved notification, and both in the log")
        t_resolved = time.time()
        events = recorded(stack, run)
        assert [(e.status, json.loads(e.alertnames)) for e in events] == [
            ("firing", ["KafkaConnectionLost"]),
            ("resolved", ["KafkaConnectionLost"]),
        ], events
        note = json.loads(events[0].notification)
        assert note["commonLabels"]["instance"] == f"127.0.0.1:{port}" and note["receiver"] == "engine"

        # over the whole run, no other rule was even pending: only KafkaConnectionLost, pending then firing
        window = int(time.time() - healthy_from) + 2
        seen = query(f"count by (alertname, alertstate) (count_over_time(ALERTS[{window}s]))")
        assert sorted((s["metric"]["alertname"], s["metric"]["alertstate"]) for s in seen) == [
            ("KafkaConnectionLost", "firing"),
            ("KafkaConnectionLost", "pending"),
        ], seen
        assert query('ALERTS{alertstate="firing"}') == []
        assert engine.alive(), engine.tail()
        print(
            f"\nkill -> notified {t_fired - t_kill:.0f} s (for: {hold:.0f} s), Kafka back in {t_back - t_fired:.0f} s, "
            f"resolved recorded {t_resolved - t_back:.0f} s after; {time.time() - t_start:.0f} s in all"
        )
    finally:
        for d in daemons:
            d.terminate()
        for d in daemons:
            try:
                d.wait(30)
            except subprocess.TimeoutExpired:
                d.kill()
                d.wait()
        assert engine.interrupt() == 0, engine.tail()
