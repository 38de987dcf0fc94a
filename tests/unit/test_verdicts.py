"""Verdict math without a database: thresholds in both directions, regression, sparkline, rule files."""

from __future__ import annotations

import pytest
from chainpipe.core.config import load_settings
from chainpipe.core.errors import ConfigError
from chainpipe.core.rules.metrics import MetricRule, change, judge, regression, sparkline, verdict_reason, worst

LOWER = MetricRule("lower", degraded=0.05, unhealthy=0.1, tolerance=0.2)
HIGHER = MetricRule("higher", degraded=99.0, unhealthy=95.0, tolerance=0.1)


@pytest.mark.parametrize("value,verdict", [
    (0.0, "healthy"), (0.0499, "healthy"), (0.05, "degraded"), (0.0501, "degraded"),
    (0.0999, "degraded"), (0.1, "unhealthy"), (0.1001, "unhealthy"), (5.0, "unhealthy"), (-1.0, "healthy"),
])
def test_lower_is_better_thresholds_are_inclusive(value, verdict):
    assert judge(LOWER, value) == verdict


@pytest.mark.parametrize("value,verdict", [
    (100.0, "healthy"), (99.01, "healthy"), (99.0, "degraded"), (98.99, "degraded"),
    (95.01, "degraded"), (95.0, "unhealthy"), (94.99, "unhealthy"), (0.0, "unhealthy"),
])
def test_higher_is_better_thresholds_are_inclusive(value, verdict):
    assert judge(HIGHER, value) == verdict


@pytest.mark.parametrize("rule,value,verdict", [
    (MetricRule("lower", unhealthy=10.0), 9.99, "healthy"),
    (MetricRule("lower", unhealthy=10.0), 10.0, "unhealthy"),
    (MetricRule("lower", degraded=10.0), 10.0, "degraded"),
    (MetricRule("lower", degraded=10.0), 1e9, "degraded"),
    (MetricRule("higher", degraded=10.0), 10.01, "healthy"),
    (MetricRule("lower"), 1e9, "unknown"),
    (None, 1.0, "unknown"),
])
def test_one_threshold_or_none(rule, value, verdict):
    assert judge(rule, value) == verdict


def test_reasons_name_the_value_the_threshold_and_the_direction():
    assert verdict_reason(LOWER, 0.5, "unhealthy") == "0.5 ≥ unhealthy threshold 0.1 (lower is better)"
    assert verdict_reason(LOWER, 0.07, "degraded") == "0.07 ≥ degraded threshold 0.05 (lower is better)"
    assert verdict_reason(LOWER, 0.01, "healthy") == "0.01 < degraded threshold 0.05 (lower is better)"
    assert verdict_reason(HIGHER, 90, "unhealthy") == "90 ≤ unhealthy threshold 95 (higher is better)"
    assert verdict_reason(HIGHER, 99.5, "healthy") == "99.5 > degraded threshold 99 (higher is better)"
    assert verdict_reason(None, 1.0, "unknown") == "no thresholds configured for this metric"
    assert verdict_reason(LOWER, None, "unknown") == "no event for this deploy yet"


@pytest.mark.parametrize("latest,baseline,flag", [
    (0.012, 0.01, False),    # +20 %: exactly the tolerance is allowed
    (0.01201, 0.01, True),   # just beyond it
    (0.0119, 0.01, False),
    (0.005, 0.01, False),    # better
    (0.01, 0.0, True),       # any worsening of a zero baseline
    (0.0, 0.0, False),
    (-0.5, -1.0, True),      # negative baselines: worse by 50 % of |baseline|
    (-0.85, -1.0, False),
])
def test_regression_lower_is_better(latest, baseline, flag):
    assert regression(LOWER, latest, baseline)[0] is flag


@pytest.mark.parametrize("latest,baseline,flag", [
    (90.0, 100.0, False),    # -10 %: exactly the tolerance
    (89.99, 100.0, True),
    (120.0, 100.0, False),
])
def test_regression_higher_is_better(latest, baseline, flag):
    assert regression(HIGHER, latest, baseline)[0] is flag


def test_regression_reasons():
    assert regression(LOWER, 0.5, 0.02) == (True, "0.5 is 2400% worse than the baseline 0.02 (tolerance 20%)")
    assert regression(LOWER, 0.021, 0.02)[1] == "0.021 is within tolerance 20% of the baseline 0.02"
    assert regression(LOWER, 0.01, 0.02)[1] == "0.01 is no worse than the baseline 0.02 (tolerance 20%)"
    assert regression(LOWER, 0.5, None) == (
        False, "no baseline: no events before the deploy nor from a previous deploy to the target")
    assert regression(None, 0.5, 0.1)[0] is False
    assert regression(LOWER, 0.3, 0.0)[1] == "0.3 is worse by 0.3 than the baseline 0 (tolerance 20%)"


