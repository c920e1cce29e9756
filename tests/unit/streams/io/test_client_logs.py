"""The Kafka client's repeated errors are limited to one of a kind per interval, with a count."""

from __future__ import annotations

import logging

import pytest

from streams.io.kafka import CLIENT_LOGGERS, RepeatLimiter, limit_repeated_client_errors


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def client_log(caplog):
    """aiokafka's client logger ("aiokafka") with a limiter of its own (30 s, on a clock the test moves)."""
    clock = Clock()
    logger = logging.getLogger("aiokafka")
    installed = [f for f in logger.filters if isinstance(f, RepeatLimiter)]  # by an app made earlier
    for other in installed:
        logger.removeFilter(other)
    limiter = RepeatLimiter(every_s=30, clock=clock)
    logger.addFilter(limiter)
    caplog.set_level(logging.INFO, logger="aiokafka")
    yield logger, clock, caplog
    logger.removeFilter(limiter)
    for other in installed:
        logger.addFilter(other)


def test_an_outage_logs_each_kind_of_error_once_per_interval_with_a_count(client_log):
    logger, clock, caplog = client_log
    for second in range(90):  # aiokafka during a 90 s outage: two kinds, several a second
        clock.now = float(second)
        for _ in range(5):
            logger.error("Unable connect to node with id %s: %s", 111, "Connection refused")
            logger.error("Unable to update metadata from %s", [111])
    messages = [r.getMessage() for r in caplog.records]
    connect = [m for m in messages if m.startswith("Unable connect")]
    assert connect == [
        "Unable connect to node with id 111: Connection refused",
        "Unable connect to node with id 111: Connection refused (and 149 more like it in the last 30 s)",
        "Unable connect to node with id 111: Connection refused (and 149 more like it in the last 30 s)",
    ]
    assert len(messages) == 6  # the metadata errors the same way


def test_information_and_other_loggers_pass(client_log):
    logger, _, caplog = client_log
    for _ in range(3):
        logger.info("Discovered coordinator %s", 111)
        logging.getLogger("aiokafka.somewhere_else").error("not limited here")
    assert len(caplog.records) == 6


def test_the_limiter_is_installed_once_on_each_client_logger():
    limit_repeated_client_errors()
    limit_repeated_client_errors()
    for name in CLIENT_LOGGERS:
        limiters = [f for f in logging.getLogger(name).filters if isinstance(f, RepeatLimiter)]
        assert len(limiters) == 1
