"""The dashboard's history kept by the server: samples as columns, rates between them, a bounded window."""

from __future__ import annotations

from typing import Any

from engine.status import LagHistory


def _snapshot(t: float, audit: tuple[int, float, int] | None, log_end: int) -> dict[str, Any]:
    projections = {}
    if audit is not None:
        events, seconds, applied = audit
        projections["audit"] = {
            "lag_events": events,
            "lag_seconds": seconds,
            "applied": applied,
            "partitions": [{"log_end": log_end - 5}, {"log_end": 5}],
        }
    return {"time": t, "projections": projections}


def test_samples_become_columns_with_rates_and_gaps() -> None:
    h = LagHistory(board=None, interval=1.0, keep=60)  # type: ignore[arg-type]
    h.add(_snapshot(100.0, None, 0))  # before the projection ran
    h.add(_snapshot(101.0, (4, 0.5, 10), 14))
    h.add(_snapshot(102.0, (0, 0.0, 30), 30))
    h.add(_snapshot(104.0, (2, 0.1, 70), 72))
    c = h.columns()
    assert c["t"] == [100.0, 101.0, 102.0, 104.0]
    audit = c["projections"]["audit"]
    assert audit["lag_events"] == [None, 4, 0, 2]
    assert audit["lag_seconds"] == [None, 0.5, 0.0, 0.1]
    assert audit["applied_per_second"] == [None, None, 20.0, 20.0]  # per second between samples, 2 s apart last
    assert c["produced_per_second"] == [None, 14.0, 16.0, 21.0]


def test_the_window_keeps_the_last_samples_only() -> None:
    h = LagHistory(board=None, interval=1.0, keep=5)  # type: ignore[arg-type]
    for i in range(12):
        h.add(_snapshot(float(i), (i, 0.0, i * 10), i * 10))
    c = h.columns()
    assert c["t"] == [7.0, 8.0, 9.0, 10.0, 11.0]
    assert c["projections"]["audit"]["applied_per_second"][0] is None  # no sample before the window's first
