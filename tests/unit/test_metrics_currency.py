"""The metrics projection's money carries its currency, and a round trip's PnL goes to the wins' or the losses'
histogram as a non-negative observation (docs/metrics.md: a classic histogram's _sum must only grow)."""

from __future__ import annotations

from decimal import Decimal as D

from prometheus_client import REGISTRY

from events import Envelope, Liquidity, OrderFilled, OrderSubmitted, OrderType, Side, TickReceived, Topics
from projections.metrics import MetricsProjection
from projections.runner import Record

T0 = 1_760_000_000_000_000_000
WIN, LOSS = "CUA/CUQ", "CUB/CUE"  # instruments of this test only: the gauges are the process's


def submitted(instrument: str, coid: str, side: Side, strategy: str = "s") -> OrderSubmitted:
    return OrderSubmitted(
        instrument=instrument,
        client_order_id=coid,
        strategy=strategy,
        side=side,
        order_type=OrderType.MARKET,
        quantity=D(1),
    )


def filled(instrument: str, coid: str, side: Side, price: str, fee: str, fee_currency: str) -> OrderFilled:
    return OrderFilled(
        instrument=instrument,
        client_order_id=coid,
        venue="paper",
        venue_order_id=coid,
        trade_id=coid,
        side=side,
        quantity=D(1),
        price=D(price),
        fee=D(fee),
        fee_currency=fee_currency,
        liquidity=Liquidity.TAKER,
        cumulative_quantity=D(1),
        leaves_quantity=D(0),
    )


def tick(instrument: str, price: str, n: int) -> TickReceived:
    return TickReceived(
        instrument=instrument, price=D(price), quantity=D("0.5"), trade_id=f"m{n}", side=Side.BUY, venue="paper"
    )


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_money_carries_its_currency_and_losses_are_observed_as_positive_amounts() -> None:
    topics = Topics()
    events = [
        (topics.ticks, tick(WIN, "100", 1)),
        (topics.trading, submitted(WIN, "cu-w1", Side.BUY)),
        (topics.trading, filled(WIN, "cu-w1", Side.BUY, "100", "0.1", "CUQ")),
        (topics.trading, submitted(WIN, "cu-w2", Side.SELL)),
        (topics.trading, filled(WIN, "cu-w2", Side.SELL, "110", "0.1", "CUF")),  # a fee in a third currency
        (topics.ticks, tick(LOSS, "100", 2)),
        (topics.trading, submitted(LOSS, "cu-l1", Side.BUY)),
        (topics.trading, filled(LOSS, "cu-l1", Side.BUY, "100", "0", "CUE")),
        (topics.trading, submitted(LOSS, "cu-l2", Side.SELL)),
        (topics.trading, filled(LOSS, "cu-l2", Side.SELL, "90", "0", "CUE")),
    ]
    records = [
        Record(topic, 0, i, Envelope.new(ev, ts_event=T0 + i, ts_init=T0 + i, source="test", key=ev.instrument))
        for i, (topic, ev) in enumerate(events)
    ]
    projection = MetricsProjection(topics)
    await projection.apply(None, records)
    assert not projection.refused

    assert sample("engine_last_price", instrument=WIN, currency="CUQ") == 100
    assert sample("engine_traded_volume_total", instrument=WIN, currency="CUA") == 0.5
    assert sample("engine_position", instrument=WIN, strategy="s", currency="CUA") == 0
    assert sample("engine_realized_pnl", instrument=WIN, strategy="s", currency="CUQ") == 10
    assert sample("engine_unrealized_pnl", instrument=WIN, strategy="s", currency="CUQ") == 0
    # fees by the currency they were paid in, never added across currencies
    assert sample("engine_fees_paid", instrument=WIN, strategy="s", currency="CUQ") == 0.1
    assert sample("engine_fees_paid", instrument=WIN, strategy="s", currency="CUF") == 0.1
    assert sample("engine_realized_pnl", instrument=LOSS, strategy="s", currency="CUE") == -10

    # the win in the profits' histogram, the loss in the losses' as +10: both sums only grow
    assert sample("engine_trade_profit_count", instrument=WIN, strategy="s", currency="CUQ") == 1
    assert sample("engine_trade_loss_count", instrument=WIN, strategy="s", currency="CUQ") is None
    assert sample("engine_trade_loss_count", instrument=LOSS, strategy="s", currency="CUE") == 1
    assert sample("engine_trade_loss_sum", instrument=LOSS, strategy="s", currency="CUE") == 10
    assert sample("engine_trade_loss_bucket", instrument=LOSS, strategy="s", currency="CUE", le="1.0") == 0
    assert sample("engine_trade_loss_bucket", instrument=LOSS, strategy="s", currency="CUE", le="10.0") == 1
    assert sample("engine_trade_profit_count", instrument=LOSS, strategy="s", currency="CUE") is None
    assert projection.closed_trips == 2 and projection.won_trips == 1
    assert sample("engine_win_rate_ratio") == 0.5


