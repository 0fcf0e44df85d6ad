"""A projection schema is never altered in place: a worker refuses a schema built by another version of the
audit projection and says how to build the new one (a versioned rebuild from the log)."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.postgres import create_pool
from projections.audit import SCHEMA_VERSION, SchemaVersionMismatch, create_schema, schema_version
from projections.replay import NotComparable, diff
from tests.support import unique

pytestmark = pytest.mark.servers


async def test_a_schema_of_another_version_is_refused_with_the_way_out(servers: Any) -> None:
    schema = unique("ver")
    pool = await create_pool(servers.pg_dsn)
    try:
        assert await schema_version(pool, schema) is None
        await create_schema(pool, schema)
        assert await schema_version(pool, schema) == SCHEMA_VERSION
        await create_schema(pool, schema)  # the same version again: idempotent, as every worker starts

        await pool.execute(f"UPDATE {schema}.schema_version SET version = version - 1")
        with pytest.raises(SchemaVersionMismatch, match=f"version {SCHEMA_VERSION - 1}.*engine rebuild"):
            await create_schema(pool, schema)

        await pool.execute(f"DROP TABLE {schema}.schema_version")  # as built before the stamp existed
        with pytest.raises(SchemaVersionMismatch, match=r"a version before 3.*engine rebuild"):
            await create_schema(pool, schema)
        assert await pool.fetchval(f"SELECT to_regclass('{schema}.schema_version')") is None  # left as it was
    finally:
        await pool.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await pool.close()


async def test_diff_refuses_schemas_it_cannot_compare_and_says_why(servers: Any) -> None:
    """Not a traceback from PostgreSQL about a number of columns: the versions, and the way to compare."""
    old, new = unique("vold"), unique("vnew")
    pool = await create_pool(servers.pg_dsn)
    try:
        await create_schema(pool, old)
        await create_schema(pool, new)
        assert not any((await diff(servers.pg_dsn, old, new)).values())
        await pool.execute(f"UPDATE {old}.schema_version SET version = version - 1")
        mismatch = f"version {SCHEMA_VERSION - 1} and .* version {SCHEMA_VERSION}.*replay"
        with pytest.raises(NotComparable, match=mismatch):
            await diff(servers.pg_dsn, old, new)
        with pytest.raises(NotComparable, match="'nosuch_schema' holds no audit projection"):
            await diff(servers.pg_dsn, new, "nosuch_schema")
    finally:
        for schema in (old, new):
            await pool.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await pool.close()
