"""The composition root: wires settings to feeds, the trading loop, projections and the HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import asyncpg
import structlog

from adapters.alerts import AlertInbox
from adapters.feeds import Feed, RecordedFeed, SyntheticFeed, publish_feed
from adapters.feeds.recorded import RecordedFileError
from adapters.http import HttpServer
from adapters.kafka import EventProducer, LogInspector, ensure_topics
from adapters.outage import is_outage
from adapters.postgres import create_pool
from adapters.telemetry import DAILY_LOSS_LIMIT
from adapters.venues.paper import PaperExchange
from engine import __version__
from engine.config import Settings
from engine.core.risk import RiskLimits
from engine.core.trader import Trader
from engine.core.trading import TradingCore
from engine.execution import ExecutionService
from engine.loop import TradingLoop
from engine.status import Announce, ConnectionMonitor, LagHistory, StatusBoard
from engine.venues import make_live_venue, native_stops, service_settings
from events import (
    ConnectionChanged,
    EngineStarted,
    EngineStopped,
    Envelope,
    Event,
    FeedStopped,
    OrderType,
    Topics,
    TradingHalted,
    TradingResumed,
)
from projections.audit import AuditProjection, create_schema
from projections.audit.reads import trading_view
from projections.metrics import MetricsProjection
from projections.offsets import MemoryOffsets, PgOffsets
from projections.runner import ProjectionRunner

log = structlog.get_logger(__name__)


def make_feed(
    settings: Settings,
    limit: int | None = None,
    on_connection: Callable[[str, str], Awaitable[None]] | None = None,
    resume_after: tuple[int, str] | None = None,
    resume: dict[str, tuple[int, str]] | None = None,
) -> Feed:
    f = settings.feed
    if f.kind == "ccxt":
        from adapters.feeds.ccxt_stream import CcxtTradeFeed

        return CcxtTradeFeed(
            f.exchange, f.instruments, rest_url=f.rest_url, ws_url=f.ws_url, on_connection=on_connection
        )
    if f.kind == "recorded":
        files = f.recorded_files()
        first = files[0]
        return RecordedFeed(
            first.path,
            first.symbol,
            speed=f.speed,
            format=first.format,
            files=tuple((r.path, r.symbol, r.format, r.columns) for r in files) if len(files) > 1 else (),
            columns=first.columns,
            resume_after=resume_after,
            resume=resume,
        )
    return SyntheticFeed(
        f.instruments,
        f.start_prices,
        f.tick_size,
        seed=f.seed,
        ticks_per_second=f.ticks_per_second,
        volatility_bps=f.volatility_bps,
        limit=limit,
    )


def lifecycle(event: Event, engine_id: str) -> Envelope:
    now = time.time_ns()
    return Envelope.new(event, ts_event=now, ts_init=now, source="engine", key=engine_id)


def public_settings(settings: Settings) -> str:
    """The effective settings as JSON, with any password in a DSN masked."""
    data = settings.model_dump(mode="json", by_alias=True)
    for key in ("dsn", "writer_dsn", "reader_dsn"):
        if data["postgres"].get(key):
            data["postgres"][key] = re.sub(r"(//[^:/@]+):[^@]*@", r"\1:***@", data["postgres"][key])
    return json.dumps(data, sort_keys=True)


def topics_of(settings: Settings) -> Topics:
    return Topics(settings.kafka.topic_prefix)


def make_traders(settings: Settings) -> tuple[list[Trader], RiskLimits | None]:
    """The engine's strategies and the account's limits over them all (None with one strategy: its limits are the
    account's, ``[risk]``). With ``[[strategies]]``, each has its own limits: those it sets, else the account's."""
    r = settings.risk
    account = RiskLimits(r.max_order_notional, r.max_position, r.max_open_orders, r.max_orders_per_minute)
    native = native_stops(settings.venue)  # venue.stops, resolved here: the core is told, never asks
    if not settings.strategies:
        s = settings.strategy
        return [Trader(s.build(), account, OrderType(s.order_type), native_stops=native)], None
    traders = []
    for e in settings.strategies:
        own = e.risk
        limits = RiskLimits(
            own.max_order_notional or account.max_order_notional,
            own.max_position or account.max_position,
            own.max_open_orders or account.max_open_orders,
            own.max_orders_per_minute or account.max_orders_per_minute,
        )
        strategy = e.build(settings.strategy.path)
        traders.append(Trader(strategy, limits, OrderType(e.order_type), frozenset(e.instruments), native))
    return traders, account


def make_core_factory(settings: Settings) -> Callable[[], TradingCore]:
    traders, account = make_traders(settings)
    v = settings.venue
    if v.kind != "paper":
        return lambda: TradingCore(traders, None, account=account)  # live: the execution service sends the orders
    return lambda: TradingCore(
        traders, PaperExchange(v.taker_fee_rate, v.maker_fee_rate, v.fee_currency), account=account
    )


def daily_loss_settings(settings: Settings) -> dict[str, Any]:
    """The TradingLoop's daily loss check. Its starting balances: the paper account's from the settings, or for a
    live venue the venue's own, as the execution service's first reconciliation recorded them (BalanceReconciled
    in the control log, written before it sends any order)."""
    if settings.venue.kind != "paper":
        return {"starting_balances": None, "daily_loss_limit": settings.risk.daily_loss_limit}
    return {"starting_balances": settings.venue.starting_balances, "daily_loss_limit": settings.risk.daily_loss_limit}


@dataclass
class Stopper:
    """Why and when to stop: a signal, a duration, or the end of a finite feed."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str = ""

    def request(self, reason: str) -> None:
        if not self.stop.is_set():
            self.reason = reason
            self.stop.set()

    def _signal(self, name: str) -> None:
        if self.stop.is_set():  # a second Ctrl-C while draining: stop now (what was not drained, the next start takes)
            print(
                f"{name} again: stopping at once, without draining (the next start goes on from the log)",
                file=sys.stderr,
                flush=True,
            )
            os._exit(130)
        self.request(name)

    def install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, self._signal, sig.name)


