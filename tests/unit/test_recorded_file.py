"""A recorded trade list is checked row by row before it is replayed: the file, the row (from 1) and the reason, in
one line; the trades it gives are those the readers of the log take (times, prices and amounts by the same rules)."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.feeds.recorded import RecordedFileError, load_trades
from tests.support import SHARED_TRADES

GOOD = '[1570752011620, "13519807", null, "sell", 0.00141342, 23.0, 0.03250866]'


def _file(tmp_path: Path, text: str, name: str = "t.json") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_real_file_loads_with_its_numbers_as_decimals_from_their_text() -> None:
    rows = load_trades(SHARED_TRADES)
    assert len(rows) == 12_477
    assert rows[0] == [1570752011620, "13519807", None, "sell", Decimal("0.00141342"), Decimal("23.0")]
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)


def test_integer_amounts_and_trade_ids_are_taken(tmp_path: Path) -> None:
    rows = load_trades(_file(tmp_path, '[[1570752011620, 42, null, "buy", 1, 23, 23]]'))
    assert rows == [[1570752011620, "42", None, "buy", Decimal(1), Decimal(23)]]
    assert type(rows[0][4]) is Decimal and type(rows[0][5]) is Decimal


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (
            '[1570752011620.5, "1", null, "buy", 0.0014, 1.0]',
            "timestamp 1570752011620.5 is not an integer number of milliseconds",
        ),
        (
            '["1570752011620", "1", null, "buy", 0.0014, 1.0]',
            'timestamp "1570752011620" is not an integer number of milliseconds',
        ),
        ('[5, "1", null, "buy", 0.0014, 1.0]', "timestamp 5 (ms) is not between 2000-01-01 and 2200-01-01"),
        ('[-1570752011620, "1", null, "buy", 0.0014, 1.0]', "is not between 2000-01-01 and 2200-01-01"),
        ('[1570752011620, null, null, "buy", 0.0014, 1.0]', "trade id null is not a non-empty string or an integer"),
        ('[1570752011620, "", null, "buy", 0.0014, 1.0]', 'trade id "" is not a non-empty string or an integer'),
        ('[1570752011620, true, null, "buy", 0.0014, 1.0]', "trade id true is not a non-empty string or an integer"),
        ('[1570752011620, "' + "x" * 129 + '", null, "buy", 0.0014, 1.0]', "trade id: 129 characters, at most 128"),
        ('[1570752011620, "1", null, "hold", 0.0014, 1.0]', 'side "hold" is not "buy" or "sell"'),
        ('[1570752011620, "1", null, "buy", 0.0014]', "not [timestamp, id, type, side, price, amount, ...]"),
        ('{"price": 1}', "not [timestamp, id, type, side, price, amount, ...]"),
        ('[1570752011620, "1", null, "buy", -0.0014, 1.0]', "price: must be > 0, got '-0.0014'"),
        ('[1570752011620, "1", null, "buy", 0.0014, 0]', "amount: must be > 0, got '0'"),
        ('[1570752011620, "1", null, "buy", 0.0014, -500.0]', "amount: must be > 0, got '-500.0'"),
        ('[1570752011620, "1", null, "buy", NaN, 1.0]', "price: not a finite decimal: 'NaN'"),
        ('[1570752011620, "1", null, "buy", 0.0014, -Infinity]', "amount: not a finite decimal: '-Infinity'"),
        ('[1570752011620, "1", null, "buy", "abc", 1.0]', 'price "abc" is not a number'),
        ('[1570752011620, "1", null, "buy", "0.0014", 1.0]', 'price "0.0014" is not a number'),
        ('[1570752011620, "1", null, "buy", 1E+400, 1.0]', "price: '1E+400' is out of range: at most 1E+15"),
        (
            '[1570752011620, "1", null, "buy", 0.0014, 0.000000000000000000001]',
            "amount: '1E-21' has more than 20 digits after the decimal point",
        ),
    ],
)
def test_a_bad_row_is_refused_with_the_file_its_number_and_the_reason(tmp_path: Path, row: str, reason: str) -> None:
    path = _file(tmp_path, f"[{GOOD}, {GOOD}, {row}]")
    with pytest.raises(RecordedFileError) as err:
        load_trades(path)
    message = str(err.value)
    assert message.startswith(f"{path}: row 3: ") and reason in message, message
    assert "\n" not in message and len(message) < 250 + len(str(path))


@pytest.mark.parametrize(
    ("text", "name", "reason"),
    [
        ("", "t.json", "empty: no trades"),
        ("[]", "t.json", "no trades (an empty JSON array)"),
        ('{"trades": []}', "t.json", "line 1: a trade without timestamp, id, side, price, amount"),
        ('"trades"', "t.json", "not a trade file of a known format"),
        (f"[{GOOD}, [157", "t.json", "row 2: not JSON"),
        ("[" * 100_000 + "]" * 100_000, "t.json", "JSON nested too deeply"),
        ("[]", "t.json.gz", "no trades"),  # the content says what it is, not the name
    ],
)
def test_a_file_that_is_no_trade_list_is_refused_with_the_reason(
    tmp_path: Path, text: str, name: str, reason: str
) -> None:
    path = _file(tmp_path, text, name)
    with pytest.raises(RecordedFileError, match=f"^{path}: .*") as err:
        load_trades(path)
    assert reason in str(err.value) and "\n" not in str(err.value)


def test_a_truncated_or_damaged_gzip_file_or_other_bytes_are_refused(tmp_path: Path) -> None:
    raw = SHARED_TRADES.read_bytes()
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(RecordedFileError, match="a truncated or corrupt gzip file: Compressed file ended"):
        load_trades(cut)
    damaged = tmp_path / "damaged.json.gz"
    damaged.write_bytes(raw[:2000] + bytes(b ^ 0x5A for b in raw[2000:4000]) + raw[4000:])
    with pytest.raises(RecordedFileError, match="a truncated or corrupt gzip file"):
        load_trades(damaged)
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'[[1570752011620, "\xe9", null, "buy", 0.0014, 1.0]]')
    with pytest.raises(RecordedFileError, match="not UTF-8 text"):
        load_trades(latin)
    packed = tmp_path / "packed.json"  # gzip bytes under a .json name: read as what they are
    packed.write_bytes(gzip.compress(f"[{GOOD}]".encode()))
    assert len(load_trades(packed)) == 1
    with pytest.raises(RecordedFileError, match=r"cannot be read: .*No such file"):
        load_trades(tmp_path / "missing.json")
