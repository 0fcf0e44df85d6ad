"""A CSV of trades in any layout, read through a column mapping (``feed.columns``, ``--columns``), streamed.

The mapping is ``key=value`` pairs separated by commas (on the command line, in an environment variable, or as a
string setting), or the same keys as a TOML table::

    time=ts:ms,price=px,amount=qty,side=side,id=trade_id

- ``time`` (required): the column of the trade's time and its unit after a colon: ``s``, ``ms``, ``us``, ``ns``
  (a number; a fraction is allowed, e.g. ``1570752011.62`` in ``s``) or ``iso`` (ISO 8601 text, e.g.
  ``2019-10-11T00:00:11.620Z``; without an offset it is UTC);
- ``price``, ``amount`` (required): their columns; read as Decimal from the text, never through a float;
- the taker's side, one of: ``side`` (a column of ``buy`` / ``sell``, any case, or spelled your way after a colon:
  ``side=dir:B/S``, the buy spelling first), or ``buyer_maker`` (a column of ``true`` / ``false`` or ``1`` / ``0``,
  or spelled your way: ``buyer_maker=m:Y/N``, true first; true means the taker sold, as in Binance's dumps);
- ``id`` (optional): the trade id's column; without it a trade's id is its rank among the file's trades of the same
  time (``1``, ``2``, ...), stable from one read to the next (a resumed run finds where it stopped);
- ``delimiter`` (default ``,``): one character, or ``comma``, ``semicolon``, ``tab``, ``pipe``, ``space``;
- ``header`` (``yes`` / ``no``): whether the first row names the columns. A column is given by its header name
  (any case) or by its number from 1; the default is ``yes`` when a column is given by name, else ``no``.

A mapping is checked when the settings are loaded (:func:`parse_columns`: one line naming what is wrong) and against
the file's header when the file is opened. Generic CSV is never detected from a file's content: it is chosen by
naming it (``--format csv``) or by giving a mapping.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

from adapters.feeds._errors import RecordedFileError

UNITS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
_DELIMITERS = {"comma": ",", "semicolon": ";", "tab": "\t", "pipe": "|", "space": " "}
_KEYS = ("time", "price", "amount", "side", "buyer_maker", "id", "delimiter", "header")
_YES = {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Ref = str | int  # a header name, or a column number from 1


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Which column holds what (see the module's docstring)."""

    time: Ref
    unit: str  # s | ms | us | ns | iso
    price: Ref
    amount: Ref
    side: Ref | None = None
    side_spelling: tuple[str, str] = ("buy", "sell")  # lower case
    buyer_maker: Ref | None = None
    maker_spelling: tuple[str, str] = ("true", "false")  # lower case; 1 / 0 too when not spelled
    id: Ref | None = None
    delimiter: str = ","
    header: bool = False

    def text(self) -> str:
        """The mapping as ``key=value,...`` (what :func:`parse_columns` reads back to the same mapping)."""
        parts = [f"time={self.time}:{self.unit}", f"price={self.price}", f"amount={self.amount}"]
        if self.side is not None:
            spelled = "" if self.side_spelling == ("buy", "sell") else ":" + "/".join(self.side_spelling)
            parts.append(f"side={self.side}{spelled}")
        if self.buyer_maker is not None:
            spelled = "" if self.maker_spelling == ("true", "false") else ":" + "/".join(self.maker_spelling)
            parts.append(f"buyer_maker={self.buyer_maker}{spelled}")
        if self.id is not None:
            parts.append(f"id={self.id}")
        if self.delimiter != ",":
            name = {v: k for k, v in _DELIMITERS.items()}.get(self.delimiter, self.delimiter)
            parts.append(f"delimiter={name}")
        parts.append(f"header={'yes' if self.header else 'no'}")
        return ",".join(parts)


