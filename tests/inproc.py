"""`pipe` driven in process for the tests that need a terminal's view: ``cli("list", "--json")``
returns (exit code, stdout, stderr), with the environment given and nothing of the caller's
``PIPE_*`` variables."""

from __future__ import annotations

import json
import os


class InProcessCli:
    def __init__(self, monkeypatch, capsys, env: dict):
        self.monkeypatch, self.capsys, self.env = monkeypatch, capsys, dict(env)
        for key in [k for k in os.environ if k.startswith("PIPE_")]:
            monkeypatch.delenv(key)
        self.setenv(**env)

    def setenv(self, **env) -> None:
        for key, value in env.items():
            self.env[key] = value
            self.monkeypatch.setenv(key, value)

    def unsetenv(self, *keys: str) -> None:
        for key in keys:
            self.env.pop(key, None)
            self.monkeypatch.delenv(key, raising=False)

    def __call__(self, *args: str) -> tuple[int, str, str]:
        from cli.main import main

        self.capsys.readouterr()
        code = main(list(args))
        out = self.capsys.readouterr()
        return code, out.out, out.err

    def ok(self, *args: str) -> str:
        code, out, err = self(*args)
        assert (code, err) == (0, ""), (args, code, err)
        return out

    def json(self, *args: str):
        return json.loads(self.ok(*args, "--json"))


def cli_on(env: dict, monkeypatch, capsys) -> InProcessCli:
    """The CLI on the test database of ``env`` (the `env` fixture), acting as alice."""
    return InProcessCli(monkeypatch, capsys, env | {"PIPE_ACTOR": "alice"})
