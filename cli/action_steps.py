"""The Action's commands as data. Each `command` input names the grammar command(s) it runs and
which inputs — or values of the run: the commit, the workspace's file, the job's status — feed which
parameters. Values stay raw: `Command.bind` converts, defaults and checks them, in this process in
direct mode (`core.dispatch.execute`) and on the server in remote mode (`cli.remote.RemoteClient`),
with the same command names and values either way.

    create          create(name, template) → start(pipeline_id)
    stage           stage(pipeline_id, stage)
    artifact        artifact-add(pipeline_id, type, stage, name, digest, size)   (hashed on the runner)
    deploy          deploy(pipeline_id, strategy, target, ref, artifact, status)
    deploy-status   deploy-update(deploy_id, status, reason)
    rollback        rollback(deploy_id, reason)
    metric          monitor-record(pipeline_id, metric, value, deploy) per value → monitor-status(pipeline_id)
    await-gate      gate-status(pipeline_id, gate), polled until decided, closed or timed out
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from chainpipe.cli import action_report as show
from chainpipe.cli.action_targets import run_url
from chainpipe.core.catalogue import DEPLOY_STATUSES
from chainpipe.core.errors import InvalidInput

JOB_STATUSES = {"success": "succeeded", "failure": "failed", "cancelled": "failed"}
DECIDED = ("approved", "rejected", "closed")
Source = str | Callable[["Run"], Any]  # an input's name, or a value of the run


@dataclass(frozen=True)
class Call:
    """One grammar command, and where each of its parameters comes from."""

    command: str
    params: dict[str, Source]


class Run:
    """One step: its inputs, the runner's environment and where records go (``backend.run``)."""

    def __init__(self, command: str, inputs: dict[str, str], env, backend):
        self.command, self.inputs, self.env, self.backend = command, inputs, env, backend
        self.last: dict = {}
        self.metric: tuple[str, str] = ("", "")

    def input(self, name: str) -> str | None:
        return self.inputs[name] or None

    def need(self, name: str) -> str:
        if not self.inputs[name]:
            raise InvalidInput(f"command {self.command} needs the input {name}")
        return self.inputs[name]

    @property
    def url(self) -> str | None:
        return run_url(self.env)

    @cached_property
    def file(self) -> tuple[str, int, str]:
        """The artifact file's digest, size and name: hashed here, on the runner, in both modes."""
        from chainpipe.core.digest import file_digest

        raw = self.need("path")
        path = Path(raw) if Path(raw).is_absolute() else Path(self.env.get("GITHUB_WORKSPACE") or ".") / raw
        if not path.is_file():
            raise InvalidInput(f"file not found: {raw}")
        return (*file_digest(str(path)), path.name)

    def call(self, call: Call) -> dict:
        """Run one grammar command with its raw values; an input its command requires must be given."""
        from chainpipe.core.grammar import get_command

        required = {p.name for p in get_command(call.command).params if p.required}
        values = {}
        for name, source in call.params.items():
            if isinstance(source, str):
                value = self.need(source) if name in required else self.input(source)
            else:
                value = source(self)
            if value is not None:
                values[name] = value
        self.last = self.backend.run(call.command, values)
        return self.last


# --- values of the run -------------------------------------------------------------------------

def pipeline_name(run: Run) -> str:
    return run.input("name") or f"{run.env.get('GITHUB_REPOSITORY', 'run')}@{run.env.get('GITHUB_SHA', '')[:12]}"


def commit(run: Run) -> str | None:
    return run.input("ref") or run.env.get("GITHUB_SHA") or None


def initial_status(run: Run) -> str | None:
    status = run.input("status")
    return JOB_STATUSES.get(status, status) if status else None


def reported_status(run: Run) -> tuple[str, str | None]:
    """deploy-status: the job's status (success/failure/cancelled) or a deploy status, and why."""
    raw = run.input("status") or run.env.get("PIPE_ACTION_JOB_STATUS", "").strip()
    if not raw:
        raise InvalidInput("deploy-status needs a status (success/failure/cancelled or a deploy status)")
    status = JOB_STATUSES.get(raw, raw.replace("_", "-"))
    if status not in DEPLOY_STATUSES:
        raise InvalidInput(f"unknown status {raw!r}; allowed: {', '.join([*JOB_STATUSES, *DEPLOY_STATUSES])}")
    return status, f"job {raw}" if raw in JOB_STATUSES else None


def rollback_reason(run: Run) -> str:
    return f"rolled back by {run.url or 'a workflow run'}"