def parse_columns(spec: str | dict[str, Any]) -> ColumnMap:
    """A column mapping from its text (``time=ts:ms,price=px,...``) or a table of the same keys; ValueError, one
    line, naming what is wrong."""
    pairs: dict[str, str] = {}
    if isinstance(spec, dict):
        for k, v in spec.items():
            pairs[str(k).strip().lower()] = (
                ("yes" if v else "no") if isinstance(v, bool) else str(v) if isinstance(v, int | str) else repr(v)
            )
    else:
        for part in spec.split(","):
            if not part.strip():
                continue
            key, eq, value = part.partition("=")
            key = key.strip().lower()
            if not eq:
                raise ValueError(f"{part.strip()!r} is not key=value (e.g. time=ts:ms,price=px,amount=qty,side=side)")
            if "=" in value:
                raise ValueError(f"{part.strip()!r}: separate the key=value pairs with commas")
            if key in pairs:
                raise ValueError(f"{key} is given twice")
            pairs[key] = value.strip()
    unknown = [k for k in pairs if k not in _KEYS]
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (keys: {', '.join(_KEYS)})")
    missing = [k for k in ("time", "price", "amount") if not pairs.get(k)]
    if missing:
        raise ValueError(f"no {' and '.join(missing)} column (e.g. time=ts:ms,price=px,amount=qty,side=side)")
    if ("side" in pairs) == ("buyer_maker" in pairs):
        raise ValueError("give the taker's side as side=COLUMN or buyer_maker=COLUMN (one of the two)")
    ref, colon, unit = pairs["time"].rpartition(":")
    if not colon or unit.strip().lower() not in (*UNITS, "iso"):
        raise ValueError(f"time={pairs['time']}: give the unit after a colon, e.g. time=ts:ms (s, ms, us, ns or iso)")
    out: dict[str, Any] = {"time": _ref("time", ref), "unit": unit.strip().lower()}
    out["price"] = _ref("price", pairs["price"])
    out["amount"] = _ref("amount", pairs["amount"])
    for key, spelling_key in (("side", "side_spelling"), ("buyer_maker", "maker_spelling")):
        if key in pairs:
            ref, colon, spelled = pairs[key].rpartition(":")
            if not colon or "/" not in spelled:
                ref, spelled = pairs[key], ""
            out[key] = _ref(key, ref)
            if spelled:
                a, _, b = spelled.partition("/")
                a, b = a.strip().lower(), b.strip().lower()
                if not a or not b or a == b or "/" in b:
                    raise ValueError(f"{key}={pairs[key]}: spell it as COLUMN:A/B, two different words")
                out[spelling_key] = (a, b)
    if pairs.get("id"):
        out["id"] = _ref("id", pairs["id"])
    if "delimiter" in pairs:
        d = pairs["delimiter"]
        d = _DELIMITERS.get(d.lower(), d) if d else ""
        if len(d) != 1 or d in '"\r\n' or d.isalnum():
            raise ValueError(
                f"delimiter {pairs['delimiter']!r}: one character (not a letter, digit or quote) or "
                f"{', '.join(_DELIMITERS)}"
            )
        out["delimiter"] = d
    refs = [out[k] for k in ("time", "price", "amount", "side", "buyer_maker", "id") if out.get(k) is not None]
    named = any(isinstance(r, str) for r in refs)
    if "header" in pairs:
        header = _YES.get(pairs["header"].strip().lower())
        if header is None:
            raise ValueError(f"header={pairs['header']}: yes or no")
        if named and not header:
            raise ValueError("header=no, but a column is given by name: give it by its number (from 1)")
        out["header"] = header
    else:
        out["header"] = named
    if len(set(refs)) != len(refs):
        raise ValueError("a column is given for two keys")
    return ColumnMap(**out)


def _ref(key: str, text: str) -> Ref:
    text = text.strip()
    if not text:
        raise ValueError(f"{key}: no column given")
    if text.isdigit():
        n = int(text)
        if n < 1:
            raise ValueError(f"{key}={text}: columns are numbered from 1")
        return n
    return text.lower()


