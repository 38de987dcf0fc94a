"""`pipe` run in process through the console script's entry point: the seed walkthrough, --json
everywhere, one-line errors with the right exit codes. The installed script itself, in real
processes, is exercised by tests/e2e/test_cli_process.py."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from chainpipe.core.grammar import COMMANDS

from tests.adapters.conftest import assert_refused


def test_the_seed_walkthrough_runs(pipe):
    """The seed's walkthrough, step by step (tests/e2e runs the same script verbatim under bash)."""
    (pipe.cwd / "dist").mkdir()
    (pipe.cwd / "dist" / "build.zip").write_bytes(b"zip")
    pid = pipe.json("create", "--name", "用户认证", "--template", "feature")["id"]
    for step in (["start", pid], ["stage", pid, "code"], ["stage", pid, "review"],
                 ["approve", pid, "--gate", "code-review"],
                 ["artifact-add", pid, "--name", "build.zip", "--type", "binary", "--path", "./dist/build.zip"]):
        pipe.ok(*step)
    dep = pipe.json("deploy", pid, "--strategy", "canary", "--target", "production")["id"]
    pipe.ok("monitor-record", pid, "--metric", "error_rate", "--value", "0.02")
    pipe.ok("rollback", dep)
    pipe.ok("rollback", dep)
    stats, show = pipe.json("stats"), pipe.json("show", pid)
    assert show["name"] == "用户认证" and show["current_stage"] == "deploy"
    assert show["artifacts"][0]["digest"].startswith("sha256:") and show["artifacts"][0]["size"] == 3
    assert show["recent_deploys"][0]["status"] == "rolled-back"
    assert stats["deploys"]["by_status"]["rolled-back"] == 1 and stats["gate_decisions"]["approved"] == 1


def _sample(name: str, ids: dict) -> list[str] | None:
    """Arguments that make `name` succeed on the prepared pipelines."""
    pid, dep = ids["pid"], ids["dep"]
    return {
        "create": ["--name", "x"], "start": [ids["fresh"]], "pause": [ids["other"]], "resume": [ids["other"]],
        "cancel": [ids["other"]], "complete": [pid], "fail": [ids["failing"], "--reason", "r"],
        "retry": [ids["failing"]], "stage": [pid, "deploy"], "approve": [pid, "--gate", "code-review"],
        "gate-status": [pid, "--gate", "code-review"],
        "reject": [ids["rejecting"], "--gate", "code-review", "--reason", "no"],
        "artifact-add": [pid, "--name", "n", "--type", "log", "--uri", "s3://x"], "artifacts": [pid],
        "deploy": [pid, "--strategy", "canary", "--target", "t"], "deploy-update": [dep, "--status", "succeeded"],
        "deploys": [pid], "deploy-show": [dep], "rollback": [dep], "deploy-link": [dep, "--external-id", "42"],
        "monitor-record": [pid, "--metric", "cpu", "--value", "3"], "monitor-events": [pid],
        "monitor-status": [pid], "show": [pid], "list": [], "export": [pid], "audit": [pid], "stats": [],
        "audit-verify": [pid],
    }.get(name)


# Commands that change what later ones need run in this order; the rest (reads) run first.
ORDER = ["pause", "resume", "fail", "retry", "reject", "artifact-add", "monitor-record", "approve",
         "deploy-update", "rollback", "stage", "deploy", "complete", "cancel", "start", "create"]


def test_every_command_prints_parseable_json_and_nothing_else(pipe):
    def new(*steps):
        pid = pipe.json("create", "--name", "p")["id"]
        for step in steps:
            pipe.ok(*step.replace("PID", pid).split())
        return pid

    ids = {"fresh": new(), "other": new("start PID"), "failing": new("start PID"),
           "pid": new("start PID", "stage PID review"), "rejecting": new("start PID", "stage PID review")}
    ids["dep"] = pipe.json("deploy", new("start PID", "stage PID review", "approve PID --gate code-review"),
                           "--strategy", "rolling", "--target", "x")["id"]
    names = sorted(COMMANDS, key=lambda n: (ORDER.index(n) if n in ORDER else -1, n))
    checked = []
    for name in names:
        args = _sample(name, ids)
        if args is None:
            if COMMANDS[name].kind != "catalogue":
                continue  # commands of other groups are covered by their own tests
            args = []
        pipe.json(name, *args)
        checked.append(name)
    assert set(checked) >= {n for n, c in COMMANDS.items() if c.group != "governance"}


