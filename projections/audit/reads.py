"""What the ``/trading`` page shows, read from the audit schema (the projection's tables, nothing else).

One call, :func:`trading_view`, runs the page's queries in one read-only transaction (so the numbers are of one
moment of the schema) and returns plain JSON: amounts as strings (exact decimals, never floats), times as
nanoseconds since the epoch. Unrealized PnL is the position valued at the instrument's last trade in ``candles_1m``.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from adapters.postgres import ident

LIMIT = 20  # rows of the fills, rejections and alerts tables
CURVE_POINTS = 720  # buckets of event time in the PnL curve, over the whole history

# ruff: noqa: S608 - every statement is built from a schema name validated by adapters.postgres.ident


def _queries(s: str) -> dict[str, str]:
    return {
        "positions": f"""
            SELECT p.strategy, p.instrument, p.quantity, p.avg_price, p.realized_pnl, p.fees, p.fills, p.updated_ts,
                   c.close AS last_price,
                   CASE WHEN c.close IS NULL OR p.quantity = 0 THEN 0
                        ELSE (c.close - p.avg_price) * p.quantity END AS unrealized_pnl
            FROM {s}.positions p
            LEFT JOIN LATERAL (SELECT close FROM {s}.candles_1m k WHERE k.instrument = p.instrument
                               ORDER BY bucket DESC LIMIT 1) c ON true
            ORDER BY p.instrument, p.strategy""",
        "open_orders": f"""
            SELECT client_order_id, strategy, instrument, side, order_type, quantity, limit_price, status,
                   filled_quantity, created_ts
            FROM {s}.orders
            WHERE status IN ('submitted', 'accepted', 'partially_filled', 'cancel_requested')
            ORDER BY created_ts DESC, client_order_id LIMIT 100""",
        "stops": f"""
            SELECT client_order_id, strategy, instrument, side, quantity, trigger_price, limit_price, take_profit_id,
                   placed_ts
            FROM {s}.stops WHERE status = 'held' ORDER BY placed_ts DESC, client_order_id LIMIT 100""",
        "fills": f"""
            SELECT ts_event, strategy, instrument, side, quantity, price, fee, fee_currency, liquidity, client_order_id
            FROM {s}.fills ORDER BY ts_event DESC, trade_id DESC LIMIT {LIMIT}""",
        "rejections": f"""
            SELECT updated_ts AS ts_event, strategy, instrument, side, quantity, limit_price, reject_rule AS rule,
                   reject_reason AS reason, client_order_id
            FROM {s}.orders WHERE status = 'rejected'
            ORDER BY updated_ts DESC, client_order_id DESC LIMIT {LIMIT}""",
        # the whole history in at most CURVE_POINTS buckets of event time (1 s at least): each strategy's cumulative
        # net PnL at the end of each bucket that has a fill of it
        "curve": f"""
            WITH span AS (SELECT min(ts_event) AS lo,
                                 greatest(1000000000, (max(ts_event) - min(ts_event)) / {CURVE_POINTS} + 1) AS width
                          FROM {s}.position_changes)
            SELECT (span.lo + (c.ts_event - span.lo) / span.width * span.width + span.width) / 1000000000 AS at,
                   c.strategy, sum(sum(c.realized_pnl - c.fee)) OVER (
                       PARTITION BY c.strategy ORDER BY (c.ts_event - span.lo) / span.width) AS cumulative
            FROM {s}.position_changes c, span
            GROUP BY (c.ts_event - span.lo) / span.width, span.lo, span.width, c.strategy
            ORDER BY 1, 2""",
        "breaker": f"""
            SELECT type, source, detail, ts_event FROM {s}.system_events
            WHERE type IN ('TradingHalted', 'TradingResumed') ORDER BY ts_event DESC, event_id DESC LIMIT 1""",
        "alerts": f"""
            SELECT detail, ts_event FROM {s}.system_events WHERE type = 'AlertNotified'
            ORDER BY ts_event DESC, event_id DESC LIMIT {LIMIT}""",
    }


def _plain(v: Any) -> Any:
    """A value for JSON: decimals as their exact text; everything else as it is."""
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, dict | list):
        return v
    return str(v)


def _rows(records: list[asyncpg.Record]) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in r.items()} for r in records]


async def trading_view(pool: asyncpg.Pool, schema: str) -> dict[str, Any]:
    """Positions and PnL per strategy and instrument, the PnL curve, open orders, held stops, the last fills and
    rejections, the breaker's state and the last alerts: one consistent read of ``schema``."""
    out: dict[str, Any] = {"schema": schema}
    async with pool.acquire() as conn, conn.transaction(readonly=True, isolation="repeatable_read"):
        await conn.execute("SET LOCAL statement_timeout = '5s'")
        for name, query in _queries(ident(schema)).items():
            out[name] = _rows(await conn.fetch(query))
    last = out.pop("breaker")
    out["breaker"] = (
        {"state": "trading", "since": None, "by": None, "reason": None}
        if not last or last[0]["type"] == "TradingResumed"
        else {
            "state": "halted",
            "since": last[0]["ts_event"],
            "by": _detail(last[0]).get("by"),
            "reason": _detail(last[0]).get("reason"),
        }
    )
    if last and last[0]["type"] == "TradingResumed":
        out["breaker"]["since"] = last[0]["ts_event"]
    out["alerts"] = [{"ts_event": a["ts_event"], **_alert(_detail(a))} for a in out["alerts"]]
    return out


def _detail(row: dict[str, Any]) -> dict[str, Any]:
    d = row.get("detail")
    if isinstance(d, str):  # jsonb comes as its text
        d = orjson.loads(d)
    return d if isinstance(d, dict) else {}


def _alert(d: dict[str, Any]) -> dict[str, Any]:
    names = d.get("alertnames")
    if isinstance(names, str) and names.startswith("["):  # a JSON array in the event
        names = orjson.loads(names)
    return {"status": d.get("status"), "alertnames": names, "receiver": d.get("receiver")}
