"""Run a grammar command: bind its raw values, resolve its use case, open the unit of work its kind
needs, call it. Every surface comes through here, so values are bound and checked once for all;
``local=False`` marks a caller on another machine (the server refuses to read files for it).
Results leave through here too, so float noise is tidied here once (core.numbers.tidy).

``admit`` is for a caller who proves who they are against the database (an API token): it is called
with the command's own unit of work before anything is bound and returns ``(actor, raw values)``,
so the proof, the command and the token's revocation are read in one transaction; whatever it
raises ends the request with nothing bound or run.
"""

from __future__ import annotations

from collections.abc import Callable

from chainpipe.core.config import Settings, load_settings
from chainpipe.core.grammar import Command
from chainpipe.core.numbers import tidy


def execute(
    command: Command,
    values: dict | None,
    actor,
    settings: Settings | None = None,
    *,
    local: bool = True,
    admit: Callable | None = None,
):
    settings = settings or load_settings()
    if admit is None:  # bound before any database work; a catalogue command needs none
        values = command.bind(values, local=local)
        if command.kind == "catalogue":
            return tidy(command.resolve()(settings, **values))
    from chainpipe.core.uow import UnitOfWork

    with UnitOfWork(settings, write=command.kind == "write") as uow:
        if admit is not None:
            actor, raw = admit(uow)
            values = command.bind(raw, local=local)
        fn = command.resolve()
        # a catalogue command reads settings only: here, its caller proven by ``admit``
        result = fn(settings, **values) if command.kind == "catalogue" else fn(uow, actor, **values)
    return tidy(result)
