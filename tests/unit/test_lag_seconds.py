"""How long a projection trails the log, in seconds: the time the oldest event it has not applied has been waiting,
as the projection saw the log end move. A quiet spell or a broker outage before an event must not read as lag."""

from __future__ import annotations

from projections.lag import PartitionLag

S = 1_000_000_000  # ns in a second


def caught_up_at(t: int, offset: int = 10) -> PartitionLag:
    lag = PartitionLag(next_offset=offset, log_end=offset)
    lag.applied(offset, last_ts_init=t)
    return lag


def test_a_new_event_after_a_quiet_hour_is_as_old_as_it_is_not_an_hour() -> None:
    lag = caught_up_at(0)
    lag.observe_end(11, now_ns=3600 * S)  # the first event for an hour (or since Kafka came back)
    assert lag.events == 1
    assert lag.seconds(now_ns=3600 * S + S // 2) == 0.5
    lag.applied(11, last_ts_init=3600 * S)
    assert lag.events == 0 and lag.seconds(now_ns=3700 * S) == 0.0


def test_a_projection_that_falls_behind_shows_the_wait_of_its_oldest_unapplied_event() -> None:
    lag = caught_up_at(0)
    lag.observe_end(20, now_ns=100 * S)  # 10 events seen at t=100
    lag.observe_end(30, now_ns=110 * S)  # 10 more at t=110
    assert lag.seconds(now_ns=130 * S) == 30.0  # the oldest unapplied was there at 100
    lag.applied(15, last_ts_init=99 * S)  # part of the first stretch: its oldest is still from t=100
    assert lag.seconds(now_ns=131 * S) == 31.0
    lag.applied(20, last_ts_init=100 * S)  # the first stretch done: the oldest now is from t=110
    assert lag.seconds(now_ns=131 * S) == 21.0
    lag.observe_end(30, now_ns=140 * S)  # looking again at the same end changes nothing
    assert lag.seconds(now_ns=141 * S) == 31.0
    lag.applied(30, last_ts_init=110 * S)
    assert lag.seconds(now_ns=150 * S) == 0.0


def test_a_backlog_found_at_start_counts_from_when_it_was_found() -> None:
    lag = PartitionLag(next_offset=0, log_end=1000)
    assert lag.events == 1000
    found = lag.seconds()
    assert 0.0 <= found < 5.0  # found just now, not "since the beginning of time"


def test_a_recreated_topic_forgets_what_it_saw_beyond_its_new_end() -> None:
    lag = caught_up_at(0, offset=50)
    lag.observe_end(60, now_ns=10 * S)
    lag.observe_end(5, now_ns=20 * S)
    assert lag.events == 0 and lag.seconds(now_ns=30 * S) == 0.0
