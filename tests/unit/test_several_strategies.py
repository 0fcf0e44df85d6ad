"""Several strategies in one engine: each trades its instruments with its own state and limits, a fill goes to the
strategy whose order it was, the account's limits hold over all of them, and the settings refuse what cannot work."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D
from typing import Any

import pytest

from adapters.venues.paper import PaperExchange
from engine import config as cfg
from engine.app import make_traders
from engine.core.risk import RiskLimits
from engine.core.strategies import MaCross, Quoting, QuotingParams
from engine.core.trader import Trader
from engine.core.trading import TradingCore
from events import BalanceSnapshot, Envelope, OrderFilled, OrderRejected, OrderSubmitted, PositionSnapshot, Side
from tests.unit.test_risk_limits import SECOND, T0, tick_env

BIG = D(10**9)
NO_LIMITS = RiskLimits(BIG, BIG)
DAY = 86_400 * SECOND


def _trend(name: str = "trend", limits: RiskLimits = NO_LIMITS, **kw: Any) -> Trader:
    return Trader(replace(MaCross.of(1, 2, D(1)), name=name), limits, **kw)


def _quotes(instruments: frozenset[str] = frozenset()) -> Trader:
    params = QuotingParams(D(1), spread_bps=D(100), requote_bps=D(200), max_inventory=D(1), tick_size=D("0.01"))
    return Trader(replace(Quoting(params), name="quotes"), NO_LIMITS, instruments=instruments)


def _run(core: TradingCore, ticks: list[tuple[str, str]], start: int = T0) -> list[Envelope]:
    out: list[Envelope] = []
    for n, (instrument, price) in enumerate(ticks):
        out += core.on_input(tick_env(price, start + n * SECOND, n + start // SECOND, instrument), ts_init=0)
    return out


def _of(out: list[Envelope], kind: type) -> list[Any]:
    return [e.event for e in out if isinstance(e.event, kind)]


def test_each_strategy_trades_only_its_instruments_and_its_orders_carry_its_name() -> None:
    core = TradingCore([_trend(), _quotes(frozenset({"ETH/USDT"}))], PaperExchange(D(0), D(0)))
    prices = ["100", "101", "99", "102", "98", "103"]
    out = _run(core, [(i, p) for p in prices for i in ("BTC/USDT", "ETH/USDT")])
    sent = _of(out, OrderSubmitted)
    by = {(o.strategy, o.instrument) for o in sent}
    assert by == {("trend", "BTC/USDT"), ("trend", "ETH/USDT"), ("quotes", "ETH/USDT")}
    assert all(o.client_order_id.startswith(f"{o.strategy}-") for o in sent)
    assert ("quotes", "BTC/USDT") not in core.states


def test_a_fill_goes_to_the_strategy_whose_order_it_was_and_positions_add_up_per_strategy() -> None:
    core = TradingCore([_trend(), _quotes()], PaperExchange(D(0), D(0)))
    prices = ["100", "101", "99", "102", "98", "103", "97", "104"]
    out = _run(core, [("BTC/USDT", p) for p in prices])
    fills = _of(out, OrderFilled)
    owners = {o.client_order_id: o.strategy for o in _of(out, OrderSubmitted)}
    assert {owners[f.client_order_id] for f in fills} == {"trend", "quotes"}
    for name in ("trend", "quotes"):
        mine = [f for f in fills if owners[f.client_order_id] == name]
        net = sum((f.quantity if f.side is Side.BUY else -f.quantity for f in mine), D(0))
        state = core.state("BTC/USDT", name)
        assert state.position.quantity == net and state.position.fills == len(mine)
    # each strategy's view of its open orders holds only its own
    assert all(o.strategy == "quotes" for o in core.state("BTC/USDT", "quotes").open_orders)


def test_the_accounts_limit_holds_over_every_strategy_of_the_instrument() -> None:
    """Each strategy may hold 2; the account 1.5: when the first has bought 1, the second's buy of 1 is refused."""
    own = RiskLimits(BIG, D(2))
    a, b = _trend("a", own), _trend("b", own)
    core = TradingCore([a, b], PaperExchange(D(0), D(0)), account=RiskLimits(BIG, D("1.5")))
    # MA(1) vs MA(2): the cross up at 101 makes each want to be long 1 (a first: the order they are configured in)
    out = _run(core, [("BTC/USDT", p) for p in ["100", "99", "101", "102", "103"]])
    refused = [r for r in _of(out, OrderRejected) if r.by == "risk"]
    assert refused and {(r.strategy, r.rule) for r in refused} == {("b", "account_max_position")}
    assert all(r.reason.startswith("account: ") for r in refused)
    assert core.state("BTC/USDT", "a").position.quantity == 1
    assert core.state("BTC/USDT", "b").position.quantity == 0


