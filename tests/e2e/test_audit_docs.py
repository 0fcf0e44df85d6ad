"""docs/audit-schema.md tells the truth: every example query runs, as the read-only role, and finds rows;
and the roles and the append-only rules hold."""

from __future__ import annotations

import json
import re
from typing import Any

import asyncpg
import pytest

from engine.config import with_user
from tests.support import REPO, SHARED_TRADES, engine_env, run_cli, unique

pytestmark = pytest.mark.servers

QUERIES = re.findall(r"```sql\n(.*?)```", (REPO / "docs" / "audit-schema.md").read_text(), re.S)


# two strategies in one engine, given as JSON in the environment: ma_cross, and bollinger (whose exits are a
# bracket: stops the engine holds)
STRATEGIES = json.dumps(
    [
        {"name": "ma_cross", "kind": "ma_cross", "params": {"quantity": "100"}},
        {"name": "bollinger", "kind": "bollinger", "params": {"quantity": "100", "window": 30}},
    ]
)


@pytest.fixture(scope="module")
def populated(servers: Any) -> str:
    """The real trades, with a notional limit that makes risk refuse the orders at the higher prices."""
    prefix, schema = unique("docs"), unique("docs")
    env = engine_env(
        servers,
        prefix,
        schema,
        {
            "ENGINE_STRATEGIES": STRATEGIES,
            "ENGINE_RISK__MAX_POSITION": "300",
            "ENGINE_RISK__MAX_ORDER_NOTIONAL": "0.146",
        },
    )
    res = run_cli(["run", "--file", str(SHARED_TRADES), "--symbol", "XRP/ETH"], env)
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    return schema


def test_the_document_has_at_least_ten_queries() -> None:
    assert len(QUERIES) >= 10


@pytest.mark.parametrize("n", range(len(QUERIES)))
async def test_each_documented_query_finds_rows_as_the_reader(servers: Any, populated: str, n: int) -> None:
    query = QUERIES[n].replace("audit.", f"{populated}.")
    conn = await asyncpg.connect(with_user(servers.pg_dsn, "engine_reader"))
    try:
        rows = await conn.fetch(query)
    finally:
        await conn.close()
    assert rows, f"query {n} found nothing:\n{QUERIES[n]}"


async def test_the_reader_cannot_write(servers: Any, populated: str) -> None:
    conn = await asyncpg.connect(with_user(servers.pg_dsn, "engine_reader"))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(f"delete from {populated}.orders")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(f"insert into {populated}.system_events values (gen_random_uuid(), 'x', 'x', '{{}}', 0)")
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "statement",
    [
        "update {s}.fills set price = 0",
        "delete from {s}.events",
        "truncate {s}.order_events",
        "update {s}.order_events set reason = 'x'",
    ],
)
async def test_append_only_tables_refuse_changes_by_the_writer(servers: Any, populated: str, statement: str) -> None:
    conn = await asyncpg.connect(with_user(servers.pg_dsn, "engine_writer"))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(statement.format(s=populated))
    finally:
        await conn.close()


async def test_the_writer_may_update_current_state_but_owns_nothing(servers: Any, populated: str) -> None:
    conn = await asyncpg.connect(with_user(servers.pg_dsn, "engine_writer"))
    try:
        assert await conn.execute(f"update {populated}.positions set fills = fills") != "UPDATE 0"
        owned = await conn.fetchval(
            "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = $1 and pg_get_userbyid(c.relowner) = 'engine_writer'",
            populated,
        )
        assert owned == 0
    finally:
        await conn.close()


async def test_the_trigger_stops_a_role_that_was_granted_update(servers: Any, populated: str) -> None:
    """Grants are one wall; the trigger is the second: even a granted UPDATE is refused, the owner's too."""
    owner = await asyncpg.connect(servers.pg_dsn)
    try:
        await owner.execute(f"grant update on {populated}.fills to engine_writer")
        writer = await asyncpg.connect(with_user(servers.pg_dsn, "engine_writer"))
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await writer.execute(f"update {populated}.fills set price = price")
        finally:
            await writer.close()
            await owner.execute(f"revoke update on {populated}.fills from engine_writer")
        # nor can the owner: only engine_maintenance may correct a row (tests/e2e/test_db_locked.py)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await owner.execute(f"update {populated}.fills set price = price")
    finally:
        await owner.close()
