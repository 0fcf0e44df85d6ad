"""A sweep: ``--param fast=5,10,20 --param slow=30,60`` is one backtest per combination, each a process of its own
(``python -m engine backtest ... --run <name>_<n>``), at most ``jobs`` at a time; then a table of their totals."""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

ASCENDING = frozenset({"fees", "max_drawdown", "max_drawdown_seconds", "rejected"})
"""Figures where less is better: a sweep sorted by one of them lists the smallest first; by any other, the largest."""


def split_params(pairs: Sequence[str]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """``name=value`` pairs as the fixed ones and the swept ones (a value with commas: one run per value)."""
    fixed, swept = [], []
    for pair in pairs:
        key, sep, val = pair.partition("=")
        if sep and "," in val:
            values = [v.strip() for v in val.split(",")]
            if any(not v for v in values):
                raise ValueError(f"--param {pair!r}: an empty value in the list")
            swept.append((key.strip(), values))
        else:
            fixed.append(pair)
    return fixed, swept


def combinations(swept: list[tuple[str, list[str]]]) -> list[list[str]]:
    """Every combination of the swept values, as ``name=value`` pairs, in the order given."""
    names = [k for k, _ in swept]
    return [
        [f"{k}={v}" for k, v in zip(names, values, strict=True)] for values in itertools.product(*(v for _, v in swept))
    ]


@dataclass(frozen=True, slots=True)
class Outcome:
    run: str
    params: list[str]
    exit_code: int
    error: str  # the child's last line on stderr when it failed


async def run_all(base: list[str], runs: list[tuple[str, list[str]]], jobs: int) -> list[Outcome]:
    """Each run as ``python -m engine backtest <base> --run NAME --param ...``, ``jobs`` at a time."""
    gate = asyncio.Semaphore(jobs)
    done = 0

    async def one(name: str, params: list[str]) -> Outcome:
        nonlocal done
        async with gate:
            args = [*base, "--run", name, *itertools.chain.from_iterable(("--param", p) for p in params)]
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "engine",
                "backtest",
                *args,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await proc.communicate()
        done += 1
        lines = [line for line in err.decode(errors="replace").splitlines() if line.startswith("error:")]
        code = proc.returncode if proc.returncode is not None else 1
        print(
            f"  [{done}/{len(runs)}] {name} ({' '.join(params)}): {'done' if code == 0 else 'FAILED'}",
            file=sys.stderr,
            flush=True,
        )
        return Outcome(name, params, code, lines[-1] if lines else (f"exit code {code}" if code else ""))

    return list(await asyncio.gather(*(one(n, p) for n, p in runs)))


def sort_key(figure: str, row: dict[str, Any] | None) -> tuple[int, Decimal]:
    """Best first by ``figure``; runs without the figure (failed, or null) last."""
    v = None if row is None else row.get(figure)
    if v is None or isinstance(v, bool):
        return (1, Decimal(0))
    d = Decimal(v)
    return (0, d if figure in ASCENDING else -d)
