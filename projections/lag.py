"""Event lag: how far each projection trails the log, per topic and partition.

- ``engine_projection_lag_events``: log end offset minus the projection's next offset;
- ``engine_projection_lag_seconds``: 0 when caught up, else how long the oldest event not yet applied has
  been in the log, as far as the projection saw: now minus the moment it first saw the log end pass that
  event (wall time, not market time: a recorded 2019 file replayed today is not "six years behind"). It is
  not "now minus the last applied event's time": after a quiet hour, or a broker outage in which nothing
  could be written, the first new event would read as an hour behind while it is milliseconds old;
- ``engine_projection_applied_events_total`` and ``engine_projection_log_end_offset`` give the
  consume and produce rates with ``rate()``.

The same figures of a consumer group's runner are also exported under kafka-lag-exporter's names and labels
(``kafka_consumergroup_group_lag``, ``..._lag_seconds``, ``..._offset``, ``kafka_partition_latest_offset`` and the
group's max and sum), so its community dashboards work unchanged: :class:`LagExporterNames`, a collector that
reads, when /metrics is scraped, the values :func:`publish` last set (the hot path only stores them).
"""

from __future__ import annotations

import socket
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

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
    """One partition's position against the log end, and when each stretch of the log beyond the position was first
    seen (``observe_end``), from which :meth:`seconds` tells how long the oldest unapplied event has waited. Lags
    made with a backlog (a worker starting behind) count it as seen when made."""

    next_offset: int = 0
    log_end: int = 0
    last_ts_init: int | None = None
    # (log end, wall time in ns it was first seen), log ends increasing, only those beyond next_offset
    _seen: deque[tuple[int, int]] = field(default_factory=deque, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.log_end > self.next_offset:
            self._seen.append((self.log_end, time.time_ns()))

    @property
    def events(self) -> int:
        return max(self.log_end - self.next_offset, 0)

    def observe_end(self, end: int, now_ns: int | None = None) -> None:
        """The log end was looked up (or a fetch's high watermark read) and is ``end``."""
        if end > self.log_end:
            self._seen.append((end, now_ns or time.time_ns()))
            self.log_end = end
        elif end < self.log_end:  # the topic was recreated: what was seen before says nothing now
            self.log_end = end
            self._seen = deque(s for s in self._seen if s[0] <= end)

    def applied(self, next_offset: int, last_ts_init: int | None) -> None:
        """The projection applied up to ``next_offset`` (exclusive), the last event's ``ts_init`` given."""
        self.next_offset = next_offset
        self.last_ts_init = last_ts_init
        self.observe_end(max(self.log_end, next_offset))
        while self._seen and self._seen[0][0] <= next_offset:
            self._seen.popleft()

    def seconds(self, now_ns: int | None = None) -> float:
        if self.events == 0 or not self._seen:
            return 0.0
        return max(((now_ns or time.time_ns()) - self._seen[0][1]) / 1e9, 0.0)


@dataclass(frozen=True)
class Member:
    """A consumer group member's labels in kafka-lag-exporter's metrics: the cluster (the bootstrap servers as
    configured), the group id, this host's name, the consumer's client id, and its member id (asked when scraped: the
    group coordinator gives a new one at each join; "" before the first)."""

    cluster: str
    group: str
    client_id: str
    consumer_id: Callable[[], str]
    host: str = socket.gethostname()


_GROUP_LABELS = ["cluster_name", "group", "topic", "partition", "member_host", "consumer_id", "client_id"]


class LagExporterNames(Collector):
    """kafka-lag-exporter's lag metrics, from the values :func:`publish` last set for each (group, topic, partition):
    the very numbers of the ``engine_projection_*`` gauges, under its names and labels. Its per-group max and sum are
    taken over the partitions of this process (with several workers, ``max by (group)`` / ``sum by (group)`` of them
    give the group's)."""

    def __init__(self) -> None:
        # (group, topic, partition) -> (member, lag in events, lag in seconds, next offset, log end)
        self.values: dict[tuple[str, str, int], tuple[Member, int, float, int, int]] = {}

    def describe(self) -> Iterable[Metric]:
        return self._families([])

    def collect(self) -> Iterable[Metric]:
        return self._families(list(self.values.items()))

    def _families(self, items: list[tuple[tuple[str, str, int], tuple[Member, int, float, int, int]]]) -> list[Metric]:
        lag = GaugeMetricFamily(
            "kafka_consumergroup_group_lag",
            "Last produced offset minus the group's last consumed offset (engine_projection_lag_events)",
            labels=_GROUP_LABELS,
        )
        lag_s = GaugeMetricFamily(
            "kafka_consumergroup_group_lag_seconds",
            "The group's lag in seconds (engine_projection_lag_seconds: the wait of the oldest unapplied event)",
            labels=_GROUP_LABELS,
        )
        offset = GaugeMetricFamily(
            "kafka_consumergroup_group_offset",
            "The group's next offset to consume (engine_projection_next_offset)",
            labels=_GROUP_LABELS,
        )
        latest = GaugeMetricFamily(
            "kafka_partition_latest_offset",
            "The partition's latest offset (engine_projection_log_end_offset)",
            labels=["cluster_name", "topic", "partition"],
        )
        max_lag = GaugeMetricFamily(
            "kafka_consumergroup_group_max_lag",
            "The group's highest lag in offsets over its partitions in this process",
            labels=["cluster_name", "group", "is_simple_consumer"],
        )
        max_lag_s = GaugeMetricFamily(
            "kafka_consumergroup_group_max_lag_seconds",
            "The group's highest lag in seconds over its partitions in this process",
            labels=["cluster_name", "group", "is_simple_consumer"],
        )
        sum_lag = GaugeMetricFamily(
            "kafka_consumergroup_group_sum_lag",
            "The group's lag in offsets summed over its partitions in this process",
            labels=["cluster_name", "group"],
        )
        topic_sum = GaugeMetricFamily(
            "kafka_consumergroup_group_topic_sum_lag",
            "The group's lag in offsets summed over a topic's partitions in this process",
            labels=["cluster_name", "group", "topic"],
        )
        groups: dict[tuple[str, str], list[tuple[int, float]]] = {}
        topics: dict[tuple[str, str, str], int] = {}
        latest_seen: dict[tuple[str, str, int], int] = {}
        consumer_ids: dict[int, str] = {}
        for (group, topic, partition), (member, events, seconds, next_offset, log_end) in items:
            cid = consumer_ids.get(id(member))
            if cid is None:
                cid = consumer_ids[id(member)] = member.consumer_id()
            labels = [member.cluster, group, topic, str(partition), member.host, cid, member.client_id]
            lag.add_metric(labels, events)
            lag_s.add_metric(labels, seconds)
            offset.add_metric(labels, next_offset)
            # one series per partition: two groups of this process read the same topics (the latest look-up wins)
            key = (member.cluster, topic, partition)
            latest_seen[key] = max(latest_seen.get(key, 0), log_end)
            groups.setdefault((member.cluster, group), []).append((events, seconds))
            topics[(member.cluster, group, topic)] = topics.get((member.cluster, group, topic), 0) + events
        for (cluster, topic, partition), end in latest_seen.items():
            latest.add_metric([cluster, topic, str(partition)], end)
        for (cluster, group), rows in groups.items():
            max_lag.add_metric([cluster, group, "false"], max(e for e, _ in rows))
            max_lag_s.add_metric([cluster, group, "false"], max(s for _, s in rows))
            sum_lag.add_metric([cluster, group], sum(e for e, _ in rows))
        for (cluster, group, topic), total in topics.items():
            topic_sum.add_metric([cluster, group, topic], total)
        return [lag, lag_s, offset, latest, max_lag, max_lag_s, sum_lag, topic_sum]


LAG_EXPORTER = LagExporterNames()
REGISTRY.register(LAG_EXPORTER)


def publish(
    projection: str, topic: str, partition: int, lag: PartitionLag, applied: int = 0, member: Member | None = None
) -> None:
    """Set the lag gauges of one partition of a projection (and, for a consumer group's ``member``, the values of
    kafka-lag-exporter's names)."""
    labels = (projection, topic, str(partition))
    events, seconds = lag.events, lag.seconds()
    LAG_EVENTS.labels(*labels).set(events)
    LAG_SECONDS.labels(*labels).set(seconds)
    LOG_END.labels(*labels).set(lag.log_end)
    POSITION.labels(*labels).set(lag.next_offset)
    if applied:
        APPLIED.labels(*labels).inc(applied)
    if member is not None:
        LAG_EXPORTER.values[(member.group, topic, partition)] = (member, events, seconds, lag.next_offset, lag.log_end)
