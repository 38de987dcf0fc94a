"""Claiming outbox events for one pipeline: a workflow run drains its own pipeline's events and
leaves every other pipeline's to other claimants."""

from __future__ import annotations

from chainpipe.core.services import notifications as outbox
from chainpipe.core.uow import UnitOfWork

from tests.service.helpers import running_pipeline


def claim(settings, **kw) -> list[dict]:
    with UnitOfWork(settings) as uow:
        return outbox.claim_events(uow, "github", limit=100, **kw)


def test_a_claim_for_one_pipeline_takes_only_that_pipelines_events(run, settings, alice):
    mine, theirs = running_pipeline(run, alice), running_pipeline(run, alice)
    claimed = claim(settings, pipeline_id=mine)
    assert claimed and {e["pipeline_id"] for e in claimed} == {mine}
    assert claim(settings, pipeline_id=mine) == []
    rest = claim(settings)
    assert rest and {e["pipeline_id"] for e in rest} == {theirs}


def test_a_claim_for_an_unknown_pipeline_takes_nothing(run, settings, alice):
    running_pipeline(run, alice)
    assert claim(settings, pipeline_id="pipe-000000000000") == []
    assert len(claim(settings)) > 0  # nothing was claimed by the empty claim
