"""What /readyz and /dashboard report: Kafka and PostgreSQL reachability and every projection's lag.

Reachability comes from :class:`ConnectionMonitor`, which probes both servers in the background every second,
whoever asks: the ``engine_kafka_up`` / ``engine_postgres_up`` gauges and /readyz say within seconds that a server
went away (a request to /readyz only reads the last probe, so it answers at once, outage or not). Each change is
logged once and written to the control topic as a :class:`~events.ConnectionChanged` pair (``lost``, then
``restored``); Kafka's own ``lost`` is written once the broker is back, with the time it was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog

from adapters.kafka import LogInspector
from adapters.telemetry import KAFKA_UP, POSTGRES_UP
from projections.runner import ProjectionRunner

log = structlog.get_logger(__name__)

PROBE_INTERVAL = 1.0
PROBE_TIMEOUT = 2.0

# (component, state "lost" | "restored", detail, ts_event ns) -> written to the control topic
Announce = Callable[[str, str, str, int], Awaitable[None]]


@dataclass
class _Link:
    name: str
    ok: bool | None = None  # None: not probed yet
    detail: str = ""
    latency_ms: float | None = None
    since_ns: int = 0  # when it last changed


class ConnectionMonitor:
    """Probes Kafka (a metadata round trip) and PostgreSQL (``SELECT 1``) every ``interval`` seconds."""

    def __init__(
        self,
        inspector: LogInspector | None,
        pool: asyncpg.Pool | None,
        announce: Announce | None = None,
        *,
        interval: float = PROBE_INTERVAL,
        timeout: float = PROBE_TIMEOUT,
    ) -> None:
        self._inspector = inspector
        self._pool = pool
        self._announce = announce
        self._interval = interval
        self._timeout = timeout
        self.kafka = _Link("kafka")
        self.postgres = _Link("postgres")
        self.probes = 0
        self._untold: list[tuple[str, str, str, int]] = []  # changes not yet written to the log, in order
        self._news = asyncio.Event()  # a change to write: the teller (see run) writes it, the probes go on
        self._teller: asyncio.Task[None] | None = None

    async def _probe(self, link: _Link, call: Callable[[], Awaitable[Any]]) -> None:
        t0 = time.perf_counter()
        try:
            await asyncio.wait_for(call(), self._timeout)
        except Exception as exc:  # any failure means: not reachable
            self._set(link, False, f"unreachable: {type(exc).__name__}: {exc}"[:300])
            return
        link.latency_ms = round((time.perf_counter() - t0) * 1000, 2)
        self._set(link, True, "")

    def _set(self, link: _Link, ok: bool, detail: str) -> None:
        link.detail = detail
        if link.ok is ok:
            return
        first = link.ok is None
        link.ok = ok
        link.since_ns = time.time_ns()
        (KAFKA_UP if link is self.kafka else POSTGRES_UP).set(1 if ok else 0)
        if first and ok:
            return
        if not ok:
            log.warning("connection.lost", component=link.name, detail=detail)
            self._untold.append((link.name, "lost", detail, link.since_ns))
        else:
            log.info("connection.restored", component=link.name)
            self._untold.append((link.name, "restored", "", link.since_ns))

    async def _tell(self) -> None:
        """Write the changes to the log, in order, while Kafka answers (a loss of Kafka once it is back)."""
        if self._announce is None:
            self._untold.clear()
            return
        while self._untold and self.kafka.ok is not False:
            component, state, detail, ts = self._untold[0]
            try:
                await asyncio.wait_for(self._announce(component, state, detail, ts), 10)
            except Exception as exc:  # the next probe tries again
                log.debug("connection.announce_failed", component=component, error=repr(exc))
                return
            self._untold.pop(0)

    async def probe_once(self) -> None:
        calls = []
        if self._inspector is not None:
            calls.append(self._probe(self.kafka, self._inspector.ping))
        if self._pool is not None:
            pool = self._pool
            calls.append(self._probe(self.postgres, lambda: pool.fetchval("SELECT 1")))
        await asyncio.gather(*calls)
        self.probes += 1
        if self._teller is None:
            await self._tell()
        elif self._untold:
            self._news.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Probe every ``interval`` seconds; the changes are written to the log by a task of their own, so that a
        write waiting on a broker that just went away never holds the next probe (which would say so)."""
        self._teller = asyncio.create_task(self._tell_loop(), name="connection-teller")
        try:
            while not stop.is_set():
                await self.probe_once()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._interval)
        finally:
            teller, self._teller = self._teller, None
            teller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await teller

    async def _tell_loop(self) -> None:
        while True:
            await self._news.wait()
            self._news.clear()
            await self._tell()

    def check(self, link: _Link, used: bool) -> dict[str, Any]:
        if not used:
            return {"ok": True, "detail": "not used by this process"}
        if link.ok is None:
            return {"ok": False, "detail": "not probed yet"}
        out: dict[str, Any] = {"ok": link.ok, "detail": link.detail}
        if link.ok:
            out["latency_ms"] = link.latency_ms
        else:
            out["since"] = round((time.time_ns() - link.since_ns) / 1e9, 1)
        return out


