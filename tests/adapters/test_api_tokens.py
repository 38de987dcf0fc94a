"""`pipe token …`: the secret is printed once and only its hash is stored."""

from __future__ import annotations

import hashlib
import json

from chainpipe.cli.main import app
from chainpipe.core.config import load_settings
from chainpipe.core.models import ApiToken
from chainpipe.core.uow import UnitOfWork
from sqlmodel import select
from typer.testing import CliRunner


def pipe(env, *args):
    return CliRunner().invoke(app, list(args), env=env | {"PIPE_ACTOR": "admin"})


def test_create_prints_the_token_once_and_stores_only_its_hash(env, config_file):
    created = pipe(env, "token", "create", "--name", "ci")
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip()
    assert secret.startswith("cp_") and len(secret) > 40
    with UnitOfWork(load_settings(env), write=False) as uow:
        [row] = uow.session.exec(select(ApiToken)).all()
        assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest() and secret not in row.token_hash
        assert row.allow_actor_header is False and row.created_by == "admin"
    listed = pipe(env, "token", "list", "--json")
    assert secret not in listed.stdout
    assert [(t["name"], t["active"]) for t in json.loads(listed.stdout)] == [("ci", True)]


def test_names_are_unique_and_revoke_is_idempotent(env, config_file):
    assert pipe(env, "token", "create", "--name", "ci", "--allow-actor-header").exit_code == 0
    again = pipe(env, "token", "create", "--name", "ci")
    assert again.exit_code == 1 and "already exists" in again.output
    assert "token ci revoked" in pipe(env, "token", "revoke", "ci").stdout
    assert "already revoked" in pipe(env, "token", "revoke", "ci").stdout
    missing = pipe(env, "token", "revoke", "nope")
    assert missing.exit_code == 1 and "token not found: nope" in missing.output
    [row] = json.loads(pipe(env, "token", "list", "--json").stdout)
    assert row["active"] is False and row["allow_actor_header"] is True
