"""The Kafka and PostgreSQL security settings: checked at load with one line naming the key, the password only from
the environment or a 0600 secrets file and never shown, the one function that makes every Kafka client's
arguments, and the DSNs that carry libpq's TLS parameters."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from adapters import kafka_security
from adapters.kafka_security import PLAINTEXT, KafkaSecurity, client_args
from engine.config import ConfigError, KafkaSettings, load
from tests.support import REPO

SECRET = "s3cr3t-that-must-never-show-9f2c"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No ENGINE_* variable of the session's, and a state directory without a secure.toml."""
    for var in list(os.environ):
        if var.startswith("ENGINE_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("ENGINE_STACK__STATE_DIR", str(tmp_path / "state"))
    yield tmp_path


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        env={**os.environ, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "said"),
    [
        (
            {"ENGINE_KAFKA__SECURITY_PROTOCOL": "SASL_SSL", "ENGINE_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512"},
            "needs kafka.username",
        ),
        ({"ENGINE_KAFKA__SECURITY_PROTOCOL": "SASL_SSL", "ENGINE_KAFKA__USERNAME": "u"}, "needs kafka.sasl_mechanism"),
        (
            {
                "ENGINE_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
                "ENGINE_KAFKA__SASL_MECHANISM": "PLAIN",
                "ENGINE_KAFKA__USERNAME": "u",
            },
            "needs a password: ENGINE_KAFKA__PASSWORD",
        ),
        ({"ENGINE_KAFKA__SECURITY_PROTOCOL": "SSL", "ENGINE_KAFKA__SSL_CAFILE": "/nonexistent/ca.pem"}, "no such file"),
        ({"ENGINE_KAFKA__SSL_CAFILE": "/etc/hostname"}, "is PLAINTEXT: it has no TLS"),
        ({"ENGINE_KAFKA__SECURITY_PROTOCOL": "TLS"}, "kafka.security_protocol"),
        ({"ENGINE_POSTGRES__SSLROOTCERT": "/nonexistent/root.crt"}, "postgres.sslrootcert"),
        ({"ENGINE_POSTGRES__SSLMODE": "verify-everything"}, "postgres.sslmode"),
    ],
)
def test_bad_security_settings_fail_at_start_in_one_line(clean_env: Path, env: dict[str, str], said: str) -> None:
    res = _cli(["halt", "--reason", "x"], {**env, "ENGINE_STACK__STATE_DIR": str(clean_env)})
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0], res.stderr
    assert "Traceback" not in res.stderr


def test_the_password_never_shows_in_a_repr_or_an_error(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGINE_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("ENGINE_KAFKA__SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("ENGINE_KAFKA__USERNAME", "trader")
    monkeypatch.setenv("ENGINE_KAFKA__PASSWORD", SECRET)
    s = load()
    assert SECRET not in repr(s) and SECRET not in str(s) and SECRET not in s.model_dump_json()
    assert SECRET not in repr(s.kafka.security())
    assert client_args(s.kafka.bootstrap, s.kafka.security())["sasl_plain_password"] == SECRET
    monkeypatch.setenv("ENGINE_KAFKA__SSL_CAFILE", "/nonexistent")  # a failure with the password set
    with pytest.raises(ConfigError) as err:
        load()
    assert SECRET not in str(err.value)
    res = _cli(["halt", "--reason", "x"], dict(os.environ))
    assert res.returncode == 2 and SECRET not in res.stdout + res.stderr


def test_the_password_is_refused_in_the_config_file(clean_env: Path) -> None:
    conf = clean_env / "engine.toml"
    conf.write_text(f'[kafka]\nsecurity_protocol = "SASL_SSL"\npassword = "{SECRET}"\n')
    res = _cli(["--config", str(conf), "halt", "--reason", "x"], {"ENGINE_STACK__STATE_DIR": str(clean_env)})
    assert res.returncode == 2, res.stderr
    assert "kafka.password is in" in res.stderr and "ENGINE_KAFKA__PASSWORD" in res.stderr
    assert SECRET not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_the_secrets_file_gives_the_password_and_must_be_private(clean_env: Path) -> None:
    secrets = clean_env / "kafka.toml"
    secrets.write_text(f"password = '{SECRET}'\n")
    secrets.chmod(0o644)
    base = {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "username": "key", "secrets_file": secrets}
    with pytest.raises(ValueError, match="readable by others: chmod 600"):
        KafkaSettings(**base)
    secrets.chmod(0o600)
    sec = KafkaSettings(**base).security()
    assert sec.password is not None and sec.password.get_secret_value() == SECRET
    secrets.write_text("user = 'nobody'\n")
    with pytest.raises(ValueError, match="no password = "):
        KafkaSettings(**base)


def test_plaintext_clients_are_made_as_before() -> None:
    assert client_args("127.0.0.1:9092", PLAINTEXT) == {"bootstrap_servers": "127.0.0.1:9092"}
    sasl = KafkaSecurity(protocol="SASL_PLAINTEXT", mechanism="PLAIN", username="u", password=SecretStr("p"))
    kafka_security.use(sasl, "broker:9092")
    try:
        assert client_args("broker:9092")["sasl_mechanism"] == "PLAIN"
        assert client_args("broker:9092")["security_protocol"] == "SASL_PLAINTEXT"
        # another cluster (a private test stack): plaintext, untouched by the process's security
        assert client_args("127.0.0.1:9092") == {"bootstrap_servers": "127.0.0.1:9092"}
    finally:
        kafka_security.use(PLAINTEXT, "broker:9092")


def test_postgres_tls_settings_go_into_every_dsn(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load().postgres.dsn == "postgresql://engine@127.0.0.1:15432/engine"  # nothing given: as written
    ca = clean_env / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("ENGINE_POSTGRES__SSLMODE", "verify-full")
    monkeypatch.setenv("ENGINE_POSTGRES__SSLROOTCERT", str(ca))
    pg = load().postgres
    for dsn in (pg.dsn, pg.writer, pg.reader):
        assert f"sslmode=verify-full&sslrootcert={ca}" in dsn, dsn
    monkeypatch.setenv("ENGINE_POSTGRES__DSN", "postgresql://engine@db.example:5432/engine?sslmode=require")
    assert "sslmode=require" in load().postgres.dsn and "verify-full" not in load().postgres.dsn


def test_the_secure_stacks_client_file_is_read_from_the_state_directory(clean_env: Path) -> None:
    from ops import _tls

    state = clean_env / "state"
    state.mkdir()
    tls = _tls.ensure_certificates(state)
    _tls.kafka_password(state)
    (state / "secure.toml").write_text(_tls.client_settings(state))
    s = load()
    assert s.kafka.security_protocol == "SASL_SSL" and s.kafka.ssl_cafile == tls / "ca.pem"
    assert s.postgres.sslmode == "verify-full" and "sslmode=verify-full" in s.postgres.writer
    assert s.kafka.security().password is not None
