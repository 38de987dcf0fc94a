"""The transition tables: their shape, and every row, legal and illegal."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from chainpipe.core.errors import InvalidTransition
from chainpipe.core.machine import DEPLOY, GATE, MACHINES, PIPELINE, STAGE, Machine, check_shape, fire

ALL = list(MACHINES.values())


@pytest.mark.parametrize("machine", ALL, ids=lambda m: m.noun)
def test_every_table_has_one_initial_state_that_is_a_state(machine):
    assert machine.initial in machine.states


@pytest.mark.parametrize("machine", ALL, ids=lambda m: m.noun)
def test_terminal_states_have_no_exits(machine):
    for src, _, _ in machine.rows:
        assert src not in machine.terminal


@pytest.mark.parametrize("machine", ALL, ids=lambda m: m.noun)
def test_every_state_is_reachable_from_the_initial_one(machine):
    seen, todo = {machine.initial}, [machine.initial]
    while todo:
        state = todo.pop()
        for src, _, dst in machine.rows:
            if src == state and dst not in seen:
                seen.add(dst)
                todo.append(dst)
    assert seen == set(machine.states)


def _cases():
    for machine in ALL:
        for state in machine.states:
            for trigger in machine.triggers():
                yield pytest.param(machine, state, trigger, id=f"{machine.noun}:{state}:{trigger}")


@pytest.mark.parametrize("machine,state,trigger", list(_cases()))
def test_fire_follows_the_table_or_refuses_without_changing_anything(machine, state, trigger):
    obj = SimpleNamespace(status=state)
    expected = machine.target(state, trigger)
    if expected is None:
        with pytest.raises(InvalidTransition) as err:
            fire(machine, obj, trigger)
        assert obj.status == state
        phrase = machine.phrases.get(trigger, trigger)
        assert f"can't {phrase} a {machine.noun} that is {state}; allowed from: " in str(err.value)
    else:
        assert fire(machine, obj, trigger) == (state, expected)
        assert obj.status == expected


def test_pipeline_terminal_states_are_completed_and_cancelled():
    assert PIPELINE.terminal == {"completed", "cancelled"}


def test_deploy_rollback_is_allowed_only_from_in_progress_and_succeeded():
    assert sorted(DEPLOY.allowed_from("rollback")) == ["in-progress", "succeeded"]


def test_error_message_names_the_current_status_and_what_is_allowed():
    with pytest.raises(InvalidTransition,
                       match=r"^can't pause a pipeline that is completed; allowed from: running; completed is final$"):
        fire(PIPELINE, SimpleNamespace(status="completed"), "pause")


def test_gate_and_stage_reopen_rows_exist_for_rework():
    assert GATE.target("approved", "reopen") == "pending"
    assert STAGE.target("completed", "reopen") == "pending"


@pytest.mark.parametrize(
    "rows,problem",
    [
        ((("a", "go", "zzz"),), "unknown state"),
        ((("a", "go", "b"), ("a", "go", "a")), "two rows"),
        ((("a", "go", "a"),), "unreachable"),
    ],
)
def test_malformed_tables_are_refused_when_built(rows, problem):
    with pytest.raises(ValueError, match=problem):
        Machine("thing", ("a", "b"), "a", rows)


def test_check_shape_accepts_the_shipped_tables():
    for machine in ALL:
        check_shape(machine)


def test_a_refusal_names_the_way_out_with_the_command_that_takes_it():
    with pytest.raises(InvalidTransition) as err:
        fire(PIPELINE, SimpleNamespace(status="paused", id="pipe-0123456789ab"), "deploy")
    assert str(err.value) == ("can't record a deploy of a pipeline that is paused; allowed from: running; "
                              "resume it first: pipe resume pipe-0123456789ab")


def test_stay_rows_allow_a_trigger_without_moving_the_status():
    obj = SimpleNamespace(status="failed")
    assert fire(PIPELINE, obj, "add-artifact") == ("failed", "failed")
    assert PIPELINE.allows("running", "decide") and not PIPELINE.allows("paused", "decide")
