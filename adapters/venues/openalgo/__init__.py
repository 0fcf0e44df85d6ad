"""The OpenAlgo venue: orders to an Indian broker through an OpenAlgo server's REST API (``/api/v1/...``).

OpenAlgo (github.com/marketcalls/openalgo) is a broker bridge: every call is ``POST /api/v1/<endpoint>`` with a JSON
body carrying ``apikey``; it answers ``{"status": "success", ...}`` or ``{"status": "error", "message": ...}`` with
an HTTP status (400 invalid request, 403 invalid apikey, 404 order not found, 429 rate limit, 500 internal).

**Instruments** are plain OpenAlgo symbols (``"SBIN"``, ``"RELIANCE"``, ``"NIFTY30JAN25FUT"``); the exchange
(``NSE``, ``BSE``, ``NFO``, ...) and the product (``MIS`` intraday, ``CNC`` delivery, ``NRML`` F&O) come from the
constructor, so one adapter trades one exchange and one product. Money is INR. Quantities are whole numbers on every
exchange but ``CRYPTO`` (OpenAlgo refuses fractions): a fractional quantity is rounded down, and refused if that is 0.

**Client order ids.** OpenAlgo's ``placeorder`` has no client order id field, and a broker's order book does not
echo any tag back. Its ``strategy`` field is required but is only a label for OpenAlgo's own logs and per-strategy
views; we send the configured ``strategy`` (default ``"engine"``) unchanged so those views stay usable. The adapter
therefore keeps the map ``client_order_id -> orderid`` **in memory**. Within one process, and but for the limits listed
at the end, a client order id gets at most one order, and a lost answer is matched only to its own order:

- ``submit`` twice with the same client order id places one order: the second call returns the first order.
- **One unresolved placement per shape.** The shape is (symbol, side, type, quantity, price) as sent. While a
  placement of a shape is **in flight**, a ``submit`` of another client order id with the same shape waits for its
  answer (a per-shape asyncio lock, held only over one placement and at most one order-book read, so the wait is
  bounded by the HTTP timeouts). A ``submit`` whose answer is lost (timeout, dropped connection, 5xx, a success
  without orderid, or the call cancelled in flight) raises VenueUnavailable(maybe_sent=True) and leaves its shape
  **in doubt**. So at any moment the order book holds at most one unmapped order of a shape that this process placed,
  and ``fetch_order`` of the lost client order id adopts the one unmapped order of that shape (on this exchange) it
  finds there.
- A doubt ends when (1) ``fetch_order`` of that client order id adopts its order; (2) that client order id is
  submitted again (the execution service does so after ``confirm_timeout`` of not finding it): the order book is read
  first and a matching order adopted instead of placing a second, otherwise it is placed again and its answer ends
  the doubt (a resend that is refused, e.g. HTTP 429, leaves the first placement in doubt); (3) :meth:`remember`
  maps it; (4) a ``submit`` of another client order id of the shape reads the order book: one matching unmapped order
  is adopted **by the lost client order id** and the newcomer is placed; none or several, less than ``settle_s``
  (default 5 s) after the loss, and the newcomer is **not sent**: VenueUnavailable(maybe_sent=False), which the
  execution service retries after a backoff; ``settle_s`` or more after it, the lost placement is given up (none:
  absent; several: undecidable) and the newcomer placed. A given-up client order id is not adopted later:
  ``fetch_order`` raises VenueOrderNotFound.
- Why deferred and not waited for: a doubt ends only by its caller's next step (or by time), and the execution service
  handles one command at a time, so a ``submit`` waiting for it would wait for its own caller. With the default
  settings the engine is never deferred at all: it gives up on a lost order only after looking for it for about
  ``confirm_timeout`` (10 s), beyond ``settle_s``; the next order of the shape then reads the book once before it is
  sent. Deferring is for concurrent callers of the adapter (and an ``execution.confirm_timeout`` below ``settle_s``).
- **After a restart** the map and the doubts are empty: ``fetch_order`` of an order placed before raises
  VenueOrderNotFound unless the caller hands the pair back with :meth:`OpenAlgoVenue.remember` (the execution service
  does, from the ``OrderAccepted`` events of its ``lookback``; remembered orders are never adopted for a lost one).
  A lost placement of the previous process is not guessed: the execution service, chasing the commands at or after
  its committed offset, finds no order for it and sends it again. ``cancel`` works across restarts when given the
  venue order id.

What remains, the honest limit of an API without client order ids: (a) a crash of the process between the broker
accepting an order and the log recording its ``OrderAccepted``: after the restart a second identical order is
placed, and the first stays unmapped (a later lost answer of that shape then finds two candidates and is not adopted,
or, if its own never arrived, adopts the orphan); (b) orders of the same shape placed on the account by anyone else
(another engine or process, the broker's app, OpenAlgo's UI, another strategy label: the order book does not show the
label): they are indistinguishable from ours, so several candidates are not adopted and the order may be resent, and
one stranger's order can be adopted for a lost one of ours that never arrived; (c) a lost placement that reaches the
order book only after its caller resent it (two orders for one client order id) or gave up on it (an order the log
says was rejected: adopted by its own client order id if it is there, alone, when the next order of its shape is sent;
after that, a stranger as in (b)); (d) the per-shape gate is per process: two processes (or two engines) on one account
are not serialized with each other.

**Trades** come from the trade book, which has no trade id and no fee: the id is derived from
(orderid, time, quantity, price) plus a counter for identical rows, so it is stable across polls; the fee is 0.
Times are IST (``Asia/Kolkata``, UTC+05:30) to the second; ``since_ns`` is applied with one second of slack.

**Filled quantity**: the order book has none in the broker-neutral format; an order ``complete`` is filled in full,
otherwise the adapter uses ``filled_quantity`` when the server sends it (analyzer mode does) or sums the trade book.

**Balances**: ``{"INR": availablecash + utiliseddebits}`` (free + used); :meth:`OpenAlgoVenue.funds` has all fields.

Reads (funds, orderstatus, orderbook, tradebook) are retried with bounded exponential backoff on VenueUnavailable
(:mod:`adapters.venues._retry`); cancel / modify / cancel-all only when the request was certainly refused before
processing (429); ``placeorder`` never. Every HTTP attempt is counted in the ``engine_exchange_*`` metrics (the error's
``kind`` is :func:`~adapters.venues.base.error_kind`'s, as for every venue). The API key goes only into request
bodies: every message raised or logged passes through :func:`~adapters.venues.base.redact`, and venue answers are
scrubbed too.

The package, by concern:

- ``_venue.py``: :class:`OpenAlgoVenue`, the port's calls and OpenAlgo's extras;
- ``_orders.py``: the order-id bookkeeping: the map, placements in flight and in doubt, doubts resolved from the book;
- ``_transport.py``: the HTTP calls (counted, timed, retried);
- ``_errors.py``: OpenAlgo's failures (HTTP status, message) as the port's errors;
- ``_parsing.py``: its answers (order rows, the trade book, funds, IST times) as the port's values.
"""

from adapters.venues.openalgo._parsing import CURRENCY, IST
from adapters.venues.openalgo._venue import CancelAllResult, OpenAlgoVenue

__all__ = ["CURRENCY", "IST", "CancelAllResult", "OpenAlgoVenue"]
