"""The unit of work: the only place a session is opened and committed.

A write unit of work starts with ``BEGIN IMMEDIATE`` on SQLite (one writer at a time, no lost
updates, no "database is locked" half-way through) and locks the pipeline row it changes with
``SELECT … FOR UPDATE`` on PostgreSQL. It rolls back unless ``commit()`` was called.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from core.actor import Actor
from core.clock import utcnow
from core.config import Settings, load_settings
from core.db import WRITE_OPTION, get_engine
from core.errors import ConfigError, NotFound
from core.models import AuditEvent, Deploy, Pipeline


class UnitOfWork:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        write: bool = True,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.settings = settings or load_settings()
        self.engine = get_engine(self.settings.database_url)
        self.write = write
        self.clock = clock
        self.session: Session | None = None
        self._committed = False

    def __enter__(self) -> UnitOfWork:
        bind = self.engine.execution_options(**{WRITE_OPTION: True}) if self.write else self.engine
        self.session = Session(bind=bind, expire_on_commit=False, autoflush=False)
        self._committed = False
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if not self._committed:
                self.session.rollback()
        finally:
            self.session.close()
        if isinstance(exc, OperationalError):
            raise ConfigError(f"database unavailable: {str(exc.orig).strip().splitlines()[0]}") from None

    def commit(self) -> None:
        self.session.commit()
        self._committed = True

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def now(self) -> datetime:
        return self.clock()

    def add(self, *objs) -> None:
        self.session.add_all(objs)

    def get_pipeline(self, pipeline_id: str, *, lock: bool = False) -> Pipeline:
        stmt = select(Pipeline).where(Pipeline.id == pipeline_id)
        if lock:
            stmt = stmt.with_for_update()
        row = self.session.exec(stmt).first()
        if row is None:
            raise NotFound(f"pipeline not found: {pipeline_id}")
        return row

    def get_deploy(self, deploy_id: str, *, lock: bool = False) -> Deploy:
        row = self.session.exec(select(Deploy).where(Deploy.id == deploy_id)).first()
        if row is None:
            raise NotFound(f"deploy not found: {deploy_id}")
        if lock:
            # Lock the owning pipeline first (one lock order for every writer), then re-read.
            self.get_pipeline(row.pipeline_id, lock=True)
            self.session.refresh(row)
        return row

    def audit(
        self,
        actor: Actor,
        entity: str,
        entity_id: str,
        action: str,
        *,
        pipeline_id: str | None = None,
        from_state: str | None = None,
        to_state: str | None = None,
        reason: str | None = None,
        data: dict | None = None,
    ) -> AuditEvent:
        event = AuditEvent(
            at=self.now(),
            actor=actor.name,
            surface=actor.surface,
            entity=entity,
            entity_id=entity_id,
            pipeline_id=pipeline_id,
            action=action,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            run_url=actor.run_url,
            data=json.dumps(data or {}, ensure_ascii=False, sort_keys=True),
            principal=actor.principal,
            on_behalf_of=actor.on_behalf_of,
        )
        self.session.add(event)
        return event
