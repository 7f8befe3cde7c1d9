from __future__ import annotations

import logging

import pytest

from tasks.coordination.outages import Outages, Service

REDIS = Service("Redis at 127.0.0.1:1/0", "check REDIS_URL and that Redis runs")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def outages(clock: Clock) -> Outages:
    return Outages("dispatch", logging.getLogger("test.outages"), repeat_s=60, clock=clock)


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "test.outages"]


def test_a_service_down_for_a_while_is_said_once_then_once_a_minute_then_back(
    outages: Outages, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for _ in range(150):  # 150 ticks of 1 s
        outages.failed(ConnectionError("Connection refused"), REDIS)
        clock.now += 1
    outages.answered()
    said = lines(caplog)
    assert len(said) == 4, said  # gone, still at 60 s, still at 120 s, back
    assert "Redis at 127.0.0.1:1/0 does not answer (ConnectionError: Connection refused)" in said[0]
    assert "check REDIS_URL" in said[0]
    assert "still failing after 60 s (61 attempts" in said[1]
    assert "still failing after 2 min (121 attempts" in said[2]
    assert said[3] == "dispatch: Redis at 127.0.0.1:1/0 answers again, after 2 min 30 s down"
    assert not any(r.exc_info for r in caplog.records)


def test_an_unexpected_error_shows_its_traceback_once(
    outages: Outages, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(10):
        outages.failed(KeyError("limits"), None)
        clock.now += 2
    records = [r for r in caplog.records if r.name == "test.outages"]
    assert len(records) == 1 and records[0].exc_info is not None
    outages.answered()
    assert "KeyError answers again" in lines(caplog)[-1]


def test_nothing_is_said_while_all_answers(
    outages: Outages, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(5):
        outages.answered()
    assert lines(caplog) == []
