"""The Action's command table is checked against the grammar when it loads: every call names a
grammar command and only its parameters, every required parameter is fed, every input it reads is
an input of action.yml, and nothing read on the runner's disk is ever sent as such."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from chainpipe.cli import action
from chainpipe.cli.action_steps import ROUTES, Run
from chainpipe.core.errors import InvalidInput
from chainpipe.core.grammar import get_command

META = yaml.safe_load((Path(__file__).resolve().parents[2] / "action.yml").read_text(encoding="utf-8"))
CALLS = [(name, call) for name, route in ROUTES.items() for call in route.calls]


def test_the_table_covers_the_commands_action_yml_documents():
    documented = META["inputs"]["command"]["description"]
    assert all(name in documented for name in ROUTES)
    assert set(ROUTES) == {"create", "stage", "artifact", "deploy", "deploy-status", "metric", "rollback",
                           "await-gate"}


@pytest.mark.parametrize("name, call", CALLS, ids=[f"{n}:{c.command}" for n, c in CALLS])
def test_each_call_feeds_its_grammar_command_and_nothing_else(name, call):
    params = {p.name: p for p in get_command(call.command).params}
    assert set(call.params) <= set(params), f"{name}: not parameters of {call.command}"
    assert {p for p, spec in params.items() if spec.required} <= set(call.params), f"{name}: a required one is unfed"
    assert all(source in action.INPUTS for source in call.params.values() if isinstance(source, str))
    assert not [p for p in call.params if params[p].local], "a server refuses values read on the caller's disk"


class Recorder:
    def __init__(self):
        self.calls = []

    def run(self, command, values):
        self.calls.append((command, values))
        return {"id": "pipe-0123456789ab"}


def inputs(**given) -> dict[str, str]:
    return {name: "" for name in action.INPUTS} | {k.replace("_", "-"): v for k, v in given.items()}


def test_an_input_its_command_requires_is_asked_for_by_its_action_name():
    backend = Recorder()
    run = Run("stage", inputs(pipeline_id="pipe-0123456789ab"), {}, backend)
    with pytest.raises(InvalidInput, match="^command stage needs the input stage$"):
        run.call(ROUTES["stage"].calls[0])
    assert backend.calls == []


def test_values_go_raw_and_empty_optional_inputs_are_left_to_the_grammars_defaults():
    backend = Recorder()
    run = Run("create", inputs(), {"GITHUB_REPOSITORY": "acme/shop", "GITHUB_SHA": "c0ffee" * 7}, backend)
    ROUTES["create"].steps(run, ROUTES["create"].calls)
    assert backend.calls == [("create", {"name": "acme/shop@c0ffeec0ffee"}),
                             ("start", {"pipeline_id": "pipe-0123456789ab"})]
