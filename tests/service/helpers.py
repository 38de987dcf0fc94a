"""Small builders for service tests (plain functions over the `run` fixture)."""

from __future__ import annotations

from chainpipe.core.services.gates import approve_gate
from chainpipe.core.services.pipelines import advance_stage, create_pipeline, start_pipeline


def new_pipeline(run, actor, template: str = "feature", name: str = "auth") -> str:
    return run(create_pipeline, actor, name=name, template=template)["id"]


def running_pipeline(run, actor, template: str = "feature") -> str:
    pid = new_pipeline(run, actor, template)
    run(start_pipeline, actor, pid)
    return pid


def at_review_approved(run, actor, template: str = "feature") -> str:
    """A running pipeline at its review stage with every gate approved (ready to deploy)."""
    pid = running_pipeline(run, actor, template)
    run(advance_stage, actor, pid, "review")
    for gate in run.settings.templates[template].gates:
        run(approve_gate, actor, pid, gate)
    return pid


# What every racing process needs, imported once by the fork server rather than by each process.
RACE_PRELOAD = ["pytest", "sqlmodel", "chainpipe.core.config", "chainpipe.core.uow", "chainpipe.core.services.gates",
                "chainpipe.core.services.monitoring"]


def race(target, arg_lists: list[tuple]) -> list:
    """Run ``target(*args, barrier, out)`` in one process per ``args``, all released at once by the
    barrier; return what each process put on ``out`` (in arrival order).

    The processes are forked from a fork server (single-threaded, no database connection of its own):
    each has its own engine and connections as a spawned one would, without a second of imports
    each before it can race."""
    import multiprocessing as mp

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(RACE_PRELOAD)
    barrier, out = ctx.Barrier(len(arg_lists)), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, barrier, out)) for args in arg_lists]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * len(procs)
    return results
