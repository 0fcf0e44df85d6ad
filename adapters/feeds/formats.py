"""Trade files the recorded feed reads, streamed (memory stays flat whatever the file's size), every row checked.

Formats (``feed.format``, ``--format``; ``auto``, the default, tells them apart from the content):

- ``ccxt``: ccxt's compact trade list, a JSON array of ``[timestamp_ms, id, order_type, side, price, amount, ...]``;
- ``ccxt-dicts``: ccxt's trades as ``fetch_trades`` / ``watch_trades`` return them, a JSON array of objects or one
  object a line (JSON lines): ``timestamp`` (ms), ``id``, ``side``, ``price``, ``amount`` (``info`` and the rest are
  ignored);
- ``binance-trades``: Binance's public data dumps of trades, spot (``id, price, qty, quote_qty, time,
  is_buyer_maker, is_best_match``) or USD-M futures (``id, price, qty, quote_qty, time, is_buyer_maker``), with or
  without the header row;
- ``binance-aggtrades``: Binance's aggregate trades dumps (``agg_trade_id, price, quantity, first_trade_id,
  last_trade_id, transact_time, is_buyer_maker[, is_best_match]``), spot or futures, with or without the header;
- ``csv``: any other CSV, read through a column mapping (``feed.columns``, ``--columns``:
  :mod:`adapters.feeds.generic_csv`); never detected, chosen by naming it or by giving a mapping.

Each may be plain, ``.gz`` or ``.zip`` (one file inside, as Binance ships them). Numbers become Decimal from their
text, never through a float (JSON numbers too: ``parse_float=Decimal``). Binance's times in microseconds (its spot
dumps since 2025) are told from milliseconds by their size. In a Binance dump ``is_buyer_maker`` true means the
taker sold: the trade's side is ``sell``.

A row that cannot be a trade (a bad number, a price or amount that is not above zero, an unknown side, a time
out of range or before the previous row's) raises :class:`RecordedFileError` with the file, the row or line, and
why: one line.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import json
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any, Literal, get_args

from adapters.feeds._errors import RecordedFileError
from adapters.feeds.generic_csv import ColumnMap, parse_columns, read_rows
from events import validation

__all__ = ["FORMATS", "ColumnMap", "Format", "RecordedFileError", "Trade", "detect", "parse_columns", "read_trades"]

Format = Literal["auto", "ccxt", "ccxt-dicts", "binance-trades", "binance-aggtrades", "csv"]
FORMATS: tuple[str, ...] = get_args(Format)
_CHUNK = 1 << 16
_US_FROM = 10**14  # a Binance time at or above this is in microseconds (ms: until the year 5138)
_POSITIVE = validation.POSITIVE
_MAX_VALUE = 1 << 24  # a JSON value (one trade) longer than this many characters is refused


@dataclass(frozen=True, slots=True)
class Trade:
    ts_ns: int
    trade_id: str
    side: str  # buy | sell (the taker's)
    price: Decimal
    amount: Decimal
    file: Path | None = field(default=None, compare=False)  # where it was read: the file and its "line N" / "row N"
    where: str = field(default="", compare=False)


# --- opening -------------------------------------------------------------------------------------------------


@contextmanager
def open_text(path: Path) -> Iterator[IO[str]]:
    """The file's text: plain, gzip, or the one file of a zip archive, UTF-8, decoded as it is read."""
    try:
        with path.open("rb") as raw:
            head = raw.read(4)
    except OSError as exc:
        raise RecordedFileError(f"{path}: cannot be read: {exc}") from None
    if head[:2] == b"\x1f\x8b":
        with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
            yield fh
    elif head == b"PK\x03\x04":
        try:
            archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile as exc:
            raise RecordedFileError(f"{path}: a corrupt zip file: {exc}") from None
        with archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            if len(names) != 1:
                raise RecordedFileError(f"{path}: a zip of {len(names)} files; expected one trade file")
            with archive.open(names[0]) as member:
                yield io.TextIOWrapper(member, encoding="utf-8", newline="")
    else:
        with path.open("r", encoding="utf-8", newline="") as fh:
            yield fh


