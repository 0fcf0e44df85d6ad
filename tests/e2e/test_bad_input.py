"""Bad input gets one line and exit code 2, and writes nothing: a recorded file that is empty, truncated or holds an
impossible trade is refused before any topic, event or schema exists, and so is a schema name that is not one."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from adapters.kafka_security import client_args
from tests.support import SHARED_TRADES, engine_env, run_cli, unique

pytestmark = pytest.mark.servers


def _rows(n: int = 60) -> list[list[Any]]:
    with gzip.open(SHARED_TRADES, "rt") as fh:
        rows: list[list[Any]] = json.load(fh)[:n]
    return rows


def _write(path: Path, rows: list[list[Any]], *, bare: str | None = None) -> Path:
    """Rows as JSON; ``bare``: a JSON literal (NaN, Infinity) written in place of row 41's price."""
    text = json.dumps(rows)
    if bare is not None:
        text = text.replace('"__BARE__"', bare)
    path.write_text(text)
    return path


def _with(price: Any = None, amount: Any = None) -> list[list[Any]]:
    rows = _rows()
    if price is not None:
        rows[40][4] = price
    if amount is not None:
        rows[40][5] = amount
    return rows


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _truncated(path: Path) -> Path:
    raw = SHARED_TRADES.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return path


FILES: dict[str, tuple[Any, str]] = {  # name -> (how to make it in a directory, what stderr says)
    "empty.json": (lambda p: _text(p, ""), "empty: no trades"),
    "no-trades.json": (lambda p: _write(p, []), "no trades (an empty JSON array)"),
    "object.json": (lambda p: _text(p, '{"trades": []}'), "line 1: a trade without timestamp, id, side, price, amount"),
    "truncated.json.gz": (_truncated, "a truncated or corrupt gzip file"),
    "cut.json": (lambda p: _text(p, json.dumps(_rows())[:-500]), "row 54: not JSON"),
    "negative-amount.json": (lambda p: _write(p, _with(amount=-500.0)), "row 41: amount: must be > 0, got '-500.0'"),
    "zero-price.json": (lambda p: _write(p, _with(price=0)), "row 41: price: must be > 0, got '0'"),
    "nan-price.json": (
        lambda p: _write(p, _with(price="__BARE__"), bare="NaN"),
        "row 41: price: not a finite decimal: 'NaN'",
    ),
    "infinite-price.json": (
        lambda p: _write(p, _with(price="__BARE__"), bare="Infinity"),
        "row 41: price: not a finite decimal: 'Infinity'",
    ),
    "huge-price.json": (
        lambda p: _write(p, _with(price="__BARE__"), bare="1E+400"),
        "row 41: price: '1E+400' is out of range",
    ),
    "text-price.json": (lambda p: _write(p, _with(price="abc")), 'row 41: price "abc" is not a number'),
}


async def _nothing_written(servers: Any, prefix: str, schema: str) -> None:
    admin = AIOKafkaAdminClient(**client_args(servers.kafka_bootstrap))
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(prefix)]
    finally:
        await admin.close()
    assert topics == []
    conn = await asyncpg.connect(servers.pg_dsn)
    try:
        assert await conn.fetchval("select count(*) from pg_namespace where nspname = $1", schema) == 0
    finally:
        await conn.close()


def _one_error_line(res: Any) -> str:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return str(lines[0])


@pytest.mark.parametrize("name", sorted(FILES))
async def test_a_bad_recorded_file_is_refused_before_anything_is_written(
    servers: Any, tmp_path: Path, name: str
) -> None:
    make, says = FILES[name]
    path = make(tmp_path / name)
    prefix, schema = unique("badfile"), unique("badfile")
    res = run_cli(
        ["run", "--file", str(path), "--symbol", "XRP/ETH", "--port", "0"],
        engine_env(servers, prefix, schema),
        timeout=60,
    )
    line = _one_error_line(res)
    assert str(path) in line and says in line, line
    await _nothing_written(servers, prefix, schema)


async def test_a_bad_symbol_is_refused_before_anything_is_written(servers: Any) -> None:
    prefix, schema = unique("badsym"), unique("badsym")
    res = run_cli(
        ["run", "--file", str(SHARED_TRADES), "--symbol", "XRP/ETH; drop", "--port", "0"],
        engine_env(servers, prefix, schema),
        timeout=60,
    )
    assert "feed.symbol: 'XRP/ETH; drop' is not an instrument name" in _one_error_line(res)
    await _nothing_written(servers, prefix, schema)


@pytest.mark.parametrize(
    "args",
    [
        ["diff", 'a"; --', "audit"],
        ["diff", "audit", "B"],
        ["replay", "--schema", "a; drop table x"],
        ["replay", "--schema", "x" * 64],
    ],
    ids=["diff-quote", "diff-upper", "replay-semicolon", "replay-too-long"],
)
async def test_a_schema_name_that_is_not_one_is_refused_as_bad_usage(servers: Any, args: list[str]) -> None:
    prefix, schema = unique("badschema"), unique("badschema")
    line = _one_error_line(run_cli(args, engine_env(servers, prefix, schema), timeout=60))
    assert "is not a valid name: use lower-case letters, digits and _" in line, line
    await _nothing_written(servers, prefix, schema)
