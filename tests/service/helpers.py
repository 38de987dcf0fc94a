"""Small builders for service tests (plain functions over the `run` fixture)."""

from __future__ import annotations

from core.services.gates import approve_gate
from core.services.pipelines import advance_stage, create_pipeline, start_pipeline


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
    from core.config import load_settings  # noqa: F401  (settings come from the runner)

    for gate in run.settings.templates[template].gates:
        run(approve_gate, actor, pid, gate)
    return pid
