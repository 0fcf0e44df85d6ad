"""A tick's id is derived from its trade, and must never change: a resumed run, or a trade published again after a
change of this code, must give the same id as the records already in the log (consumers skip it by id)."""

from __future__ import annotations

import uuid

import pytest

from events._ids import trade_event_id


@pytest.mark.parametrize(
    ("venue", "instrument", "trade_id", "ts_ns", "expected"),
    [  # the ids the first implementation gave (one hash update per part)
        ("recorded", "XRP/ETH", "13519807", 1_570_752_011_620_000_000, "016db81d-9d64-79bf-9e24-d6397c67f1f8"),
        ("binance", "BTC/USDT", "42", 1_700_000_000_123_456_789, "018bcfe5-687b-7106-9893-38c914b04cdc"),
        ("kraken", "ÉTH/€", "", 946_684_800_000_000_000, "00dc6acf-ac00-73eb-83b4-2f80bba505e7"),
    ],
)
def test_a_trades_id_is_the_one_already_in_the_log(
    venue: str, instrument: str, trade_id: str, ts_ns: int, expected: str
) -> None:
    assert trade_event_id(venue, instrument, trade_id, ts_ns) == uuid.UUID(expected)


def test_the_parts_are_not_run_together() -> None:
    assert trade_event_id("a", "bc", "1", 0) != trade_event_id("ab", "c", "1", 0)
