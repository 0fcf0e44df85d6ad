"""OpenAlgo's answers as the port's values: numbers, IST times, order rows, trade-book rows, funds."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from adapters.venues._order_ids import OrderIds
from adapters.venues.base import VenueOrder, VenueOrderStatus, VenueTrade
from events import Liquidity, OrderSubmitted, OrderType, Side

IST = timezone(timedelta(hours=5, minutes=30), "IST")
CURRENCY = "INR"
_TIME_FORMATS = ("%d-%b-%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%d-%m-%Y %H:%M:%S", "%Y-%m-%dT%H:%M:%S")
_STATUS = {
    "complete": VenueOrderStatus.FILLED,
    "completed": VenueOrderStatus.FILLED,
    "filled": VenueOrderStatus.FILLED,
    "executed": VenueOrderStatus.FILLED,
    "traded": VenueOrderStatus.FILLED,
    "cancelled": VenueOrderStatus.CANCELLED,
    "canceled": VenueOrderStatus.CANCELLED,
    "rejected": VenueOrderStatus.REJECTED,
    "expired": VenueOrderStatus.EXPIRED,
    "lapsed": VenueOrderStatus.EXPIRED,
}  # anything else ("open", "pending", "trigger pending", "validation pending", ...) is working: OPEN


def dec(value: Any) -> Decimal:
    """A number from the venue (str, int or Decimal: JSON is parsed with ``parse_float=Decimal``), 0 if absent."""
    if value is None or value == "" or isinstance(value, bool):
        return Decimal(0)
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        return Decimal(0)


def wire(value: Decimal) -> str:
    """A Decimal as OpenAlgo expects it on the wire: a plain string, no exponent."""
    return format(value.normalize(), "f")


def parse_ts(text: Any, now_ns: int) -> int | None:
    """An OpenAlgo timestamp (IST, to the second) as ns since the epoch; ``None`` when it cannot be read."""
    if not isinstance(text, str) or not text.strip():
        return None
    text = text.strip()
    for fmt in _TIME_FORMATS:
        try:
            return int(datetime.strptime(text, fmt).replace(tzinfo=IST).timestamp()) * 1_000_000_000
        except ValueError:
            continue
    try:  # time of day only (the trade book of many brokers): today in IST, or yesterday if that is in the future
        t = datetime.strptime(text, "%H:%M:%S").replace(tzinfo=IST).timetz()
    except ValueError:
        return None
    now = datetime.fromtimestamp(now_ns / 1e9, tz=IST)
    at = datetime.combine(now.date(), t, tzinfo=IST)
    if at > now + timedelta(hours=1):
        at -= timedelta(days=1)
    return int(at.timestamp()) * 1_000_000_000


def status(text: Any) -> VenueOrderStatus:
    return _STATUS.get(str(text or "").strip().lower(), VenueOrderStatus.OPEN)


def rows(answer: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    """The rows of a book (``orderbook``: ``orders``, ``tradebook``: ``trades``), whether ``data`` holds them
    under ``key`` or is the list itself."""
    data = answer.get("data") or []
    found = data.get(key) if isinstance(data, Mapping) else data
    return [r for r in found or [] if isinstance(r, Mapping)]


def side(row: Mapping[str, Any]) -> Side:
    return Side.SELL if str(row.get("action", "")).upper() == "SELL" else Side.BUY


def needs_fills(row: Mapping[str, Any]) -> bool:
    """Whether an order row's filled quantity must come from the trade book (the row does not say it)."""
    return "filled_quantity" not in row and status(row.get("order_status")) in (
        VenueOrderStatus.OPEN,
        VenueOrderStatus.CANCELLED,
        VenueOrderStatus.EXPIRED,
    )


def order(row: Mapping[str, Any], fills: Mapping[str, Decimal], ids: OrderIds, raw: Any = None) -> VenueOrder:
    """An order row (``orderstatus``'s data, or a row of ``orderbook``); ``fills``: the trade book's quantity per
    orderid, for a row that does not say its filled quantity."""
    orderid = str(row.get("orderid") or "")
    state = status(row.get("order_status"))
    quantity = dec(row.get("quantity"))
    if state is VenueOrderStatus.FILLED:
        filled = quantity
    elif "filled_quantity" in row:
        filled = dec(row.get("filled_quantity"))
    elif state is VenueOrderStatus.REJECTED:
        filled = Decimal(0)
    else:
        filled = fills.get(orderid, Decimal(0))
    pricetype = str(row.get("pricetype") or row.get("price_type") or "").upper()
    order_type = OrderType.LIMIT if pricetype in ("LIMIT", "SL") else OrderType.MARKET
    now = time.time_ns()
    return VenueOrder(
        instrument=str(row.get("symbol") or ""),
        client_order_id=ids.client_id(orderid) or "",
        venue_order_id=orderid,
        side=side(row),
        order_type=order_type,
        quantity=quantity,
        limit_price=dec(row.get("price")) if order_type is OrderType.LIMIT else None,
        status=state,
        filled=filled,
        ts=parse_ts(row.get("timestamp"), now) or now,
        raw=raw if raw is not None else dict(row),
    )


def trades(
    book: list[Mapping[str, Any]], exchange: str, ids: OrderIds, submitted: Mapping[str, OrderSubmitted]
) -> list[VenueTrade]:
    """The trade book's rows on ``exchange``: ids derived from what a row shows (it has none), a fee of 0."""
    now = time.time_ns()
    seen: dict[str, int] = {}
    out: list[VenueTrade] = []
    for row in book:
        if str(row.get("exchange") or exchange).upper() != exchange:
            continue
        orderid = str(row.get("orderid") or "")
        qty, price = dec(row.get("quantity")), dec(row.get("average_price") or row.get("price"))
        if qty <= 0:
            continue
        base = (
            str(row.get("tradeid") or row.get("trade_id") or "")
            or f"{orderid}:{row.get('timestamp', '')}:{wire(qty)}@{wire(price)}"
        )
        n = seen.get(base, 0)
        seen[base] = n + 1
        coid = ids.client_id(orderid)
        placed = submitted.get(coid) if coid is not None else None
        liquidity = (
            Liquidity.MAKER if placed is not None and placed.order_type is OrderType.LIMIT else Liquidity.TAKER
        )  # a guess: OpenAlgo does not say; our limit orders count as maker
        out.append(
            VenueTrade(
                instrument=str(row.get("symbol") or ""),
                trade_id=base if n == 0 else f"{base}#{n}",
                venue_order_id=orderid,
                client_order_id=coid,
                side=side(row),
                quantity=qty,
                price=price,
                fee=Decimal(0),
                fee_currency=CURRENCY,
                liquidity=liquidity,
                ts=parse_ts(row.get("timestamp"), now) or now,
                raw=dict(row),
            )
        )
    return out


def funds(answer: Mapping[str, Any]) -> dict[str, Decimal]:
    """``funds``' numeric fields."""
    data = answer.get("data") or {}
    out: dict[str, Decimal] = {}
    for k, v in data.items() if isinstance(data, Mapping) else ():
        if isinstance(v, (str, int, Decimal)) and not isinstance(v, bool):
            try:
                out[str(k)] = Decimal(str(v).strip())
            except InvalidOperation:
                continue
    return out
