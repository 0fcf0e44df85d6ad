"""The command line as a user meets it: every ``--help``, ``--version``, the installed ``engine`` command, the global
options before or after the command, and the way each command ends when something is wrong: one ``error:`` line and
the exit code of its kind (engine/errors.py), never a traceback; Ctrl-C exits 130 after cleaning up."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from subprocess import PIPE
from typing import Any

import asyncpg
import pytest

from engine import __version__
from engine.__main__ import COMMANDS, _parser
from engine.errors import engine_error
from tests.support import REPO, engine_env, run_cli, unique, wait_for

INSTALLED_COMMAND = Path(sysconfig.get_path("scripts")) / "engine"  # where `pip install -e .` puts the console command


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without any ENGINE_* variable (the tests' servers included), plus ``extra``."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("ENGINE_")} | extra


def _cli(args: list[str], env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(args, _clean_env() if env is None else env, timeout=120)


def _one_error_line(res: subprocess.CompletedProcess[str], code: int) -> str:
    """The command ended with exit ``code``, no traceback, and exactly one line on stderr: ``error: ...``."""
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stdout + res.stderr, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


# --- help, version, the installed command ----------------------------------------------------------------------------


def test_every_command_and_the_program_answer_help() -> None:
    commands = sorted(_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert commands == sorted(COMMANDS)  # every command of the parser has its function, and no other is listed
    with ThreadPoolExecutor(4) as pool:
        results = dict(
            zip(
                ["", *commands],
                pool.map(lambda c: _cli([c, "--help"] if c else ["--help"]), ["", *commands]),
                strict=True,
            )
        )
    for command, res in results.items():
        assert res.returncode == 0 and res.stderr == "", (command, res.stderr)
        assert res.stdout.startswith(f"usage: python -m engine {command}".rstrip()), (command, res.stdout[:200])
        if command:
            assert "--config" in res.stdout and "--log-level" in res.stdout, command  # accepted after it too
    assert all(c in results[""].stdout for c in commands)


def test_version_prints_the_version() -> None:
    res = _cli(["--version"])
    assert (res.returncode, res.stdout, res.stderr) == (0, f"python -m engine {__version__}\n", "")


def _installed(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(INSTALLED_COMMAND), *args],
        env=_clean_env(),
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_installed_engine_command_runs() -> None:
    assert INSTALLED_COMMAND.is_file(), f"{INSTALLED_COMMAND} is missing: ops/bootstrap.sh installs it (pip -e .)"
    res = _installed("--help")
    assert res.returncode == 0 and res.stdout.startswith("usage: engine "), res.stdout + res.stderr
    assert "replay" in res.stdout and "rebuild" in res.stdout
    version = _installed("--version")
    assert (version.returncode, version.stdout) == (0, f"engine {__version__}\n")
    bad = _installed("replay")
    assert bad.returncode == 2 and bad.stderr.endswith("(see engine replay --help)\n"), bad.stderr


# --- global options before or after the command ----------------------------------------------------------------------


def test_config_goes_before_or_after_the_command(tmp_path: Path) -> None:
    config = tmp_path / "engine.toml"
    config.write_text(
        f'[kafka]\nbootstrap = "127.0.0.1:1"\n[postgres]\ndsn = "postgresql://engine@127.0.0.1:2/e"\n'
        f'[stack]\nstate_dir = "{tmp_path / "state"}"\n'
    )
    before = _cli(["--config", str(config), "stack", "status"])
    after = _cli(["stack", "status", "--config", str(config)])
    for res in (before, after):
        assert res.returncode == 0, res.stderr
        rows = {line.split()[0]: line.split()[1:3] for line in res.stdout.splitlines()}
        assert rows == {"kafka": ["stopped", "127.0.0.1:1"], "postgres": ["stopped", "127.0.0.1:2"]}, res.stdout
    # `run --config FILE` was refused as an unknown argument before; now the file is read (here: it is missing)
    line = _one_error_line(_cli(["run", "--config", str(tmp_path / "none.toml")]), 2)
    assert line == f"error: --config {tmp_path / 'none.toml'}: no such file"
    line = _one_error_line(_cli(["stack", "status", "--log-level", "loud"]), 2)
    assert "argument --log-level: invalid choice: 'loud'" in line


@pytest.mark.servers
def test_log_level_goes_before_or_after_the_command(servers: Any) -> None:
    env = engine_env(servers, unique("clilog"), unique("clilog"))
    told = run_cli(["halt", "--reason", "test"], env)
    quiet_after = run_cli(["halt", "--reason", "test", "--log-level", "warning"], env)
    quiet_before = run_cli(["--log-level", "warning", "halt", "--reason", "test"], env)
    for res in (told, quiet_after, quiet_before):
        assert res.returncode == 0 and res.stdout == "trading halted: only cancels pass\n", res.stderr
    assert '"breaker.switched"' in told.stderr  # logged at info
    assert quiet_after.stderr == quiet_before.stderr == ""


# --- errors: one line and the exit code of their kind ----------------------------------------------------------------


@contextlib.contextmanager
def _silent_server() -> Iterator[int]:
    """A port on 127.0.0.1 that takes connections (the kernel completes them) and never answers a byte."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield s.getsockname()[1]


