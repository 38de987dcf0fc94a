"""Several processes writing to one pipeline at once: nothing lost, nothing duplicated, no
"database is locked" reaching anybody. Runs on SQLite (BEGIN IMMEDIATE) and PostgreSQL (row locks)."""

from __future__ import annotations

import pytest
from chainpipe.core.actor import Actor
from chainpipe.core.config import load_settings
from chainpipe.core.services.artifacts import list_artifacts
from chainpipe.core.services.monitoring import list_events
from chainpipe.core.services.queries import show_pipeline

from tests.service.helpers import race, running_pipeline

pytestmark = pytest.mark.slow  # one spawned process per worker

WORKERS = 6
ROUNDS = 8


def _worker(env: dict, pid: str, person: str, barrier, out) -> None:
    from chainpipe.core.services.artifacts import add_artifact
    from chainpipe.core.services.gates import approve_gate
    from chainpipe.core.services.monitoring import record_metric
    from chainpipe.core.uow import UnitOfWork

    settings = load_settings(env)
    actor = Actor(person)
    errors = []

    def call(fn, *args, **kwargs):
        try:
            with UnitOfWork(settings) as uow:
                fn(uow, actor, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - reported to the parent test
            errors.append(f"{fn.__name__}: {exc.__class__.__name__}: {exc}")

    barrier.wait()
    for i in range(ROUNDS):
        call(add_artifact, pid, name="build.zip", type="binary", uri=f"s3://b/{person}/{i}")
        call(record_metric, pid, metric="latency_ms", value=i)
        call(approve_gate, pid, "code-review")  # the same person twice or more: one record
    out.put(errors)


def test_parallel_writers_lose_and_duplicate_nothing(run, env, config_file, alice):
    # New artifact versions would re-open the gate; this test counts writes, so keep approvals.
    config_file(f"[gates.code-review]\nrequired_approvals = {WORKERS + 1}\nreopen_on_new_artifact = false\n")
    run.reload(env)
    pid = running_pipeline(run, alice)
    from chainpipe.core.services.pipelines import advance_stage

    run(advance_stage, alice, pid, "review")
    errors = race(_worker, [(env, pid, f"dev{n}") for n in range(WORKERS)])
    assert [e for batch in errors for e in batch] == []
    versions = sorted(a["version"] for a in run(list_artifacts, alice, pid, all_versions=True))
    assert versions == list(range(1, WORKERS * ROUNDS + 1))
    assert len(run(list_events, alice, pid, limit=1000)) == WORKERS * ROUNDS
    gate = run(show_pipeline, alice, pid)["gates"][0]
    assert sorted(a["person"] for a in gate["approvals"]) == sorted(f"dev{n}" for n in range(WORKERS))
    assert gate["status"] == "pending"


@pytest.mark.parametrize("workers", [4])
def test_two_approvers_at_the_same_instant_both_count(run, env, config_file, alice, workers):
    config_file(f"[gates.code-review]\nrequired_approvals = {workers}\n")
    run.reload(env)
    pid = running_pipeline(run, alice)
    from chainpipe.core.services.pipelines import advance_stage

    run(advance_stage, alice, pid, "review")
    results = race(_approve_once, [(env, pid, f"rev{n}") for n in range(workers)])
    assert sorted(results) == ["ok"] * workers
    gate = run(show_pipeline, alice, pid)["gates"][0]
    assert gate["status"] == "approved" and len(gate["approvals"]) == workers


def _approve_once(env, pid, person, barrier, out):
    from chainpipe.core.services.gates import approve_gate
    from chainpipe.core.uow import UnitOfWork

    barrier.wait()
    try:
        with UnitOfWork(load_settings(env)) as uow:
            approve_gate(uow, Actor(person), pid, "code-review")
        out.put("ok")
    except Exception as exc:  # noqa: BLE001
        out.put(f"{exc.__class__.__name__}: {exc}")
