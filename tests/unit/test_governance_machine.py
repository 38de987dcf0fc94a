"""The V2 machines, walked through `fire`: every (state, trigger) pair is either the transition the
documentation names, or refused with InvalidTransition and the status left alone."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from chainpipe.core.errors import InvalidTransition
from chainpipe.core.machine import PIPELINE_V2, RUN_V2, fire

# Written out from docs/governance.md, not derived from the tables, so a changed table fails here.
PIPELINE_EXPECTED = {
    ("pending", "activate"): "active",
    ("pending", "archive"): "archived",
    ("active", "pause"): "paused",
    ("active", "archive"): "archived",
    ("paused", "activate"): "active",
    ("paused", "archive"): "archived",
    # preconditions: allowed from here, the status stays
    ("pending", "touch"): "pending",
    ("active", "touch"): "active",
    ("paused", "touch"): "paused",
    ("active", "run"): "active",
}
RUN_EXPECTED = {
    ("queued", "start"): "running",
    ("queued", "cancel"): "cancelled",
    ("running", "complete"): "completed",
    ("running", "fail"): "failed",
    ("running", "cancel"): "cancelled",
}
CASES = [
    (machine, state, trigger, expected.get((state, trigger)))
    for machine, expected in ((PIPELINE_V2, PIPELINE_EXPECTED), (RUN_V2, RUN_EXPECTED))
    for state in machine.states
    for trigger in sorted({t for _, t in expected})
]


@pytest.mark.parametrize("machine,state,trigger,expected", CASES,
                         ids=[f"{m.noun}:{s}-{t}" for m, s, t, _ in CASES])
def test_every_v2_pair_is_legal_exactly_when_the_spec_says(machine, state, trigger, expected):
    row = SimpleNamespace(status=state)
    if expected is None:
        phrase = machine.phrases.get(trigger, trigger)
        with pytest.raises(InvalidTransition, match=f"can't {phrase} a .* that is {state}; allowed from: "):
            fire(machine, row, trigger)
        assert row.status == state
    else:
        assert fire(machine, row, trigger) == (state, expected)
        assert row.status == expected


def test_v2_tables_have_the_spec_shape():
    assert PIPELINE_V2.states == ("pending", "active", "paused", "archived")
    assert PIPELINE_V2.initial == "pending" and PIPELINE_V2.terminal == {"archived"}
    assert RUN_V2.states == ("queued", "running", "completed", "failed", "cancelled")
    assert RUN_V2.initial == "queued" and RUN_V2.terminal == {"completed", "failed", "cancelled"}
    assert {(s, t): d for s, t, d in PIPELINE_V2.rows} == PIPELINE_EXPECTED
    assert {(s, t): d for s, t, d in RUN_V2.rows} == RUN_EXPECTED


def test_refusal_names_the_states_the_trigger_is_allowed_from():
    with pytest.raises(InvalidTransition) as err:
        fire(PIPELINE_V2, SimpleNamespace(status="archived"), "activate", label="governed pipeline web")
    assert str(err.value) == ("can't activate a governed pipeline web that is archived; allowed from: pending, paused; "
                              "archived is final")


def test_enums_v2_lists_the_tables_without_a_database():
    from chainpipe.core.services.governance_enums import list_enums_v2

    enums = list_enums_v2(None)
    assert enums["pipeline_terminal"] == ["archived"]
    assert enums["run_statuses"] == list(RUN_V2.states)
    assert len(enums["run_transitions"]) == len(RUN_EXPECTED)
    assert enums["settings"]["max_active_pipelines_per_owner"]["default"] == 10
    assert enums["settings"]["max_pending_runs_per_pipeline"]["default"] == 20
    assert enums["settings"]["pipeline_idle_ms"]["default"] == 3 * 24 * 3600 * 1000
    assert enums["settings"]["run_stuck_ms"]["default"] == 10 * 60 * 1000


def test_optional_positional_reason_parses_with_and_without_it():
    from chainpipe.core.grammar import COMMANDS, parse_args, usage

    cmd = COMMANDS["fail-run-v2"]
    assert parse_args(cmd, ["r1"]) == {"run_id": "r1", "reason": None}
    assert parse_args(cmd, ["r1", "flaky runner"]) == {"run_id": "r1", "reason": "flaky runner"}
    assert usage(cmd) == "fail-run-v2 RUN_ID [REASON]"


def test_every_v2_command_is_registered_in_the_shared_grammar():
    from chainpipe.core.grammar import COMMANDS
    from chainpipe.core.grammar_v2 import V2_COMMANDS

    names = {c.name for c in V2_COMMANDS}
    assert names <= set(COMMANDS)
    assert len(names) == 23
    assert {c.name for c in V2_COMMANDS if c.kind == "catalogue"} == {"enums-v2"}


def test_enums_v2_through_the_cli_imports_no_database_code():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys\nfrom cli.main import main\nrc = main(['enums-v2', '--json'])\n"
            "print(rc, *sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'sqlmodel', 'psycopg')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert '"pipeline_terminal": [' in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "0"