async def wait_until(pred: Callable[[], Awaitable[bool] | bool], deadline: float, poll: float = 0.1) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        res = pred()
        if isinstance(res, Awaitable):
            res = await res
        if res:
            return True
        await asyncio.sleep(poll)
    return False


class Services:
    """Everything a command may need, started in order and stopped in reverse (shielded)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stack: contextlib.AsyncExitStack = contextlib.AsyncExitStack()
        self.tasks: list[asyncio.Task[Any]] = []

    async def __aenter__(self) -> Services:
        await self._stack.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.shield(self._stack.aclose())

    async def enter(self, cm: Any) -> Any:
        return await self._stack.enter_async_context(cm)

    def on_close(self, fn: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        self._stack.push_async_callback(fn)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        t = asyncio.create_task(coro, name=name)
        self.tasks.append(t)
        return t


async def start_projections(
    svc: Services, producer: EventProducer, which: set[str], stop: asyncio.Event
) -> tuple[list[ProjectionRunner], asyncpg.Pool | None]:
    """The projection runners, started; PostgreSQL need not be up (the audit runner waits for it, and creates its
    schema once it answers), but a schema built by another version is refused here, at once, when it does."""
    s = svc.settings
    topics = topics_of(s)
    runners: list[ProjectionRunner] = []
    pool: asyncpg.Pool | None = None
    if "audit" in which:
        owner = await create_pool(s.postgres.dsn, min_size=0, max_size=2)  # DDL: schema, day partitions
        svc.on_close(owner.close)
        try:
            await asyncio.wait_for(create_schema(owner, s.postgres.schema_), 10)
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning(
                "audit.schema_deferred",
                error=repr(exc),
                detail="PostgreSQL does not answer: the audit projection waits for it, trading goes on",
            )
        pool = await create_pool(s.postgres.writer, min_size=0)
        svc.on_close(pool.close)
        runners.append(
            ProjectionRunner(
                AuditProjection(s.postgres.schema_, topics, owner_pool=owner, create=True),
                PgOffsets(pool, s.postgres.schema_),
                s.kafka.bootstrap,
                producer,
                group_id=topics.group(f"projection.audit.{s.postgres.schema_}"),
                on_error=s.projections.on_error,
            )
        )
    if "metrics" in which:
        runners.append(
            ProjectionRunner(
                MetricsProjection(topics),
                MemoryOffsets(),
                s.kafka.bootstrap,
                producer,
                group_id=topics.group("projection.metrics"),
                on_error=s.projections.on_error,
            )
        )
    for r in runners:
        await r.start()
        svc.on_close(r.stop)
        svc.spawn(r.run(stop), f"projection:{r.name}")
    return runners, pool


def announcer(producer: EventProducer, source: str) -> Announce:
    """Writes a server's ``ConnectionChanged`` (lost / restored) to the control topic, keyed by ``source``."""

    async def announce(component: str, state: str, detail: str, ts_event: int) -> None:
        env = Envelope.new(
            ConnectionChanged(component=component, state=state, detail=detail[:1000]),
            ts_event=ts_event,
            ts_init=time.time_ns(),
            source="engine",
            key=source,
        )
        await producer.publish([env])

    return announce


