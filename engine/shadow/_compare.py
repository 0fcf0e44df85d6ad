"""Two days of decisions side by side: the orders production placed and the orders a candidate would have placed.

Pure: lists of :class:`Order` in, a :class:`Comparison` out. Orders are paired in two passes, per instrument (and
per strategy, where both sides name the same strategies):

1. the same decision: the same causing tick, side and order type (the n-th such order of one side with the n-th
   of the other). Two such orders that differ in quantity, price or trigger price are *changed*;
2. the same order at another time: of what is left, an order of one side and one of the other with the same side
   and order type, at most ``window`` apart (in time order, each paired once): *changed* too, in time at least.

What is left unpaired is an order only production placed, or only the candidate. The day's decisions are identical
when every order is paired and none is changed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

COMPARED = ("quantity", "limit_price", "trigger_price", "created_ts")


@dataclass(frozen=True, slots=True)
class Tick:
    """The trade that caused a decision."""

    event_id: str
    ts_event: int
    trade_id: str
    side: str
    price: Decimal
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class Order:
    strategy: str
    instrument: str
    client_order_id: str
    side: str
    order_type: str
    quantity: Decimal
    limit_price: Decimal | None
    trigger_price: Decimal | None
    created_ts: int
    status: str
    reject_rule: str | None = None
    cause: Tick | None = None


@dataclass(frozen=True, slots=True)
class Changed:
    production: Order
    candidate: Order
    fields: tuple[str, ...]  # of COMPARED, those that differ; ("cause",): only the causing tick (of the same time)

    @property
    def ts(self) -> int:
        return min(self.production.created_ts, self.candidate.created_ts)


@dataclass(frozen=True, slots=True)
class Difference:
    """One differing decision, for the listing: ``kind`` is ``production only``, ``candidate only`` or
    ``changed``."""

    kind: str
    ts: int
    production: Order | None
    candidate: Order | None
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class Comparison:
    production: int  # orders of the day on each side
    candidate: int
    same: int  # pairs identical in every compared field
    changed: list[Changed] = field(default_factory=list)
    production_only: list[Order] = field(default_factory=list)
    candidate_only: list[Order] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not (self.changed or self.production_only or self.candidate_only)

    def differences(self) -> list[Difference]:
        """Every difference in time order (production's first at a tie)."""
        out = [Difference("changed", c.ts, c.production, c.candidate, c.fields) for c in self.changed]
        out += [Difference("production only", o.created_ts, o, None) for o in self.production_only]
        out += [Difference("candidate only", o.created_ts, None, o) for o in self.candidate_only]
        order = {"production only": 0, "changed": 1, "candidate only": 2}
        return sorted(out, key=lambda d: (d.ts, order[d.kind], _id(d)))


def _id(d: Difference) -> str:
    o = d.production or d.candidate
    return o.client_order_id if o is not None else ""


def _differing(a: Order, b: Order) -> tuple[str, ...]:
    return tuple(f for f in COMPARED if getattr(a, f) != getattr(b, f))


def compare(production: Sequence[Order], candidate: Sequence[Order], *, window_ns: int) -> Comparison:
    """Pair the two sides' orders (see the module's docstring) and say what differs."""
    by_strategy = {o.strategy for o in production} == {o.strategy for o in candidate}

    def group(o: Order) -> tuple[str, str]:
        return (o.strategy if by_strategy else "", o.instrument)

    left: list[Order] = []
    right: list[Order] = []
    same = 0
    changed: list[Changed] = []
    # 1. the same causing tick, side and type
    decisions: dict[tuple[object, ...], list[Order]] = defaultdict(list)
    for o in _ordered(candidate):
        decisions[(*group(o), _cause(o), o.side, o.order_type)].append(o)
    for p in _ordered(production):
        mates = decisions.get((*group(p), _cause(p), p.side, p.order_type))
        if not mates or _cause(p) is None:
            left.append(p)
            continue
        c = mates.pop(0)
        fields = _differing(p, c)
        if fields:
            changed.append(Changed(p, c, fields))
        else:
            same += 1
    for rest in decisions.values():
        right.extend(rest)
    # 2. the same side and type, at most window_ns apart, in time order
    lanes: dict[tuple[object, ...], tuple[list[Order], list[Order]]] = defaultdict(lambda: ([], []))
    for o in left:
        lanes[(*group(o), o.side, o.order_type)][0].append(o)
    for o in right:
        lanes[(*group(o), o.side, o.order_type)][1].append(o)
    production_only: list[Order] = []
    candidate_only: list[Order] = []
    for ps, cs in lanes.values():
        ps.sort(key=_when)
        cs.sort(key=_when)
        i = j = 0
        while i < len(ps) and j < len(cs):
            p, c = ps[i], cs[j]
            if abs(p.created_ts - c.created_ts) <= window_ns:
                changed.append(Changed(p, c, _differing(p, c) or ("cause",)))  # another tick of that time
                i += 1
                j += 1
            elif p.created_ts < c.created_ts:
                production_only.append(p)
                i += 1
            else:
                candidate_only.append(c)
                j += 1
        production_only.extend(ps[i:])
        candidate_only.extend(cs[j:])
    changed.sort(key=lambda c: (c.ts, c.production.client_order_id))
    return Comparison(
        production=len(production),
        candidate=len(candidate),
        same=same,
        changed=changed,
        production_only=sorted(production_only, key=_when),
        candidate_only=sorted(candidate_only, key=_when),
    )


def _cause(o: Order) -> str | None:
    return o.cause.event_id if o.cause is not None else None


def _when(o: Order) -> tuple[int, str]:
    return (o.created_ts, o.client_order_id)


def _ordered(orders: Iterable[Order]) -> list[Order]:
    return sorted(orders, key=_when)
