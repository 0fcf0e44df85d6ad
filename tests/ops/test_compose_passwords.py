"""compose.yaml's PostgreSQL has no trust and no role without a password: the passwords come from the environment of
``docker compose up``, the engine reads them from a password file its entrypoint writes (0600), and no DSN carries
one. The entrypoint's shell is run here for real (with the file in a temporary folder); the image's init script is
not (no Docker engine on these machines): its SQL is read."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]


def test_no_trust_and_every_password_is_required_from_the_environment() -> None:
    text = (REPO / "compose.yaml").read_text()
    assert "trust" not in re.sub(r"#.*", "", text), "a trust line or setting in compose.yaml"
    pg = SERVICES["postgres"]["environment"]
    engine = SERVICES["engine"]["environment"]
    for value in (pg["POSTGRES_PASSWORD"], pg["PG_WRITER_PASSWORD"], pg["PG_READER_PASSWORD"]):
        assert re.fullmatch(r"\$\{PG_(WRITER_|READER_)?PASSWORD:\?[^}]+\}", value), value  # required
    for role in ("PG_PASSWORD", "PG_WRITER_PASSWORD", "PG_READER_PASSWORD"):
        assert engine[role].startswith(f"${{{role}:?"), engine[role]  # the same variables as the server's
    assert pg["POSTGRES_PASSWORD"].startswith("${PG_PASSWORD:?")
    for name, svc in SERVICES.items():
        for key, value in (svc.get("environment") or {}).items():
            if "DSN" in key:
                assert re.match(r"postgresql://[^:@/]+@", value), f"{name}.{key} carries a password: {value}"


def test_the_init_script_gives_the_writer_and_the_reader_their_passwords() -> None:
    mount = next(v for v in SERVICES["postgres"]["volumes"] if "postgres-roles.sh" in v)
    host, target = mount.split(":")[:2]
    assert target.startswith("/docker-entrypoint-initdb.d/") and (REPO / host).is_file()
    script = (REPO / host).read_text()
    assert "CREATE ROLE engine_writer LOGIN PASSWORD :'writer'" in script
    assert "CREATE ROLE engine_reader LOGIN PASSWORD :'reader'" in script
    assert subprocess.run(["sh", "-n", str(REPO / host)], check=False).returncode == 0


def test_the_engine_entrypoint_writes_a_password_file_only_its_user_reads(tmp_path: Path) -> None:
    entry = SERVICES["engine"]["entrypoint"]
    assert entry[:2] == ["sh", "-c"]
    passfile = SERVICES["engine"]["environment"]["ENGINE_POSTGRES__PASSFILE"]
    here = tmp_path / "pgpass"
    # compose turns $$ into $; the file goes to a temporary folder instead of the container's /tmp
    script = entry[2].replace("$$", "$").replace(passfile, str(here))
    python = tmp_path / "bin"
    python.mkdir()
    (python / "python").symlink_to(sys.executable)
    env = {
        **os.environ,
        "PATH": f"{python}:{os.environ['PATH']}",
        "PG_PASSWORD": "o1",
        "PG_WRITER_PASSWORD": "w2",
        "PG_READER_PASSWORD": "r3",
    }
    res = subprocess.run(
        ["sh", "-c", script, *entry[3:], "--version"], env=env, capture_output=True, text=True, cwd=REPO, check=False
    )
    assert res.returncode == 0 and "engine" in res.stdout, res.stderr
    assert here.read_text().splitlines() == [
        "postgres:5432:engine:engine:o1",
        "postgres:5432:engine:engine_writer:w2",
        "postgres:5432:engine:engine_reader:r3",
    ]
    assert stat.S_IMODE(here.stat().st_mode) == 0o600
