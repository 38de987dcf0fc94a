"""The GitHub Action entrypoint (`pipe-action`), run by action.yml's last step.

Inputs arrive as ``PIPE_ACTION_<INPUT>`` environment variables mapped in action.yml's ``env:``
(composite actions get no ``INPUT_*`` on the real runner); ``INPUT_<INPUT>`` is a fallback for
runners that set it. Results go to ``$GITHUB_OUTPUT`` and ``$GITHUB_STEP_SUMMARY``; errors become one
``::error`` annotation and a non-zero exit (1 refused, 2 bad input or configuration, 3 crash).
"""

from __future__ import annotations

import os
import re
import sys
import time
import traceback
import uuid
from datetime import UTC, datetime
from pathlib import Path

from core.errors import InvalidInput, PipeError

INPUTS = (
    "command", "pipeline-id", "template", "name", "stage", "type", "path", "strategy", "target", "ref",
    "deploy-id", "status", "metric", "value", "metrics", "gate", "timeout", "poll-interval", "server-url",
    "token", "database-url", "github-token",
)
OUTPUTS = ("pipeline-id", "artifact-id", "artifact-version", "digest", "deploy-id", "status")
SECRETS = ("token", "github-token", "database-url")
JOB_STATUSES = {"success": "succeeded", "failure": "failed", "cancelled": "failed"}
DEPLOY_STATUSES = ("in-progress", "succeeded", "failed", "rolled-back")
INTERNAL_ERROR = 3


def env_name(name: str) -> str:
    return "PIPE_ACTION_" + name.upper().replace("-", "_")


def read_inputs(env) -> dict[str, str]:
    values = {}
    for name in INPUTS:
        value = env.get(env_name(name)) or env.get("INPUT_" + name.upper()) \
            or env.get("INPUT_" + name.upper().replace("-", "_")) or ""
        values[name] = value.strip() if name != "metrics" else value
    return values


# --- workflow commands -------------------------------------------------------------------------

def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotate(kind: str, message: str, title: str | None = None) -> None:
    props = f" title={escape_property(title)}" if title else ""
    print(f"::{kind}{props}::{escape_data(message)}", flush=True)


def mask(secret: str) -> None:
    for line in secret.splitlines():
        if line.strip():
            print(f"::add-mask::{escape_data(line)}", flush=True)


def mask_url_password(url: str) -> None:
    match = re.match(r"^[a-z0-9+.-]+://[^:/@]*:([^@]+)@", url, re.IGNORECASE)
    if match:
        mask(match.group(1))


class Reporter:
    """Collects outputs and summary rows; writes them to the runner's files at the end."""

    def __init__(self, env):
        self.env = env
        self.outputs: dict[str, str] = {}
        self.lines: list[str] = []

    def output(self, name: str, value) -> None:
        if value is not None:
            self.outputs[name] = str(value)

    def section(self, heading: str, rows: list[tuple[str, object]]) -> None:
        self.lines += [f"### chainpipe: {heading}", "", "| | |", "|---|---|"]
        self.lines += [f"| {k} | {_cell(v)} |" for k, v in rows if v not in (None, "")]
        self.lines.append("")

    def flush(self) -> None:
        out = self.env.get("GITHUB_OUTPUT")
        if out:
            with open(out, "a", encoding="utf-8") as fh:
                for name, value in self.outputs.items():
                    delimiter = f"ghadelimiter_{uuid.uuid4()}"
                    fh.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
        else:
            for name, value in self.outputs.items():
                print(f"{name}={value}")
        summary = self.env.get("GITHUB_STEP_SUMMARY")
        if summary and self.lines:
            with open(summary, "a", encoding="utf-8") as fh:
                fh.write("\n".join(self.lines) + "\n")


def _cell(value) -> str:
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return f"`{text}`" if re.fullmatch(r"(pipe|stg|gate|art|dep|mon)-[0-9a-f]{12}|sha256:[0-9a-f]+", text) else text


# --- where records go --------------------------------------------------------------------------

