"""The monitoring and stats commands through `pipe` (in process): --json shapes, the terminal view,
and the seed walkthrough plus a breach on the default data directory."""

from __future__ import annotations

import pytest
from chainpipe.core.actor import Actor
from chainpipe.core.config import load_settings
from chainpipe.core.services.deploys import record_deploy
from chainpipe.core.services.dora import DEFINITIONS
from chainpipe.core.services.monitoring import record_metric
from chainpipe.core.services.queries import audit_log
from chainpipe.core.uow import UnitOfWork

from tests.service.helpers import at_review_approved

STATUS_KEYS = {"pipeline_id", "deploy_id", "deploy_status", "target", "verdict", "reason", "regression", "metrics"}
METRIC_KEYS = {
    "metric", "unit", "latest", "event_id", "deploy_id", "recorded_at", "baseline", "baseline_events",
    "baseline_source", "baseline_deploy_id", "change", "verdict", "reason", "regression", "regression_reason",
    "trend", "trend_values", "rule", "evidence",
}
DORA_KEYS = {"since", "until", "target", "days", "deployment_frequency", "lead_time", "change_failure_rate",
             "time_to_restore"}


class Runner:
    """The service-test `run` interface over settings loaded from the CLI's environment."""

    def __init__(self, env):
        self.settings = load_settings(env)

    def __call__(self, fn, actor, *args, **kwargs):
        with UnitOfWork(self.settings) as uow:
            return fn(uow, actor, *args, **kwargs)


@pytest.fixture
def deployed(env, config_file):
    config_file('[monitor.auto_rollback]\ntargets = ["production"]\n')
    run, alice = Runner(env), Actor("alice")
    pid = at_review_approved(run, alice)
    run(record_metric, alice, pid, metric="error_rate", value=0.02)
    dep = run(record_deploy, alice, pid, strategy="canary", target="production")["id"]
    return pid, dep


def test_json_shapes_and_the_terminal_view(pipe, deployed):
    pid, dep = deployed
    out = pipe.ok("monitor-record", pid, "--metric", "error_rate", "--value", "0.07")
    assert "verdict: degraded (was unknown): 0.07 ≥ degraded threshold 0.05 (lower is better)" in out
    out = pipe.ok("monitor-status", pid)
    assert out.startswith("overall: degraded  (error_rate: 0.07 ≥ degraded threshold 0.05")
    assert "▁█" in out and "+250%" in out and "regression yes: 0.07 is 250% worse than the baseline 0.02" in out
    rec = pipe.json("monitor-record", pid, "--metric", "error_rate", "--value", "0.5")
    assert rec["deploy_id"] == dep and set(rec["verdict"]) == {
        "metric", "verdict", "previous", "changed", "reason", "regression", "regression_reason", "baseline",
        "verdict_event_id"}
    assert (rec["verdict"]["verdict"], rec["verdict"]["previous"], rec["rollback"]["status"]) == (
        "unhealthy", "degraded", "rolled-back")
    status = pipe.json("monitor-status", pid, "--deploy", dep)
    assert set(status) == STATUS_KEYS and status["verdict"] == "unhealthy"
    [m] = status["metrics"]
    assert set(m) == METRIC_KEYS and set(m["change"]) == {"absolute", "relative"}
    assert (m["latest"], m["baseline"], m["regression"], m["trend"]) == (0.5, 0.02, True, "▁▂█")
    stats = pipe.json("stats", "--target", "production", "--since", "2020-01-01T00:00:00Z")
    assert set(stats["dora"]) == DORA_KEYS and stats["dora"]["target"] == "production"
    assert stats["dora"]["change_failure_rate"] == {"rate": 1.0, "failures": 1, "deployments": 1}
    out = pipe.ok("stats", "--explain")
    assert "DORA " in out and DEFINITIONS["time_to_restore"] in out and DEFINITIONS["lead_time"] in out


def test_seed_walkthrough_plus_a_breach_rolls_back_once(pipe_with, tmp_path):
    env = {"PIPE_DATA_DIR": str(tmp_path / "data"), "PIPE_CONFIG": str(tmp_path / "config.toml"),
           "HOME": str(tmp_path), "PIPE_ACTOR": "alice"}  # no PIPE_DATABASE_URL: the data directory's file
    (tmp_path / "config.toml").write_text('[monitor.auto_rollback]\ntargets = ["production"]\n', encoding="utf-8")
    (tmp_path / "build.zip").write_bytes(b"chainpipe demo build\n")
    pipe = pipe_with(env)
    pid = pipe.json("create", "--name", "用户认证", "--template", "feature")["id"]
    for step in (["start", pid], ["stage", pid, "code"], ["stage", pid, "review"],
                 ["approve", pid, "--gate", "code-review"],
                 ["artifact-add", pid, "--name", "build.zip", "--type", "binary", "--path",
                  str(tmp_path / "build.zip")]):
        pipe.ok(*step)
    dep = pipe.json("deploy", pid, "--strategy", "canary", "--target", "production")["id"]
    pipe.ok("monitor-record", pid, "--metric", "error_rate", "--value", "0.02")
    out = pipe.ok("monitor-record", pid, "--metric", "error_rate", "--value", "0.5")
    assert "verdict: unhealthy (was healthy): 0.5 ≥ unhealthy threshold 0.1 (lower is better)" in out
    assert f"rolled back {dep} → production: auto_rollback: error_rate unhealthy" in out
    again = pipe.json("monitor-record", pid, "--metric", "error_rate", "--value", "0.6")
    assert again["verdict"]["verdict"] == "unhealthy" and again["rollback"] is None
    assert pipe.json("rollback", dep)["changed"] is False
    assert (tmp_path / "data" / "pipe.db").is_file()
    audit = Runner(env)(audit_log, Actor("alice"), pid, limit=100)
    assert [a["action"] for a in audit if a["entity"] == "deploy"].count("rollback") == 1
    assert [(a["from"], a["to"]) for a in audit if a["entity"] == "verdict"] == [
        ("healthy", "unhealthy"), ("unknown", "healthy")]
    dora = pipe.json("stats")["dora"]
    assert dora["change_failure_rate"] == {"rate": 1.0, "failures": 1, "deployments": 1}
    assert {"deployment_frequency", "lead_time", "change_failure_rate", "time_to_restore"} <= set(dora)
