"""What every listener and route shares: the core settings and a way to run one grammar command."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from core.actor import Actor
from core.config import Settings
from core.dispatch import execute
from core.grammar import Command

log = logging.getLogger("chainpipe.server")


def reference() -> str:
    """A short id that ties a user-facing "internal error" to the traceback in the log."""
    return "err-" + secrets.token_hex(4)


def log_crash(exc: BaseException, where: str) -> str:
    ref = reference()
    log.error("internal error %s in %s", ref, where, exc_info=exc)
    return ref


@dataclass
class Runtime:
    settings: Settings
    # Nudges the notifier so a decision reaches Slack without waiting for the next poll.
    wake: Callable[[], None] = field(default=lambda: None)

    def run(self, command: Command, values: dict, actor: Actor):
        result = execute(command, values, actor, self.settings)
        if command.kind == "write":
            self.wake()
        return result


def slack_actor(user_id: str) -> Actor:
    return Actor(f"slack:{user_id}", "slack")
