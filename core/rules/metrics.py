"""Metric rules and the pure math that judges a metric: verdicts against thresholds, the change
against a baseline, regressions, trends. No session, no SQL: core/services/monitoring.py reads the
events and asks these functions; docs/monitoring.md is the user-facing version.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from chainpipe.core.errors import InvalidInput

METRIC_RE = re.compile(r"^[a-z][a-z0-9_.]*$")
VERDICT_RANK = {"unknown": 0, "healthy": 1, "degraded": 2, "unhealthy": 3}
SPARKS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class MetricRule:
    """Health thresholds for one metric. ``direction`` says which way is better.

    ``degraded`` / ``unhealthy`` are absolute limits, inclusive; ``tolerance`` is the relative
    worsening against the baseline allowed before a regression is flagged (0.2 = 20 %);
    ``baseline_window`` is how many events before the deploy form the baseline (an int), or how
    far back in time (a duration such as ``"30m"``, ``"2h"``, ``"1d"``; in seconds here).
    """

    direction: str = "lower"
    degraded: float | None = None
    unhealthy: float | None = None
    tolerance: float = 0.2
    baseline_window: int = 20
    baseline_seconds: int | None = None

    @property
    def has_thresholds(self) -> bool:
        return self.degraded is not None or self.unhealthy is not None

    def as_dict(self) -> dict:
        return {
            "direction": self.direction,
            "degraded": self.degraded,
            "unhealthy": self.unhealthy,
            "tolerance": self.tolerance,
            "baseline_window": self.baseline_window,
            "baseline_seconds": self.baseline_seconds,
        }


DEFAULT_METRIC_RULES: dict[str, MetricRule] = {
    "error_rate": MetricRule("lower", degraded=0.05, unhealthy=0.1, tolerance=0.2),
    "latency_ms": MetricRule("lower", degraded=500.0, unhealthy=1000.0, tolerance=0.2),
    "cpu": MetricRule("lower", degraded=80.0, unhealthy=95.0, tolerance=0.25),
}
# A duration window is still capped at this many events, so the baseline query stays bounded.
BASELINE_MAX_EVENTS = 1000


def parse_value(value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"--value must be a finite number, got {value!r}") from None
    if not math.isfinite(number):
        raise InvalidInput(f"--value must be a finite number, got {value!r}")
    return number


def check_metric(metric: str) -> str:
    if not METRIC_RE.match(metric or "") or len(metric) > 100:
        raise InvalidInput(f"metric name must match [a-z][a-z0-9_.]* (e.g. error_rate), got {metric!r}")
    return metric


# ---- pure verdict math ---------------------------------------------------------------------------

def _num(value: float) -> str:
    return f"{value:g}"


def judge(rule: MetricRule | None, value: float) -> str:
    """Health verdict of one value against absolute thresholds (inclusive)."""
    if rule is None or not rule.has_thresholds:
        return "unknown"
    worse = (lambda v, t: v >= t) if rule.direction == "lower" else (lambda v, t: v <= t)
    if rule.unhealthy is not None and worse(value, rule.unhealthy):
        return "unhealthy"
    if rule.degraded is not None and worse(value, rule.degraded):
        return "degraded"
    return "healthy"


def verdict_reason(rule: MetricRule | None, value: float | None, verdict: str) -> str:
    if value is None:
        return "no event for this deploy yet"
    if rule is None or not rule.has_thresholds:
        return "no thresholds configured for this metric"
    better = f"{rule.direction} is better"
    at, below = (("≥", "<") if rule.direction == "lower" else ("≤", ">"))
    if verdict in ("unhealthy", "degraded"):
        return f"{_num(value)} {at} {verdict} threshold {_num(getattr(rule, verdict))} ({better})"
    limit = rule.degraded if rule.degraded is not None else rule.unhealthy
    name = "degraded" if rule.degraded is not None else "unhealthy"
    return f"{_num(value)} {below} {name} threshold {_num(limit)} ({better})"


def change(latest: float | None, baseline: float | None) -> dict:
    """Absolute and relative change of the latest value against the baseline (relative: None at 0)."""
    if latest is None or baseline is None:
        return {"absolute": None, "relative": None}
    diff = latest - baseline
    return {"absolute": diff, "relative": diff / abs(baseline) if baseline else None}


def regression(rule: MetricRule | None, latest: float | None, baseline: float | None) -> tuple[bool, str]:
    """Is ``latest`` worse than ``baseline`` by more than the rule's tolerance? With the reason."""
    if rule is None:
        return False, "no rule for this metric, so no direction to compare in"
    if latest is None:
        return False, "no event for this deploy yet"
    if baseline is None:
        return False, "no baseline: no events before the deploy nor from a previous deploy to the target"
    worse_by = (latest - baseline) if rule.direction == "lower" else (baseline - latest)
    allowed = rule.tolerance * abs(baseline)
    tol = f"tolerance {rule.tolerance:.0%}"
    if worse_by > allowed:
        how = f"{worse_by / abs(baseline):.0%} worse" if baseline else f"worse by {_num(worse_by)}"
        return True, f"{_num(latest)} is {how} than the baseline {_num(baseline)} ({tol})"
    if worse_by <= 0:
        return False, f"{_num(latest)} is no worse than the baseline {_num(baseline)} ({tol})"
    return False, f"{_num(latest)} is within {tol} of the baseline {_num(baseline)}"


def sparkline(values: list[float]) -> str:
    """``[1, 2, 3, 9]`` → ``▁▂▃█``; a flat series is a flat low line."""
    if not values:
        return ""
    lo, hi = min(values), max(values)
    if hi == lo:
        return SPARKS[0] * len(values)
    top = len(SPARKS) - 1
    return "".join(SPARKS[round((v - lo) / (hi - lo) * top)] for v in values)


def worst(verdicts) -> str:
    return max(verdicts, key=VERDICT_RANK.__getitem__, default="unknown")
