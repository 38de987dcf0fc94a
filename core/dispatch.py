"""Run a grammar command: bind its raw values, resolve its use case, open the unit of work its kind
needs, call it. Every surface comes through here, so values are bound and checked once for all;
``local=False`` marks a caller on another machine (the server refuses to read files for it).
Results leave through here too, so float noise is tidied here once (core.numbers.tidy).
"""

from __future__ import annotations

from chainpipe.core.config import Settings, load_settings
from chainpipe.core.grammar import Command
from chainpipe.core.numbers import tidy


def execute(
    command: Command,
    values: dict,
    actor,
    settings: Settings | None = None,
    *,
    local: bool = True,
):
    values = command.bind(values, local=local)
    fn = command.resolve()
    settings = settings or load_settings()
    if command.kind == "catalogue":
        return tidy(fn(settings, **values))
    from chainpipe.core.uow import UnitOfWork

    with UnitOfWork(settings, write=command.kind == "write") as uow:
        result = fn(uow, actor, **values)
    return tidy(result)
