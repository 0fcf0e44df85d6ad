"""The recorded feed's formats (adapters/feeds/formats.py): each written from the real trades file reads back the
very same trades; the format is told from the content; a bad row names its file, its line and why; memory stays
flat whatever the file's size."""

from __future__ import annotations

import gzip
import io
import tracemalloc
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.feeds.formats import RecordedFileError, Trade, detect, read_trades
from tests.support import TRADES

REAL = list(read_trades(TRADES))[:2000]
SPOT_HEADER = "id,price,qty,quote_qty,time,is_buyer_maker,is_best_match"
FUTURES_HEADER = "id,price,qty,quote_qty,time,is_buyer_maker"
AGG_HEADER = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker,is_best_match"


def _maker(t: Trade) -> str:
    return "true" if t.side == "sell" else "false"  # the taker sold: the buyer made the book


def _spot(trades: list[Trade], *, us: bool = False) -> list[str]:
    scale = 1000 if us else 1_000_000
    return [
        f"{t.trade_id},{t.price},{t.amount},{t.price * t.amount},{t.ts_ns // scale},{_maker(t)},true" for t in trades
    ]


def _write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    elif path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr(path.stem + ".csv", text)
    else:
        path.write_text(text)
    return path


def _same(path: Path, expected: list[Trade] = REAL, fmt: str = "auto") -> None:
    got = list(read_trades(path, fmt))
    assert got == expected
    assert all(type(t.price) is Decimal and type(t.amount) is Decimal for t in got)


def _dicts(trades: list[Trade]) -> list[str]:
    # as ccxt's fetch_trades gives them: JSON numbers, more keys, info kept
    return [
        f'{{"info": {{"a": "{t.trade_id}"}}, "timestamp": {t.ts_ns // 1_000_000}, "datetime": "x", '
        f'"symbol": "XRP/ETH", "id": "{t.trade_id}", "order": null, "type": null, "side": "{t.side}", '
        f'"takerOrMaker": null, "price": {t.price}, "amount": {t.amount}, "cost": {t.price * t.amount}, "fee": null}}'
        for t in trades
    ]


@pytest.mark.parametrize(
    ("name", "make", "kind"),
    [
        ("spot.csv", lambda: "\n".join(_spot(REAL)), "binance-trades"),
        ("spot-header.csv.gz", lambda: "\n".join([SPOT_HEADER, *_spot(REAL)]), "binance-trades"),
        ("spot-us.zip", lambda: "\n".join(_spot(REAL, us=True)), "binance-trades"),  # microseconds (since 2025)
        (
            "futures.zip",
            lambda: "\n".join([FUTURES_HEADER, *(",".join(r.split(",")[:6]) for r in _spot(REAL))]),
            "binance-trades",
        ),
        (
            "agg.csv",
            lambda: "\n".join(
                f"{t.trade_id},{t.price},{t.amount},{t.trade_id},{t.trade_id},{t.ts_ns // 1_000_000},{_maker(t)},true"
                for t in REAL
            ),
            "binance-aggtrades",
        ),
        (
            "agg-futures-header.csv",
            lambda: "\n".join(
                [
                    AGG_HEADER.rsplit(",", 1)[0],
                    *(
                        f"{t.trade_id},{t.price},{t.amount},{t.trade_id},{t.trade_id},"
                        f"{t.ts_ns // 1_000_000},{_maker(t)}"
                        for t in REAL
                    ),
                ]
            ),
            "binance-aggtrades",
        ),
        ("dicts.json", lambda: "[" + ",\n".join(_dicts(REAL)) + "]", "ccxt-dicts"),
        ("dicts.jsonl.gz", lambda: "\n".join(_dicts(REAL)) + "\n", "ccxt-dicts"),
        (
            "compact.json",
            lambda: (
                "["
                + ",".join(
                    f'[{t.ts_ns // 1_000_000}, "{t.trade_id}", null, "{t.side}", {t.price}, {t.amount}]' for t in REAL
                )
                + "]"
            ),
            "ccxt",
        ),
    ],
)
def test_each_format_reads_back_the_real_trades_exactly(tmp_path: Path, name: str, make: object, kind: str) -> None:
    path = _write(tmp_path / name, make())  # type: ignore[operator]
    assert detect(path) == kind
    _same(path)
    _same(path, fmt=kind)


def test_json_numbers_stay_exact_and_a_number_as_text_is_refused_in_json(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "t.jsonl", '{"timestamp": 1570752011620, "id": "1", "side": "buy", "price": 0.1, "amount": 3}\n'
    )
    (t,) = read_trades(path)
    assert str(t.price) == "0.1" and t.amount == 3 and type(t.amount) is Decimal
    bad = _write(
        tmp_path / "b.jsonl", '{"timestamp": 1570752011620, "id": "1", "side": "buy", "price": "0.1", "amount": 3}\n'
    )
    with pytest.raises(RecordedFileError, match=r'line 1: price "0.1" is not a number'):
        list(read_trades(bad))


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("7,abc,1,1,1570752011621,true,true", 'price "abc" is not a number'),
        ("7,-0.001,1,1,1570752011621,true,true", "price: must be > 0"),
        ("7,0.001,0,1,1570752011621,true,true", "amount: must be > 0"),
        ("7,0.001,NaN,1,1570752011621,true,true", "amount: not a finite decimal"),
        ("7,0.001,1,1,1570752011621,maybe,true", "is_buyer_maker 'maybe' is not true or false"),
        ("7,0.001,1,1,157075201162x,true,true", 'time "157075201162x" is not an integer'),
        ("7,0.001,1,1,5,true,true", "timestamp 5 (ms or µs) is not between 2000-01-01 and 2200-01-01"),
        ("7,0.001,1,1,1570752011000,true,true", "time goes backwards"),
        ("7,0.001,1", "3 columns; Binance trades have 6 or 7"),
        (",0.001,1,1,1570752011621,true,true", 'trade id "" is not a non-empty string or an integer'),
    ],
)
def test_a_bad_csv_row_names_its_file_and_line(tmp_path: Path, line: str, reason: str) -> None:
    good = "\n".join(_spot(REAL[:2]))
    path = _write(tmp_path / "t.csv", f"{SPOT_HEADER}\n{good}\n{line}\n")
    with pytest.raises(RecordedFileError) as err:
        list(read_trades(path))
    message = str(err.value)
    assert message.startswith(f"{path}: line 4: ") and reason in message, message
    assert "\n" not in message


def test_files_that_are_no_trade_file_are_refused_in_one_line(tmp_path: Path) -> None:
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as z:
        z.writestr("a.csv", "\n".join(_spot(REAL[:2])))
        z.writestr("b.csv", "\n".join(_spot(REAL[:2])))
    cases = {
        two: "a zip of 2 files; expected one trade file",
        _write(tmp_path / "words.csv", "hello,world\n"): "not a trade file of a known format",
        _write(tmp_path / "header.csv", SPOT_HEADER + "\n"): "no trades (an empty file)",
        _write(tmp_path / "bin.dat", "\x00\x01\x02"): "not a trade file of a known format",
    }
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    cases[broken] = "a corrupt zip file"
    for path, reason in cases.items():
        with pytest.raises(RecordedFileError) as err:
            list(read_trades(path))
        assert reason in str(err.value) and "\n" not in str(err.value), str(err.value)
    with pytest.raises(RecordedFileError, match="unknown format 'parquet'"):
        list(read_trades(TRADES, "parquet"))


def test_memory_stays_flat_whatever_the_files_size(tmp_path: Path) -> None:
    """100,000 trades, as a gzip CSV and as JSON lines (~9 MiB of text): read with at most 4 MiB held."""
    n = 100_000
    base = REAL[0]
    rows = io.StringIO()
    for i in range(n):
        rows.write(
            f"{i},{base.price},{base.amount},1,{base.ts_ns // 1_000_000 + i},{'true' if i % 2 else 'false'},true\n"
        )
    csv_path = _write(tmp_path / "big.csv.gz", rows.getvalue())
    lines = "".join(
        f'{{"timestamp": {base.ts_ns // 1_000_000 + i}, "id": "{i}", "side": "buy", "price": {base.price}, '
        f'"amount": {base.amount}}}\n'
        for i in range(n)
    )
    jsonl_path = _write(tmp_path / "big.jsonl", lines)
    del rows, lines
    for path in (csv_path, jsonl_path):
        tracemalloc.start()
        count = sum(1 for _ in read_trades(path))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert count == n
        assert peak < 4 * 1024 * 1024, f"{path.name}: {peak / 2**20:.1f} MiB held while reading"
