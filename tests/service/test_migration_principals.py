"""The principals migration: old rows say `unrecorded`, old tokens become service tokens, and a
revoked token's name is free again — on SQLite (table rebuilt) and PostgreSQL (constraint dropped)."""

from __future__ import annotations

from chainpipe.core import db
from chainpipe.core.actor import Actor
from chainpipe.core.services.tokens import create_token, revoke_token
from sqlalchemy import inspect, text

from tests.service.helpers import new_pipeline

BEFORE = 2  # the version before principals


def _make_old(url: str) -> None:
    engine = db.get_engine(url)
    with engine.begin() as conn:
        for table in ("audit_events", "approvals"):
            conn.execute(text(f"ALTER TABLE {table} DROP COLUMN principal"))
            conn.execute(text(f"ALTER TABLE {table} DROP COLUMN on_behalf_of"))
        conn.execute(text("DROP INDEX ux_api_tokens_active_name"))
        conn.execute(text("ALTER TABLE api_tokens DROP COLUMN kind"))
        conn.execute(text("ALTER TABLE api_tokens DROP COLUMN person"))
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_name_key UNIQUE (name)"))
        conn.execute(text("UPDATE schema_version SET version = :v"), {"v": BEFORE})
    db.dispose_engines()


def test_old_rows_and_tokens_are_carried_into_principals(settings, run, alice):
    pid = new_pipeline(run, alice)
    old = run(create_token, Actor("admin"), "ci", allow_actor_header=True)
    run(revoke_token, Actor("admin"), "ci")
    _make_old(settings.database_url)
    engine = db.get_engine(settings.database_url, upgrade=True)
    assert db.schema_version(engine) == db.LATEST
    with engine.connect() as conn:
        principals = {r[0] for r in conn.execute(text("SELECT principal FROM audit_events WHERE pipeline_id = :p"),
                                                 {"p": pid})}
        tokens = list(conn.execute(text("SELECT id, kind, person, revoked_at FROM api_tokens")))
    assert principals == {"unrecorded"}
    assert [(t.id, t.kind, t.person) for t in tokens] == [(old["id"], "service", None)]
    assert {"kind", "person"} <= {c["name"] for c in inspect(engine).get_columns("api_tokens")}
    again = run(create_token, Actor("admin"), "ci")
    assert again["kind"] == "service" and again["active"]
