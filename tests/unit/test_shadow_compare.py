"""Pairing production's and a candidate's orders of a day (engine.shadow.compare), on hand-made orders."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from engine.shadow import Order, Tick, compare

S = 1_000_000_000


def tick(n: int, ts: int) -> Tick:
    return Tick(f"tick-{n}", ts, str(n), "buy", Decimal("1.5"), Decimal("2"))


def order(cid: str, ts_s: int, side: str = "buy", qty: str = "100", *, cause: int | None = None, **kw: object) -> Order:
    ts = ts_s * S
    base = Order(
        strategy="ma_cross",
        instrument="XRP/ETH",
        client_order_id=cid,
        side=side,
        order_type="market",
        quantity=Decimal(qty),
        limit_price=None,
        trigger_price=None,
        created_ts=ts,
        status="filled",
        cause=tick(cause if cause is not None else ts_s, ts),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_the_same_orders_are_identical() -> None:
    prod = [order("a", 10), order("b", 20, "sell")]
    c = compare(prod, list(prod), window_ns=60 * S)
    assert c.identical and c.same == 2 and c.differences() == []


def test_the_same_tick_with_another_quantity_is_changed_in_quantity() -> None:
    c = compare([order("a", 10)], [order("a", 10, qty="50")], window_ns=60 * S)
    assert not c.identical
    assert [(d.kind, d.fields) for d in c.differences()] == [("changed", ("quantity",))]


def test_an_order_placed_later_within_the_window_is_the_same_order_at_another_time() -> None:
    c = compare([order("a", 10)], [order("x", 40)], window_ns=60 * S)
    assert [(d.kind, d.fields, d.ts) for d in c.differences()] == [("changed", ("created_ts",), 10 * S)]


def test_beyond_the_window_each_side_placed_one_the_other_did_not() -> None:
    c = compare([order("a", 10)], [order("x", 100)], window_ns=60 * S)
    kinds = [(d.kind, (d.production or d.candidate).client_order_id) for d in c.differences()]  # type: ignore[union-attr]
    assert kinds == [("production only", "a"), ("candidate only", "x")]


def test_a_side_or_a_type_never_pairs_with_another() -> None:
    c = compare([order("a", 10, "buy")], [order("x", 10, "sell")], window_ns=60 * S)
    assert len(c.production_only) == 1 and len(c.candidate_only) == 1 and not c.changed
    c = compare([order("a", 10)], [order("x", 10, order_type="limit", limit_price=Decimal("1"))], window_ns=60 * S)
    assert len(c.production_only) == 1 and len(c.candidate_only) == 1


def test_a_candidate_of_another_name_is_compared_by_instrument() -> None:
    cand = [replace(order("a", 10), strategy="bollinger", client_order_id="bollinger-1")]
    c = compare([order("ma_cross-1", 10)], cand, window_ns=60 * S)
    assert c.identical  # another name, the same decision


def test_strategies_of_the_same_names_are_compared_each_with_its_own() -> None:
    prod = [order("a", 10), replace(order("b", 10), strategy="quoting")]
    cand = [order("a", 10), replace(order("c", 10, qty="1"), strategy="quoting")]
    c = compare(prod, cand, window_ns=60 * S)
    assert [(d.kind, d.production.strategy, d.fields) for d in c.differences()] == [  # type: ignore[union-attr]
        ("changed", "quoting", ("quantity",))
    ]


def test_repeated_decisions_pair_in_order_and_the_rest_is_one_sided() -> None:
    prod = [order("a", 10), order("b", 10)]  # two orders on one tick
    cand = [order("x", 10)]
    c = compare(prod, cand, window_ns=0)
    assert c.same == 1 and [o.client_order_id for o in c.production_only] == ["b"]


def test_the_listing_is_in_time_order() -> None:
    prod = [order("a", 300), order("b", 10)]
    cand = [order("x", 100, "sell")]
    c = compare(prod, cand, window_ns=S)
    assert [d.ts for d in c.differences()] == [10 * S, 100 * S, 300 * S]
