"""Alertmanager's webhook: each notification it delivers is recorded once as an :class:`~events.AlertNotified` event.

Alertmanager POSTs one JSON object per notification of an alert group (its webhook payload, ``"version": "4"``:
``receiver``, ``status``, ``alerts`` with their ``status``, ``labels``, ``annotations``, ``startsAt``, ``endsAt``,
``generatorURL``, ``fingerprint``; ``groupKey``, ``groupLabels``, ``commonLabels``, ``commonAnnotations``,
``externalURL``, ``truncatedAlerts``). :func:`parse` checks that shape and refuses anything else with one line (the
HTTP server answers 400 with it); it keeps only those fields.

**Once.** A notification is known by its *dedupe key*: a digest of its group key, its status and each alert's
fingerprint, start and status (:func:`dedupe_key`). Alertmanager sends the same one again after
``repeat_interval`` and whenever it did not get an answer in time; such a resend is answered 200 and not written.
The inbox knows the keys it wrote and those in the control topic: it reads the topic's last
:data:`HISTORY_TAIL` records per partition when it starts, then, **before it writes anything**, the records
added since (only AlertNotified records are decoded). So a restart, or a resend that reaches another process
(several may serve the webhook), writes nothing twice, as long as the first one was in the log by then
(Alertmanager sends a group's notifications one after the other, so only two copies sent to two processes at
the same moment could both be written). A send that timed out is not sent again while Kafka may still deliver
it: the inbox waits for that send's own answer, and sends again only after it failed and the log does not hold
the event.

**Kafka down.** A notification is then kept in memory (at most :data:`MAX_PENDING`), answered 202, and written
in order once Kafka is back: Alertmanager would otherwise retry only until its next ``group_interval``, and the
firing notification of an alert that resolved during the outage would be lost. What is still kept when the
process stops is tried once more (bounded) and otherwise logged as lost (``alerts.unwritten``).

**Where.** Every process with an HTTP server and a producer serves the webhook (``run``, ``project``): a
deployment without the engine in it can still receive alerts, and the dedupe above holds across processes.
Alertmanager should be pointed at one of them (the shipped ``ops/alertmanager/alertmanager.yml``: the engine's
``127.0.0.1:8000``). ``GET /alerts.json`` shows what this process received and what its start read from the
log, newest first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from adapters.kafka import EventProducer, make_consumer
from events import MAX_RECORD_BYTES, AlertNotified, DecodeError, Envelope, decode, encode

log = structlog.get_logger(__name__)

KEY = "alertmanager"  # the control topic's key (and the envelope's source) of every notification
MAX_BODY_BYTES = 100 * 1024  # its event (the notification's JSON in a string: quotes escaped) fits a record
TOO_BIG_HINT = "(set max_alerts in the receiver's webhook_configs)"
MAX_TEXT = 4096  # one label value, annotation or URL, in characters
MAX_NAME = 256  # one label name, the receiver
TIMEOUT = 5.0  # one attempt to read the log's tail or to have a record acknowledged
MAX_PENDING = 1000
HISTORY_TAIL = 50_000  # records per control partition read at start for the notifications already recorded
MAX_KNOWN = 100_000  # dedupe keys remembered
_STATUSES = ("firing", "resolved")
_TYPE = AlertNotified.TYPE.encode()


class BadNotification(ValueError):
    """Not an Alertmanager webhook notification; the message says why, in one line."""


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    return "an object" if isinstance(v, dict) else "an array" if isinstance(v, list) else type(v).__name__


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def _text(v: Any, where: str, *, required: bool = True, limit: int = MAX_TEXT) -> str:
    if v is None and not required:
        return ""
    if not isinstance(v, str):
        raise BadNotification(f"{where}: expected a string, got {_kind(v)}")
    if len(v) > limit:
        raise BadNotification(f"{where}: {len(v)} characters, at most {limit}")
    if "\x00" in v:  # PostgreSQL's jsonb (the audit's system_events) refuses it
        raise BadNotification(f"{where}: contains a NUL character")
    return v


def _labels(v: Any, where: str) -> dict[str, str]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise BadNotification(f"{where}: expected an object of strings, got {_kind(v)}")
    out = {}
    for k, x in v.items():
        name = _text(k, f"{where}: a name", limit=MAX_NAME)
        out[name] = _text(x, f"{where}.{name[:40]}")
    return out


def _status(v: Any, where: str) -> str:
    if v not in _STATUSES:
        raise BadNotification(f"{where}: expected 'firing' or 'resolved', got {_short(v)}")
    return str(v)


def _alert(a: Any, where: str) -> dict[str, Any]:
    if not isinstance(a, dict):
        raise BadNotification(f"{where}: expected an object, got {_kind(a)}")
    labels = _labels(a.get("labels"), f"{where}.labels")
    if not labels:
        raise BadNotification(f"{where}.labels: expected a non-empty object of strings")
    return {
        "status": _status(a.get("status"), f"{where}.status"),
        "labels": labels,
        "annotations": _labels(a.get("annotations"), f"{where}.annotations"),
        "startsAt": _text(a.get("startsAt"), f"{where}.startsAt", limit=64),
        "endsAt": _text(a.get("endsAt"), f"{where}.endsAt", required=False, limit=64),
        "generatorURL": _text(a.get("generatorURL"), f"{where}.generatorURL", required=False),
        # Alertmanager sends one since 0.19; an older sender's alert is known by its labels
        "fingerprint": _text(a.get("fingerprint"), f"{where}.fingerprint", required=False, limit=64)
        or _digest(_json(labels), size=8),
    }


def _digest(*parts: str, size: int = 16) -> str:
    h = hashlib.blake2b(digest_size=size, person=b"alertmanager")
    for p in parts:
        h.update(p.encode())
        h.update(b"\x00")
    return h.hexdigest()


def _json(v: Any) -> str:
    return orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode()


def dedupe_key(group_key: str, status: str, alerts: list[dict[str, Any]]) -> str:
    """What makes a notification the same one again: its group, its status, and its alerts (fingerprint, start,
    status: one that resolved in a group still firing makes a new notification)."""
    return _digest(group_key, status, *sorted(f"{a['fingerprint']}@{a['startsAt']}:{a['status']}" for a in alerts))


def parse(body: bytes) -> AlertNotified:
    """The event of one webhook notification; :class:`BadNotification` (one line) if it is not one."""
    if len(body) > MAX_BODY_BYTES:
        raise BadNotification(f"body of {len(body)} bytes, at most {MAX_BODY_BYTES} {TOO_BIG_HINT}")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise BadNotification(f"not JSON: {str(e).splitlines()[0][:200]}") from None
    if not isinstance(doc, dict):
        raise BadNotification(f"expected a JSON object (Alertmanager's webhook payload), got {_kind(doc)}")
    if doc.get("version") != "4":
        raise BadNotification(
            f"version: expected '4' (Alertmanager's webhook payload), got {_short(doc.get('version'))}"
        )
    raw_alerts = doc.get("alerts")
    if not isinstance(raw_alerts, list) or not raw_alerts:
        raise BadNotification(f"alerts: expected a non-empty array, got {_kind(raw_alerts)}")
    alerts = [_alert(a, f"alerts[{i}]") for i, a in enumerate(raw_alerts)]
    status = _status(doc.get("status"), "status")
    group_key = _text(doc.get("groupKey"), "groupKey")
    receiver = _text(doc.get("receiver"), "receiver", limit=MAX_NAME)
    truncated = doc.get("truncatedAlerts", 0)
    if type(truncated) is not int or not 0 <= truncated < 2**31:
        raise BadNotification(f"truncatedAlerts: expected a non-negative integer, got {_short(truncated)}")
    notification = {
        "version": "4",
        "receiver": receiver,
        "status": status,
        "groupKey": group_key,
        "truncatedAlerts": truncated,
        "groupLabels": _labels(doc.get("groupLabels"), "groupLabels"),
        "commonLabels": _labels(doc.get("commonLabels"), "commonLabels"),
        "commonAnnotations": _labels(doc.get("commonAnnotations"), "commonAnnotations"),
        "externalURL": _text(doc.get("externalURL"), "externalURL", required=False),
        "alerts": alerts,
    }
    return AlertNotified(
        receiver=receiver,
        status=status,
        group_key=group_key,
        dedupe_key=dedupe_key(group_key, status, alerts),
        alertnames=_json(sorted({a["labels"].get("alertname", "") for a in alerts})),
        notification=_json(notification),
    )


def _event(env: Envelope) -> AlertNotified:
    ev = env.event
    assert isinstance(ev, AlertNotified)
    return ev


def view(env: Envelope, *, recorded: bool = True) -> dict[str, Any]:
    """A notification as ``/alerts.json`` shows it: when it came, whether it is in the log yet, what it said."""
    ev = _event(env)
    ms = env.ts_event // 1_000_000
    return {
        "id": str(env.event_id),
        "received": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z",
        "recorded": recorded,  # False: kept in memory until Kafka answers
        "status": ev.status,
        "alertnames": orjson.loads(ev.alertnames),
        "dedupe_key": ev.dedupe_key,
        "notification": orjson.loads(ev.notification),
    }


@dataclass
class Answer:
    status: int  # HTTP status
    body: dict[str, Any]


@dataclass
class _Pending:
    env: Envelope
    ack: asyncio.Future[Any] | None = None  # the producer's answer to the send in flight


Send = Callable[[Envelope], Awaitable["asyncio.Future[Any]"]]  # hands a record over; the future: its ack
ReadLog = Callable[[], Awaitable[list[Envelope]]]  # the notifications added to the log since the last call


@dataclass
class AlertInbox:
    """Receives webhook notifications and writes each once to the control topic (see the module's docstring)."""

    send: Send
    read_log: ReadLog
    history: int = 200
    timeout: float = TIMEOUT
    recorded: int = 0  # written by this process
    duplicates: int = 0
    _recent: deque[Envelope] = field(init=False)
    _logged: dict[str, None] = field(default_factory=dict, init=False)  # keys in the log (an ordered set)
    _pending: dict[str, _Pending] = field(default_factory=dict, init=False)  # in arrival order
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    _close: Callable[[], Awaitable[None]] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._recent = deque(maxlen=self.history)

    @classmethod
    def on_kafka(cls, producer: EventProducer, bootstrap: str, **kw: Any) -> AlertInbox:
        tail = ControlTail(bootstrap, producer.topics.control)
        inbox = cls(lambda env: producer.enqueue(env), tail.read_new, **kw)
        inbox._close = tail.close
        return inbox

    def start(self, interval: float = 1.0, refresh: float = 5.0) -> None:
        """In the background: write what waits (every ``interval`` while Kafka is away), and read what the log gained
        every ``refresh`` (what other processes wrote: shown at /alerts.json, known before the next POST)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(interval, refresh), name="alert-inbox")

    async def stop(self) -> None:
        """Stop the background task, try once more to write what waits, close the reader. Safe twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._pending:
            async with self._lock:
                await self._flush()
        if self._pending:
            names = [_event(p.env).alertnames for p in self._pending.values()]
            log.warning("alerts.unwritten", count=len(self._pending), alerts=names[:20])
            self._pending.clear()
        close, self._close = self._close, None
        if close is not None:
            await close()

    async def receive(self, body: bytes) -> Answer:
        """Answer one POST: 400 what is not a notification, 413 one too big for a record, 200 when written (or
        already known), 202 when kept until Kafka answers, 503 when too many are kept already."""
        try:
            event = parse(body)
        except BadNotification as e:
            return Answer(400, {"error": str(e)})
        key = event.dedupe_key
        async with self._lock:
            # behind others kept for Kafka, it waits its turn without a read of its own
            fresh = await self._catch_up() if not self._pending else False
            if key in self._logged or key in self._pending:
                self.duplicates += 1
                log.info("alerts.duplicate", status=event.status, alerts=event.alertnames)
                return Answer(200, {"recorded": key in self._logged, "duplicate": True, "dedupe_key": key})
            if len(self._pending) >= MAX_PENDING:
                return Answer(503, {"error": f"{MAX_PENDING} notifications wait for Kafka already; try later"})
            now = time.time_ns()
            env = Envelope.new(event, ts_event=now, ts_init=now, source=KEY, key=KEY)
            if len(encode(env)) > MAX_RECORD_BYTES:
                return Answer(413, {"error": f"the notification's event is over {MAX_RECORD_BYTES} bytes"})
            self._pending[key] = _Pending(env)
            log.info("alerts.received", status=event.status, alerts=event.alertnames, receiver=event.receiver)
            # written now if it is alone and the log was just read (else Kafka is away: the background task writes it)
            written = await self._flush(read=True) if fresh and len(self._pending) == 1 else False
        body_out = {"recorded": written, "duplicate": False, "dedupe_key": key, "id": str(env.event_id)}
        return Answer(200 if written else 202, body_out)

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        """The last notifications, newest first: those still waiting for Kafka (``recorded`` false), then those in
        the log (written here, or read from it at start)."""
        waiting = [view(p.env, recorded=False) for p in reversed(self._pending.values())]
        return (waiting + [view(env) for env in reversed(self._recent)])[: max(0, limit)]

    def _logged_now(self, env: Envelope) -> None:
        self._logged[_event(env).dedupe_key] = None
        if len(self._logged) > MAX_KNOWN:
            del self._logged[next(iter(self._logged))]
        self._recent.append(env)

    async def _catch_up(self) -> bool:
        """Learn the notifications added to the log since the last read; False if Kafka did not answer."""
        try:
            envs = await asyncio.wait_for(self.read_log(), self.timeout)
        except Exception as exc:  # Kafka does not answer (or answers nonsense): read again next time
            log.debug("alerts.read_failed", error=repr(exc)[:300])
            return False
        for env in envs:
            key = _event(env).dedupe_key
            if key not in self._logged:
                self._logged_now(env)
            self._pending.pop(key, None)  # in the log already: written by an earlier send, or by another process
        return True

    async def _flush(self, *, read: bool = False) -> bool:
        """Write what waits, in order (under the lock; ``read``: the log was read just now); True when nothing waits
        any more."""
        while self._pending:
            key, p = next(iter(self._pending.items()))
            if p.ack is None:  # (again) to be sent: unless the log holds it by now
                if not read:
                    if not await self._catch_up():
                        return False
                    read = True
                    continue  # the read may have taken it off
                try:
                    p.ack = await asyncio.wait_for(self.send(p.env), self.timeout)
                except Exception as exc:  # not handed over (no metadata: Kafka is away): nothing in flight
                    log.debug("alerts.send_failed", error=repr(exc)[:300], pending=len(self._pending))
                    return False
            done, _ = await asyncio.wait([p.ack], timeout=self.timeout)
            if not done:  # in flight: the producer may still deliver it, so it is not sent again before it answers
                return False
            if p.ack.cancelled() or p.ack.exception() is not None:
                failure = None if p.ack.cancelled() else p.ack.exception()
                log.info("alerts.send_failed", error=repr(failure)[:300], pending=len(self._pending))
                p.ack, read = None, False  # it may have been written even so: the log is read before a resend
                return False
            del self._pending[key]
            self._logged_now(p.env)
            self.recorded += 1
            log.info("alerts.recorded", status=_event(p.env).status, alerts=_event(p.env).alertnames)
        return True

    async def _run(self, interval: float, refresh: float) -> None:
        read_at = -refresh
        while True:
            try:
                async with self._lock:
                    if self._pending:
                        await self._flush()  # which reads the log first
                    elif time.monotonic() - read_at >= refresh and await self._catch_up():
                        read_at = time.monotonic()
            except Exception as exc:  # never dies: the webhook goes on answering
                log.error("alerts.flush_crashed", error=repr(exc)[:300])
            await asyncio.sleep(interval)


class ControlTail:
    """The AlertNotified records of the control topic: its last :data:`HISTORY_TAIL` records per partition at the
    first read, then, at each read, those added since."""

    def __init__(self, bootstrap: str, topic: str, tail: int = HISTORY_TAIL) -> None:
        self._bootstrap, self._topic, self._tail = bootstrap, topic, tail
        self._consumer: AIOKafkaConsumer | None = None
        self._next: dict[TopicPartition, int] = {}

    async def _reader(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            c = make_consumer(self._bootstrap, group_id=None, client_id="engine-alerts")
            try:
                await c.start()
            except BaseException:
                await asyncio.shield(c.stop())
                raise
            self._consumer = c
        return self._consumer

    async def read_new(self) -> list[Envelope]:
        try:
            return await self._read()
        except BaseException:  # a timeout or an outage: a fresh reader next time, from where this one got
            await self.close()
            raise

    async def _read(self) -> list[Envelope]:
        c = await self._reader()
        parts = c.partitions_for_topic(self._topic)
        if not parts:
            await c._client.force_metadata_update()
            parts = c.partitions_for_topic(self._topic)
        if not parts:
            raise LookupError(f"topic {self._topic!r} not found")
        tps = [TopicPartition(self._topic, p) for p in sorted(parts)]
        end = await c.end_offsets(tps)
        if not self._next:
            begin = await c.beginning_offsets(tps)
            self._next = {tp: max(begin[tp], end[tp] - self._tail) for tp in tps}
        todo = {tp for tp in tps if self._next.setdefault(tp, 0) < end[tp]}
        if not todo:
            return []
        c.assign(sorted(todo, key=lambda tp: tp.partition))
        for tp in todo:
            c.seek(tp, self._next[tp])
        out: list[Envelope] = []
        while todo:
            for tp, msgs in (await c.getmany(*todo, timeout_ms=200, max_records=10_000)).items():
                for m in msgs:
                    self._next[tp] = m.offset + 1
                    if m.value is not None and any(k == "type" and bytes(v) == _TYPE for k, v in m.headers or ()):
                        try:
                            env = decode(m.value)
                        except DecodeError:
                            continue  # the projections park it; here it is no notification
                        if isinstance(env.event, AlertNotified):
                            out.append(env)
            for tp in list(todo):
                self._next[tp] = max(self._next[tp], await c.position(tp))
                if self._next[tp] >= end[tp]:
                    todo.discard(tp)
        out.sort(key=lambda env: env.ts_init)
        return out

    async def close(self) -> None:
        c, self._consumer = self._consumer, None
        if c is not None:
            await asyncio.shield(c.stop())
