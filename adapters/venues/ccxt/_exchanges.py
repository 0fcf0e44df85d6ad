"""What differs per ccxt exchange: options, sandboxes, paging, and the venue's own words for some refusals."""

from __future__ import annotations

from typing import Any

TRADE_PAGES = 50  # at most this many pages of trades per call
ORDER_PAGES, ORDER_PAGE_SIZE = 10, 100  # a coinbase order searched by client order id: at most 1000 orders back
# REST origins of sandboxes ccxt does not know (coinbase's Advanced Trade API has a static one)
SANDBOX_ORIGINS = {"coinbase": "https://api-sandbox.coinbase.com"}
# ccxt options per exchange: binance loads spot markets only (exchangeInfo, nothing private, no margin pairs);
# coinbase's balances are the Advanced Trade accounts (available + hold), not the Coinbase app's wallets
EXCHANGE_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {
        "defaultType": "spot",
        "fetchMarkets": {"types": ["spot"]},
        "fetchCurrencies": False,
        "fetchMargins": False,
        "fetchOpenOrders": {"warnWithoutSymbol": False},
    },
    "coinbase": {"fetchBalance": "v3PrivateGetBrokerageAccounts"},
}
# our trades, page by page: (page size, how the next page is asked for)
#   since:  from the newest trade's time (binance's startTime is inclusive)
#   cursor: the venue's cursor, which ccxt keeps in one trade's info (coinbase)
#   token:  after the last activity's id, oldest first, every symbol at once (alpaca's activities have no symbol
#           filter, and ccxt's filtering of a page would hide where it ended)
TRADE_PAGING: dict[str, tuple[int, str]] = {
    "binance": (1000, "since"),
    "coinbase": (250, "cursor"),
    "alpaca": (100, "token"),
}
OPEN_ORDERS_LIMIT = {"alpaca": 500}  # alpaca lists 50 by default
# a venue's own words for "no such order" where ccxt raises a generic error (coinbase's 404 text is not matched by
# ccxt 4.5's python port, alpaca's 40410000 becomes InvalidOrder; a cancel of an order no longer open, as binance's)
# a venue's words for "you already have an order with this client order id" (ccxt maps them to InvalidOrder or
# BadRequest, with other refusals of the same code); ccxt's own DuplicateOrderId counts for every exchange
DUPLICATE = {"binance": ("Duplicate order sent",), "alpaca": ("client_order_id must be unique",)}
NOT_FOUND = {
    "coinbase": ("order with this orderID was not found", "cancelOrders() has failed"),
    "alpaca": ("40410000", "order is already in"),
}
BY_VENUE_ID = {"coinbase", "alpaca"}  # cancel by the venue's own order id only
# exchanges whose spot stop orders this adapter sends (ccxt's unified ``triggerPrice``: binance STOP_LOSS and
# STOP_LOSS_LIMIT, tested against tests/fakes/binance.py); on the others the engine holds the stops
NATIVE_STOPS = {"binance"}
