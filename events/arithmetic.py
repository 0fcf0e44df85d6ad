"""The one decimal context in which money is computed: the same in every process, whatever else ran there.

Python's decimal context is global to a thread (and an asyncio task), and libraries change it: ccxt's
``decimal_to_precision`` sets the caller's context to ROUND_HALF_UP whenever it rounds an amount. An engine that
talks to a live venue would then compute a position's PnL with other rounding than a replay in a fresh process,
and the replay would not be equal byte for byte. So the core and the projections fold under :data:`CONTEXT`
(``with exact():``), never under whatever context the process happens to hold.
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
