"""The installed `pipe` script in subprocesses: the seed walkthrough verbatim, --json everywhere,
one-line errors with the right exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.grammar import COMMANDS

PIPE = str(Path(sys.executable).with_name("pipe"))


@pytest.fixture
def cli(env, tmp_path):
    full = {k: v for k, v in os.environ.items() if not k.startswith("PIPE_")} | env | {
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}", "PIPE_ACTOR": "alice"}

    def call(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        res = subprocess.run([PIPE, *args], capture_output=True, text=True, env=full, cwd=tmp_path, timeout=60)
        if ok:
            assert res.returncode == 0, res.stderr
        return res

    call.env = full
    call.cwd = tmp_path
    return call


@pytest.mark.skipif(not shutil.which("jq") or not shutil.which("bash"), reason="needs bash and jq")
def test_the_seed_walkthrough_runs_verbatim(cli):
    (cli.cwd / "dist").mkdir()
    (cli.cwd / "dist" / "build.zip").write_bytes(b"zip")
    script = """
set -euo pipefail
pid=$(pipe create --name "用户认证" --template feature --json | jq -r .id)
pipe start $pid
pipe stage $pid code
pipe stage $pid review
pipe approve $pid --gate code-review
pipe artifact-add $pid --name build.zip --type binary --path ./dist/build.zip
dep=$(pipe deploy $pid --strategy canary --target production --json | jq -r .id)
pipe monitor-record $pid --metric error_rate --value 0.02
pipe rollback $dep
pipe rollback $dep
pipe stats --json > stats.json
pipe show $pid --json > show.json
"""
    res = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=cli.env, cwd=cli.cwd, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    show = json.loads((cli.cwd / "show.json").read_text())
    assert show["name"] == "用户认证" and show["current_stage"] == "deploy"
    assert show["artifacts"][0]["digest"].startswith("sha256:") and show["artifacts"][0]["size"] == 3
    assert show["recent_deploys"][0]["status"] == "rolled-back"
    stats = json.loads((cli.cwd / "stats.json").read_text())
    assert stats["deploys"]["by_status"]["rolled-back"] == 1 and stats["gate_decisions"]["approved"] == 1


def _sample(name: str, ids: dict) -> list[str] | None:
    """Arguments that make `name` succeed on the prepared pipelines."""
    pid, dep = ids["pid"], ids["dep"]
    return {
        "create": ["--name", "x"], "start": [ids["fresh"]], "pause": [ids["other"]], "resume": [ids["other"]],
        "cancel": [ids["other"]], "complete": [pid], "fail": [ids["failing"], "--reason", "r"],
        "retry": [ids["failing"]], "stage": [pid, "deploy"], "approve": [pid, "--gate", "code-review"],
        "reject": [ids["rejecting"], "--gate", "code-review", "--reason", "no"],
        "artifact-add": [pid, "--name", "n", "--type", "log", "--uri", "s3://x"], "artifacts": [pid],
        "deploy": [pid, "--strategy", "canary", "--target", "t"], "deploy-update": [dep, "--status", "succeeded"],
        "deploys": [pid], "deploy-show": [dep], "rollback": [dep], "deploy-link": [dep, "--external-id", "42"],
        "monitor-record": [pid, "--metric", "cpu", "--value", "3"], "monitor-events": [pid],
        "monitor-status": [pid], "show": [pid], "list": [], "export": [pid], "audit": [pid], "stats": [],
    }.get(name)


# Commands that change what later ones need run in this order; the rest (reads) run first.
ORDER = ["pause", "resume", "fail", "retry", "reject", "artifact-add", "monitor-record", "approve",
         "deploy-update", "rollback", "stage", "deploy", "complete", "cancel", "start", "create"]


@pytest.fixture
def inproc(env, monkeypatch, capsys):
    """Run `pipe …` in this process (same entry point as the script, minus interpreter start-up)."""
    from cli.main import main

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PIPE_ACTOR", "alice")

    def call(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return call


def test_every_command_prints_parseable_json_and_nothing_else(inproc):
    def ok(*args):
        code, out, err = inproc(*args)
        assert (code, err) == (0, ""), args
        return out

    def new(*steps):
        pid = json.loads(ok("create", "--name", "p", "--json"))["id"]
        for step in steps:
            ok(*step.replace("PID", pid).split())
        return pid

    ids = {"fresh": new(), "other": new("start PID"), "failing": new("start PID"),
           "pid": new("start PID", "stage PID review"), "rejecting": new("start PID", "stage PID review")}
    ids["dep"] = json.loads(ok("deploy", new("start PID", "stage PID review", "approve PID --gate code-review"),
                               "--strategy", "rolling", "--target", "x", "--json"))["id"]
    names = sorted(COMMANDS, key=lambda n: (ORDER.index(n) if n in ORDER else -1, n))
    checked = []
    for name in names:
        args = _sample(name, ids)
        if args is None:
            if COMMANDS[name].kind != "catalogue":
                continue  # commands of other groups are covered by their own tests
            args = []
        json.loads(ok(name, *args, "--json"))
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
def test_errors_are_one_line_on_stderr_with_the_right_exit_code(cli, args, code, message):
    res = cli(*args, ok=False)
    assert res.returncode == code
    assert res.stdout == ""
    assert res.stderr.startswith(message) and res.stderr.count("\n") == 1, res.stderr


def test_domain_refusals_exit_1_and_change_nothing(cli):
    pid = json.loads(cli("create", "--name", "p", "--json").stdout)["id"]
    cli("start", pid)
    res = cli("stage", pid, "deploy", ok=False)
    assert res.returncode == 1 and res.stderr.startswith("pipe: gate not approved: code-review")
    value = cli("monitor-record", pid, "--metric", "error_rate", "--value", "nan", ok=False)
    assert value.returncode == 2 and "finite number" in value.stderr
    missing = cli("artifact-add", pid, "--name", "b", "--type", "binary", "--path", "./nope.zip", ok=False)
    assert missing.returncode == 2 and missing.stderr == "pipe: file not found: ./nope.zip\n"
    shown = json.loads(cli("show", pid, "--json").stdout)
    assert shown["current_stage"] == "requirements" and shown["artifacts"] == []


def test_actor_comes_from_as_or_the_environment(cli):
    pid = json.loads(cli("create", "--name", "p", "--json").stdout)["id"]
    assert json.loads(cli("show", pid, "--json").stdout)["created_by"] == "alice"
    pid2 = json.loads(cli("create", "--name", "p", "--as", "bob", "--json").stdout)["id"]
    assert json.loads(cli("show", pid2, "--json").stdout)["created_by"] == "bob"


def test_a_broken_config_file_is_a_usage_error(cli):
    Path(cli.env["PIPE_CONFIG"]).write_text("[gates.code-review]\nrequired_approvals = -1\n")
    res = cli("list", ok=False)
    assert res.returncode == 2 and res.stderr.startswith("pipe: gates.code-review.required_approvals must be")


def test_an_unreachable_database_is_one_line_not_a_traceback(cli):
    env = cli.env | {"PIPE_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    res = subprocess.run([PIPE, "list"], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 2 and res.stderr.startswith("pipe: cannot open the database:")
    assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1


def test_human_output_is_readable(cli):
    pid = json.loads(cli("create", "--name", "用户认证", "--json").stdout)["id"]
    out = cli("show", pid).stdout
    assert "Stages" in out and "requirements" in out and "code-review" in out
    assert cli("start", pid).stdout.strip().endswith("running  stage requirements")


def test_a_bare_pipe_prints_the_help_and_succeeds(inproc):
    code, out, err = inproc()
    assert code == 0 and err == ""
    assert out.startswith("Usage: pipe [OPTIONS] COMMAND") and "artifact-add" in out and "monitor-status" in out


def test_shell_completion_completes_commands_and_options(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPE_")} | {
        "PIPE_DATA_DIR": str(tmp_path), "_PIPE_COMPLETE": "complete_bash"}
    words = subprocess.run([PIPE], capture_output=True, text=True, timeout=60,
                           env=env | {"COMP_WORDS": "pipe deploy-", "COMP_CWORD": "1"})
    assert words.returncode == 0 and words.stderr == ""
    assert set(words.stdout.split()) >= {"deploy-strategies", "deploy-update", "deploy-show"}
    options = subprocess.run([PIPE], capture_output=True, text=True, timeout=60,
                             env=env | {"COMP_WORDS": "pipe deploy --st", "COMP_CWORD": "2"})
    assert options.returncode == 0 and set(options.stdout.split()) == {"--strategy", "--status"}
