"""Bad usage of ``python -m engine``, as a user types it: one line on stderr starting ``error:``, exit code 2, no
traceback, and nothing started. Counts, durations, rates and ports out of range are refused by the argument parser;
an ``ENGINE_*`` environment variable that names no setting is refused with the closest name that does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from engine import config as cfg

REPO = Path(__file__).resolve().parents[2]


def _cli(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.upper().startswith("ENGINE_")} | env
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        env=environ,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _refused(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert res.stdout == ""
    return lines[0]


BAD_ARGUMENTS = [
    (["run", "--ticks", "-5"], "argument --ticks: '-5' is not a whole number of at least 1"),
    (["run", "--ticks", "0"], "argument --ticks: '0' is not a whole number of at least 1"),
    (["run", "--ticks", "many"], "argument --ticks: 'many' is not a whole number of at least 1"),
    (["run", "--duration", "-1"], "argument --duration: '-1' is not a number above 0"),
    (["run", "--duration", "nan"], "argument --duration: 'nan' is not a number above 0"),
    (["run", "--duration", "inf"], "argument --duration: 'inf' is not a number above 0"),
    (["run", "--rate", "0"], "argument --rate: '0' is not a number above 0"),
    (["run", "--speed", "-1"], "argument --speed: '-1' is not a number of at least 0"),
    (["run", "--speed", "NaN"], "argument --speed: 'NaN' is not a number of at least 0"),
    (["run", "--drain-timeout", "-1"], "argument --drain-timeout: '-1' is not a number of at least 0"),
    (["run", "--port", "70000"], "argument --port: '70000' is not a whole number from 0 to 65535"),
    (["project", "--port", "-1"], "argument --port: '-1' is not a whole number from 0 to 65535"),
    (["diff", "audit", "other", "--limit", "-1"], "argument --limit: '-1' is not a whole number of at least 0"),
    (["diff", 'a"; --', "b"], "argument schema_a: 'a\"; --' is not a valid name"),
    (["replay", "--schema", "a; drop table x"], "argument --schema: 'a; drop table x' is not a valid name"),
    (["replay"], "the following arguments are required: --schema"),
    (["replay", "--schema", "x", "--workers", "0"], "argument --workers: '0' is not a whole number of at least 1"),
    (["run", "--no-such-option"], "unrecognized arguments: --no-such-option"),
    (["no-such-command"], "argument COMMAND: invalid choice: 'no-such-command'"),
]


def test_bad_arguments_are_refused_with_one_line_and_exit_code_2() -> None:
    with ThreadPoolExecutor(4) as pool:  # a process each, as a user runs them
        results = list(pool.map(lambda case: _cli(case[0]), BAD_ARGUMENTS))
    for (args, says), res in zip(BAD_ARGUMENTS, results, strict=True):
        line = _refused(res)
        assert says in line, (args, line)
        assert re.search(r" \(see python -m engine( [a-z]+)? --help\)$", line), line  # where to read more


@pytest.mark.parametrize(
    ("name", "says"),
    [
        (
            "ENGINE_FOO__BAR",
            "error: unknown setting ENGINE_FOO__BAR (settings are ENGINE_<SECTION>__<KEY>: see docs/configuration.md)",
        ),
        (
            "ENGINE_KAFKA__BOOTSTRAPP",
            "error: unknown setting ENGINE_KAFKA__BOOTSTRAPP (did you mean ENGINE_KAFKA__BOOTSTRAP?)",
        ),
        (
            "engine_risk__max_positon",
            "error: unknown setting engine_risk__max_positon (did you mean ENGINE_RISK__MAX_POSITION?)",
        ),
        (
            "ENGINE_POSTGRES__SCHEMA_",
            "error: unknown setting ENGINE_POSTGRES__SCHEMA_ (did you mean ENGINE_POSTGRES__SCHEMA?)",
        ),
    ],
)
def test_an_unknown_engine_variable_is_refused_at_start_with_the_closest_name(name: str, says: str) -> None:
    assert _refused(_cli(["stack", "status"], **{name: "5"})) == says


def test_a_bad_setting_is_one_line() -> None:
    line = _refused(_cli(["stack", "status"], ENGINE_KAFKA__PARTITIONS="many"))
    assert line.startswith("error: invalid configuration: kafka.partitions: ") and "ENGINE_KAFKA__PARTITIONS" in line


def test_every_setting_and_every_engine_variable_the_repository_uses_is_known(monkeypatch: pytest.MonkeyPatch) -> None:
    """The known names come from the Settings model (every section and key), plus the few read elsewhere; every
    ENGINE_* name the code, tests and docs mention is one of them (or the start of one, as in ENGINE_RISK__...)."""
    names, prefixes = cfg.known_variables()
    for section, field in cfg.Settings.model_fields.items():
        assert f"ENGINE_{section.upper()}" in names
        for key, sub in getattr(field.annotation, "model_fields", {}).items():
            assert f"ENGINE_{section.upper()}__{(sub.alias or key).upper()}" in names
    assert {"ENGINE_CONFIG", "ENGINE_TESTS_KEEP", "ENGINE_KAFKA_LIB_DIR", "ENGINE_POSTGRES__SCHEMA"} <= names
    assert prefixes == ("ENGINE_STRATEGY__PARAMS__", "ENGINE_VENUE__STARTING_BALANCES__")
    mentioned: set[str] = set()
    for path in [
        *REPO.glob("*.md"),
        *REPO.glob("compose.yaml"),
        *(
            p
            for d in ("engine", "events", "adapters", "projections", "ops", "tests", "benchmarks", "docs")
            for p in (REPO / d).rglob("*")
            if p.suffix in (".py", ".md", ".sh", ".yaml", ".yml", ".toml")
        ),
    ]:
        if path.resolve() != Path(__file__).resolve():  # this file plants unknown names on purpose
            text = path.read_text(errors="replace")
            examples = set(re.findall(r"unknown setting (ENGINE_[A-Z0-9_]+)", text))  # a refusal shown in the docs
            mentioned |= set(re.findall(r"\bENGINE_[A-Z0-9_]*[A-Z0-9]", text)) - examples
    assert {"ENGINE_KAFKA__BOOTSTRAP", "ENGINE_TESTS_KEEP", "ENGINE_CONFIG"} <= mentioned
    for name in sorted(mentioned):
        environ = {name: "1"}
        if not cfg.unknown_variables(environ):
            continue
        assert any(known.startswith(name) for known in names), f"{name} is mentioned but names no setting"
    monkeypatch.setenv("ENGINE_VENUE__STARTING_BALANCES__USDT", "5")
    monkeypatch.setenv("ENGINE_TESTS_KEEP", "1")
    assert cfg.load().venue.starting_balances == {"usdt": 5}
