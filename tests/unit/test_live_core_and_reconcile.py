"""The core with a live venue (orders leave as commands, reports come back as input) and reconciliation."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest

from adapters.venues.base import VenueOrder, VenueOrderStatus, VenueTrade
from engine.app import make_core_factory
from engine.config import ConfigError, load
from engine.core.reconcile import BalanceBaseline, Book, VenueSnapshot, fills_for, reconcile
from engine.venues import load_credentials
from events import (
    BalanceReconciled,
    Envelope,
    Liquidity,
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    OrderType,
    ReconciliationDifference,
    Side,
    TickReceived,
)


def _env(event: object, ts: int) -> Envelope:
    eid = uuid.uuid4()
    return Envelope(eid, event, ts, 0, eid, None, "test")  # type: ignore[arg-type]


def _ticks(prices: list[str]) -> list[Envelope]:
    return [
        _env(
            TickReceived(
                instrument="BTC/USDT", venue="binance", trade_id=str(n), price=D(p), quantity=D(1), side=Side.BUY
            ),
            1_700_000_000_000_000_000 + n * 1_000_000_000,
        )
        for n, p in enumerate(prices)
    ]


RISING = ["100"] * 30 + ["95"] * 5 + [str(100 + n) for n in range(1, 30)]


def test_with_a_live_venue_the_core_only_decides_and_a_pending_order_is_not_sent_twice() -> None:
    core = make_core_factory(load(venue={"kind": "ccxt", "api_key": "k", "secret": "s"}))()
    out = [e for t in _ticks(RISING) for e in core.on_input(t, ts_init=0)]
    submitted = [e.event for e in out if isinstance(e.event, OrderSubmitted)]
    assert len(submitted) == 1  # the order is pending (no report yet): the strategy does not send another
    assert not any(isinstance(e.event, OrderAccepted | OrderFilled) for e in out)  # nothing simulated
    o = submitted[0]
    accepted = _env(
        OrderAccepted(
            instrument=o.instrument,
            client_order_id=o.client_order_id,
            venue="binance",
            venue_order_id="42",
            raw='{"orderId": 42}',
        ),
        1_700_000_100_000_000_000,
    )
    fill = _env(
        OrderFilled(
            instrument=o.instrument,
            client_order_id=o.client_order_id,
            venue="binance",
            venue_order_id="42",
            trade_id="t1",
            side=o.side,
            quantity=o.quantity,
            price=D("120"),
            fee=D("0.001"),
            fee_currency="USDT",
            liquidity=Liquidity.TAKER,
            cumulative_quantity=o.quantity,
            leaves_quantity=D(0),
        ),
        1_700_000_101_000_000_000,
    )
    assert core.on_input(accepted, ts_init=0) == [accepted]  # folded, and relayed unchanged (same id)
    assert core.on_input(fill, ts_init=0) == [fill]
    core.on_input(fill, ts_init=0)  # the same fill again changes nothing
    state = core.state("BTC/USDT")
    assert state.position.quantity == o.quantity and state.open_orders == ()


def _order(coid: str, qty: str = "2") -> OrderSubmitted:
    return OrderSubmitted(
        instrument="BTC/USDT",
        client_order_id=coid,
        strategy="s",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=D(qty),
        limit_price=D("100"),
    )


def _trade(tid: str, voi: str, qty: str, ts: int = 1) -> VenueTrade:
    return VenueTrade(
        instrument="BTC/USDT",
        trade_id=tid,
        venue_order_id=voi,
        client_order_id=None,
        side=Side.BUY,
        quantity=D(qty),
        price=D("100"),
        fee=D("0.1"),
        fee_currency="USDT",
        liquidity=Liquidity.MAKER,
        ts=ts,
        raw={"id": tid},
    )


def _book() -> Book:
    book = Book("binance")
    book.apply(_order("a"))
    book.apply(OrderAccepted(instrument="BTC/USDT", client_order_id="a", venue="binance", venue_order_id="1"))
    return book


def test_a_trade_delivered_twice_is_one_fill_with_the_right_cumulative_and_leaves() -> None:
    book = _book()
    fills, unknown = fills_for(
        book,
        [
            _trade("t1", "1", "0.5", 1),
            _trade("t1", "1", "0.5", 1),
            _trade("t2", "1", "1.5", 2),
            _trade("x", "999", "1", 3),
        ],
    )
    assert [(f.trade_id, f.cumulative_quantity, f.leaves_quantity) for f in fills] == [
        ("t1", D("0.5"), D("1.5")),
        ("t2", D("2.0"), D("0.0")),
    ]
    assert [t.trade_id for t in unknown] == ["x"]
    for f in fills:
        book.apply(f)
    assert book.orders["a"].done and fills_for(book, [_trade("t1", "1", "0.5")]) == ([], [])


def test_reconciliation_records_every_difference_and_the_missed_fill() -> None:
    book, baseline = _book(), BalanceBaseline()
    first = reconcile(book, VenueSnapshot([], [], {"USDT": D("1000"), "BTC": D("0")}), baseline)
    # the baseline: nothing to compare yet; a zero balance is not worth an event
    assert [(type(e), e.currency) for e in first] == [(BalanceReconciled, "USDT")]
    stranger = VenueOrder(
        instrument="BTC/USDT",
        client_order_id="manual-1",
        venue_order_id="7",
        side=Side.SELL,
        order_type=OrderType.LIMIT,
        quantity=D(1),
        limit_price=D(200),
        status=VenueOrderStatus.OPEN,
        filled=D(0),
        ts=0,
        raw={"orderId": 7},
    )
    # the venue filled 1 of order "a" (trade t9, never reported) and someone's manual order is open
    events = reconcile(
        book, VenueSnapshot([stranger], [_trade("t9", "1", "1")], {"USDT": D("899.9"), "BTC": D("1.5")}), baseline
    )
    kinds = [(e.kind, e.client_order_id) for e in events if isinstance(e, ReconciliationDifference)]
    assert ("unknown_order", "manual-1") in kinds and ("missed_fill", "a") in kinds
    (fill,) = [e for e in events if isinstance(e, OrderFilled)]
    assert fill.trade_id == "t9" and fill.raw == '{"id":"t9"}'
    # USDT: 1000 - 100 - 0.1 fee = 899.9, explained by the fill; BTC: 1 explained, 0.5 is not
    bal = {e.currency: e for e in events if isinstance(e, BalanceReconciled)}
    assert bal["USDT"].difference == 0 and bal["BTC"].difference == D("0.5")
    assert [e.detail for e in events if isinstance(e, ReconciliationDifference) and e.kind == "balance"] == [
        "BTC: the venue has 1.5, the log explains 1 (difference 0.5)"
    ]


def test_an_order_the_log_ended_but_the_venue_has_open_is_a_difference_and_its_trade_is_never_a_fill() -> None:
    # "a" was given up (rejected as unconfirmed) but had reached the venue, where it is open and trades
    book = _book()
    book.apply(
        OrderRejected(
            instrument="BTC/USDT",
            client_order_id="a",
            strategy="s",
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            quantity=D(2),
            limit_price=D(100),
            by="venue",
            rule="unconfirmed",
            reason="no answer",
        )
    )
    open_a = VenueOrder(
        instrument="BTC/USDT",
        client_order_id="a",
        venue_order_id="1",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=D(2),
        limit_price=D(100),
        status=VenueOrderStatus.OPEN,
        filled=D("0.5"),
        ts=0,
        raw={"orderId": 1},
    )
    fills, strays = fills_for(book, [_trade("t1", "1", "0.5")])
    assert fills == [] and [t.trade_id for t in strays] == ["t1"]  # the state machine would refuse it
    events = reconcile(book, VenueSnapshot([open_a], [_trade("t1", "1", "0.5")], None), BalanceBaseline())
    assert not any(isinstance(e, OrderFilled) for e in events)
    assert [(e.kind, e.client_order_id) for e in events if isinstance(e, ReconciliationDifference)] == [
        ("ended_order_open", "a"),
        ("fill_of_ended_order", "a"),
    ]


def test_live_credentials_come_from_the_environment_or_a_file_outside_the_repo(
    tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ENGINE_VENUE__API_KEY", raising=False)
    with pytest.raises(ConfigError, match="ENGINE_VENUE__API_KEY"):
        load_credentials(load(venue={"kind": "ccxt"}).venue)
    monkeypatch.setenv("ENGINE_VENUE__API_KEY", "canary-key-123")
    monkeypatch.setenv("ENGINE_VENUE__SECRET", "canary-secret-456")
    s = load(venue={"kind": "ccxt"})
    creds = load_credentials(s.venue)
    assert (creds.api_key, creds.secret) == ("canary-key-123", "canary-secret-456")
    assert "canary" not in repr(creds) and "canary" not in s.model_dump_json()
    from engine.app import public_settings

    assert "canary" not in public_settings(s)  # what EngineStarted records
    monkeypatch.delenv("ENGINE_VENUE__API_KEY")
    monkeypatch.delenv("ENGINE_VENUE__SECRET")
    path = tmp_path / "secrets.toml"  # type: ignore[operator]
    path.write_text('api_key = "file-key-1"\nsecret = "file-secret-2"\n')
    assert load_credentials(load(venue={"kind": "ccxt", "secrets_file": str(path)}).venue).api_key == "file-key-1"
    with pytest.raises(ConfigError, match="inside the repository"):
        load(venue={"kind": "ccxt", "secrets_file": "pyproject.toml"})


def test_reconciliation_is_a_pure_function_of_the_book_and_the_venue_snapshot() -> None:
    snap = VenueSnapshot([], [_trade("t1", "1", "1")], None)
    first = reconcile(_book(), snap, BalanceBaseline())
    assert first == reconcile(_book(), snap, BalanceBaseline()) and len(first) == 2
