"""The built-in strategies produce, on the real trades file, byte for byte the events that the code of their time
wrote (tests/data/golden, see tests/golden): a log written before still replays equal."""

from __future__ import annotations

import pytest

from tests.golden.cases import CASES, output, read


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_built_in_strategy_reproduces_its_golden_events(case: str) -> None:
    golden, now = read(case), output(case)
    first = next((i for i, (a, b) in enumerate(zip(golden, now, strict=False)) if a != b), None)
    assert first is None, f"event {first} differs:\n golden {golden[first]!r}\n now    {now[first]!r}"
    assert len(now) == len(golden)
