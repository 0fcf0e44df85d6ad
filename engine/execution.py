"""The execution service: sends the engine's orders to a live venue and writes what the venue says.

It is a consumer group (``execution.<venue>``) on ``trading.events``. For each ``OrderSubmitted`` it places
the order with its client order id; for each ``OrderCancelRequested`` it cancels. Every answer of the
venue becomes an event (``OrderAccepted``, ``OrderRejected`` by the venue, ``OrderFilled``,
``OrderCancelled``, ``OrderExpired``) carrying the venue's raw response, written to the engine's **input**
topic (``market.ticks``) keyed by instrument, so the engine folds it in log order with the ticks.

Exactly one live order per client order id:

- a command seen twice (the engine re-published it after a crash) is sent once;
- on start, commands that may have been handled before a crash (those before the log end at start)
  are first looked up at the venue by client order id, and only sent if the venue does not know them;
- a submit whose answer is lost (timeout, 429, disconnect) is **not** resent blindly: the service asks
  the venue for the client order id until ``confirm_timeout``; an order the venue cannot find yet is not
  declared failed at once; only then is it sent again with the same client order id, at most
  ``submit_attempts`` times, and finally rejected with rule ``unconfirmed``. A venue that refuses the resend
  as a duplicate client order id has the first one: it is looked for again and adopted, never counted as
  refused (if it still cannot be seen, it is rejected ``unconfirmed`` and reconciliation, which cancels an
  order open at the venue that the log has ended, finds it);
- a command older than ``max_command_age`` when the service sees it is not sent: it expires.

Fills are polled (``trades``) for working orders every ``poll_interval``; a venue trade id is reported
once. Reconciliation (at start, then every ``reconcile_interval``) compares the venue's open orders,
recent trades and balances with the book folded from the log, and records every difference
(:mod:`engine.core.reconcile`). On start the book is rebuilt from the last ``lookback`` of the log.

Report events get ids derived from the venue's facts (client order id, trade id), so writing the same
fact twice (after a crash) is recognised downstream as a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import structlog
from aiokafka import TopicPartition

from adapters.deadletter import DeadLetters, park_unpublished
from adapters.kafka import EventProducer, LogInspector, make_consumer
from adapters.telemetry import KAFKA_CONSUMED
from adapters.venues import Backoff, retry_unavailable
from adapters.venues.base import (
    LiveVenue,
    RemembersOrderIds,
    VenueAuthError,
    VenueDuplicateOrder,
    VenueError,
    VenueOrder,
    VenueOrderNotFound,
    VenueOrderStatus,
    VenueRejected,
    VenueUnavailable,
)
from engine.core.reconcile import BalanceBaseline, Book, Tracked, VenueSnapshot, ended, fills_for, raw_json, reconcile
from engine.core.risk import refusal
from events import (
    DecodeError,
    Envelope,
    Event,
    OrderAccepted,
    OrderCancelled,
    OrderCancelRequested,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    Topics,
    decode,
)
from events.validation import problem as validation_problem

log = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ExecutionSettings:
    poll_interval: float = 0.5
    confirm_timeout: float = 10.0
    submit_attempts: int = 3
    max_command_age: float = 30.0
    reconcile_interval: float = 60.0
    lookback: float = 86_400.0
    retry_base: float = 0.2


class ExecutionService:
    def __init__(
        self,
        venue: LiveVenue,
        producer: EventProducer,
        bootstrap: str,
        topics: Topics,
        settings: ExecutionSettings = ExecutionSettings(),
    ) -> None:
        self.venue = venue
        self._producer = producer
        self._dead = DeadLetters(producer, bootstrap, f"execution.{venue.name}")
        self._bootstrap = bootstrap
        self._topics = topics
        self.settings = settings
        # one more try of a call left unanswered, after between 1 and 2 x retry_base (doubling with each attempt)
        self._backoff = Backoff(retries=1, base_s=2 * settings.retry_base, cap_s=60.0)
        self.book = Book(venue.name)
        self.baseline = BalanceBaseline()
        self._causes: dict[str, Envelope] = {}  # client order id -> the OrderSubmitted envelope
        self._recovery_end: dict[TopicPartition, int] = {}
        self._command_at: dict[str, tuple[TopicPartition, int]] = {}  # client order id -> its command's place
        self._handled: dict[TopicPartition, int] = {}  # next command offset, per partition, handled and committed
        self._consumer = make_consumer(
            bootstrap, group_id=topics.group(f"execution.{venue.name}"), client_id=f"execution-{venue.name}"
        )
        self._lock = asyncio.Lock()  # one writer of reports at a time: an acceptance before its fills
        self.ready = asyncio.Event()
        self._started = self._stopped = False
        self.commands = 0

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        await self.venue.start()
        await self._rebuild()
        await self._consumer.start()
        self._consumer.subscribe([self._topics.trading])

    async def stop(self) -> None:
        if self._stopped or not self._started:
            return
        self._stopped = True
        await asyncio.shield(self._consumer.stop())
        await asyncio.shield(self.venue.close())

    async def __aenter__(self) -> ExecutionService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def run(self, stop: asyncio.Event) -> None:
        """Commands, fill polling and reconciliation until ``stop``."""
        await self._recover_pending()
        await self.reconcile_once()
        self.ready.set()
        tasks = [
            asyncio.create_task(self._commands(stop)),
            asyncio.create_task(self._poll(stop)),
            asyncio.create_task(self._reconcile_every(stop)),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                t.result()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- the book, rebuilt from the log ------------------------------------------------------------------

    async def _rebuild(self) -> None:
        """Fold the last ``lookback`` of commands and reports into the book; note where recovery ends."""
        since_ms = int((time.time() - self.settings.lookback) * 1000)
        async with LogInspector(self._bootstrap) as inspector:
            tps = await inspector.partitions([self._topics.trading, self._topics.ticks], missing_ok=True)
            if not tps:
                return
            starts = await inspector.offsets_at(tps, since_ms)
            ends = await inspector.end_offsets(tps)
        self._recovery_end = {tp: ends[tp] for tp in tps if tp.topic == self._topics.trading}
        todo = {tp: (starts[tp], ends[tp]) for tp in tps if starts[tp] < ends[tp]}
        if not todo:
            return
        reader = make_consumer(self._bootstrap, group_id=None, client_id=f"execution-{self.venue.name}-rebuild")
        await reader.start()
        folded = 0
        try:
            reader.assign(list(todo))
            for tp, (start, _) in todo.items():
                reader.seek(tp, start)
            remaining = set(todo)
            while remaining:
                batch = await reader.getmany(timeout_ms=1000, max_records=10_000)
                for tp, msgs in batch.items():
                    for msg in msgs:
                        if msg.offset >= todo[tp][1]:
                            break
                        if tp.topic == self._topics.ticks and (b"type", b"TickReceived") in (msg.headers or ()):
                            continue  # a tick: only reports matter here
                        with contextlib.suppress(DecodeError):
                            env = decode(msg.value)
                            self._fold(env)
                            folded += 1
                            if isinstance(env.event, OrderSubmitted):
                                self._command_at.setdefault(env.event.client_order_id, (tp, msg.offset))
                for tp in list(remaining):
                    if await reader.position(tp) >= todo[tp][1]:
                        remaining.discard(tp)
        finally:
            await asyncio.shield(reader.stop())
        log.info("execution.rebuilt", venue=self.venue.name, events=folded, working=len(self.book.working()))

    async def _recover_pending(self) -> None:
        """Look up every order of the log with no answer recorded: it may have reached the venue before a crash."""
        committed: dict[TopicPartition, int | None] = {}
        for t in [t for t in self.book.orders.values() if not t.done and t.venue_order_id is None]:
            where = self._command_at.get(t.order.client_order_id)
            if where is None:
                continue
            tp, offset = where
            if tp not in committed:
                committed[tp] = await self._consumer.committed(tp)
            done = committed[tp]
            if done is not None and offset < done:
                continue  # handled before (its answer is in the log, e.g. from another venue): not ours to chase
            found = await self._lookup(t.order)
            if found is not None:
                log.info(
                    "execution.recovered_order",
                    client_order_id=t.order.client_order_id,
                    venue_order_id=found.venue_order_id,
                )
                await self._adopt(t.order, found)

    def _fold(self, env: Envelope) -> None:
        ev = env.event
        if isinstance(ev, OrderSubmitted):
            self._causes.setdefault(ev.client_order_id, env)
        elif env.source != f"venue:{self.venue.name}" and env.source != "engine":
            return
        self.book.apply(ev)
        if isinstance(ev, OrderAccepted) and isinstance(self.venue, RemembersOrderIds):
            self.venue.remember(ev.client_order_id, ev.venue_order_id)

    # -- writing reports ---------------------------------------------------------------------------------

    def _envelope(self, event: Event, fact: str, ts_event: int | None = None) -> Envelope:
        coid = getattr(event, "client_order_id", "")
        cause = self._causes.get(coid)
        now = time.time_ns()
        ts = ts_event if ts_event is not None else (cause.ts_event if cause else now)
        return Envelope.of_fact(
            self.venue.name, fact, event, ts_event=ts, ts_init=now, source=f"venue:{self.venue.name}", cause=cause
        )

    async def _write(self, items: list[tuple[Event, str, int | None]]) -> None:
        """Publish reports (to the input topic) or reconciliation events (control), then fold them."""
        if not items:
            return
        envs = []
        for env in (self._envelope(ev, fact, ts) for ev, fact, ts in items):
            reason = validation_problem(env)
            if reason is not None:  # a venue's answer that cannot be true: recorded with why, never folded
                await park_unpublished(self._producer, env, self._topics.ticks, f"execution.{self.venue.name}", reason)
                continue
            envs.append(env)
        reports = [e for e in envs if isinstance(e.event, _REPORTS)]
        others = [e for e in envs if not isinstance(e.event, _REPORTS)]
        await self._producer.publish(reports, topic=self._topics.ticks)
        await self._producer.publish(others)
        for env in envs:
            self.book.apply(env.event)
            if isinstance(env.event, _REPORTS):
                log.info(
                    "execution.report",
                    type=env.type,
                    client_order_id=getattr(env.event, "client_order_id", ""),
                    venue=self.venue.name,
                )

    # -- commands ----------------------------------------------------------------------------------------

    def caught_up(self, ends: dict[TopicPartition, int]) -> bool:
        """True once every command of the partitions this service owns, up to ``ends``, was handled."""
        assigned = self._consumer.assignment()
        return bool(assigned) and all(self._handled.get(tp, 0) >= ends.get(tp, 0) for tp in assigned)

    async def _commands(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            batches = await self._consumer.getmany(timeout_ms=100, max_records=100)
            for tp, msgs in batches.items():
                for msg in msgs:
                    try:
                        env = decode(msg.value)
                    except DecodeError as exc:
                        await self._dead.park(msg, exc.reason)
                        continue
                    recovering = msg.offset < self._recovery_end.get(tp, 0)
                    if isinstance(env.event, OrderSubmitted):
                        self.commands += 1
                        await self._on_submit(env, recovering=recovering)
                    elif isinstance(env.event, OrderCancelRequested):
                        self.commands += 1
                        await self._on_cancel(env)
                if msgs:
                    KAFKA_CONSUMED.labels(f"execution.{self.venue.name}").inc(len(msgs))
                    await self._consumer.commit({tp: msgs[-1].offset + 1})
            for tp in self._consumer.assignment():  # every record returned so far is handled
                self._handled[tp] = await self._consumer.position(tp)

    async def _on_submit(self, env: Envelope, *, recovering: bool) -> None:
        order = env.event
        assert isinstance(order, OrderSubmitted)
        coid = order.client_order_id
        known = self.book.orders.get(coid)
        if known is not None and (known.venue_order_id is not None or known.done):
            return  # the same command again: it was sent already
        self._causes.setdefault(coid, env)
        self.book.apply(order)
        if recovering or known is not None:
            found = await self._lookup(order)
            if found is not None:
                await self._adopt(order, found)
                return
        age = (time.time_ns() - env.ts_init) / 1e9
        if age > self.settings.max_command_age:
            await self._write(
                [
                    (
                        OrderExpired(
                            instrument=order.instrument,
                            client_order_id=coid,
                            venue=self.venue.name,
                            filled_quantity=Decimal(0),
                            reason=f"not sent: decided {age:.1f} s ago, over execution.max_command_age "
                            f"({self.settings.max_command_age} s)",
                        ),
                        f"{coid}|expired",
                        None,
                    )
                ]
            )
            return
        for attempt in range(1, self.settings.submit_attempts + 1):
            try:
                placed = await self.venue.submit(order)
            except VenueDuplicateOrder as exc:
                # an earlier attempt did reach the venue, which still does not show it: look for it again
                log.warning("execution.submit_duplicate", client_order_id=coid, attempt=attempt, error=str(exc))
                found = await self._confirm(order)
                if found is not None:
                    await self._adopt(order, found)
                    return
                await self._reject(
                    order,
                    "unconfirmed",
                    f"{self.venue.name} has an order under this client order id "
                    "(it refused a duplicate) but does not show it; reconciliation will find it",
                    None,
                )
                return
            except VenueRejected as exc:
                await self._reject(order, exc.rule, exc.reason, exc.raw)
                return
            except VenueAuthError as exc:
                log.error("execution.auth_refused", venue=self.venue.name, error=str(exc))
                await self._reject(order, "auth", str(exc), None)
                return
            except VenueUnavailable as exc:
                log.warning(
                    "execution.submit_unconfirmed",
                    client_order_id=coid,
                    attempt=attempt,
                    error=str(exc),
                    maybe_sent=exc.maybe_sent,
                )
                if not exc.maybe_sent:  # refused before processing (429): certainly not placed
                    await asyncio.sleep(self._backoff.delay(attempt))
                    continue
                found = await self._confirm(order)
                if found is not None:
                    await self._adopt(order, found)
                    return
                continue  # the venue never got it: send it again, with the same client order id
            await self._adopt(order, placed)
            return
        await self._reject(
            order,
            "unconfirmed",
            f"no answer from {self.venue.name} after "
            f"{self.settings.submit_attempts} attempts, and no order under this client order id",
            None,
        )

    async def _reject(self, order: OrderSubmitted, rule: str, reason: str, raw: Any) -> None:
        await self._write(
            [
                (
                    refusal(order, rule, reason, by="venue", raw=raw_json(raw)),
                    f"{order.client_order_id}|rejected",
                    None,
                )
            ]
        )

    async def _lookup(self, order: OrderSubmitted) -> VenueOrder | None:
        try:
            return await self._retrying(lambda: self.venue.fetch_order(order.instrument, order.client_order_id))
        except VenueOrderNotFound:
            return None

    async def _confirm(self, order: OrderSubmitted) -> VenueOrder | None:
        """Ask the venue for the order until ``confirm_timeout``: not found yet is not failed yet."""
        deadline = time.monotonic() + self.settings.confirm_timeout
        delay = self.settings.retry_base
        while True:
            try:
                return await self.venue.fetch_order(order.instrument, order.client_order_id)
            except (VenueOrderNotFound, VenueUnavailable):
                pass
            if time.monotonic() + delay > deadline:
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _adopt(self, order: OrderSubmitted, vo: VenueOrder) -> None:
        """Record the venue's order: accepted (or rejected), then whatever it already did."""
        async with self._lock:
            coid = order.client_order_id
            if vo.status is VenueOrderStatus.REJECTED:
                await self._reject(order, "venue_rejected", "the venue reports the order rejected", vo.raw)
                return
            await self._write(
                [
                    (
                        OrderAccepted(
                            instrument=order.instrument,
                            client_order_id=coid,
                            venue=self.venue.name,
                            venue_order_id=vo.venue_order_id,
                            raw=raw_json(vo.raw),
                        ),
                        f"{coid}|accepted",
                        None,
                    )
                ]
            )
            if vo.filled > 0 or vo.status is not VenueOrderStatus.OPEN:
                await self._sync_order(self.book.orders[coid], vo)

    async def _on_cancel(self, env: Envelope) -> None:
        req = env.event
        assert isinstance(req, OrderCancelRequested)
        t = self.book.orders.get(req.client_order_id)
        if t is None or t.done:
            return  # filled or ended already (or never ours): nothing to cancel
        vo: VenueOrder | None
        try:
            vo = await self._retrying(lambda: self.venue.cancel(req.instrument, req.client_order_id, t.venue_order_id))
        except VenueOrderNotFound:
            vo = await self._lookup(t.order)  # filled meanwhile, or not registered yet
        except VenueError as exc:
            log.warning("execution.cancel_failed", client_order_id=req.client_order_id, error=str(exc))
            return
        if vo is None:
            log.warning("execution.cancel_unknown", client_order_id=req.client_order_id)
            return
        async with self._lock:
            await self._sync_order(self.book.orders[req.client_order_id], vo)

    # -- fills and endings -------------------------------------------------------------------------------

    async def _sync_order(self, t: Tracked, vo: VenueOrder) -> None:
        """Report the fills of ``t`` the book lacks, then its end if the venue ended it (call under the lock)."""
        if vo.filled > t.filled:
            since = (
                min(
                    vo.ts,
                    self._causes[t.order.client_order_id].ts_init if t.order.client_order_id in self._causes else vo.ts,
                )
                - 60_000_000_000
            )
            trades = await self._retrying(lambda: self.venue.trades(t.order.instrument, since))
            fills, _ = fills_for(self.book, [tr for tr in trades if tr.venue_order_id == vo.venue_order_id])
            await self._write([(f, f"trade|{f.trade_id}", None) for f in fills])
        t = self.book.orders[t.order.client_order_id]
        end = None if t.done else ended(t, vo, self.venue.name)
        if end is not None:
            await self._write([(end, f"{t.order.client_order_id}|{end.TYPE}", None)])

    async def _poll(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.poll_interval)
            if stop.is_set():
                return
            working = self.book.working()
            for instrument in sorted({t.order.instrument for t in working}):
                since = min(self._since(t) for t in working if t.order.instrument == instrument)
                try:
                    trades = await self._retrying(lambda i=instrument, s=since: self.venue.trades(i, s))  # type: ignore[misc]
                except VenueError as exc:
                    log.warning("execution.poll_failed", instrument=instrument, error=str(exc))
                    continue
                async with self._lock:
                    fills, _ = fills_for(self.book, trades)
                    await self._write([(f, f"trade|{f.trade_id}", None) for f in fills])

    async def _cancel_ended(self, open_orders: list[VenueOrder]) -> None:
        """Cancel at the venue the open orders that the log has already ended (e.g. a lost submit that was given up
        and rejected as unconfirmed, then turned up): the log says they do not trade, so they must not."""
        for vo in open_orders:
            t = self.book.orders.get(vo.client_order_id)
            if t is None or not t.done:
                continue
            try:
                await self._retrying(
                    lambda vo=vo: self.venue.cancel(
                        vo.instrument,
                        vo.client_order_id,  # type: ignore[misc]
                        vo.venue_order_id,
                    )
                )
                log.warning(
                    "execution.ended_order_cancelled",
                    client_order_id=vo.client_order_id,
                    venue_order_id=vo.venue_order_id,
                )
            except VenueError as exc:
                log.warning("execution.ended_order_cancel_failed", client_order_id=vo.client_order_id, error=str(exc))

    def _since(self, t: Tracked) -> int:
        cause = self._causes.get(t.order.client_order_id)
        return (cause.ts_init if cause else time.time_ns() - int(self.settings.lookback * 1e9)) - 60_000_000_000

    # -- reconciliation ----------------------------------------------------------------------------------

    async def reconcile_once(self) -> list[Event]:
        """Compare the venue with the book; write every difference and every missed fill or ending."""
        instruments = sorted({t.order.instrument for t in self.book.orders.values()})
        since = time.time_ns() - int(self.settings.lookback * 1e9)
        try:
            open_orders = await self._retrying(lambda: self.venue.open_orders(instruments))
            trades = []
            for i in sorted(set(instruments) | {o.instrument for o in open_orders}):
                trades.extend(await self._retrying(lambda i=i: self.venue.trades(i, since)))  # type: ignore[misc]
            balances = await self._retrying(self.venue.balances)
        except VenueError as exc:
            log.warning("execution.reconcile_failed", venue=self.venue.name, error=str(exc))
            return []
        async with self._lock:
            events = reconcile(self.book, VenueSnapshot(open_orders, trades, balances), self.baseline)
            items: list[tuple[Event, str, int | None]] = []
            for ev in events:
                fact = f"trade|{ev.trade_id}" if hasattr(ev, "trade_id") else f"reconcile|{uuid.uuid4()}"
                items.append((ev, fact, None))
            await self._write(items)
            await self._cancel_ended(open_orders)
            # working orders the venue no longer lists: ask how they ended
            listed = {o.client_order_id for o in open_orders}
            for t in self.book.working():
                if t.order.client_order_id in listed:
                    continue
                vo = await self._lookup(t.order)
                if vo is not None and vo.status is not VenueOrderStatus.OPEN:
                    await self._sync_order(t, vo)
        if any(not isinstance(e, _REPORTS) for e in events):
            log.info("execution.reconciled", venue=self.venue.name, events=len(events))
        return events

    async def _reconcile_every(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.reconcile_interval)
            if not stop.is_set():
                await self.reconcile_once()

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """One more try, after a backoff, of a call the venue left unanswered. Adapters already retry their reads
        (``read_retries``); this covers the calls they do not retry (cancel) without multiplying theirs."""
        return await retry_unavailable(call, self._backoff)


_REPORTS = (OrderAccepted, OrderRejected, OrderFilled, OrderCancelled, OrderExpired)
