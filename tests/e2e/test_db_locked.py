"""The local stack's database, locked: every role has a password, kept in files only their owner reads; no
``trust`` in pg_hba.conf; the superuser only through the socket as the OS user running the server; and history
(events, fills, order events) changed by nobody but ``engine_maintenance``, which no command of the engine uses.

On the suite's own stack when it is the local one (the files and another OS user are the point of it); the
upgrade of a data directory made before (trust, roles without passwords) on a PostgreSQL of its own.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from engine.config import STACK_PASSFILE, Settings, load, with_user
from ops import _postgres
from tests.support import SHARED_TRADES, engine_env, run_cli, unique

pytestmark = pytest.mark.servers

ROLES = ("engine", "engine_writer", "engine_reader", "engine_maintenance", "postgres")
HISTORY = ("events", "fills", "order_events")


def _port(dsn: str) -> int:
    return int(dsn.rsplit(":", 1)[1].split("/")[0])


@pytest.fixture(scope="module")
def stack(servers: Any) -> Settings:
    """The settings of the suite's servers, when they are the local stack (its files are under its state dir)."""
    settings = load()
    if not (settings.stack.state_dir / "postgres" / "data" / "pg_hba.conf").exists():
        pytest.skip(f"the servers are not the local stack ({servers.how}): its files are not here")
    return settings


