"""The unit of work: the only place a connection is opened and a transaction committed.

A write unit of work starts with ``BEGIN IMMEDIATE`` on SQLite (one writer at a time, no lost
updates, no "database is locked" half-way through) and locks the pipeline row it changes with
``SELECT … FOR UPDATE`` on PostgreSQL. It rolls back unless ``commit()`` was called.

A writer locks its pipeline first: ``get_pipeline(id, lock=True)``, or ``get_pipeline_with(id, also)``,
which also reads the rows the writer needs next (`Also`) — in the same statement on SQLite.

The write paths talk SQLAlchemy Core on ``conn`` and change `Record`s (core/records.py), which
the unit of work writes back at commit; ``session`` is an ORM session on the same connection and
transaction, for the paths that read or write mapped objects. At commit, in this order: changed
records, work deferred to commit (facts derived from several rows), the audit chains' heads, the
stats counts (core/aggregates.py). So every writer takes its locks in one order: the pipeline
first; then its children and its chain's head (rows only that pipeline's writers touch); last, at
commit, rows shared across pipelines — a target's DORA facts, then the counters, in key order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from weakref import WeakKeyDictionary

from chainpipe.core.actor import Actor
from chainpipe.core.aggregates import count_change, count_row, upsert, upsert_counts
from chainpipe.core.clock import utcnow
from chainpipe.core.config import Settings, load_settings
from chainpipe.core.db import WRITE_OPTION, get_engine
from chainpipe.core.errors import ConfigError, NotFound
from chainpipe.core.models import AuditChain, AuditEvent, Deploy, Pipeline
from chainpipe.core.records import Record, defaults, insert_into, insert_rows, update_by_seq
from chainpipe.core.rules.chain import chain_of, link
from sqlalchemy import Connection, Engine, bindparam, select
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

PIPELINES, DEPLOYS, AUDIT, HEADS = Pipeline.__table__, Deploy.__table__, AuditEvent.__table__, AuditChain.__table__
_PIPELINE = select(PIPELINES).where(PIPELINES.c.id == bindparam("id"))
_PIPELINE_LOCKED = _PIPELINE.with_for_update()
_PIPELINE_AND_HEAD = (select(PIPELINES, HEADS.c.head_hash.label("chain_head"), HEADS.c.length.label("chain_length"))
                      .outerjoin(HEADS, HEADS.c.chain == bindparam("chain")).where(PIPELINES.c.id == bindparam("id")))


@dataclass(frozen=True, eq=False)
class Also:
    """Rows a writer reads right after locking a pipeline: ``columns`` over ``joins`` (tables
    joined to ``pipelines`` one after the other, each with its ON clause), in ``order``.

    On SQLite they come in the same statement as the pipeline and its chain's head (BEGIN IMMEDIATE
    already holds the database); on PostgreSQL in a second statement after the lock (a row joined
    to a FOR UPDATE read may be stale there). Either way: one row per match, or one row of NULLs.
    """

    columns: tuple
    joins: tuple = ()
    order: tuple = ()

    def alone(self):
        """The rows on their own, for the pipeline :id."""
        return self._statement(select(*self.columns), PIPELINES)

    def with_pipeline(self):
        """The pipeline, its chain's head (:chain) and the rows, in one statement."""
        columns = (*_PIPELINE_AND_HEAD.selected_columns, *(c.label(f"also_{i}") for i, c in enumerate(self.columns)))
        return self._statement(select(*columns), PIPELINES.outerjoin(HEADS, HEADS.c.chain == bindparam("chain")))

    def _statement(self, stmt, base):
        for table, on in self.joins:
            base = base.outerjoin(table, on)
        return stmt.select_from(base).where(PIPELINES.c.id == bindparam("id")).order_by(*self.order)