def test_change_is_absolute_and_relative():
    assert change(0.5, 0.25) == {"absolute": 0.25, "relative": 1.0}
    assert change(3.0, -2.0) == {"absolute": 5.0, "relative": 2.5}
    assert change(1.0, 0.0) == {"absolute": 1.0, "relative": None}
    assert change(None, 1.0) == change(1.0, None) == {"absolute": None, "relative": None}


def test_sparkline_scales_between_min_and_max():
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([0, 10]) == "▁█"
    assert sparkline([5, 5, 5]) == "▁▁▁"
    assert sparkline([]) == ""
    assert sparkline([0.02, 0.021, 0.5]) == "▁▁█"


def test_the_overall_verdict_is_the_worst():
    assert worst(["healthy", "unhealthy", "degraded"]) == "unhealthy"
    assert worst(["unknown", "healthy"]) == "healthy"
    assert worst([]) == "unknown"


def _load(tmp_path, body: str):
    path = tmp_path / "c.toml"
    path.write_text(body, encoding="utf-8")
    return load_settings({"PIPE_CONFIG": str(path), "PIPE_DATA_DIR": str(tmp_path)})


def test_rules_from_the_file_override_and_extend_the_defaults(tmp_path):
    s = _load(tmp_path, """
[monitor]
baseline_window = 5
auto_rollback = true
[monitor.rules.error_rate]
unhealthy = 0.2
[monitor.rules.throughput]
direction = "higher"
degraded = 100
unhealthy = 50
tolerance = 0.3
baseline_window = "2h"
""")
    err = s.metric_rules["error_rate"]
    assert (err.degraded, err.unhealthy, err.tolerance, err.baseline_window) == (0.05, 0.2, 0.2, 5)
    thr = s.metric_rules["throughput"]
    assert (thr.direction, thr.baseline_seconds) == ("higher", 7200)
    assert s.metric_rules["cpu"].baseline_window == 5
    assert s.auto_rollback.applies("anything", "feature")


def test_auto_rollback_by_target_and_template(tmp_path):
    s = _load(tmp_path, '[monitor.auto_rollback]\ntargets = ["production"]\ntemplates = ["hotfix"]\n')
    ar = s.auto_rollback
    assert ar.applies("production", "feature") and ar.applies("staging", "hotfix")
    assert not ar.applies("staging", "feature")
    assert not _load(tmp_path, "").auto_rollback.applies("production", "feature")


@pytest.mark.parametrize("body,message", [
    ('[monitor.rules.cpu]\ndirection = "sideways"', "monitor.rules.cpu.direction must be lower or higher"),
    ("[monitor.rules.cpu]\ntolerance = -0.1", "monitor.rules.cpu.tolerance must be a number ≥ 0"),
    ("[monitor.rules.cpu]\ntolerence = 0.1", "monitor.rules.cpu: unknown key tolerence"),
    ('[monitor.rules.cpu]\nunhealthy = "high"', "monitor.rules.cpu.unhealthy must be a finite number"),
    ("[monitor.rules.cpu]\ndegraded = 99\nunhealthy = 90", r"degraded \(99.0\) must be below unhealthy \(90.0\)"),
    ('[monitor.rules.cpu]\nbaseline_window = "soon"', "baseline_window must be a number of events or a duration"),
    ("[monitor.rules.cpu]\nbaseline_window = 0", "baseline_window must be 1..1000 events"),
    ('[monitor.rules.Bad-Name]\nunhealthy = 1', "metric names must match"),
    ("[monitor]\nalerts = true", "monitor: unknown key alerts"),
    ('[monitor]\nauto_rollback = "maybe"', "monitor.auto_rollback must be true or false"),
    ("[monitor.auto_rollback]\nenvs = []", "monitor.auto_rollback: unknown key envs"),
])
def test_rule_file_errors_are_one_clear_line(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message) as info:
        _load(tmp_path, body)
    assert "\n" not in str(info.value)


def test_the_docs_carry_the_dora_definitions_that_explain_prints():
    from pathlib import Path

    from chainpipe.core.services.dora import DEFINITIONS

    doc = (Path(__file__).parents[2] / "docs" / "monitoring.md").read_text(encoding="utf-8")
    missing = [name for name, text in DEFINITIONS.items() if text not in doc]
    assert missing == []
