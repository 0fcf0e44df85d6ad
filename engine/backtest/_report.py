"""The report of a run: read from its schema's views (``performance``, ``rejections_by_rule``), printed as text.

Nothing here computes a figure: each is a column of the view (see docs/audit-schema.md), so ``python -m engine sql``
shows the same numbers. This module only reads them and lays them out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from adapters.postgres import ident

FIGURES: tuple[tuple[str, str], ...] = (
    ("net_pnl", "net PnL (after fees)"),
    ("gross_pnl", "gross PnL"),
    ("fees", "fees"),
    ("realized_pnl", "realized PnL (gross)"),
    ("unrealized_pnl", "unrealized PnL (at the last trade)"),
    ("round_trips", "round trips"),
    ("win_rate", "win rate"),
    ("profit_factor", "profit factor"),
    ("avg_win", "average win"),
    ("avg_loss", "average loss"),
    ("sharpe", "Sharpe (1-min, annualised)"),
    ("sortino", "Sortino (1-min, annualised)"),
    ("max_drawdown", "max drawdown"),
    ("max_drawdown_seconds", "max drawdown duration"),
    ("exposure", "exposure (share of minutes)"),
    ("exposure_seconds", "exposure time"),
    ("turnover", "turnover"),
    ("fills", "fills"),
    ("rejected", "orders rejected"),
)
"""The report's figures, in order: a column of the ``performance`` view, and its label."""

SORTABLE = tuple(name for name, _ in FIGURES)


@dataclass(frozen=True, slots=True)
class Report:
    run: str
    rows: list[dict[str, Any]]  # the performance view, totals last
    rejections: list[dict[str, Any]]  # rejections_by_rule

    def total(self, currency: str | None = None) -> dict[str, Any] | None:
        for r in self.rows:
            if r["strategy"] == "*" and r["instrument"] == "*" and currency in (None, r["currency"]):
                return r
        return None


async def read_report(conn: asyncpg.Connection, run: str, schema: str) -> Report:
    s = ident(schema)
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        rows = await conn.fetch(
            f"SELECT * FROM {s}.performance "  # noqa: S608 - ident
            "ORDER BY currency, strategy = '*', strategy, instrument = '*', instrument"
        )
        rejections = await conn.fetch(
            f"SELECT * FROM {s}.rejections_by_rule ORDER BY strategy, instrument, rule"  # noqa: S608 - ident
        )
    return Report(run, [dict(r) for r in rows], [dict(r) for r in rejections])


def shown_rows(report: Report) -> list[dict[str, Any]]:
    """The rows worth a column: each strategy in each instrument, then per instrument and per strategy where there
    are several, then the total (one strategy in one instrument is just its total)."""
    out = []
    for currency in dict.fromkeys(r["currency"] for r in report.rows):
        rows = [r for r in report.rows if r["currency"] == currency]
        pairs = [r for r in rows if r["strategy"] != "*" and r["instrument"] != "*"]
        strategies = {r["strategy"] for r in pairs}
        instruments = {r["instrument"] for r in pairs}
        for r in rows:
            level = (r["strategy"] == "*", r["instrument"] == "*")
            if level == (True, True) or (
                len(pairs) > 1
                and (
                    level == (False, False)
                    or (level == (True, False) and len(strategies) > 1)
                    or (level == (False, True) and len(instruments) > 1)
                )
            ):
                out.append(r)
    return out


def column_title(r: dict[str, Any]) -> str:
    if r["strategy"] == "*" and r["instrument"] == "*":
        return f"total ({r['currency']})"
    if r["strategy"] == "*":
        return str(r["instrument"])
    if r["instrument"] == "*":
        return f"{r['strategy']}: all"
    return f"{r['strategy']}: {r['instrument']}"


def value(name: str, v: Any) -> str:
    if v is None:
        return "-"
    if name in ("max_drawdown_seconds", "exposure_seconds"):
        return duration(int(v))
    if name in ("win_rate", "exposure"):
        return f"{Decimal(v) * 100:.2f}%"
    if isinstance(v, Decimal):
        return amount(v)
    return str(v)


def amount(d: Decimal) -> str:
    """An exact decimal as written, without trailing zeros; a quotient (an average) cut to 12 significant digits."""
    if d.is_zero():
        return "0"
    t = d.normalize()
    digits = len(t.as_tuple().digits)
    if digits > 12:
        t = round(t, 12 - t.adjusted() - 1).normalize()
    return f"{t:f}"


def duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in (header, *rows)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def format_report(report: Report, *, title: str | None = None) -> str:
    cols = shown_rows(report)
    if not cols:
        return f"run {report.run}: no trades were fed (the performance view is empty)"
    first, last = min(r["first_minute"] for r in cols), max(r["last_minute"] for r in cols)
    out = [title or f"run {report.run}: {_minute(first)} to {_minute(last)} UTC (minutes of market time)", ""]
    out.append(
        table(
            ["", *(column_title(r) for r in cols)], [[label, *(value(n, r[n]) for r in cols)] for n, label in FIGURES]
        )
    )
    if report.rejections:
        out += ["", "orders rejected, by rule:"]
        out.append(
            table(
                ["strategy", "instrument", "rule", "orders"],
                [[r["strategy"], r["instrument"], r["rule"] or "-", str(r["orders"])] for r in report.rejections],
            )
        )
    return "\n".join(out)


def format_compare(a: Report, b: Report) -> str:
    """The totals of two runs side by side, per quote currency, and the difference (b - a) where it is a number."""
    out = []
    for currency in dict.fromkeys(r["currency"] for r in (*a.rows, *b.rows)):
        ta, tb = a.total(currency), b.total(currency)
        rows = []
        for n, label in FIGURES:
            va, vb = (t.get(n) if t else None for t in (ta, tb))
            diff = "-"
            if isinstance(va, Decimal | int) and isinstance(vb, Decimal | int) and not isinstance(va, bool):
                diff = (
                    value(n, Decimal(vb) - Decimal(va))
                    if n not in ("max_drawdown_seconds", "exposure_seconds")
                    else duration(abs(int(vb) - int(va)))
                )
            rows.append([label, value(n, va), value(n, vb), diff])
        out += [f"{a.run} against {b.run}, totals in {currency}:", table(["", a.run, b.run, "difference"], rows), ""]
    return "\n".join(out).rstrip()


def _minute(t: datetime) -> str:
    return f"{t:%Y-%m-%d %H:%M}"
