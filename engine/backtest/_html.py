"""The HTML report of a run (and of a second one, ``--compare``): one file that opens offline.

Charts: the equity curve and the drawdown per quote currency, and each instrument's price with the fills on it,
drawn by uPlot (vendored in adapters/static, inlined into the file: no CDN, no server). The figures' table is the
``performance`` view's, as the text report prints it. The series are read here from the views and tables of the
run's schema; the figures are not recomputed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import orjson

from adapters.postgres import ident
from engine.backtest._report import FIGURES, Report, column_title, shown_rows, value

STATIC = Path(__file__).resolve().parents[2] / "adapters" / "static"
TEMPLATE = Path(__file__).with_name("report.html")
MAX_FILLS = 20_000  # drawn on the price charts (the table of figures counts them all)


async def read_series(conn: asyncpg.Connection, schema: str) -> dict[str, Any]:
    """Minute by minute: each strategy's equity and the total's drawdown per quote currency; each instrument's
    close; and the fills (at most MAX_FILLS, the first ones)."""
    s = ident(schema)
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        equity = await conn.fetch(
            f"""SELECT currency, strategy, extract(epoch FROM bucket)::bigint + 60 AS at, sum(equity) AS equity
                FROM {s}.equity_1m GROUP BY currency, GROUPING SETS ((strategy), ()), bucket
                ORDER BY currency, strategy NULLS FIRST, bucket"""  # noqa: S608 - ident
        )
        prices = await conn.fetch(
            f"""SELECT instrument, extract(epoch FROM bucket)::bigint + 60 AS at, close
                FROM {s}.candles_1m ORDER BY instrument, bucket"""  # noqa: S608 - ident
        )
        fills = await conn.fetch(
            f"""SELECT instrument, strategy, side, price, quantity, ts_event FROM {s}.fills
                ORDER BY ts_event, trade_id LIMIT {MAX_FILLS}"""  # noqa: S608 - ident
        )
    curves: dict[str, dict[str, list[Any]]] = {}
    for r in equity:
        c = curves.setdefault(r["currency"], {})
        c.setdefault(r["strategy"] or "*", []).append([r["at"], str(r["equity"])])
    closes: dict[str, list[Any]] = {}
    for r in prices:
        closes.setdefault(r["instrument"], []).append([r["at"], str(r["close"])])
    return {
        "equity": curves,
        "prices": closes,
        "fills": [
            [r["instrument"], r["strategy"], r["side"], str(r["price"]), str(r["quantity"]), r["ts_event"] // 1_000_000]
            for r in fills
        ],
    }


def figures_table(report: Report) -> dict[str, Any]:
    cols = shown_rows(report)
    return {
        "columns": [column_title(r) for r in cols],
        "rows": [[label, *(value(n, r[n]) for r in cols)] for n, label in FIGURES],
        "rejections": [[r["strategy"], r["instrument"], r["rule"] or "-", r["orders"]] for r in report.rejections],
    }


def render(runs: list[tuple[Report, dict[str, Any]]], *, settings: str) -> str:
    """The page for one run, or two side by side (the first is the run, the second the one it is compared with)."""
    data = {
        "runs": [{"name": rep.run, "figures": figures_table(rep), "series": series} for rep, series in runs],
        "settings": settings,
    }
    js = orjson.dumps(data).decode().replace("</", "<\\/")  # inside <script>: no end tag in the data
    page = TEMPLATE.read_text()
    for marker, text in (
        ("/*UPLOT_CSS*/", (STATIC / "uPlot.min.css").read_text()),
        ("/*UPLOT_JS*/", (STATIC / "uPlot.iife.min.js").read_text()),
        ("/*DATA*/null", js),
        ("<!--TITLE-->", " vs ".join(rep.run for rep, _ in runs)),
    ):
        page = page.replace(marker, text)
    return page


def write(path: Path, page: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page)
    tmp.replace(path)
    return path
