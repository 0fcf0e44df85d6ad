"""``python -m engine shadow``: a candidate strategy on a production day, and what it would have done differently.

A shadow of day D named R reads production's ticks from the log's start to D's end (the candidate starts D as it
would have, had it run all along), runs them through the candidate on the paper venue into the topics ``sh_R.*``
and the schema ``sh_R`` (the whole pipeline, as ``run`` does: production's own topics and schema are only read),
then pairs the day's orders of both sides (:func:`compare`) and lists the differences with their causing ticks,
and each side's PnL of the day.
"""

from engine.shadow._compare import COMPARED, Changed, Comparison, Difference, Order, Tick, compare
from engine.shadow._read import DayPnl, day_orders, day_pnl, last_started
from engine.shadow._report import format_outcome
from engine.shadow._shadow import (
    PREFIX,
    NothingToShadow,
    Outcome,
    Plan,
    check_applied,
    compare_day,
    default_name,
    feed_of,
    plan,
    shadow_run,
)

__all__ = [
    "COMPARED",
    "PREFIX",
    "Changed",
    "Comparison",
    "DayPnl",
    "Difference",
    "NothingToShadow",
    "Order",
    "Outcome",
    "Plan",
    "Tick",
    "check_applied",
    "compare",
    "compare_day",
    "day_orders",
    "day_pnl",
    "default_name",
    "feed_of",
    "format_outcome",
    "last_started",
    "plan",
    "shadow_run",
]
