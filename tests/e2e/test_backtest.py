"""``python -m engine backtest`` on the real trades, the real Kafka and PostgreSQL.

The report's figures are recomputed here from the run's fills and the file's own trades (average-cost PnL, fees,
round trips and their win rate, the minute-by-minute mark-to-market equity and its largest drawdown), not from
the views the report reads, and must equal what the command printed. The HTML report opens in headless Chromium
with every chart drawn; a sweep makes one run per combination; list, show, drop and bad input behave.
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.e2e.test_dashboard import CHROMIUM_FLAGS, _chromium, screenshot
from tests.support import SHARED_TRADES, engine_env, run_cli, unique

pytestmark = pytest.mark.servers

QUANTITY = "100"  # XRP per order: PnL of some size (the default 0.01 makes every figure a few 1e-9 ETH)
BACKTEST = ["backtest", "--file", str(SHARED_TRADES), "--symbol", "XRP/ETH", "--strategy", "ma_cross"]
BACKTEST += ["--param", f"quantity={QUANTITY}"]


def _env(servers: Any) -> dict[str, str]:
    # the risk limits of the account let 100 XRP through (the defaults are for BTC-sized orders)
    return engine_env(servers, unique("btenv"), unique("btenv"), {"ENGINE_RISK__MAX_POSITION": "300"})


def _printed(out: str) -> dict[str, str]:
    """The report's figure -> its total's text, from the printed table (one column: one strategy, one instrument)."""
    figures = {}
    for line in out.splitlines():
        m = re.match(r"^(\S.*?)\s{2,}(\S+(?: \S+)*)$", line)
        if m and not line.startswith(("run ", "---", "HTML", "the figures")):
            figures[m.group(1).strip()] = m.group(2).strip()
    return figures


def _minute_closes() -> list[tuple[int, Decimal]]:
    """The last trade price of every minute of the file (minute start in seconds), read here from the file."""
    with gzip.open(SHARED_TRADES) as f:
        trades = json.loads(f.read(), parse_float=Decimal)
    closes: dict[int, Decimal] = {}
    for t in trades:
        closes[t[0] // 60_000 * 60] = Decimal(str(t[4]))
    return sorted(closes.items())


def _recompute(fills: list[asyncpg.Record]) -> dict[str, Any]:
    """Average-cost PnL, fees, round trips and the equity curve's drawdown, from the fills and the file alone."""
    qty = avg = realized = fees = Decimal(0)
    trips: list[Decimal] = []
    trip_start = Decimal(0)  # realized - fees when the trip opened
    by_minute: dict[int, tuple[Decimal, Decimal, Decimal, Decimal]] = {}
    for f in fills:
        signed = f["quantity"] if f["side"] == "buy" else -f["quantity"]
        assert qty == 0 or (qty > 0) == (signed > 0) or abs(signed) <= abs(qty), "a flip: not expected of ma_cross"
        if qty == 0:
            trip_start = realized - fees
        if qty == 0 or (qty > 0) == (signed > 0):
            avg = (avg * abs(qty) + f["price"] * abs(signed)) / (abs(qty) + abs(signed))
        else:
            realized += (f["price"] - avg) * (abs(signed) if qty > 0 else -abs(signed))
        qty += signed
        fees += f["fee"]
        if qty == 0:
            avg = Decimal(0)
            trips.append(realized - fees - trip_start)
        by_minute[f["ts_event"] // 60_000_000_000 * 60] = (qty, avg, realized, fees)
    closes = _minute_closes()
    state = (Decimal(0),) * 4
    peak = drawdown = equity = Decimal(0)
    for minute, close in closes:
        state = by_minute.get(minute, state)
        q, a, r, fe = state
        equity = r - fe + (close - a) * q
        peak = max(peak, equity)
        drawdown = max(drawdown, peak - equity)
    return {
        "net": equity,
        "fees": fees,
        "realized": realized,
        "trips": len(trips),
        "win_rate": Decimal(sum(1 for t in trips if t > 0)) / len(trips),
        "max_drawdown": drawdown,
    }


def _same(printed: str, exact: Decimal) -> bool:
    """The printed amount is the exact one (cut to 12 significant digits where it has more)."""
    got = Decimal(printed)
    return abs(got - exact) <= Decimal(10) ** (exact.adjusted() - 11)


@pytest.fixture(scope="module")
def run(servers: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    name, html = unique("r"), tmp_path_factory.mktemp("bt") / "report.html"
    env = _env(servers)
    res = run_cli(
        [
            *BACKTEST,
            "--run",
            name,
            "--html",
            str(html),
        ],
        env,
    )
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    return {"name": name, "out": res.stdout, "err": res.stderr, "html": html, "env": env}


async def test_the_printed_figures_equal_those_recomputed_from_the_fills(servers: Any, run: dict[str, Any]) -> None:
    conn = await asyncpg.connect(servers.pg_dsn)
    try:
        fills = await conn.fetch(
            # in log order (several fills can share a ts_event: ticks of one millisecond)
            f'SELECT f.side, f.quantity, f.price, f.fee, f.ts_event FROM "bt_{run["name"]}".fills f '
            f'JOIN "bt_{run["name"]}".events e USING (event_id, ts_event) ORDER BY e."offset"'
        )
        ticks = await conn.fetchval(f"SELECT count(*) FROM \"bt_{run['name']}\".events WHERE type = 'TickReceived'")
    finally:
        await conn.close()
    assert ticks == 12477 and len(fills) > 50, "every trade of the file went through the log, and ma_cross traded"
    mine, printed = _recompute(fills), _printed(run["out"])
    assert _same(printed["net PnL (after fees)"], mine["net"]), (printed, mine)
    assert _same(printed["fees"], mine["fees"]), (printed, mine)
    assert _same(printed["realized PnL (gross)"], mine["realized"]), (printed, mine)
    assert _same(printed["max drawdown"], mine["max_drawdown"]), (printed, mine)
    assert int(printed["round trips"]) == mine["trips"]
    assert printed["win rate"] == f"{mine['win_rate'] * 100:.2f}%"
    assert int(printed["fills"]) == len(fills)
    assert mine["max_drawdown"] > 0 and mine["fees"] > 0


async def test_the_run_is_apart_from_production_and_sql_shows_the_same_figures(
    servers: Any, run: dict[str, Any]
) -> None:
    """Its own topics and schema; the view the report read gives the same net PnL to the read-only role."""
    conn = await asyncpg.connect(servers.pg_dsn.replace("engine@", "engine_reader@", 1))
    try:
        net = await conn.fetchval(
            f"SELECT net_pnl FROM \"bt_{run['name']}\".performance WHERE strategy = '*' AND instrument = '*'"
        )
    finally:
        await conn.close()
    assert _same(_printed(run["out"])["net PnL (after fees)"], net)
    listed = run_cli(["backtest", "list"], run["env"])
    assert listed.returncode == 0, listed.stderr
    line = next(ln for ln in listed.stdout.splitlines() if ln.startswith(run["name"] + " "))
    assert "ma_cross(" in line and f"quantity={QUANTITY}" in line and "binance-xrpeth" in line and " 5" in line


def test_the_html_report_opens_offline_with_its_charts_drawn(run: dict[str, Any], tmp_path: Path) -> None:
    page = run["html"].read_text()
    loads = re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import""", page)
    assert not loads and "<script src" not in page and "<link" not in page, "no CDN, no server: all inline"
    out = subprocess.run(
        [
            _chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'p'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            run["html"].as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'data-ready="1"' in out.stdout, "the page's script ran to its end"
    charts = dict(re.findall(r'id="((?:equity|drawdown|price)-[^"]+)"[^>]*data-ink="(\d+)"', out.stdout))
    assert set(charts) == {"equity-ETH", "drawdown-ETH", "price-XRP-ETH"}, charts
    assert all(int(ink) > 2000 for ink in charts.values()), charts  # each canvas has lines on it
    shot = screenshot(run["html"].as_uri(), tmp_path / "s", "backtest-report.png")
    assert shot.stat().st_size > 30_000  # a dark page with three charts and a table, not a blank one


def test_compare_puts_two_runs_side_by_side(servers: Any, run: dict[str, Any], tmp_path: Path) -> None:
    other = unique("r")
    res = run_cli(
        [
            *BACKTEST,
            "--param",
            "fast=5",
            "--run",
            other,
            "--compare",
            run["name"],
            "--html",
            str(tmp_path / "c.html"),
        ],
        run["env"],
    )
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    assert f"{other} against {run['name']}, totals in ETH:" in res.stdout
    compared = res.stdout.split(f"{other} against {run['name']}", 1)[1]
    row = next(ln for ln in compared.splitlines() if ln.startswith("round trips"))
    a, b, diff = row.split()[-3:]
    assert int(b) - int(a) == int(diff) and a != b, row  # a faster mean trades more often
    assert run["name"] in (tmp_path / "c.html").read_text()
    shown = run_cli(["backtest", "show", run["name"], "--no-html"], run["env"])
    assert shown.returncode == 0 and _printed(shown.stdout) == _printed(run["out"]), shown.stderr


async def test_a_sweep_makes_one_run_per_combination(servers: Any) -> None:
    env, name = _env(servers), unique("sw")
    res = run_cli(
        [
            *BACKTEST,
            "--param",
            "fast=5,10",
            "--param",
            "slow=30,60",
            "--run",
            name,
            "--sort",
            "sharpe",
        ],
        env,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    rows = [ln.split() for ln in res.stdout.splitlines() if ln.startswith(name + "_")]
    assert sorted((r[1], r[2]) for r in rows) == [("10", "30"), ("10", "60"), ("5", "30"), ("5", "60")]
    sharpes = [Decimal(r[4]) for r in rows]
    assert sharpes == sorted(sharpes, reverse=True), "best first"
    conn = await asyncpg.connect(servers.pg_dsn)
    try:
        totals = [
            await conn.fetchrow(
                f'SELECT net_pnl, round_trips FROM "bt_{name}_{i}".performance '
                "WHERE strategy = '*' AND instrument = '*'"
            )
            for i in range(1, 5)
        ]
    finally:
        await conn.close()
    assert len({tuple(t or ()) for t in totals}) == 4, totals  # four different runs
    dropped = run_cli(["backtest", "drop", *(f"{name}_{i}" for i in range(1, 5))], env)
    assert dropped.returncode == 0, dropped.stderr
    listed = run_cli(["backtest", "list"], env)
    assert not any(ln.startswith(name) for ln in listed.stdout.splitlines()), listed.stdout


def test_bad_input_is_one_line_and_nothing_is_written(servers: Any, run: dict[str, Any], tmp_path: Path) -> None:
    env = run["env"]
    base = ["backtest", "--file", str(SHARED_TRADES), "--symbol", "XRP/ETH", "--no-html"]
    cases = [
        (["--run", run["name"]], f"error: run {run['name']} exists"),
        (["--run", "Bad-Name"], "is not a run's name"),
        (["--param", "fast=5,", "--run", unique("r")], "an empty value in the list"),
        (["--param", "fast=0", "--run", unique("r")], "fast"),
        (["--sort", "luck", "--run", unique("r")], "--sort 'luck': one of net_pnl"),
    ]
    for extra, message in cases:
        res = run_cli([*base, *extra], env)
        assert res.returncode != 0 and message in res.stderr, (extra, res.stderr)
        assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    for args, message in (
        (["backtest", "drop", unique("nothere")], "error: no run nothere"),
        (["backtest", "show", "nothere"], "error: no run nothere"),
        (["backtest", "frobnicate"], "error: backtest frobnicate: say list"),
        (["backtest", "--symbol", "XRP/ETH"], "feed.path is required"),
    ):
        res = run_cli(args, env)
        assert res.returncode != 0 and message.split(" nothere")[0] in res.stderr, (args, res.stderr)
        assert "Traceback" not in res.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('[[1570752011620, "1", null, "sell", "0.0014", "-5"]]')
    res = run_cli(["backtest", "--file", str(bad), "--symbol", "XRP/ETH", "--run", unique("r")], env)
    assert res.returncode != 0 and "bad.json" in res.stderr and "Traceback" not in res.stderr, res.stderr


async def test_a_bad_row_past_the_checked_head_stops_the_run_and_drops_it(servers: Any, tmp_path: Path) -> None:
    """backtest reads only each file's first trades before it writes (not every file twice); a bad row further on
    stops the run with the file, line and reason, and the partial run's topics and schema are dropped."""
    env, name = _env(servers), unique("badrow")
    with gzip.open(SHARED_TRADES) as f:
        trades = json.loads(f.read())  # floats written back as read: the shortest text that reads as the same
    bad = 5_000  # past the head checked first (1,000 trades)
    trades[bad][5] = 0  # an amount of zero
    path = tmp_path / "late-bad.json"
    path.write_text(json.dumps(trades))
    res = run_cli(["backtest", "--file", str(path), "--symbol", "XRP/ETH", "--run", name, "--no-html"], env)
    assert res.returncode == 2, res.stdout + res.stderr[-3000:]
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "late-bad.json" in res.stderr and f"row {bad + 1}: amount" in res.stderr, res.stderr
    assert f"run {name} stopped there and is dropped" in res.stderr, res.stderr
    listed = run_cli(["backtest", "list"], env)
    assert not any(ln.startswith(name + " ") for ln in listed.stdout.splitlines()), listed.stdout
    conn = await asyncpg.connect(servers.pg_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", f"bt_{name}") == 0
    finally:
        await conn.close()
