"""The one decimal context in which money is computed: the same in every process, whatever else ran there.

Python's decimal context is global to a thread (and an asyncio task), and libraries change it: ccxt's
``decimal_to_precision`` sets the caller's context to ROUND_HALF_UP whenever it rounds an amount. An engine that
talks to a live venue would then compute a position's PnL with other rounding than a replay in a fresh process,
and the replay would not be equal byte for byte. So the core and the projections fold under :data:`CONTEXT`,
never under whatever context the process happens to hold: the projections' batches in ``with exact():`` (a copy,
restored after), the core's inputs after :func:`ensure_exact` (cheaper, on the hot path: it makes the caller's context
a fresh copy of :data:`CONTEXT` whenever it is not that copy as made, which the engine's processes own; code that
wants another context takes it with ``decimal.localcontext``, as the ccxt adapter does).
"""

from __future__ import annotations

import decimal
from contextlib import AbstractContextManager

CONTEXT = decimal.Context(
    prec=28,
    rounding=decimal.ROUND_HALF_EVEN,
    Emin=-999_999,
    Emax=999_999,
    capitals=1,
    clamp=0,
    flags=[],
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)


def exact() -> AbstractContextManager[decimal.Context]:
    """``with exact():`` computes under :data:`CONTEXT` (a copy: nothing done inside leaks out)."""
    return decimal.localcontext(CONTEXT)


_OURS: list[decimal.Context] = []  # the copy that ensure_exact made current (per thread and task: a contextvar)
_HALF_EVEN = decimal.ROUND_HALF_EVEN
_UNDERFLOW = decimal.Underflow
_getcontext = decimal.getcontext


def ensure_exact() -> None:
    """Make the current context :data:`CONTEXT` (a copy) unless it is that copy, unchanged (prec, rounding, the
    exponent limits and the Underflow trap are what other code is seen to change)."""
    ctx = _getcontext()
    if (
        _OURS
        and ctx is _OURS[0]
        and ctx.rounding == _HALF_EVEN
        and ctx.prec == 28
        and ctx.Emax == 999_999
        and ctx.Emin == -999_999
        and not ctx.traps[_UNDERFLOW]
    ):
        return
    ours = CONTEXT.copy()
    decimal.setcontext(ours)
    _OURS[:] = [ours]
