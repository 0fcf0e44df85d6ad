"""ccxt's unified structures (orders, trades, balances) as the port's values, numbers from the venue's own strings."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from adapters.venues._order_ids import OrderIds
from adapters.venues.base import VenueOrder, VenueOrderStatus, VenueTrade
from events import Liquidity, OrderType, Side

_STATUS = {
    "open": VenueOrderStatus.OPEN,
    "closed": VenueOrderStatus.FILLED,
    "canceled": VenueOrderStatus.CANCELLED,
    "cancelled": VenueOrderStatus.CANCELLED,
    "expired": VenueOrderStatus.EXPIRED,
    "rejected": VenueOrderStatus.REJECTED,
    "failed": VenueOrderStatus.REJECTED,
}


def dec(*candidates: Any) -> Decimal | None:
    """The first candidate that is a number, as a Decimal (through ``str``, never through float arithmetic)."""
    for c in candidates:
        if c is None or c == "" or isinstance(c, bool):
            continue
        try:
            return Decimal(str(c))
        except InvalidOperation:
            continue
    return None


def info(o: Any) -> dict[str, Any]:
    """ccxt's ``info`` of ``o`` (the venue's own answer) when it is a JSON object, else ``{}``."""
    found = o.get("info") if isinstance(o, dict) else None
    return found if isinstance(found, dict) else {}


def cursor(page: list[dict[str, Any]]) -> str | None:
    """Coinbase's cursor for the next page, which ccxt puts into the info of the first item it got."""
    return next((str(info(x)["cursor"]) for x in page if info(x).get("cursor")), None)


def _ns(ms: Any) -> int:
    return int(ms) * 1_000_000 if isinstance(ms, int | float) and ms > 0 else time.time_ns()


_STOP_TYPES = {"stop_loss": OrderType.STOP, "stop_loss_limit": OrderType.STOP_LIMIT}  # binance spot's


def order_type(o: dict[str, Any]) -> OrderType:
    """ccxt's order ``o``'s type: binance's STOP_LOSS / STOP_LOSS_LIMIT (in its ``info``; ccxt calls them market /
    limit with a ``triggerPrice``) are stops."""
    venue_type = str(info(o).get("type") or "").lower()
    if venue_type in _STOP_TYPES:
        return _STOP_TYPES[venue_type]
    return OrderType.LIMIT if (o.get("type") or "").lower() == "limit" else OrderType.MARKET


def order(o: dict[str, Any], instrument: str, asked: str | None, *, prefer_asked: bool = False) -> VenueOrder:
    """ccxt's order ``o`` on ``instrument``; its client order id is ``asked`` (when ``prefer_asked``, or when the
    venue does not say one)."""
    i = info(o)
    config = next(iter((i.get("order_configuration") or {}).values()), None)  # coinbase's sizes and price
    cfg: dict[str, Any] = config if isinstance(config, dict) else {}
    coid = (asked if prefer_asked else None) or i.get("origClientOrderId") or o.get("clientOrderId") or asked or ""
    kind = order_type(o)
    limit = (
        dec(i.get("price"), i.get("limit_price"), cfg.get("limit_price"), o.get("price"))
        if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        else None
    )
    status = _STATUS.get(str(i.get("status") or "").lower()) or _STATUS.get(o.get("status") or "open")
    return VenueOrder(
        instrument=o.get("symbol") or instrument,
        client_order_id=coid,
        venue_order_id=str(o.get("id") or i.get("orderId") or ""),
        side=Side(o.get("side") or "buy"),
        order_type=kind,
        quantity=dec(i.get("origQty"), i.get("qty"), cfg.get("base_size"), o.get("amount")) or Decimal(0),
        limit_price=limit if limit else None,
        status=status or VenueOrderStatus.OPEN,
        filled=dec(i.get("executedQty"), i.get("filled_qty"), i.get("filled_size"), o.get("filled")) or Decimal(0),
        ts=_ns(o.get("lastUpdateTimestamp") or o.get("timestamp")),
        raw=o.get("info"),
    )


def trade(t: dict[str, Any], instrument: str, market: dict[str, Any], ids: OrderIds) -> VenueTrade:
    """ccxt's trade ``t`` of ours on ``instrument`` (``market``: ccxt's market of it, for the fee's currency)."""
    i = info(t)
    fee: dict[str, Any] = t.get("fee") or {}
    venue_order_id = str(t.get("order") or "")
    size = None if i.get("size_in_quote") else i.get("size")  # coinbase: base units unless in quote
    return VenueTrade(
        instrument=t.get("symbol") or instrument,
        trade_id=str(t.get("id")),
        venue_order_id=venue_order_id,
        client_order_id=ids.client_id(venue_order_id) or i.get("clientOrderId") or None,
        side=Side(t.get("side") or "buy"),
        quantity=dec(i.get("qty"), size, t.get("amount")) or Decimal(0),
        price=dec(i.get("price"), t.get("price")) or Decimal(0),
        fee=dec(i.get("commission"), fee.get("cost")) or Decimal(0),
        fee_currency=fee.get("currency") or i.get("commissionAsset") or market.get("quote") or "",
        liquidity=Liquidity.MAKER if t.get("takerOrMaker") == "maker" else Liquidity.TAKER,
        ts=_ns(t.get("timestamp")),
        raw=t.get("info"),
    )


def balances(exchange_id: str, b: dict[str, Any], currency_code: Callable[[Any], str]) -> dict[str, Decimal]:
    """Total (free + used) per currency of ccxt's balance ``b``, from the venue's own rows where it has them."""
    i = info(b)
    rows: list[tuple[Any, ...]]  # (currency id, amounts that add up to its total)
    if exchange_id == "binance" and isinstance(i.get("balances"), list):
        rows = [(r.get("asset"), r.get("free"), r.get("locked")) for r in i["balances"]]
    elif exchange_id == "coinbase" and isinstance(i.get("accounts"), list):
        rows = [
            (r.get("currency"), (r.get("available_balance") or {}).get("value"), (r.get("hold") or {}).get("value"))
            for r in i["accounts"]
        ]
    elif exchange_id == "alpaca" and isinstance(i.get("account"), dict):
        a = i["account"]  # cash with what open orders hold is equity minus positions; positions as BTCUSD
        equity, positions = dec(a.get("equity")), dec(a.get("position_market_value")) or Decimal(0)
        rows = [(a.get("currency"), equity - positions if equity is not None else a.get("cash"))]
        rows += [
            (str(p.get("symbol") or "").split("/")[0].removesuffix("USD"), p.get("qty"))
            for p in i.get("positions") or []
        ]
    else:
        return {code: dec(v) or Decimal(0) for code, v in (b.get("total") or {}).items()}
    out: dict[str, Decimal] = {}
    for currency, *amounts in rows:
        code = currency_code(currency)
        out[code] = out.get(code, Decimal(0)) + sum((dec(x) or Decimal(0) for x in amounts), Decimal(0))
    return out