def read_rows(path: Path, fh: IO[str], cols: ColumnMap) -> Iterator[tuple[str, tuple[int, str, str, str, str]]]:
    """Each data row as ("line N", (ts_ns, trade id, side, price text, amount text)); the row's checks beyond its
    time and side (numbers, ranges, order) are the caller's."""
    reader = csv.reader(fh, delimiter=cols.delimiter)
    index: dict[str, int] = {}
    at: list[int] | None = None
    width = 0
    same_ts, rank = -1, 0
    for i, row in enumerate(reader):
        line = f"line {reader.line_num}"
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if at is None:
            if cols.header:
                index = {c.strip().lower().lstrip("\ufeff"): n for n, c in enumerate(row)}
                at = _positions(path, cols, index, len(row))
                width = max(at) + 1
                continue
            at = _positions(path, cols, {}, len(row))
            width = max(at) + 1
        if i == 0 and row[0]:
            row[0] = row[0].lstrip("\ufeff")
        if len(row) < width:
            raise RecordedFileError(f"{path}: {line}: {len(row)} columns; the mapping reads column {width}")
        ts_ns = _ns(path, line, row[at[0]].strip(), cols.unit)
        side = _side(path, line, row[at[3]], cols)
        if at[4] >= 0:
            trade_id = row[at[4]].strip()
        else:
            rank = rank + 1 if ts_ns == same_ts else 1
            same_ts = ts_ns
            trade_id = str(rank)
        yield line, (ts_ns, trade_id, side, row[at[1]], row[at[2]])
    if at is None and cols.header:
        raise RecordedFileError(f"{path}: no header row (the mapping names columns: {cols.text()})")


def _positions(path: Path, cols: ColumnMap, index: dict[str, int], width: int) -> list[int]:
    """Positions of time, price, amount, side (or buyer_maker), id (-1: none)."""
    out = []
    for key in ("time", "price", "amount", "side" if cols.side is not None else "buyer_maker", "id"):
        ref = getattr(cols, key)
        if ref is None:
            out.append(-1)
        elif isinstance(ref, int):
            if ref > width:
                raise RecordedFileError(f"{path}: line 1: {width} columns; {key} is mapped to column {ref}")
            out.append(ref - 1)
        elif ref in index:
            out.append(index[ref])
        else:
            shown = ", ".join(list(index)[:20])
            hint = f"; is the delimiter {cols.delimiter!r}?" if len(index) == 1 else ""
            raise RecordedFileError(f"{path}: line 1: no column {ref!r} ({key}) in the header ({shown}){hint}")
    return out


def _ns(path: Path, line: str, text: str, unit: str) -> int:
    if unit == "iso":
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise RecordedFileError(f"{path}: {line}: time {text[:40]!r} is not an ISO 8601 time") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        delta = dt - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    try:
        d = Decimal(text)
    except InvalidOperation:
        d = Decimal("NaN")
    if not d.is_finite():
        raise RecordedFileError(f"{path}: {line}: time {text[:40]!r} is not a number of {unit}")
    return int((d * UNITS[unit]).to_integral_value(ROUND_FLOOR))


def _side(path: Path, line: str, text: str, cols: ColumnMap) -> str:
    v = text.strip().lower()
    if cols.side is not None:
        if v == cols.side_spelling[0]:
            return "buy"
        if v == cols.side_spelling[1]:
            return "sell"
        buy, sell = cols.side_spelling
        raise RecordedFileError(f"{path}: {line}: side {text[:20]!r} is not {buy!r} or {sell!r}")
    yes, no = cols.maker_spelling
    if v == yes or (cols.maker_spelling == ("true", "false") and v == "1"):
        return "sell"  # the buyer made the book: the taker sold
    if v == no or (cols.maker_spelling == ("true", "false") and v == "0"):
        return "buy"
    raise RecordedFileError(f"{path}: {line}: buyer_maker {text[:20]!r} is not {yes!r} or {no!r}")
