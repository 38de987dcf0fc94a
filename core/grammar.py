"""The one command grammar shared by every surface: the CLI builds its Typer commands from it,
the Slack bot parses ``/pipe …`` text with it, the JSON API derives its routes and schema from it.

A command is data: its name, help, parameters, and the use case it calls (a dotted path, imported
only when the command runs, so listing commands costs no database import). ``kind`` says how it
runs: ``catalogue`` (settings only), ``read`` (a read-only unit of work) or ``write``.

Values are bound once: every surface hands raw values (argv words, Slack text, a JSON body, Action
inputs) to `Command.bind`, which converts, fills defaults, checks required values and enforces the
limits below, or raises one `InvalidInput`. The same limits are published in the API's schema.

    text      valid UTF-8 (no lone surrogates), no NUL or other control characters (free text such as
              a reason may hold newlines and tabs), at most ``max_length`` characters (200 unless set)
    int       a whole number within ``minimum``..``maximum`` (64-bit unless set)
    bool      true / false
    local     a parameter read on the caller's machine (``--path``) is refused by a server
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from chainpipe.core.errors import InvalidInput

INT64 = (-(2**63), 2**63 - 1)
TEXT_MAX = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_LAYOUT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


@dataclass(frozen=True)
class Param:
    name: str
    flags: tuple[str, ...] = ()  # no flags: a positional argument
    help: str = ""
    type: str = "str"  # str | int | bool
    required: bool = False
    default: Any = None
    metavar: str | None = None
    max_length: int = TEXT_MAX
    minimum: int = INT64[0]
    maximum: int = INT64[1]
    multiline: bool = False  # free text: newlines and tabs allowed
    local: bool = False  # read on the caller's machine; a server refuses it
    choices: str | None = None  # a catalogue list (see core.grammar.choices), for schemas and completion

    @property
    def positional(self) -> bool:
        return not self.flags

    @property
    def label(self) -> str:
        return self.flags[0] if self.flags else (self.metavar or self.name.upper())

    def bind(self, raw: Any) -> Any:
        """One raw value (text from argv or Slack, or a JSON value) as this parameter's type."""
        if self.type == "bool":
            return _bool(self, raw)
        if self.type == "int":
            return _int(self, raw)
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            raise InvalidInput(f"{self.label} must be text, got {type(raw).__name__}")
        return check_text(self.label, raw if isinstance(raw, str) else repr(raw), self.max_length,
                          multiline=self.multiline)

    def schema(self, settings=None) -> dict:
        """This parameter as JSON Schema, with the limits `bind` enforces."""
        description = self.help or self.name
        if self.type == "bool":
            out: dict = {"type": "boolean", "description": description}
        elif self.type == "int":
            out = {"type": "integer", "description": description, "minimum": self.minimum, "maximum": self.maximum}
        else:
            # Numbers are accepted for text parameters (e.g. a metric value) and turned into text.
            out = {"type": ["string", "number"], "description": description, "maxLength": self.max_length}
            if self.choices:
                out["enum"] = list(choices(self.choices, settings))
        if self.default is not None:
            out["default"] = self.default
        return out


def check_text(label: str, value: str, max_length: int = TEXT_MAX, *, multiline: bool = False) -> str:
    """Refuse text no database column or terminal should hold; return it unchanged otherwise."""
    if _SURROGATE.search(value):
        raise InvalidInput(f"{label} is not valid UTF-8 text")
    if (_CONTROL_BUT_LAYOUT if multiline else _CONTROL).search(value):
        raise InvalidInput(f"{label} must not contain control characters (such as NUL or newlines)")
    if len(value) > max_length:
        raise InvalidInput(f"{label} is at most {max_length} characters, got {len(value)}")
    return value