def test_day_snapshots_name_their_strategy_only_when_the_engine_runs_several() -> None:
    ticks = [("BTC/USDT", p) for p in ["100", "99", "101", "102"]]  # a buy at the cross up, filled on day 1
    day2 = (T0 // DAY + 1) * DAY
    several = TradingCore([_trend(), _trend("other")], PaperExchange(D(0), D(0)))
    _run(several, ticks)
    out = _run(several, [("BTC/USDT", "104")], day2)
    assert sorted(s.strategy for s in _of(out, PositionSnapshot)) == ["other", "trend"]
    assert sorted(s.strategy for s in _of(out, BalanceSnapshot)) == ["other", "other", "trend", "trend"]
    one = TradingCore(_trend(), PaperExchange(D(0), D(0)))
    _run(one, ticks)
    out = _run(one, [("BTC/USDT", "104")], day2)
    assert [s.strategy for s in _of(out, PositionSnapshot)] == [""]
    assert {s.strategy for s in _of(out, BalanceSnapshot)} == {""}


def _settings(**over: Any) -> cfg.Settings:
    return cfg.Settings(**over)


def test_strategies_are_built_from_the_settings_with_their_own_limits_over_the_accounts() -> None:
    s = _settings(
        risk={"max_position": "5"},
        strategies=[
            {"name": "trend", "kind": "ma_cross", "params": {"fast": 3, "slow": 9}},
            {"name": "quotes", "kind": "quoting", "instruments": ["ETH/USDT"], "risk": {"max_position": "1"}},
        ],
    )
    traders, account = make_traders(s)
    assert [t.name for t in traders] == ["trend", "quotes"]
    assert traders[0].limits.max_position == 5 and traders[1].limits.max_position == 1
    assert traders[1].instruments == frozenset({"ETH/USDT"}) and account is not None and account.max_position == 5
    single, none = make_traders(_settings())
    assert len(single) == 1 and none is None


@pytest.mark.parametrize(
    ("over", "says"),
    [
        ({"strategies": [{"name": "a"}, {"name": "a"}]}, "the name 'a' is given twice"),
        ({"strategies": [{"name": "a", "instruments": ["SOL/USDT"]}]}, "SOL/USDT is not among the feed's"),
        ({"strategies": [{"name": "Bad-Name"}]}, "strategies[0].name"),
        ({"strategies": [{"name": "a", "params": {"fsat": 3}}]}, "strategies[0].params.fsat: not a parameter"),
        ({"strategies": [{"name": "a", "kind": "nope"}]}, "strategies[0].kind"),
        ({"strategy": {"kind": "quoting"}, "strategies": [{"name": "a"}]}, "strategy.kind: with [[strategies]]"),
    ],
)
def test_a_bad_strategies_table_stops_with_one_line_naming_it(over: dict[str, Any], says: str) -> None:
    with pytest.raises(cfg.ConfigError) as err:
        cfg.load(None, **over)
    message = str(err.value)
    assert says in message and "\n" not in message, message


def test_an_explicit_order_is_checked_against_the_worst_case_on_its_side() -> None:
    """A resting ask does not make room for another bid: it may never fill, and the bid may. Quoting 1 a side with
    max_position 1: once the bid has filled (long 1, the ask still resting), the next bid is refused."""
    params = QuotingParams(D(1), spread_bps=D(100), requote_bps=D(200), max_inventory=D(5), tick_size=D("0.01"))
    trader = Trader(replace(Quoting(params), name="quotes"), RiskLimits(BIG, D(1)))
    core = TradingCore(trader, PaperExchange(D(0), D(0)))
    out = _run(core, [("BTC/USDT", p) for p in ["100", "99", "99.5"]])
    assert [(f.side, f.price) for f in _of(out, OrderFilled)] == [(Side.BUY, D("99.00"))]
    refused = [r for r in _of(out, OrderRejected) if r.by == "risk"]
    assert refused and all(r.rule == "max_position" and r.side is Side.BUY for r in refused)
    assert core.state("BTC/USDT").position.quantity == 1
