"""The live venue over ccxt (``CcxtVenue``): any ccxt exchange by id, spot orders by client order id.

ccxt does the venue's work: signing, rate limiting (``enableRateLimit``), precision rounding
(``amount_to_precision`` / ``price_to_precision``) and mapping the venue's errors to its exception classes,
which are mapped onto the port's error tree once, at the edge (``_errors.py``):

=====================================================  ==========================================================
ccxt                                                   port
=====================================================  ==========================================================
AuthenticationError (PermissionDenied, ...)            VenueAuthError
OrderNotFound, or a venue's words for it (NOT_FOUND)   VenueOrderNotFound
NetworkError (RequestTimeout, ExchangeNotAvailable)    VenueUnavailable (``maybe_sent`` True: outcome unknown)
DDoSProtection, RateLimitExceeded, InvalidNonce        VenueUnavailable (``maybe_sent`` False: refused unprocessed)
DuplicateOrderId, or a venue's words (DUPLICATE)      VenueDuplicateOrder (the venue has this client order id)
any other ccxt error (InsufficientFunds, InvalidOrder)  VenueRejected(rule = the class in snake_case)
=====================================================  ==========================================================

Our client order id goes with every order, and an order is found by it the way the venue allows: binance (and
any exchange taking ccxt's ``clientOrderId`` param) looks it up and cancels by it; alpaca through
``GET /v2/orders:by_client_order_id``; coinbase, which has no such lookup, by the order id seen for it, else by
searching its order list (newest first, ``ORDER_PAGES`` pages). Coinbase and alpaca cancel by their own id only
and do not answer a cancel with the order, so it is read back after. A coinbase market buy is sent in base units
(``base_size``), like every other order here. Coinbase's create answer carries only the ids: the order is then
reported open, with what was sent. Trades are paged per venue (``TRADE_PAGING``).

Reads (markets, orders, trades, balances) are retried while the venue is unavailable, with exponential backoff and
jitter (:mod:`adapters.venues._retry`); a submit never is (its outcome is unknown after a timeout: the caller looks
it up first). Numbers become ``Decimal`` through ``str``, from the venue's own strings in ``info`` where ccxt keeps
them (binance: ``origQty``, ``executedQty``, ``price``, ``qty``, ``commission``, balances ``free`` + ``locked``;
coinbase: the order configuration's ``base_size``/``limit_price``, ``filled_size``, fills' ``size``, ``price``,
``commission``, accounts' ``available_balance`` + ``hold``; alpaca: ``qty``, ``filled_qty``, ``limit_price``, fills'
``qty``, ``price``, the cash as ``equity`` - ``position_market_value`` and positions' ``qty``); ``raw`` is ccxt's
``info``. Alpaca reports crypto fees apart from fills (``CFEE`` activities, without an order id), so its trades
carry a fee of 0.

Every API call is counted (``EXCHANGE_REQUESTS`` / ``EXCHANGE_ERRORS`` / ``EXCHANGE_SECONDS``; the error's
``kind`` is :func:`~adapters.venues.base.error_kind`'s, as for every venue). Every message raised or logged passes
through :func:`~adapters.venues.base.redact`, raised errors carry no ccxt exception chain, and ccxt's own debug log
(which prints request headers, API key included) is kept off.

The package, by concern:

- ``_venue.py``: :class:`CcxtVenue`, the port's calls as each exchange allows them;
- ``_transport.py``: the configured ccxt exchange object, and every call through it (counted, timed, retried);
- ``_errors.py``: ccxt's exceptions as the port's errors;
- ``_parsing.py``: ccxt's orders, trades and balances as :class:`~engine.core.ports.VenueOrder` /
  :class:`~engine.core.ports.VenueTrade` / ``Decimal`` totals;
- ``_exchanges.py``: what differs per exchange (options, sandboxes, paging, the venues' words for some refusals).
"""

from adapters.venues.ccxt._venue import CcxtVenue, native_stops

__all__ = ["CcxtVenue", "native_stops"]