_DEPLOY = select(DEPLOYS).where(DEPLOYS.c.id == bindparam("id"))
_HEAD = select(HEADS.c.head_hash, HEADS.c.length).where(HEADS.c.chain == bindparam("chain"))
_HEAD_LOCKED = _HEAD.with_for_update()
_HEAD_UPDATE = HEADS.update().where(HEADS.c.chain == bindparam("c")).values(head_hash=bindparam("h"),
                                                                            length=bindparam("n"))
_write_binds: WeakKeyDictionary[Engine, Engine] = WeakKeyDictionary()
_PIPELINE_COLUMNS = [c.name for c in PIPELINES.c]
_statements: dict[tuple, object] = {}


def _statement(also: Also, with_pipeline: bool):
    """``also``'s statement, built once."""
    key = (also, with_pipeline)
    stmt = _statements.get(key)
    if stmt is None:
        stmt = _statements[key] = also.with_pipeline() if with_pipeline else also.alone()
    return stmt


def _write_bind(engine: Engine) -> Engine:
    """The engine with the write option (BEGIN IMMEDIATE on SQLite), made once per engine."""
    bind = _write_binds.get(engine)
    if bind is None:
        bind = _write_binds[engine] = engine.execution_options(**{WRITE_OPTION: True})
    return bind


class _Head:
    """A chain's head as this unit of work leaves it; ``stored``: its row exists."""

    __slots__ = ("hash", "length", "stored", "moved")

    def __init__(self, hash_: str | None, length: int, stored: bool):
        self.hash, self.length, self.stored, self.moved = hash_, length, stored, False


