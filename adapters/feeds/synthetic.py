"""A seeded random-walk trade feed: the same seed gives the same prices, sides and sizes."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from events import Side, TickReceived


@dataclass
class SyntheticFeed:
    instruments: Sequence[str]
    start_prices: Sequence[Decimal]
    tick_sizes: Sequence[Decimal]
    seed: int = 7
    ticks_per_second: float = 20.0
    volatility_bps: Decimal = Decimal(5)
    limit: int | None = None  # stop after this many ticks (None: forever)
    paced: bool = True
    source: str = "feed:synthetic"
    venue: str = "synthetic"

    def _steps(self) -> AsyncIterator[tuple[str, Decimal, Decimal, Side]]:
        rng = random.Random(self.seed)
        prices = list(self.start_prices)
        scale = self.volatility_bps / Decimal(10_000)
        qty_unit = Decimal("0.0001")

        async def gen() -> AsyncIterator[tuple[str, Decimal, Decimal, Side]]:
            i = 0
            while True:
                k = i % len(self.instruments)
                move = Decimal(repr(round(rng.gauss(0.0, 1.0), 6))) * scale
                p = (prices[k] * (1 + move)).quantize(self.tick_sizes[k], rounding=ROUND_HALF_EVEN)
                prices[k] = max(p, self.tick_sizes[k])
                qty = (Decimal(rng.randint(1, 5000)) * qty_unit).normalize()
                side = Side.BUY if rng.random() < 0.5 else Side.SELL
                yield self.instruments[k], prices[k], qty, side
                i += 1

        return gen()

    async def ticks(self) -> AsyncIterator[tuple[int, TickReceived]]:
        interval = 1.0 / self.ticks_per_second if self.paced else 0.0
        next_at = time.monotonic()
        n = 0
        # a tick's id is derived from its trade id: each run's trades are trades of their own (a second run with the
        # same seed prints the same prices, at other times), so the run's start is part of the id
        run = time.time_ns() // 1_000_000
        async for instrument, price, qty, side in self._steps():
            if self.limit is not None and n >= self.limit:
                return
            if interval:
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif n % 1000 == 0:
                await asyncio.sleep(0)
            n += 1
            yield (
                time.time_ns(),
                TickReceived(
                    instrument=instrument,
                    venue=self.venue,
                    trade_id=f"syn-{self.seed}-{run}-{n}",
                    price=price,
                    quantity=qty,
                    side=side,
                ),
            )
