"""The secure local stack (``stack up --secure``), as a user meets it: SASL_SSL with SCRAM on Kafka, TLS only on
PostgreSQL over TCP, certificates of the stack's own CA; what it refuses, and that no password shows.

On the suite's own stack when that is the secure one (CI runs the whole suite so: ENGINE_STACK_SECURE=1 in
ops/bootstrap.sh); else on a private secure stack made here under a temporary state directory, on free ports, which
is also switched to plaintext and back (the same data)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from adapters.kafka_security import PLAINTEXT, client_args
from engine.config import STACK_CLIENT_FILE, KafkaSettings, PostgresSettings, Settings, StackSettings, load
from ops import _tls, stack
from tests.support import REPO, run_cli, unique

pytestmark = pytest.mark.servers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Secure:
    settings: Settings
    private: bool

    @property
    def state(self) -> Path:
        return self.settings.stack.state_dir

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka.bootstrap

    @property
    def plain_dsn(self) -> str:
        """The owner's DSN as given, without the TLS parameters the secure settings add."""
        return self.settings.postgres.dsn.split("?")[0] + (f"?passfile={self.state / 'pgpass'}")

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a command on this stack: its state directory, whose secure.toml gives the rest."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ENGINE_", "PGPASS", "PGSSL"))}
        env.update(
            {
                "ENGINE_STACK__STATE_DIR": str(self.state),
                "ENGINE_KAFKA__BOOTSTRAP": self.bootstrap,
                "ENGINE_POSTGRES__DSN": self.settings.postgres.dsn.split("?")[0],
                "ENGINE_STACK__KAFKA_CONTROLLER_PORT": str(self.settings.stack.kafka_controller_port),
                "ENGINE_STACK__KAFKA_INTERNAL_PORT": str(self.settings.stack.kafka_internal_port),
                "ENGINE_HTTP__PORT": "0",
                "PYTHONUNBUFFERED": "1",
                **extra,
            }
        )
        return env

    def kafka_password(self) -> str:
        value = tomllib.loads((self.state / _tls.SECRETS_FILE).read_text())["password"]
        assert isinstance(value, str)
        return value

    def pg_passwords(self) -> list[str]:
        out = []
        for name in ("pgpass", "pgpass-maintenance"):
            out += [line.rsplit(":", 1)[1] for line in (self.state / name).read_text().splitlines() if line]
        return out


@pytest.fixture(scope="module")
def secure(servers: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secure]:
    shared = load()
    if stack.is_secure(shared):
        yield Secure(shared, private=False)
        return
    state = tmp_path_factory.mktemp("secure-stack")
    os.chmod(state, 0o755)
    settings = Settings(
        kafka=KafkaSettings(bootstrap=f"127.0.0.1:{_free_port()}"),
        postgres=PostgresSettings(dsn=f"postgresql://engine@127.0.0.1:{_free_port()}/engine"),
        stack=StackSettings(
            state_dir=state, kafka_controller_port=_free_port(), kafka_internal_port=_free_port(), kafka_heap="384m"
        ),
    )
    try:
        stack.up(settings, timeout=240, secure=True)
        # the settings as a command on it loads them: secure.toml, read from the state directory given
        yield Secure(_load_in(Secure(settings, private=True).env()), private=True)
    finally:
        stack.down(settings)


def _load_in(env: dict[str, str]) -> Settings:
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return load()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_status_says_secure_and_the_files_are_private(secure: Secure) -> None:
    res = run_cli(["stack", "status"], secure.env())
    assert res.returncode == 0, res.stderr
    assert "secure: SASL_SSL, SCRAM-SHA-512" in res.stdout and "secure: TLS only over TCP" in res.stdout, res.stdout
    tls = secure.state / "tls"
    for key in ("ca-key.pem", "kafka-key.pem", "kafka-keystore.pem", "postgres-key.pem"):
        assert (tls / key).stat().st_mode & 0o077 == 0, key
    assert (secure.state / _tls.SECRETS_FILE).stat().st_mode & 0o077 == 0
    client = (secure.state / STACK_CLIENT_FILE).read_text()
    assert secure.kafka_password() not in client and 'security_protocol = "SASL_SSL"' in client


def test_a_wrong_scram_password_is_refused_in_one_line(secure: Secure) -> None:
    wrong = "not-the-password-" + unique("x")
    for args in (["run", "--ticks", "5", "--no-projections"], ["halt", "--reason", "test"]):
        t0 = time.monotonic()
        res = run_cli(args, secure.env(ENGINE_KAFKA__PASSWORD=wrong), timeout=60)
        assert res.returncode == 2, res.stdout + res.stderr
        assert time.monotonic() - t0 < 40, "a refused login must not be waited out"
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and "refused the login of user 'engine' (SCRAM-SHA-512)" in lines[0], res.stderr
        assert "Traceback" not in res.stderr and wrong not in res.stdout + res.stderr


