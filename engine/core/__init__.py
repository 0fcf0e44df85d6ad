"""The pure core: events in, events out; no I/O, no clock, no asyncio.

Everything that decides what the engine trades is here, and only here; the shell (``engine/loop.py``,
``engine/execution.py``, ``engine/app.py``) moves records between Kafka and these functions. The import contracts in
``pyproject.toml`` (``lint-imports``) keep it so: the core imports nothing of ours but :mod:`events`.

Modules, from the tick inwards:

- :mod:`engine.core.trading`: :class:`TradingCore`, the per-partition pipeline (venue, trader, strategy, risk);
- :mod:`engine.core.trader`: one instrument's decision, a fold of ticks and order events;
- :mod:`engine.core.strategies`: the strategies, ``(state, tick) -> (state, signal | None)``;
- :mod:`engine.core.risk`: the pre-trade checks; :mod:`engine.core.orders`: the order state machine;
- :mod:`engine.core.portfolio`, :mod:`engine.core.roundtrips`, :mod:`engine.core.account`: positions, round trips,
  balances;
- :mod:`engine.core.breaker`, :mod:`engine.core.daily_loss`: halts and the daily loss limit;
- :mod:`engine.core.control`: what the loop does with a control event (halt/resume switches, breaker markers,
  equity reports, daily-loss trips), as functions that return events;
- :mod:`engine.core.snapshots`: the day's snapshots; :mod:`engine.core.state_snapshot`: the recovery cache's format;
- :mod:`engine.core.dedupe`: ticks taken once; :mod:`engine.core.reconcile`: a live venue's orders against the log;
- :mod:`engine.core.ports`: the interfaces the adapters implement (simulated and live venues, the venue errors).
"""

from engine.core.trader import Trader, TraderState
from engine.core.trading import TradingCore

__all__ = ["Trader", "TraderState", "TradingCore"]
