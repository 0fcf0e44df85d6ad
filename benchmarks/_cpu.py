"""CPU time a measurement cost the whole local stack: this process and its children, PostgreSQL, Kafka.

Events per second on a shared VM follow the other guests (see :mod:`benchmarks._steal`); the CPU time the work
took moves much less, as time stolen by the hypervisor is not counted in it. Printed beside a rate, it says
what the rate could be on uncontended cores: a stack that needs 35 µs of CPU per event cannot fold more than
57,000 events/s on two cores, however the work is shared.

PostgreSQL and Kafka are found by their processes on this machine (the local stack); elsewhere (containers) their
share is unknown. A PostgreSQL backend that exits is counted in its parent's figures for waited-for children.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

_PROC = Path("/proc")
_HZ = os.sysconf("SC_CLK_TCK")


def _servers() -> tuple[float, float] | None:
    """CPU seconds used so far by the PostgreSQL processes (with their exited children) and the Kafka broker."""
    pg = kafka = 0.0
    seen = False
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        own, children = int(stat[11]) + int(stat[12]), int(stat[13]) + int(stat[14])
        if b"kafka" in cmd and b"java" in cmd:
            kafka += own / _HZ
            seen = True
        elif cmd.split(b"\0", 1)[0].rsplit(b"/", 1)[-1].startswith(b"postgres"):  # the server, "postgres: ..."
            pg += (own + children) / _HZ
            seen = True
    return (pg, kafka) if seen else None


def _own() -> float:
    """CPU seconds of this process and of its children that have ended (the replay's spawned workers)."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


class StackCpu:
    """``with StackCpu() as cpu: ...`` then ``cpu.report(events)``."""

    def __enter__(self) -> StackCpu:
        self._own, self._servers = _own(), _servers()
        self._end: tuple[float, tuple[float, float] | None] | None = None
        return self

    def __exit__(self, *exc: object) -> None:
        self._end = (_own(), _servers())

    def report(self, events: int) -> str:
        assert self._end is not None, "report() after the block"
        own = self._end[0] - self._own
        start, end = self._servers, self._end[1]
        if start is None or end is None or not events:
            return f"CPU: this process and its workers {own:.2f} s; PostgreSQL and Kafka: unknown (not local)"
        pg, kafka = end[0] - start[0], end[1] - start[1]
        per_event = (own + pg + kafka) / events
        cores = os.cpu_count() or 1
        return (
            f"CPU: this process and its workers {own:.2f} s, PostgreSQL {pg:.2f} s, Kafka {kafka:.2f} s = "
            f"{per_event * 1e6:.1f} µs an event (the rate if all {cores} cores did nothing else: "
            f"{cores / per_event:,.0f} events/s)"
        )
