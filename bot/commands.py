"""`/pipe <words>`: the CLI's grammar, parsed and bound by ``core.grammar.parse_args``, run as the
Slack user (a caller on another machine: ``local=False``).

Ack strategy: the ack needs no database. Parsing needs none, so parse errors and help are the
ack itself; a parsed command is acked empty at once, and its work (the replay record first, then
the command) runs after the ack on the runtime's background threads (``bot.verify.after_ack``),
its result going to the ``response_url`` however long the work takes.

The listener is a plain function (registered in ``bot.app.register``); the runtime comes from
the request context, put there by ``bot.verify.SlackGuard``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from chainpipe.bot import blocks
from chainpipe.bot.runtime import slack_actor
from chainpipe.bot.slack_errors import error_line
from chainpipe.bot.verify import after_ack
from chainpipe.core.errors import InvalidInput
from chainpipe.core.grammar import Command, get_command, parse_args

JSON_FLAG = "--json"


@dataclass(frozen=True)
class Parsed:
    command: Command | None = None
    values: dict | None = None
    json_out: bool = False
    help: str | None = None


def parse_slash(text: str) -> Parsed:
    """Turn the text after ``/pipe`` into a command and its values, exactly as the CLI would."""
    try:
        words = shlex.split(text or "")
    except ValueError as exc:
        raise InvalidInput(f"can't read that command line: {exc}") from None
    if not words or words[0] in ("help", "--help", "-h"):
        return Parsed(help=blocks.help_text(words[1] if len(words) > 1 else None))
    if any(w == "--as" or w.startswith("--as=") for w in words[1:]):
        raise InvalidInput("--as is not available in Slack: you always act as yourself")
    command = get_command(words[0])
    if "--help" in words[1:] or "-h" in words[1:]:
        return Parsed(help=blocks.help_text(command.name))
    values = parse_args(command, words[1:], reserved=(JSON_FLAG,), local=False)
    json_out = bool(values.pop(JSON_FLAG, False))
    return Parsed(command, values, json_out)


def reply_for(command: Command, result, json_out: bool) -> str:
    return blocks.json_reply(result) if json_out else blocks.summary(command.name, result)


def pipe_command(ack, body, respond, context):
    """``/pipe …``: help and parse errors in the ack; a command's result through ``respond``."""
    user = body.get("user_id")
    principal = f"slack:{user}"
    try:
        parsed = parse_slash(body.get("text", ""))
    except Exception as exc:  # noqa: BLE001 - the translator tells a refusal from a crash
        ack(response_type="ephemeral", text=error_line(exc, principal, "/pipe"))
        return
    if parsed.help is not None:
        ack(response_type="ephemeral", text=parsed.help)
        return
    ack()
    runtime = context["runtime"]

    def tell(text: str) -> None:
        respond(response_type="ephemeral", text=text)

    def work() -> None:
        try:
            result = runtime.run(parsed.command, parsed.values, slack_actor(user))
            text = reply_for(parsed.command, result, parsed.json_out)
        except Exception as exc:  # noqa: BLE001 - the translator tells a refusal from a crash
            text = error_line(exc, principal, parsed.command.name)
        tell(text)

    after_ack(context, work, tell)
