"""Monitor events: validated, attached to the latest deploy, append-only."""

from __future__ import annotations

import pytest
from chainpipe.core.errors import InvalidInput
from chainpipe.core.services.deploys import record_deploy
from chainpipe.core.services.monitoring import list_events, monitor_status, record_metric

from tests.service.helpers import at_review_approved, running_pipeline


def test_an_event_attaches_to_the_latest_deploy_by_default(run, alice):
    pid = at_review_approved(run, alice)
    run(record_deploy, alice, pid, strategy="canary", target="a")
    dep = run(record_deploy, alice, pid, strategy="canary", target="b")
    event = run(record_metric, alice, pid, metric="error_rate", value="0.02")
    assert event["deploy_id"] == dep["id"] and event["value"] == 0.02 and event["id"].startswith("mon-")


def test_an_event_before_any_deploy_has_no_deploy(run, alice):
    pid = running_pipeline(run, alice)
    assert run(record_metric, alice, pid, metric="cpu", value=40, unit="%")["deploy_id"] is None


@pytest.mark.parametrize("metric,value,problem", [
    ("Error-Rate", "1", "metric name must match"),
    ("9lives", "1", "metric name must match"),
    ("error_rate", "abc", "finite number"),
    ("error_rate", "nan", "finite number"),
    ("error_rate", "inf", "finite number"),
    ("error_rate", "-Infinity", "finite number"),
])
def test_bad_metric_names_and_values_are_refused(run, alice, metric, value, problem):
    pid = running_pipeline(run, alice)
    with pytest.raises(InvalidInput, match=problem):
        run(record_metric, alice, pid, metric=metric, value=value)
    assert run(list_events, alice, pid) == []


def test_events_accumulate_newest_first_and_are_never_replaced(run, alice):
    pid = running_pipeline(run, alice)
    for value in ("1", "2", "3"):
        run(record_metric, alice, pid, metric="latency_ms", value=value)
    assert [e["value"] for e in run(list_events, alice, pid)] == [3.0, 2.0, 1.0]
    status = run(monitor_status, alice, pid)
    assert [(m["metric"], m["latest"]) for m in status["metrics"]] == [("latency_ms", 3.0)]


def test_the_services_offer_no_way_to_edit_or_delete_events():
    import chainpipe.core.services.monitoring as monitoring

    assert not [n for n in dir(monitoring) if n.startswith(("delete", "update", "edit", "remove"))]
