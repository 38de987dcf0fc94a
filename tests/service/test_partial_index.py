"""The active-token-name index is partial (``WHERE revoked_at IS NULL``) on each database, though
its condition is handed to the dialect only when the index is created (core/models.py
`partial_index`): one active token per name, any number of revoked ones."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from chainpipe.core import db
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

INSERT = text("INSERT INTO api_tokens (id, name, token_hash, created_by, created_at, revoked_at, "
              "allow_actor_header, kind) VALUES (:id, 'ci', :hash, 'alice', :at, :revoked, false, 'service')")


def test_one_active_token_per_name_and_any_number_revoked(settings):
    engine = db.get_engine(settings.database_url)
    at = datetime(2026, 11, 2, tzinfo=timezone.utc)
    with engine.begin() as conn:
        for n in range(2):
            conn.execute(INSERT, {"id": f"tok-old{n}", "hash": f"h-old{n}", "at": at, "revoked": at})
        conn.execute(INSERT, {"id": "tok-new", "hash": "h-new", "at": at, "revoked": None})
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(INSERT, {"id": "tok-dup", "hash": "h-dup", "at": at, "revoked": None})


def test_a_rebuilt_token_table_keeps_the_partial_index(settings):
    """What the token-kinds migration does on SQLite (and creates index by index on PostgreSQL)."""
    from chainpipe.core.models import ApiToken

    engine = db.get_engine(settings.database_url)
    at = datetime(2026, 11, 2, tzinfo=timezone.utc)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE api_tokens"))
        ApiToken.__table__.create(conn)
        conn.execute(INSERT, {"id": "tok-old", "hash": "h-old", "at": at, "revoked": at})
        conn.execute(INSERT, {"id": "tok-new", "hash": "h-new", "at": at, "revoked": None})
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(INSERT, {"id": "tok-dup", "hash": "h-dup", "at": at, "revoked": None})
