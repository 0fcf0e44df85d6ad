"""How much of the machine's CPU time the hypervisor took during a measurement ("steal", from /proc/stat).

On a shared VM the same code runs at very different speeds from minute to minute; the share of time stolen by
other guests is the usual reason, and printing it beside a figure lets a reader judge the figure.
"""

from __future__ import annotations

from pathlib import Path

_STAT = Path("/proc/stat")


def _cpu_times() -> list[int] | None:
    """The machine's CPU times (user, nice, system, idle, iowait, irq, softirq, steal), in clock ticks."""
    try:
        first = _STAT.read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if first[0] != "cpu" or len(first) < 9:
        return None
    return [int(v) for v in first[1:9]]


class Steal:
    """``with Steal() as s: ...`` then ``str(s)``: the stolen share of the machine's CPU time in the block."""

    def __enter__(self) -> Steal:
        self._start = _cpu_times()
        self._end: list[int] | None = None
        return self

    def __exit__(self, *exc: object) -> None:
        self._end = _cpu_times()

    @property
    def share(self) -> float | None:
        if self._start is None or self._end is None:
            return None
        delta = [b - a for a, b in zip(self._start, self._end, strict=True)]
        total = sum(delta)
        return delta[7] / total if total else None

    def __str__(self) -> str:
        share = self.share
        return (
            "hypervisor steal: unknown (no /proc/stat)"
            if share is None
            else f"hypervisor steal: {share:.0%} of the machine's CPU time"
        )
