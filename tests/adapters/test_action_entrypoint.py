"""The Action entrypoint as the real runner starts it: action.yml's run step, its `env:` mapping
evaluated with the step's inputs, no INPUT_* variables, real GITHUB_OUTPUT / GITHUB_STEP_SUMMARY
files and an event payload — direct mode, on SQLite and PostgreSQL. The entrypoint runs in this
process with exactly that environment; tests/e2e/test_action_process.py starts it for real."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
import threading
import time
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.adapters.conftest import FOREIGN_ENV

ROOT = Path(__file__).resolve().parents[2]
EXPR = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


def action_metadata() -> dict:
    return yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))


def run_step() -> dict:
    return next(s for s in action_metadata()["runs"]["steps"] if s.get("id") == "run")


def step_env(inputs: dict, *, job_status: str = "success") -> dict[str, str]:
    """Evaluate the run step's `env:` the way the runner does: inputs (with their defaults)."""
    meta = action_metadata()
    unknown = set(inputs) - set(meta["inputs"])
    assert not unknown, f"not inputs of action.yml: {unknown}"
    values = {name: str(spec.get("default", "")) for name, spec in meta["inputs"].items()} | inputs
    context = {f"inputs.{k}": v for k, v in values.items()} | {
        "job.status": job_status, "steps.install.outputs.python": sys.executable,
        "steps.install.outputs.pythonpath": ""}
    return {key: EXPR.sub(lambda m: context[m.group(1)], str(value)) for key, value in run_step()["env"].items()}


def runner_env(tmp_path: Path, base: dict, inputs: dict, *, job_status: str = "success") -> dict[str, str]:
    """A runner's process environment for the step: GITHUB_* variables, files, and no INPUT_*."""
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"ref": "refs/heads/main", "after": "c0ffee" * 6 + "abcd",
                                 "repository": {"full_name": "acme/shop"}}), encoding="utf-8")
    for name in ("output", "summary"):
        (tmp_path / name).touch()
    (tmp_path / "workspace").mkdir(exist_ok=True)
    env = {
        "PATH": "/usr/bin:/bin", "HOME": base["HOME"], "PIPE_DATA_DIR": base["PIPE_DATA_DIR"],
        "PIPE_CONFIG": base["PIPE_CONFIG"], "GITHUB_ACTIONS": "true", "CI": "true",
        "GITHUB_ACTOR": "octocat", "GITHUB_REPOSITORY": "acme/shop", "GITHUB_RUN_ID": "4242",
        "GITHUB_SERVER_URL": "https://github.com", "GITHUB_SHA": "c0ffee" * 6 + "abcd",
        "GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": str(event), "GITHUB_WORKSPACE": str(tmp_path / "workspace"),
        "GITHUB_OUTPUT": str(tmp_path / "output"), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
        "GITHUB_ACTION_PATH": str(ROOT), "RUNNER_TEMP": str(tmp_path), "RUNNER_OS": "Linux",
    } | step_env(inputs, job_status=job_status)
    assert not [k for k in env if k.startswith("INPUT_")]
    return env


