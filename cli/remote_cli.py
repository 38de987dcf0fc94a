"""Remote mode: a grammar command run on the team's server (its JSON API) as the token's person.

`pipe` chooses its mode before Typer or any database code is imported (cli/main.py): with a server
(cli/credentials.py) every grammar command that touches pipelines goes to the server; catalogue
commands answer locally. argv is parsed by the grammar's own parser, the answer rendered as direct
mode renders it, with the same exit codes. Help and usage errors are left to Typer, whose command
callbacks come back here, so a command reaches the server by one road however it was parsed.

    --as NAME        refused: the token decides who you are
    --path FILE      hashed here; the server gets its digest and size, never the path
    pipe token / db  refused: they manage the database itself (PIPE_MODE=direct on the server's host)
"""

from __future__ import annotations

from chainpipe.cli import credentials
from chainpipe.cli.errors import say
from chainpipe.core.digest import DIGEST_PREFIX, file_digest
from chainpipe.core.errors import ConfigError, InvalidInput, PipeError
from chainpipe.core.grammar import COMMANDS, Command, join_words, parse_args

HELP_FLAGS = ("--help", "-h")
DIRECT_ONLY = ("token", "db")
# Catalogue commands that read the database, unless they are given a file on this machine.
SERVER_CATALOGUE = ("audit-verify",)


def dispatch(argv: list[str]) -> int | None:
    """Run ``argv`` on the server if remote mode applies: the exit code, or None for the local road."""
    words = join_words(argv)
    if not words or _asks_help(words[1:]):
        return None
    command = COMMANDS.get(words[0])
    if command is None and words[0] not in DIRECT_ONLY:
        return None
    if command is not None and command.kind == "catalogue" and command.name not in SERVER_CATALOGUE:
        return None  # settings only: no need to know the mode
    try:
        target = credentials.find()
        if target is not None and command is None:
            raise ConfigError(f"`pipe {words[0]}` works on the database itself, not through {target.server}: "
                              "run it where the database is, with PIPE_MODE=direct")
    except PipeError as exc:
        say(exc.message)
        return exc.exit_code
    if target is None:
        return None
    try:
        values = parse_args(command, words[1:], reserved=("--json",))
    except InvalidInput:
        if _names_actor(words[1:]):
            return run(command, {}, target, as_given=True, json_out=False)
        return None  # Typer reports the usage error, word for word as in direct mode
    json_out = bool(values.pop("--json", False))
    defaulted = {p.name for p in command.params if not _given(p, words[1:])}
    return run(command, values, target, as_given=False, json_out=json_out, defaulted=defaulted)


def _asks_help(words: list[str]) -> bool:
    return any(w in HELP_FLAGS for w in _before_separator(words))


def _names_actor(words: list[str]) -> bool:
    return any(w == "--as" or w.startswith("--as=") for w in _before_separator(words))


def _given(param, words: list[str]) -> bool:
    return any(w.partition("=")[0] in param.flags for w in _before_separator(words)) if param.flags else True


def _before_separator(words: list[str]) -> list[str]:
    return words[:words.index("--")] if "--" in words else words


def runs_on_server(command: Command, values: dict) -> bool:
    """Commands on pipelines run on the server; catalogue commands (settings, or an export file
    checked offline) answer here."""
    if command.kind != "catalogue":
        return True
    return command.name in SERVER_CATALOGUE and not any(values.get(p.name) for p in command.params if p.local)


def run(command: Command, values: dict, target: credentials.Remote | None, *, as_given: bool, json_out: bool,
        defaulted: set[str] = frozenset()) -> int | None:
    """Run a parsed command on the server and print its result as direct mode does: the exit code,
    or None when it runs here (direct mode, or a command that answers locally)."""
    if target is None or not runs_on_server(command, values):
        return None
    from chainpipe.cli import output
    from chainpipe.cli.api_client import ApiClient
    from chainpipe.cli.main import start_done

    start_done()
    try:
        if as_given:
            raise InvalidInput("--as is not available in remote mode: the token decides who you are "
                               "(see `pipe login --status`)")
        body = request_values(command, command.bind(values))
        result = ApiClient(target.server, target.token, timeout=timeout()).run(command.name, body)
    except PipeError as exc:
        say(exc.message)
        return exc.exit_code
    output.show(command.name, result, json_out=json_out,
                notes=[] if json_out else output.default_notes(command.name, body, defaulted))
    return 0


def timeout() -> float:
    import os

    raw = os.environ.get("PIPE_SERVER_TIMEOUT", "").strip()
    try:
        value = float(raw) if raw else 30.0
    except ValueError:
        raise InvalidInput(f"PIPE_SERVER_TIMEOUT must be a number of seconds, got {raw!r}") from None
    if not 0 < value <= 3600:
        raise InvalidInput(f"PIPE_SERVER_TIMEOUT must be between 0 and 3600 seconds, got {raw}")
    return value


def request_values(command: Command, values: dict) -> dict:
    """The body for the server: parameters read on this machine are replaced by what they say."""
    body = dict(values)
    for param in command.params:
        if not param.local or not body.get(param.name):
            continue
        if (command.name, param.name) != ("artifact-add", "path"):
            raise InvalidInput(f"{param.label} is read on this machine and cannot be sent to the server")
        _file_as_digest(body)
    return body


def _file_as_digest(body: dict) -> None:
    """``--path`` → ``digest`` + ``size``, as the server accepts them (it never reads our files)."""
    path = body.pop("path")
    if body.get("uri"):
        raise InvalidInput("give either --path or --uri, not both")
    computed, size = file_digest(path)
    given = (body.get("digest") or "").strip().lower()
    if given and given != computed and _looks_like_digest(given):
        raise InvalidInput(f"--digest {given} does not match the file's {computed}")
    body["digest"] = body.get("digest") if given and given != computed else computed
    body["size"] = size


def _looks_like_digest(text: str) -> bool:
    hexpart = text.removeprefix(DIGEST_PREFIX)
    return text.startswith(DIGEST_PREFIX) and len(hexpart) == 64 and all(c in "0123456789abcdef" for c in hexpart)