async def test_two_strategies_in_one_instrument_have_their_own_position_and_pnl() -> None:
    """Each strategy's fills move its own series; the instrument's position is their sum."""
    topics, inst = Topics(), "CUS/CUQ"
    events = [
        (topics.ticks, tick(inst, "100", 1)),
        (topics.trading, submitted(inst, "trend-1", Side.BUY, "trend")),
        (topics.trading, filled(inst, "trend-1", Side.BUY, "100", "0", "CUQ")),
        (topics.trading, submitted(inst, "revert-1", Side.SELL, "revert")),
        (topics.trading, filled(inst, "revert-1", Side.SELL, "100", "0.5", "CUQ")),
        (topics.ticks, tick(inst, "104", 2)),
        (topics.trading, submitted(inst, "revert-2", Side.BUY, "revert")),
        (topics.trading, filled(inst, "revert-2", Side.BUY, "104", "0", "CUQ")),
    ]
    records = [
        Record(topic, 0, i, Envelope.new(ev, ts_event=T0 + i, ts_init=T0 + i, source="test", key=ev.instrument))
        for i, (topic, ev) in enumerate(events)
    ]
    projection = MetricsProjection(topics)
    await projection.apply(None, records)
    assert not projection.refused
    assert sample("engine_position", instrument=inst, strategy="trend", currency="CUS") == 1
    assert sample("engine_position", instrument=inst, strategy="revert", currency="CUS") == 0
    assert sample("engine_unrealized_pnl", instrument=inst, strategy="trend", currency="CUQ") == 4
    assert sample("engine_realized_pnl", instrument=inst, strategy="revert", currency="CUQ") == -4
    assert sample("engine_fees_paid", instrument=inst, strategy="revert", currency="CUQ") == 0.5
    assert sample("engine_fees_paid", instrument=inst, strategy="trend", currency="CUQ") == 0
    assert sample("engine_trade_loss_count", instrument=inst, strategy="revert", currency="CUQ") == 1
    assert sample("engine_fills_total", instrument=inst, strategy="trend") == 1


def test_every_amount_and_price_has_a_currency_label_and_no_histogram_a_negative_bucket() -> None:
    money = {
        "engine_position",
        "engine_realized_pnl",
        "engine_unrealized_pnl",
        "engine_fees_paid",
        "engine_last_price",
        "engine_traded_volume",
        "engine_trade_profit",
        "engine_trade_loss",
        "engine_sharpe_ratio",
        "engine_account_balance",
        "engine_equity",
        "engine_daily_pnl_ratio",
        "engine_max_drawdown_ratio",
    }
    import projections.metrics as m

    found = {}
    for value in vars(m).values():
        name = getattr(value, "_name", None)
        if name in money:
            found[name] = value
            assert "currency" in value._labelnames, name
        if name and getattr(value, "_type", "") == "histogram":
            assert all(b >= 0 for b in value._kwargs.get("buckets", m.PNL_BUCKETS)), name
    assert set(found) == money
    assert all(b >= 0 for b in m.PNL_BUCKETS)
