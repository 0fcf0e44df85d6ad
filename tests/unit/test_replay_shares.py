"""How a replay shares the log among processes: by partition number, balanced by records, and how many it uses
by default."""

from __future__ import annotations

from aiokafka import TopicPartition

from projections.replay import _split, auto_workers


def test_auto_uses_a_process_per_core_only_for_a_log_large_enough_to_earn_its_start() -> None:
    assert auto_workers(121_552, busy_partitions=2, cpus=2) == 2
    assert auto_workers(20_000, busy_partitions=2, cpus=2) == 2
    assert auto_workers(1_000_000, busy_partitions=4, cpus=16) == 4  # no more than the partition numbers
    assert auto_workers(1_000_000, busy_partitions=4, cpus=2) == 2  # nor the cores
    assert auto_workers(19_999, busy_partitions=4, cpus=16) == 1  # one more per 10,000 events for a forked process
    assert auto_workers(9_999, busy_partitions=4, cpus=16) == 1
    assert auto_workers(99_999, busy_partitions=4, cpus=16, method="spawn") == 1  # per 50,000 for a spawned one
    assert auto_workers(100_000, busy_partitions=4, cpus=16, method="spawn") == 2
    assert auto_workers(0, busy_partitions=0, cpus=2) == 1


def test_shares_keep_a_partition_number_of_every_topic_together_balanced_by_records() -> None:
    tps = [TopicPartition(t, p) for t in ("ticks", "trading") for p in range(4)]
    start = dict.fromkeys(tps, 0)
    stop = {tp: {0: 500, 1: 100, 2: 300, 3: 0}[tp.partition] + (10 if tp.topic == "trading" else 0) for tp in tps}
    parts = _split(tps, start, stop, 2)
    numbers = [sorted({tp.partition for tp in part.tps}) for part in parts]
    assert numbers == [[0], [1, 2, 3]]  # 1,010 records, against 610 + 210 + 10
    assert all(part.stop_at == {tp: stop[tp] for tp in part.tps} for part in parts)
