"""DORA figures on a constructed history with known answers (times from a fixed clock).

    pipeline created → deploy succeeded           target       afterwards
 G  Oct 20 09:00    → Oct 20 10:00  (1 h)         production   (before the window)
 A  Nov 2 09:00     → Nov 2 10:00   (1 h)         production
 B  Nov 3 09:00     → Nov 3 12:00   (3 h)         production   unhealthy Nov 3 13:00, rolled back 14:00
 C  Nov 3 15:00     → Nov 4 15:00   (24 h)        production   healthy: restores B after 26 h
 D  Nov 5 09:00     → in progress Nov 5 10:00     production   rolled back from in-progress 11:00
 E  Nov 5 12:00     → Nov 5 17:00   (5 h)         production   restores D after 6 h
 F  Nov 6 09:00     → Nov 6 11:00   (2 h)         staging      unhealthy Nov 6 12:00, never restored
 X  Nov 7 09:00     → in progress, and one failed deploy: neither counts
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from chainpipe.core.errors import InvalidInput
from chainpipe.core.services.deploys import record_deploy, rollback_deploy, update_deploy
from chainpipe.core.services.monitoring import record_metric
from chainpipe.core.services.queries import pipeline_stats

from tests.service.helpers import at_review_approved

H = 3600


def at(clock, month, day, hour):
    clock.moment = datetime(2026, month, day, hour, tzinfo=timezone.utc)


def ship(run, alice, clock, created, succeeded, target="production"):
    at(clock, *created)
    pid = at_review_approved(run, alice)
    dep = run(record_deploy, alice, pid, strategy="rolling", target=target)["id"]
    if succeeded:
        at(clock, *succeeded)
        run(update_deploy, alice, dep, status="succeeded")
    return pid, dep


@pytest.fixture
def history(run, alice, clock):
    ship(run, alice, clock, (10, 20, 9), (10, 20, 10))
    ship(run, alice, clock, (11, 2, 9), (11, 2, 10))
    b, b_dep = ship(run, alice, clock, (11, 3, 9), (11, 3, 12))
    at(clock, 11, 3, 13)
    run(record_metric, alice, b, metric="error_rate", value=0.5)
    at(clock, 11, 3, 14)
    run(rollback_deploy, alice, b_dep, reason="errors")
    c, _ = ship(run, alice, clock, (11, 3, 15), (11, 4, 15))
    run(record_metric, alice, c, metric="error_rate", value=0.01)
    _, d_dep = ship(run, alice, clock, (11, 5, 9), None)
    at(clock, 11, 5, 11)
    run(rollback_deploy, alice, d_dep)
    ship(run, alice, clock, (11, 5, 12), (11, 5, 17))
    f, _ = ship(run, alice, clock, (11, 6, 9), (11, 6, 11), target="staging")
    at(clock, 11, 6, 12)
    run(record_metric, alice, f, metric="error_rate", value=0.9)
    x, _ = ship(run, alice, clock, (11, 7, 9), None)
    run(record_deploy, alice, x, strategy="rolling", target="production", status="failed")
    at(clock, 11, 11, 0)
    return run


def dora(run, alice, **kw):
    return run(pipeline_stats, alice, **kw)["dora"]


WINDOW = {"since": "2026-11-01T00:00:00Z", "until": "2026-11-11T00:00:00Z"}


def test_all_four_figures_over_a_window(history, alice):
    d = dora(history, alice, **WINDOW)
    assert (d["since"], d["until"], d["days"], d["target"]) == (WINDOW["since"], WINDOW["until"], 10.0, None)
    assert d["deployment_frequency"] == {"per_day": 0.5, "succeeded_deploys": 5}
    assert d["lead_time"] == {"median_seconds": 3 * H, "p90_seconds": 24 * H, "deploys": 5}
    assert d["change_failure_rate"] == {"rate": 0.5, "failures": 3, "deployments": 6}
    assert d["time_to_restore"] == {"median_seconds": 6 * H, "restored": 2, "unrestored": 1}


def test_per_target(history, alice):
    prod = dora(history, alice, target="production", **WINDOW)
    assert prod["deployment_frequency"] == {"per_day": 0.4, "succeeded_deploys": 4}
    assert prod["lead_time"] == {"median_seconds": 3 * H, "p90_seconds": 24 * H, "deploys": 4}
    assert prod["change_failure_rate"] == {"rate": 0.4, "failures": 2, "deployments": 5}
    assert prod["time_to_restore"] == {"median_seconds": 6 * H, "restored": 2, "unrestored": 0}
    staging = dora(history, alice, target="staging", **WINDOW)
    assert staging["lead_time"] == {"median_seconds": 2 * H, "p90_seconds": 2 * H, "deploys": 1}
    assert staging["change_failure_rate"] == {"rate": 1.0, "failures": 1, "deployments": 1}
    assert staging["time_to_restore"] == {"median_seconds": None, "restored": 0, "unrestored": 1}
    nowhere = dora(history, alice, target="mars", **WINDOW)
    assert nowhere["change_failure_rate"] == {"rate": None, "failures": 0, "deployments": 0}
    assert nowhere["lead_time"]["median_seconds"] is None


def test_since_and_until_narrow_the_window(history, alice):
    d = dora(history, alice, since="2026-11-05T00:00:00Z", until="2026-11-11T00:00:00+00:00")
    assert d["deployment_frequency"] == {"per_day": pytest.approx(2 / 6, abs=1e-3), "succeeded_deploys": 2}
    assert d["change_failure_rate"] == {"rate": pytest.approx(2 / 3, abs=1e-3), "failures": 2, "deployments": 3}
    assert d["time_to_restore"]["median_seconds"] == 6 * H
    early = dora(history, alice, since="2026-11-03T00:00:00Z", until="2026-11-03T13:30:00Z")
    assert early["deployment_frequency"]["succeeded_deploys"] == 1  # B, later rolled back
    assert early["change_failure_rate"] == {"rate": 1.0, "failures": 1, "deployments": 1}


def test_the_default_window_is_the_30_days_up_to_now(history, alice):
    d = dora(history, alice)
    assert (d["since"], d["until"]) == ("2026-10-12T00:00:00Z", "2026-11-11T00:00:00Z")
    assert d["deployment_frequency"]["succeeded_deploys"] == 6


def test_explain_adds_the_definitions_and_the_other_stats_keys_stay(history, alice):
    stats = history(pipeline_stats, alice, explain=True)
    assert set(stats) >= {"pipelines", "deploys", "gate_decisions", "artifacts", "monitor_events", "dora"}
    assert set(stats["dora"]["definitions"]) == {
        "window", "deployment_frequency", "lead_time", "change_failure_rate", "time_to_restore"}
    assert "definitions" not in history(pipeline_stats, alice)["dora"]


@pytest.mark.parametrize("kw,message", [
    ({"since": "yesterday"}, "not an ISO-8601 time"),
    ({"since": "2026-11-05", "until": "2026-11-01"}, "must be before --until"),
])
def test_bad_windows_are_refused(run, alice, kw, message):
    with pytest.raises(InvalidInput, match=message):
        run(pipeline_stats, alice, **kw)
