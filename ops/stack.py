"""The local stack, without Docker: ``python -m engine stack up | down | status``.

- Kafka: a single-node KRaft broker (combined broker + controller) from Maven Central jars, cached once in
  ``~/.cache/trading-engine/kafka-<version>/lib``; data, log and pid under ``<state>/kafka``. With ``--brokers N``
  (``stack.kafka_brokers``) instead a cluster of N nodes, each broker and controller (the quorum on all of them),
  on ports from ``stack.kafka_cluster_port``, each under ``<state>/kafka-cluster/node-<i>``.
- PostgreSQL: Debian's server (installed when missing), its own data directory under ``<state>/postgres``,
  listening on 127.0.0.1 only, with the roles ``engine`` (owner), ``engine_writer``, ``engine_reader`` and
  ``engine_maintenance``, each with a generated password (``<state>/pgpass``, mode 0600; see ops/_postgres.py).

``up`` is idempotent and waits until both answer (a Kafka metadata round trip, a PostgreSQL connection), with a
deadline; a failure names the log file to read. ``down`` stops what ``up`` started, and nothing else. A service
whose configured address is not local is reported as external and left alone. ``--with-prometheus`` also
starts Debian's Prometheus (scraping the engine, with the alert rules) and Alertmanager on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from engine.config import STACK_PASSFILE, Settings
from ops import _kafka, _monitoring, _postgres
from ops._proc import port_open, tail

LOCAL = {"127.0.0.1", "localhost", "::1"}


class StackError(Exception):
    """A service could not be started or stopped; the message names the log file to read."""

    retriable = False


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str  # running | stopped | external
    endpoint: str
    pid: int | None
    log_file: Path | None
    detail: str = ""


def _kafka_addr(settings: Settings) -> tuple[str, int]:
    first = settings.kafka.bootstrap.split(",")[0]
    host, _, port = first.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def _pg_addr(settings: Settings) -> tuple[str, int]:
    parts = urlsplit(settings.postgres.dsn)
    return parts.hostname or "127.0.0.1", parts.port or 5432


def _dirs(settings: Settings) -> tuple[Path, Path]:
    base = settings.stack.state_dir
    return base / "kafka", base / "postgres"


def _fail(what: str, log: Path) -> StackError:
    return StackError(f"{what}; read {log}:\n{tail(log)}")


def _kafka_status(settings: Settings) -> ServiceStatus:
    host, port = _kafka_addr(settings)
    state, _ = _dirs(settings)
    endpoint = f"{host}:{port}"
    if host not in LOCAL:
        return ServiceStatus("kafka", "external", endpoint, None, None, "not managed by the local stack")
    pid = _kafka.running_pid(state)
    log = state / "server.log"
    if pid is None:
        detail = "but something else listens on that port" if port_open(host, port) else ""
        return ServiceStatus("kafka", "stopped", endpoint, None, log, detail)
    return ServiceStatus("kafka", "running", endpoint, pid, log, f"Kafka {settings.stack.kafka_version}, KRaft")


def _pg_status(settings: Settings) -> ServiceStatus:
    host, port = _pg_addr(settings)
    _, state = _dirs(settings)
    endpoint = f"{host}:{port}"
    if host not in LOCAL:
        return ServiceStatus("postgres", "external", endpoint, None, None, "not managed by the local stack")
    log = state / "postgres.log"
    try:
        bins = _postgres.bin_dir(install=False)
    except _postgres.PostgresError:
        return ServiceStatus("postgres", "stopped", endpoint, None, log, "PostgreSQL is not installed")
    if not _postgres.running(bins, state):
        return ServiceStatus("postgres", "stopped", endpoint, None, log)
    return ServiceStatus("postgres", "running", endpoint, _postgres.pid(state), log, f"PostgreSQL {bins.parent.name}")


def _monitoring_status(settings: Settings) -> list[ServiceStatus]:
    base = settings.stack.state_dir
    out = []
    for name, port in (
        ("prometheus", settings.stack.prometheus_port),
        ("alertmanager", settings.stack.alertmanager_port),
    ):
        pid = _monitoring.running(base, name)
        if pid is not None:
            out.append(
                ServiceStatus(
                    name,
                    "running",
                    f"127.0.0.1:{port}",
                    pid,
                    base / name / f"{name}.log",
                    f"scrapes the engine at {settings.http.host}:{settings.http.port}"
                    if name == "prometheus"
                    else "alerts from the local Prometheus",
                )
            )
    return out


def _cluster_dir(settings: Settings) -> Path:
    return settings.stack.state_dir / "kafka-cluster"


def _cluster_status(settings: Settings) -> list[ServiceStatus]:
    """The nodes of the local cluster, if one was made (``up --brokers N``)."""
    state = _cluster_dir(settings)
    ports = _kafka.cluster_ports(state)
    out = []
    for node, (port, controller) in enumerate(ports, 1):
        d = _kafka.node_dir(state, node)
        pid = _kafka.running_pid(d)
        out.append(
            ServiceStatus(
                f"kafka-{node}",
                "running" if pid else "stopped",
                f"127.0.0.1:{port}",
                pid,
                d / "server.log",
                f"KRaft broker + controller (:{controller}), node {node} of {len(ports)}",
            )
        )
    return out


def cluster_bootstrap(settings: Settings) -> str | None:
    """kafka.bootstrap for the engine on the local cluster, if one was made."""
    ports = _kafka.cluster_ports(_cluster_dir(settings))
    return _kafka.cluster_bootstrap(ports) if ports else None


def status(settings: Settings) -> list[ServiceStatus]:
    kafka = [_kafka_status(settings)] if settings.stack.kafka_brokers == 1 else []
    return [*kafka, *_cluster_status(settings), _pg_status(settings), *_monitoring_status(settings)]


def _up_cluster(settings: Settings, deadline: float) -> None:
    st = settings.stack
    state = _cluster_dir(settings)
    state.mkdir(parents=True, exist_ok=True)
    out = state / "kafka.out"
    try:
        lib = _kafka.ensure_jars(st.kafka_version, out)
        ports = _kafka.node_ports(st.kafka_cluster_port, st.kafka_brokers)
        _kafka.cluster_up(lib, state, ports, st.kafka_cluster_heap, max(deadline - time.monotonic(), 1))
    except _kafka.KafkaError as exc:
        raise StackError(f"Kafka cluster: {exc}") from None


def _up_postgres(settings: Settings, deadline: float) -> None:
    host, port = _pg_addr(settings)
    if host not in LOCAL:
        return
    _, state = _dirs(settings)
    state.mkdir(parents=True, exist_ok=True)
    log = state / "postgres.log"
    try:
        bins = _postgres.bin_dir(install=True)
        _postgres.init(bins, state, port, log)
        if not _postgres.running(bins, state):
            if port_open(host, port):
                raise StackError(f"port {port} on {host} is taken by another program: set postgres.dsn to another port")
            _postgres.start(bins, state, log)
        if not _postgres.wait_ready(host, port, max(deadline - time.monotonic(), 1)):
            raise _fail("PostgreSQL did not answer in time", log)
        _postgres.create_roles(bins, state, port, log)
        base = settings.stack.state_dir
        _postgres.lock(bins, state, port, log, base / STACK_PASSFILE, base / _postgres.MAINTENANCE_PASSFILE)
    except _postgres.PostgresError as exc:
        raise _fail(f"PostgreSQL: {exc}", log) from None


def _up_kafka(settings: Settings, deadline: float) -> None:
    host, port = _kafka_addr(settings)
    if host not in LOCAL:
        return
    state, _ = _dirs(settings)
    state.mkdir(parents=True, exist_ok=True)
    out = state / "kafka.out"
    try:
        lib = _kafka.ensure_jars(settings.stack.kafka_version, out)
        pid = _kafka.running_pid(state)
        if pid is None:
            if port_open(host, port):
                raise StackError(
                    f"port {port} on {host} is taken by another program: set kafka.bootstrap to another port"
                )
            conf = _kafka.render(state, port, settings.stack.kafka_controller_port)
            _kafka.format_storage(lib, conf, state, out)
            pid = _kafka.start(lib, conf, state, settings.stack.kafka_heap)
        if not _kafka.wait_ready(host, port, pid, max(deadline - time.monotonic(), 1)):
            raise _fail(
                "Kafka did not answer in time" if _kafka.running_pid(state) else "Kafka exited",
                state / "server.log" if (state / "server.log").exists() else out,
            )
    except _kafka.KafkaError as exc:
        raise _fail(f"Kafka: {exc}", out) from None


def up(settings: Settings, timeout: float = 240.0, *, with_prometheus: bool = False) -> list[ServiceStatus]:
    deadline = time.monotonic() + timeout
    _up_postgres(settings, deadline)
    if settings.stack.kafka_brokers > 1:
        _up_cluster(settings, deadline)
    else:
        _up_kafka(settings, deadline)
    if with_prometheus:
        host = "127.0.0.1" if settings.http.host in ("0.0.0.0", "") else settings.http.host  # noqa: S104
        try:
            _monitoring.start(
                settings.stack.state_dir,
                f"{host}:{settings.http.port}",
                settings.stack.prometheus_port,
                settings.stack.alertmanager_port,
                max(deadline - time.monotonic(), 5),
            )
        except _monitoring.MonitoringError as exc:
            raise StackError(str(exc)) from None
    return status(settings)


def down(settings: Settings) -> list[ServiceStatus]:
    kstate, pstate = _dirs(settings)
    _monitoring.stop(settings.stack.state_dir)
    if _kafka_addr(settings)[0] in LOCAL:
        _kafka.stop(kstate)
    _kafka.cluster_stop(_cluster_dir(settings))
    if _pg_addr(settings)[0] in LOCAL:
        with contextlib.suppress(_postgres.PostgresError):  # not installed: nothing runs
            _postgres.stop(_postgres.bin_dir(install=False), pstate, pstate / "postgres.log")
    return status(settings)
