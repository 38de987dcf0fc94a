"""`pipe token create --for/--service`, `pipe token rotate` and the kind and person in `pipe token list`."""

from __future__ import annotations

from chainpipe.core.config import load_settings
from chainpipe.core.services.tokens import find_token
from chainpipe.core.uow import UnitOfWork

from tests.adapters.conftest import assert_refused


def found(env, secret: str):
    with UnitOfWork(load_settings(env), write=False) as uow:
        return find_token(uow, secret)


def test_a_personal_token_is_created_for_its_person_and_printed_once(pipe, env):
    code, out, err = pipe("token", "create", "--name", "alice-laptop", "--for", "alice")
    assert code == 0
    secret = out.strip()
    assert secret.startswith("cp_") and out == secret + "\n"
    assert err.startswith("personal token alice-laptop created (acts as alice); it is shown only this once")
    assert {k: found(env, secret)[k] for k in ("name", "kind", "person")} == {
        "name": "alice-laptop", "kind": "personal", "person": "alice"}


def test_a_service_token_acts_as_itself(pipe, env):
    view = pipe.json("token", "create", "--name", "ci", "--service")
    assert (view["kind"], view["person"]) == ("service", None)
    plain = pipe.json("token", "create", "--name", "bot")
    assert plain["kind"] == "service"  # the default, as before


def test_a_token_cannot_be_both_personal_and_a_service(pipe):
    for extra in (["--service"], ["--allow-actor-header"]):
        assert_refused(pipe("token", "create", "--name", "x", "--for", "alice", *extra), 2,
                       "a token is either personal (--for PERSON) or a service token (--service), not both")
    assert pipe.json("token", "list") == []


def test_rotate_stops_the_old_secret_and_keeps_the_kind_and_person(pipe, env):
    old = pipe.json("token", "create", "--name", "alice-laptop", "--for", "alice")["token"]
    code, out, err = pipe("token", "rotate", "alice-laptop")
    assert code == 0 and err.startswith("personal token alice-laptop rotated (acts as alice)")
    new = out.strip()
    assert new != old and found(env, old) is None
    assert (found(env, new)["kind"], found(env, new)["person"]) == ("personal", "alice")
    rows = pipe.json("token", "list")
    assert [(t["name"], t["active"]) for t in rows] == [("alice-laptop", False), ("alice-laptop", True)]
    assert_refused(pipe("token", "rotate", "nobody"), 1, "no active token named nobody")


def test_list_shows_each_tokens_kind_and_who_it_acts_as(pipe):
    pipe.json("token", "create", "--name", "alice-laptop", "--for", "alice")
    pipe.json("token", "create", "--name", "ci", "--service")
    pipe.ok("token", "revoke", "ci")
    lines = pipe.ok("token", "list").splitlines()
    assert lines[0].split() == ["name", "kind", "acts", "as", "state", "created", "last", "used"]
    assert lines[1].split()[:4] == ["alice-laptop", "personal", "alice", "active"]
    assert lines[2].split()[:4] == ["ci", "service", "token:ci", "revoked"]
