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


def test_the_events_do_not_depend_on_the_decimal_context_that_other_code_left_behind() -> None:
    # ccxt's decimal_to_precision sets the caller's context to ROUND_HALF_UP whenever it rounds an amount: an engine
    # trading through ccxt computed other PnL digits than a replay in a fresh process, until the core computed
    # under its own context (events.arithmetic)
    import decimal

    from ccxt.base import decimal_to_precision as dtp

    dtp.decimal_to_precision("1.05", dtp.ROUND, 1)
    assert decimal.getcontext().rounding == decimal.ROUND_HALF_UP  # what ccxt leaves behind
    try:
        assert output("ma_cross-limit-short") == read("ma_cross-limit-short")
    finally:
        decimal.setcontext(decimal.DefaultContext.copy())
