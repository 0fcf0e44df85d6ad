"""The Prometheus projection: trading gauges and counters folded from the event stream.

An in-memory read model: it folds the log from its start every time the process starts (so a restart
rebuilds the same numbers), as a consumer group, so each worker exports the instruments of the
partitions it owns and Prometheus sums them. Duplicated deliveries are harmless: order states go
through the order machine, and a fill is counted once per venue trade id.
"""

from __future__ import annotations

import math
import statistics
import uuid
from collections import Counter as Tally
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import orjson
from prometheus_client import Counter, Gauge, Histogram

from engine.core import orders as om
from engine.core import roundtrips
from engine.core.account import Account, currencies
from engine.core.dedupe import RecentIds
from engine.core.orders import Order, OrderStatus
from engine.core.portfolio import Position, apply_fill
from engine.core.snapshots import utc_day
from events import (
    EngineStarted,
    OrderFilled,
    OrderRejected,
    SignalGenerated,
    TickReceived,
    Topics,
    TradingHalted,
    TradingResumed,
)
from projections.runner import Record

EVENTS = Counter("engine_events_consumed", "Events folded by the metrics projection", ["type"])
ORDER_EVENTS = Counter("engine_order_events", "Order lifecycle events", ["instrument", "type"])
ORDERS = Gauge("engine_orders", "Orders by current status", ["status"])
FILLS = Counter("engine_fills", "Fills (one per venue trade id)", ["instrument", "strategy"])
SIGNALS = Counter("engine_signals", "Strategy signals", ["instrument", "strategy", "direction"])
# Every amount or price carries ``currency``, the currency it is counted in (the instrument's base for quantities,
# its quote for PnL and prices, the fee's own for fees), so that a sum by currency never adds ETH to USDT. Positions,
# PnL, fees and round trips are per strategy too (``strategy``: the name of the strategy whose order it was); an
# instrument's position of the account is the sum over its strategies.
_PER_STRATEGY = ["instrument", "strategy", "currency"]
POSITION = Gauge("engine_position", "Position quantity (base currency)", _PER_STRATEGY)
REALIZED = Gauge("engine_realized_pnl", "Realized PnL, gross of fees (quote currency)", _PER_STRATEGY)
FEES = Gauge("engine_fees_paid", "Fees paid (in the fee's currency)", _PER_STRATEGY)
LAST_PRICE = Gauge("engine_last_price", "Price of the last trade tick (quote currency)", ["instrument", "currency"])
VOLUME = Counter("engine_traded_volume", "Volume of market trades seen (base currency)", ["instrument", "currency"])
REJECTED = Counter(
    "engine_orders_rejected", "Orders rejected, by the rule that refused them", ["instrument", "strategy", "rule"]
)
OPEN_POSITIONS = Gauge("engine_open_positions", "Positions (strategy and instrument) that are not zero")
UNREALIZED = Gauge("engine_unrealized_pnl", "(last price - average price) x position (quote currency)", _PER_STRATEGY)
# Round trips' net PnL in two histograms of non-negative observations, not one with negative buckets: a classic
# histogram's _sum must only grow, or rate() reads each fall as a counter reset (docs/metrics.md).
PNL_BUCKETS = (0, 1e-6, 1e-5, 1e-4, 0.001, 0.01, 0.1, 1, 10, 100, 1000, 10000)
TRADE_PROFIT = Histogram(
    "engine_trade_profit",
    "Net PnL of each closed round trip that won (net PnL > 0; quote currency)",
    _PER_STRATEGY,
    buckets=PNL_BUCKETS,
)
TRADE_LOSS = Histogram(
    "engine_trade_loss",
    "Loss (minus the net PnL, >= 0) of each closed round trip that did not win (quote currency)",
    _PER_STRATEGY,
    buckets=PNL_BUCKETS,
)
TRADE_DURATION = Histogram(
    "engine_trade_duration_seconds",
    "Duration of each closed round-trip trade",
    ["instrument", "strategy"],
    buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400),
)
WIN_RATE = Gauge("engine_win_rate_ratio", "Closed round trips with a positive net PnL / closed round trips")
SHARPE = Gauge(
    "engine_sharpe_ratio",
    "Mean / stddev of closed round trips' net PnL x sqrt(trades), per quote currency",
    ["currency"],
)
BALANCE = Gauge("engine_account_balance", "Paper account balance", ["currency"])
EQUITY = Gauge("engine_equity", "Balance of a quote currency + base balances valued at last prices", ["currency"])
DAILY_PNL = Gauge("engine_daily_pnl_ratio", "(equity - start-of-day equity) / start-of-day equity", ["currency"])
DRAWDOWN = Gauge(
    "engine_max_drawdown_ratio", "Largest fall of equity from its running peak, share of the peak", ["currency"]
)
BREAKER = Gauge("engine_circuit_breaker_state", "0 = trading, 1 = halted (only cancels pass)")
CANDLES = Counter("engine_candles_processed", "1-minute candles completed from the ticks", ["instrument"])


