"""PostgreSQL: connection pools, identifier checks and schema creation from SQL files."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class BadIdentifier(ValueError):
    """A schema or table name that does not match ``[a-z_][a-z0-9_]*`` (at most 63 characters)."""


def ident(name: str) -> str:
    """Validate a schema/table name against the allow-list pattern and return it quoted."""
    if not _IDENT.match(name):
        raise BadIdentifier(
            f"{name!r} is not a valid name: use lower-case letters, digits and _, starting with a letter"
        )
    return f'"{name}"'


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 4) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, command_timeout=60)
    assert pool is not None
    return pool


def render_sql(path: Path, schema: str) -> str:
    """A schema SQL file with ``{schema}`` replaced by the validated, quoted schema name."""
    return path.read_text().replace("{schema}", ident(schema))


async def run_sql_file(pool: asyncpg.Pool, path: Path, schema: str) -> None:
    """Run a schema file in one transaction, serialised by an advisory lock (several workers may start at once)."""
    sql = render_sql(path, schema)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"schema:{schema}")
        await conn.execute(sql)
