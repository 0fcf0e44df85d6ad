"""Upcasters: read old schema versions of an event as the current one.

The log is immutable, so an event written as ``OrderFilled`` v1 stays v1 forever. When a
payload changes, bump the class's ``VERSION`` and register a function here that turns the
v(N) payload dict into the v(N+1) one::

    @upcaster("OrderFilled", 1)
    def _order_filled_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "liquidity": "taker"}

The codec applies them in a chain when decoding, so projections and the engine only ever see
the current version.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]
Downcaster = Callable[[Payload], Payload | None]

UPCASTERS: dict[tuple[str, int], Upcaster] = {}
DOWNCASTERS: dict[str, tuple[int, Downcaster, tuple[str, ...]]] = {}
"""The writer's side of some upcasters: an event that holds nothing its current version added is written in the
older shape (``type -> (older version, payload -> older payload or None, the fields the newer version added)``),
so that a log which does not use the
new field stays byte for byte what the older code wrote; readers upcast it as any old record."""


def upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register ``fn`` as the step from ``from_version`` to ``from_version + 1``."""

    def register(fn: Upcaster) -> Upcaster:
        key = (event_type, from_version)
        if key in UPCASTERS:
            raise ValueError(f"an upcaster for {event_type} v{from_version} is already registered")
        UPCASTERS[key] = fn
        return fn

    return register


def upcast(event_type: str, version: int, current: int, data: Payload) -> Payload:
    """Apply the chain ``version -> current``; raise LookupError where a step is missing."""
    while version < current:
        step = UPCASTERS.get((event_type, version))
        if step is None:
            raise LookupError(f"no upcaster from {event_type} v{version} to v{version + 1}")
        data = step(data)
        version += 1
    return data


def _add_empty_raw(data: Payload) -> Payload:
    return {**data, "raw": ""}


# v2 of the venue reports added ``raw`` (the venue's response); v1 events came from the paper venue only.
for _type in ("OrderAccepted", "OrderRejected", "OrderFilled", "OrderCancelled"):
    upcaster(_type, 1)(_add_empty_raw)


# v2 of OpenOrderSnapshot added ``trade_ids``, which v1 did not record (None: unknown, not "no fills")
@upcaster("OpenOrderSnapshot", 1)
def _open_order_snapshot_v1_v2(data: Payload) -> Payload:
    return {**data, "trade_ids": None}


# v2 of the day snapshots added ``strategy`` (an engine may run several). An engine that runs one writes "" and the
# v1 shape; a v1 snapshot is the position of the instrument's only strategy.
def _add_no_strategy(data: Payload) -> Payload:
    return {"strategy": "", **data}


def _v1_if_no_strategy(data: Payload) -> Payload | None:
    if data.get("strategy") != "":
        return None
    return {k: v for k, v in data.items() if k != "strategy"}


for _type in ("PositionSnapshot", "BalanceSnapshot"):
    upcaster(_type, 1)(_add_no_strategy)
    DOWNCASTERS[_type] = (1, _v1_if_no_strategy, ("strategy",))


# v2 of OrderSubmitted added ``trigger_price`` (a venue-native stop's). An order without one (every order but a native
# stop) is written in the v1 shape; a v1 order had none.
@upcaster("OrderSubmitted", 1)
def _order_submitted_v1_v2(data: Payload) -> Payload:
    return {"trigger_price": None, **data}


def _v1_if_no_trigger(data: Payload) -> Payload | None:
    if data.get("trigger_price") is not None:
        return None
    return {k: v for k, v in data.items() if k != "trigger_price"}


DOWNCASTERS["OrderSubmitted"] = (1, _v1_if_no_trigger, ("trigger_price",))


# v3 of OpenOrderSnapshot added ``trigger_price`` likewise: written in the v2 shape when it has none
@upcaster("OpenOrderSnapshot", 2)
def _open_order_snapshot_v2_v3(data: Payload) -> Payload:
    return {"trigger_price": None, **data}


DOWNCASTERS["OpenOrderSnapshot"] = (2, _v1_if_no_trigger, ("trigger_price",))