def metric_pairs(run: Run) -> list[tuple[str, str]]:
    pairs = []
    for number, line in enumerate((run.inputs["metrics"] or "").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, eq, value = line.partition("=")
        if not eq or not name.strip() or not value.strip():
            raise InvalidInput(f"metrics line {number} must look like name=value, got {line!r}")
        pairs.append((name.strip(), value.strip()))
    if run.input("metric") or run.input("value"):
        pairs.insert(0, (run.need("metric"), run.need("value")))
    if not pairs:
        raise InvalidInput("metric needs metric + value, or name=value lines in metrics")
    return pairs


def parse_duration(text: str, what: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", text)
    if not match:
        raise InvalidInput(f"{what} must be a duration like 90s, 30m or 1h, got {text!r}")
    scale = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[match.group(2)]
    return float(match.group(1)) * scale


# --- how a command's calls run -----------------------------------------------------------------

def in_order(run: Run, calls: tuple[Call, ...]) -> dict:
    for call in calls:
        run.call(call)
    return run.last


def record_metrics(run: Run, calls: tuple[Call, ...]) -> dict:
    record, status = calls
    events = []
    for pair in metric_pairs(run):
        run.metric = pair
        events.append(run.call(record))
    return {"pipeline_id": run.need("pipeline-id"), "events": events, "verdict": run.call(status).get("verdict")}


def await_gate(run: Run, calls: tuple[Call, ...]) -> dict:
    """Ask for the gate's state until it is decided or closed (its pipeline ended), or time runs out."""
    [ask] = calls
    timeout = run.input("timeout") or "30m"
    seconds = parse_duration(timeout, "timeout")
    interval = parse_duration(run.input("poll-interval") or "10s", "poll-interval")
    deadline, announced = time.monotonic() + seconds, None
    while True:
        gate = run.call(ask)
        state = gate["state"]
        if state != announced:
            shown = gate["status"] if state == gate["status"] else f"{gate['status']} ({state})"
            print(f"gate {gate['name']} of {gate['pipeline_id']}: {shown}", flush=True)
            announced = state
        if state in DECIDED:
            return gate | {"outcome": gate["status"] if state == "closed" else state}
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return gate | {"outcome": "timeout", "timeout": timeout}
        time.sleep(min(interval, remaining))


def changed(action: str) -> Callable[[dict], list[tuple[str, dict]]]:
    """A deploy the step changed, as the audit event it wrote (for mirroring without the database)."""
    return lambda deploy: [(action, deploy)] if deploy.get("changed", True) else []


def rolled_back(result: dict) -> list[tuple[str, dict]]:
    rollbacks = (event.get("rollback") for event in result["events"])
    return [("rollback", r) for r in rollbacks if r and r.get("changed")]


def its_id(pipeline: dict) -> str:
    return pipeline["id"]


@dataclass(frozen=True)
class Route:
    """An Action command: its grammar calls, how they run, how the result is shown, what it changed."""

    calls: tuple[Call, ...]
    render: Callable[[show.Report, dict], None]
    steps: Callable[[Run, tuple[Call, ...]], dict] = in_order
    pipeline: Callable[[dict], str] = lambda result: result["pipeline_id"]
    changes: Callable[[dict], list[tuple[str, dict]]] = lambda result: []
    exit_code: Callable[[dict], int] = lambda result: 0


PIPELINE = {"pipeline_id": "pipeline-id"}
ROUTES: dict[str, Route] = {
    "create": Route((Call("create", {"name": pipeline_name, "template": "template"}),
                     Call("start", {"pipeline_id": lambda run: run.last["id"]})),
                    show.pipeline_created, pipeline=its_id),
    "stage": Route((Call("stage", PIPELINE | {"stage": "stage"}),), show.pipeline_staged, pipeline=its_id),
    "artifact": Route((Call("artifact-add", PIPELINE | {
        "type": "type", "stage": "stage", "name": lambda run: run.input("name") or run.file[2],
        "digest": lambda run: run.file[0], "size": lambda run: run.file[1]}),), show.artifact_recorded),
    "deploy": Route((Call("deploy", PIPELINE | {
        "strategy": "strategy", "target": "target", "ref": commit, "artifact": "name", "status": initial_status}),),
        show.deploy_view("deploy recorded"), changes=changed("record")),
    "deploy-status": Route((Call("deploy-update", {
        "deploy_id": "deploy-id", "status": lambda run: reported_status(run)[0],
        "reason": lambda run: reported_status(run)[1]}),),
        show.deploy_view("deploy status"), changes=changed("update")),
    "rollback": Route((Call("rollback", {"deploy_id": "deploy-id", "reason": rollback_reason}),),
                      show.deploy_view("deploy rolled back"), changes=changed("rollback")),
    "metric": Route((Call("monitor-record", PIPELINE | {
        "metric": lambda run: run.metric[0], "value": lambda run: run.metric[1], "deploy": "deploy-id"}),
        Call("monitor-status", PIPELINE)), show.metrics_recorded, steps=record_metrics, changes=rolled_back),
    "await-gate": Route((Call("gate-status", PIPELINE | {"gate": "gate"}),), show.gate_awaited, steps=await_gate,
                        exit_code=lambda gate: 0 if gate["outcome"] == "approved" else 1),
}
