"""can_decide and gate_state: the one answer to "may this gate be decided now, by this person"."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from chainpipe.core.config import GatePolicy
from chainpipe.core.errors import InvalidTransition, NotAllowed
from chainpipe.core.rules.gates import can_decide, gate_state

OPEN = GatePolicy()
LEADS = GatePolicy(approvers=("carol",), groups=("leads",), members=frozenset({"carol", "dave"}),
                   forbid_self_approval=True)


def pipeline(status="running", stage="review", creator="alice"):
    return SimpleNamespace(id="pipe-0123456789ab", status=status, current_stage=stage, created_by=creator)


def gate(status="pending", stage="review"):
    return SimpleNamespace(name="code-review", stage=stage, status=status)


def test_anyone_may_decide_an_open_policy_gate_at_its_stage():
    assert can_decide(pipeline(), gate(), "bob", OPEN).allowed


@pytest.mark.parametrize("status,way_out", [("paused", "resume it first: pipe resume pipe-0123456789ab"),
                                            ("failed", "retry it first"), ("created", "start it first"),
                                            ("completed", "completed is final")])
def test_a_pipeline_that_is_not_running_cannot_have_its_gates_decided(status, way_out):
    refusal = can_decide(pipeline(status=status), gate(), "bob", OPEN).refusal
    assert isinstance(refusal, InvalidTransition)
    assert f"can't decide a gate of a pipeline that is {status}; allowed from: running" in str(refusal)
    assert way_out in str(refusal)


def test_a_gate_is_decided_only_at_its_stage_and_the_refusal_says_how_to_get_there():
    refusal = can_decide(pipeline(stage="code"), gate(), "bob", OPEN).refusal
    assert "move it there first (pipe stage pipe-0123456789ab review)" in str(refusal)


def test_a_policy_admits_its_approvers_and_group_members_only():
    assert can_decide(pipeline(), gate(), "dave", LEADS).allowed
    refusal = can_decide(pipeline(), gate(), "bob", LEADS).refusal
    assert isinstance(refusal, NotAllowed) and "allowed: carol, group leads" in str(refusal)


def test_self_approval_is_refused_when_the_policy_forbids_it():
    refusal = can_decide(pipeline(creator="carol"), gate(), "carol", LEADS).refusal
    assert isinstance(refusal, NotAllowed) and "self-approval is not allowed" in str(refusal)
    with pytest.raises(NotAllowed):
        can_decide(pipeline(creator="carol"), gate(), "carol", LEADS).require()


def test_without_a_person_the_answer_is_whether_anyone_could_decide_now():
    assert can_decide(pipeline(), gate(), None, LEADS).allowed
    assert not can_decide(pipeline(status="paused"), gate(), None, LEADS).allowed


@pytest.mark.parametrize("p,g,state", [
    (pipeline(), gate(), "open"),
    (pipeline(stage="code"), gate(), "waiting"),
    (pipeline(status="paused"), gate(), "waiting"),
    (pipeline(status="failed"), gate(), "waiting"),
    (pipeline(status="cancelled"), gate(), "closed"),
    (pipeline(), gate(status="approved"), "approved"),
    (pipeline(status="failed"), gate(status="rejected"), "rejected"),
])
def test_gate_state_tells_a_waiting_client_what_to_expect(p, g, state):
    assert gate_state(p, g) == state
