"""Topics and consumer groups by name prefix, and a group's offsets: what ``backtest list`` and ``drop`` need of the
cluster, and what a test checks of it."""

from __future__ import annotations

from collections import defaultdict

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import for_code
from aiokafka.protocol.admin import DeleteGroupsRequest


async def names_with_prefix(bootstrap: str, prefix: str) -> tuple[list[str], list[str]]:
    """The topics and the consumer groups whose names start with ``prefix``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="engine-admin")
    await admin.start()
    try:
        topics = sorted(t for t in await admin.list_topics() if t.startswith(prefix))
        groups = sorted(g[0] for g in await admin.list_consumer_groups() if g[0].startswith(prefix))
    finally:
        await admin.close()
    return topics, groups


async def committed_offsets(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    """The consumer group's committed offsets: (topic, partition) -> offset."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="engine-admin")
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}


async def delete(bootstrap: str, topics: list[str], groups: list[str]) -> None:
    """Delete these consumer groups, then these topics (a group with a live member cannot be deleted: an error)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="engine-admin")
    await admin.start()
    try:
        if groups:
            await _delete_groups(admin, groups)
        if topics:
            await admin.delete_topics(topics)
    finally:
        await admin.close()


async def _delete_groups(admin: AIOKafkaAdminClient, groups: list[str]) -> None:
    """Kafka's DeleteGroups, sent to each group's coordinator (aiokafka 0.14's admin client has no method for it)."""
    by_node: dict[int, list[str]] = defaultdict(list)
    for group in groups:
        by_node[await admin.find_coordinator(group)].append(group)
    for node, names in by_node.items():
        response = await admin._send_request(DeleteGroupsRequest(names), node)  # private: see the docstring
        for name, code in response.results:
            if code:
                raise for_code(code)(f"deleting consumer group {name}")
