"""The local Kafka: jars from Maven Central (once), KRaft format (once), start, stop; one broker, or a cluster of
several nodes (each broker and controller, the quorum on all of them)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from base64 import urlsafe_b64encode
from pathlib import Path

from adapters.kafka_security import PLAINTEXT, KafkaSecurity, client_args
from ops._proc import alive, port_open, read_pid, terminate, wait_until

HERE = Path(__file__).resolve().parent / "kafka"


class KafkaError(Exception):
    pass


def lib_dir(version: str) -> Path:
    override = os.environ.get("ENGINE_KAFKA_LIB_DIR")
    if override:
        return Path(override)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "trading-engine" / f"kafka-{version}" / "lib"


def ensure_jars(version: str, log: Path) -> Path:
    """Copy Kafka and its dependencies from Maven Central into the cache, once (atomically)."""
    lib = lib_dir(version)
    if (lib / ".complete").exists():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaError("Maven is needed once to fetch the Kafka jars: apt-get install maven")
    lib.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="lib-", dir=lib.parent))
    with log.open("ab") as out:
        rc = subprocess.run(
            [
                mvn,
                "-B",
                "-q",
                "-f",
                str(HERE / "pom.xml"),
                f"-Dkafka.version={version}",
                "dependency:copy-dependencies",
                f"-DoutputDirectory={tmp}",
                "-DincludeScope=runtime",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode
    if rc != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
        shutil.rmtree(tmp, ignore_errors=True)
        raise KafkaError(f"fetching the Kafka {version} jars with Maven failed (exit {rc})")
    (tmp / ".complete").write_text(version)
    if lib.exists():
        shutil.rmtree(lib)
    tmp.rename(lib)
    return lib


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise KafkaError("Java 17+ is needed for the local Kafka broker: apt-get install openjdk-17-jre-headless")
    return java


def render(state: Path, port: int, controller_port: int, *, tls: Path | None = None, internal_port: int = 0) -> Path:
    """server.properties: plaintext, or with ``tls`` (the stack's certificates, ops/_tls.py) the secure broker's
    (secure.properties: SASL_SSL on ``port``, TLS with client certificates on ``internal_port`` and the
    controller's)."""
    conf = state / "server.properties"
    if tls is None:
        text = (
            (HERE / "server.properties")
            .read_text()
            .format(port=port, controller_port=controller_port, data_dir=state / "data")
        )
    else:
        text = (
            (HERE / "secure.properties")
            .read_text()
            .format(
                port=port,
                internal_port=internal_port,
                controller_port=controller_port,
                data_dir=state / "data",
                keystore=tls / "kafka-keystore.pem",
                truststore=tls / "ca.pem",
            )
        )
    conf.write_text(text)
    return conf


def rendered_secure(state: Path) -> bool:
    """Whether the broker under ``state`` was last configured as the secure one."""
    try:
        return "SASL_SSL://" in (state / "server.properties").read_text()
    except OSError:
        return False


def broker_tls(tls: Path) -> KafkaSecurity:
    """The broker's own identity, for its TLS listener with client certificates (the stack's probes and tools)."""
    return KafkaSecurity(
        protocol="SSL", cafile=tls / "ca.pem", certfile=tls / "kafka.pem", keyfile=tls / "kafka-key.pem"
    )


def add_scram_user(lib: Path, bootstrap: str, tls: Path, user: str, mechanism: str, password: str, log: Path) -> None:
    """Set ``user``'s SCRAM credentials with Kafka's own ConfigCommand, through the TLS listener with the broker's
    certificate (works on a data directory formatted before, and sets the password again if it changed). The
    password goes in a 0600 file, never on the command line (ps shows that)."""
    from ops._proc import write_private

    client = tls / "admin-client.properties"
    write_private(
        client,
        (
            "security.protocol=SSL\nssl.truststore.type=PEM\n"
            f"ssl.truststore.location={tls / 'ca.pem'}\nssl.keystore.type=PEM\n"
            f"ssl.keystore.location={tls / 'kafka-keystore.pem'}\n"
        ).encode(),
    )
    add = tls / "scram-add.properties"
    write_private(add, f"{mechanism}=password={password}\n".encode())
    try:
        done = subprocess.run(
            [
                _java(),
                "-cp",
                f"{lib}/*",
                "kafka.admin.ConfigCommand",
                "--bootstrap-server",
                bootstrap,
                "--command-config",
                str(client),
                "--alter",
                "--entity-type",
                "users",
                "--entity-name",
                user,
                "--add-config-file",
                str(add),
            ],
            capture_output=True,
            check=False,
        )
    finally:
        add.unlink(missing_ok=True)
    rc = done.returncode
    with log.open("ab") as out:  # what the tool said, its errors included, without the password
        out.write((done.stdout + done.stderr).replace(password.encode(), b"**********"))
    if rc != 0:
        raise KafkaError(f"adding the SCRAM user {user} failed (exit {rc})")


def cluster_id() -> str:
    """A new cluster id: 16 random bytes in URL-safe base64, as Kafka's own ``random-uuid`` makes them, and like
    Kafka's never starting with "-": the storage tool would read such an id as an option (one id in 64 did, and
    formatting failed)."""
    while True:
        cid = urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def format_storage(lib: Path, conf: Path, state: Path, log: Path) -> None:
    if (state / "data" / "meta.properties").exists():
        return
    with log.open("ab") as out:
        rc = subprocess.run(
            [
                _java(),
                "-cp",
                f"{lib}/*",
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                cluster_id(),
                "-c",
                str(conf),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode
    if rc != 0:
        raise KafkaError("formatting the Kafka storage failed")


def start(lib: Path, conf: Path, state: Path, heap: str) -> int:
    out = (state / "kafka.out").open("ab")
    env = {**os.environ, "LOG_DIR": str(state)}
    proc = subprocess.Popen(
        [
            _java(),
            f"-Xmx{heap}",
            f"-Xms{heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={HERE / 'log4j2.yaml'}",
            f"-Dkafka.logs.dir={state}",
            "-cp",
            f"{lib}/*",
            "kafka.Kafka",
            str(conf),
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    (state / "kafka.pid").write_text(str(proc.pid))
    return proc.pid


def answers(bootstrap: str, security: KafkaSecurity = PLAINTEXT) -> bool:
    """A real metadata round trip (in a thread: callers may already run an event loop), with ``security``."""

    async def probe() -> bool:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(**client_args(bootstrap, security), request_timeout_ms=3000)
        quiet = logging.getLogger("aiokafka")
        quiet.disabled = True  # a refused login while the user is being added is no error to print
        try:
            await admin.start()
            await admin.list_topics()
            return True
        except Exception:  # any failure means: not answering yet
            return False
        finally:
            await admin.close()
            quiet.disabled = False

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, probe()).result()


def running_pid(state: Path) -> int | None:
    pid = read_pid(state / "kafka.pid")
    return pid if alive(pid) else None


def stop(state: Path) -> None:
    pid = running_pid(state)
    if pid is not None:
        terminate(pid, grace=30)
    (state / "kafka.pid").unlink(missing_ok=True)


def wait_ready(host: str, port: int, pid: int, seconds: float, security: KafkaSecurity = PLAINTEXT) -> bool:
    bootstrap = f"{host}:{port}"
    return wait_until(
        lambda: not alive(pid) or (port_open(host, port) and answers(bootstrap, security)), seconds, 0.5
    ) and alive(pid)


# -- the local cluster (stack up --brokers N): N nodes, each broker and controller, data under <state>/node-<i> --


def node_ports(first: int, brokers: int) -> list[tuple[int, int]]:
    """(broker port, controller port) of each node: node i on ``first + 2(i-1)`` and the port after it."""
    return [(first + 2 * i, first + 2 * i + 1) for i in range(brokers)]


def cluster_bootstrap(ports: list[tuple[int, int]]) -> str:
    return ",".join(f"127.0.0.1:{p}" for p, _ in ports)


def node_dir(state: Path, node: int) -> Path:
    return state / f"node-{node}"


def cluster_ports(state: Path) -> list[tuple[int, int]]:
    """The ports the cluster under ``state`` was made with (empty: none was)."""
    try:
        return [(int(p), int(c)) for p, c in json.loads((state / "ports.json").read_text())]
    except (OSError, ValueError):
        return []


def render_node(state: Path, node: int, ports: list[tuple[int, int]]) -> Path:
    d = node_dir(state, node)
    d.mkdir(parents=True, exist_ok=True)
    port, controller_port = ports[node - 1]
    conf = d / "server.properties"
    conf.write_text(
        (HERE / "cluster.properties")
        .read_text()
        .format(
            node_id=node,
            port=port,
            controller_port=controller_port,
            voters=",".join(f"{i}@127.0.0.1:{c}" for i, (_, c) in enumerate(ports, 1)),
            data_dir=d / "data",
            replicas=len(ports),
            min_isr=min(2, len(ports)),
        )
    )
    return conf


def format_node(lib: Path, conf: Path, d: Path, cid: str, log: Path) -> None:
    if (d / "data" / "meta.properties").exists():
        return
    with log.open("ab") as out:
        rc = subprocess.run(
            [_java(), "-cp", f"{lib}/*", "kafka.tools.StorageTool", "format", "-t", cid, "-c", str(conf)],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode
    if rc != 0:
        raise KafkaError(f"formatting the storage of {d.name} failed")


def cluster_up(lib: Path, state: Path, ports: list[tuple[int, int]], heap: str, seconds: float) -> list[int]:
    """Make (once: ports and cluster id kept under ``state``) and start every node not running; wait until each
    answers a metadata request. The pids of the nodes, node 1 first."""
    made = cluster_ports(state)
    if made and made != ports:
        raise KafkaError(
            f"the cluster under {state} was made with {len(made)} nodes on ports {made[0][0]}-{made[-1][1]}: "
            "stack down, and remove that directory to make another"
        )
    state.mkdir(parents=True, exist_ok=True)
    (state / "ports.json").write_text(json.dumps(ports))
    id_file = state / "cluster.id"
    if not id_file.exists():
        id_file.write_text(cluster_id())
    cid = id_file.read_text().strip()
    pids = []
    for node in range(1, len(ports) + 1):
        d = node_dir(state, node)
        pid = running_pid(d)
        if pid is None:
            if port_open("127.0.0.1", ports[node - 1][0]) or port_open("127.0.0.1", ports[node - 1][1]):
                raise KafkaError(
                    f"port {ports[node - 1][0]} or {ports[node - 1][1]} (node {node}) is taken by another program: "
                    "set stack.kafka_cluster_port to another range"
                )
            conf = render_node(state, node, ports)
            format_node(lib, conf, d, cid, d / "kafka.out")
            pid = start(lib, conf, d, heap)
        pids.append(pid)
    end = time.monotonic() + seconds
    for node, pid in enumerate(pids, 1):
        if not wait_ready("127.0.0.1", ports[node - 1][0], pid, max(end - time.monotonic(), 1)):
            d = node_dir(state, node)
            log = d / "server.log" if (d / "server.log").exists() else d / "kafka.out"
            raise KafkaError(f"node {node} {'did not answer in time' if alive(pid) else 'exited'}; read {log}")
    return pids


def cluster_stop(state: Path) -> None:
    """Stop every node at once (one by one, the last ones wait for a quorum that is gone)."""
    nodes = sorted(state.glob("node-*"))
    pids = [pid for d in nodes if (pid := running_pid(d)) is not None]
    with concurrent.futures.ThreadPoolExecutor(max(len(pids), 1)) as pool:
        list(pool.map(lambda p: terminate(p, grace=30), pids))
    for d in nodes:
        (d / "kafka.pid").unlink(missing_ok=True)
