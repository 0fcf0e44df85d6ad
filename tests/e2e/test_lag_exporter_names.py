"""`python -m engine run` on the real servers exports its projections' lag also under kafka-lag-exporter's names
and labels (docs/metrics.md): in one scrape of /metrics, every partition's kafka_consumergroup_group_lag,
_lag_seconds and _offset equal the engine's own engine_projection_lag_events, _lag_seconds and _next_offset, the
group being the projection's consumer group; kafka_partition_latest_offset is the partition's log end; the group's
max and sum are those of its partitions. The same run's latency histograms count its order decisions."""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import engine_env, start_cli, unique, wait_for

pytestmark = pytest.mark.servers

Sample = tuple[str, tuple[tuple[str, str], ...], float]


def samples(text: str) -> list[Sample]:
    return [
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def series(all_samples: list[Sample], name: str) -> list[tuple[dict[str, str], float]]:
    return [(dict(labels), value) for n, labels, value in all_samples if n == name]


async def test_lag_under_kafka_lag_exporter_names_equals_the_engines_own(servers: Any, tmp_path: Path) -> None:
    prefix, schema = unique("klag"), unique("klag")
    log = tmp_path / "engine.log"
    # a short moving-average pair, so that orders are decided within seconds
    env = engine_env(servers, prefix, schema, {"ENGINE_STRATEGY__FAST": "2", "ENGINE_STRATEGY__SLOW": "4"})
    proc = start_cli(["run", "--rate", "400"], env, log)
    groups = {"audit": f"{prefix}.projection.audit.{schema}", "metrics": f"{prefix}.projection.metrics"}
    try:
        url: list[str] = []

        async def listening() -> bool:
            m = re.search(r'"url": "(http://127\.0\.0\.1:\d+)/metrics"', log.read_text())
            if m:
                url.append(m.group(1))
            assert proc.poll() is None, log.read_text()[-3000:]
            return bool(m)

        await wait_for(listening, 60, "the HTTP server to listen")
        got: list[list[Sample]] = []
        async with aiohttp.ClientSession() as http:

            async def applied_and_decided() -> bool:
                async with http.get(f"{url[0]}/metrics") as r:
                    all_samples = samples(await r.text())
                got[:] = [all_samples]
                topics = {lb["topic"] for lb, _ in series(all_samples, "engine_projection_next_offset")}
                acked = sum(v for _, v in series(all_samples, "engine_decision_to_ack_seconds_count"))
                consumer_ids = {
                    labels["consumer_id"] for labels, _ in series(all_samples, "kafka_consumergroup_group_lag")
                }
                # both projections have their partitions of the three topics, joined their groups, and an order
                # decision was acknowledged
                return (
                    topics == {f"{prefix}.market.ticks", f"{prefix}.trading.events", f"{prefix}.engine.control"}
                    and acked > 0
                    and "" not in consumer_ids
                )

            await wait_for(applied_and_decided, 120, "both projections' lag and an acknowledged order decision")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(120)
    assert code == 0, log.read_text()[-3000:]
    (scraped,) = got

    def engine(name: str) -> dict[tuple[str, str, str], float]:
        return {(lb["projection"], lb["topic"], lb["partition"]): v for lb, v in series(scraped, name)}

    lag_events = engine("engine_projection_lag_events")
    lag_seconds = engine("engine_projection_lag_seconds")
    next_offset = engine("engine_projection_next_offset")
    log_end = engine("engine_projection_log_end_offset")
    parts = {(t, p) for _, t, p in lag_events}
    assert {(proj, t, p) for proj in groups for t, p in parts} == set(lag_events)  # both projections, all partitions
    assert sum(next_offset.values()) > 0
    by_group = {group: projection for projection, group in groups.items()}
    for name, theirs in (
        ("kafka_consumergroup_group_lag", lag_events),
        ("kafka_consumergroup_group_lag_seconds", lag_seconds),
        ("kafka_consumergroup_group_offset", next_offset),
    ):
        exported = series(scraped, name)
        mine = {
            (by_group[lb["group"]], lb["topic"], lb["partition"]): v
            for lb, v in exported
            if lb["group"] in by_group  # the scrape is this process's: only its groups
        }
        assert mine == theirs, name
        for lb, _ in exported:
            assert set(lb) == {"cluster_name", "group", "topic", "partition", "member_host", "consumer_id", "client_id"}
            assert lb["cluster_name"] == servers.kafka_bootstrap
            assert lb["client_id"] == f"projection-{by_group[lb['group']]}"
            assert lb["consumer_id"].startswith(lb["client_id"] + "-"), lb  # the member id Kafka gave it
    latest = {(lb["topic"], lb["partition"]): v for lb, v in series(scraped, "kafka_partition_latest_offset")}
    ends: dict[tuple[str, str], float] = {}
    for (_, topic, partition), v in log_end.items():
        ends[(topic, partition)] = max(ends.get((topic, partition), 0.0), v)
    assert latest == ends and set(latest) == parts
    for projection, group in groups.items():
        lags = [v for (p, _, _), v in lag_events.items() if p == projection]
        seconds = [v for (p, _, _), v in lag_seconds.items() if p == projection]
        (max_lag,) = [v for lb, v in series(scraped, "kafka_consumergroup_group_max_lag") if lb["group"] == group]
        (max_s,) = [v for lb, v in series(scraped, "kafka_consumergroup_group_max_lag_seconds") if lb["group"] == group]
        (sum_lag,) = [v for lb, v in series(scraped, "kafka_consumergroup_group_sum_lag") if lb["group"] == group]
        topic_sums = {
            lb["topic"]: v
            for lb, v in series(scraped, "kafka_consumergroup_group_topic_sum_lag")
            if lb["group"] == group
        }
        assert (max_lag, max_s, sum_lag) == (max(lags), max(seconds), sum(lags))
        assert topic_sums == {
            t: sum(v for (p, tt, _), v in lag_events.items() if p == projection and tt == t)
            for t in {t for t, _ in parts}
        }
    # the latency histograms of the same scrape: order decisions were counted, acknowledged ones no more than decided;
    # the means in seconds, not nanoseconds (the ticks the feed wrote while the engine joined its group are decided a
    # few seconds after their record time: real latency, which the histogram shows; tests/integration/
    # test_live_latency.py checks the exact counts and a tighter bound with the engine assigned before the feed)
    decided = sum(v for _, v in series(scraped, "engine_tick_to_decision_seconds_count"))
    acked = sum(v for _, v in series(scraped, "engine_decision_to_ack_seconds_count"))
    assert 0 < acked <= decided
    for name in ("engine_tick_to_decision_seconds", "engine_decision_to_ack_seconds"):
        total = sum(v for _, v in series(scraped, name + "_sum"))
        count = sum(v for _, v in series(scraped, name + "_count"))
        assert 0 < total / count < 10.0, (name, total / count)
