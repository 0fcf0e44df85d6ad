"""A command whose output's reader went away (``... | head -1``) stops quietly, as a Unix tool does: no "server
cannot be reached" line for a broken pipe on stdout."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from tests.support import REPO, engine_env, unique

pytestmark = pytest.mark.servers


@pytest.mark.parametrize("unbuffered", ["1", ""])
def test_a_closed_stdout_is_not_a_server_gone(servers: Any, unbuffered: str) -> None:
    env = engine_env(servers, unique("pipe"), unique("pipe"), {"PYTHONUNBUFFERED": unbuffered})
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command prints anything
    try:
        res = subprocess.run(
            [sys.executable, "-m", "engine", "stack", "status"],
            env=env,
            cwd=REPO,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write)
    assert res.returncode == 1, res.stderr
    assert res.stderr == "", res.stderr
