"""What every fault scenario of the end-to-end tests must end with (test_faults.py, test_cluster.py)."""

from __future__ import annotations

from benchmarks.faults import Outcome


def assert_nothing_lost_or_doubled(o: Outcome) -> None:
    """Faults were injected, and after them no event is lost or doubled, only the planted records are parked, every
    process lived (or was stopped on purpose), and the audit equals a fresh replay of the log."""
    print(o.line())
    assert o.faults > 0, "no fault was injected"
    assert o.lost == 0, o.line()
    assert o.doubled == 0, o.line()
    assert o.dead_lettered == o.expected_dead_letters, o.line()
    assert o.all_alive, o.line()
    assert o.replay_equal is True, o.line()
