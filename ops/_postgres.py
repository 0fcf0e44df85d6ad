"""The local PostgreSQL server: Debian's binaries, the project's data directory, 127.0.0.1 only, locked.

Locked: every role has a password, generated at the first ``up`` and kept in libpq password files under the state
directory, mode 0600 (:data:`APP_ROLES` in ``<state>/pgpass``, the one the engine's commands use, and
:data:`MAINTENANCE` alone in ``<state>/pgpass-maintenance``, which no command of the engine reads); ``pg_hba.conf``
has no ``trust`` line: ``scram-sha-256`` for every role, on 127.0.0.1, ::1 and the socket, and the superuser
``postgres`` only through the socket, as the OS user running the server (``peer``). A data directory made before
(trust, roles without passwords) is brought to that by the next ``up``, its data kept.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import subprocess
from pathlib import Path

from ops._proc import alive, port_open, wait_until, write_private

OWNER = "engine"
APP_ROLES = (OWNER, "engine_writer", "engine_reader")
MAINTENANCE = "engine_maintenance"  # the one role that may change an append-only table; no engine command uses it
MAINTENANCE_PASSFILE = "pgpass-maintenance"  # in the state directory, beside the engine's (STACK_PASSFILE)

# the owner has no CREATEROLE: with it (PostgreSQL 15), it could give itself the maintenance role or its password
ROLES = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'engine') THEN
        CREATE ROLE engine LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'engine_writer') THEN
        CREATE ROLE engine_writer LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'engine_reader') THEN
        CREATE ROLE engine_reader LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'engine_maintenance') THEN
        CREATE ROLE engine_maintenance LOGIN;
    END IF;
END $$;
ALTER ROLE engine NOCREATEROLE;
"""

HBA = """\
# Written by `python -m engine stack up` (ops/_postgres.py), again at each up: no trust anywhere.
# The superuser only through the socket, as the OS user running the server; every other role with its password.
local   all   postgres                  peer map=stack
local   all   all                       scram-sha-256
host    all   postgres   127.0.0.1/32   reject
host    all   postgres   ::1/128        reject
host    all   all        127.0.0.1/32   scram-sha-256
host    all   all        ::1/128        scram-sha-256
"""


