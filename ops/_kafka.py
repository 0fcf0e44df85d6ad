"""The local Kafka broker: jars from Maven Central (once), KRaft format (once), start, stop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import subprocess
import tempfile
import uuid
from base64 import urlsafe_b64encode
from pathlib import Path

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


def render(state: Path, port: int, controller_port: int) -> Path:
    conf = state / "server.properties"
    text = (
        (HERE / "server.properties")
        .read_text()
        .format(port=port, controller_port=controller_port, data_dir=state / "data")
    )
    conf.write_text(text)
    return conf


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


def answers(bootstrap: str) -> bool:
    """A real metadata round trip (in a thread: callers may already run an event loop)."""

    async def probe() -> bool:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await admin.start()
            await admin.list_topics()
            return True
        except Exception:  # any failure means: not answering yet
            return False
        finally:
            await admin.close()

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


def wait_ready(host: str, port: int, pid: int, seconds: float) -> bool:
    bootstrap = f"{host}:{port}"
    return wait_until(lambda: not alive(pid) or (port_open(host, port) and answers(bootstrap)), seconds, 0.5) and alive(
        pid
    )