class UnitOfWork:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        write: bool = True,
        clock: Callable[[], datetime] = utcnow,
        chained: bool = True,
    ):
        """``chained=False`` writes audit rows without linking them (no head read, hash or head
        update): a measurement switch for bench/, which runs it on a database of its own — such
        rows do not verify."""
        self.settings = settings or load_settings()
        self.engine = get_engine(self.settings.database_url)
        self.write = write
        self.clock = clock
        self.chained = chained
        self._bind = _write_bind(self.engine) if write else self.engine
        self._conn: Connection | None = None
        self._session: Session | None = None

    def __enter__(self) -> UnitOfWork:
        self._conn = self._session = None
        self._heads: dict[str, _Head] = {}
        self._records: list[Record] = []
        self._counts: dict[tuple[str, str], int] = {}
        self._deferred: dict[str, tuple[Callable[[list], None], list]] = {}
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self._session is not None:
                self._session.close()
            if self._conn is not None:
                try:
                    if self._conn.in_transaction():
                        self._conn.rollback()
                finally:
                    self._conn.close()
        finally:
            self._conn = self._session = None
        if isinstance(exc, OperationalError):
            raise ConfigError(f"database unavailable: {str(exc.orig).strip().splitlines()[0]}") from None

    # ---- connection, session, transaction -------------------------------------------------------

    @property
    def conn(self) -> Connection:
        """The connection, its transaction begun (BEGIN IMMEDIATE for a writer on SQLite)."""
        if self._conn is None:
            self._conn = self._bind.connect()
            self._conn.begin()
        return self._conn

    @property
    def session(self) -> Session:
        """An ORM session inside this unit of work's transaction (it never commits it)."""
        if self._session is None:
            self._session = Session(bind=self.conn, expire_on_commit=False, autoflush=False,
                                    join_transaction_mode="rollback_only")
        return self._session

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def now(self) -> datetime:
        return self.clock()

    def commit(self) -> None:
        self.flush()
        if self._deferred:
            for then, items in self._deferred.values():
                then(items)
            self._deferred = {}
            self.flush()
        if self._session is not None:
            self._session.flush()
        self._store_heads()
        self._store_counts()
        if self._conn is not None:
            self._conn.commit()
        if self._session is not None:
            # Its transaction ended with the connection's; a later use starts afresh.
            self._session.close()
            self._session = None

    def defer(self, name: str, item, then: Callable[[list], None]) -> None:
        """Collect ``item`` under ``name``; at commit, once every change is written, ``then(items)``
        runs once (e.g. to re-derive facts that depend on several rows changed in this unit of work)."""
        entry = self._deferred.get(name)
        if entry is None:
            entry = self._deferred[name] = (then, [])
        if item not in entry[1]:
            entry[1].append(item)

    # ---- rows ----------------------------------------------------------------------------------

    def add(self, *objs) -> None:
        """Add mapped (ORM) objects; they are written at commit."""
        self.session.add_all(objs)

    def records(self, table, stmt, params: dict | None = None) -> list[Record]:
        """Run a Core SELECT over ``table``'s columns; its rows as Records whose changes are saved."""
        result = self.conn.execute(stmt, params)
        keys = list(result.keys())
        rows = [Record(table, dict(zip(keys, row, strict=True))) for row in result]
        self._records.extend(rows)
        return rows

    def track(self, row: Record) -> Record:
        """Save ``row``'s changes with the others' (a Record built from a joined read)."""
        self._records.append(row)
        return row

    def record(self, table, stmt, params: dict | None = None) -> Record | None:
        rows = self.records(table, stmt, params)
        return rows[0] if rows else None

    def insert(self, table, values: dict) -> Record:
        """INSERT one row now; returns it as a Record (with its ``seq``)."""
        result = self.conn.execute(insert_into(table), values)
        row = Record(table, defaults(table) | values)
        row._values["seq"] = result.inserted_primary_key[0]
        count_row(self._counts, table.name, row._values)
        self._records.append(row)
        return row

    def insert_many(self, table, rows: list[dict]) -> None:
        """INSERT several rows of one table in one multi-row statement."""
        self.conn.execute(insert_rows(table), rows).all()
        for values in rows:
            count_row(self._counts, table.name, defaults(table) | values)

    def flush(self) -> None:
        """Write every changed Record: one UPDATE per table and set of changed columns."""
        groups: dict[tuple, list[dict]] = {}
        for row in self._records:
            changes = row.changes()
            if not changes:
                continue
            table = row.table
            for column, (old, new) in changes.items():
                count_change(self._counts, table.name, column, old, new)
            groups.setdefault((table, tuple(sorted(changes))), []).append(
                {k: new for k, (_, new) in changes.items()} | {"pk_seq": row.seq})
            row.saved()
        for (table, _), params in groups.items():
            self.conn.execute(update_by_seq(table), params if len(params) > 1 else params[0])

    def _store_counts(self) -> None:
        rows = [{"name": name, "key": key, "n": n} for (name, key), n in sorted(self._counts.items()) if n]
        self._counts = {}
        if rows:
            self.conn.execute(upsert_counts(self.dialect), rows)

    # ---- pipelines and deploys -----------------------------------------------------------------

    def get_pipeline(self, pipeline_id: str, *, lock: bool = False) -> Record:
        return self._pipeline(pipeline_id, lock=lock)

    def get_pipeline_with(self, pipeline_id: str, also: Also, **params) -> tuple[Record, list]:
        """The pipeline, locked, and the rows ``also`` reads (as tuples of its columns)."""
        if self.dialect != "sqlite":
            return self.get_pipeline(pipeline_id, lock=True), self.rows_of(pipeline_id, also, **params)
        chain = f"pipeline:{pipeline_id}"
        rows = self.conn.execute(_statement(also, True), {"id": pipeline_id, "chain": chain} | params).all()
        if not rows:
            raise NotFound(f"pipeline not found: {pipeline_id}")
        split = len(_PIPELINE_AND_HEAD.selected_columns)
        self._seed_head(chain, rows[0][split - 2], rows[0][split - 1])
        pipeline = self.track(Record(PIPELINES, dict(zip(_PIPELINE_COLUMNS, rows[0][:split - 2], strict=True))))
        return pipeline, [row[split:] for row in rows]

    def rows_of(self, pipeline_id: str, also: Also, **params) -> list:
        """The rows ``also`` reads for the pipeline, without locking it."""
        return list(self.conn.execute(_statement(also, False), {"id": pipeline_id} | params))

    def _pipeline(self, pipeline_id: str, *, lock: bool) -> Record:
        if lock and self.dialect == "sqlite":
            chain = f"pipeline:{pipeline_id}"
            row = self.record(PIPELINES, _PIPELINE_AND_HEAD, {"id": pipeline_id, "chain": chain})
            if row is not None:
                self._seed_head(chain, row._values.pop("chain_head"), row._values.pop("chain_length"))
        else:
            row = self.record(PIPELINES, _PIPELINE_LOCKED if lock else _PIPELINE, {"id": pipeline_id})
        if row is None:
            raise NotFound(f"pipeline not found: {pipeline_id}")
        return row

    def _seed_head(self, chain: str, head: str | None, length: int | None) -> None:
        """The chain's head, read with the pipeline under SQLite's BEGIN IMMEDIATE."""
        if chain not in self._heads:
            self._heads[chain] = _Head(head or None, length or 0, length is not None)

    def get_deploy(self, deploy_id: str, *, lock: bool = False) -> Record:
        row = self.record(DEPLOYS, _DEPLOY, {"id": deploy_id})
        if row is None:
            raise NotFound(f"deploy not found: {deploy_id}")
        if lock:
            # Lock the owning pipeline first (one lock order for every writer). On PostgreSQL the
            # deploy is read again under that lock; SQLite's BEGIN IMMEDIATE held it all along.
            self.get_pipeline(row.pipeline_id, lock=True)
            if self.dialect != "sqlite":
                self._records.remove(row)
                row = self.record(DEPLOYS, _DEPLOY, {"id": deploy_id})
        return row

    # ---- the audit and its chains --------------------------------------------------------------

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
    ) -> dict:
        """Write an audit row, linked into its chain (the caller holds the lock of what it changes)."""
        row = {
            "at": self.now(), "actor": actor.name, "surface": actor.surface, "entity": entity,
            "entity_id": entity_id, "pipeline_id": pipeline_id, "action": action, "from_state": from_state,
            "to_state": to_state, "reason": reason, "run_url": actor.run_url,
            "data": json.dumps(data or {}, ensure_ascii=False, sort_keys=True), "principal": actor.principal,
            "on_behalf_of": actor.on_behalf_of, "chain": chain or chain_of(entity, entity_id, pipeline_id, data),
            "prev_hash": None, "hash": "",
        }
        if self.chained:
            head = self._head(row["chain"])
            row["prev_hash"] = head.hash
            row["hash"] = head.hash = link(head.hash, row)
            head.length += 1
            head.moved = True
        self.conn.execute(insert_into(AUDIT), row)
        return row

    def new_chain(self, chain: str) -> None:
        """A chain that cannot exist yet (a pipeline created in this unit of work): no head to read."""
        self._heads[chain] = _Head(None, 0, stored=False)

    def _head(self, chain: str) -> _Head:
        """The chain's head as this unit of work last left it; read (and locked) on first use."""
        head = self._heads.get(chain)
        if head is None:
            postgres = self.dialect == "postgresql"
            row = self.conn.execute(_HEAD_LOCKED if postgres else _HEAD, {"chain": chain}).first()
            if row is None and postgres:
                # The chain's first writers race to create its head row, then queue on its lock.
                self.conn.execute(upsert(HEADS, "postgresql").on_conflict_do_nothing(index_elements=["chain"]),
                                  {"chain": chain, "head_hash": "", "length": 0})
                row = self.conn.execute(_HEAD_LOCKED, {"chain": chain}).first()
            head = self._heads[chain] = _Head(row[0] or None, row[1], True) if row else _Head(None, 0, False)
        return head

    def _store_heads(self) -> None:
        for chain, head in self._heads.items():
            if not head.moved:
                continue
            if head.stored:
                self.conn.execute(_HEAD_UPDATE, {"c": chain, "h": head.hash, "n": head.length})
            else:
                self.conn.execute(insert_into(HEADS), {"chain": chain, "head_hash": head.hash, "length": head.length})
                head.stored = True
            head.moved = False

