"""A projection schema is never altered in place: a worker refuses a schema built by another version of the
audit projection and says how to build the new one (a versioned rebuild from the log)."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.postgres import create_pool
from projections.audit import SCHEMA_VERSION, SchemaVersionMismatch, create_schema, schema_version
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
