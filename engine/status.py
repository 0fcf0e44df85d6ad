"""What /readyz and /dashboard report: Kafka and PostgreSQL reachability and every projection's lag."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from adapters.kafka import LogInspector
from adapters.telemetry import KAFKA_UP, POSTGRES_UP
from projections.runner import ProjectionRunner

CHECK_TIMEOUT = 3.0


class StatusBoard:
    def __init__(
        self,
        inspector: LogInspector | None,
        pool: asyncpg.Pool | None,
        runners: list[ProjectionRunner],
        *,
        max_lag_events: int,
        max_lag_seconds: float,
    ) -> None:
        self._inspector = inspector
        self._pool = pool
        self._runners = runners
        self._max_events = max_lag_events
        self._max_seconds = max_lag_seconds

    async def _kafka(self) -> dict[str, Any]:
        if self._inspector is None:
            return {"ok": True, "detail": "not used by this process"}
        t0 = time.perf_counter()
        try:
            tps = [tp for r in self._runners for tp in r.lag]
            if tps:
                await asyncio.wait_for(self._inspector.end_offsets(tps), CHECK_TIMEOUT)
            else:
                await asyncio.wait_for(self._inspector.ping(), CHECK_TIMEOUT)
        except Exception as exc:  # any failure means: not reachable
            KAFKA_UP.set(0)
            return {"ok": False, "detail": f"unreachable: {exc!r}"}
        KAFKA_UP.set(1)
        return {"ok": True, "latency_ms": round((time.perf_counter() - t0) * 1000, 2)}

    async def _postgres(self) -> dict[str, Any]:
        if self._pool is None:
            return {"ok": True, "detail": "not used by this process"}
        t0 = time.perf_counter()
        try:
            await asyncio.wait_for(self._pool.fetchval("SELECT 1"), CHECK_TIMEOUT)
        except Exception as exc:  # any failure means: not reachable
            POSTGRES_UP.set(0)
            return {"ok": False, "detail": f"unreachable: {exc!r}"}
        POSTGRES_UP.set(1)
        return {"ok": True, "latency_ms": round((time.perf_counter() - t0) * 1000, 2)}

    def _projection(self, r: ProjectionRunner) -> dict[str, Any]:
        now = time.time_ns()
        events = sum(st.events for st in r.lag.values())
        seconds = max((st.seconds(now) for st in r.lag.values()), default=0.0)
        ok = r.ready.is_set() and events <= self._max_events and seconds <= self._max_seconds
        detail = "" if ok else (
            "waiting for partitions" if not r.ready.is_set()
            else f"lag {events} events / {seconds:.1f} s over the limit ({self._max_events} / {self._max_seconds} s)"
        )
        return {
            "ok": ok,
            "detail": detail,
            "lag_events": events,
            "lag_seconds": round(seconds, 3),
            "applied": r.applied,
            "dead_lettered": r.dead_lettered,
            "partitions": [
                {"topic": tp.topic, "partition": tp.partition, "next_offset": st.next_offset,
                 "log_end": st.log_end, "lag_events": st.events, "lag_seconds": round(st.seconds(now), 3)}
                for tp, st in sorted(r.lag.items(), key=lambda kv: (kv[0].topic, kv[0].partition))
            ],
        }

    async def checks(self) -> dict[str, dict[str, Any]]:
        kafka, pg = await asyncio.gather(self._kafka(), self._postgres())
        out: dict[str, dict[str, Any]] = {"kafka": kafka, "postgres": pg}
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