def run_url(env) -> str | None:
    if env.get("GITHUB_REPOSITORY") and env.get("GITHUB_RUN_ID"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        return f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    return None


class DirectBackend:
    """Opens the database itself, like the `pipe` CLI: whoever holds the URL is trusted with it."""

    def __init__(self, database_url: str, actor: str, url: str | None, env):
        from core.actor import Actor
        from core.config import load_settings

        self.settings = load_settings(dict(env) | {"PIPE_DATABASE_URL": database_url})
        self.actor = Actor(actor, "github", url)

    def run(self, command: str, values: dict):
        from core.dispatch import execute
        from core.grammar import get_command

        cmd = get_command(command)
        full = {p.name: p.default for p in cmd.params} | {k: v for k, v in values.items() if v is not None}
        return execute(cmd, full, self.actor, self.settings)


def make_backend(inputs: dict, env):
    actor = "github:" + (env.get("GITHUB_ACTOR") or "unknown")
    url = run_url(env)
    if inputs["server-url"] and inputs["database-url"]:
        raise InvalidInput("give either server-url (with token) or database-url, not both")
    if inputs["server-url"]:
        if not inputs["token"]:
            raise InvalidInput("server-url needs a token (store it as a secret)")
        from cli.remote import RemoteClient

        headers = {"X-Pipe-Actor": actor, "X-Pipe-Surface": "github"} | ({"X-Pipe-Run-Url": url} if url else {})
        return RemoteClient(inputs["server-url"], inputs["token"], headers=headers,
                            backoff=float(env.get("PIPE_ACTION_RETRY_BACKOFF") or 0.5))
    if inputs["database-url"]:
        return DirectBackend(inputs["database-url"], actor, url, env)
    raise InvalidInput("say where to record: server-url + token, or database-url")


# --- the commands ------------------------------------------------------------------------------

class Step:
    def __init__(self, inputs: dict, env, backend, reporter: Reporter):
        self.inputs, self.env, self.backend, self.report = inputs, env, backend, reporter

    def need(self, name: str) -> str:
        if not self.inputs[name]:
            raise InvalidInput(f"command {self.inputs['command']} needs the input {name}")
        return self.inputs[name]

    def mirror(self):
        if not self.inputs["github-token"]:
            return None
        from cli.github_mirror import DeploymentMirror

        return DeploymentMirror(self.inputs["github-token"], self.env.get("GITHUB_REPOSITORY", ""),
                                api_url=self.env.get("GITHUB_API_URL"), run_url=run_url(self.env))

    def create(self) -> int:
        env = self.env
        name = self.inputs["name"] or f"{env.get('GITHUB_REPOSITORY', 'run')}@{env.get('GITHUB_SHA', '')[:12]}"
        created = self.backend.run("create", {"name": name, "template": self.inputs["template"] or "feature"})
        pipeline = self.backend.run("start", {"pipeline_id": created["id"]})
        self.report.output("pipeline-id", pipeline["id"])
        self.report.output("status", pipeline["status"])
        self.report.section("pipeline created", [("pipeline", pipeline["id"]), ("name", pipeline["name"]),
                            ("template", pipeline["template"]), ("stage", pipeline["current_stage"])])
        return 0

    def stage(self) -> int:
        pipeline = self.backend.run("stage", {"pipeline_id": self.need("pipeline-id"), "stage": self.need("stage")})
        self.report.output("pipeline-id", pipeline["id"])
        self.report.output("status", pipeline["status"])
        self.report.section("stage", [("pipeline", pipeline["id"]), ("stage", pipeline["current_stage"])])
        return 0

    def artifact(self) -> int:
        from core.services.artifacts import file_digest

        raw = self.need("path")
        path = Path(raw) if Path(raw).is_absolute() else Path(self.env.get("GITHUB_WORKSPACE") or ".") / raw
        if not path.is_file():
            raise InvalidInput(f"file not found: {raw}")
        digest, size = file_digest(str(path))  # hashed here, on the runner, in both modes
        art = self.backend.run("artifact-add", {
            "pipeline_id": self.need("pipeline-id"), "name": self.inputs["name"] or path.name,
            "type": self.need("type"), "digest": digest, "size": size, "stage": self.inputs["stage"] or None,
        })
        for key, value in (("pipeline-id", art["pipeline_id"]), ("artifact-id", art["id"]),
                           ("artifact-version", art["version"]), ("digest", art["digest"])):
            self.report.output(key, value)
        self.report.section("artifact recorded", [
            ("artifact", f"{art['name']} v{art['version']}"), ("id", art["id"]), ("type", art["type"]),
            ("digest", art["digest"]), ("size", f"{art['size']} bytes"), ("stage", art["stage"]),
            ("pipeline", art["pipeline_id"])])
        return 0

    def deploy(self) -> int:
        status = self.inputs["status"] or "in-progress"
        dep = self.backend.run("deploy", {
            "pipeline_id": self.need("pipeline-id"), "strategy": self.need("strategy"),
            "target": self.need("target"), "ref": self.inputs["ref"] or self.env.get("GITHUB_SHA") or None,
            "artifact": self.inputs["name"] or None, "status": JOB_STATUSES.get(status, status),
        })
        mirror = self._mirror_call(lambda m: m.open(dep), dep)
        if mirror:
            dep = self.backend.run("deploy-link", {"deploy_id": dep["id"], "external_id": mirror})
        self._deploy_outputs("deploy recorded", dep)
        return 0

    def deploy_status(self) -> int:
        raw = self.inputs["status"] or self.env.get("PIPE_ACTION_JOB_STATUS", "").strip()
        if not raw:
            raise InvalidInput("deploy-status needs a status (success/failure/cancelled or a deploy status)")
        status = JOB_STATUSES.get(raw, raw.replace("_", "-"))
        if status not in DEPLOY_STATUSES:
            allowed = ", ".join([*JOB_STATUSES, *DEPLOY_STATUSES])
            raise InvalidInput(f"unknown status {raw!r}; allowed: {allowed}")
        reason = f"job {raw}" if raw in JOB_STATUSES else None
        dep = self.backend.run("deploy-update", {"deploy_id": self.need("deploy-id"), "status": status,
                                                 "reason": reason})
        self._report_mirror(dep)
        self._deploy_outputs("deploy status", dep)
        return 0

    def rollback(self) -> int:
        reason = f"rolled back by {run_url(self.env) or 'a workflow run'}"
        dep = self.backend.run("rollback", {"deploy_id": self.need("deploy-id"), "reason": reason})
        if dep.get("changed", True):
            self._report_mirror(dep)
        self._deploy_outputs("deploy rolled back", dep)
        return 0

    def metric(self) -> int:
        pairs = parse_metrics(self.inputs["metrics"]) if self.inputs["metrics"].strip() else []
        if self.inputs["metric"] or self.inputs["value"]:
            pairs.insert(0, (self.need("metric"), self.need("value")))
        if not pairs:
            raise InvalidInput("metric needs metric + value, or name=value lines in metrics")
        pipeline_id, rows = self.need("pipeline-id"), []
        for metric, value in pairs:
            event = self.backend.run("monitor-record", {"pipeline_id": pipeline_id, "metric": metric, "value": value,
                                                        "deploy": self.inputs["deploy-id"] or None})
            rows.append((event["metric"], f"{event['value']:g}" + (f" (deploy {event['deploy_id']})"
                                                                    if event["deploy_id"] else "")))
            rolled = event.get("rollback")
            if rolled and rolled.get("changed"):
                # The metric tripped the auto_rollback policy: say so, and let GitHub follow.
                annotate("warning", f"deploy {rolled['id']} rolled back: {rolled['rollback_reason']}",
                         title="automatic rollback")
                rows.append(("rolled back", f"{rolled['id']}: {rolled['rollback_reason']}"))
                self._report_mirror(rolled)
        verdict = self.backend.run("monitor-status", {"pipeline_id": pipeline_id}).get("verdict")
        self.report.output("pipeline-id", pipeline_id)
        self.report.output("status", verdict)
        self.report.section(f"{len(pairs)} metric(s) recorded", [*rows, ("health", verdict)])
        return 0

    def await_gate(self) -> int:
        pipeline_id, gate = self.need("pipeline-id"), self.need("gate")
        timeout = parse_duration(self.inputs["timeout"] or "30m", "timeout")
        interval = parse_duration(self.inputs["poll-interval"] or "10s", "poll-interval")
        deadline, announced = time.monotonic() + timeout, None
        self.report.output("pipeline-id", pipeline_id)
        while True:
            state, pipeline_status = self._gate_state(pipeline_id, gate)
            if state != announced:
                print(f"gate {gate} of {pipeline_id}: {state}", flush=True)
                announced = state
            if state == "approved":
                return self._gate_done(pipeline_id, gate, "approved", 0)
            if state == "rejected":
                annotate("error", f"gate {gate} of {pipeline_id} was rejected", title="gate rejected")
                return self._gate_done(pipeline_id, gate, "rejected", 1)
            if pipeline_status in ("completed", "cancelled"):
                annotate("error", f"pipeline {pipeline_id} is {pipeline_status}; gate {gate} is {state}",
                         title="gate can no longer be approved")
                return self._gate_done(pipeline_id, gate, state, 1)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                annotate("error", f"gate {gate} of {pipeline_id} is still {state} after "
                         f"{self.inputs['timeout'] or '30m'}; approve it with `pipe approve {pipeline_id} --gate "
                         f"{gate}` or in Slack, then re-run this job", title="gate approval timed out")
                return self._gate_done(pipeline_id, gate, "timeout", 1)
            time.sleep(min(interval, remaining))

    def _gate_state(self, pipeline_id: str, gate: str) -> tuple[str, str]:
        shown = self.backend.run("show", {"pipeline_id": pipeline_id})
        for g in shown.get("gates", []):
            if g["name"] == gate:
                return g["status"], shown["status"]
        have = ", ".join(g["name"] for g in shown.get("gates", [])) or "none"
        raise InvalidInput(f"pipeline {pipeline_id} has no gate {gate}; its gates: {have}")

    def _gate_done(self, pipeline_id: str, gate: str, status: str, code: int) -> int:
        self.report.output("status", status)
        self.report.section(f"gate {gate}: {status}", [("pipeline", pipeline_id), ("gate", gate)])
        return code

    def _mirror_call(self, call, dep: dict):
        """GitHub is a mirror: when it fails the record stands, and the run gets a warning."""
        try:
            mirror = self.mirror()
            return call(mirror) if mirror else None
        except Exception as exc:  # noqa: BLE001 - a mirror failure must not fail the recorded deploy
            message = str(exc) if exc.__class__.__name__ == "MirrorError" else exc.__class__.__name__
            annotate("warning", f"deploy {dep['id']} recorded, but not mirrored to GitHub: {message}",
                     title="GitHub deployment")
            return None

    def _report_mirror(self, dep: dict) -> None:
        if self.inputs["github-token"] and not dep.get("external_id"):
            annotate("notice", f"deploy {dep['id']} has no GitHub deployment to update", title="GitHub deployment")
        elif dep.get("external_id"):
            self._mirror_call(lambda m: m.report(dep["external_id"], dep), dep)

    def _deploy_outputs(self, heading: str, dep: dict) -> None:
        for key, value in (("pipeline-id", dep["pipeline_id"]), ("deploy-id", dep["id"]), ("status", dep["status"])):
            self.report.output(key, value)
        art = dep.get("artifact") or {}
        self.report.section(heading, [
            ("deploy", dep["id"]), ("status", dep["status"]), ("strategy", dep["strategy"]),
            ("target", dep["target"]), ("ref", dep.get("ref")),
            ("artifact", f"{art['name']} v{art['version']}" if art else None),
            ("GitHub deployment", dep.get("external_id")), ("pipeline", dep["pipeline_id"])])


COMMANDS = {
    "create": Step.create, "stage": Step.stage, "artifact": Step.artifact, "deploy": Step.deploy,
    "deploy-status": Step.deploy_status, "metric": Step.metric, "rollback": Step.rollback,
    "await-gate": Step.await_gate,
}


def parse_metrics(text: str) -> list[tuple[str, str]]:
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, eq, value = line.partition("=")
        if not eq or not name.strip() or not value.strip():
            raise InvalidInput(f"metrics line {number} must look like name=value, got {line!r}")
        pairs.append((name.strip(), value.strip()))
    return pairs


def parse_duration(text: str, what: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", text)
    if not match:
        raise InvalidInput(f"{what} must be a duration like 90s, 30m or 1h, got {text!r}")
    scale = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[match.group(2)]
    return float(match.group(1)) * scale


# --- the one place errors become annotations ---------------------------------------------------

def main(env=None) -> int:
    env = os.environ if env is None else env
    inputs = read_inputs(env)
    for name in SECRETS:
        if inputs[name]:
            mask(inputs[name])
    if inputs["database-url"]:
        mask_url_password(inputs["database-url"])
    reporter = Reporter(env)
    backend = None
    try:
        handler = COMMANDS.get(inputs["command"])
        if handler is None:
            raise InvalidInput(f"unknown command {inputs['command']!r}; allowed: {', '.join(COMMANDS)}")
        try:
            backend = make_backend(inputs, env)
            code = handler(Step(inputs, env, backend, reporter))
        finally:  # outputs so far (e.g. status=timeout) are written even when the step fails
            if backend is not None and hasattr(backend, "close"):
                backend.close()
            reporter.flush()
    except PipeError as exc:
        annotate("error", exc.message, title=f"chainpipe {inputs['command'] or 'action'}: {exc.title}")
        code = exc.exit_code
    except Exception as exc:  # noqa: BLE001 - crashes become a short annotation, never a traceback
        ref = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
        annotate("error", f"internal error {ref}: {exc.__class__.__name__} (re-run with debug logging for details)",
                 title="chainpipe internal error")
        if env.get("RUNNER_DEBUG") == "1":
            traceback.print_exc(file=sys.stderr)
        code = INTERNAL_ERROR
    return code


def entrypoint() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()
