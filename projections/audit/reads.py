"""What the ``/trading`` page shows, read from the audit schema (the projection's tables, nothing else).

One call, :func:`trading_view`, runs the page's queries in one read-only transaction (so the numbers are of one
moment of the schema) and returns plain JSON: amounts as strings (exact decimals, never floats), times as
nanoseconds since the epoch. Unrealized PnL is the position valued at the instrument's last trade in ``candles_1m``;
the equity curve is each strategy's mark-to-market PnL per quote currency over event time (fees are taken as they
were paid: in the quote currency on the paper venue).
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from adapters.postgres import ident

LIMIT = 20  # rows of the fills, rejections and alerts tables
CURVE_POINTS = 720  # minutes of the equity curve, over the whole history

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
        # the equity curve: at most CURVE_POINTS minutes of the whole history (every n-th, and the last), at each
        # each strategy's mark-to-market PnL per quote currency: realized - fees + (last price - avg price) x position,
        # from its last position change before that minute's end and the instrument's last candle before it
        "curve": f"""
            WITH grid AS (
                SELECT at FROM (
                    SELECT at, row_number() OVER (ORDER BY at) AS rn, count(*) OVER () AS cnt
                    FROM (SELECT DISTINCT extract(epoch FROM bucket)::bigint + 60 AS at FROM {s}.candles_1m) d) g
                WHERE rn % greatest(1, cnt / {CURVE_POINTS}) = 0 OR rn = cnt
            ), pairs AS (SELECT DISTINCT strategy, instrument FROM {s}.positions)
            SELECT g.at, p.strategy, split_part(p.instrument, '/', 2) AS currency,
                   sum(coalesce(pc.realized_after - pc.fees_after
                                + (c.close - pc.avg_price_after) * pc.quantity_after, 0)) AS equity
            FROM grid g CROSS JOIN pairs p
            LEFT JOIN LATERAL (SELECT k.close FROM {s}.candles_1m k
                               WHERE k.instrument = p.instrument AND k.bucket < to_timestamp(g.at)
                               ORDER BY k.bucket DESC LIMIT 1) c ON true
            LEFT JOIN LATERAL (SELECT x.realized_after, x.fees_after, x.avg_price_after, x.quantity_after
                               FROM {s}.position_changes x
                               WHERE x.instrument = p.instrument AND x.strategy = p.strategy
                                 AND x.ts_event < g.at * 1000000000
                               ORDER BY x.ts_event DESC, x.event_id DESC LIMIT 1) pc ON true
            WHERE c.close IS NOT NULL
            GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""",
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
