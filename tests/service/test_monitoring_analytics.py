"""Baselines, regression, verdict events and metric-gated rollback on recorded monitor events."""

from __future__ import annotations

import json

import pytest
from chainpipe.core.models import AuditEvent, VerdictEvent
from chainpipe.core.services.deploys import record_deploy, rollback_deploy, show_deploy
from chainpipe.core.services.monitoring import monitor_status, record_metric
from chainpipe.core.uow import UnitOfWork
from sqlmodel import select

from tests.service.helpers import at_review_approved


def deployed(run, actor, target="production", template="feature", status="in-progress") -> tuple[str, str]:
    pid = at_review_approved(run, actor, template)
    return pid, run(record_deploy, actor, pid, strategy="canary", target=target, status=status)["id"]


def record(run, actor, pid, metric, *values, **kw):
    return [run(record_metric, actor, pid, metric=metric, value=v, **kw) for v in values]


def metric_row(run, actor, pid, metric, **kw):
    return next(m for m in run(monitor_status, actor, pid, **kw)["metrics"] if m["metric"] == metric)


def rows(run, model, *where):
    with UnitOfWork(run.settings) as uow:
        found = list(uow.session.exec(select(model).where(*where).order_by(model.seq)))
        uow.session.expunge_all()
        return found


def policy(run, env, config_file, text: str):
    config_file(text)
    run.reload(env)


# ---- baseline ------------------------------------------------------------------------------------

def test_the_baseline_is_the_events_recorded_before_the_deploy(run, alice, clock):
    pid = at_review_approved(run, alice)
    before = record(run, alice, pid, "error_rate", 0.01, 0.03)
    clock.advance(minutes=1)
    dep = run(record_deploy, alice, pid, strategy="canary", target="production")["id"]
    clock.advance(minutes=1)
    after = record(run, alice, pid, "error_rate", 0.5)
    m = metric_row(run, alice, pid, "error_rate")
    assert m["deploy_id"] == dep and m["latest"] == 0.5 and m["event_id"] == after[0]["id"]
    assert m["baseline"] == pytest.approx(0.02) and m["baseline_events"] == 2
    assert m["baseline_source"] == "pipeline" and m["baseline_deploy_id"] is None
    assert m["change"]["absolute"] == pytest.approx(0.48) and m["change"]["relative"] == pytest.approx(24.0)
    assert m["verdict"] == "unhealthy" and m["reason"] == "0.5 ≥ unhealthy threshold 0.1 (lower is better)"
    assert m["regression"] is True and "2400% worse than the baseline 0.02" in m["regression_reason"]
    assert m["trend"] == "▁▁█" and m["trend_values"] == [0.01, 0.03, 0.5]
    assert m["evidence"] == [after[0]["id"], before[1]["id"], before[0]["id"]]


def test_the_baseline_window_takes_the_last_n_events_before_the_deploy(run, env, config_file, alice, clock):
    policy(run, env, config_file, "[monitor.rules.latency_ms]\nbaseline_window = 2\n")
    pid = at_review_approved(run, alice)
    record(run, alice, pid, "latency_ms", 1, 2, 3, 10)
    clock.advance(minutes=1)
    run(record_deploy, alice, pid, strategy="canary", target="production")
    record(run, alice, pid, "latency_ms", 7, 8)
    m = metric_row(run, alice, pid, "latency_ms")
    assert (m["baseline"], m["baseline_events"], m["latest"], m["regression"]) == (6.5, 2, 8.0, True)


def test_a_duration_window_keeps_the_span_ending_at_the_last_event_before_the_deploy(
        run, env, config_file, alice, clock):
    policy(run, env, config_file, '[monitor.rules.latency_ms]\nbaseline_window = "1h"\n')
    pid = at_review_approved(run, alice)
    record(run, alice, pid, "latency_ms", 900)
    clock.advance(hours=3)
    record(run, alice, pid, "latency_ms", 100)
    clock.advance(minutes=30)
    record(run, alice, pid, "latency_ms", 120)
    clock.advance(minutes=5)
    run(record_deploy, alice, pid, strategy="canary", target="production")
    record(run, alice, pid, "latency_ms", 115)
    m = metric_row(run, alice, pid, "latency_ms")
    assert (m["baseline"], m["baseline_events"], m["regression"]) == (110.0, 2, False)


