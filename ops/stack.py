"""The local stack, without Docker: ``python -m engine stack up | down | status``.

- Kafka: a single-node KRaft broker (combined broker + controller) from Maven Central jars, cached once in
  ``~/.cache/trading-engine/kafka-<version>/lib``; data, log and pid under ``<state>/kafka``. With ``--brokers N``
  (``stack.kafka_brokers``) instead a cluster of N nodes, each broker and controller (the quorum on all of them),
  on ports from ``stack.kafka_cluster_port``, each under ``<state>/kafka-cluster/node-<i>``.
- PostgreSQL: Debian's server (installed when missing), its own data directory under ``<state>/postgres``,
  listening on 127.0.0.1 only, with the roles ``engine`` (owner), ``engine_writer``, ``engine_reader`` and
  ``engine_maintenance``, each with a generated password (``<state>/pgpass``, mode 0600; see ops/_postgres.py).

``up --secure`` makes the stack secure (see ops/_tls.py): Kafka with a SASL_SSL listener (SCRAM-SHA-512 user
``engine``) and no plaintext one, PostgreSQL with ``ssl = on`` and only ``hostssl`` over TCP, on certificates of a CA
made under ``<state>/tls``; it writes ``<state>/secure.toml``, the client settings every command with this
``stack.state_dir`` reads. ``up --plain`` makes it plaintext again (certificates and passwords kept); plain ``up``
keeps whichever it is. Switching restarts the broker (its data kept) and reloads PostgreSQL.

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

from adapters.kafka_security import PLAINTEXT, KafkaSecurity
from engine.config import STACK_CLIENT_FILE, STACK_PASSFILE, Settings
from ops import _kafka, _monitoring, _postgres, _tls
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
    mode = "secure: SASL_SSL, SCRAM-SHA-512" if _kafka.rendered_secure(state) else "plaintext"
    return ServiceStatus("kafka", "running", endpoint, pid, log, f"Kafka {settings.stack.kafka_version}, KRaft, {mode}")


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
    mode = "secure: TLS only over TCP" if _postgres.ssl_on(bins, state, port) else "plaintext"
    return ServiceStatus(
        "postgres", "running", endpoint, _postgres.pid(state), log, f"PostgreSQL {bins.parent.name}, {mode}"
    )


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


def is_secure(settings: Settings) -> bool:
    """Whether the stack under stack.state_dir is the secure one (``up --secure`` wrote its client settings)."""
    return (settings.stack.state_dir / STACK_CLIENT_FILE).is_file()


def _up_postgres(settings: Settings, deadline: float, tls: Path | None = None) -> None:
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
        _postgres.lock(bins, state, port, log, base / STACK_PASSFILE, base / _postgres.MAINTENANCE_PASSFILE, tls)
    except _postgres.PostgresError as exc:
        raise _fail(f"PostgreSQL: {exc}", log) from None


def _up_kafka(settings: Settings, deadline: float, tls: Path | None = None) -> None:
    host, port = _kafka_addr(settings)
    if host not in LOCAL:
        return
    state, _ = _dirs(settings)
    state.mkdir(parents=True, exist_ok=True)
    out = state / "kafka.out"
    internal = settings.stack.kafka_internal_port
    try:
        lib = _kafka.ensure_jars(settings.stack.kafka_version, out)
        pid = _kafka.running_pid(state)
        if pid is not None and _kafka.rendered_secure(state) != (tls is not None):
            _kafka.stop(state)  # plaintext to secure or back: the same data, other listeners
            pid = None
        if pid is None:
            for p in (port, internal) if tls is not None else (port,):
                if port_open(host, p):
                    raise StackError(
                        f"port {p} on {host} is taken by another program: set "
                        f"{'kafka.bootstrap' if p == port else 'stack.kafka_internal_port'} to another port"
                    )
            conf = _kafka.render(state, port, settings.stack.kafka_controller_port, tls=tls, internal_port=internal)
            _kafka.format_storage(lib, conf, state, out)
            pid = _kafka.start(lib, conf, state, settings.stack.kafka_heap)
        # secure: the TLS listener first (the broker's certificate), then the SCRAM user if it cannot log in yet
        probe_port, probe = (port, PLAINTEXT) if tls is None else (internal, _kafka.broker_tls(tls))
        if not _kafka.wait_ready(host, probe_port, pid, max(deadline - time.monotonic(), 1), probe):
            raise _fail(
                "Kafka did not answer in time" if _kafka.running_pid(state) else "Kafka exited",
                state / "server.log" if (state / "server.log").exists() else out,
            )
        if tls is not None:
            user = _client_security(settings, tls)
            if not _kafka.answers(f"{host}:{port}", user):
                password = user.password.get_secret_value() if user.password else ""
                _kafka.add_scram_user(
                    lib, f"{host}:{internal}", tls, _tls.KAFKA_USER, _tls.SCRAM_MECHANISM, password, out
                )
                if not _kafka.wait_ready(host, port, pid, max(deadline - time.monotonic(), 1), user):
                    raise _fail(f"Kafka refused the SCRAM user {_tls.KAFKA_USER} it was given", state / "server.log")
    except _kafka.KafkaError as exc:
        raise _fail(f"Kafka: {exc}", out) from None


def _client_security(settings: Settings, tls: Path) -> KafkaSecurity:
    from pydantic import SecretStr

    return KafkaSecurity(
        protocol="SASL_SSL",
        mechanism=_tls.SCRAM_MECHANISM,
        cafile=tls / "ca.pem",
        username=_tls.KAFKA_USER,
        password=SecretStr(_tls.kafka_password(settings.stack.state_dir)),
    )


def up(
    settings: Settings, timeout: float = 240.0, *, with_prometheus: bool = False, secure: bool | None = None
) -> list[ServiceStatus]:
    """Start what is not running. ``secure``: True makes the stack secure, False plaintext, None keeps it as it is
    (a new one: plaintext)."""
    deadline = time.monotonic() + timeout
    base = settings.stack.state_dir
    want = is_secure(settings) if secure is None else secure
    if want and settings.stack.kafka_brokers > 1:
        raise StackError("stack up --secure is for the single broker; the local cluster (--brokers N) is plaintext")
    tls = None
    if want:
        base.mkdir(parents=True, exist_ok=True)
        tls = _tls.ensure_certificates(base)
        _tls.kafka_password(base)
    else:
        (base / STACK_CLIENT_FILE).unlink(missing_ok=True)  # plaintext again: the commands' settings too
    _up_postgres(settings, deadline, tls)
    if settings.stack.kafka_brokers > 1:
        _up_cluster(settings, deadline)
    else:
        _up_kafka(settings, deadline, tls)
    if tls is not None:
        (base / STACK_CLIENT_FILE).write_text(_tls.client_settings(base))
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
