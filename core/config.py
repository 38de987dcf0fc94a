"""Settings: a TOML file plus ``PIPE_*`` environment variables, validated once at start-up.

Where things come from (later wins):
  built-in defaults → the TOML file (``PIPE_CONFIG``, else ``<data dir>/config.toml`` if present)
  → environment variables (``PIPE_DATABASE_URL``, ``PIPE_GATE_<GATE>_APPROVERS`` …).
See docs/configuration.md for every key.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from chainpipe.core.catalogue import BUILTIN_TEMPLATES, GATE_KINDS, Template, make_template
from chainpipe.core.errors import ConfigError
from chainpipe.core.rules.evidence import Separation
from chainpipe.core.rules.metrics import BASELINE_MAX_EVENTS, DEFAULT_METRIC_RULES, MetricRule

_METRIC_NAME = re.compile(r"^[a-z][a-z0-9_.]*$")


def data_dir(env=os.environ) -> Path:
    if env.get("PIPE_DATA_DIR"):
        return Path(env["PIPE_DATA_DIR"]).expanduser()
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "chainpipe"


@dataclass(frozen=True)
class GatePolicy:
    approvers: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    forbid_self_approval: bool = False
    required_approvals: int = 1
    # Everyone the policy names: its approvers and the members of its groups (resolved at load).
    members: frozenset[str] = frozenset()
    # Service tokens (by name) that may decide the gate: automated checks that approve on purpose.
    service_approvers: tuple[str, ...] = ()
    # A new version of an artifact an approval covered re-opens the gate.
    reopen_on_new_artifact: bool = True

    @property
    def open_to_anyone(self) -> bool:
        return not self.approvers and not self.groups

    def as_dict(self) -> dict:
        return {
            "approvers": list(self.approvers),
            "groups": list(self.groups),
            "forbid_self_approval": self.forbid_self_approval,
            "required_approvals": self.required_approvals,
            "service_approvers": list(self.service_approvers),
            "reopen_on_new_artifact": self.reopen_on_new_artifact,
        }


@dataclass(frozen=True)
class AutoRollback:
    """Which deploys an ``unhealthy`` verdict rolls back: every one, or those of some targets / templates."""

    all: bool = False
    targets: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()

    def applies(self, target: str, template: str) -> bool:
        return self.all or target in self.targets or template in self.templates

    def as_dict(self) -> dict:
        return {"all": self.all, "targets": list(self.targets), "templates": list(self.templates)}


@dataclass(frozen=True)
class GitHubConfig:
    """``[github]``: the repositories the GitHub App serves (the first is where deploys of a pipeline
    that names no repository are mirrored) and, per protected environment, the template of the
    pipeline a protection rule creates when no pipeline of the same workflow run exists."""

    repositories: tuple[str, ...] = ()
    environments: dict[str, str | None] = field(default_factory=dict)  # environment -> template

    def serves(self, repository: str, environment: str) -> bool:
        return repository.lower() in (r.lower() for r in self.repositories) and environment in self.environments

    def as_dict(self) -> dict:
        return {"repositories": list(self.repositories), "environments": dict(self.environments)}


@dataclass(frozen=True)
class Settings:
    database_url: str
    config_path: Path | None = None
    templates: dict[str, Template] = field(default_factory=lambda: dict(BUILTIN_TEMPLATES))
    gate_policies: dict[str, GatePolicy] = field(default_factory=dict)
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    identities: dict[str, str] = field(default_factory=dict)
    metric_rules: dict[str, MetricRule] = field(default_factory=lambda: dict(DEFAULT_METRIC_RULES))
    raw: dict = field(default_factory=dict)
    auto_rollback: AutoRollback = field(default_factory=AutoRollback)
    # May a direct-database CLI user name someone else with --as / PIPE_ACTOR? ([cli] allow_as)
    allow_as: bool = True
    # An Ed25519 private key (PEM) that signs exported audit chains ([audit] signing_key).
    audit_signing_key: Path | None = None
    separation: Separation = field(default_factory=Separation)
    github: GitHubConfig = field(default_factory=GitHubConfig)

    def policy(self, gate: str) -> GatePolicy:
        return self.gate_policies.get(gate, GatePolicy())

    def person(self, actor: str) -> str:
        """The person behind a surface identity (``slack:U123`` → ``alice``), or the identity itself."""
        return self.identities.get(actor, actor)

    def group_members(self, group: str) -> tuple[str, ...]:
        return self.groups.get(group, ())

    def public(self) -> dict:
        return {
            "database_url": redact_url(self.database_url),
            "config_path": str(self.config_path) if self.config_path else None,
            "templates": sorted(self.templates),
            "gate_policies": {g: self.policy(g).as_dict() for g in GATE_KINDS},
            "groups": {g: list(m) for g, m in self.groups.items()},
            "identities": dict(self.identities),
            "metric_rules": {m: r.as_dict() for m, r in self.metric_rules.items()},
            "auto_rollback": self.auto_rollback.as_dict(),
            "cli": {"allow_as": self.allow_as},
            "audit": {"signing_key": str(self.audit_signing_key) if self.audit_signing_key else None},
            "separation": self.separation.as_dict(),
            "github": self.github.as_dict(),
        }


def redact_url(url: str) -> str:
    """Hide a password in a database URL: postgresql://u:secret@h/db → postgresql://u:***@h/db."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in creds:
        return url
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"


