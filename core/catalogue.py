"""The fixed vocabulary of the orchestrator, as data: stages, templates, strategies, types, statuses.

Nothing here touches the database; custom templates from the config file are merged in by
`core.config.Settings.templates`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chainpipe.core.errors import InvalidInput

STAGES: tuple[str, ...] = (
    "requirements",
    "architecture",
    "code",
    "test",
    "review",
    "deploy",
    "monitor",
)

STAGE_ALIASES: dict[str, tuple[str, ...]] = {
    "requirements": ("req", "requirement"),
    "architecture": ("arch",),
    "code": ("coding", "code-generation"),
    "test": ("testing", "tests"),
    "review": ("reviewing",),
    "deploy": ("deployment",),
    "monitor": ("mon", "monitoring"),
}

STAGE_DESCRIPTIONS: dict[str, str] = {
    "requirements": "Requirements analysis",
    "architecture": "Architecture and design",
    "code": "Code generation and implementation",
    "test": "Automated and manual testing",
    "review": "Code and security review",
    "deploy": "Deployment to a target",
    "monitor": "Production monitoring",
}

_STAGE_LOOKUP: dict[str, str] = {
    **{s: s for s in STAGES},
    **{alias: s for s, aliases in STAGE_ALIASES.items() for alias in aliases},
}

GATE_KINDS: tuple[str, ...] = ("code-review", "security-review")

DEPLOY_STRATEGIES: dict[str, str] = {
    "blue-green": "Two identical environments; traffic switches at once",
    "canary": "A small share of traffic first, widened as metrics stay healthy",
    "rolling": "Instances replaced in batches",
    "recreate": "Old version stopped, new version started",
    "shadow": "New version receives a copy of live traffic, answers are discarded",
    "dark-launch": "Deployed but hidden behind a flag",
}

ARTIFACT_TYPES: tuple[str, ...] = ("binary", "docker-image", "report", "log", "sbom", "document")

PIPELINE_STATUSES: tuple[str, ...] = (
    "created",
    "running",
    "paused",
    "completed",
    "failed",
    "cancelled",
)
STAGE_STATUSES: tuple[str, ...] = ("pending", "running", "completed", "failed", "skipped")
GATE_STATUSES: tuple[str, ...] = ("pending", "approved", "rejected")
DEPLOY_STATUSES: tuple[str, ...] = ("pending", "in-progress", "succeeded", "failed", "rolled-back")
SURFACES: tuple[str, ...] = ("cli", "slack", "github", "api")
HEALTH_VERDICTS: tuple[str, ...] = ("healthy", "degraded", "unhealthy", "unknown")


@dataclass(frozen=True)
class Template:
    name: str
    description: str
    stages: tuple[str, ...]
    # gate name -> the stage whose exit it guards
    gates: dict[str, str] = field(default_factory=dict)
    builtin: bool = True

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "stages": list(self.stages),
            "gates": dict(self.gates),
            "builtin": self.builtin,
        }


BUILTIN_TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template("feature", "A new feature through all seven stages", STAGES, {"code-review": "review"}),
        Template(
            "bugfix",
            "A fix from code to monitoring",
            ("code", "test", "review", "deploy", "monitor"),
            {"code-review": "review"},
        ),
        Template(
            "refactor",
            "A restructuring that starts from the architecture",
            ("architecture", "code", "test", "review", "deploy", "monitor"),
            {"code-review": "review"},
        ),
        Template(
            "security-audit",
            "An audit that needs both a code review and a security review",
            ("code", "test", "review"),
            {"code-review": "review", "security-review": "review"},
        ),
    )
}


def resolve_stage(name: str) -> str:
    """Map a stage id or alias (any case) to the stage id."""
    stage = _STAGE_LOOKUP.get(name.strip().lower())
    if stage is None:
        raise unknown("stage", name, STAGES, _STAGE_LOOKUP, f"{', '.join(STAGES)} (or an alias)")
    return stage


def check_choice(kind: str, value: str, allowed) -> str:
    if value not in allowed:
        raise unknown(kind, value, allowed)
    return value


def unknown(kind: str, value: str, allowed, known=None, listing: str | None = None) -> InvalidInput:
    """"unknown stage: cod; did you mean code?" when a known word is close (a typo), else the list
    of what is allowed. ``known`` maps every accepted spelling (e.g. aliases) to the value meant."""
    known = known if known is not None else {a: a for a in allowed}
    import difflib  # only for a mistyped name

    close = difflib.get_close_matches(str(value).strip().lower(), list(known), n=1, cutoff=0.75)
    if close:
        return InvalidInput(f"unknown {kind}: {value}; did you mean {known[close[0]]}?")
    return InvalidInput(f"unknown {kind}: {value}; allowed: {listing or ', '.join(allowed)}")


def make_template(name: str, raw: dict) -> Template:
    """Build a custom template from its config table, checking it the way built-ins are shaped."""
    from chainpipe.core.errors import ConfigError

    try:
        stages = tuple(resolve_stage(s) for s in raw.get("stages", ()))
        gates = {str(g): resolve_stage(s) for g, s in dict(raw.get("gates", {})).items()}
    except InvalidInput as exc:
        raise ConfigError(f"template {name}: {exc}") from None
    if not stages:
        raise ConfigError(f"template {name}: needs at least one stage")
    if list(stages) != sorted(set(stages), key=STAGES.index):
        raise ConfigError(f"template {name}: stages must be distinct and in pipeline order")
    for gate, stage in gates.items():
        if gate not in GATE_KINDS:
            raise ConfigError(f"template {name}: unknown gate {gate}; allowed: {', '.join(GATE_KINDS)}")
        if stage not in stages:
            raise ConfigError(f"template {name}: gate {gate} guards {stage}, which is not one of its stages")
    return Template(name, str(raw.get("description", "")), stages, gates, builtin=False)