def _bool(param: Param, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    raise InvalidInput(f"{param.label} must be true or false, got {_shown(raw)}")


def _int(param: Param, raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raise InvalidInput(f"{param.label} must be a whole number, got {_shown(raw)}")
    if isinstance(raw, str):
        text = raw.strip()
        if not re.fullmatch(r"[+-]?\d{1,40}", text):
            raise InvalidInput(f"{param.label} must be a whole number, got {_shown(raw)}")
        raw = int(text)
    if not param.minimum <= raw <= param.maximum:
        raise InvalidInput(f"{param.label} must be between {param.minimum} and {param.maximum}, got {raw}")
    return raw


def _shown(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 40 else text[:37] + "..."


def choices(name: str, settings=None) -> tuple[str, ...]:
    """The values a ``choices`` list names; templates include the configured ones when given settings."""
    from chainpipe.core import catalogue as cat

    if name == "templates":
        return tuple(sorted(settings.templates)) if settings is not None else tuple(cat.BUILTIN_TEMPLATES)
    table = {
        "stages": cat.STAGES + tuple(a for aliases in cat.STAGE_ALIASES.values() for a in aliases),
        "gates": cat.GATE_KINDS,
        "strategies": tuple(cat.DEPLOY_STRATEGIES),
        "artifact_types": cat.ARTIFACT_TYPES,
        "deploy_statuses": cat.DEPLOY_STATUSES,
        "initial_deploy_statuses": ("pending", "in-progress", "succeeded", "failed"),
        "pipeline_statuses": cat.PIPELINE_STATUSES,
        "formats": ("json", "markdown"),
    }
    return table[name]


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

    def bind(self, values: dict, *, local: bool = True) -> dict:
        """Raw values keyed by parameter name → typed values with defaults, or one InvalidInput.

        ``local=False`` is a server binding a remote caller's values: parameters read on the
        caller's machine are refused before anything is looked at, so nothing can be probed.
        """
        if not isinstance(values, dict):
            raise InvalidInput(f"{self.name}: the values must be an object of the command's parameters")
        known = {p.name: p for p in self.params}
        unknown = sorted(k for k in values if k not in known)
        if unknown:
            expected = ", ".join(known) or "none"
            raise InvalidInput(f"{self.name}: unknown parameter {_shown(unknown[0])}; expected: {expected}")
        bound = {}
        for param in self.params:
            raw = values.get(param.name)
            if raw is None:
                if param.required:
                    kind = "argument" if param.positional else "option"
                    raise InvalidInput(f"{self.name}: missing {kind} {param.label}")
                bound[param.name] = param.default
                continue
            if param.local and not local:
                raise InvalidInput(f"{param.label} is read on your machine, not the server's: send its digest "
                                   "and size instead (the Action and `pipe` in remote mode hash the file for you)")
            bound[param.name] = param.bind(raw)
        return bound


def arg(name: str, help: str, metavar: str | None = None, *, required: bool = True, default: Any = None,
        **limits: Any) -> Param:
    """A positional argument; an optional one (``required=False``) must come after the required ones."""
    return Param(name, help=help, required=required, default=default, metavar=metavar or name.upper(), **limits)


def opt(name: str, help: str, *, required: bool = False, default: Any = None, type: str = "str",
        flag: str | None = None, metavar: str | None = None, **limits: Any) -> Param:
    return Param(name, (flag or "--" + name.replace("_", "-"),), help, type, required, default, metavar, **limits)


PIPELINE_ID = arg("pipeline_id", "Pipeline id (pipe-…)", "PIPELINE_ID", max_length=64)
DEPLOY_ID = arg("deploy_id", "Deploy id (dep-…)", "DEPLOY_ID", max_length=64)
SERVICES = "chainpipe.core.services."
REASON_MAX = 2000
LIMIT_MAX = 10_000

V1_COMMANDS: tuple[Command, ...] = (
    # catalogue
    Command("config", "Show the configuration in force (secrets redacted)", SERVICES + "catalogue:show_config",
            kind="catalogue", group="catalogue"),
    Command("templates", "List pipeline templates, built-in and custom", SERVICES + "catalogue:list_templates",
            kind="catalogue", group="catalogue"),
    Command("stages", "List the 7 stages and their aliases", SERVICES + "catalogue:list_stages",
            kind="catalogue", group="catalogue"),
    Command("deploy-strategies", "List deploy strategies", SERVICES + "catalogue:list_strategies",
            kind="catalogue", group="catalogue"),
    Command("statuses", "List pipeline, stage, gate and deploy statuses", SERVICES + "catalogue:list_statuses",
            kind="catalogue", group="catalogue"),
    # lifecycle
    Command("create", "Create a pipeline from a template", SERVICES + "pipelines:create_pipeline", (
        opt("name", "Pipeline name", required=True),
        opt("template", "Template (see `pipe templates`)", default="feature", choices="templates"),
    ), examples=('pipe create --name "auth" --template feature --json',)),
    Command("start", "Start a created pipeline (first stage becomes current)", SERVICES + "pipelines:start_pipeline",
            (PIPELINE_ID,)),
    Command("pause", "Pause a running pipeline", SERVICES + "pipelines:pause_pipeline", (PIPELINE_ID,)),
    Command("resume", "Resume a paused pipeline", SERVICES + "pipelines:resume_pipeline", (PIPELINE_ID,)),
    Command("cancel", "Cancel a pipeline", SERVICES + "pipelines:cancel_pipeline",
            (PIPELINE_ID, opt("reason", "Why it is cancelled", multiline=True, max_length=REASON_MAX))),
    Command("complete", "Complete a running pipeline (all gates must be approved)",
            SERVICES + "pipelines:complete_pipeline", (PIPELINE_ID,)),
    Command("fail", "Mark a pipeline failed", SERVICES + "pipelines:fail_pipeline",
            (PIPELINE_ID, opt("reason", "Why it failed", required=True, multiline=True, max_length=REASON_MAX))),
    Command("retry", "Retry a failed pipeline (rejected gates re-open)", SERVICES + "pipelines:retry_pipeline",
            (PIPELINE_ID,)),
    Command("stage", "Move a running pipeline to a stage (forward, or back for rework)",
            SERVICES + "pipelines:advance_stage", (
                PIPELINE_ID, arg("stage", "Stage id or alias", "STAGE", choices="stages"),
                opt("reason", "Why (recorded; used when moving back)", multiline=True, max_length=REASON_MAX),
            ), examples=("pipe stage pipe-0123456789ab review",)),
    # gates
    Command("approve", "Approve a gate at the pipeline's current stage", SERVICES + "gates:approve_gate", (
        PIPELINE_ID, opt("gate", "Gate name (code-review, security-review)", required=True, choices="gates"),
        opt("reason", "Why", multiline=True, max_length=REASON_MAX),
    ), group="gates"),
    Command("reject", "Reject a gate; the pipeline fails until retried", SERVICES + "gates:reject_gate", (
        PIPELINE_ID, opt("gate", "Gate name (code-review, security-review)", required=True, choices="gates"),
        opt("reason", "Why (required)", required=True, multiline=True, max_length=REASON_MAX),
    ), group="gates"),
    Command("gate-status", "Where one gate stands: open, waiting, closed, approved or rejected",
            SERVICES + "gates:gate_status", (
                PIPELINE_ID, opt("gate", "Gate name (code-review, security-review)", required=True, choices="gates"),
            ), kind="read", group="gates", examples=("pipe gate-status pipe-0123456789ab --gate code-review --json",)),
    # artifacts
    Command("artifact-add", "Record an artifact (a new version if the name exists)",
            SERVICES + "artifacts:add_artifact", (
        PIPELINE_ID, opt("name", "Artifact name", required=True),
        opt("type", "binary, docker-image, report, log, sbom, document", required=True,
            choices="artifact_types"),
        opt("path", "Local file: its sha256 and size are recorded", local=True, max_length=4096),
        opt("uri", "Where it lives", max_length=2048),
        opt("digest", "sha256:<hex> (checked against --path)", max_length=80),
        opt("stage", "Stage (default: current)", choices="stages"),
        opt("size", "Size in bytes, with --digest when the file is not on this machine", type="int", minimum=0),
    ), group="artifacts"),
    Command("artifacts", "List a pipeline's artifacts", SERVICES + "artifacts:list_artifacts", (
        PIPELINE_ID, opt("all_versions", "Every version, not only the latest", type="bool", default=False),
    ), kind="read", group="artifacts"),
    # deploys
    Command("deploy", "Record a deploy (all gates must be approved)", SERVICES + "deploys:record_deploy", (
        PIPELINE_ID, opt("strategy", "blue-green, canary, rolling, recreate, shadow, dark-launch", required=True,
            choices="strategies"),
        opt("target", "Environment, e.g. production", required=True),
        opt("artifact", "NAME or NAME@VERSION"), opt("ref", "Commit SHA or tag", max_length=200),
        opt("status", "pending, in-progress, succeeded, failed", default="in-progress",
            choices="initial_deploy_statuses"),
    ), group="deploys"),
    Command("deploy-update", "Report a deploy's status", SERVICES + "deploys:update_deploy", (
        DEPLOY_ID,
        opt("status", "in-progress, succeeded, failed, rolled-back", required=True, choices="deploy_statuses"),
        opt("reason", "Why", multiline=True, max_length=REASON_MAX),
    ), group="deploys"),
    Command("deploys", "List a pipeline's deploys, newest first", SERVICES + "deploys:list_deploys", (PIPELINE_ID,),
            kind="read", group="deploys"),
    Command("deploy-show", "Show one deploy", SERVICES + "deploys:show_deploy", (DEPLOY_ID,), kind="read",
            group="deploys"),
    Command("rollback", "Roll a deploy back (idempotent)", SERVICES + "deploys:rollback_deploy",
            (DEPLOY_ID, opt("reason", "Why", multiline=True, max_length=REASON_MAX)), group="deploys"),
    Command("deploy-link", "Link a deploy to its mirror elsewhere (a GitHub Deployment id)",
            SERVICES + "mirror:link_deploy", (DEPLOY_ID, opt("external_id", "The external record's id", required=True)),
            group="deploys"),
    # monitoring
    Command("monitor-record", "Record a metric value (append-only)", SERVICES + "monitoring:record_metric", (
        PIPELINE_ID, opt("metric", "Metric name, e.g. error_rate", required=True, max_length=100),
        opt("value", "A finite number", required=True, max_length=64),
        opt("deploy", "Deploy id (default: the latest)", max_length=64), opt("unit", "Unit, e.g. ms", max_length=32),
    ), group="monitoring"),
    Command("monitor-events", "List metric events, newest first", SERVICES + "monitoring:list_events", (
        PIPELINE_ID, opt("metric", "Only this metric", max_length=100),
        opt("limit", "At most this many", type="int", default=100, minimum=1, maximum=LIMIT_MAX),
    ), kind="read", group="monitoring"),
    Command("monitor-status", "Per metric: latest value, baseline, change, verdict, regression, trend",
            SERVICES + "monitoring:monitor_status", (
        PIPELINE_ID, opt("deploy", "Judge this deploy (default: the latest)", max_length=64),
    ), kind="read", group="monitoring"),
    # queries
    Command("show", "Show a pipeline with its stages, gates and artifacts", SERVICES + "queries:show_pipeline",
            (PIPELINE_ID,), kind="read", group="queries"),
    Command("list", "List pipelines, newest first", SERVICES + "queries:list_pipelines", (
        opt("status", "Only this status", choices="pipeline_statuses"),
        opt("template", "Only this template", choices="templates"),
        opt("limit", "At most this many", type="int", default=20, minimum=1, maximum=LIMIT_MAX),
    ), kind="read", group="queries"),
    Command("export", "Export everything about a pipeline", SERVICES + "queries:export_pipeline", (
        PIPELINE_ID, opt("format", "json or markdown", default="json", choices="formats"),
    ), kind="read", group="queries"),
    Command("audit", "The pipeline's audit trail, newest first", SERVICES + "queries:audit_log", (
        PIPELINE_ID, opt("limit", "At most this many", type="int", default=50, minimum=1, maximum=LIMIT_MAX),
    ), kind="read", group="queries"),
    Command("audit-verify", "Recompute audit hash chains; exit 1 at the first edited, deleted or reordered row",
            SERVICES + "audit:verify_audit", (
                arg("pipeline_id", "A pipeline or governed pipeline id", "PIPELINE_ID", required=False, max_length=200),
                opt("all", "Every chain in the database", type="bool", default=False),
                opt("file", "An export (pipe export ID --format json) to check offline", local=True, max_length=4096),
                opt("public_key", "Ed25519 public key (PEM) to check the export's signature", local=True,
                    max_length=4096),
            ), kind="catalogue", group="queries",
            examples=("pipe audit verify --all", "pipe audit verify --file export.json --public-key team.pub")),
    Command("stats", "Counts by status, template, strategy and gate decision; DORA figures",
            SERVICES + "queries:pipeline_stats", (
                opt("since", "Window start, ISO-8601 (default: 30 days before --until)", max_length=64),
                opt("until", "Window end, ISO-8601 (default: now)", max_length=64),
                opt("target", "DORA figures for this target only"),
                opt("explain", "Print how each DORA figure is defined", type="bool", default=False),
            ), kind="read", group="queries", examples=("pipe stats --since 2026-10-01 --target production --json",)),
)

COMMANDS: dict[str, Command] = {c.name: c for c in V1_COMMANDS}
# Two-word spellings of commands: `pipe audit verify …` is `audit-verify …`.
TWO_WORD = {("audit", "verify"): "audit-verify"}


def join_words(words: list[str]) -> list[str]:
    """Words as typed (CLI argv, Slack text) with a two-word command joined into its name."""
    if len(words) >= 2 and (words[0], words[1]) in TWO_WORD:
        return [TWO_WORD[(words[0], words[1])], *words[2:]]
    return list(words)


def get_command(name: str) -> Command:
    command = COMMANDS.get(name)
    if command is None:
        raise InvalidInput(f"unknown command: {name}; try `help`")
    return command


def parse_args(command: Command, argv: list[str], *, reserved: tuple[str, ...] = (), local: bool = True) -> dict:
    """Parse words after the command name into bound values, as the CLI would.

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
        values[param.name] = inline
    if len(loose) > len(positionals):
        raise InvalidInput(f"{command.name}: unexpected extra argument {loose[len(positionals)]!r}")
    for param, word in zip(positionals, loose, strict=False):
        values[param.name] = word
    values = command.bind(values, local=local)
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
import chainpipe.core.grammar_v2  # noqa: E402,F401