# --- detecting -----------------------------------------------------------------------------------------------


def detect(path: Path) -> str:
    """The format of ``path`` from its first bytes (see the module's docstring)."""
    with _reading(path), open_text(path) as fh:
        head = fh.read(_CHUNK)
    text = head.lstrip("\ufeff \t\r\n")
    if not text:
        raise RecordedFileError(f"{path}: empty: no trades")
    if text[0] == "[":
        rest = text[1:].lstrip()
        if rest.startswith("{"):
            return "ccxt-dicts"
        if rest.startswith("[") or rest.startswith("]"):
            return "ccxt"
        raise RecordedFileError(f"{path}: a JSON array of neither trade lists nor trade objects")
    if text[0] == "{":
        return "ccxt-dicts"
    first = next(csv.reader([text.splitlines()[0]]), [])
    names = [c.strip().lower() for c in first]
    if "agg_trade_id" in names or "first_trade_id" in names:
        return "binance-aggtrades"
    if "quote_qty" in names or ("id" in names and "is_buyer_maker" in names):
        return "binance-trades"
    if len(first) in (6, 7) and _bool(first[5]) is not None:
        return "binance-trades"  # id, price, qty, quote_qty, time, is_buyer_maker[, is_best_match]
    if len(first) in (7, 8) and _bool(first[6]) is not None:
        return "binance-aggtrades"  # agg id, price, qty, first id, last id, time, is_buyer_maker[, best match]
    raise RecordedFileError(
        f"{path}: not a trade file of a known format (ccxt trade lists or objects as JSON, Binance trades or "
        f"aggTrades CSV); name one with --format ({', '.join(FORMATS[1:])}), or map a CSV's columns with --columns"
    )


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Reading errors as one line each."""
    try:
        yield
    except RecordedFileError:
        raise
    except UnicodeDecodeError as exc:
        raise RecordedFileError(f"{path}: not UTF-8 text: {exc}") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise RecordedFileError(f"{path}: a truncated or corrupt gzip file: {exc}") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise RecordedFileError(f"{path}: cannot be read: {exc}") from None


# --- reading -------------------------------------------------------------------------------------------------


def read_trades(path: Path, fmt: str = "auto", columns: ColumnMap | str | None = None) -> Iterator[Trade]:
    """The trades of ``path`` in file order, each checked, times never going backwards; ``columns``: the mapping of
    a generic CSV (format ``csv``, which a mapping implies)."""
    if columns is not None and fmt not in ("auto", "csv"):
        raise RecordedFileError(f"{path}: a column mapping is for format csv, not {fmt}")
    if fmt == "csv" and columns is None:
        raise RecordedFileError(f"{path}: format csv needs a column mapping (--columns, feed.columns)")
    if isinstance(columns, str):
        try:
            columns = parse_columns(columns)
        except ValueError as exc:
            raise RecordedFileError(f"{path}: columns: {exc}") from None
    kind = "csv" if columns is not None else detect(path) if fmt == "auto" else fmt
    reader: Callable[[Path, IO[str]], Iterator[tuple[str, Trade]]] | None
    if columns is not None:
        reader = functools.partial(_csv, columns=columns)
    else:
        reader = {
            "ccxt": _ccxt,
            "ccxt-dicts": _ccxt_dicts,
            "binance-trades": _binance_trades,
            "binance-aggtrades": _binance_aggtrades,
        }.get(kind)
    if reader is None:
        raise RecordedFileError(f"{path}: unknown format {kind!r} (one of {', '.join(FORMATS)})")
    last = 0
    n = 0
    with _reading(path), open_text(path) as fh:
        for where, trade in reader(path, fh):
            if trade.ts_ns < last:
                raise RecordedFileError(f"{path}: {where}: time goes backwards ({trade.ts_ns // 1_000_000} ms)")
            last = trade.ts_ns
            n += 1
            yield trade
    if n == 0:
        raise RecordedFileError(f"{path}: no trades (an empty {'JSON array' if kind.startswith('ccxt') else 'file'})")


def _csv(path: Path, fh: IO[str], columns: ColumnMap) -> Iterator[tuple[str, Trade]]:
    for where, (ts_ns, trade_id, side, price, amount) in read_rows(path, fh, columns):
        yield where, _trade(path, where, ts_ns, trade_id, side, price, amount, unit="ns")


def _json_values(path: Path, fh: IO[str]) -> Iterator[tuple[str, Any]]:
    """The elements of a JSON array, or the objects of JSON lines, one at a time ("row N" / "line N")."""
    decoder = json.JSONDecoder(parse_float=Decimal, parse_constant=Decimal)  # NaN, Infinity: refused by the rules
    buf = fh.read(_CHUNK).lstrip("\ufeff")
    pos = _skip(buf, 0)
    array = buf[pos : pos + 1] == "["
    if array:
        pos += 1
    n = 0
    line = 1
    while True:
        pos = _skip(buf, pos, commas=array)
        if array and buf[pos : pos + 1] == "]":
            return
        if pos >= len(buf):
            more = fh.read(_CHUNK)
            if not more:
                if array:
                    raise RecordedFileError(f"{path}: row {n + 1}: the JSON array is not closed (a truncated file?)")
                return
            line += buf.count("\n")
            buf, pos = buf[pos:] + more, 0
            continue
        try:
            value, end = decoder.raw_decode(buf, pos)
        except json.JSONDecodeError as exc:
            more = fh.read(_CHUNK) if len(buf) - pos < _MAX_VALUE else ""  # the value may go on in the next chunk
            if more:
                line += buf.count("\n", 0, pos)
                buf, pos = buf[pos:] + more, 0
                continue
            where = f"row {n + 1}" if array else f"line {line + buf.count(chr(10), 0, pos)}"
            raise RecordedFileError(f"{path}: {where}: not JSON: {exc.msg}") from None
        except RecursionError:
            raise RecordedFileError(f"{path}: not a trade file: JSON nested too deeply") from None
        except ValueError as exc:
            where = f"row {n + 1}" if array else f"line {line + buf.count(chr(10), 0, pos)}"
            raise RecordedFileError(f"{path}: {where}: not a trade: {exc}") from None
        n += 1
        yield (f"row {n}" if array else f"line {line + buf.count(chr(10), 0, pos)}"), value
        pos = end
        if pos > _CHUNK:  # keep the buffer small: memory stays flat
            line += buf.count("\n", 0, pos)
            buf, pos = buf[pos:], 0


def _skip(buf: str, pos: int, *, commas: bool = False) -> int:
    while pos < len(buf) and (buf[pos] in " \t\r\n" or (commas and buf[pos] == ",")):
        pos += 1
    return pos


def _ccxt(path: Path, fh: IO[str]) -> Iterator[tuple[str, Trade]]:
    for where, row in _json_values(path, fh):
        if not (isinstance(row, list) and len(row) >= 6):
            raise RecordedFileError(
                f"{path}: {where}: not [timestamp, id, type, side, price, amount, ...]: {_shown(row)}"
            )
        yield where, _trade(path, where, row[0], row[1], row[3], row[4], row[5], unit="ms", text=False)


def _ccxt_dicts(path: Path, fh: IO[str]) -> Iterator[tuple[str, Trade]]:
    for where, row in _json_values(path, fh):
        if not isinstance(row, dict):
            raise RecordedFileError(f"{path}: {where}: not a trade object (timestamp, id, side, price, amount)")
        missing = [k for k in ("timestamp", "id", "side", "price", "amount") if row.get(k) is None]
        if missing:
            raise RecordedFileError(f"{path}: {where}: a trade without {', '.join(missing)}")
        yield (
            where,
            _trade(
                path,
                where,
                row["timestamp"],
                row["id"],
                row["side"],
                row["price"],
                row["amount"],
                unit="ms",
                text=False,
            ),
        )


def _csv_rows(path: Path, fh: IO[str], header_starts: tuple[str, ...]) -> Iterator[tuple[str, list[str]]]:
    for i, row in enumerate(csv.reader(fh)):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if i == 0 and row[0].strip().lower() in header_starts:
            continue  # the header row
        yield f"line {i + 1}", row


def _binance_trades(path: Path, fh: IO[str]) -> Iterator[tuple[str, Trade]]:
    for where, row in _csv_rows(path, fh, ("id", "trade_id")):
        if len(row) not in (6, 7):
            raise RecordedFileError(f"{path}: {where}: {len(row)} columns; Binance trades have 6 or 7")
        side = _taker_side(path, where, row[5])
        yield where, _trade(path, where, row[4], row[0], side, row[1], row[2], unit="auto")


def _binance_aggtrades(path: Path, fh: IO[str]) -> Iterator[tuple[str, Trade]]:
    for where, row in _csv_rows(path, fh, ("agg_trade_id", "a")):
        if len(row) not in (7, 8):
            raise RecordedFileError(f"{path}: {where}: {len(row)} columns; Binance aggTrades have 7 or 8")
        side = _taker_side(path, where, row[6])
        yield where, _trade(path, where, row[5], row[0], side, row[1], row[2], unit="auto")


def _bool(v: str) -> bool | None:
    return {"true": True, "false": False}.get(v.strip().lower())


def _taker_side(path: Path, where: str, is_buyer_maker: str) -> str:
    maker = _bool(is_buyer_maker)
    if maker is None:
        raise RecordedFileError(f"{path}: {where}: is_buyer_maker {is_buyer_maker[:20]!r} is not true or false")
    return "sell" if maker else "buy"  # the buyer made the book: the taker sold


def _trade(
    path: Path, where: str, ts: Any, trade_id: Any, side: Any, price: Any, amount: Any, *, unit: str, text: bool = True
) -> Trade:
    """A checked trade; ``text``: numbers come as text (CSV), else as JSON numbers (a string is refused)."""

    def bad(why: str) -> RecordedFileError:
        return RecordedFileError(f"{path}: {where}: {why}".replace("\n", " "))

    if isinstance(ts, str) and text:
        ts = ts.strip()
        if not ts.isdigit():
            raise bad(f"time {_shown(ts)} is not an integer")
        ts = int(ts)
    if type(ts) is not int:
        raise bad(f"timestamp {_shown(ts)} is not an integer number of milliseconds")
    ts_ns = ts if unit == "ns" else ts * 1000 if unit == "auto" and ts >= _US_FROM else ts * 1_000_000
    if not validation.TICK_TS_MIN <= ts_ns < validation.TS_MAX:
        shown = {"ms": "ms", "ns": "ns", "auto": "ms or µs"}[unit]
        raise bad(f"timestamp {ts} ({shown}) is not between 2000-01-01 and 2200-01-01")
    if not (type(trade_id) is int and trade_id >= 0) and not (type(trade_id) is str and trade_id.strip()):
        raise bad(f"trade id {_shown(trade_id)} is not a non-empty string or an integer")
    tid = str(trade_id).strip()
    problem = validation.TRADE_ID.problem(tid)
    if problem is not None:
        raise bad(f"trade id: {problem}")
    if side not in ("buy", "sell"):
        raise bad(f'side {_shown(side)} is not "buy" or "sell"')
    if text and type(price) is str and type(amount) is str:  # the fast path: a price seen before is a lookup
        p, a = _POSITIVE.read(price.strip()), _POSITIVE.read(amount.strip())
        if p is not None and a is not None:
            return Trade(ts_ns, tid, side, p, a, path, where)
    values = []
    for name, v in (("price", price), ("amount", amount)):
        d = _decimal(v) if text or not isinstance(v, str) else None
        if d is None:
            raise bad(f"{name} {_shown(v)} is not a number")
        problem = validation.POSITIVE.problem(d)
        if problem is not None:
            raise bad(f"{name}: {problem}")
        values.append(d)
    return Trade(ts_ns, tid, side, values[0], values[1], path, where)


def _decimal(v: Any) -> Decimal | None:
    if type(v) is Decimal:
        return v
    if type(v) is int:
        return Decimal(v)
    if isinstance(v, str):
        try:
            d = Decimal(v.strip())
        except InvalidOperation:
            return None
        return d
    return None


def _shown(v: Any) -> str:
    s = str(v) if isinstance(v, Decimal) else json.dumps(v, default=str)
    return s if len(s) <= 60 else s[:57] + "..."
