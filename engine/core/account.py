"""The paper account: balances, equity, today's PnL and drawdown, folded from fills and prices (pure).

Balances start from the venue's configured starting balances (recorded in the log by EngineStarted) and
move with every fill: base +/- quantity, quote -/+ quantity x price, fee currency - fee. Equity is
counted per quote currency: that currency's balance plus the base balances of the instruments quoted in
it, valued at their last price. Today's PnL compares equity with its value at the first event of the
UTC day; the drawdown is the largest fall of equity from its running peak, as a share of the peak.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from events import OrderFilled

ZERO = Decimal(0)


def currencies(instrument: str) -> tuple[str, str]:
    base, _, quote = instrument.partition("/")
    return base, quote or "QUOTE"


def fill_deltas(f: OrderFilled) -> dict[str, Decimal]:
    """What one fill moves, per currency: base +/- quantity, quote -/+ quantity x price, fee currency - fee."""
    base, quote = currencies(f.instrument)
    sign = f.side.sign
    deltas = {base: sign * f.quantity, quote: -sign * f.quantity * f.price}
    deltas[f.fee_currency] = deltas.get(f.fee_currency, ZERO) - f.fee
    return deltas


def add_deltas(flows: dict[str, Decimal], f: OrderFilled) -> dict[str, Decimal]:
    out = dict(flows)
    for cur, d in fill_deltas(f).items():
        out[cur] = out.get(cur, ZERO) + d
    return out


@dataclass
class Account:
    balances: dict[str, Decimal] = field(default_factory=dict)
    last_price: dict[str, Decimal] = field(default_factory=dict)
    day: str | None = None
    start_of_day: dict[str, Decimal] = field(default_factory=dict)
    peak: dict[str, Decimal] = field(default_factory=dict)
    max_drawdown: dict[str, Decimal] = field(default_factory=dict)

    def fund(self, starting: dict[str, Decimal]) -> None:
        """Starting balances (only currencies not yet seen: a restart does not fund twice)."""
        for cur, amount in starting.items():
            self.balances.setdefault(cur, amount)

    def on_fill(self, f: OrderFilled) -> None:
        self.balances = add_deltas(self.balances, f)

    def on_price(self, instrument: str, price: Decimal) -> None:
        self.last_price[instrument] = price

    def equity(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for instrument, price in self.last_price.items():
            base, quote = currencies(instrument)
            out.setdefault(quote, self.balances.get(quote, ZERO))
            out[quote] += self.balances.get(base, ZERO) * price
        return out

    def mark(self, day: str) -> dict[str, Decimal]:
        """Update start-of-day equity, peaks and drawdowns at a moment of ``day``; return the equity."""
        eq = self.equity()
        if day != self.day:
            self.day = day
            self.start_of_day = dict(eq)
        for cur, value in eq.items():
            self.start_of_day.setdefault(cur, value)
            peak = max(self.peak.get(cur, value), value)
            self.peak[cur] = peak
            if peak > 0:
                self.max_drawdown[cur] = max(self.max_drawdown.get(cur, ZERO), (peak - value) / peak)
        return eq

    def daily_pnl_ratio(self, currency: str, equity: Decimal) -> Decimal | None:
        start = self.start_of_day.get(currency)
        return (equity - start) / start if start else None