class StatusBoard:
    def __init__(
        self,
        monitor: ConnectionMonitor,
        runners: list[ProjectionRunner],
        *,
        max_lag_events: int,
        max_lag_seconds: float,
        kafka_used: bool = True,
        postgres_used: bool = True,
    ) -> None:
        self._monitor = monitor
        self._runners = runners
        self._max_events = max_lag_events
        self._max_seconds = max_lag_seconds
        self._kafka_used = kafka_used
        self._postgres_used = postgres_used

    def _projection(self, r: ProjectionRunner) -> dict[str, Any]:
        now = time.time_ns()
        events = sum(st.events for st in r.lag.values())
        seconds = max((st.seconds(now) for st in r.lag.values()), default=0.0)
        ok = r.ready.is_set() and r.outage is None and events <= self._max_events and seconds <= self._max_seconds
        detail = (
            ""
            if ok
            else (
                f"waiting out an outage: {r.outage}"
                if r.outage is not None
                else "waiting for partitions"
                if not r.ready.is_set()
                else f"lag {events} events / {seconds:.1f} s over the limit "
                f"({self._max_events} / {self._max_seconds} s)"
            )
        )
        return {
            "ok": ok,
            "detail": detail,
            "lag_events": events,
            "lag_seconds": round(seconds, 3),
            "applied": r.applied,
            "dead_lettered": r.dead_lettered,
            "partitions": [
                {
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "next_offset": st.next_offset,
                    "log_end": st.log_end,
                    "lag_events": st.events,
                    "lag_seconds": round(st.seconds(now), 3),
                }
                for tp, st in sorted(r.lag.items(), key=lambda kv: (kv[0].topic, kv[0].partition))
            ],
        }

    async def checks(self) -> dict[str, dict[str, Any]]:
        m = self._monitor
        out: dict[str, dict[str, Any]] = {
            "kafka": m.check(m.kafka, self._kafka_used),
            "postgres": m.check(m.postgres, self._postgres_used),
        }
        for r in self._runners:
            out[f"projection:{r.name}"] = self._projection(r)
        return out

    async def snapshot(self) -> dict[str, Any]:
        checks = await self.checks()
        return {
            "time": time.time(),
            "kafka": checks.pop("kafka"),
            "postgres": checks.pop("postgres"),
            "projections": {k.removeprefix("projection:"): v for k, v in checks.items()},
        }


class LagHistory:
    """The dashboard's history, kept by the server: every ``interval`` seconds, each projection's lag (events and
    seconds), what it applied, and the log's end, for the last ``keep`` seconds (40 minutes by default). A page
    opened now draws the last 30 minutes at once from :meth:`columns`, then adds what ``/api/status`` says; the
    history lives as long as the process (a restarted engine starts a new one)."""

    def __init__(self, board: StatusBoard, *, interval: float = 1.0, keep: float = 2400.0) -> None:
        self._board = board
        self.interval = interval
        self._samples: deque[tuple[float, int, dict[str, tuple[int, float, int]]]] = deque(
            maxlen=max(2, int(keep / interval))
        )

    def add(self, snapshot: dict[str, Any]) -> None:
        """One sample from a :meth:`StatusBoard.snapshot`."""
        projections = {
            name: (int(p["lag_events"]), float(p["lag_seconds"]), int(p["applied"]))
            for name, p in snapshot["projections"].items()
        }
        log_end = max((sum(q["log_end"] for q in p["partitions"]) for p in snapshot["projections"].values()), default=0)
        self._samples.append((float(snapshot["time"]), log_end, projections))

    def columns(self) -> dict[str, Any]:
        """The samples as columns (times in seconds since the epoch; ``null`` where a projection did not run yet),
        with the rates: events applied per second by each projection, and written to the log per second."""
        samples = list(self._samples)
        names = sorted({n for _, _, ps in samples for n in ps})
        t = [round(s[0], 3) for s in samples]
        out: dict[str, Any] = {
            "interval": self.interval,
            "t": t,
            "produced_per_second": _rates([s[1] for s in samples], t),
        }
        out["projections"] = {}
        for name in names:
            applied = [ps[name][2] if name in ps else None for _, _, ps in samples]
            out["projections"][name] = {
                "lag_events": [ps[name][0] if name in ps else None for _, _, ps in samples],
                "lag_seconds": [ps[name][1] if name in ps else None for _, _, ps in samples],
                "applied_per_second": _rates(applied, t),
            }
        return out

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.add(await self._board.snapshot())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)


def _rates(values: list[int | None], t: list[float]) -> list[float | None]:
    """Per second between consecutive samples (``None`` for the first, or next to a gap; never below 0)."""
    out: list[float | None] = [None]
    for i in range(1, len(values)):
        a, b, dt = values[i - 1], values[i], t[i] - t[i - 1]
        out.append(None if a is None or b is None or dt <= 0 else round(max(0, b - a) / dt, 3))
    return out[: len(values)]
