"""API tokens: created once (the secret is shown once, only its sha256 is stored), listed, revoked,
rotated, and checked on every API request.

Two kinds. A **personal** token belongs to one person (``--for alice``): every request made with it
acts as that person, and it cannot name anyone else. A **service** token (CI, bots; the default)
acts as itself (``token:<name>``): it records work, may carry the claimed actor of a CI run as
``on_behalf_of``, and decides a gate only where the gate's policy names it in
``service_approvers``. A name is unique among active tokens; a revoked token's name is free again.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from chainpipe.core.clock import iso, new_id
from chainpipe.core.errors import Conflict, InvalidInput, NotFound
from chainpipe.core.models import ApiToken
from chainpipe.core.uow import Actor, UnitOfWork
from sqlalchemy import bindparam, update
from sqlalchemy import select as select_core
from sqlmodel import select

PREFIX = "cp_"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
# Recording "last used" on every request would turn each read into a write; once a minute is enough.
LAST_USED_EVERY = timedelta(minutes=1)
_TOKENS = ApiToken.__table__
_BY_HASH = select_core(_TOKENS).where(_TOKENS.c.token_hash == bindparam("h"))


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def token_view(t: ApiToken) -> dict:
    return {
        "id": t.id,
        "name": t.name,
        "created_by": t.created_by,
        "created_at": iso(t.created_at),
        "revoked_at": iso(t.revoked_at),
        "last_used_at": iso(t.last_used_at),
        "kind": t.kind,
        "person": t.person,
        "allow_actor_header": t.kind == "service",
        "active": t.revoked_at is None,
    }


def _by_name(uow: UnitOfWork, name: str) -> ApiToken | None:
    """The active token named ``name``, else the newest revoked one."""
    rows = uow.session.exec(select(ApiToken).where(ApiToken.name == name).order_by(ApiToken.seq.desc()))
    rows = list(rows)
    return next((t for t in rows if t.revoked_at is None), rows[0] if rows else None)


def _issue(uow: UnitOfWork, actor: Actor, name: str, kind: str, person: str | None) -> dict:
    raw = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        id=new_id("tok"), name=name, token_hash=hash_token(raw), created_by=uow.settings.person(actor.name),
        created_at=uow.now(), kind=kind, person=person,
    )
    uow.add(row)
    uow.audit(actor, "token", row.id, "create", data={"name": name, "kind": kind, "person": person})
    return token_view(row) | {"token": raw}


def create_token(uow: UnitOfWork, actor: Actor, name: str, person: str | None = None,
                 allow_actor_header: bool = False) -> dict:
    """A personal token for ``person``, or (without one) a service token.

    ``allow_actor_header`` is the flag of earlier releases; such tokens are service tokens."""
    if allow_actor_header and person is not None:
        raise InvalidInput("a personal token acts as its person and cannot name another actor")
    name = (name or "").strip()
    if not NAME_RE.match(name):
        raise InvalidInput(f"a token name is 1-100 letters, digits, '.', '_' or '-', got {name!r}")
    if person is not None:
        person = (person or "").strip()
        if not person or len(person) > 200 or not person.isprintable():
            raise InvalidInput("--for names the person the token acts as (1-200 printable characters)")
    existing = _by_name(uow, name)
    if existing is not None and existing.revoked_at is None:
        raise Conflict(f"a token named {name} already exists (rotate it, revoke it, or pick another name)")
    view = _issue(uow, actor, name, "personal" if person else "service", person)
    uow.commit()
    return view


def rotate_token(uow: UnitOfWork, actor: Actor, name: str) -> dict:
    """Revoke the active token ``name`` and issue a new secret of the same kind, in one step."""
    row = _by_name(uow, name)
    if row is None or row.revoked_at is not None:
        raise NotFound(f"no active token named {name}")
    row.revoked_at = uow.now()
    uow.audit(actor, "token", row.id, "revoke", data={"name": name, "rotated": True})
    uow.session.flush()  # the active-name index must see the old one revoked first
    view = _issue(uow, actor, name, row.kind, row.person)
    uow.commit()
    return view


def list_tokens(uow: UnitOfWork, actor: Actor) -> list[dict]:
    return [token_view(t) for t in uow.session.exec(select(ApiToken).order_by(ApiToken.seq))]


def revoke_token(uow: UnitOfWork, actor: Actor, name: str) -> dict:
    row = _by_name(uow, name)
    if row is None:
        raise NotFound(f"token not found: {name}")
    if row.revoked_at is not None:
        return token_view(row) | {"changed": False}
    row.revoked_at = uow.now()
    uow.audit(actor, "token", row.id, "revoke", data={"name": name})
    view = token_view(row) | {"changed": True}
    uow.commit()
    return view


def looks_like_token(raw: str) -> bool:
    """Whether ``raw`` can be one of our tokens at all: a check that needs no database."""
    return bool(raw) and raw.startswith(PREFIX) and len(raw) <= 200


def find_token(uow: UnitOfWork, raw: str) -> dict | None:
    """The active token whose secret is ``raw``, or None (unknown, malformed or revoked)."""
    if not looks_like_token(raw):
        return None
    row = uow.conn.execute(_BY_HASH, {"h": hash_token(raw)}).first()  # a Core read: checked on every API request
    if row is None or row.revoked_at is not None:
        return None
    return token_view(row)


def touch_token(uow: UnitOfWork, token_id: str, at) -> None:
    """Record that a token was used at ``at``, in the caller's transaction (``needs_touch`` says
    when: at most once per LAST_USED_EVERY)."""
    uow.conn.execute(update(_TOKENS).where(_TOKENS.c.id == token_id).values(last_used_at=at))


def needs_touch(token: dict, now) -> bool:
    from chainpipe.core.clock import parse_iso

    last = token.get("last_used_at")
    return last is None or now - parse_iso(last) >= LAST_USED_EVERY
