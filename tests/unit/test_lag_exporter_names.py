"""kafka-lag-exporter's names carry the very values the engine's lag gauges were set to, with its labels, and the
group's max and sum over its partitions (docs/metrics.md, "The same lag under kafka-lag-exporter's names")."""

from __future__ import annotations

from prometheus_client import REGISTRY

from projections.lag import LAG_EXPORTER, Member, PartitionLag, publish

GROUP_LABELS = {"cluster_name", "group", "topic", "partition", "member_host", "consumer_id", "client_id"}


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_the_exporter_names_equal_the_engines_gauges_per_partition_and_aggregate_per_group() -> None:
    joined = {"id": "m-1"}
    member = Member("kafka:9092", "t_lagx.projection.audit.s", "projection-audit", lambda: joined["id"], host="h")
    other = Member("kafka:9092", "t_lagx.projection.metrics", "projection-metrics", lambda: "m-9", host="h")
    now_ns = 2_000_000_000_000_000_000
    ticks, trading = "t_lagx.market.ticks", "t_lagx.trading.events"
    publish("lagx_audit", ticks, 0, PartitionLag(next_offset=10, log_end=15, last_ts_init=now_ns), member=member)
    publish("lagx_audit", ticks, 1, PartitionLag(next_offset=7, log_end=7), member=member)
    publish("lagx_audit", trading, 0, PartitionLag(next_offset=1, log_end=4, last_ts_init=now_ns), member=member)
    publish("lagx_metrics", ticks, 0, PartitionLag(next_offset=15, log_end=16), member=other)
    publish("lagx_replay", ticks, 3, PartitionLag(next_offset=1, log_end=2))  # no group: not under those names
    families = {f.name: f for f in LAG_EXPORTER.collect()}
    seen = 0
    for s in families["kafka_consumergroup_group_lag"].samples:
        if not s.labels["group"].startswith("t_lagx."):
            continue
        seen += 1
        assert set(s.labels) == GROUP_LABELS
        projection = "lagx_audit" if s.labels["group"] == member.group else "lagx_metrics"
        own = {"projection": projection, "topic": s.labels["topic"], "partition": s.labels["partition"]}
        assert s.value == value("engine_projection_lag_events", **own)
        assert value("kafka_consumergroup_group_lag_seconds", **s.labels) == value(
            "engine_projection_lag_seconds", **own
        )
        assert value("kafka_consumergroup_group_offset", **s.labels) == value("engine_projection_next_offset", **own)
        assert s.labels["member_host"] == "h" and s.labels["cluster_name"] == "kafka:9092"
    assert seen == 4
    audit = {"cluster_name": "kafka:9092", "group": member.group}
    assert value("kafka_consumergroup_group_sum_lag", **audit) == 5 + 0 + 3
    assert value("kafka_consumergroup_group_max_lag", **audit, is_simple_consumer="false") == 5
    assert value("kafka_consumergroup_group_topic_sum_lag", **audit, topic=trading) == 3
    seconds = [
        value("engine_projection_lag_seconds", projection="lagx_audit", topic=t, partition="0")
        for t in (ticks, trading)
    ]
    assert value("kafka_consumergroup_group_max_lag_seconds", **audit, is_simple_consumer="false") == max(
        s for s in seconds if s is not None
    )
    # one latest offset per partition: the two groups read the same partition of the ticks
    assert value("kafka_partition_latest_offset", cluster_name="kafka:9092", topic=ticks, partition="0") == 16
    assert value("kafka_partition_latest_offset", cluster_name="kafka:9092", topic=ticks, partition="3") is None
    # the member id is asked when scraped: after a rejoin, the next scrape shows the new one, and only it
    joined["id"] = "m-2"
    ids_now = {
        s.labels["consumer_id"]
        for f in LAG_EXPORTER.collect()
        for s in f.samples
        if f.name == "kafka_consumergroup_group_lag" and s.labels["group"] == member.group
    }
    assert ids_now == {"m-2"}
