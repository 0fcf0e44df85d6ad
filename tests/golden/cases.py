"""Golden outputs of the built-in strategies on the real trades file, written by the code of their time.

``python -m tests.golden --write`` writes them again (only when a change of output is intended: the events a
strategy produced before must replay equal, so a changed golden file is a breaking change of the log).
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from adapters.feeds.recorded import load_trades
from engine.app import make_core_factory
from engine.config import load
from engine.core.trading import TradingCore
from events import Envelope, Side, TickReceived, encode
from tests.support import TRADES

HERE = Path(__file__).resolve().parents[1] / "data" / "golden"

# name -> settings of the engine that ran the file
CASES: dict[str, dict[str, Any]] = {
    "ma_cross-market": {
        "strategy": {"order_quantity": "100"},
        "risk": {"max_position": "300", "max_order_notional": "1"},
    },
    "ma_cross-limit-short": {
        "strategy": {"fast": 3, "slow": 8, "order_quantity": "40", "order_type": "limit", "allow_short": True},
        "risk": {"max_position": "120", "max_order_notional": "1", "max_orders_per_minute": 20},
    },
    # written by the code that introduced them (the strategy API)
    "bollinger": {
        "strategy": {"kind": "bollinger", "params": {"quantity": "100", "window": 30}},
        "risk": {"max_position": "300", "max_order_notional": "1"},
    },
    "quoting": {
        "strategy": {
            "kind": "quoting",
            "params": {
                "quantity": "50",
                "tick_size": "0.00000001",
                "max_inventory": "150",
                "spread_bps": "5",
                "requote_bps": "10",
            },
        },
        "risk": {"max_position": "300", "max_order_notional": "1"},
    },
}


def ticks(path: Path = TRADES, symbol: str = "XRP/ETH") -> Iterator[Envelope]:
    for row in load_trades(path):
        tick = TickReceived(
            instrument=symbol,
            venue="binance",
            trade_id=str(row[1]),
            price=Decimal(row[4]),
            quantity=Decimal(row[5]),
            side=Side(row[3]),
        )
        yield Envelope.of_trade(tick, ts_event=int(row[0]) * 1_000_000, ts_init=0, source="feed:recorded")


def run(make_core: Callable[[], TradingCore], envs: Iterator[Envelope] | None = None) -> list[bytes]:
    """Every event the core derives from the ticks, encoded (``ts_init`` 0: the wall clock is not the strategy's)."""
    core = make_core()
    return [encode(out) for env in (envs or ticks()) for out in core.on_input(env, ts_init=0)]


def output(case: str) -> list[bytes]:
    return run(make_core_factory(load(**CASES[case])))


def path(case: str) -> Path:
    return HERE / f"{case}.jsonl.gz"


def read(case: str) -> list[bytes]:
    with gzip.open(path(case), "rb") as fh:
        return fh.read().splitlines()


def write(case: str) -> int:
    lines = output(case)
    with gzip.GzipFile(path(case), "wb", mtime=0) as fh:
        fh.write(b"\n".join(lines))
    return len(lines)
