"""Kafka topics: names, what they hold, how they are keyed.

Every topic is keyed by instrument (the envelope's ``key``), so all events of one instrument land in
one partition and keep their order; engines and projection workers scale out as consumer groups
over the partitions. The Kafka record timestamp is the event's ``ts_event``.

=====================  ==========================================  ===========================
topic                  holds                                       retention
=====================  ==========================================  ===========================
``market.ticks``       TickReceived, written by feeds               forever (the source of truth)
``trading.events``     SignalGenerated, Order*, written by engine   forever (the source of truth)
``events.deadletter``  raw bytes of messages no one could decode,   forever
                       with headers ``dlq.reason``, ``dlq.topic``,
                       ``dlq.partition``, ``dlq.offset``, ``dlq.consumer``
=====================  ==========================================  ===========================
"""

from __future__ import annotations

from dataclasses import dataclass

from events._base import Event
from events.market import TickReceived

TICKS = "market.ticks"
TRADING = "trading.events"
DEADLETTER = "events.deadletter"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    config: dict[str, str]


def topic_specs() -> list[TopicSpec]:
    forever = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
    return [TopicSpec(TICKS, forever), TopicSpec(TRADING, forever), TopicSpec(DEADLETTER, forever)]


def topic_for(event: Event) -> str:
    """The topic an event is published to."""
    return TICKS if isinstance(event, TickReceived) else TRADING
