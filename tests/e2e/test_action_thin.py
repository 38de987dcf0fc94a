"""The thin Action: in remote mode (server-url + token) the steps install nothing and import only the
standard library. Measured on a runner-like Python — a fresh venv with no packages, a fresh copy of
the action (no bytecode cached) — against a real `pipe-server`: action.yml's own install and run
scripts under bash, then the example workflow's remote steps under act. Direct mode installs
exactly what requirements.lock pins, with hashes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from tests.adapters.test_action_entrypoint import action_metadata, parse_outputs, runner_env
from tests.e2e.test_action_act import act_can_start, act_checkout, act_command, slim_action

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BUDGET = 3.0  # seconds for the first chainpipe step of a job, install included


def step(step_id: str) -> dict:
    return next(s for s in action_metadata()["runs"]["steps"] if s.get("id") == step_id)


@pytest.fixture
def bare_python(tmp_path) -> Path:
    """A Python with nothing installed, as on a runner (no pip either)."""
    venv = tmp_path / "runner-python"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    return venv / "bin"


@pytest.fixture
def api_server(pipe_server, env):
    """A real `pipe-server` (JSON API only) and a CI token for it; SQLite is enough for a timing."""
    if not env["PIPE_DATABASE_URL"].startswith("sqlite"):
        pytest.skip("one database is enough here")
    server = pipe_server(PIPE_SERVER_API_ONLY="1")
    done = subprocess.run([str(BIN / "pipe"), "token", "create", "--name", "ci", "--allow-actor-header"],
                          env=pipe_server.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return server, done.stdout.splitlines()[0].strip()


def test_a_remote_step_installs_nothing_imports_only_the_standard_library_and_takes_under_3_s(
        api_server, tmp_path, bare_python, env):
    server, token = api_server
    (tmp_path / "action").mkdir()
    action = slim_action(tmp_path / "action")
    inputs = {"command": "create", "name": "shop", "template": "bugfix", "server-url": server.url, "token": token}
    runner = runner_env(tmp_path, env, inputs) | {
        "PATH": f"{bare_python}:/usr/bin:/bin", "GITHUB_ACTION_PATH": str(action), "PYTHONDONTWRITEBYTECODE": "1",
        "PIPE_ACTION_DATABASE_URL": "", "PIPE_ACTION_GITHUB_TOKEN": ""}
    started = time.perf_counter()
    install = subprocess.run(["bash", "-e", "-c", step("install")["run"]], env=runner, capture_output=True,
                             text=True, timeout=60, cwd=runner["GITHUB_WORKSPACE"])
    installed = time.perf_counter()
    assert install.returncode == 0, install.stdout + install.stderr
    found = parse_outputs((tmp_path / "output").read_text())
    links = tmp_path / "chainpipe-action-src"  # chainpipe/{core,cli,gh} → the action's own folders
    assert found == {"python": str(bare_python / "python3"), "pythonpath": str(links)}
    assert {p.name for p in (links / "chainpipe").iterdir()} == {"core", "cli", "gh"}
    assert [p for p in tmp_path.glob("chainpipe-action-*") if p != links] == []  # no venv: nothing installed
    runner |= {"PIPE_ACTION_PYTHON": found["python"], "PIPE_ACTION_PYTHONPATH": found["pythonpath"]}
    (tmp_path / "output").write_text("")
    ran = subprocess.run(["bash", "-e", "-c", step("run")["run"]], env=runner, capture_output=True, text=True,
                         timeout=60, cwd=runner["GITHUB_WORKSPACE"])
    took = time.perf_counter() - started
    assert ran.returncode == 0, ran.stdout + ran.stderr
    outputs = parse_outputs((tmp_path / "output").read_text())
    assert re.fullmatch(r"pipe-[0-9a-f]{12}", outputs["pipeline-id"]) and outputs["status"] == "running"
    print(f"\nthin Action, first step (install check {1000 * (installed - started):.0f} ms + create/start over "
          f"HTTP): {took * 1000:.0f} ms on a bare Python")
    assert took < BUDGET


def test_the_remote_entrypoint_imports_no_third_party_module(tmp_path, bare_python):
    """Even the paths a remote step does not take at once (errors, rendering) stay on the stdlib."""
    probe = ("import sys, chainpipe.cli.action, chainpipe.cli.action_steps, chainpipe.cli.action_targets,"
             "chainpipe.cli.remote, chainpipe.cli.action_report;"
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'httpx', 'github', 'sqlmodel', 'sqlalchemy',"
             "'typer', 'click', 'pydantic', 'requests', 'slack_sdk', 'starlette'}))")
    (tmp_path / "chainpipe").mkdir()
    for package in ("core", "cli", "gh"):  # as the action's install step links them
        (tmp_path / "chainpipe" / package).symlink_to(ROOT / package)
    done = subprocess.run([str(bare_python / "python3"), "-P", "-c", probe], env={"PYTHONPATH": str(tmp_path)},
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr


def test_direct_mode_installs_from_a_lock_with_a_hash_for_every_pin():
    lock = (ROOT / "requirements.lock").read_text()
    pins = dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==([^ ;\\\n]+)", lock, re.MULTILINE))
    blocks = re.split(r"\n(?=[a-z0-9])", lock.split("\n\n", 1)[-1].strip())
    assert all("--hash=sha256:" in b for b in blocks if re.match(r"[a-z0-9]", b)), "a pin without a hash"
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=\[ ;]", d, maxsplit=1)[0].lower().replace("_", "-") for d in deps}
    assert names - set(pins) == set(), "pyproject.toml names a dependency requirements.lock does not pin"
    assert "setuptools" in pins  # the package is built with --no-build-isolation from the pinned setuptools
    install = step("install")["run"]
    assert install.count("--require-hashes -r \"$src/requirements.lock\"") == 2
    assert install.count("--no-deps --no-build-isolation \"$src\"") == 2


def test_the_example_workflows_remote_steps_run_under_act_without_an_install(api_server, tmp_path, env):
    if reason := act_can_start():
        pytest.skip(reason)
    server, token = api_server
    action, stand_in, repo = act_checkout(tmp_path, (ROOT / "examples" / "workflow.yml").read_text())
    host = {k: v for k, v in os.environ.items() if not k.startswith(("PIPE_", "GITHUB_", "INPUT_", "RUNNER_"))}
    penv = host | dict(env) | {"PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    pipe = [str(BIN / "pipe")]
    pid = json.loads(subprocess.run([*pipe, "create", "--name", "shop", "--template", "bugfix", "--json"], env=penv,
                                    capture_output=True, text=True, check=True).stdout)["id"]
    for args in (["start", pid], ["stage", pid, "review"], ["approve", pid, "--gate", "code-review", "--as", "bob"]):
        subprocess.run([*pipe, *args], env=penv, check=True, capture_output=True)
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"inputs": {"pipeline-id": pid}}))
    cmd = act_command(tmp_path, event, action, stand_in, f"CHAINPIPE_SERVER={server.url}", f"CHAINPIPE_TOKEN={token}")
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=repo, env=penv | {"RUNNER_TEMP": str(tmp_path / "runner-temp")},
                          capture_output=True, text=True, timeout=300)
    took = time.perf_counter() - started
    log = proc.stdout + proc.stderr
    if proc.returncode != 0 and "Job succeeded" not in log and "Run Main" not in log:
        pytest.skip(f"act could not start the job: {log.strip().splitlines()[-1:]}")
    assert proc.returncode == 0 and "Job succeeded" in log, log[-4000:]
    assert "pip install" not in log and not list(tmp_path.glob("**/chainpipe-action-*"))
    shown = json.loads(subprocess.run([*pipe, "show", pid, "--json"], env=penv, capture_output=True, text=True,
                                      check=True).stdout)
    deploy = shown["recent_deploys"][0]
    assert deploy["surface"] == "github" and deploy["status"] in ("succeeded", "rolled-back")
    steps = len(re.findall(r"Success - Main (?:Record|Ready|Wait|Report|Roll)", log))
    print(f"\nexample workflow under act, remote mode, no install: {took:.1f} s for the job ({steps} chainpipe steps)")
