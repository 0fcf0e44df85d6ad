"""Event lag: how far each projection trails the log, per topic and partition.

- ``engine_projection_lag_events``: log end offset minus the projection's next offset;
- ``engine_projection_lag_seconds``: 0 when caught up, else now minus the record time (``ts_init``)
  of the last event applied (record time, not market time: a recorded 2019 file replayed today is
  not "six years behind");
- ``engine_projection_applied_events_total`` and ``engine_projection_log_end_offset`` give the
  consume and produce rates with ``rate()``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client import Counter, Gauge

LAG_EVENTS = Gauge(
    "engine_projection_lag_events",
    "Events in the log not yet applied by the projection",
    ["projection", "topic", "partition"],
)
LAG_SECONDS = Gauge(
    "engine_projection_lag_seconds",
    "Seconds the projection trails the log (0 when caught up)",
    ["projection", "topic", "partition"],
)
LOG_END = Gauge(
    "engine_projection_log_end_offset",
    "Log end offset seen by the projection",
    ["projection", "topic", "partition"],
)
POSITION = Gauge(
    "engine_projection_next_offset",
    "Next offset the projection will apply",
    ["projection", "topic", "partition"],
)
APPLIED = Counter(
    "engine_projection_applied_events",
    "Events applied by the projection",
    ["projection", "topic", "partition"],
)


@dataclass
class PartitionLag:
    next_offset: int = 0
    log_end: int = 0
    last_ts_init: int | None = None

    @property
    def events(self) -> int:
        return max(self.log_end - self.next_offset, 0)

    def seconds(self, now_ns: int | None = None) -> float:
        if self.events == 0 or self.last_ts_init is None:
            return 0.0
        return max(((now_ns or time.time_ns()) - self.last_ts_init) / 1e9, 0.0)


def publish(projection: str, topic: str, partition: int, lag: PartitionLag, applied: int = 0) -> None:
    labels = (projection, topic, str(partition))
    LAG_EVENTS.labels(*labels).set(lag.events)
    LAG_SECONDS.labels(*labels).set(lag.seconds())
    LOG_END.labels(*labels).set(lag.log_end)
    POSITION.labels(*labels).set(lag.next_offset)
    if applied:
        APPLIED.labels(*labels).inc(applied)