HBA_SECURE = """\
# Written by `python -m engine stack up --secure` (ops/_postgres.py), again at each up: no trust anywhere, and
# over TCP only TLS (hostssl). The superuser only through the socket, as the OS user running the server.
local     all   postgres                  peer map=stack
local     all   all                       scram-sha-256
host      all   postgres   127.0.0.1/32   reject
host      all   postgres   ::1/128        reject
hostnossl all   all        127.0.0.1/32   reject
hostnossl all   all        ::1/128        reject
hostssl   all   all        127.0.0.1/32   scram-sha-256
hostssl   all   all        ::1/128        scram-sha-256
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


def _as_postgres(cmd: list[str], log: Path, stdin: str | None = None) -> int:
    """Run a server command as the postgres user when we are root (initdb and postgres refuse root)."""
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    with log.open("ab") as out:
        return subprocess.run(
            cmd,
            input=None if stdin is None else stdin.encode(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL if stdin is None else None,
            check=False,
        ).returncode


def _server_user() -> str:
    """The OS user the server runs as: postgres when we are root, else we."""
    return "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name


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
            [
                str(bins / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
            log,
        )
        != 0
    ):
        raise PostgresError("initdb failed")
    _write_hba(data)
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


def _write_hba(data: Path, hba: str = HBA) -> bool:
    """pg_hba.conf (``hba``: :data:`HBA` or :data:`HBA_SECURE`) and pg_ident.conf; True when either changed (the
    server must reload)."""
    changed = False
    for name, text in (("pg_hba.conf", hba), ("pg_ident.conf", f"stack   {_server_user()}   postgres\n")):
        path = data / name
        with contextlib.suppress(OSError):
            if path.read_text() == text:
                continue
        path.write_text(text)
        _own(path)
        os.chmod(path, 0o600)
        changed = True
    return changed


def _psql(bins: Path, state: Path, port: int) -> list[str]:
    """psql as the superuser, through the socket (peer)."""
    return [
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
        "-X",
    ]


def read_passfile(path: Path) -> dict[str, str]:
    """role -> password, from a password file written by :func:`write_passfile` (an absent one: none)."""
    out: dict[str, str] = {}
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text().splitlines():
            fields = line.split(":")
            if len(fields) == 5 and not line.startswith("#"):
                out.setdefault(fields[3], fields[4])
    return out


def write_passfile(path: Path, passwords: dict[str, str], port: int, socket_dir: Path) -> None:
    """A libpq password file (PGPASSFILE) for these roles on the local server: 127.0.0.1, localhost and the socket.

    Made mode 0600 before anything is written to it, then renamed over the old one. Passwords are
    ``secrets.token_urlsafe``: no ``:`` or ``\\`` to escape."""
    hosts = ("127.0.0.1", "localhost", str(socket_dir))
    text = "".join(f"{h}:{port}:*:{role}:{pw}\n" for role, pw in passwords.items() for h in hosts)
    write_private(path, text.encode())


def _tls_settings(bins: Path, state: Path, port: int, log: Path, tls: Path | None) -> None:
    """``ssl = on`` with the stack's server certificate (copied beside the data, owned by the server's user, key
    0600), or (``tls`` None) ssl back to its default (off), through ALTER SYSTEM; the reload that follows applies
    it."""
    if tls is None:
        sql = "ALTER SYSTEM RESET ssl;\nALTER SYSTEM RESET ssl_cert_file;\nALTER SYSTEM RESET ssl_key_file;\n"
    else:
        mine = state / "tls"
        mine.mkdir(exist_ok=True)
        for name in ("postgres.pem", "postgres-key.pem"):
            target = mine / name
            target.write_bytes((tls / name).read_bytes())
            os.chmod(target, 0o600)
        _own(mine)
        sql = (
            "ALTER SYSTEM SET ssl = on;\n"
            f"ALTER SYSTEM SET ssl_cert_file = '{mine / 'postgres.pem'}';\n"
            f"ALTER SYSTEM SET ssl_key_file = '{mine / 'postgres-key.pem'}';\n"
        )
    if _as_postgres([*_psql(bins, state, port), "-d", "postgres"], log, stdin=sql) != 0:
        raise PostgresError("setting ssl failed")


def ssl_on(bins: Path, state: Path, port: int) -> bool:
    query = [*_psql(bins, state, port), "-d", "postgres", "-Atc", "SHOW ssl"]
    return (
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *query] if os.geteuid() == 0 else query,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        == "on"
    )


def lock(
    bins: Path,
    state: Path,
    port: int,
    log: Path,
    passfile: Path,
    maintenance_passfile: Path,
    tls: Path | None = None,
) -> None:
    """Every role its password (generated once, kept in the password files, set again at each up), then pg_hba.conf
    without trust, and a reload when it changed. Idempotent; upgrades a data directory made with trust.

    With ``tls`` (the stack's certificates, ops/_tls.py: ``stack up --secure``) also ``ssl = on`` and
    :data:`HBA_SECURE` (TCP only over TLS); without, ssl off and :data:`HBA` again."""
    run = state / "run"
    known = read_passfile(passfile) | read_passfile(maintenance_passfile)
    passwords = {role: known.get(role) or secrets.token_urlsafe(24) for role in (*APP_ROLES, MAINTENANCE)}
    # the files first: a password set on the server is never one that is nowhere else
    for path, roles in ((passfile, APP_ROLES), (maintenance_passfile, (MAINTENANCE,))):
        wanted = {r: passwords[r] for r in roles}
        if read_passfile(path) != wanted or (path.stat().st_mode & 0o077):
            write_passfile(path, wanted, port, run)
    # on stdin, not the command line (ps shows that); and no failed statement echoed into the server's log
    sql = "SET log_min_error_statement = panic;\nSET log_statement = 'none';\n" + "".join(
        f"ALTER ROLE {role} PASSWORD '{pw}';\n" for role, pw in passwords.items()
    )
    if _as_postgres([*_psql(bins, state, port), "-d", "postgres"], log, stdin=sql) != 0:
        raise PostgresError("setting the roles' passwords failed")
    was_on = ssl_on(bins, state, port)
    if tls is not None or was_on:
        _tls_settings(bins, state, port, log, tls)
    changed = _write_hba(state / "data", HBA if tls is None else HBA_SECURE)
    if (changed or tls is not None or was_on) and _as_postgres(
        [*_psql(bins, state, port), "-d", "postgres", "-c", "SELECT pg_reload_conf()"], log
    ):
        raise PostgresError("reloading pg_hba.conf failed")
    if tls is not None and not wait_until(lambda: ssl_on(bins, state, port), 10):
        raise PostgresError("ssl = on did not take (the server certificate refused?)")


def create_roles(bins: Path, state: Path, port: int, log: Path) -> None:
    """The owner ``engine`` (owns database ``engine``), the writer, reader and maintenance roles. Idempotent."""
    psql = _psql(bins, state, port)
    if _as_postgres([*psql, "-d", "postgres", "-c", ROLES], log) != 0:
        raise PostgresError("creating the roles failed")
    query = [*psql, "-d", "postgres", "-Atc", "SELECT 1 FROM pg_database WHERE datname = 'engine'"]
    exists = subprocess.run(
        ["runuser", "-u", "postgres", "--", *query] if os.geteuid() == 0 else query,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if not exists and _as_postgres([*psql, "-d", "postgres", "-c", "CREATE DATABASE engine OWNER engine"], log) != 0:
        raise PostgresError("creating the database failed")


def wait_ready(host: str, port: int, seconds: float) -> bool:
    return wait_until(lambda: port_open(host, port), seconds)
