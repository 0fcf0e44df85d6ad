"""Process-side metrics: what the I/O layer did (see docs/metrics.md)."""

from __future__ import annotations

import platform
from collections.abc import Iterable
from decimal import Decimal
from importlib import metadata

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from engine import __version__


def _installed(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "none"


# Which code a process runs: 1, with the versions as labels (every process that serves /metrics imports this module
# through engine.status). ``ccxt`` is read from the installed package's metadata: importing ccxt takes a second.
BUILD_INFO = Gauge(
    "engine_build_info", "Always 1: the engine's, Python's and ccxt's versions", ["version", "python", "ccxt"]
)
BUILD_INFO.labels(__version__, platform.python_version(), _installed("ccxt")).set(1)

KAFKA_PRODUCED = Counter("engine_kafka_messages_produced", "Records acknowledged by the broker", ["topic"])
KAFKA_CONSUMED = Counter("engine_kafka_messages_consumed", "Records consumed", ["consumer"])
DEAD_LETTERED = Counter("engine_dead_lettered", "Records parked on the dead-letter topic", ["consumer"])
PG_WRITES = Counter("engine_postgres_writes", "Projection transactions committed", ["projection"])
PG_WRITE_SECONDS = Histogram(
    "engine_postgres_write_duration_seconds",
    "Duration of one projection transaction",
    ["projection"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
KAFKA_UP = Gauge("engine_kafka_up", "1 when the last Kafka call succeeded")
POSTGRES_UP = Gauge("engine_postgres_up", "1 when the last PostgreSQL call succeeded")

# Live venue adapters (ccxt, OpenAlgo) count every exchange API call here; the paper venue makes none.
EXCHANGE_REQUESTS = Counter("engine_exchange_requests", "Exchange API requests", ["venue", "endpoint"])
EXCHANGE_ERRORS = Counter("engine_exchange_errors", "Exchange API requests that failed", ["venue", "kind"])
EXCHANGE_SECONDS = Histogram(
    "engine_exchange_request_duration_seconds",
    "Exchange API request latency",
    ["venue"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
INDICATORS = Counter("engine_indicators_calculated", "Indicator values computed by strategies", ["instrument"])
# The engine's recovery of a partition it is handed, and the state snapshots that shorten it.
RECOVERY_SECONDS = Histogram(
    "engine_recovery_duration_seconds",
    "Rebuilding the state of a partition the engine was handed",
    ["start"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
)
RECOVERY_RECORDS = Counter("engine_recovery_records", "Records run through the core to rebuild state", ["start"])
SNAPSHOTS = Counter("engine_state_snapshots", "State snapshots written to engine.snapshots")

# The trading loop's live latency, observed once per order decision (OrderSubmitted, OrderRejected,
# OrderCancelRequested), never per tick, with the shell's wall clock (engine.loop): never in the core or the events.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
TICK_TO_DECISION = Histogram(
    "engine_tick_to_decision_seconds",
    "From the input record's time (ts_init, as the lag) to the trading core's return of the order decision",
    ["instrument"],
    buckets=LATENCY_BUCKETS,
)
DECISION_TO_ACK = Histogram(
    "engine_decision_to_ack_seconds",
    "From the order decision to the broker's acknowledgement of its publish",
    ["instrument"],
    buckets=LATENCY_BUCKETS,
)


class Setting(Collector):
    """A setting as a gauge without labels that has no sample until it is set: absent (not 0, not NaN) in a process
    where the setting does not apply, so a rule comparing with it yields nothing there."""

    def __init__(self, name: str, documentation: str) -> None:
        self._name, self._documentation = name, documentation
        self.value: float | None = None
        REGISTRY.register(self)

    def set(self, value: Decimal | float | None) -> None:
        self.value = None if value is None else float(value)

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(self._name, self._documentation)]

    def collect(self) -> Iterable[Metric]:
        if self.value is None:
            return []
        return [GaugeMetricFamily(self._name, self._documentation, value=self.value)]


# The daily loss limit the engine's trading loop enforces (risk.daily_loss_limit), set by `run` (engine.app); absent
# from `project` workers and from a loop that checks no limit. The DailyLossLimit alert compares with it.
DAILY_LOSS_LIMIT = Setting(
    "engine_daily_loss_limit_ratio",
    "Today's loss, as a share of start-of-day equity, at which the engine halts trading",
)