def _as_nobody(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """psql run by another OS user (nobody), never asking for a password (-w)."""
    if os.geteuid() != 0:
        pytest.skip("running a client as another OS user needs root (runuser)")
    return subprocess.run(
        ["runuser", "-u", "nobody", "--", "env", *(f"{k}={v}" for k, v in env.items()), "psql", "-X", "-w", *args],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=30,
        check=False,
    )


@pytest.fixture(scope="module")
def history(servers: Any) -> str:
    """A schema with events, fills and order events in it: a run of the engine on the real trades."""
    prefix, schema = unique("locked"), unique("locked")
    res = run_cli(["run", "--file", str(SHARED_TRADES), "--symbol", "XRP/ETH"], engine_env(servers, prefix, schema))
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    return schema


def test_the_password_files_are_their_owners_alone(stack: Settings) -> None:
    engine_file = stack.stack.state_dir / STACK_PASSFILE
    maintenance_file = stack.stack.state_dir / _postgres.MAINTENANCE_PASSFILE
    for path in (engine_file, maintenance_file):
        st = path.stat()
        assert (oct(st.st_mode & 0o777), st.st_uid) == ("0o600", os.geteuid()), path
    assert set(_postgres.read_passfile(engine_file)) == {"engine", "engine_writer", "engine_reader"}
    assert set(_postgres.read_passfile(maintenance_file)) == {"engine_maintenance"}


def test_pg_hba_has_no_trust_and_the_superuser_only_peer_on_the_socket(stack: Settings) -> None:
    lines = _hba_rules(stack.stack.state_dir / "postgres" / "data")
    assert lines and not [f for f in lines if "trust" in f]
    for fields in lines:
        if fields[0] == "local":
            assert fields[2] != "postgres" or fields[3] == "peer", fields
        elif fields[2] in ("postgres", "all") and fields[0].startswith("host"):
            assert fields[4] in ("reject", "scram-sha-256"), fields
            assert fields[2] != "postgres" or fields[4] == "reject", fields


def _hba_rules(data: Path) -> list[list[str]]:
    """pg_hba.conf's rules, each as its fields (comments left out)."""
    lines = (data / "pg_hba.conf").read_text().splitlines()
    return [line.split() for line in lines if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("transport", ["tcp", "socket"])
@pytest.mark.parametrize("role", ROLES)
def test_another_os_user_without_the_password_is_refused(stack: Settings, role: str, transport: str) -> None:
    port = _port(stack.postgres.dsn)
    host = "127.0.0.1" if transport == "tcp" else str(stack.stack.state_dir / "postgres" / "run")
    # with the engine's password file named, too: nobody cannot read it
    for env in ({}, {"PGPASSFILE": str(stack.stack.state_dir / STACK_PASSFILE)}):
        res = _as_nobody(["-h", host, "-p", str(port), "-U", role, "-d", "engine", "-c", "select 1"], **env)
        assert res.returncode != 0, res.stdout
        refused = ("no password supplied", "rejects connection", "Peer authentication failed")
        assert any(r in res.stderr for r in refused), res.stderr


@pytest.mark.parametrize("role", ROLES)
async def test_a_wrong_password_is_refused(stack: Settings, role: str) -> None:
    dsn = with_user(stack.postgres.dsn, role)
    with pytest.raises((asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)):
        await asyncpg.connect(dsn, password="not-the-password", timeout=10)


async def test_the_engines_password_file_does_not_open_the_maintenance_role(stack: Settings) -> None:
    dsn = with_user(stack.postgres.dsn, "engine_maintenance")
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(dsn, passfile=stack.stack.state_dir / STACK_PASSFILE, timeout=10)


def _changes(schema: str, table: str) -> list[str]:
    column = {"events": "type", "fills": "price", "order_events": "reason"}[table]
    return [
        f"update {schema}.{table} set {column} = {column}",
        f"delete from {schema}.{table}",
        f"truncate {schema}.{table}",
    ]


@pytest.mark.parametrize("table", HISTORY)
@pytest.mark.parametrize("role", ["engine_writer", "engine", "engine_reader"])
async def test_history_refuses_every_change_by_the_engines_roles(
    servers: Any, history: str, role: str, table: str
) -> None:
    conn = await asyncpg.connect(with_user(servers.pg_dsn, role))
    try:
        assert await conn.fetchval(f"select count(*) from {history}.{table}") > 0
        for statement in _changes(history, table):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
        assert await conn.fetchval(f"select count(*) from {history}.{table}") > 0
    finally:
        await conn.close()


@pytest.mark.parametrize("table", HISTORY)
async def test_the_maintenance_role_can_change_history(stack: Settings, history: str, table: str) -> None:
    """Each change inside a transaction, rolled back: the rows are still there for the other tests."""
    dsn = with_user(stack.postgres.dsn, "engine_maintenance")
    conn = await asyncpg.connect(dsn, passfile=stack.stack.state_dir / _postgres.MAINTENANCE_PASSFILE)
    try:
        for statement in _changes(history, table):
            tx = conn.transaction()
            await tx.start()
            try:
                done = await conn.execute(statement)
                assert done.split()[-1] != "0" or done == "TRUNCATE TABLE", (statement, done)
                if statement.startswith("truncate"):
                    assert await conn.fetchval(f"select count(*) from {history}.{table}") == 0
            finally:
                await tx.rollback()
        assert await conn.fetchval(f"select count(*) from {history}.{table}") > 0
    finally:
        await conn.close()


# --- a data directory from before: upgraded by `stack up`, its data kept ---------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[tuple[Settings, dict[str, str]]]:
    """`stack up` of a PostgreSQL of its own (Kafka named remote, so left alone)."""
    state = tmp_path / "state"
    env = {
        **os.environ,
        "ENGINE_KAFKA__BOOTSTRAP": "kafka.example.internal:9092",
        "ENGINE_POSTGRES__DSN": f"postgresql://engine@127.0.0.1:{_free_port()}/engine",
        "ENGINE_STACK__STATE_DIR": str(state),
    }
    env.pop("PGPASSFILE", None)
    settings = load(
        kafka={"bootstrap": env["ENGINE_KAFKA__BOOTSTRAP"]},
        postgres={"dsn": env["ENGINE_POSTGRES__DSN"]},
        stack={"state_dir": str(state)},
    )
    try:
        yield settings, env
    finally:
        from ops import stack

        stack.down(settings)


def _superuser(settings: Settings, sql: str) -> str:
    """SQL as postgres, through the socket (as the stack itself does)."""
    state = settings.stack.state_dir / "postgres"
    cmd = [*_postgres._psql(_postgres.bin_dir(install=False), state, _port(settings.postgres.dsn)), "-d", "engine"]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    res = subprocess.run([*cmd, "-Atc", sql], capture_output=True, text=True, cwd="/", timeout=30, check=False)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


async def test_stack_up_locks_a_data_directory_made_before(own_postgres: tuple[Settings, dict[str, str]]) -> None:
    settings, env = own_postgres
    assert run_cli(["stack", "up"], env).returncode == 0
    # yesterday's stack: pg_hba trusting everyone, roles without passwords (the owner with CREATEROLE), no files
    data = settings.stack.state_dir / "postgres" / "data"
    (data / "pg_hba.conf").write_text(
        "local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n"
    )
    _superuser(settings, "SELECT pg_reload_conf()")
    _superuser(
        settings,
        "ALTER ROLE engine CREATEROLE PASSWORD NULL; ALTER ROLE engine_writer PASSWORD NULL;"
        "ALTER ROLE engine_reader PASSWORD NULL; ALTER ROLE engine_maintenance PASSWORD NULL;"
        "CREATE TABLE public.kept AS SELECT 42 AS answer; ALTER TABLE public.kept OWNER TO engine",
    )
    for name in (STACK_PASSFILE, _postgres.MAINTENANCE_PASSFILE):
        (settings.stack.state_dir / name).unlink()
    dsn = settings.postgres.dsn
    conn = await asyncpg.connect(dsn)  # trust: anyone gets in, no password asked
    await conn.close()

    res = run_cli(["stack", "up"], env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert not [f for f in _hba_rules(data) if "trust" in f]
    passfile = settings.stack.state_dir / STACK_PASSFILE
    assert oct(passfile.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(dsn, passfile=settings.stack.state_dir / "absent", timeout=10)
    for role in ("engine", "engine_writer", "engine_reader"):
        conn = await asyncpg.connect(with_user(dsn, role), passfile=passfile, timeout=10)
        assert await conn.fetchval("select current_user") == role
        await conn.close()
    conn = await asyncpg.connect(dsn, passfile=passfile)
    try:
        assert await conn.fetchval("select answer from public.kept") == 42  # the data kept
        assert await conn.fetchval("select rolcreaterole from pg_roles where rolname = 'engine'") is False
    finally:
        await conn.close()
    # the engine's commands find the password file themselves: python -m engine sql, as the reader
    res = run_cli(["sql", "--", "-Atc", "select current_user"], env)
    assert (res.returncode, res.stdout.strip()) == (0, "engine_reader"), res.stderr

    # a password file opened to others is closed again, its passwords kept; the server killed -9 starts locked
    before = passfile.read_text()
    passfile.chmod(0o644)
    pid = _postgres.pid(settings.stack.state_dir / "postgres")
    assert pid is not None
    os.kill(pid, 9)
    res = run_cli(["stack", "up"], env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (oct(passfile.stat().st_mode & 0o777), passfile.read_text()) == ("0o600", before)
    conn = await asyncpg.connect(with_user(dsn, "engine_writer"), passfile=passfile, timeout=10)
    await conn.close()
