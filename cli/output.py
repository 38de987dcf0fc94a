"""What a grammar command prints on success, the same in direct and remote mode: the result (as
JSON with ``--json``, else through cli.render), then notes about values left to their defaults."""

from __future__ import annotations

import sys

# Said after the human output when a value was left to its default and the user may not know it.
DEFAULT_NOTES = {
    ("create", "template"): "template {value}: the default; choose one with --template (see `pipe templates`)",
}


def default_notes(command: str, values: dict, defaulted: set[str]) -> list[str]:
    """The notes for the parameters of ``command`` in ``defaulted`` (names left to their default)."""
    return [note.format(value=values[name]) for (cmd, name), note in DEFAULT_NOTES.items()
            if cmd == command and name in defaulted]


def show(command: str, result, *, json_out: bool, notes: list[str] = ()) -> None:
    from chainpipe.cli import render

    if json_out:
        render.print_json(result)
        return
    render.human(command, result)
    for note in notes:
        sys.stdout.write(note + "\n")