def _read_file(env) -> tuple[Path | None, dict]:
    explicit = env.get("PIPE_CONFIG")
    path = Path(explicit).expanduser() if explicit else data_dir(env) / "config.toml"
    if not path.exists():
        if explicit:
            raise ConfigError(f"config file not found: {path}")
        return None, {}
    import tomllib  # here: a process without a config file never needs the TOML parser

    try:
        return path, tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None


def _str_tuple(value, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of names")
    return tuple(v.strip() for v in value)


def _positive_int(value, where: str) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be a positive integer, got {value!r}") from None
    if n < 1:
        raise ConfigError(f"{where} must be a positive integer, got {value!r}")
    return n


def _bool(value, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{where} must be true or false, got {value!r}")


POLICY_KEYS = ("approvers", "groups", "forbid_self_approval", "required_approvals", "service_approvers",
               "reopen_on_new_artifact")


def _gate_policy(gate: str, raw: dict, env, groups: dict[str, tuple[str, ...]]) -> GatePolicy:
    key = "PIPE_GATE_" + gate.upper().replace("-", "_") + "_"
    merged = dict(raw)
    for name in POLICY_KEYS:
        if env.get(key + name.upper()) is not None:
            merged[name] = env[key + name.upper()]
    unknown = set(merged) - set(POLICY_KEYS)
    if unknown:
        raise ConfigError(f"gates.{gate}: unknown key {sorted(unknown)[0]}; allowed: {', '.join(POLICY_KEYS)}")
    where = f"gates.{gate}"
    approvers = _str_tuple(merged.get("approvers", ()), f"{where}.approvers")
    policy_groups = _str_tuple(merged.get("groups", ()), f"{where}.groups")
    members = set(approvers)
    for group in policy_groups:
        members.update(groups.get(group, ()))
    return GatePolicy(
        approvers=approvers,
        groups=policy_groups,
        members=frozenset(members),
        service_approvers=_str_tuple(merged.get("service_approvers", ()), f"{where}.service_approvers"),
        reopen_on_new_artifact=_bool(merged.get("reopen_on_new_artifact", True), f"{where}.reopen_on_new_artifact"),
        forbid_self_approval=_bool(merged.get("forbid_self_approval", False), f"{where}.forbid_self_approval"),
        required_approvals=_positive_int(merged.get("required_approvals", 1), f"{where}.required_approvals"),
    )


RULE_KEYS = ("direction", "degraded", "unhealthy", "tolerance", "baseline_window")
MONITOR_KEYS = ("rules", "auto_rollback", "baseline_window")
_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def _baseline_window(value, where: str) -> tuple[int, int | None]:
    """``20`` → the 20 events before the deploy; ``"2h"`` → events of the 2 hours before it."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= BASELINE_MAX_EVENTS:
            raise ConfigError(f"{where} must be 1..{BASELINE_MAX_EVENTS} events, got {value!r}")
        return value, None
    match = _DURATION.match(value.strip().lower()) if isinstance(value, str) else None
    if not match or int(match.group(1)) < 1:
        raise ConfigError(f"{where} must be a number of events or a duration like \"30m\", got {value!r}")
    return BASELINE_MAX_EVENTS, int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _metric_rule(metric: str, spec, base: MetricRule, default_window) -> MetricRule:
    where = f"monitor.rules.{metric}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(spec) - set(RULE_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]}; allowed: {', '.join(RULE_KEYS)}")
    direction = spec.get("direction", base.direction)
    if direction not in ("lower", "higher"):
        raise ConfigError(f"{where}.direction must be lower or higher, got {direction!r}")
    tolerance = _number(spec.get("tolerance", base.tolerance), f"{where}.tolerance")
    if tolerance < 0:
        raise ConfigError(f"{where}.tolerance must be a number ≥ 0, got {spec.get('tolerance')!r}")
    limits = {}
    for k in ("degraded", "unhealthy"):
        v = spec.get(k, getattr(base, k))
        limits[k] = None if v is None else _number(v, f"{where}.{k}")
    d, u = limits["degraded"], limits["unhealthy"]
    if d is not None and u is not None and (d > u if direction == "lower" else d < u):
        better = "below" if direction == "lower" else "above"
        raise ConfigError(f"{where}: degraded ({d}) must be {better} unhealthy ({u}) when {direction} is better")
    if "baseline_window" in spec:
        window, seconds = _baseline_window(spec["baseline_window"], f"{where}.baseline_window")
    elif default_window is not None:
        window, seconds = default_window
    else:
        window, seconds = base.baseline_window, base.baseline_seconds
    return MetricRule(direction, d, u, tolerance, window, seconds)


def _metric_rules(raw: dict) -> dict[str, MetricRule]:
    """``[monitor.rules.<metric>]`` tables over the built-in defaults; ``raw`` is the ``[monitor]`` table."""
    default_window = None
    if "baseline_window" in raw:
        default_window = _baseline_window(raw["baseline_window"], "monitor.baseline_window")
    specs = raw.get("rules", {})
    if not isinstance(specs, dict):
        raise ConfigError("monitor.rules must be a table of [monitor.rules.<metric>] tables")
    rules = {m: _metric_rule(m, {}, r, default_window) for m, r in DEFAULT_METRIC_RULES.items()}
    for metric, spec in specs.items():
        if not _METRIC_NAME.match(metric):
            raise ConfigError(f"monitor.rules.{metric}: metric names must match [a-z][a-z0-9_.]*")
        rules[metric] = _metric_rule(metric, spec, rules.get(metric, MetricRule()), default_window)
    return rules


def _auto_rollback(raw: dict) -> AutoRollback:
    value = raw.get("auto_rollback", False)
    if not isinstance(value, dict):
        return AutoRollback(all=_bool(value, "monitor.auto_rollback"))
    unknown = sorted(set(value) - {"all", "targets", "templates"})
    if unknown:
        raise ConfigError(f"monitor.auto_rollback: unknown key {unknown[0]}; allowed: all, targets, templates")
    return AutoRollback(
        all=_bool(value.get("all", False), "monitor.auto_rollback.all"),
        targets=_str_tuple(value.get("targets", ()), "monitor.auto_rollback.targets"),
        templates=_str_tuple(value.get("templates", ()), "monitor.auto_rollback.templates"),
    )


def _monitor(raw) -> tuple[dict[str, MetricRule], AutoRollback]:
    if not isinstance(raw, dict):
        raise ConfigError("monitor must be a table")
    unknown = sorted(set(raw) - set(MONITOR_KEYS))
    if unknown:
        raise ConfigError(f"monitor: unknown key {unknown[0]}; allowed: {', '.join(MONITOR_KEYS)}")
    return _metric_rules(raw), _auto_rollback(raw)


def load_settings(env=None) -> Settings:
    env = os.environ if env is None else env
    path, raw = _read_file(env)
    url = env.get("PIPE_DATABASE_URL") or raw.get("database_url")
    if not url:
        url = "sqlite:///" + str(data_dir(env) / "pipe.db")
    templates = dict(BUILTIN_TEMPLATES)
    for name, spec in dict(raw.get("templates", {})).items():
        if name in BUILTIN_TEMPLATES:
            raise ConfigError(f"template {name} is built in and cannot be redefined")
        templates[name] = make_template(name, spec)
    gates_raw = dict(raw.get("gates", {}))
    for gate in gates_raw:
        if gate not in GATE_KINDS:
            raise ConfigError(f"gates.{gate}: unknown gate; allowed: {', '.join(GATE_KINDS)}")
    groups = {g: _str_tuple(m, f"groups.{g}") for g, m in dict(raw.get("groups", {})).items()}
    policies = {g: _gate_policy(g, gates_raw.get(g, {}), env, groups) for g in GATE_KINDS}
    identities = {str(k): str(v) for k, v in dict(raw.get("identities", {})).items()}
    rules, auto_rollback = _monitor(raw.get("monitor", {}))
    return Settings(url, path, templates, policies, groups, identities, rules, raw, auto_rollback,
                    allow_as=_cli(raw.get("cli", {}), env), audit_signing_key=_audit(raw.get("audit", {}), env),
                    separation=_separation(raw.get("separation", {})),
                    github=_github(raw.get("github", {}), templates))


def _separation(raw) -> Separation:
    if not isinstance(raw, dict):
        raise ConfigError("separation must be a table")
    unknown = sorted(set(raw) - {"distinct", "deployer_not_approver"})
    if unknown:
        raise ConfigError(f"separation: unknown key {unknown[0]}; allowed: distinct, deployer_not_approver")
    groups = raw.get("distinct", [])
    if not isinstance(groups, list) or not all(isinstance(g, list) for g in groups):
        raise ConfigError('separation.distinct must be a list of gate lists, e.g. [["code-review", "security-review"]]')
    for group in groups:
        for gate in group:
            if gate not in GATE_KINDS:
                raise ConfigError(f"separation.distinct: unknown gate {gate!r}; allowed: {', '.join(GATE_KINDS)}")
        if len(set(group)) < 2:
            raise ConfigError("separation.distinct: each group names at least two different gates")
    return Separation(tuple(frozenset(g) for g in groups),
                      _bool(raw.get("deployer_not_approver", False), "separation.deployer_not_approver"))


def _audit(raw, env) -> Path | None:
    if not isinstance(raw, dict):
        raise ConfigError("audit must be a table")
    unknown = sorted(set(raw) - {"signing_key"})
    if unknown:
        raise ConfigError(f"audit: unknown key {unknown[0]}; allowed: signing_key")
    value = env.get("PIPE_AUDIT_SIGNING_KEY", raw.get("signing_key"))
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("audit.signing_key must be the path of an Ed25519 private key (PEM)")
    return Path(value).expanduser()


def _cli(raw, env) -> bool:
    if not isinstance(raw, dict):
        raise ConfigError("cli must be a table")
    unknown = sorted(set(raw) - {"allow_as"})
    if unknown:
        raise ConfigError(f"cli: unknown key {unknown[0]}; allowed: allow_as")
    value = env.get("PIPE_CLI_ALLOW_AS", raw.get("allow_as", True))
    return _bool(value, "cli.allow_as")


def _github(raw, templates) -> GitHubConfig:
    if not isinstance(raw, dict):
        raise ConfigError("github must be a table")
    unknown = sorted(set(raw) - {"repositories", "environments"})
    if unknown:
        raise ConfigError(f"github: unknown key {unknown[0]}; allowed: repositories, environments")
    repositories = _str_tuple(raw.get("repositories", ()), "github.repositories")
    for repo in repositories:
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise ConfigError(f"github.repositories: {repo!r} is not owner/name")
    environments: dict[str, str | None] = {}
    envs = raw.get("environments", {})
    if not isinstance(envs, dict):
        raise ConfigError("github.environments must be a table of environments")
    for name, spec in envs.items():
        where = f"github.environments.{name}"
        if not isinstance(spec, dict):
            raise ConfigError(f"{where} must be a table (e.g. template = \"bugfix\")")
        if set(spec) - {"template"}:
            raise ConfigError(f"{where}: unknown key {sorted(set(spec) - {'template'})[0]}; allowed: template")
        template = spec.get("template")
        if template is not None and template not in templates:
            raise ConfigError(f"{where}.template: unknown template {template!r}; known: {', '.join(sorted(templates))}")
        environments[str(name)] = template
    return GitHubConfig(repositories, environments)
