"""Schema migrations after the first release, one function each, listed in core.db.MIGRATIONS.

Each step is idempotent (it looks before it changes), runs inside the upgrade's transaction, and
works on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json

from chainpipe.core.aggregates import fill_all
from chainpipe.core.models import UNRECORDED, ApiToken, AuditChain, AuditEvent, DoraDay, DoraDeployment, StatCount
from chainpipe.core.rules.chain import chain_of, link
from sqlalchemy import Connection, inspect, select, text


def _columns(conn: Connection, table: str) -> set[str]:
    return {c["name"] for c in inspect(conn).get_columns(table)}


def principals(conn: Connection) -> None:
    """Every change names the principal that proved it; tokens gain kinds (personal / service).

    Rows written before have the principal ``unrecorded``. Every existing token becomes a service
    token (it acted as itself, or named the actor with X-Pipe-Actor), and a revoked token's name
    becomes free for a new token (unique among active tokens only).
    """
    for table in ("audit_events", "approvals"):
        have = _columns(conn, table)
        if "principal" not in have:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN principal VARCHAR(200) NOT NULL "
                              f"DEFAULT '{UNRECORDED}'"))
        if "on_behalf_of" not in have:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN on_behalf_of VARCHAR(200)"))
    if "kind" in _columns(conn, "api_tokens"):
        return
    if conn.dialect.name == "postgresql":
        conn.execute(text("ALTER TABLE api_tokens DROP CONSTRAINT IF EXISTS api_tokens_name_key"))
        conn.execute(text("ALTER TABLE api_tokens ADD COLUMN kind VARCHAR(16) NOT NULL DEFAULT 'service'"))
        conn.execute(text("ALTER TABLE api_tokens ADD COLUMN person VARCHAR(200)"))
        for index in ApiToken.__table__.indexes:
            index.create(conn, checkfirst=True)
        return
    # SQLite cannot drop a UNIQUE constraint: rebuild the small table from the current model.
    conn.execute(text("ALTER TABLE api_tokens RENAME TO api_tokens_before_kinds"))
    ApiToken.__table__.create(conn)
    conn.execute(text(
        "INSERT INTO api_tokens (seq, id, name, token_hash, created_by, created_at, revoked_at, last_used_at, "
        "allow_actor_header, kind, person) SELECT seq, id, name, token_hash, created_by, created_at, revoked_at, "
        "last_used_at, allow_actor_header, 'service', NULL FROM api_tokens_before_kinds"
    ))
    conn.execute(text("DROP TABLE api_tokens_before_kinds"))


def audit_chain(conn: Connection) -> None:
    """Link every existing audit row into its chain, in write order, and record each chain's head."""
    have = _columns(conn, "audit_events")
    for name, ddl in (("chain", "VARCHAR(240) NOT NULL DEFAULT 'global'"), ("prev_hash", "VARCHAR(64)"),
                      ("hash", "VARCHAR(64) NOT NULL DEFAULT ''")):
        if name not in have:
            conn.execute(text(f"ALTER TABLE audit_events ADD COLUMN {name} {ddl}"))
    AuditChain.__table__.create(conn, checkfirst=True)
    for index in AuditEvent.__table__.indexes:
        index.create(conn, checkfirst=True)
    if conn.execute(text("SELECT COUNT(*) FROM audit_chains WHERE length > 0")).scalar():
        return
    table = AuditEvent.__table__
    heads: dict[str, tuple[str, int]] = {}
    last = 0
    while True:  # in batches, so a large log is linked in bounded memory
        batch = conn.execute(select(table).where(table.c.seq > last).order_by(table.c.seq).limit(5000)).all()
        if not batch:
            break
        for row in batch:
            values = dict(row._mapping)
            values["chain"] = chain_of(values["entity"], values["entity_id"], values["pipeline_id"],
                                       json.loads(values["data"] or "{}"))
            prev, length = heads.get(values["chain"], (None, 0))
            digest = link(prev, values)
            conn.execute(table.update().where(table.c.seq == values["seq"])
                         .values(chain=values["chain"], prev_hash=prev, hash=digest))
            heads[values["chain"]] = (digest, length + 1)
        last = batch[-1].seq
    chains = AuditChain.__table__
    for chain, (head, length) in heads.items():
        if conn.execute(select(chains.c.chain).where(chains.c.chain == chain)).first():
            conn.execute(chains.update().where(chains.c.chain == chain).values(head_hash=head, length=length))
        else:
            conn.execute(chains.insert().values(chain=chain, head_hash=head, length=length))


def review_evidence(conn: Connection) -> None:
    """Approvals record what they covered; deploys record what was reviewed (empty for older rows)."""
    if "covered" not in _columns(conn, "approvals"):
        conn.execute(text("ALTER TABLE approvals ADD COLUMN covered TEXT NOT NULL DEFAULT '[]'"))
    if "evidence" not in _columns(conn, "deploys"):
        conn.execute(text("ALTER TABLE deploys ADD COLUMN evidence TEXT"))


def governed_times(conn: Connection) -> None:
    """Governed pipelines record when they were first activated and when archived; older rows get
    the time of their first recorded activation / archive from the audit trail."""
    have = _columns(conn, "gov_pipelines")
    for name in ("activated_at", "archived_at"):
        if name not in have:
            kind = "TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"
            conn.execute(text(f"ALTER TABLE gov_pipelines ADD COLUMN {name} {kind}"))
    for column, action in (("activated_at", "activate"), ("archived_at", "archive")):
        conn.execute(text(
            f"UPDATE gov_pipelines SET {column} = (SELECT MIN(a.at) FROM audit_events a WHERE a.entity = "
            f"'gov-pipeline' AND a.entity_id = gov_pipelines.id AND a.action = '{action}') WHERE {column} IS NULL"
        ))


def stats_aggregates(conn: Connection) -> None:
    """`pipe stats` reads aggregates the write paths keep (core/aggregates.py): create their tables
    and compute them once from the rows already stored."""
    for model in (StatCount, DoraDeployment, DoraDay):
        model.__table__.create(conn, checkfirst=True)
    fill_all(conn)