async def start_http(
    svc: Services,
    inspector: LogInspector | None,
    pool: asyncpg.Pool | None,
    runners: list[ProjectionRunner],
    *,
    announce: Announce | None = None,
    serve: bool = True,
    producer: EventProducer | None = None,
) -> ConnectionMonitor:
    """The connection monitor (probing Kafka and PostgreSQL in the background), and the HTTP server (with
    Alertmanager's webhook, writing to the control topic through ``producer``)."""
    s = svc.settings
    monitor = ConnectionMonitor(inspector, pool, announce)
    await monitor.probe_once()
    svc.spawn(monitor.run(asyncio.Event()), "connection-monitor")  # cancelled when the services close
    if not serve:
        return monitor
    board = StatusBoard(
        monitor,
        runners,
        max_lag_events=s.http.ready_max_lag_events,
        max_lag_seconds=s.http.ready_max_lag_seconds,
        kafka_used=inspector is not None,
        postgres_used=pool is not None,
    )
    alerts = AlertInbox.on_kafka(producer, s.kafka.bootstrap) if producer is not None else None
    if alerts is not None:
        alerts.start()
        svc.on_close(alerts.stop)  # after the server's stop (no request in flight), before the producer's
    audited = any(r.name == "audit" for r in runners)  # the /trading page reads the audit schema
    history = LagHistory(board)
    svc.spawn(history.run(asyncio.Event()), "lag-history")  # cancelled when the services close
    server = HttpServer(
        s.http.host,
        s.http.port,
        ready=board.checks,
        status=board.snapshot,
        alerts=alerts,
        history=history.columns,
        trading=partial(trading_view, pool, s.postgres.schema_) if pool is not None and audited else None,
    )
    await server.start()
    svc.on_close(server.stop)
    log.info(
        "http.listening",
        url=f"http://{s.http.host}:{server.port}/metrics",
        dashboard=f"http://{s.http.host}:{server.port}/dashboard",
        trading=f"http://{s.http.host}:{server.port}/trading",
    )
    return monitor


