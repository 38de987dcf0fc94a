"""Schema migrations after the first release, one function each, listed in core.db.MIGRATIONS.

Each step is idempotent (it looks before it changes), runs inside the upgrade's transaction, and
works on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import Connection, inspect, text

from core.models import UNRECORDED, ApiToken


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
