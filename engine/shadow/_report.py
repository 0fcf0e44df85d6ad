"""A shadow's outcome as text: the counts, the first differing decisions with their causing ticks, each side's PnL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from engine.shadow._compare import Difference, Order
from engine.shadow._read import DayPnl
from engine.shadow._shadow import Outcome


def _time(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%H:%M:%S.%f")[:-3]


def _num(d: Decimal | None) -> str:
    return "-" if d is None else format(d.normalize(), "f")


def describe(o: Order) -> str:
    price = f" @ {_num(o.limit_price)}" if o.limit_price is not None else ""
    trigger = f" trigger {_num(o.trigger_price)}" if o.trigger_price is not None else ""
    status = o.status + (f" ({o.reject_rule})" if o.reject_rule else "")
    return f"{o.side} {o.order_type} {_num(o.quantity)}{price}{trigger} at {_time(o.created_ts)}, {status}"


def _tick(o: Order | None) -> str:
    if o is None or o.cause is None:
        return ""
    t = o.cause
    return f"tick {t.trade_id} at {_time(t.ts_event)}: {t.side} {_num(t.quantity)} @ {_num(t.price)}"


def _difference(d: Difference) -> list[str]:
    o = d.production or d.candidate
    assert o is not None
    head = f"  {_time(d.ts)}  {o.instrument}  {d.kind}"
    if d.kind == "changed":
        assert d.production is not None and d.candidate is not None
        fields = ", ".join("time" if f == "created_ts" else f.replace("_", " ") for f in d.fields)
        return [
            f"{head} ({fields})",
            f"      production: {describe(d.production)}  [{d.production.client_order_id}]",
            f"                  {_tick(d.production)}",
            f"      candidate:  {describe(d.candidate)}  [{d.candidate.client_order_id}]",
            f"                  {_tick(d.candidate)}",
        ]
    return [f"{head}: {describe(o)}  [{o.client_order_id}]", f"      {_tick(o)}"]


def _pnl(rows: list[DayPnl]) -> dict[tuple[str, str], DayPnl]:
    return {(r.strategy, r.instrument): r for r in rows}


def _pnl_lines(outcome: Outcome) -> list[str]:
    prod, cand = _pnl(outcome.production_pnl), _pnl(outcome.candidate_pnl)
    if not prod and not cand:
        return ["PnL of the day: no fills on either side"]
    lines = ["PnL of the day (realized on the day's fills, in the quote currency; net = gross - fees):"]
    width = max(len(f"{s} {i}") for s, i in [*prod, *cand])
    for side, rows in (("production", prod), ("candidate", cand)):
        for (strategy, instrument), r in sorted(rows.items()):
            lines.append(
                f"  {side:<10}  {f'{strategy} {instrument}':<{width}}  net {_num(r.net)}  gross {_num(r.gross)}  "
                f"fees {_num(r.fees)}  fills {r.fills}"
            )
        if not rows:
            lines.append(f"  {side:<10}  no fills")
    return lines


def format_outcome(outcome: Outcome, *, limit: int) -> str:
    c = outcome.comparison
    lines = [
        f"orders of the day: production {c.production}, candidate {c.candidate}; the same {c.same}, changed "
        f"{len(c.changed)}, production only {len(c.production_only)}, candidate only {len(c.candidate_only)}"
    ]
    if outcome.switches:
        lines.append(
            f"note: production had {outcome.switches} breaker switch(es) (halt/resume) that day; a shadow trades "
            "through them, so decisions under a halt differ"
        )
    diffs = c.differences()
    if diffs:
        shown = diffs[:limit]
        lines.append(f"the first {len(shown)} of {len(diffs)} differing decisions (UTC):")
        for d in shown:
            lines.extend(_difference(d))
    lines.extend(_pnl_lines(outcome))
    lines.append("decisions: " + ("IDENTICAL" if c.identical else "DIFFERENT"))
    return "\n".join(lines)