def _failed(task: asyncio.Task[Any]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is not None


async def _supervise(svc: Services, stopper: Stopper) -> None:
    """Stop everything if a background task dies (it raises that task's error); return once a stop is requested.

    Returning is not failing: a stop by signal, duration or end of feed still drains (``run_engine`` checks
    :func:`_failed`, not ``done()``: the supervisor may notice the stop before the feed has finished)."""
    while not stopper.stop.is_set():
        for t in svc.tasks:
            if t.done() and not t.cancelled() and t.exception() is not None:
                stopper.request(f"task {t.get_name()} failed: {t.exception()!r}")
                raise t.exception()  # type: ignore[misc]
        await asyncio.sleep(0.2)


async def ensure_topics_of(s: Settings, topics: Topics) -> None:
    """The trading topics, created if missing, with the settings' partitions and replication."""
    k = s.kafka
    await ensure_topics(
        k.bootstrap, k.partitions, topics, replication=k.replication_factor, min_insync=k.min_insync_replicas
    )


async def run_engine(
    settings: Settings,
    *,
    duration: float | None = None,
    projections: set[str] = frozenset({"audit", "metrics"}),  # type: ignore[assignment]
    limit: int | None = None,
    drain_timeout: float = 120.0,
    http: bool = True,
    feed: Feed | None = None,
) -> dict[str, Any]:
    """``python -m engine run``: feed -> Kafka -> trading loop -> Kafka -> projections. ``feed``: this one instead of
    the settings' (a shadow's copy of another log's ticks)."""
    s = settings
    native_stops(s.venue)  # venue.stops = "native" where the venue has none: refused before anything is written
    stopper = Stopper()
    stopper.install_signals()
    feed_stop = asyncio.Event()
    topics = topics_of(s)
    await ensure_topics_of(s, topics)
    async with Services(s) as svc:
        producer = await svc.enter(EventProducer(s.kafka.bootstrap, topics, client_id=s.kafka.client_id))
        inspector = await svc.enter(LogInspector(s.kafka.bootstrap))
        work_stop = asyncio.Event()
        engine_id = f"{s.kafka.client_id}@{socket.gethostname()}:{os.getpid()}"
        runners, pool = await start_projections(svc, producer, set(projections), work_stop)
        announce = announcer(producer, engine_id)
        await start_http(svc, inspector, pool, runners, announce=announce, serve=http, producer=producer)
        loop = TradingLoop(
            s.kafka.bootstrap,
            producer,
            make_core_factory(s),
            topics,
            snapshot_every=s.kafka.snapshot_every,
            **daily_loss_settings(s),
        )
        DAILY_LOSS_LIMIT.set(loop.supervisor.daily_loss_limit)  # the limit the loop enforces: the alert's threshold

        async def forget_limit() -> None:
            DAILY_LOSS_LIMIT.set(None)

        svc.on_close(forget_limit)
        await loop.start()
        svc.on_close(loop.stop)
        svc.spawn(loop.run(work_stop), "trading-loop")
        venue = make_live_venue(s.venue)
        execution: ExecutionService | None = None
        exec_stop = asyncio.Event()
        if venue is not None:
            execution = ExecutionService(venue, producer, s.kafka.bootstrap, topics, service_settings(s.execution))
            await execution.start()
            svc.on_close(execution.stop)
            svc.spawn(execution.run(exec_stop), "execution")

        async def on_connection(state: str, detail: str) -> None:
            component = f"feed:{s.feed.exchange}"
            log.warning("feed.connection", component=component, state=state, detail=detail)
            await producer.publish(
                [lifecycle(ConnectionChanged(component=component, state=state, detail=detail), component)]
            )

        resume: dict[str, tuple[int, str]] = {}
        recorded = s.feed.kind == "recorded" and feed is None
        for symbol in dict.fromkeys(r.symbol for r in s.feed.recorded_files()) if recorded else ():
            # a recorded run goes on after the last trade of its files already in the log (a restart after a crash)
            last = await inspector.last_trade(topics.ticks, RecordedFeed.source, RecordedFeed.venue, symbol)
            if last is not None:
                resume[symbol] = last
                log.info("feed.resuming", instrument=symbol, after_trade=last[1], ts_event=last[0])
        feed = feed or make_feed(s, limit, on_connection, resume=resume)
        acknowledged: list[int] = []

        async def publish() -> int | RecordedFileError:
            """The feed's ticks to the log; a row the feed cannot read ends it (returned: the run drains what was
            published before it, then fails with it), any other failure fails the run at once."""
            try:
                return await publish_feed(feed, producer, feed_stop, on_finished=acknowledged.append)
            except RecordedFileError as exc:
                return exc

        feed_task = svc.spawn(publish(), "feed")
        supervisor = svc.spawn(_supervise(svc, stopper), "supervisor")
        started = time.monotonic()
        await producer.publish(
            [lifecycle(EngineStarted(engine_id=engine_id, version=__version__, settings=public_settings(s)), engine_id)]
        )
        log.info(
            "engine.started", engine_id=engine_id, feed=feed.source, projections=sorted(projections), duration=duration
        )

        async def stop_conditions() -> None:
            waits = [asyncio.ensure_future(stopper.stop.wait()), feed_task]
            if duration is not None:
                waits.append(asyncio.ensure_future(asyncio.sleep(duration)))
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                if w is not feed_task and not w.done():
                    w.cancel()
            if not stopper.stop.is_set():
                stopper.request("end of feed" if feed_task.done() else f"duration {duration}s reached")

        await stop_conditions()
        feed_stop.set()
        ticks_published = 0
        error: BaseException | None = None
        feed_error: RecordedFileError | None = None  # a row the feed could not read: it stops there, the rest drains
        try:
            result = await feed_task
            if isinstance(result, RecordedFileError):
                feed_error = result
                stopper.reason = f"feed stopped: {result}"
            else:
                ticks_published = result
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # the feed failed: stop, and say why in the log and the event
            error = exc
            stopper.reason = f"feed failed: {exc}"
        ticks_published = acknowledged[-1] if acknowledged else ticks_published
        if isinstance(feed, RecordedFeed):
            await _feed_stopped(producer, feed, feed_error or error, ticks_published)
        log.info("engine.stopping", reason=stopper.reason, ticks_published=ticks_published)
        # drain: the loop takes every published tick, then the projections every event
        drained: bool | None = None  # None: no drain was tried (the engine stopped on an error)
        drain_detail = "not drained: the engine stopped on an error"
        if not _failed(supervisor) and error is None:
            drained, drain_detail = await _drain(
                inspector,
                topics,
                loop,
                execution,
                exec_stop,
                runners,
                drain_timeout,
                producer,
                lambda: lifecycle(
                    EngineStopped(
                        engine_id=engine_id,
                        reason=stopper.reason,
                        ticks_processed=loop.ticks_processed,
                        events_published=loop.events_published,
                    ),
                    engine_id,
                ),
            )
        work_stop.set()
        await asyncio.sleep(0)
        summary = {
            "reason": stopper.reason,
            "seconds": round(time.monotonic() - started, 3),
            "ticks_published": ticks_published,
            "ticks_skipped": getattr(feed, "skipped", 0),
            "ticks_processed": loop.ticks_processed,
            "events_published": loop.events_published,
            "drained": drained,
            "drain": drain_detail,
            "projections": {r.name: r.applied for r in runners},
            "dead_lettered": {r.name: r.dead_lettered for r in runners},
        }
        log.info("engine.stopped", **summary)
        if error is None and _failed(supervisor):
            error = supervisor.exception()
        if error is not None:
            # best effort: the failure itself may be Kafka being gone
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    producer.publish(
                        [
                            lifecycle(
                                EngineStopped(
                                    engine_id=engine_id,
                                    reason=f"error: {error!r}"[:2000],
                                    ticks_processed=loop.ticks_processed,
                                    events_published=loop.events_published,
                                ),
                                engine_id,
                            )
                        ]
                    ),
                    5,
                )
            raise error
        if feed_error is not None:
            raise feed_error  # after the drain: what was published before the bad row is all applied
        return summary


