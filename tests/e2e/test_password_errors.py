"""A refused password is one line that says where the password was looked for (never the password itself)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.support import engine_env, run_cli, unique

pytestmark = pytest.mark.servers


def test_a_missing_or_wrong_password_file_is_named(servers: Any, tmp_path: Path) -> None:
    env = engine_env(servers, unique("pw"), unique("pw"))
    env["ENGINE_POSTGRES__DSN"] = re.sub(r"//([^:@/]+):[^@]*@", r"//\1@", servers.pg_dsn)  # the password from a file
    env.pop("PGPASSWORD", None)
    absent = tmp_path / "absent-pgpass"
    res = run_cli(["replay", "--schema", unique("pw")], {**env, "ENGINE_POSTGRES__PASSFILE": str(absent)})
    assert res.returncode == 2, res.stderr
    assert f"the password was looked for in PGPASSFILE {absent}, which does not exist" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr

    wrong = tmp_path / "wrong-pgpass"
    wrong.write_text("*:*:*:*:not-the-password-4711\n")
    wrong.chmod(0o600)
    res = run_cli(["replay", "--schema", unique("pw")], {**env, "ENGINE_POSTGRES__PASSFILE": str(wrong)})
    assert res.returncode == 2, res.stderr
    assert "password authentication failed" in res.stderr and f"PGPASSFILE {wrong} (postgres.passfile)" in res.stderr
    assert "not-the-password-4711" not in res.stderr + res.stdout