def parse_outputs(text: str) -> dict[str, str]:
    """Read GITHUB_OUTPUT as the runner does: `name=value` or `name<<DELIM` … `DELIM`."""
    outputs, lines = {}, text.splitlines()
    while lines:
        line = lines.pop(0)
        if "<<" in line:
            name, delimiter = line.split("<<", 1)
            body = []
            while (nxt := lines.pop(0)) != delimiter:
                body.append(nxt)
            outputs[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


@dataclass
class StepRun:
    """What the runner sees of one step: exit code, the log (stdout/stderr) and the files it wrote."""

    returncode: int
    stdout: str
    stderr: str
    outputs: dict = field(default_factory=dict)
    summary: str = ""


def run_entrypoint(monkeypatch, env: dict, stdout: io.StringIO | None = None) -> StepRun:
    """Run the step's entrypoint (`pipe-action` → ``cli.action.main``) with ``env`` as the whole
    process environment and GITHUB_WORKSPACE as the working directory, as the runner starts it."""
    from chainpipe.cli import action

    # the step runs exactly the entrypoint, with the workspace off the import path
    assert run_step()["run"].strip() == ('PYTHONPATH="$PIPE_ACTION_PYTHONPATH" "$PIPE_ACTION_PYTHON" '
                                         '-P -m chainpipe.cli.action')
    out, err = stdout or io.StringIO(), io.StringIO()
    with monkeypatch.context() as patch:
        for key in [k for k in os.environ if k.startswith(FOREIGN_ENV)]:
            patch.delenv(key)
        for key, value in env.items():
            patch.setenv(key, value)
        patch.chdir(env["GITHUB_WORKSPACE"])
        with redirect_stdout(out), redirect_stderr(err):
            code = action.main()
    files = {name: Path(env[var]) for name, var in (("output", "GITHUB_OUTPUT"), ("summary", "GITHUB_STEP_SUMMARY"))}
    proc = StepRun(code, out.getvalue(), err.getvalue(),
                   parse_outputs(files["output"].read_text()) if files["output"].is_file() else {},
                   files["summary"].read_text() if files["summary"].is_file() else "")
    assert "Traceback" not in proc.stdout
    return proc


class Step:
    """Runs action.yml's run step like the runner, and collects what it wrote."""

    def __init__(self, tmp_path: Path, env: dict, monkeypatch):
        self.tmp_path, self.base, self.monkeypatch = tmp_path, env, monkeypatch

    def __call__(self, job_status: str = "success", **inputs) -> StepRun:
        inputs = {k.replace("_", "-"): v for k, v in inputs.items()}
        for name in ("output", "summary"):
            (self.tmp_path / name).write_text("")
        proc = run_entrypoint(self.monkeypatch, runner_env(self.tmp_path, self.base, inputs, job_status=job_status))
        assert "Traceback" not in proc.stderr
        return proc


class Watched(io.StringIO):
    """A step's log that signals once a line holding all of ``words`` has been written."""

    def __init__(self, *words: str):
        super().__init__()
        self.words, self.seen = words, threading.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        if any(all(w in line for w in self.words) for line in self.getvalue().splitlines()):
            self.seen.set()
        return written


@pytest.fixture
def step(tmp_path, env, config_file, monkeypatch):
    return Step(tmp_path, env, monkeypatch)


@pytest.fixture
def sqlite_env(tmp_path):
    """For behaviour that does not depend on the database: SQLite only, to keep the suite fast."""
    (tmp_path / "config.toml").write_text("")
    return {"PIPE_DATABASE_URL": f"sqlite:///{tmp_path / 'pipe.db'}", "PIPE_DATA_DIR": str(tmp_path / "data"),
            "PIPE_CONFIG": str(tmp_path / "config.toml"), "HOME": str(tmp_path)}


@pytest.fixture
def sqlite_step(tmp_path, sqlite_env, monkeypatch):
    return Step(tmp_path, sqlite_env, monkeypatch)


@pytest.fixture
def db(env, config_file):
    """Run a grammar command in-process as a human would (approvals come from people, not the run)."""
    from chainpipe.core.actor import Actor
    from chainpipe.core.config import load_settings
    from chainpipe.core.dispatch import execute
    from chainpipe.core.grammar import get_command

    settings = load_settings(env)

    def call(command: str, /, actor: str = "alice", **values):
        cmd = get_command(command)
        return execute(cmd, {p.name: p.default for p in cmd.params} | values, Actor(actor, "cli"), settings)

    return call


def direct(env: dict) -> dict:
    return {"database_url": env["PIPE_DATABASE_URL"]}


def test_a_workflow_records_artifact_deploy_status_and_metrics_with_outputs_and_summary(step, db, env, tmp_path):
    created = step(command="create", name="shop", template="bugfix", **direct(env))
    assert created.returncode == 0, created.stdout
    pid = created.outputs["pipeline-id"]
    assert re.fullmatch(r"pipe-[0-9a-f]{12}", pid) and created.outputs["status"] == "running"
    assert "pipeline created" in created.summary and pid in created.summary

    db("stage", pipeline_id=pid, stage="reviewing")
    db("approve", pipeline_id=pid, gate="code-review")

    (tmp_path / "workspace" / "dist").mkdir()
    blob = b"\x7fELF build output\n" * 1000
    (tmp_path / "workspace" / "dist" / "shop.tar.gz").write_bytes(blob)
    art = step(command="artifact", pipeline_id=pid, path="dist/shop.tar.gz", type="binary", **direct(env))
    assert art.returncode == 0, art.stdout
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    assert art.outputs == {"pipeline-id": pid, "artifact-id": art.outputs["artifact-id"],
                           "artifact-version": "1", "digest": digest}
    assert f"| size | {len(blob)} bytes |" in art.summary and "shop.tar.gz v1" in art.summary

    dep = step(command="deploy", pipeline_id=pid, strategy="canary", target="production", name="shop.tar.gz@1",
               **direct(env))
    assert dep.returncode == 0, dep.stdout
    deploy_id = dep.outputs["deploy-id"]
    assert dep.outputs["status"] == "in-progress"
    shown = db("deploy-show", deploy_id=deploy_id)
    assert shown["ref"] == "c0ffee" * 6 + "abcd" and shown["artifact"]["version"] == 1
    assert shown["surface"] == "github" and "github:octocat" in shown["created_by"]
    assert shown["run_url"] == "https://github.com/acme/shop/actions/runs/4242"

    # no status input: the job's status decides (the workflow's deploy step failed)
    failed = step(command="deploy-status", deploy_id=deploy_id, job_status="failure", **direct(env))
    assert failed.returncode == 0 and failed.outputs["status"] == "failed"
    assert "deploy status" in failed.summary

    metrics = step(command="metric", pipeline_id=pid, metrics="error_rate=0.2\n\nlatency_ms = 180\n", **direct(env))
    assert metrics.returncode == 0, metrics.stdout
    assert metrics.outputs["status"] in ("healthy", "degraded", "unhealthy", "unknown")
    events = db("monitor-events", pipeline_id=pid)
    assert {(e["metric"], e["value"], e["deploy_id"]) for e in events} == {
        ("error_rate", 0.2, deploy_id), ("latency_ms", 180.0, deploy_id)}
    assert all(e["run_url"].endswith("/runs/4242") for e in events)


def test_rollback_of_a_failed_deploy_is_an_error_annotation_and_exit_1(step, db, env):
    pid = db("create", name="shop", template="bugfix")["id"]
    db("start", pipeline_id=pid)
    db("stage", pipeline_id=pid, stage="review")
    db("approve", pipeline_id=pid, gate="code-review")
    failed = db("deploy", pipeline_id=pid, strategy="rolling", target="staging", status="failed")["id"]
    proc = step(command="rollback", deploy_id=failed, **direct(env))
    assert proc.returncode == 1
    assert re.search(r"^::error title=chainpipe rollback%3A invalid transition::.*failed", proc.stdout, re.M)
    ok = db("deploy", pipeline_id=pid, strategy="rolling", target="staging", status="succeeded")["id"]
    rolled = step(command="rollback", deploy_id=ok, **direct(env))
    assert rolled.returncode == 0 and rolled.outputs == {"pipeline-id": pid, "deploy-id": ok, "status": "rolled-back"}
    assert db("deploy-show", deploy_id=ok)["rollback_reason"].endswith("/actions/runs/4242")


@pytest.mark.parametrize("inputs, code, pattern", [
    ({"command": "launch"}, 2, r"::error title=chainpipe launch%3A invalid input::unknown command 'launch'"),
    ({"command": "create"}, 2, r"::error title=.*::say where to record"),
    ({"command": "artifact", "pipeline_id": "pipe-000000000000", "type": "binary", "path": "missing.bin"},
     2, r"::error title=chainpipe artifact%3A invalid input::file not found: missing.bin"),
    ({"command": "stage", "pipeline_id": "pipe-000000000000", "stage": "code"},
     1, r"::error title=chainpipe stage%3A not found::pipeline not found: pipe-000000000000"),
    ({"command": "metric", "pipeline_id": "pipe-000000000000", "metrics": "error_rate: 5%\nok=1"},
     2, r"::error title=.*::metrics line 1 must look like name=value, got 'error_rate: 5%25'"),
    ({"command": "deploy-status", "deploy_id": "dep-000000000000", "status": "exploded"},
     2, r"::error title=.*::unknown status 'exploded'; allowed: success, failure, cancelled"),
])
def test_errors_become_one_escaped_annotation_and_an_exit_code(sqlite_step, sqlite_env, inputs, code, pattern):
    if "say where" not in pattern:
        inputs = inputs | direct(sqlite_env)
    proc = sqlite_step(**inputs)
    assert proc.returncode == code, proc.stdout + proc.stderr
    errors = [line for line in proc.stdout.splitlines() if line.startswith("::error")]
    assert len(errors) == 1 and re.search(pattern, errors[0]), errors


def test_secrets_are_masked_before_anything_else_is_printed(sqlite_step, tmp_path):
    url = f"sqlite:///{tmp_path / 'a%b.db'}"
    proc = sqlite_step(command="stage", pipeline_id="pipe-000000000000", stage="code",
                       github_token="ghs_secret_value", database_url=url)
    lines = proc.stdout.splitlines()
    assert lines[0] == "::add-mask::ghs_secret_value"
    assert lines[1] == "::add-mask::" + url.replace("%", "%25")  # the runner un-escapes workflow commands
    assert "ghs_secret_value" not in "\n".join(lines[2:])


def test_a_crash_is_a_short_annotation_with_a_reference_and_no_traceback(sqlite_env, tmp_path, monkeypatch):
    proc_env = runner_env(tmp_path, sqlite_env, dashed({"command": "create", "name": "x"} | direct(sqlite_env)))
    (tmp_path / "output").unlink()
    (tmp_path / "output").mkdir()  # the runner's output file is unusable: a bug, not a user error
    proc = run_entrypoint(monkeypatch, proc_env)
    assert proc.returncode == 3
    assert re.search(r"^::error title=chainpipe internal error::internal error [\w-]+: IsADirectoryError",
                     proc.stdout, re.M)
    assert "Traceback" not in proc.stdout + proc.stderr
    debug = run_entrypoint(monkeypatch, proc_env | {"RUNNER_DEBUG": "1"})
    assert debug.returncode == 3 and "Traceback" in debug.stderr and "Traceback" not in debug.stdout


def dashed(values: dict) -> dict:
    return {k.replace("_", "-"): v for k, v in values.items()}


@pytest.mark.parametrize("decision, code, status", [("approve", 0, "approved"), ("reject", 1, "rejected")])
def test_await_gate_polls_until_a_person_decides(tmp_path, env, config_file, db, monkeypatch, decision, code, status):
    pid = db("create", name="shop", template="bugfix")["id"]
    db("start", pipeline_id=pid)
    db("stage", pipeline_id=pid, stage="review")
    proc_env = runner_env(tmp_path, env, dashed({"command": "await-gate", "pipeline_id": pid, "gate": "code-review",
                                                "timeout": "20s", "poll_interval": "0.1s"} | direct(env)))
    started, log, done = time.monotonic(), Watched("code-review", "pending"), []
    waiting = threading.Thread(target=lambda: done.append(run_entrypoint(monkeypatch, proc_env, stdout=log)))
    waiting.start()
    try:
        assert log.seen.wait(timeout=20), log.getvalue()
        values = {"reason": "not this time"} if decision == "reject" else {}
        db(decision, actor="bob", pipeline_id=pid, gate="code-review", **values)
    finally:
        waiting.join(timeout=20)
    [proc] = done
    assert proc.returncode == code, proc.stdout
    assert time.monotonic() - started < 10
    assert proc.outputs == {"pipeline-id": pid, "status": status}
    assert f"gate code-review: {status}" in proc.summary
    if decision == "reject":
        assert "::error title=gate rejected::gate code-review of " + pid + " was rejected" in proc.stdout


def test_await_gate_times_out_with_a_clear_annotation(step, db, env):
    pid = db("create", name="shop", template="bugfix")["id"]
    db("start", pipeline_id=pid)
    started = time.monotonic()
    proc = step(command="await-gate", pipeline_id=pid, gate="code-review", timeout="1s", poll_interval="0.2s",
                **direct(env))
    assert 0.9 < time.monotonic() - started < 10
    assert proc.returncode == 1 and proc.outputs["status"] == "timeout"
    assert re.search(r"^::error title=gate approval timed out::gate code-review of pipe-\w+ is still pending after 1s",
                     proc.stdout, re.M)


def test_await_gate_names_the_gates_when_the_gate_does_not_exist(step, db, env):
    pid = db("create", name="shop", template="bugfix")["id"]
    proc = step(command="await-gate", pipeline_id=pid, gate="security-review", timeout="1s", **direct(env))
    assert proc.returncode == 2 and "its gates: code-review" in proc.stdout
