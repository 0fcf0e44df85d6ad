"""A backtest run's name, and where it lives: the topics prefixed ``bt_<name>.`` and the audit schema ``bt_<name>``.

A run is whatever has that prefix and that schema: nothing else records runs, so ``list`` finds them in the cluster
and the database, and ``drop`` removes both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from adapters import kafka_admin
from adapters.postgres import ident

NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
SCHEMA_PREFIX = "bt_"


class RunNameError(ValueError):
    """Not a run's name."""


@dataclass(frozen=True, slots=True)
class Run:
    name: str
    prefix: str = SCHEMA_PREFIX  # bt_ for a backtest (sh_: a shadow run's)

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise RunNameError(
                f"{self.name!r} is not a run's name: lower-case letters, digits and _, starting with a letter, "
                "at most 41 characters"
            )

    @property
    def schema(self) -> str:
        return self.prefix + self.name

    @property
    def topic_prefix(self) -> str:
        return f"{self.prefix}{self.name}."


def default_name(strategy: str, now: datetime | None = None) -> str:
    """``<strategy>_<UTC time>``, e.g. ``ma_cross_20261203_094512`` (the strategy's name made a valid name)."""
    stem = re.sub(r"[^a-z0-9]+", "_", strategy.lower()).strip("_")[:20] or "run"
    if not stem[0].isalpha():
        stem = "s" + stem
    return f"{stem}_{(now or datetime.now(UTC)):%Y%m%d_%H%M%S}"


@dataclass(frozen=True, slots=True)
class RunInfo:
    name: str
    schema: bool  # the schema exists
    topics: int
    started: datetime | None  # the first EngineStarted of the run
    strategies: str  # kind(params) of each strategy
    files: str
    net_pnl: str  # per quote currency, from the performance view's total


async def exists(owner_dsn: str, bootstrap: str, run: Run) -> bool:
    conn = await asyncpg.connect(owner_dsn)
    try:
        schema = await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", run.schema)
    finally:
        await conn.close()
    topics, _ = await kafka_admin.names_with_prefix(bootstrap, run.topic_prefix)
    return bool(schema or topics)


async def list_runs(reader_dsn: str, bootstrap: str) -> list[RunInfo]:
    """Every run there is: a ``bt_`` schema, or topics of a run whose schema was never made (or was dropped)."""
    topics, _ = await kafka_admin.names_with_prefix(bootstrap, SCHEMA_PREFIX)
    by_run: dict[str, int] = {}
    for t in topics:
        name = t.split(".", 1)[0].removeprefix(SCHEMA_PREFIX)
        if NAME.match(name):
            by_run[name] = by_run.get(name, 0) + 1
    conn = await asyncpg.connect(reader_dsn)
    try:
        schemas = [
            r[0].removeprefix(SCHEMA_PREFIX)
            for r in await conn.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bt\\_%' ORDER BY nspname")
        ]
        out = []
        for name in sorted({*by_run, *(s for s in schemas if NAME.match(s))}):
            info = await _info(conn, Run(name)) if name in schemas else {}
            out.append(
                RunInfo(
                    name=name,
                    schema=name in schemas,
                    topics=by_run.get(name, 0),
                    started=info.get("started"),
                    strategies=info.get("strategies", ""),
                    files=info.get("files", ""),
                    net_pnl=info.get("net_pnl", ""),
                )
            )
    finally:
        await conn.close()
    return out


async def _info(conn: asyncpg.Connection, run: Run) -> dict[str, Any]:
    s = ident(run.schema)
    try:
        started = await conn.fetchrow(
            f"SELECT ts_event, detail FROM {s}.system_events WHERE type = 'EngineStarted' "  # noqa: S608 - ident
            "ORDER BY ts_event LIMIT 1"
        )
        totals = await conn.fetch(
            f"SELECT currency, net_pnl FROM {s}.performance "  # noqa: S608 - ident
            "WHERE strategy = '*' AND instrument = '*' ORDER BY currency"
        )
    except asyncpg.PostgresError:  # a schema being built, or of another version
        return {}
    out: dict[str, Any] = {"net_pnl": ", ".join(f"{r['net_pnl']} {r['currency']}" for r in totals)}
    if started is not None:
        out["started"] = datetime.fromtimestamp(started["ts_event"] / 1e9, UTC)
        out.update(describe_settings(started["detail"]))
    return out


def describe_settings(detail: Any) -> dict[str, str]:
    """The strategies (kind and params) and the files of a run, from its EngineStarted event's settings."""
    d = orjson.loads(detail) if isinstance(detail, str) else detail
    settings = d.get("settings", {})
    if isinstance(settings, str):
        settings = orjson.loads(settings)
    entries = settings.get("strategies") or [settings.get("strategy", {})]
    strategies = ", ".join(
        f"{e.get('name') or e.get('kind')}({', '.join(f'{k}={v}' for k, v in sorted((e.get('params') or {}).items()))})"
        for e in entries
    )
    feed = settings.get("feed", {})
    files = [f.get("path", "") for f in feed.get("files") or []] or [feed.get("path") or ""]
    return {"strategies": strategies, "files": ", ".join(str(f).rsplit("/", 1)[-1] for f in files if f)}


async def drop(owner_dsn: str, bootstrap: str, run: Run) -> tuple[bool, list[str], list[str]]:
    """Drop the run's consumer groups, schema and topics; what there was (the schema, topics, groups). A run still
    going (its groups have members) is left whole: :class:`adapters.kafka_admin.GroupInUse`."""
    topics, groups = await kafka_admin.names_with_prefix(bootstrap, run.topic_prefix)
    await kafka_admin.delete(bootstrap, [], groups)  # first: a run still going keeps its groups, and everything
    conn = await asyncpg.connect(owner_dsn)
    try:
        had = bool(await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", run.schema))
        if had:
            await conn.execute(f"DROP SCHEMA {ident(run.schema)} CASCADE")
    finally:
        await conn.close()
    await kafka_admin.delete(bootstrap, topics, [])
    return had, topics, groups
