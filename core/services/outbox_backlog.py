"""How far behind each outbox consumer is, for the server's metrics: the events it will still
deliver (unclaimed, claimed or waiting for a retry) and when the oldest of them happened.

"Will still deliver" is read as the notifier reads it: events above its floor (the highest seq it
has seen, less ``LOOKBACK``); an event it gave up on (``failed: …``) is not backlog but a failure.
"""

from __future__ import annotations

from datetime import datetime

from chainpipe.core.models import AuditEvent, OutboxDelivery
from chainpipe.core.services.notifications import LOOKBACK, high_water
from chainpipe.core.uow import UnitOfWork
from sqlalchemy import and_, func, or_, select


def consumers(uow: UnitOfWork) -> list[str]:
    """Every consumer that has claimed an event so far."""
    return sorted(uow.session.execute(select(OutboxDelivery.consumer).distinct()).scalars())


def backlog(uow: UnitOfWork, consumer: str) -> tuple[int, datetime | None]:
    """(undelivered events, the time of the oldest) for ``consumer``."""
    floor = max(0, high_water(uow, consumer) - LOOKBACK)
    join = and_(OutboxDelivery.consumer == consumer, OutboxDelivery.audit_seq == AuditEvent.seq)
    pending = or_(OutboxDelivery.seq.is_(None), OutboxDelivery.result == "claimed",
                  OutboxDelivery.result.like("retry %"))
    stmt = (select(func.count(), func.min(AuditEvent.at)).select_from(AuditEvent)
            .join(OutboxDelivery, join, isouter=True).where(AuditEvent.seq > floor, pending))
    count, oldest = uow.session.execute(stmt).one()
    return int(count), oldest
