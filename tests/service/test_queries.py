"""show, list, export (json and markdown), stats."""

from __future__ import annotations

import pytest
from chainpipe.core.errors import InvalidInput
from chainpipe.core.services.deploys import record_deploy, rollback_deploy
from chainpipe.core.services.monitoring import record_metric
from chainpipe.core.services.queries import export_pipeline, list_pipelines, pipeline_stats

from tests.service.helpers import at_review_approved, new_pipeline


def test_list_is_newest_first_with_filters_and_limit(run, alice):
    ids = [new_pipeline(run, alice, t) for t in ("feature", "bugfix", "feature")]
    assert [p["id"] for p in run(list_pipelines, alice)] == ids[::-1]
    assert [p["id"] for p in run(list_pipelines, alice, template="bugfix")] == [ids[1]]
    assert [p["id"] for p in run(list_pipelines, alice, limit=1)] == [ids[2]]
    assert run(list_pipelines, alice, status="running") == []
    with pytest.raises(InvalidInput, match="unknown status: done"):
        run(list_pipelines, alice, status="done")
    with pytest.raises(InvalidInput, match="--limit"):
        run(list_pipelines, alice, limit=0)


def test_show_lists_the_latest_value_of_each_metric(run, alice):
    from chainpipe.core.services.queries import show_pipeline

    pid = at_review_approved(run, alice)
    for metric, value in (("cpu", 10), ("error_rate", 0.5), ("cpu", 30)):
        run(record_metric, alice, pid, metric=metric, value=value)
    assert [(m["metric"], m["value"]) for m in run(show_pipeline, alice, pid)["metrics"]] == [
        ("cpu", 30.0), ("error_rate", 0.5)]


def test_export_holds_everything_about_a_pipeline(run, alice):
    pid = at_review_approved(run, alice)
    dep = run(record_deploy, alice, pid, strategy="canary", target="production")
    run(record_metric, alice, pid, metric="error_rate", value=0.02)
    run(rollback_deploy, alice, dep["id"], reason="spike")
    data = run(export_pipeline, alice, pid)
    assert set(data) >= {"stages", "gates", "artifacts", "deploys", "monitor_events", "audit"}
    assert data["gates"][0]["decisions"][0]["decision"] == "approved"
    assert data["deploys"][0]["status"] == "rolled-back" and data["monitor_events"][0]["value"] == 0.02
    md = run(export_pipeline, alice, pid, format="markdown")
    assert md.startswith("# Pipeline auth\n") and "| code-review | review | approved |" in md
    assert "## Deploys" in md and "rolled-back" in md
    with pytest.raises(InvalidInput, match="unknown format: pdf"):
        run(export_pipeline, alice, pid, format="pdf")


def test_stats_counts_by_status_template_strategy_and_decision(run, alice):
    pid = at_review_approved(run, alice)
    run(record_deploy, alice, pid, strategy="canary", target="production")
    new_pipeline(run, alice, "bugfix")
    stats = run(pipeline_stats, alice)
    assert stats["pipelines"]["total"] == 2
    assert stats["pipelines"]["by_status"] == {"created": 1, "running": 1, "paused": 0, "completed": 0,
                                               "failed": 0, "cancelled": 0}
    assert stats["pipelines"]["by_template"]["bugfix"] == 1
    assert stats["deploys"]["by_strategy"]["canary"] == 1 and stats["deploys"]["by_strategy"]["shadow"] == 0
    assert stats["gate_decisions"] == {"approved": 1, "rejected": 0}
