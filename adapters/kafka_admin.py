"""Topics and consumer groups by name prefix, and a group's offsets: what ``backtest list`` and ``drop`` need of the
cluster, and what a test checks of it."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import NonEmptyGroup, for_code
from aiokafka.protocol.admin import DeleteGroupsRequest

from adapters.kafka_security import client_args


async def names_with_prefix(bootstrap: str, prefix: str) -> tuple[list[str], list[str]]:
    """The topics and the consumer groups whose names start with ``prefix``."""
    admin = AIOKafkaAdminClient(**client_args(bootstrap), client_id="engine-admin")
    await admin.start()
    try:
        topics = sorted(t for t in await admin.list_topics() if t.startswith(prefix))
        groups = sorted(g[0] for g in await admin.list_consumer_groups() if g[0].startswith(prefix))
    finally:
        await admin.close()
    return topics, groups


async def committed_offsets(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    """The consumer group's committed offsets: (topic, partition) -> offset."""
    admin = AIOKafkaAdminClient(**client_args(bootstrap), client_id="engine-admin")
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}


class GroupInUse(Exception):
    """A consumer group to delete still has members after the wait: something is running, or a killed member's
    session has not ended yet."""


async def delete(bootstrap: str, topics: list[str], groups: list[str], *, wait: float = 60.0) -> None:
    """Delete these consumer groups, then these topics. A group with members is retried every second for ``wait``
    seconds (a member killed with kill -9 stays until its session times out), then :class:`GroupInUse`."""
    admin = AIOKafkaAdminClient(**client_args(bootstrap), client_id="engine-admin")
    await admin.start()
    try:
        if groups:
            deadline = time.monotonic() + wait
            left = list(groups)
            while left:
                left = await _delete_groups(admin, left)
                if left and time.monotonic() >= deadline:
                    raise GroupInUse(
                        f"consumer group {', '.join(left)} still has members after {wait:.0f} s: is the run still "
                        "going? (a killed one's session ends within a minute)"
                    )
                if left:
                    await asyncio.sleep(1.0)
        if topics:
            await admin.delete_topics(topics)
    finally:
        await admin.close()


async def _delete_groups(admin: AIOKafkaAdminClient, groups: list[str]) -> list[str]:
    """Kafka's DeleteGroups, sent to each group's coordinator (aiokafka 0.14's admin client has no method for it);
    the groups not deleted because they have members."""
    by_node: dict[int, list[str]] = defaultdict(list)
    busy: list[str] = []
    for group in groups:
        by_node[await admin.find_coordinator(group)].append(group)
    for node, names in by_node.items():
        response = await admin._send_request(DeleteGroupsRequest(names), node)  # private: see the docstring
        for name, code in response.results:
            if code == NonEmptyGroup.errno:
                busy.append(name)
            elif code:
                raise for_code(code)(f"deleting consumer group {name}")
    return busy
