"""Alertmanager's webhook payload as the engine reads it (adapters/alerts.py): real notifications parse, and
anything else is refused with one line that says why."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from adapters import alerts
from adapters.alerts import MAX_BODY_BYTES, AlertInbox, BadNotification, parse
from events import MAX_RECORD_BYTES, AlertNotified, Envelope, decode, encode
from tests.support import until

DATA = Path(__file__).resolve().parent.parent / "data"
FIRING = (DATA / "alertmanager-0.25-webhook-firing.json").read_bytes()
RESOLVED = (DATA / "alertmanager-0.25-webhook-resolved.json").read_bytes()


def _doc(raw: bytes = FIRING) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(raw)
    return doc


def _body(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def test_real_notifications_parse_into_events_that_round_trip() -> None:
    firing, resolved = parse(FIRING), parse(RESOLVED)
    assert (firing.status, resolved.status) == ("firing", "resolved")
    assert firing.receiver == "cap" and json.loads(firing.alertnames) == ["KafkaConnectionLost"]
    assert firing.group_key == '{}:{alertname="KafkaConnectionLost", instance="127.0.0.1:8000"}'
    note = json.loads(firing.notification)
    assert note["alerts"][0]["fingerprint"] == "8f0bf1e9929caa16"
    assert note["commonAnnotations"] == {"summary": "127.0.0.1:8000 lost its Kafka connection"}
    assert firing.dedupe_key != resolved.dedupe_key  # the same group, firing then resolved: two notifications
    env = Envelope.new(firing, ts_event=1, ts_init=2, source=alerts.KEY, key=alerts.KEY)
    assert decode(encode(env)) == env


def test_the_same_notification_has_the_same_key_whatever_its_field_order_or_extra_fields() -> None:
    doc = _doc()
    doc["somethingNew"] = {"a": 1}
    doc["alerts"][0]["silenceURL"] = "http://x"
    reordered = dict(reversed(list(doc.items())))
    assert parse(_body(reordered)).dedupe_key == parse(FIRING).dedupe_key
    assert "somethingNew" not in parse(_body(reordered)).notification  # only Alertmanager's fields are kept


def test_an_alert_resolved_in_a_group_still_firing_is_a_new_notification() -> None:
    doc = _doc()
    second = {**doc["alerts"][0], "fingerprint": "0000000000000002", "labels": {"alertname": "X", "i": "2"}}
    doc["alerts"].append(second)
    both_firing = parse(_body(doc))
    doc["alerts"][1] = {**second, "status": "resolved", "endsAt": "2026-12-03T06:00:00Z"}
    assert parse(_body(doc)).status == "firing"
    assert parse(_body(doc)).dedupe_key != both_firing.dedupe_key
    assert json.loads(both_firing.alertnames) == ["KafkaConnectionLost", "X"]


def _set(path: str, value: Any) -> bytes:
    doc = _doc()
    target = doc
    *parents, last = path.split(".")
    for p in parents:
        target = target[int(p)] if isinstance(target, list) else target[p]
    if value is _DROP:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return _body(doc)


_DROP = object()

REFUSALS = [
    (b"", "not JSON"),
    (b"\xff\xfe garbage \x00", "not JSON"),
    (b'{"version": "4", "alerts": [', "not JSON"),
    (b"[" * 5000 + b"]" * 5000, "not JSON"),
    (b'"\\ud800"', "not JSON"),
    (b"[]", "expected a JSON object"),
    (b"null", "expected a JSON object"),
    (_set("version", 4), "version: expected '4'"),
    (_set("version", _DROP), "version: expected '4'"),
    (_set("alerts", []), "alerts: expected a non-empty array, got an array"),
    (_set("alerts", {"a": 1}), "alerts: expected a non-empty array, got an object"),
    (_set("alerts", _DROP), "alerts: expected a non-empty array, got null"),
    (_set("alerts.0", "x"), "alerts[0]: expected an object, got str"),
    (_set("alerts.0.status", "pending"), "alerts[0].status: expected 'firing' or 'resolved'"),
    (_set("alerts.0.labels", {}), "alerts[0].labels: expected a non-empty object"),
    (_set("alerts.0.labels", ["a"]), "alerts[0].labels: expected an object of strings, got an array"),
    (_set("alerts.0.labels.severity", 3), "alerts[0].labels.severity: expected a string, got int"),
    (_set("alerts.0.labels.severity", "a\x00b"), "alerts[0].labels.severity: contains a NUL character"),
    (_set("alerts.0.annotations.summary", "x" * 4097), "alerts[0].annotations.summary: 4097 characters, at most"),
    (_set("alerts.0.startsAt", _DROP), "alerts[0].startsAt: expected a string, got null"),
    (_set("alerts.0.fingerprint", 12), "alerts[0].fingerprint: expected a string, got int"),
    (_set("status", "FIRING"), "status: expected 'firing' or 'resolved'"),
    (_set("groupKey", _DROP), "groupKey: expected a string, got null"),
    (_set("receiver", ["r"]), "receiver: expected a string, got an array"),
    (_set("truncatedAlerts", -1), "truncatedAlerts: expected a non-negative integer"),
    (_set("truncatedAlerts", True), "truncatedAlerts: expected a non-negative integer"),
    (_set("truncatedAlerts", 1.5), "truncatedAlerts: expected a non-negative integer"),
    (_set("commonLabels", "a=b"), "commonLabels: expected an object of strings, got str"),
    (_set("externalURL", {"u": 1}), "externalURL: expected a string, got an object"),
    (b" " * (MAX_BODY_BYTES + 1), f"body of {MAX_BODY_BYTES + 1} bytes, at most {MAX_BODY_BYTES}"),
]


@pytest.mark.parametrize(("body", "reason"), REFUSALS, ids=[r for _, r in REFUSALS])
def test_what_is_not_a_notification_is_refused_with_one_line(body: bytes, reason: str) -> None:
    with pytest.raises(BadNotification) as e:
        parse(body)
    message = str(e.value)
    assert message.startswith(reason), message
    assert "\n" not in message and len(message) < 300, message


def test_the_largest_body_of_quotes_still_makes_an_event_that_fits_a_record() -> None:
    # every quote in a label value is escaped twice in the event (once in the notification's JSON, once in the
    # record's): the worst case for the record's size
    doc = _doc()
    filler = '"' * 4096
    doc["alerts"] = []
    while len(_body(doc)) + 2 * len(json.dumps(filler)) < MAX_BODY_BYTES:
        n = len(doc["alerts"])
        doc["alerts"].append({**_doc()["alerts"][0], "fingerprint": f"{n:016x}", "annotations": {"a": filler}})
    body = _body(doc)
    assert len(body) > MAX_BODY_BYTES * 0.9
    event = parse(body)
    raw = encode(Envelope.new(event, ts_event=1, ts_init=2, source=alerts.KEY, key=alerts.KEY))
    assert len(raw) <= MAX_RECORD_BYTES
    assert isinstance(decode(raw).event, AlertNotified)
    assert orjson.loads(event.notification)["alerts"][0]["annotations"]["a"] == filler


# The inbox's rules, with the log and the producer as plain functions (the real ones: tests/e2e/test_alerts.py).


class FakeKafka:
    """One control topic shared by inboxes (as processes share it); ``up`` False: every call fails."""

    def __init__(self) -> None:
        self.log: list[Envelope] = []
        self.up = True
        self.sends = 0
        self.hold = False  # acknowledgements wait until released
        self.held: list[tuple[asyncio.Future[None], Envelope]] = []

    def inbox(self) -> AlertInbox:
        seen = 0

        async def read_log() -> list[Envelope]:
            nonlocal seen
            if not self.up:
                raise ConnectionError("down")
            new, seen = self.log[seen:], len(self.log)
            return new

        async def send(env: Envelope) -> asyncio.Future[None]:
            if not self.up:
                raise ConnectionError("down")
            self.sends += 1
            ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if self.hold:
                self.held.append((ack, env))
            else:
                self.log.append(env)
                ack.set_result(None)
            return ack

        return AlertInbox(send, read_log, timeout=0.2)

    def release(self, *, written: bool, error: bool) -> None:
        for ack, env in self.held:
            if written:
                self.log.append(env)
            ack.set_exception(ConnectionError("lost answer")) if error else ack.set_result(None)
        self.held.clear()


def _statuses(kafka: FakeKafka) -> list[str]:
    return [e.event.status for e in kafka.log if isinstance(e.event, AlertNotified)]


async def test_a_notification_is_written_once_by_one_inbox_and_known_to_another_that_shares_the_log() -> None:
    kafka = FakeKafka()
    one, two = kafka.inbox(), kafka.inbox()
    assert (await one.receive(FIRING)).status == 200
    again = await one.receive(FIRING)
    assert (again.status, again.body["duplicate"]) == (200, True)
    other = await two.receive(FIRING)  # a resend to another process
    assert (other.status, other.body["duplicate"], other.body["recorded"]) == (200, True, True)
    assert (await two.receive(RESOLVED)).status == 200
    assert _statuses(kafka) == ["firing", "resolved"] and kafka.sends == 2
    assert (await one.receive(b"{}")).status == 400


async def test_while_kafka_is_away_a_notification_is_kept_and_written_once_in_order_when_it_is_back() -> None:
    kafka = FakeKafka()
    inbox = kafka.inbox()
    kafka.up = False
    assert (await inbox.receive(FIRING)).status == 202
    assert (await inbox.receive(FIRING)).body["duplicate"] is True
    assert (await inbox.receive(RESOLVED)).status == 202
    assert [(n["status"], n["recorded"]) for n in inbox.recent()] == [("resolved", False), ("firing", False)]
    inbox.start(interval=0.01)
    try:
        kafka.up = True
        await until(lambda: len(kafka.log) == 2, "both written")
        assert _statuses(kafka) == ["firing", "resolved"]
        assert [(n["status"], n["recorded"]) for n in inbox.recent()] == [("resolved", True), ("firing", True)]
    finally:
        await inbox.stop()
        await inbox.stop()  # safe twice


async def test_a_send_still_in_flight_is_never_sent_again_and_one_that_failed_is_resent_only_if_not_in_the_log() -> (
    None
):
    kafka = FakeKafka()
    inbox = kafka.inbox()
    kafka.hold = True
    assert (await inbox.receive(FIRING)).status == 202  # handed over, no acknowledgement in time
    inbox.start(interval=0.01)
    try:
        await asyncio.sleep(0.5)  # several flushes: each waits for the same send's answer
        assert kafka.sends == 1
        kafka.release(written=True, error=True)  # the broker wrote it, the answer was lost
        await until(lambda: inbox.recent()[0]["recorded"] is not False, "seen in the log")
        assert kafka.sends == 1 and _statuses(kafka) == ["firing"]
        kafka.hold = True
        assert (await inbox.receive(RESOLVED)).status == 202
        kafka.hold = False
        kafka.release(written=False, error=True)  # it failed and is not in the log: sent again
        await until(lambda: _statuses(kafka) == ["firing", "resolved"], "the resolved one sent again")
        assert kafka.sends == 3
    finally:
        await inbox.stop()


async def test_stop_tries_once_more_and_logs_what_could_not_be_written() -> None:
    kafka = FakeKafka()
    inbox = kafka.inbox()
    kafka.up = False
    assert (await inbox.receive(FIRING)).status == 202
    inbox.start()
    await inbox.stop()
    assert inbox.recent() == [] and kafka.log == []
    kafka.up = True
    fresh = kafka.inbox()
    assert (await fresh.receive(FIRING)).status == 200
    await fresh.stop()
