"""What a schema says one UTC day's decisions were: its orders created that day with their causing ticks, and the
day's PnL, read with the read-only role."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from adapters.postgres import ident
from engine.shadow._compare import Order, Tick
from projections.replay import day_bounds

# an order's first event (OrderSubmitted, or OrderRejected by risk), its cause, and the cause's cause: an order
# placed on a fill (a bracket's legs) was caused by the fill, which the tick caused
_ORDERS = """
SELECT o.strategy, o.instrument, o.client_order_id, o.side, o.order_type, o.quantity, o.limit_price,
       o.trigger_price, o.created_ts, o.status, o.reject_rule,
       coalesce(t1.event_id, t2.event_id)::text AS tick_id, coalesce(t1.ts_event, t2.ts_event) AS tick_ts,
       coalesce(t1.payload, t2.payload) AS tick
FROM {s}.events e
JOIN {s}.orders o ON o.client_order_id = e.payload->>'client_order_id'
LEFT JOIN {s}.events c1 ON c1.event_id = e.causation_id
LEFT JOIN {s}.events t1 ON t1.event_id = c1.event_id AND t1.type = 'TickReceived'
LEFT JOIN {s}.events c2 ON c2.event_id = c1.causation_id AND t1.event_id IS NULL
LEFT JOIN {s}.events t2 ON t2.event_id = c2.event_id AND t2.type = 'TickReceived'
WHERE e.type IN ('OrderSubmitted', 'OrderRejected') AND e.ts_event >= $1 AND e.ts_event < $2
  AND o.created_ts >= $1 AND o.created_ts < $2 AND ($3::text[] IS NULL OR o.strategy = ANY($3))
ORDER BY o.created_ts, o.client_order_id
"""

_PNL = """
SELECT strategy, instrument, sum(realized_pnl) AS gross, sum(fee) AS fees, count(*) AS fills
FROM {s}.position_changes
WHERE ts_event >= $1 AND ts_event < $2 AND ($3::text[] IS NULL OR strategy = ANY($3))
GROUP BY 1, 2 ORDER BY 1, 2
"""


@dataclass(frozen=True, slots=True)
class DayPnl:
    strategy: str
    instrument: str
    gross: Decimal  # realized PnL of the day's fills
    fees: Decimal
    fills: int

    @property
    def net(self) -> Decimal:
        return self.gross - self.fees


def _ns(day: date) -> tuple[int, int]:
    start, end = day_bounds(day)
    return int(start.timestamp()) * 10**9, int(end.timestamp()) * 10**9


async def day_orders(conn: asyncpg.Connection, schema: str, day: date, strategies: list[str] | None) -> list[Order]:
    start, end = _ns(day)
    seen: dict[str, Order] = {}
    for r in await conn.fetch(_ORDERS.format(s=ident(schema)), start, end, strategies):
        if r["client_order_id"] in seen:  # an order's first event only (a re-submission keeps its id)
            continue
        tick = orjson.loads(r["tick"]) if isinstance(r["tick"], str) else r["tick"]
        cause = None
        if tick is not None:
            cause = Tick(
                r["tick_id"],
                r["tick_ts"],
                str(tick.get("trade_id", "")),
                str(tick.get("side", "")),
                Decimal(tick["price"]),
                Decimal(tick["quantity"]),
            )
        seen[r["client_order_id"]] = Order(
            r["strategy"],
            r["instrument"],
            r["client_order_id"],
            r["side"],
            r["order_type"],
            r["quantity"],
            r["limit_price"],
            r["trigger_price"],
            r["created_ts"],
            r["status"],
            r["reject_rule"],
            cause,
        )
    return list(seen.values())


async def day_pnl(conn: asyncpg.Connection, schema: str, day: date, strategies: list[str] | None) -> list[DayPnl]:
    start, end = _ns(day)
    rows = await conn.fetch(_PNL.format(s=ident(schema)), start, end, strategies)
    return [DayPnl(r["strategy"], r["instrument"], r["gross"], r["fees"], r["fills"]) for r in rows]


async def day_switches(conn: asyncpg.Connection, schema: str, day: date) -> int:
    """Breaker switches (halts, resumes, daily-loss trips) of the day in the schema: a shadow does not apply
    production's, so its decisions under them are not comparable."""
    start, end = _ns(day)
    n: int = await conn.fetchval(
        f"SELECT count(*) FROM {ident(schema)}.events WHERE type IN ('TradingHalted', 'TradingResumed') "  # noqa: S608
        "AND ts_event >= $1 AND ts_event < $2",
        start,
        end,
    )
    return n


PAPER_VENUE = ("taker_fee_rate", "maker_fee_rate", "fee_currency", "starting_balances")


async def last_started(reader_dsn: str, schema: str) -> dict[str, Any] | None:
    """What production's engine last started with (its latest EngineStarted's settings): ``strategy``,
    ``strategies``, ``risk``, and the paper venue's fees and balances as ``venue`` (kind paper); None when there is no
    such schema, or no engine started in it."""
    conn = await asyncpg.connect(reader_dsn)
    try:
        try:
            detail = await conn.fetchval(
                f"SELECT detail FROM {ident(schema)}.system_events WHERE type = 'EngineStarted' "  # noqa: S608
                "ORDER BY ts_event DESC LIMIT 1"
            )
        except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
            return None
    finally:
        await conn.close()
    if detail is None:
        return None
    d = orjson.loads(detail) if isinstance(detail, str) else detail
    settings = d.get("settings", {})
    settings = orjson.loads(settings) if isinstance(settings, str) else settings
    strategy, risk, venue = settings.get("strategy"), settings.get("risk"), settings.get("venue") or {}
    if not isinstance(strategy, dict) or not isinstance(risk, dict):
        return None
    # a live venue's own keys (and secrets) stay behind
    paper = {"kind": "paper", **{k: venue[k] for k in PAPER_VENUE if k in venue}}
    return {"strategy": strategy, "strategies": settings.get("strategies") or [], "risk": risk, "venue": paper}