async def _feed_stopped(
    producer: EventProducer, feed: RecordedFeed, error: BaseException | None, ticks_published: int
) -> None:
    """Where the recorded feed stopped, as a ``FeedStopped`` on the control topic (and in the log); best effort
    when the feed failed (the failure may be Kafka being gone)."""
    point = feed.stop_point(error)
    log.info("feed.stopped", **asdict(point), ticks_published=ticks_published)
    event = FeedStopped(
        feed=feed.source,
        outcome=point.outcome,
        reason=point.reason[:2000],
        file=point.file[:4096],
        where=point.where,
        ticks_published=ticks_published,
    )
    with contextlib.suppress(Exception) if error is not None else contextlib.nullcontext():
        await asyncio.wait_for(producer.publish([lifecycle(event, feed.source)]), 10)


async def _drain(
    inspector: LogInspector,
    topics: Topics,
    loop: TradingLoop,
    execution: ExecutionService | None,
    exec_stop: asyncio.Event,
    runners: list[ProjectionRunner],
    timeout: float,  # noqa: ASYNC109
    producer: EventProducer,
    stopped: Callable[[], Envelope],
) -> tuple[bool, str]:
    """Wait until the loop took every published tick (and a live venue's reports came back), write
    ``EngineStopped`` (built by ``stopped`` then, so its counts include the ticks taken while draining), then until
    the projections applied every event; (drained, what happened)."""
    try:
        tick_tps = await inspector.partitions([topics.ticks])
        ends = await inspector.end_offsets(tick_tps)
        if not await wait_until(lambda: loop.group_caught_up(ends), timeout):
            return False, f"the engines had not taken every published tick within {timeout:g} s"
        if execution is not None:
            # every order command reaches the venue, then its reports come back through the engine
            trading_ends = await inspector.end_offsets(await inspector.partitions([topics.trading]))
            if not await wait_until(lambda: execution.caught_up(trading_ends), timeout):
                return False, f"the execution service had not handled every order command within {timeout:g} s"
            exec_stop.set()
            ends = await inspector.end_offsets(tick_tps)
            if not await wait_until(lambda: loop.group_caught_up(ends), timeout):
                return False, f"the engines had not taken the venue's last reports within {timeout:g} s"
        await asyncio.wait_for(producer.publish([stopped()]), timeout)
        all_tps = await inspector.partitions([topics.ticks, topics.trading, topics.control])
        ends_all = await inspector.end_offsets(all_tps)

        async def applied() -> bool:
            return all([await r.all_applied(ends_all) for r in runners])

        if not await wait_until(applied, timeout):
            behind = [r.name for r in runners if not await r.all_applied(ends_all)]
            return False, f"projection {', '.join(behind)} had not applied every event within {timeout:g} s"
    except Exception as exc:
        if not is_outage(exc):
            raise
        return False, f"not drained: {type(exc).__name__}: {exc}"
    return True, "every published tick taken and every event projected"


