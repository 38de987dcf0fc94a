"""The unit of work keeps only what was committed: a write without commit(), a write after it, and
a write cut short by an error leave nothing behind (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from chainpipe.core.models import AuditEvent
from chainpipe.core.uow import UnitOfWork
from sqlmodel import func, select


def audit_rows(settings) -> list[str]:
    with UnitOfWork(settings, write=False) as uow:
        return sorted(uow.session.exec(select(AuditEvent.entity_id)).all())


def write(uow: UnitOfWork, actor, entity_id: str) -> None:
    uow.audit(actor, "pipeline", entity_id, "note")
    uow.session.flush()  # the row is in the database's transaction, not only in the session
    assert uow.session.exec(select(func.count()).select_from(AuditEvent)).one() >= 1


def test_a_write_without_commit_is_rolled_back(settings, alice):
    with UnitOfWork(settings) as uow:
        write(uow, alice, "pipe-uncommitted")
    assert audit_rows(settings) == []


def test_only_what_was_committed_is_kept(settings, alice):
    with UnitOfWork(settings) as uow:
        write(uow, alice, "pipe-committed")
        uow.commit()
        write(uow, alice, "pipe-after-commit")
    assert audit_rows(settings) == ["pipe-committed"]


def test_an_error_inside_rolls_back_and_leaves_the_database_writable(settings, alice):
    with pytest.raises(RuntimeError), UnitOfWork(settings) as uow:
        write(uow, alice, "pipe-broken")
        raise RuntimeError("boom")
    assert audit_rows(settings) == []
    with UnitOfWork(settings) as uow:  # no lock left behind: the next writer gets in at once
        write(uow, alice, "pipe-next")
        uow.commit()
    assert audit_rows(settings) == ["pipe-next"]


def test_times_come_back_aware_in_utc_and_missing_ones_as_none(settings, alice):
    """``UTCDateTime``: SQLite keeps no zone, so the read puts UTC back (its own processor on
    SQLite); PostgreSQL returns aware values. Either way a time written in another zone reads
    back as the same instant."""
    from datetime import datetime, timedelta, timezone

    from chainpipe.core.models import Pipeline

    table = Pipeline.__table__
    written = datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=timezone(timedelta(hours=-7)))
    with UnitOfWork(settings) as uow:
        uow.conn.execute(table.insert().values(id="pipe-tz", name="tz", template="feature", status="pending",
                                               created_by="alice", created_at=written, updated_at=written))
        uow.commit()
    with UnitOfWork(settings, write=False) as uow:
        created, started = uow.conn.execute(select(table.c.created_at, table.c.started_at)
                                            .where(table.c.id == "pipe-tz")).one()
        dialect = uow.dialect
    assert started is None
    assert created == written and created.tzinfo is not None
    if dialect == "sqlite":  # PostgreSQL answers in the session's zone: the same instant
        assert created.isoformat() == "2026-03-29T08:30:15.123456+00:00"
