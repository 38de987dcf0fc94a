"""Settings: a TOML file plus ``PIPE_*`` environment variables, validated once at start-up.

Where things come from (later wins):
  built-in defaults → the TOML file (``PIPE_CONFIG``, else ``<data dir>/config.toml`` if present)
  → environment variables (``PIPE_DATABASE_URL``, ``PIPE_GATE_<GATE>_APPROVERS`` …).
See docs/configuration.md for every key.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from core.catalogue import BUILTIN_TEMPLATES, GATE_KINDS, Template, make_template
from core.errors import ConfigError


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

    @property
    def open_to_anyone(self) -> bool:
        return not self.approvers and not self.groups

    def as_dict(self) -> dict:
        return {
            "approvers": list(self.approvers),
            "groups": list(self.groups),
            "forbid_self_approval": self.forbid_self_approval,
            "required_approvals": self.required_approvals,
        }


@dataclass(frozen=True)
class MetricRule:
    """Health thresholds for one metric. ``direction`` says which way is better."""

    direction: str = "lower"
    degraded: float | None = None
    unhealthy: float | None = None
    tolerance: float = 0.2

    def as_dict(self) -> dict:
        return {
            "direction": self.direction,
            "degraded": self.degraded,
            "unhealthy": self.unhealthy,
            "tolerance": self.tolerance,
        }


DEFAULT_METRIC_RULES: dict[str, MetricRule] = {
    "error_rate": MetricRule("lower", degraded=0.05, unhealthy=0.1, tolerance=0.2),
    "latency_ms": MetricRule("lower", degraded=500.0, unhealthy=1000.0, tolerance=0.2),
    "cpu": MetricRule("lower", degraded=80.0, unhealthy=95.0, tolerance=0.25),
}


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
    try:
        return path, tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


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


def _gate_policy(gate: str, raw: dict, env) -> GatePolicy:
    key = "PIPE_GATE_" + gate.upper().replace("-", "_") + "_"
    merged = dict(raw)
    for name in ("approvers", "groups", "forbid_self_approval", "required_approvals"):
        if env.get(key + name.upper()) is not None:
            merged[name] = env[key + name.upper()]
    unknown = set(merged) - {"approvers", "groups", "forbid_self_approval", "required_approvals"}
    if unknown:
        raise ConfigError(f"gates.{gate}: unknown key {sorted(unknown)[0]}")
    where = f"gates.{gate}"
    return GatePolicy(
        approvers=_str_tuple(merged.get("approvers", ()), f"{where}.approvers"),
        groups=_str_tuple(merged.get("groups", ()), f"{where}.groups"),
        forbid_self_approval=_bool(merged.get("forbid_self_approval", False), f"{where}.forbid_self_approval"),
        required_approvals=_positive_int(merged.get("required_approvals", 1), f"{where}.required_approvals"),
    )


def _metric_rules(raw: dict) -> dict[str, MetricRule]:
    rules = dict(DEFAULT_METRIC_RULES)
    for metric, spec in raw.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"monitor.rules.{metric} must be a table")
        base = rules.get(metric, MetricRule())
        direction = spec.get("direction", base.direction)
        if direction not in ("lower", "higher"):
            raise ConfigError(f"monitor.rules.{metric}.direction must be lower or higher, got {direction!r}")
        tolerance = spec.get("tolerance", base.tolerance)
        if not isinstance(tolerance, (int, float)) or tolerance < 0:
            raise ConfigError(f"monitor.rules.{metric}.tolerance must be a number ≥ 0, got {tolerance!r}")
        limits = {k: spec.get(k, getattr(base, k)) for k in ("degraded", "unhealthy")}
        for k, v in limits.items():
            if v is not None and not isinstance(v, (int, float)):
                raise ConfigError(f"monitor.rules.{metric}.{k} must be a number, got {v!r}")
        rules[metric] = MetricRule(direction, limits["degraded"], limits["unhealthy"], float(tolerance))
    return rules


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
    policies = {g: _gate_policy(g, gates_raw.get(g, {}), env) for g in GATE_KINDS}
    groups = {g: _str_tuple(m, f"groups.{g}") for g, m in dict(raw.get("groups", {})).items()}
    identities = {str(k): str(v) for k, v in dict(raw.get("identities", {})).items()}
    rules = _metric_rules(dict(raw.get("monitor", {}).get("rules", {})))
    return Settings(url, path, templates, policies, groups, identities, rules, raw)
