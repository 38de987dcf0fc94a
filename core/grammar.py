"""The one command grammar shared by every surface: the CLI builds its Typer commands from it,
the Slack bot parses ``/pipe …`` text with it, the JSON API derives its routes and schema from it.

A command is data: its name, help, parameters, and the use case it calls (a dotted path, imported
only when the command runs, so listing commands costs no database import). ``kind`` says how it
runs: ``catalogue`` (settings only), ``read`` (a read-only unit of work) or ``write``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from core.errors import InvalidInput


@dataclass(frozen=True)
class Param:
    name: str
    flags: tuple[str, ...] = ()  # no flags: a positional argument
    help: str = ""
    type: str = "str"  # str | int | bool
    required: bool = False
    default: Any = None
    metavar: str | None = None

    @property
    def positional(self) -> bool:
        return not self.flags

    @property
    def label(self) -> str:
        return self.flags[0] if self.flags else (self.metavar or self.name.upper())


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    handler: str
    params: tuple[Param, ...] = ()
    kind: str = "write"
    group: str = "pipeline"
    examples: tuple[str, ...] = field(default_factory=tuple)

    def resolve(self):
        module, _, attr = self.handler.partition(":")
        return getattr(import_module(module), attr)


def arg(name: str, help: str, metavar: str | None = None, *, required: bool = True, default: Any = None) -> Param:
    """A positional argument; an optional one (``required=False``) must come after the required ones."""
    return Param(name, help=help, required=required, default=default, metavar=metavar or name.upper())


def opt(name: str, help: str, *, required: bool = False, default: Any = None, type: str = "str",
        flag: str | None = None, metavar: str | None = None) -> Param:
    return Param(name, (flag or "--" + name.replace("_", "-"),), help, type, required, default, metavar)


PID = arg("pipeline_id", "Pipeline id (pipe-…)", "PIPELINE_ID")
DID = arg("deploy_id", "Deploy id (dep-…)", "DEPLOY_ID")
S = "core.services."

V1_COMMANDS: tuple[Command, ...] = (
    # catalogue
    Command("config", "Show the configuration in force (secrets redacted)", S + "catalogue:show_config",
            kind="catalogue", group="catalogue"),
    Command("templates", "List pipeline templates, built-in and custom", S + "catalogue:list_templates",
            kind="catalogue", group="catalogue"),
    Command("stages", "List the 7 stages and their aliases", S + "catalogue:list_stages",
            kind="catalogue", group="catalogue"),
    Command("deploy-strategies", "List deploy strategies", S + "catalogue:list_strategies",
            kind="catalogue", group="catalogue"),
    Command("statuses", "List pipeline, stage, gate and deploy statuses", S + "catalogue:list_statuses",
            kind="catalogue", group="catalogue"),
    # lifecycle
    Command("create", "Create a pipeline from a template", S + "pipelines:create_pipeline", (
        opt("name", "Pipeline name", required=True),
        opt("template", "Template (see `pipe templates`)", default="feature"),
    ), examples=('pipe create --name "auth" --template feature --json',)),
    Command("start", "Start a created pipeline (first stage becomes current)", S + "pipelines:start_pipeline",
            (PID,)),
    Command("pause", "Pause a running pipeline", S + "pipelines:pause_pipeline", (PID,)),
    Command("resume", "Resume a paused pipeline", S + "pipelines:resume_pipeline", (PID,)),
    Command("cancel", "Cancel a pipeline", S + "pipelines:cancel_pipeline",
            (PID, opt("reason", "Why it is cancelled"))),
    Command("complete", "Complete a running pipeline (all gates must be approved)",
            S + "pipelines:complete_pipeline", (PID,)),
    Command("fail", "Mark a pipeline failed", S + "pipelines:fail_pipeline",
            (PID, opt("reason", "Why it failed", required=True))),
    Command("retry", "Retry a failed pipeline (rejected gates re-open)", S + "pipelines:retry_pipeline", (PID,)),
    Command("stage", "Move a running pipeline to a stage (forward, or back for rework)",
            S + "pipelines:advance_stage", (
                PID, arg("stage", "Stage id or alias", "STAGE"),
                opt("reason", "Why (recorded; used when moving back)"),
            ), examples=("pipe stage pipe-0123456789ab review",)),
    # gates
    Command("approve", "Approve a gate at the pipeline's current stage", S + "gates:approve_gate", (
        PID, opt("gate", "Gate name (code-review, security-review)", required=True), opt("reason", "Why"),
    ), group="gates"),
    Command("reject", "Reject a gate; the pipeline fails until retried", S + "gates:reject_gate", (
        PID, opt("gate", "Gate name (code-review, security-review)", required=True),
        opt("reason", "Why (required)", required=True),
    ), group="gates"),
    # artifacts
    Command("artifact-add", "Record an artifact (a new version if the name exists)", S + "artifacts:add_artifact", (
        PID, opt("name", "Artifact name", required=True),
        opt("type", "binary, docker-image, report, log, sbom, document", required=True),
        opt("path", "Local file: its sha256 and size are recorded"), opt("uri", "Where it lives"),
        opt("digest", "sha256:<hex> (checked against --path)"), opt("stage", "Stage (default: current)"),
        opt("size", "Size in bytes, with --digest when the file is not on this machine", type="int"),
    ), group="artifacts"),
    Command("artifacts", "List a pipeline's artifacts", S + "artifacts:list_artifacts", (
        PID, opt("all_versions", "Every version, not only the latest", type="bool", default=False),
    ), kind="read", group="artifacts"),
    # deploys
    Command("deploy", "Record a deploy (all gates must be approved)", S + "deploys:record_deploy", (
        PID, opt("strategy", "blue-green, canary, rolling, recreate, shadow, dark-launch", required=True),
        opt("target", "Environment, e.g. production", required=True),
        opt("artifact", "NAME or NAME@VERSION"), opt("ref", "Commit SHA or tag"),
        opt("status", "pending, in-progress, succeeded, failed", default="in-progress"),
    ), group="deploys"),
    Command("deploy-update", "Report a deploy's status", S + "deploys:update_deploy", (
        DID, opt("status", "in-progress, succeeded, failed, rolled-back", required=True), opt("reason", "Why"),
    ), group="deploys"),
    Command("deploys", "List a pipeline's deploys, newest first", S + "deploys:list_deploys", (PID,),
            kind="read", group="deploys"),
    Command("deploy-show", "Show one deploy", S + "deploys:show_deploy", (DID,), kind="read", group="deploys"),
    Command("rollback", "Roll a deploy back (idempotent)", S + "deploys:rollback_deploy",
            (DID, opt("reason", "Why")), group="deploys"),
    Command("deploy-link", "Link a deploy to its mirror elsewhere (a GitHub Deployment id)",
            S + "mirror:link_deploy", (DID, opt("external_id", "The external record's id", required=True)),
            group="deploys"),
    # monitoring
    Command("monitor-record", "Record a metric value (append-only)", S + "monitoring:record_metric", (
        PID, opt("metric", "Metric name, e.g. error_rate", required=True),
        opt("value", "A finite number", required=True),
        opt("deploy", "Deploy id (default: the latest)"), opt("unit", "Unit, e.g. ms"),
    ), group="monitoring"),
    Command("monitor-events", "List metric events, newest first", S + "monitoring:list_events", (
        PID, opt("metric", "Only this metric"), opt("limit", "At most this many", type="int", default=100),
    ), kind="read", group="monitoring"),
    Command("monitor-status", "Per metric: latest value, baseline, change, verdict, regression, trend",
            S + "monitoring:monitor_status", (
        PID, opt("deploy", "Judge this deploy (default: the latest)"),
    ), kind="read", group="monitoring"),
    # queries
    Command("show", "Show a pipeline with its stages, gates and artifacts", S + "queries:show_pipeline", (PID,),
            kind="read", group="queries"),
    Command("list", "List pipelines, newest first", S + "queries:list_pipelines", (
        opt("status", "Only this status"), opt("template", "Only this template"),
        opt("limit", "At most this many", type="int", default=20),
    ), kind="read", group="queries"),
    Command("export", "Export everything about a pipeline", S + "queries:export_pipeline", (
        PID, opt("format", "json or markdown", default="json"),
    ), kind="read", group="queries"),
    Command("audit", "The pipeline's audit trail, newest first", S + "queries:audit_log", (
        PID, opt("limit", "At most this many", type="int", default=50),
    ), kind="read", group="queries"),
    Command("stats", "Counts by status, template, strategy and gate decision; DORA figures",
            S + "queries:pipeline_stats", (
                opt("since", "Window start, ISO-8601 (default: 30 days before --until)"),
                opt("until", "Window end, ISO-8601 (default: now)"),
                opt("target", "DORA figures for this target only"),
                opt("explain", "Print how each DORA figure is defined", type="bool", default=False),
            ), kind="read", group="queries", examples=("pipe stats --since 2026-10-01 --target production --json",)),
)

COMMANDS: dict[str, Command] = {c.name: c for c in V1_COMMANDS}


def get_command(name: str) -> Command:
    command = COMMANDS.get(name)
    if command is None:
        raise InvalidInput(f"unknown command: {name}; try `help`")
    return command


def _convert(param: Param, raw: str):
    if param.type == "int":
        try:
            return int(raw)
        except ValueError:
            raise InvalidInput(f"{param.label} must be a whole number, got {raw!r}") from None
    return raw


def parse_args(command: Command, argv: list[str], *, reserved: tuple[str, ...] = ()) -> dict:
    """Parse words after the command name into values, as the CLI would.

    Accepts ``--opt value``, ``--opt=value`` and boolean flags; options may come anywhere.
    ``reserved`` flags (e.g. ``--json``) are left to the caller and returned under their names.
    """
    by_flag = {flag: p for p in command.params for flag in p.flags}
    positionals = [p for p in command.params if p.positional]
    values: dict[str, Any] = {}
    extras: dict[str, bool] = {}
    words = list(argv)
    loose: list[str] = []
    while words:
        word = words.pop(0)
        if word == "--":
            loose.extend(words)
            break
        if not word.startswith("--") or word == "-":
            loose.append(word)
            continue
        flag, eq, inline = word.partition("=")
        if flag in reserved:
            extras[flag] = True
            continue
        param = by_flag.get(flag)
        if param is None:
            raise InvalidInput(f"no such option for {command.name}: {flag}")
        if param.type == "bool":
            values[param.name] = True
            continue
        if not eq:
            if not words:
                raise InvalidInput(f"option {flag} needs a value")
            inline = words.pop(0)
        values[param.name] = _convert(param, inline)
    if len(loose) > len(positionals):
        raise InvalidInput(f"{command.name}: unexpected extra argument {loose[len(positionals)]!r}")
    for param, word in zip(positionals, loose, strict=False):
        values[param.name] = word
    for param in command.params:
        if param.name not in values:
            if param.required:
                kind = "argument" if param.positional else "option"
                raise InvalidInput(f"{command.name}: missing {kind} {param.label}")
            values[param.name] = param.default
    values.update({flag: True for flag in extras})
    return values


def usage(command: Command) -> str:
    parts = [command.name]
    for p in command.params:
        if p.positional:
            parts.append(p.label if p.required else f"[{p.label}]")
        elif p.type == "bool":
            parts.append(f"[{p.label}]")
        else:
            piece = f"{p.label} {p.metavar or p.name.upper()}"
            parts.append(piece if p.required else f"[{piece}]")
    return " ".join(parts)


# The V2 governance commands live in their own module, which adds them to COMMANDS when imported.
import core.grammar_v2  # noqa: E402,F401
