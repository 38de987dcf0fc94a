"""Shell completion of values: templates, stages, strategies, gates, artifact types, statuses and
pipeline ids (read from the database, best effort).

Completion runs on every <TAB>: it must answer fast and never fail, so whatever goes wrong
(no database yet, an old schema, a broken config) completes nothing rather than printing an error
into the user's command line. It never creates or upgrades a database.
"""

from __future__ import annotations

from collections.abc import Callable

from chainpipe.core import catalogue as cat
from chainpipe.core.grammar import Command, Param

Completer = Callable[[str], list]


def _words(values) -> Completer:
    """Complete from fixed words; a dict's values are shown as help where the shell supports it."""
    def complete(incomplete: str) -> list:
        if isinstance(values, dict):
            return [(k, v) for k, v in values.items() if k.startswith(incomplete)]
        return [v for v in values if v.startswith(incomplete)]

    return complete


def _templates(incomplete: str) -> list:
    from chainpipe.core.config import load_settings
    from chainpipe.core.errors import PipeError

    try:
        templates = load_settings().templates
    except PipeError:
        templates = cat.BUILTIN_TEMPLATES
    return [(name, t.description) for name, t in templates.items() if name.startswith(incomplete)]


def _pipeline_ids(incomplete: str) -> list:
    try:
        from chainpipe.core.config import load_settings
        from chainpipe.core.db import describe_database
        from chainpipe.core.services.queries import pipeline_ids
        from chainpipe.core.uow import UnitOfWork

        settings = load_settings()
        if describe_database(settings.database_url)["state"] != "current":
            return []
        with UnitOfWork(settings, write=False) as uow:
            return pipeline_ids(uow, None, incomplete)
    except Exception:  # noqa: BLE001 - see the module docstring: completion never fails
        return []


def _initial_deploy_statuses(incomplete: str) -> list:
    from chainpipe.core.services.deploys import INITIAL_STATUSES  # imported on use: it loads the database layer

    return _words(INITIAL_STATUSES)(incomplete)


BY_NAME: dict[str, Completer] = {
    "template": _templates,
    "stage": _words(cat.STAGE_DESCRIPTIONS),
    "strategy": _words(cat.DEPLOY_STRATEGIES),
    "gate": _words(cat.GATE_KINDS),
    "type": _words(cat.ARTIFACT_TYPES),
    "format": _words(("json", "markdown")),
    "pipeline_id": _pipeline_ids,
}
BY_COMMAND: dict[tuple[str, str], Completer] = {
    ("list", "status"): _words(cat.PIPELINE_STATUSES),
    ("deploy", "status"): _initial_deploy_statuses,
    ("deploy-update", "status"): _words(cat.DEPLOY_STATUSES),
}


def completer(command: Command, param: Param) -> Completer | None:
    """The completion of one grammar parameter, or None (governed pipelines have ids of their own)."""
    if command.group == "governance":
        return None
    return BY_COMMAND.get((command.name, param.name)) or BY_NAME.get(param.name)
