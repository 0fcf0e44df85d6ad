"""The local PostgreSQL server: Debian's binaries, the project's data directory, 127.0.0.1 only."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

from ops._proc import alive, port_open, wait_until

ROLES = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'engine') THEN
        CREATE ROLE engine LOGIN CREATEROLE;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'engine_writer') THEN
        CREATE ROLE engine_writer LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'engine_reader') THEN
        CREATE ROLE engine_reader LOGIN;
    END IF;
END $$;
"""


class PostgresError(Exception):
    pass


def bin_dir(install: bool) -> Path:
    """The newest installed server's binaries; install Debian's postgresql when none is (as root)."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if versions:
        return versions[-1].parent
    if not install:
        raise PostgresError("no PostgreSQL server found: apt-get install postgresql")
    if os.geteuid() != 0:
        raise PostgresError("no PostgreSQL server found, and installing it needs root: sudo apt-get install postgresql")
    print("installing Debian's postgresql package (once)...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "postgresql"]):
        if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=False).returncode != 0:
            raise PostgresError(f"{' '.join(cmd)} failed")
    return bin_dir(install=False)


def _as_postgres(cmd: list[str], log: Path) -> int:
    """Run a server command as the postgres user when we are root (initdb and postgres refuse root)."""
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    with log.open("ab") as out:
        return subprocess.run(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False
        ).returncode


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        for p in (path, *path.rglob("*")):
            os.chown(p, pw.pw_uid, pw.pw_gid)


def _traversable(path: Path) -> None:
    """The postgres user must be able to reach the data directory through every parent."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            os.chmod(parent, mode | 0o001)


def init(bins: Path, state: Path, port: int, log: Path) -> None:
    data = state / "data"
    run = state / "run"
    if (data / "PG_VERSION").exists():
        return
    state.mkdir(parents=True, exist_ok=True)
    run.mkdir(exist_ok=True)
    data.mkdir(exist_ok=True)
    _own(state)
    _traversable(state)
    if (
        _as_postgres(
            [str(bins / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8"],
            log,
        )
        != 0
    ):
        raise PostgresError("initdb failed")
    # local development stack only: trust on loopback, nothing else listens
    (data / "pg_hba.conf").write_text(
        "local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n"
    )
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(
            f"\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{run}'\n"
            "fsync = on\nshared_buffers = 256MB\nmax_connections = 200\n"
        )
    _own(state)


def start(bins: Path, state: Path, log: Path) -> None:
    lock = state / "data" / "postmaster.pid"
    if lock.exists() and not alive(pid(state)):
        # a crashed server's lock file: its process is gone, or a zombie its parent has not reaped yet, which the
        # new server would take for a running one (kill(pid, 0) succeeds on a zombie) and refuse to start; and the
        # lock files of its sockets, for the same reason
        lock.unlink()
        for socket_lock in (state / "run").glob(".s.PGSQL.*.lock"):
            socket_lock.unlink(missing_ok=True)
    if (
        _as_postgres([str(bins / "pg_ctl"), "-D", str(state / "data"), "-l", str(log), "-w", "-t", "60", "start"], log)
        != 0
    ):
        raise PostgresError("pg_ctl start failed")


def running(bins: Path, state: Path) -> bool:
    if not (state / "data" / "postmaster.pid").exists() or not alive(pid(state)):
        return False  # (pg_ctl status says "running" for a killed server that is still a zombie)
    return _as_postgres([str(bins / "pg_ctl"), "-D", str(state / "data"), "status"], Path(os.devnull)) == 0


def pid(state: Path) -> int | None:
    try:
        return int((state / "data" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stop(bins: Path, state: Path, log: Path) -> None:
    if running(bins, state):
        _as_postgres([str(bins / "pg_ctl"), "-D", str(state / "data"), "-m", "fast", "-w", "stop"], log)


def create_roles(bins: Path, state: Path, port: int, log: Path) -> None:
    """The owner ``engine`` (owns database ``engine``), the writer and the reader roles. Idempotent."""
    psql = [
        str(bins / "psql"),
        "-h",
        str(state / "run"),
        "-p",
        str(port),
        "-U",
        "postgres",
        "-v",
        "ON_ERROR_STOP=1",
        "-q",
    ]
    if _as_postgres([*psql, "-d", "postgres", "-c", ROLES], log) != 0:
        raise PostgresError("creating the roles failed")
    exists = subprocess.run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            *psql,
            "-d",
            "postgres",
            "-Atc",
            "SELECT 1 FROM pg_database WHERE datname = 'engine'",
        ]
        if os.geteuid() == 0
        else [*psql, "-d", "postgres", "-Atc", "SELECT 1 FROM pg_database WHERE datname = 'engine'"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if not exists and _as_postgres([*psql, "-d", "postgres", "-c", "CREATE DATABASE engine OWNER engine"], log) != 0:
        raise PostgresError("creating the database failed")


def wait_ready(host: str, port: int, seconds: float) -> bool:
    return wait_until(lambda: port_open(host, port), seconds)
