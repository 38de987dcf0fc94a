"""The server's view of a database outage (``bot.outage.Outage``) with a fixed clock: one line
when it starts, one when it ends, whatever the number and order of the calls in between."""

from __future__ import annotations

import logging

import pytest
from chainpipe.bot.outage import DatabaseUnavailable, Outage, is_outage
from chainpipe.core.errors import ConfigError, NotFound
from sqlalchemy.exc import InterfaceError, OperationalError


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lost():
    raise OperationalError("SELECT 1", {}, Exception("connection refused\nIs the server running?"))


def answered():
    return "ok"


@pytest.fixture
def outage(caplog):
    caplog.set_level(logging.INFO, "chainpipe.server")
    clock = Clock()
    watched = Outage(clock=clock)
    watched.clock = clock
    return watched


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "chainpipe.server"]


def test_one_line_when_it_starts_and_one_when_it_ends(outage, caplog):
    assert outage.call(answered) == "ok" and lines(caplog) == []
    for _ in range(3):
        with pytest.raises(DatabaseUnavailable) as raised:
            outage.call(lost)
        assert str(raised.value) == "database unavailable, try again"
        outage.clock.now += 1
    assert lines(caplog) == ["database unavailable: connection refused; answering 503 until it is back"]
    outage.call(answered)
    outage.call(answered)
    assert lines(caplog)[1:] == ["database available again after 3.0 s (3 attempts refused meanwhile)"]
    assert not [r for r in caplog.records if r.exc_info]


def test_a_straggler_from_before_the_recovery_opens_no_new_outage(outage, caplog):
    with pytest.raises(DatabaseUnavailable):
        outage.call(lost)
    straggler_started = outage.clock.now
    outage.clock.now += 1
    outage.call(answered)  # the database is back
    outage.clock.now += 1
    outage.down(OperationalError("SELECT 1", {}, Exception("refused")), straggler_started)
    assert len(lines(caplog)) == 2
    outage.clock.now += 1
    with pytest.raises(DatabaseUnavailable):
        outage.call(lost)  # a failure that began after the recovery is a new outage
    assert len(lines(caplog)) == 3


@pytest.mark.parametrize("error, lost_database", [
    (OperationalError("x", {}, Exception("gone")), True),
    (InterfaceError("x", {}, Exception("connection already closed")), True),
    (ConfigError("database unavailable: connection refused"), True),
    (DatabaseUnavailable("gone"), True),
    (ConfigError("PIPE_CONFIG names a missing file"), False),
    (NotFound("pipeline not found: pipe-1"), False),
    (KeyError("x"), False),
])
def test_what_counts_as_a_lost_database(error, lost_database):
    assert is_outage(error) is lost_database


def test_other_errors_pass_through_and_say_nothing_about_the_database(outage, caplog):
    def refused():
        raise NotFound("pipeline not found: pipe-1")

    with pytest.raises(NotFound):
        outage.call(refused)
    assert lines(caplog) == []