@pytest.mark.servers
def test_commands_fail_in_one_line_when_kafka_cannot_be_reached(servers: Any) -> None:
    schema = unique("nokafka")
    refused = engine_env(servers, unique("nokafka"), schema, {"ENGINE_KAFKA__BOOTSTRAP": "127.0.0.1:1"})
    commands = [["halt", "--reason", "r"], ["resume", "--reason", "r"], ["rebuild"], ["replay", "--schema", schema]]
    with _silent_server() as port, ThreadPoolExecutor(len(commands) + 1) as pool:
        silent = {**refused, "ENGINE_KAFKA__BOOTSTRAP": f"127.0.0.1:{port}"}
        t0 = time.monotonic()
        hung = pool.submit(run_cli, ["halt", "--reason", "r"], silent, 60)
        for args, res in zip(commands, pool.map(lambda a: run_cli(a, refused, 60), commands), strict=True):
            line = _one_error_line(res, 3)
            assert line.startswith("error: Kafka at 127.0.0.1:1 does not answer"), (args, line)
            assert "ENGINE_KAFKA__BOOTSTRAP" in line
        line = _one_error_line(hung.result(), 3)
        took = time.monotonic() - t0
    # a broker that takes the connection and never answers: the probe's deadline, not aiokafka's 40 s a request
    assert line.startswith(f"error: Kafka at 127.0.0.1:{port} does not answer (no answer in 10 s)"), line
    assert took < 30, f"{took:.1f} s"


@pytest.mark.servers
async def test_commands_fail_in_one_line_when_postgres_cannot_be_reached(servers: Any) -> None:
    schema = unique("nopg")
    refused = engine_env(
        servers, unique("nopg"), schema, {"ENGINE_POSTGRES__DSN": "postgresql://engine@127.0.0.1:1/engine"}
    )
    cases = [(["replay", "--schema", schema], 3), (["rebuild"], 3), (["diff", "audit", schema], 2)]  # diff(1): 2
    with _silent_server() as port:
        silent = {**refused, "ENGINE_POSTGRES__DSN": f"postgresql://engine@127.0.0.1:{port}/engine"}
        t0 = time.monotonic()
        with ThreadPoolExecutor(len(cases) + 1) as pool:
            hung = pool.submit(run_cli, ["diff", "audit", schema], silent, 90)
            results = list(pool.map(lambda case: run_cli(case[0], refused, 60), cases))
            hung_res = hung.result()
        took = time.monotonic() - t0
    for (args, code), res in zip(cases, results, strict=True):
        line = _one_error_line(res, code)
        assert line.startswith("error: PostgreSQL at 127.0.0.1:1 does not answer"), (args, line)
        assert "ENGINE_POSTGRES__DSN" in line
    # a server that takes the connection and never answers: the probe's deadline, not asyncpg's 60 s
    line = _one_error_line(hung_res, 2)
    assert line.startswith(f"error: PostgreSQL at 127.0.0.1:{port} does not answer (no answer in 10 s)"), line
    assert took < 30, f"{took:.1f} s"


