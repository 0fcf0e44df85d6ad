"""`engine run --file` on the formats users bring (a Binance data dump, ccxt's trade objects), end to end on the
real Kafka and PostgreSQL: the same fills as the compact file of the same trades; a bad row stops the run before
anything is written, with the file, the line and why."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from adapters.feeds.formats import read_trades
from tests.e2e.test_pipeline import rows
from tests.support import TRADES, XRP_ETH_SETTINGS, engine_env, run_cli, start_cli, unique, wait_for

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


async def test_a_generic_csv_through_columns_trades_as_the_compact_file(servers: Any, tmp_path: Path) -> None:
    """A CSV of the user's own layout (semicolons, seconds with a fraction, B/S), read through --columns."""
    lines = ["When;Trade;Px;Qty;Dir"]
    for t in read_trades(TRADES):
        when = f"{t.ts_ns // 10**9}.{t.ts_ns // 10**6 % 1000:03d}"
        lines.append(f"{when};{t.trade_id};{t.price};{t.amount};{'B' if t.side == 'buy' else 'S'}")
    path = tmp_path / "mine.csv"
    path.write_text("\n".join(lines) + "\n")
    columns = "time=when:s,id=trade,price=px,amount=qty,side=dir:B/S,delimiter=semicolon"
    compact = await _run(servers, TRADES)
    mine = await _run(servers, path, "--columns", columns)
    a = await rows(servers.pg_dsn, f"select {FILL_COLS} from {compact}.fills order by 1, 2, 3, 4")
    b = await rows(servers.pg_dsn, f"select {FILL_COLS} from {mine}.fills order by 1, 2, 3, 4")
    assert a and a == b
    (feed,) = await rows(
        servers.pg_dsn, f"select detail from {mine}.system_events where type = 'FeedStopped'"
    )  # where the feed stopped: the end of its file, after its last line
    assert json.loads(feed[0]) == {
        "feed": "feed:recorded",
        "outcome": "end",
        "reason": "end of its files",
        "file": str(path),
        "where": f"line {len(lines)}",
        "ticks_published": 12_477,
    }


async def test_a_file_that_turns_bad_mid_run_stops_it_there_and_the_log_says_where(
    servers: Any, tmp_path: Path
) -> None:
    """Two files (the real trades' two halves); the second is checked good at the start, then a row near its end is
    damaged while the run goes (paced, ~20 s). The run stops at that row: exit 2 with the file, line and reason; a
    FeedStopped in the log and the audit says so, with the ticks published; what was published is consistent (a
    replay of the log equals the live projection)."""
    first, second = _halves(tmp_path)
    text = second.read_text()
    lines = text.splitlines()
    bad_line = len(lines) - 20
    start = sum(len(line) + 1 for line in lines[: bad_line - 1])
    row = lines[bad_line - 1]
    damaged = row.replace(",true,true", ",tru3,true").replace(",false,true", ",fals3,true")
    assert len(damaged) == len(row) and damaged != row
    prefix, schema = unique("fmtmid"), unique("fmtmid")
    env = engine_env(servers, prefix, schema, XRP_ETH_SETTINGS)
    log = tmp_path / "run.log"
    args = ["run", "--file", str(first), "--file", str(second), "--symbol", "XRP/ETH", "--speed", "10000"]
    proc = start_cli(args, env, log)
    try:

        async def ticking() -> bool:
            try:
                (n,) = await rows(servers.pg_dsn, f"select count(*) from {schema}.events where type = 'TickReceived'")
            except asyncpg.PostgresError:
                return False  # the schema is not there yet
            return bool(n[0])

        await wait_for(ticking, 60, "the run's first ticks in the audit")
        with second.open("r+b") as fh:  # in place: the feed's open file sees it when it gets there
            fh.seek(start)
            fh.write(damaged.encode())
        rc = proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = log.read_text()
    assert rc == 2, out[-3000:]
    reason = f"is_buyer_maker '{'tru3' if 'tru3' in damaged else 'fals3'}' is not true or false"
    last = out.splitlines()[-1]
    assert last.startswith("error: ") and last.endswith(f"{second}: line {bad_line}: {reason}"), out[-3000:]
    assert "Traceback" not in out
    (ticks,) = await rows(servers.pg_dsn, f"select count(*) from {schema}.events where type = 'TickReceived'")
    events = await rows(servers.pg_dsn, f"select type, detail from {schema}.system_events order by ts_event")
    kinds = [t for t, _ in events]
    assert kinds[0] == "EngineStarted" and "FeedStopped" in kinds and kinds[-1] == "EngineStopped", kinds
    feed = json.loads(dict(events)["FeedStopped"])
    assert feed == {
        "feed": "feed:recorded",
        "outcome": "failed",
        "reason": reason,
        "file": str(second),
        "where": f"line {bad_line}",
        "ticks_published": ticks[0],
    }
    half = 12_477 // 2
    assert half < ticks[0] < 12_477  # all of the first file, the second up to its bad row
    assert reason in json.loads(dict(events)["EngineStopped"])["reason"]
    check = unique("fmtmidcheck")
    replayed = run_cli(["replay", "--schema", check], env)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    diff = run_cli(["diff", schema, check], env)
    assert diff.returncode == 0, diff.stdout + diff.stderr
