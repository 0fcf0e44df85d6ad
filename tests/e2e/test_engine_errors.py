"""The engine fails plainly: a missing file, or a bad one (with the row and the reason), before anything starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support import engine_env, run_cli, unique

pytestmark = pytest.mark.servers


def test_a_missing_file_is_refused_before_anything_starts(servers: Any, tmp_path: Path) -> None:
    res = run_cli(
        ["run", "--file", str(tmp_path / "nope.json"), "--symbol", "X/Y"],
        engine_env(servers, unique("err"), unique("err")),
    )
    assert res.returncode == 2
    assert "feed.path" in res.stderr and "no such file" in res.stderr


def test_a_bad_file_is_refused_with_the_row_and_the_reason_before_anything_starts(servers: Any, tmp_path: Path) -> None:
    """Before, the engine started, wrote its topics and an EngineStarted/EngineStopped pair, then stopped on the
    row; now the whole file is checked first (tests/e2e/test_bad_input.py checks that nothing is written)."""
    bad = tmp_path / "bad.json"
    bad.write_text('[[1570752011620, "1", null, "hold", 0.0014, 1.0, 0.0014]]')
    res = run_cli(["run", "--file", str(bad), "--symbol", "XRP/ETH"], engine_env(servers, unique("err"), unique("err")))
    assert res.returncode == 2
    assert res.stderr == f'error: {bad}: row 1: side "hold" is not "buy" or "sell"\n'
