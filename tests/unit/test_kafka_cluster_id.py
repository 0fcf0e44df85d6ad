"""The local stack's Kafka cluster id is never read as an option by Kafka's storage tool."""

from __future__ import annotations

import re
import uuid

import pytest

from ops import _kafka


def test_an_id_that_would_start_with_a_dash_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    dash = uuid.UUID(bytes=b"\xf8" + bytes(15))  # base64 "-A...": the tool took it for an option and failed
    fine = uuid.UUID(bytes=b"\x00" + bytes(15))
    drawn = iter([dash, fine])
    monkeypatch.setattr(_kafka.uuid, "uuid4", lambda: next(drawn))
    assert _kafka.cluster_id() == "AAAAAAAAAAAAAAAAAAAAAA"


def test_ids_are_kafkas_shape_and_fresh() -> None:
    ids = [_kafka.cluster_id() for _ in range(2000)]
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", i) for i in ids)
    assert len(set(ids)) == len(ids)
