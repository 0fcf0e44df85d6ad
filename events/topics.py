"""Kafka topics: names, what they hold, how they are keyed.

Every topic is keyed by instrument (the envelope's ``key``), so all events of one instrument land in
one partition and keep their order; engines and projection workers scale out as consumer groups
over the partitions. The Kafka record timestamp is the event's ``ts_event``.

=====================  ==========================================  ===========================
topic                  holds                                       retention
=====================  ==========================================  ===========================
``market.ticks``       the engine's input, per instrument in one    forever (the source of truth)
                       order: TickReceived (feeds) and the reports
                       of live venues (OrderAccepted/Rejected/
                       Filled/Cancelled/Expired, written by the
                       execution service), so every decision is a
                       function of this one ordered log
``trading.events``     SignalGenerated, Order*, written by engine   forever (the source of truth)
``engine.control``     EngineStarted/Stopped, FeedStopped,          forever
                       TradingHalted/Resumed, reconciliation and
                       connection events, EquityReported (the
                       daily loss limit), keyed by engine id or
                       instrument (FeedStopped: by the feed);
                       AlertNotified (Alertmanager's, through the
                       webhook), keyed ``alertmanager``
``events.deadletter``  raw bytes of messages no one could decode,   forever
                       with headers ``dlq.reason``, ``dlq.topic``,
                       ``dlq.partition``, ``dlq.offset``, ``dlq.consumer``
``engine.snapshots``   the engine's state per ticks partition at    compacted: the latest
                       an offset (engine.state_snapshot), in the    per partition (a cache,
                       same partition number: a recovery cache      never the truth)
=====================  ==========================================  ===========================
"""

from __future__ import annotations

from dataclasses import dataclass

from events._base import Event
from events.control import (
    AlertNotified,
    BalanceReconciled,
    BreakerApplied,
    ConnectionChanged,
    EngineStarted,
    EngineStopped,
    EquityReported,
    FeedStopped,
    ReconciliationDifference,
    TradingHalted,
    TradingResumed,
)
from events.market import TickReceived

TICKS = "market.ticks"
TRADING = "trading.events"
DEADLETTER = "events.deadletter"
CONTROL = "engine.control"
SNAPSHOTS = "engine.snapshots"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    config: dict[str, str]


_FOREVER = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
# a cache: the latest snapshot per key is kept (compaction, soon after an hour's segment is closed)
_LATEST = {"cleanup.policy": "compact", "segment.ms": "3600000", "min.cleanable.dirty.ratio": "0.1"}


_CONTROL = (
    EngineStarted,
    EngineStopped,
    FeedStopped,
    TradingHalted,
    TradingResumed,
    ReconciliationDifference,
    BalanceReconciled,
    ConnectionChanged,
    EquityReported,
    BreakerApplied,
    AlertNotified,
)


@dataclass(frozen=True)
class Topics:
    """The topic names of one deployment: ``prefix`` lets several share a cluster (and tests isolate)."""

    prefix: str = ""

    @property
    def ticks(self) -> str:
        return self.prefix + TICKS

    @property
    def trading(self) -> str:
        return self.prefix + TRADING

    @property
    def control(self) -> str:
        return self.prefix + CONTROL

    @property
    def deadletter(self) -> str:
        return self.prefix + DEADLETTER

    @property
    def snapshots(self) -> str:
        return self.prefix + SNAPSHOTS

    def for_event(self, event: Event) -> str:
        """The topic an event is published to (a live venue's reports are sent to ``ticks`` explicitly)."""
        if isinstance(event, TickReceived):
            return self.ticks
        if isinstance(event, _CONTROL):
            return self.control
        return self.trading

    def specs(self) -> list[TopicSpec]:
        return [
            TopicSpec(self.ticks, _FOREVER),
            TopicSpec(self.trading, _FOREVER),
            TopicSpec(self.control, _FOREVER),
            TopicSpec(self.deadletter, _FOREVER),
            TopicSpec(self.snapshots, _LATEST),
        ]

    def group(self, name: str) -> str:
        """A consumer group id within this deployment."""
        return self.prefix + name
