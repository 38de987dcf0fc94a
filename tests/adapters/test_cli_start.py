"""The console script's one-shot start (cli/main.py `entrypoint`): the cyclic garbage collector is
off while the start imports and maps the tables, and back on, the start's objects frozen, before the
command's own work, on every road. ``main(argv)`` in process (the tests, the worker) leaves the
collector as it was."""

from __future__ import annotations

import gc
import sys

import pytest


@pytest.fixture
def collector():
    """The collector as the test found it, put back afterwards (frozen objects thawed)."""
    was = gc.isenabled()
    yield
    gc.unfreeze()
    (gc.enable if was else gc.disable)()


def console_script(pipe, *args: str) -> tuple[int, str, str]:
    """``pipe ARGS…`` through the console script's entry point, one-shot (no warm worker)."""
    from chainpipe.cli.main import entrypoint

    pipe.setenv(PIPE_WORKER="0")
    pipe.monkeypatch.setattr(sys, "argv", ["pipe", *args])
    pipe.capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        entrypoint()
    out, err = pipe.capsys.readouterr()
    return stop.value.code, out, err


def test_a_command_does_its_work_with_the_collector_on(pipe, collector, monkeypatch):
    from chainpipe.core import dispatch

    real, seen = dispatch.execute, []

    def watched(*args, **kwargs):
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(dispatch, "execute", watched)
    gc.enable()
    frozen = gc.get_freeze_count()
    code, out, err = console_script(pipe, "create", "--name", "x")
    assert (code, err) == (0, "") and "created" in out
    assert seen == [True]
    assert gc.isenabled() and gc.get_freeze_count() > frozen


@pytest.mark.parametrize("argv", [["stages"], ["--help"], ["db", "current"], ["start", "pipe-000000000000"],
                                  ["frobnicate"]])
def test_every_road_turns_the_collector_back_on(pipe, collector, argv):
    gc.enable()
    code, _, _ = console_script(pipe, *argv)
    assert code in (0, 1, 2)
    assert gc.isenabled()


def test_in_process_the_collector_is_left_as_it_was(pipe, collector):
    gc.disable()
    pipe.ok("create", "--name", "x")
    pipe.ok("--help")
    assert not gc.isenabled()
    gc.enable()
    pipe.ok("create", "--name", "y")
    assert gc.isenabled()