@pytest.mark.servers
async def test_rebuild_refuses_a_schema_that_is_not_an_audit_schema_before_folding_anything(servers: Any) -> None:
    schema = unique("notaudit")
    conn = await asyncpg.connect(servers.pg_dsn)
    try:
        await conn.execute(f"create schema {schema}; create table {schema}.mine (x int)")
        res = run_cli(["rebuild"], engine_env(servers, unique("notaudit"), schema), timeout=60)
        line = _one_error_line(res, 2)
        assert line.startswith(f"error: schema '{schema}' exists and holds no audit projection"), line
        assert await conn.fetchval("select count(*) from pg_namespace where nspname like $1", f"{schema}_%") == 0
    finally:
        await conn.execute(f"drop schema if exists {schema} cascade")
        await conn.close()


def test_each_kind_of_error_has_its_exit_code() -> None:
    from adapters.feeds.recorded import RecordedFileError
    from engine.config import ConfigError
    from ops.stack import StackError
    from projections.audit import SchemaVersionMismatch
    from projections.replay import NotComparable, SchemaExists
    from projections.runner import OffsetNotInLog

    codes = {
        exc: engine_error(exc)
        for exc in (
            ConfigError("c"),
            RecordedFileError("r"),
            SchemaExists("s"),
            SchemaVersionMismatch("v"),
            NotComparable("n"),
            StackError("k"),
            OffsetNotInLog("o"),
            ConnectionRefusedError(111, "refused"),
            asyncpg.UndefinedTableError("u"),
        )
    }
    assert {type(e).__name__: (err.exit_code if err else None) for e, err in codes.items()} == {
        "ConfigError": 2,
        "RecordedFileError": 2,
        "SchemaExists": 2,
        "SchemaVersionMismatch": 2,
        "NotComparable": 2,
        "StackError": 1,
        "OffsetNotInLog": 1,
        "ConnectionRefusedError": 3,
        "UndefinedTableError": 1,
    }
    assert engine_error(FileNotFoundError(2, "no such file")) is None  # not a server: a bug, told as one
    assert engine_error(KeyError("x")) is None


# --- Ctrl-C ----------------------------------------------------------------------------------------------------------


@pytest.mark.servers
async def test_ctrl_c_stops_a_replay_mid_way_with_130_and_cleans_up(servers: Any) -> None:
    """A replay with --replace waits to drop the old schema while another session reads one of its tables; Ctrl-C then
    stops it at once: exit 130, no traceback, and its DROP is cancelled in PostgreSQL (the schema is still there
    after the reader lets go), not left waiting to drop it later."""
    schema = unique("ctrlc")
    reader, watcher = await asyncpg.connect(servers.pg_dsn), await asyncpg.connect(servers.pg_dsn)

    async def waiting_drops() -> int:
        return int(
            await watcher.fetchval(
                "select count(*) from pg_stat_activity where query = $1 and state = 'active'",
                f'DROP SCHEMA "{schema}" CASCADE',
            )
        )

    try:
        await reader.execute(f"create schema {schema}; create table {schema}.kept (x int)")
        reading = reader.transaction()
        await reading.start()
        await reader.execute(f"lock table {schema}.kept in access share mode")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "engine",
            "replay",
            "--schema",
            schema,
            "--replace",
            env=engine_env(servers, unique("ctrlc"), schema),
            cwd=REPO,
            stdout=PIPE,
            stderr=PIPE,
        )
        try:

            async def drop_waits() -> bool:
                return await waiting_drops() == 1 or proc.returncode is not None

            await wait_for(drop_waits, 60, "the replay to wait for its DROP SCHEMA")
            assert proc.returncode is None, await proc.communicate()
            proc.send_signal(signal.SIGINT)
            t0 = time.monotonic()
            out, err = (b.decode() for b in await asyncio.wait_for(proc.communicate(), 30))
            took = time.monotonic() - t0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 130, (proc.returncode, out, err)
        assert took < 10, f"{took:.1f} s from Ctrl-C to exit"
        assert "Traceback" not in out + err and err.splitlines()[-1] == "interrupted", err
        assert out == ""

        async def no_drop() -> bool:
            return await waiting_drops() == 0

        await wait_for(no_drop, 10, "the replay's DROP SCHEMA to be cancelled")
        await reading.rollback()
        assert await watcher.fetchval("select to_regclass($1) is not null", f"{schema}.kept")
    finally:
        await reader.close()  # and its lock, should the test have failed before the rollback
        await watcher.execute(f"drop schema if exists {schema} cascade")
        await watcher.close()