def test_a_plaintext_client_is_refused_by_the_sasl_ssl_listener(secure: Secure, tmp_path: Path) -> None:
    # a state directory without secure.toml: the client is plaintext, as any program not given the settings
    env = secure.env(ENGINE_STACK__STATE_DIR=str(tmp_path))
    res = run_cli(["halt", "--reason", "test"], env, timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "closed the connection of a PLAINTEXT client" in res.stderr and "kafka.security_protocol" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr

    async def metadata() -> None:
        admin = AIOKafkaAdminClient(**client_args(secure.bootstrap, PLAINTEXT), request_timeout_ms=3000)
        try:
            await asyncio.wait_for(admin.start(), 15)
        finally:
            await admin.close()

    with pytest.raises(Exception, match="Unable to bootstrap"):
        asyncio.run(metadata())


def test_postgres_over_tcp_without_tls_is_refused(secure: Secure) -> None:
    async def connect(params: str) -> str:
        conn = await asyncpg.connect(f"{secure.plain_dsn}&{params}", timeout=10)
        try:
            return str(await conn.fetchval("SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
        finally:
            await conn.close()

    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError, match="no encryption"):
        asyncio.run(connect("sslmode=disable"))
    ca = secure.state / "tls" / "ca.pem"
    assert asyncio.run(connect(f"sslmode=verify-full&sslrootcert={ca}")).startswith("TLS")
    # the engine's own commands: over TLS, verified, from secure.toml alone
    res = run_cli(["sql", "--", "-Atc", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"], secure.env())
    assert res.returncode == 0 and res.stdout.strip() == "t", res.stdout + res.stderr


def test_a_certificate_not_signed_by_the_ca_is_refused(secure: Secure, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    _, other = _tls.make_ca("another CA")
    foreign = tmp_path / "other-ca.pem"
    foreign.write_bytes(other.public_bytes(serialization.Encoding.PEM))

    async def connect() -> None:
        conn = await asyncpg.connect(f"{secure.plain_dsn}&sslmode=verify-full&sslrootcert={foreign}", timeout=10)
        await conn.close()

    with pytest.raises(Exception, match="certificate verify failed"):
        asyncio.run(connect())
    res = run_cli(["halt", "--reason", "test"], secure.env(ENGINE_KAFKA__SSL_CAFILE=str(foreign)), timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "its certificate is not trusted" in res.stderr and "kafka.ssl_cafile" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_a_run_trades_on_the_secure_stack_and_no_password_shows(secure: Secure, tmp_path: Path) -> None:
    """A whole run (ticks, orders, the audit projection) over SASL_SSL and TLS, at debug level; neither its output,
    its /metrics, nor the servers' logs hold the Kafka password or a PostgreSQL one."""
    prefix, schema, port = unique("sec"), unique("sec"), _free_port()
    env = secure.env(ENGINE_KAFKA__TOPIC_PREFIX=f"{prefix}.", ENGINE_POSTGRES__SCHEMA=schema)
    out = tmp_path / "run.log"
    with out.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine", "run", "--ticks", "400", "--port", str(port), "--log-level", "debug"],
            env=env,
            cwd=REPO,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    metrics = ""
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                metrics = r.read().decode()
        except OSError:
            pass
        if "ticks" in metrics:
            break
        time.sleep(0.2)  # polling an HTTP endpoint until it answers, within the deadline above
    rc = proc.wait(timeout=180)
    text = out.read_text()
    assert rc == 0, text[-3000:]
    assert metrics, "the run's /metrics never answered"
    res = run_cli(["sql", "--", "-Atc", f"SELECT count(*) FROM {schema}.fills"], env)
    assert res.returncode == 0 and int(res.stdout.strip()) > 0, res.stdout + res.stderr
    logs = "".join(
        p.read_text(errors="replace")
        for p in [
            *secure.state.glob("kafka/*.log"),
            secure.state / "kafka" / "kafka.out",
            *secure.state.glob("postgres/*.log"),
        ]
        if p.is_file()
    )
    for secret in (secure.kafka_password(), *secure.pg_passwords()):
        assert secret not in text, "a password in the run's output"
        assert secret not in metrics, "a password in /metrics"
        assert secret not in logs, "a password in a server's log"


def test_plain_and_back_on_the_same_state_directory(secure: Secure) -> None:
    if not secure.private:
        pytest.skip("the suite's own secure stack is not switched under the other tests")  # covered when private
    stack.up(secure.settings, timeout=240, secure=False)
    assert not (secure.state / STACK_CLIENT_FILE).exists()

    async def plain_metadata() -> list[str]:
        admin = AIOKafkaAdminClient(**client_args(secure.bootstrap, PLAINTEXT), request_timeout_ms=5000)
        await admin.start()
        try:
            return list(await admin.list_topics())
        finally:
            await admin.close()

    assert isinstance(asyncio.run(plain_metadata()), list)
    stack.up(secure.settings, timeout=240, secure=True)
    res = run_cli(["stack", "status"], secure.env())
    assert "secure: SASL_SSL" in res.stdout, res.stdout

    async def secure_metadata() -> list[str]:
        args = client_args(secure.bootstrap, secure.settings.kafka.security())
        admin = AIOKafkaAdminClient(**args, request_timeout_ms=5000)
        await admin.start()
        try:
            return list(await admin.list_topics())
        finally:
            await admin.close()

    assert isinstance(asyncio.run(secure_metadata()), list)
