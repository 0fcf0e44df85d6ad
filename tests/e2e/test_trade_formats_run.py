"""`engine run --file` on the formats users bring (a Binance data dump, ccxt's trade objects), end to end on the
real Kafka and PostgreSQL: the same fills as the compact file of the same trades; a bad row stops the run before
anything is written, with the file, the line and why."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pytest

from adapters.feeds.formats import read_trades
from tests.e2e.test_pipeline import rows
from tests.support import TRADES, XRP_ETH_SETTINGS, engine_env, run_cli, unique

pytestmark = pytest.mark.servers

FILL_COLS = "ts_event, side, quantity, price, fee, fee_currency"


def _binance_zip(path: Path, *, bad_line: int | None = None) -> Path:
    lines = ["id,price,qty,quote_qty,time,is_buyer_maker,is_best_match"]
    for t in read_trades(TRADES):
        maker = "true" if t.side == "sell" else "false"
        lines.append(f"{t.trade_id},{t.price},{t.amount},{t.price * t.amount},{t.ts_ns // 1_000_000},{maker},true")
    if bad_line is not None:
        lines[bad_line - 1] = (
            lines[bad_line - 1].replace(",true,true", ",perhaps,true").replace(",false,true", ",perhaps,true")
        )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("XRPETH-trades-2019-10.csv", "\n".join(lines) + "\n")
    return path


async def _run(servers: Any, file: Path, *extra: str) -> str:
    prefix, schema = unique("fmt"), unique("fmt")
    res = run_cli(
        ["run", "--file", str(file), "--symbol", "XRP/ETH", *extra],
        engine_env(servers, prefix, schema, XRP_ETH_SETTINGS),
    )
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    assert "stopped (end of feed)" in res.stdout
    return schema


async def test_a_binance_dump_trades_exactly_as_the_compact_file_of_the_same_trades(
    servers: Any, tmp_path: Path
) -> None:
    compact = await _run(servers, TRADES)
    dump = await _run(servers, _binance_zip(tmp_path / "XRPETH-trades-2019-10.zip"), "--format", "binance-trades")
    a = await rows(servers.pg_dsn, f"select {FILL_COLS} from {compact}.fills order by 1, 2, 3, 4")
    b = await rows(servers.pg_dsn, f"select {FILL_COLS} from {dump}.fills order by 1, 2, 3, 4")
    assert a and a == b
    (ticks,) = await rows(servers.pg_dsn, f"select count(*) from {dump}.events where type = 'TickReceived'")
    assert ticks == (12_477,)


async def test_a_bad_row_stops_the_run_before_anything_is_written(servers: Any, tmp_path: Path) -> None:
    path = _binance_zip(tmp_path / "bad.zip", bad_line=9001)
    prefix, schema = unique("fmtbad"), unique("fmtbad")
    res = run_cli(["run", "--file", str(path), "--symbol", "XRP/ETH"], engine_env(servers, prefix, schema))
    assert res.returncode == 2, res.stdout + res.stderr
    out = res.stdout + res.stderr
    assert f"{path}: line 9001: is_buyer_maker 'perhaps' is not true or false" in out, out
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1, out
    assert await rows(servers.pg_dsn, f"select to_regnamespace('{schema}')") == [(None,)], "a schema was made"


def _halves(tmp_path: Path) -> tuple[Path, Path]:
    """The real trades in two files of two formats: the first half compact JSON, the rest a Binance dump."""
    from tests.support import write_trades

    compact = [[t.ts_ns // 1_000_000, t.trade_id, None, t.side, t.price, t.amount] for t in read_trades(TRADES)]
    half = len(compact) // 2
    first = write_trades(tmp_path / "first.json", compact[:half])
    lines = [
        f"{r[1]},{r[4]},{r[5]},{r[4] * r[5]},{r[0]},{'true' if r[3] == 'sell' else 'false'},true"
        for r in compact[half:]
    ]
    second = tmp_path / "second.csv"
    second.write_text("\n".join(lines) + "\n")
    return first, second


async def test_several_files_of_one_instrument_are_one_run_and_of_two_instruments_trade_both(
    servers: Any, tmp_path: Path
) -> None:
    whole = await _run(servers, TRADES)
    first, second = _halves(tmp_path)
    # two days' files of one instrument, given in the wrong order: merged by time, the run of the whole file
    days = await _run(servers, second, "--file", str(first))
    a = await rows(servers.pg_dsn, f"select {FILL_COLS} from {whole}.fills order by 1, 2, 3, 4")
    b = await rows(servers.pg_dsn, f"select {FILL_COLS} from {days}.fills order by 1, 2, 3, 4")
    assert a and a == b
    # the same trades as two instruments: both traded, each as it trades alone
    prefix, both = unique("fmt2"), unique("fmt2")
    res = run_cli(
        ["run", "--file", str(TRADES), "--symbol", "XRP/ETH", "--file", str(second), "--symbol", "ADA/ETH"],
        # both quoted in ETH; the daily loss limit is the account's over both: off, so that each trades as alone
        engine_env(servers, prefix, both, {**XRP_ETH_SETTINGS, "ENGINE_RISK__DAILY_LOSS_LIMIT": "1"}),
    )
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    ticks = dict(
        await rows(servers.pg_dsn, f"select key, count(*) from {both}.events where type = 'TickReceived' group by 1")
    )
    assert ticks == {"XRP/ETH": 12_477, "ADA/ETH": 12_477 - 12_477 // 2}
    c = await rows(
        servers.pg_dsn, f"select {FILL_COLS} from {both}.fills where instrument = 'XRP/ETH' order by 1, 2, 3, 4"
    )
    assert c == a
    (n,) = await rows(servers.pg_dsn, f"select count(*) from {both}.fills where instrument = 'ADA/ETH'")
    assert n[0] > 0


def test_file_and_symbol_counts_that_do_not_pair_stop_with_one_line(servers: Any, tmp_path: Path) -> None:
    first, second = _halves(tmp_path)
    args = [
        "run",
        "--file",
        str(first),
        "--file",
        str(second),
        "--file",
        str(TRADES),
        "--symbol",
        "A/B",
        "--symbol",
        "C/D",
    ]
    res = run_cli(args, engine_env(servers, unique("fmt3"), unique("fmt3")))
    assert res.returncode == 2
    assert "3 --file and 2 --symbol: give one --symbol per --file, or one for all" in res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr
