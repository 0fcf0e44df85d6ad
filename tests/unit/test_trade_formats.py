"""The recorded feed's formats (adapters/feeds/formats.py): each written from the real trades file reads back the
very same trades; the format is told from the content; a bad row names its file, its line and why; memory stays
flat whatever the file's size."""

from __future__ import annotations

import gzip
import io
import re
import tracemalloc
import zipfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adapters.feeds.formats import RecordedFileError, Trade, detect, parse_columns, read_trades
from tests.support import TRADES

REAL = list(read_trades(TRADES))[:2000]
SPOT_HEADER = "id,price,qty,quote_qty,time,is_buyer_maker,is_best_match"
FUTURES_HEADER = "id,price,qty,quote_qty,time,is_buyer_maker"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
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


# --- Binance USD-M futures layouts, without their header (older dumps) ----------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".zip"])
def test_futures_dumps_without_a_header_are_read_and_detected(tmp_path: Path, suffix: str) -> None:
    trades = "\n".join(",".join(r.split(",")[:6]) for r in _spot(REAL))  # id,price,qty,quote_qty,time,is_buyer_maker
    path = _write(tmp_path / f"um-trades{suffix}", trades)
    assert detect(path) == "binance-trades"
    _same(path)
    agg = "\n".join(
        f"{t.trade_id},{t.price},{t.amount},{t.trade_id},{t.trade_id},{t.ts_ns // 1_000_000},{_maker(t)}" for t in REAL
    )  # agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker
    path = _write(tmp_path / f"um-agg{suffix}", agg)
    assert detect(path) == "binance-aggtrades"
    _same(path)


# --- a generic CSV through a column mapping -------------------------------------------------------------------


def _when(ts_ns: int, unit: str) -> str:
    if unit == "iso":
        return (EPOCH + timedelta(microseconds=ts_ns // 1000)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if unit == "s":
        return f"{ts_ns // 10**9}.{ts_ns // 10**6 % 1000:03d}"
    return str(ts_ns // {"ms": 10**6, "us": 10**3, "ns": 1}[unit])


def _generic(trades: list[Trade], *, sep: str = ",", unit: str = "ms", side: str = "word", header: bool = True) -> str:
    rows = [sep.join(["Trade ID", "When", "Price", "Size", "Side"])] if header else []
    for t in trades:
        spelled = {"word": t.side.upper(), "bs": "B" if t.side == "buy" else "S", "maker": _maker(t)}[side]
        rows.append(sep.join([t.trade_id, _when(t.ts_ns, unit), str(t.price), str(t.amount), spelled]))
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize(
    ("name", "kwargs", "columns"),
    [
        ("ms.csv", {}, "time=when:ms,price=price,amount=size,side=side,id=trade id"),
        ("s.csv.gz", {"unit": "s"}, "time=When:s,price=Price,amount=Size,side=Side,id=Trade ID"),
        (
            "us.zip",
            {"unit": "us", "sep": ";"},
            "time=when:us,price=price,amount=size,side=side,id=trade id,delimiter=;",
        ),
        ("ns.tsv", {"unit": "ns", "sep": "\t"}, "time=when:ns,price=price,amount=size,side=side,id=1,delimiter=tab"),
        ("iso.csv", {"unit": "iso", "side": "bs"}, "time=when:iso,price=price,amount=size,side=side:B/S,id=trade id"),
        (
            "numbers.csv",
            {"side": "maker", "header": False, "sep": "|"},
            "time=2:ms,price=3,amount=4,buyer_maker=5,id=1,delimiter=pipe",
        ),
    ],
)
def test_a_generic_csv_reads_back_the_real_trades_through_its_mapping(
    tmp_path: Path, name: str, kwargs: dict[str, Any], columns: str
) -> None:
    path = _write(tmp_path / name, _generic(REAL, **kwargs))
    got = list(read_trades(path, "csv", columns))
    assert got == REAL
    assert all(type(t.price) is Decimal and type(t.amount) is Decimal for t in got)
    assert [str(t.price) for t in got] == [str(t.price) for t in REAL]  # the file's text, digit for digit
    assert list(read_trades(path, "auto", parse_columns(columns))) == REAL  # a mapping implies csv
    with pytest.raises(RecordedFileError, match="not a trade file of a known format"):
        detect(path)  # never claimed by auto-detection


def test_a_generic_csv_without_ids_numbers_the_trades_of_each_time(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", _generic(REAL[:50]))
    got = list(read_trades(path, "csv", "time=when:ms,price=price,amount=size,side=side"))
    assert [(t.ts_ns, t.side, t.price, t.amount) for t in got] == [
        (t.ts_ns, t.side, t.price, t.amount) for t in REAL[:50]
    ]
    ranks: dict[int, int] = {}
    for t in got:
        ranks[t.ts_ns] = ranks.get(t.ts_ns, 0) + 1
        assert t.trade_id == str(ranks[t.ts_ns])
    assert list(read_trades(path, "csv", "time=when:ms,price=price,amount=size,side=side")) == got  # stable


@pytest.mark.parametrize(
    ("columns", "reason"),
    [
        ("time=when,price=price,amount=size,side=side", "give the unit after a colon, e.g. time=ts:ms"),
        ("time=when:hours,price=price,amount=size,side=side", "(s, ms, us, ns or iso)"),
        ("time=when:ms,amount=size,side=side", "no price column"),
        ("time=when:ms,price=price,amount=size", "give the taker's side as side=COLUMN or buyer_maker=COLUMN"),
        ("time=when:ms,price=price,amount=size,side=side,buyer_maker=side", "one of the two"),
        ("time=when:ms,price=price,amount=price,side=side", "a column is given for two keys"),
        ("time=when:ms,price=price,amount=size,side=side,colour=red", "unknown key 'colour'"),
        ("time=when:ms,price=price,amount=size,side=side,header=no", "header=no, but a column is given by name"),
        ("time=when:ms,price=price,amount=size,side=side,header=maybe", "header=maybe: yes or no"),
        ("time=when:ms,price=price,amount=size,side=side,delimiter=ab", "delimiter 'ab': one character"),
        ("time=0:ms,price=2,amount=3,side=4", "columns are numbered from 1"),
        ("time=when:ms,price=price,amount=size,side=side:B/B", "two different words"),
        ("time=when:ms price=price", "separate the key=value pairs with commas"),
        ("time=when:ms,price", "'price' is not key=value"),
        ("time=when:ms,time=t:s,price=price,amount=size,side=side", "time is given twice"),
    ],
)
def test_a_bad_mapping_is_refused_in_one_line(columns: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)) as err:
        parse_columns(columns)
    assert "\n" not in str(err.value)


def test_a_mapping_reads_the_same_from_its_text_and_from_a_table() -> None:
    table = {"time": "ts:iso", "price": "px", "amount": "qty", "buyer_maker": "m:Y/N", "id": 1, "delimiter": "tab"}
    cols = parse_columns(table)
    assert (
        cols
        == parse_columns(cols.text())
        == parse_columns("time=ts:iso,price=px,amount=qty,buyer_maker=m:y/n,id=1,delimiter=tab")
    )
    assert cols.header is True and cols.delimiter == "\t" and cols.maker_spelling == ("y", "n")


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("9,1570752011621,abc,1,BUY", 'price "abc" is not a number'),
        ("9,1570752011621,-1,1,BUY", "price: must be > 0"),
        ("9,1570752011621,0.1,0,BUY", "amount: must be > 0"),
        ("9,1570752011621,0.1,1,HOLD", "side 'HOLD' is not 'buy' or 'sell'"),
        ("9,yesterday,0.1,1,BUY", "time 'yesterday' is not a number of ms"),
        ("9,1570752011000,0.1,1,BUY", "time goes backwards"),
        ("9,1570752011621,0.1", "3 columns; the mapping reads column 5"),
    ],
)
def test_a_bad_generic_row_names_its_file_and_line(tmp_path: Path, row: str, reason: str) -> None:
    path = _write(tmp_path / "t.csv", _generic(REAL[:2]) + row + "\n")
    with pytest.raises(RecordedFileError) as err:
        list(read_trades(path, "csv", "time=when:ms,price=price,amount=size,side=side,id=trade id"))
    message = str(err.value)
    assert message.startswith(f"{path}: line 4: ") and reason in message, message


def test_a_mapping_that_does_not_fit_the_file_says_so(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", _generic(REAL[:2], sep=";"))
    with pytest.raises(RecordedFileError, match=r"line 1: no column 'when' \(time\) in the header .*delimiter ','"):
        list(read_trades(path, "csv", "time=when:ms,price=price,amount=size,side=side"))
    with pytest.raises(RecordedFileError, match="format csv needs a column mapping"):
        list(read_trades(path, "csv"))
    with pytest.raises(RecordedFileError, match="a column mapping is for format csv, not ccxt"):
        list(read_trades(path, "ccxt", "time=1:ms,price=2,amount=3,side=4"))


def test_a_generic_csv_streams_in_flat_memory(tmp_path: Path) -> None:
    n = 100_000
    base = REAL[0]
    lines = "".join(f"{base.ts_ns // 1_000_000 + i};{base.price};{base.amount};buy\n" for i in range(n))
    path = _write(tmp_path / "big.csv.gz", lines)
    del lines
    tracemalloc.start()
    count = sum(1 for _ in read_trades(path, "csv", "time=1:ms,price=2,amount=3,side=4,delimiter=;"))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == n
    assert peak < 4 * 1024 * 1024, f"{peak / 2**20:.1f} MiB held while reading"