async def switch_breaker(settings: Settings, *, halt: bool, reason: str) -> None:
    """``python -m engine halt`` / ``resume``: one control event in the log."""
    topics = topics_of(settings)
    await ensure_topics_of(settings, topics)
    by = f"operator:{getpass.getuser()}@{socket.gethostname()}"
    event: Event = TradingHalted(reason=reason, by=by) if halt else TradingResumed(reason=reason, by=by)
    async with EventProducer(settings.kafka.bootstrap, topics, client_id="engine-cli") as producer:
        await producer.publish([lifecycle(event, "operator")])
    log.info("breaker.switched", halted=halt, reason=reason, by=by)


async def run_projections(settings: Settings, which: set[str], *, http: bool = True) -> None:
    """``python -m engine project``: only the projection workers (scale them out across machines)."""
    s = settings
    stopper = Stopper()
    stopper.install_signals()
    topics = topics_of(s)
    await ensure_topics_of(s, topics)
    async with Services(s) as svc:
        producer = await svc.enter(
            EventProducer(s.kafka.bootstrap, topics, client_id=f"{s.kafka.client_id}-projections")
        )
        inspector = await svc.enter(LogInspector(s.kafka.bootstrap))
        runners, pool = await start_projections(svc, producer, which, stopper.stop)
        source = f"{s.kafka.client_id}-projections@{socket.gethostname()}:{os.getpid()}"
        announce = announcer(producer, source)
        await start_http(svc, inspector, pool, runners, announce=announce, serve=http, producer=producer)
        supervisor = svc.spawn(_supervise(svc, stopper), "supervisor")
        log.info("projections.started", projections=sorted(which))
        await stopper.stop.wait()
        log.info("projections.stopping", reason=stopper.reason)
        if supervisor.done() and not supervisor.cancelled() and supervisor.exception():
            raise supervisor.exception()  # type: ignore[misc]


__all__ = ["run_engine", "run_projections"]
