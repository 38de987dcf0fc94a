"""The V2 caps hold under real concurrency: separate processes (spawned, each with its own engine
and unit of work) activate pipelines of one owner, or queue runs of one pipeline, all at once."""

from __future__ import annotations

import pytest
from chainpipe.core.actor import Actor
from chainpipe.core.services import governance as gov
from chainpipe.core.services import governance_runs as runs

from tests.service.helpers import race

PROCESSES = 6
PER_PROCESS = 4
CAP = 5


def _attempt(env: dict, pipeline_ids: list[str], run_ids: list[str], barrier, results) -> None:
    """Child process: wait for every sibling, race on activations, wait again, race on new runs."""
    from chainpipe.core.config import load_settings
    from chainpipe.core.errors import CapExceeded, PipeError
    from chainpipe.core.uow import UnitOfWork

    settings = load_settings(env)
    actor = Actor("child", "cli")
    out = []
    for kind, ids in (("activate", pipeline_ids), ("run", run_ids)):
        barrier.wait(timeout=60)
        for item in ids:
            try:
                with UnitOfWork(settings) as uow:
                    if kind == "activate":
                        gov.activate_pipeline_v2(uow, actor, pipeline_id=item)
                    else:
                        runs.create_run_v2(uow, actor, run_id=item, pipeline_id="shared")
                out.append((kind, "ok"))
            except CapExceeded:
                out.append((kind, "cap"))
            except PipeError as exc:
                out.append((kind, f"error: {exc}"))
            except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test
                out.append((kind, f"crash: {exc.__class__.__name__}: {exc}"))
    results.put(out)


@pytest.mark.slow
def test_concurrent_processes_never_exceed_the_owner_cap_or_the_run_cap(run, alice, env):
    run(gov.set_max_active_pipelines_v2, alice, value=str(CAP))
    run(gov.set_max_pending_runs_v2, alice, value=str(CAP))
    run(gov.register_pipeline_v2, alice, pipeline_id="shared", owner="team-b")
    run(gov.activate_pipeline_v2, alice, pipeline_id="shared")
    pipeline_ids = [f"svc-{i}" for i in range(PROCESSES * PER_PROCESS)]
    run_ids = [f"run-{i}" for i in range(PROCESSES * PER_PROCESS)]
    for pid in pipeline_ids:
        run(gov.register_pipeline_v2, alice, pipeline_id=pid, owner="team-a")

    batches = race(_attempt, [(env, pipeline_ids[i::PROCESSES], run_ids[i::PROCESSES]) for i in range(PROCESSES)])
    outcomes = [row for batch in batches for row in batch]

    assert [o for _, o in outcomes if o not in ("ok", "cap")] == []  # no "database is locked", no crash
    assert sum(o == "ok" for k, o in outcomes if k == "activate") == CAP
    assert sum(o == "ok" for k, o in outcomes if k == "run") == CAP
    assert len(outcomes) == 2 * PROCESSES * PER_PROCESS
    team_a = run(runs.gov_stats_v2, alice, owner="team-a")
    assert team_a["pipelines"]["active"] == CAP and team_a["pipelines"]["pending"] == len(pipeline_ids) - CAP
    assert run(runs.gov_stats_v2, alice, owner="team-b")["runs"]["queued"] == CAP
