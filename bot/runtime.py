"""What every listener and route shares: the core settings, a way to run one grammar command, the
database's state (``bot.outage``), and the two kinds of log line the server writes on a caller's
behalf — a crash (reference + traceback) and a refusal (one ``key=value`` line)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from chainpipe.bot.outage import Outage
from chainpipe.core.actor import Actor
from chainpipe.core.config import Settings
from chainpipe.core.crash import crash_line, crash_reference
from chainpipe.core.dispatch import execute
from chainpipe.core.grammar import Command
from chainpipe.core.text import one_line

log = logging.getLogger("chainpipe.server")
refusals = logging.getLogger("chainpipe.refusal")

_BARE = re.compile(r"[A-Za-z0-9_.:/@+\-]+")


def log_crash(exc: BaseException, where: str) -> str:
    """Log the traceback under a fresh reference and return the reference; the line to show
    people is ``core.crash.crash_line(ref, exc)``, the same words the log line starts with."""
    ref = crash_reference()
    log.error("%s in %s", crash_line(ref, exc), one_line(where), exc_info=exc)
    return ref


def _field(value) -> str:
    text = "-" if value is None or value == "" else str(value)
    if _BARE.fullmatch(text):
        return text
    return '"' + one_line(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


def log_refusal(surface: str, principal: str | None, rule: str, command: str | None = None, **more) -> None:
    """One line per refused request, ``key=value`` pairs, so refusals can be found and counted later.

    Nothing is written to the database: a flood of forged requests must not grow it."""
    pairs = {"surface": surface, "principal": principal or "anonymous", "rule": rule, "command": command, **more}
    refusals.warning("refused %s", " ".join(f"{k}={_field(v)}" for k, v in pairs.items()))


@dataclass
class Runtime:
    settings: Settings
    # Nudges the notifier so a decision reaches Slack without waiting for the next poll.
    wake: Callable[[], None] = field(default=lambda: None)
    outage: Outage = field(default_factory=Outage)

    def run(self, command: Command, values: dict, actor: Actor):
        """Bind the raw ``values`` and run the command for a caller on another machine."""
        if command.kind == "catalogue":  # settings only: says nothing about the database
            return execute(command, values, actor, self.settings, local=False)
        result = self.outage.call(execute, command, values, actor, self.settings, local=False)
        if command.kind == "write":
            self.wake()
        return result


def slack_actor(user_id: str) -> Actor:
    """A Slack user, proven by the request's signature."""
    return Actor(f"slack:{user_id}", "slack", principal=f"slack:{user_id}")