class MetricsProjection:
    name = "metrics"

    def __init__(self, topics: Topics = Topics()) -> None:
        self.topics: tuple[str, ...] = (topics.ticks, topics.trading, topics.control)
        self._ticks = topics.ticks
        self.account = Account()
        self._minute: dict[str, int] = {}
        self._trip_pnls: dict[str, list[float]] = {}  # by quote currency
        self._fees: dict[tuple[str, str, str], Decimal] = {}  # (instrument, strategy, fee currency) -> fees paid
        BREAKER.set(0)
        self.orders: dict[str, Order] = {}
        self.positions: dict[tuple[str, str], Position] = {}  # (strategy, instrument) -> its position
        self._strategies: dict[str, set[str]] = {}  # instrument -> the strategies with a position in it
        self._fills_seen: set[tuple[str, str]] = set()
        self._by_status: Tally[OrderStatus] = Tally()
        self._trips: dict[tuple[str, str], roundtrips.OpenTrip | None] = {}
        self._last_price: dict[str, Decimal] = {}
        self.closed_trips = 0
        self.won_trips = 0
        self.refused: list[tuple[Record, str]] = []  # records that raised, with why: the runner dead-letters them
        self._recent: RecentIds[uuid.UUID] = RecentIds()

    async def apply(self, conn: Any, records: Sequence[Record]) -> None:
        """Fold a batch. A record that raises is left out and kept in :attr:`refused` with the error (the runner
        dead-letters it): one bad record never stops the metrics."""
        types: Tally[str] = Tally()
        for r in records:
            try:
                self._one(r, types)
            except Exception as exc:
                self.refused.append((r, f"metrics projection could not apply it: {exc!r}"))
        for t, n in types.items():
            EVENTS.labels(t).inc(n)
        if records:
            self._account(records[-1].envelope.ts_event)
        for status in OrderStatus:
            ORDERS.labels(status.value).set(self._by_status[status])

    def _one(self, r: Record, types: Tally[str]) -> None:
        ev = r.envelope.event
        if r.topic == self._ticks and not isinstance(ev, TickReceived):
            return  # a live venue's report: counted when the engine relays it on the trading topic
        if isinstance(ev, TickReceived) and not self._recent.add(r.envelope.event_id):
            return  # the same trade again (engine.core.dedupe)
        types[ev.TYPE] += 1
        if isinstance(ev, TickReceived):
            self._last_price[ev.instrument] = ev.price
            self.account.on_price(ev.instrument, ev.price)
            base, quote = currencies(ev.instrument)
            LAST_PRICE.labels(ev.instrument, quote).set(float(ev.price))
            VOLUME.labels(ev.instrument, base).inc(float(ev.quantity))
            minute = r.envelope.ts_event // 60_000_000_000
            if self._minute.get(ev.instrument, minute) != minute:
                CANDLES.labels(ev.instrument).inc()
            self._minute[ev.instrument] = minute
            self._mark(ev.instrument)
        elif isinstance(ev, EngineStarted):
            starting = orjson.loads(ev.settings).get("venue", {}).get("starting_balances", {})
            self.account.fund({cur: Decimal(v) for cur, v in starting.items()})
        elif isinstance(ev, TradingHalted | TradingResumed):
            BREAKER.set(1 if isinstance(ev, TradingHalted) else 0)
        elif isinstance(ev, SignalGenerated):
            SIGNALS.labels(ev.instrument, ev.strategy, ev.direction.value).inc()
        elif isinstance(ev, om.ORDER_EVENTS):
            self._order_event(ev, r.envelope.ts_event)

    def _account(self, ts_event: int) -> None:
        equity = self.account.mark(utc_day(ts_event))
        for cur, bal in self.account.balances.items():
            BALANCE.labels(cur).set(float(bal))
        for cur, value in equity.items():
            EQUITY.labels(cur).set(float(value))
            ratio = self.account.daily_pnl_ratio(cur, value)
            if ratio is not None:
                DAILY_PNL.labels(cur).set(float(ratio))
            DRAWDOWN.labels(cur).set(float(self.account.max_drawdown.get(cur, 0)))

    def _mark(self, instrument: str, strategies: set[str] | None = None) -> None:
        price = self._last_price.get(instrument)
        if price is None:
            return
        quote = currencies(instrument)[1]
        for strategy in sorted(self._strategies.get(instrument, ()) if strategies is None else strategies):
            pos = self.positions[(strategy, instrument)]
            UNREALIZED.labels(instrument, strategy, quote).set(float(pos.unrealized_pnl(price)))

    def _order_event(self, ev: Any, ts_event: int) -> None:
        if isinstance(ev, OrderFilled):
            key = (ev.venue, ev.trade_id)
            if key in self._fills_seen:
                return
            self._fills_seen.add(key)
        before = self.orders.get(ev.client_order_id)
        try:
            after = om.apply(before, ev)
        except om.InvalidTransition:
            return
        if after is before:
            return
        ORDER_EVENTS.labels(ev.instrument, ev.TYPE).inc()
        if isinstance(ev, OrderRejected):
            REJECTED.labels(ev.instrument, after.strategy, ev.rule).inc()
        if before is not None:
            self._by_status[before.status] -= 1
        self._by_status[after.status] += 1
        self.orders[ev.client_order_id] = after
        if isinstance(ev, OrderFilled):
            self._fill(ev, after.strategy, ts_event)

    def _fill(self, ev: OrderFilled, strategy: str, ts_event: int) -> None:
        self.account.on_fill(ev)
        key = (strategy, ev.instrument)
        pos = apply_fill(self.positions.get(key) or Position(ev.instrument), ev)
        self.positions[key] = pos
        self._strategies.setdefault(ev.instrument, set()).add(strategy)
        base, quote = currencies(ev.instrument)
        FILLS.labels(ev.instrument, strategy).inc()
        POSITION.labels(ev.instrument, strategy, base).set(float(pos.quantity))
        REALIZED.labels(ev.instrument, strategy, quote).set(float(pos.realized_pnl))
        fee_key = (ev.instrument, strategy, ev.fee_currency)
        fees = self._fees[fee_key] = self._fees.get(fee_key, Decimal(0)) + ev.fee
        FEES.labels(*fee_key).set(float(fees))
        OPEN_POSITIONS.set(sum(1 for p in self.positions.values() if p.quantity != 0))
        self._mark(ev.instrument, {strategy})
        trip, closed = roundtrips.apply_fill(self._trips.get(key), ev, ts_event)
        self._trips[key] = trip
        if closed is not None:
            self.closed_trips += 1
            self.won_trips += closed.won
            pnl = float(closed.net_pnl)
            if closed.won:
                TRADE_PROFIT.labels(ev.instrument, strategy, quote).observe(pnl)
            else:
                TRADE_LOSS.labels(ev.instrument, strategy, quote).observe(0.0 - pnl)
            TRADE_DURATION.labels(ev.instrument, strategy).observe(closed.duration_ns / 1e9)
            WIN_RATE.set(self.won_trips / self.closed_trips)
            pnls = self._trip_pnls.setdefault(quote, [])
            pnls.append(pnl)
            if len(pnls) > 1:
                sd = statistics.stdev(pnls)
                if sd > 0:
                    SHARPE.labels(quote).set(statistics.fmean(pnls) / sd * math.sqrt(len(pnls)))