@pytest.mark.parametrize("args,code,message", [
    (["start", "pipe-000000000000"], 1, "pipe: pipeline not found: pipe-000000000000"),
    (["create", "--name", "x", "--template", "nightly"], 2, "pipe: unknown template: nightly; allowed: "),
    (["stage"], 2, "pipe: Missing argument 'PIPELINE_ID'"),
    (["approve", "pipe-1"], 2, "pipe: Missing option '--gate'"),
    (["frobnicate"], 2, "pipe: No such command 'frobnicate'"),
    (["list", "--limit", "lots"], 2, "pipe: Invalid value for '--limit'"),
    (["deploy-strategies", "--colour"], 2, "pipe: No such option: --colour"),
])
def test_errors_are_one_line_on_stderr_with_the_right_exit_code(pipe, args, code, message):
    res = pipe(*args)
    assert_refused(res, code, message)
    assert res.err.startswith(message)


def test_domain_refusals_exit_1_and_change_nothing(pipe):
    pid = pipe.json("create", "--name", "p")["id"]
    pipe.ok("start", pid)
    assert_refused(pipe("stage", pid, "deploy"), 1, "pipe: gate not approved: code-review")
    assert_refused(pipe("monitor-record", pid, "--metric", "error_rate", "--value", "nan"), 2, "finite number")
    missing = pipe("artifact-add", pid, "--name", "b", "--type", "binary", "--path", "./nope.zip")
    assert missing.code == 2 and missing.err == "pipe: file not found: ./nope.zip\n"
    shown = pipe.json("show", pid)
    assert shown["current_stage"] == "requirements" and shown["artifacts"] == []


def test_actor_comes_from_as_or_the_environment(pipe):
    pid = pipe.json("create", "--name", "p")["id"]
    assert pipe.json("show", pid)["created_by"] == "alice"
    pid2 = pipe.json("create", "--name", "p", "--as", "bob")["id"]
    assert pipe.json("show", pid2)["created_by"] == "bob"
    pipe.setenv(PIPE_ACTOR="carol")
    pid3 = pipe.json("create", "--name", "p")["id"]
    assert pipe.json("show", pid3)["created_by"] == "carol"


def test_a_broken_config_file_is_a_usage_error(pipe):
    Path(pipe.env["PIPE_CONFIG"]).write_text("[gates.code-review]\nrequired_approvals = -1\n")
    res = pipe("list")
    assert_refused(res, 2, "gates.code-review.required_approvals must be")
    assert res.err.startswith("pipe: gates.code-review.required_approvals must be")


def test_an_unreachable_database_is_one_line_not_a_traceback(pipe):
    pipe.setenv(PIPE_DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none")
    res = pipe("list")
    assert_refused(res, 2, "cannot open the database:")
    assert res.err.startswith("pipe: cannot open the database:")


def test_a_crash_is_one_line_with_a_reference_and_the_traceback_goes_to_the_crash_log(pipe, monkeypatch):
    pid = pipe.json("create", "--name", "p")["id"]
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stdout", None)  # as in a process started with stdout closed: a bug, not an input
        res = pipe("show", pid, "--json")
    assert_refused(res, 3, "internal error ")
    log = Path(pipe.env["PIPE_DATA_DIR"]) / "crash.log"
    ref = re.search(rf"internal error (\S+): AttributeError; details in {re.escape(str(log))}$", res.err.strip())
    assert ref, res.err
    assert ref.group(1) in log.read_text(encoding="utf-8") and "Traceback" in log.read_text(encoding="utf-8")


def test_human_output_is_readable(pipe):
    pid = pipe.json("create", "--name", "用户认证")["id"]
    out = pipe.ok("show", pid)
    assert "Stages" in out and "requirements" in out and "code-review" in out
    assert pipe.ok("start", pid).strip().endswith("running  stage requirements")


def test_a_bare_pipe_prints_the_help_and_succeeds(pipe):
    out = pipe.ok()
    assert out.startswith("Usage: pipe [OPTIONS] COMMAND") and "artifact-add" in out and "monitor-status" in out


def test_shell_completion_completes_commands_and_options(pipe):
    pipe.setenv(_PIPE_COMPLETE="complete_bash", COMP_WORDS="pipe deploy-", COMP_CWORD="1")
    words = pipe.ok()
    assert set(words.split()) >= {"deploy-strategies", "deploy-update", "deploy-show"}
    pipe.setenv(COMP_WORDS="pipe deploy --st", COMP_CWORD="2")
    assert set(pipe.ok().split()) == {"--strategy", "--status"}


def test_audit_verify_is_spelled_as_two_words_and_exits_1_on_a_tampered_row(pipe, env):
    from chainpipe.core.db import get_engine
    from sqlalchemy import text

    pid = pipe.json("create", "--name", "chained")["id"]
    pipe.ok("start", pid)
    assert pipe.json("audit", "verify", pid)["ok"] is True
    with get_engine(env["PIPE_DATABASE_URL"]).begin() as conn:
        conn.execute(text("UPDATE audit_events SET reason = 'edited' WHERE pipeline_id = :p"), {"p": pid})
    code, _, err = pipe("audit", "verify", "--all")
    assert code == 1 and "broken at row" in err and err.count("\n") == 1
