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
from core.models import AuditChain, AuditEvent, Deploy, Pipeline
from core.rules.chain import chain_of, link


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
        self._heads: dict[str, list] = {}  # chain -> [head hash, length, stored?]

    def __enter__(self) -> UnitOfWork:
        bind = self.engine.execution_options(**{WRITE_OPTION: True}) if self.write else self.engine
        self.session = Session(bind=bind, expire_on_commit=False, autoflush=False)
        self._committed = False
        self._heads = {}
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
        self._store_heads()
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
        chain: str | None = None,
    ) -> AuditEvent:
        """Write an audit row, linked into its chain (the caller holds the lock of what it changes)."""
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
            chain=chain or chain_of(entity, entity_id, pipeline_id, data),
        )
        head = self._head(event.chain)
        event.prev_hash = head[0]
        event.hash = link(head[0], event.model_dump())
        head[0], head[1] = event.hash, head[1] + 1
        self.session.add(event)
        return event

    def _head(self, chain: str) -> list:
        """The chain's head as this unit of work last left it; read (and locked) on first use."""
        head = self._heads.get(chain)
        if head is None:
            stmt = select(AuditChain.head_hash, AuditChain.length).where(AuditChain.chain == chain)
            if self.dialect == "postgresql":
                stmt = stmt.with_for_update()
            row = self.session.execute(stmt).first()
            head = self._heads[chain] = [row[0] or None, row[1], True] if row else [None, 0, False]
        return head

    def _store_heads(self) -> None:
        table = AuditChain.__table__
        for chain, (last, length, stored) in self._heads.items():
            if stored:
                self.session.execute(table.update().where(table.c.chain == chain)
                                     .values(head_hash=last, length=length))
            elif length:
                self.session.execute(table.insert().values(chain=chain, head_hash=last, length=length))
            self._heads[chain][2] = True
