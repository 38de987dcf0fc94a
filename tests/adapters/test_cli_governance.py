"""V2 governance through `pipe` (in process, one call per command): what one command registers,
activates or sets is read back from the database by the next, and refusals are one line with the
right exit code."""

from __future__ import annotations

from tests.adapters.conftest import assert_refused


def test_state_and_settings_persist_between_commands(pipe):
    created = pipe.json("register-pipeline-v2", "web:deploy", "alice", "--name", "web deploys")
    assert created["status"] == "pending"
    assert "web:deploy  owner alice  active" in pipe.ok("activate-pipeline-v2", "web:deploy")
    assert pipe.ok("set-max-pending-runs-v2", "1.7") == "max_pending_runs_per_pipeline: 20 → 1\n"
    pipe.ok("create-run-v2", "r1", "web:deploy", "--trigger", "push")

    stats = pipe.json("gov-stats-v2", "--owner", "alice")  # settings are reloaded: all of it comes from the database
    assert stats["pipelines"] == {"pending": 0, "active": 1, "paused": 0, "archived": 0, "total": 1}
    assert stats["runs"] == {"queued": 1, "running": 0, "completed": 0, "failed": 0, "cancelled": 0, "total": 1}
    assert stats["caps"] == {"max_active_pipelines_per_owner": 10, "max_pending_runs_per_pipeline": 1}
    assert stats["owner"] == {"name": "alice", "active": 1, "max_active": 10, "remaining": 9}


def test_errors_are_one_line_with_exit_code_1_for_state_and_2_for_input(pipe, run, alice):
    from chainpipe.core.services import governance as gov
    from chainpipe.core.services import governance_runs as runs

    for pid in ("web", "api"):
        run(gov.register_pipeline_v2, alice, pipeline_id=pid, owner="alice")
    run(gov.activate_pipeline_v2, alice, pipeline_id="web")
    run(gov.set_max_active_pipelines_v2, alice, value="1")
    run(gov.set_max_pending_runs_v2, alice, value="1")
    run(runs.create_run_v2, alice, run_id="r1", pipeline_id="web")
    run(runs.start_run_v2, alice, run_id="r1")
    cases = [
        (("activate-pipeline-v2", "api"), 1,
         "active pipeline cap reached for owner alice (1/1); archive or pause one first"),
        (("create-run-v2", "r2", "web"), 1, "pending run cap reached for pipeline web (1/1)"),
        (("pause-pipeline-v2", "api"), 1, "can't pause a governed pipeline api that is pending; allowed from: active"),
        (("register-pipeline-v2", "web", "bob"), 1, "governed pipeline web already exists"),
        (("set-run-stuck-ms-v2", "soon"), 2, "run stuck ms must be a positive number, got 'soon'"),
        (("auto-fail-stuck-v2", "--now", "yesterday"), 2, "not an ISO-8601 time: yesterday"),
        (("get-run-v2",), 2, "Missing argument"),
    ]
    for args, code, message in cases:
        assert_refused(pipe(*args), code, message)
    assert run(gov.show_config_v2, alice)["max_active_pipelines_per_owner"] == 1  # refusals changed nothing
    assert pipe.json("fail-run-v2", "r1", "runner lost")["reason"] == "runner lost"  # optional positional REASON