def test_without_events_before_the_deploy_the_previous_deploy_to_the_target_is_the_baseline(run, alice, clock):
    old_pid, old_dep = deployed(run, alice)
    record(run, alice, old_pid, "latency_ms", 100, 120)
    clock.advance(hours=1)
    bad_pid, bad_dep = deployed(run, alice)  # rolled back: its numbers are no baseline
    record(run, alice, bad_pid, "latency_ms", 5000)
    run(rollback_deploy, alice, bad_dep, reason="bad")
    clock.advance(hours=1)
    _, other = deployed(run, alice, target="staging")
    clock.advance(hours=1)
    pid, dep = deployed(run, alice)
    record(run, alice, pid, "latency_ms", 200)
    m = metric_row(run, alice, pid, "latency_ms")
    assert (m["baseline"], m["baseline_source"], m["baseline_deploy_id"]) == (110.0, "previous-deploy", old_dep)
    assert m["regression"] is True and m["verdict"] == "healthy"


def test_no_baseline_means_no_regression_and_says_why(run, alice):
    pid, _ = deployed(run, alice)
    record(run, alice, pid, "cpu", 50)
    m = metric_row(run, alice, pid, "cpu")
    assert m["baseline"] is None and m["regression"] is False and m["regression_reason"].startswith("no baseline")
    assert m["change"] == {"absolute": None, "relative": None}


def test_status_of_an_earlier_deploy_and_a_metric_without_a_rule(run, alice, clock):
    pid, first = deployed(run, alice)
    record(run, alice, pid, "error_rate", 0.2)
    record(run, alice, pid, "throughput", 1000)
    clock.advance(minutes=5)
    second = run(record_deploy, alice, pid, strategy="canary", target="production")["id"]
    record(run, alice, pid, "error_rate", 0.01)
    now = run(monitor_status, alice, pid)
    assert now["deploy_id"] == second and now["verdict"] == "healthy"
    by = {m["metric"]: m for m in now["metrics"]}
    assert by["error_rate"]["baseline"] == 0.2 and by["error_rate"]["regression"] is False
    assert by["throughput"]["latest"] is None and by["throughput"]["verdict"] == "unknown"
    then = run(monitor_status, alice, pid, deploy=first)
    assert then["deploy_id"] == first and then["verdict"] == "unhealthy"
    assert then["reason"] == "error_rate: 0.2 ≥ unhealthy threshold 0.1 (lower is better)"
    thr = next(m for m in then["metrics"] if m["metric"] == "throughput")
    assert (thr["verdict"], thr["regression"], thr["rule"]) == ("unknown", False, None)


# ---- verdict events ------------------------------------------------------------------------------

def test_verdict_events_are_recorded_only_when_the_verdict_changes(run, alice):
    pid, dep = deployed(run, alice)
    results = record(run, alice, pid, "error_rate", 0.01, 0.02, 0.07, 0.08, 0.5, 0.6, 0.01)
    assert [r["verdict"]["changed"] for r in results] == [True, False, True, False, True, False, True]
    events = rows(run, VerdictEvent, VerdictEvent.pipeline_id == pid)
    assert [(e.previous, e.verdict) for e in events] == [
        ("unknown", "healthy"), ("healthy", "degraded"), ("degraded", "unhealthy"), ("unhealthy", "healthy")]
    assert all(e.deploy_id == dep and e.metric == "error_rate" for e in events)
    assert json.loads(events[2].evidence)[0] == results[4]["id"]
    assert results[4]["verdict"]["verdict_event_id"] == events[2].id
    audits = rows(run, AuditEvent, AuditEvent.entity == "verdict")
    assert [(a.action, a.from_state, a.to_state, a.entity_id) for a in audits] == [
        (e.verdict, e.previous, e.verdict, e.id) for e in events]
    assert audits[2].pipeline_id == pid and "0.5 ≥ unhealthy threshold 0.1" in audits[2].reason
    assert json.loads(audits[2].data)["evidence"][0] == results[4]["id"]


def test_verdicts_are_kept_per_deploy_and_metric(run, alice, clock):
    pid, first = deployed(run, alice)
    record(run, alice, pid, "error_rate", 0.5)
    record(run, alice, pid, "cpu", 99)
    second = run(record_deploy, alice, pid, strategy="canary", target="production")["id"]
    assert record(run, alice, pid, "error_rate", 0.5)[0]["verdict"]["previous"] == "unknown"
    events = rows(run, VerdictEvent, VerdictEvent.pipeline_id == pid)
    assert [(e.deploy_id, e.metric, e.verdict) for e in events] == [
        (first, "error_rate", "unhealthy"), (first, "cpu", "unhealthy"), (second, "error_rate", "unhealthy")]


def test_metrics_without_thresholds_record_no_verdict(run, alice):
    pid, _ = deployed(run, alice)
    assert record(run, alice, pid, "throughput", 5)[0]["verdict"]["changed"] is False
    assert rows(run, VerdictEvent, VerdictEvent.pipeline_id == pid) == []


# ---- auto rollback -------------------------------------------------------------------------------

def test_without_the_policy_an_unhealthy_verdict_does_not_roll_back(run, alice):
    pid, dep = deployed(run, alice)
    assert record(run, alice, pid, "error_rate", 0.5)[0]["rollback"] is None
    assert run(show_deploy, alice, dep)["status"] == "in-progress"


def test_auto_rollback_fires_exactly_once_despite_repeated_breaches(run, env, config_file, alice):
    policy(run, env, config_file, "[monitor]\nauto_rollback = true\n")
    pid, dep = deployed(run, alice, status="succeeded")
    ok = record(run, alice, pid, "error_rate", 0.01)[0]
    assert ok["rollback"] is None
    first = record(run, alice, pid, "error_rate", 0.5)[0]
    assert first["rollback"]["status"] == "rolled-back" and first["rollback"]["changed"] is True
    later = record(run, alice, pid, "error_rate", 0.6, 0.01, 0.7)
    later += record(run, alice, pid, "latency_ms", 5000)
    assert [r["rollback"] for r in later] == [None] * 4
    d = run(show_deploy, alice, dep)
    assert d["status"] == "rolled-back" and d["rolled_back_by"] == "alice"
    assert d["rollback_reason"].startswith("auto_rollback: error_rate unhealthy (0.5 ≥ unhealthy threshold 0.1")
    assert d["rollback_reason"].endswith(f"evidence: {first['id']}")
    audits = rows(run, AuditEvent, AuditEvent.entity == "deploy", AuditEvent.action == "rollback")
    assert len(audits) == 1 and audits[0].from_state == "succeeded" and audits[0].to_state == "rolled-back"
    assert run(rollback_deploy, alice, dep)["changed"] is False


def test_a_manually_rolled_back_deploy_is_not_rolled_back_again(run, env, config_file, alice):
    policy(run, env, config_file, "[monitor]\nauto_rollback = true\n")
    pid, dep = deployed(run, alice)
    run(rollback_deploy, alice, dep, reason="by hand")
    assert record(run, alice, pid, "error_rate", 0.9)[0]["rollback"] is None
    assert run(show_deploy, alice, dep)["rollback_reason"] == "by hand"


@pytest.mark.parametrize("status", ["pending", "failed"])
def test_deploys_that_cannot_roll_back_are_left_alone(run, env, config_file, alice, status):
    policy(run, env, config_file, "[monitor]\nauto_rollback = true\n")
    pid, dep = deployed(run, alice, status=status)
    result = record(run, alice, pid, "error_rate", 0.9)[0]
    assert result["verdict"]["verdict"] == "unhealthy" and result["rollback"] is None
    assert run(show_deploy, alice, dep)["status"] == status


@pytest.mark.parametrize("target,template,rolled", [
    ("production", "feature", True),
    ("staging", "feature", False),
    ("staging", "bugfix", True),
])
def test_the_policy_applies_per_target_and_template(run, env, config_file, alice, target, template, rolled):
    policy(run, env, config_file,
           '[monitor.auto_rollback]\ntargets = ["production"]\ntemplates = ["bugfix"]\n')
    pid, dep = deployed(run, alice, target=target, template=template)
    result = record(run, alice, pid, "error_rate", 0.5)[0]
    assert (result["rollback"] is not None) is rolled
    assert run(show_deploy, alice, dep)["status"] == ("rolled-back" if rolled else "in-progress")


def test_a_degraded_verdict_never_rolls_back(run, env, config_file, alice):
    policy(run, env, config_file, "[monitor]\nauto_rollback = true\n")
    pid, dep = deployed(run, alice)
    assert record(run, alice, pid, "error_rate", 0.07)[0]["rollback"] is None
    assert run(show_deploy, alice, dep)["status"] == "in-progress"
