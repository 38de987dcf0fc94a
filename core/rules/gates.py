"""Who may decide a gate, and when: one pure answer for the service, Slack's buttons and the
Action's await-gate.

A gate can be decided while its pipeline is running (the table's ``decide`` row) and at the
gate's stage. A person may decide it when the gate's policy lets them: listed as an approver or in
one of its groups (a policy that lists nobody is open to anyone), and not the pipeline's creator
when self-approval is forbidden. A service principal (CI, a bot) may decide only a gate whose
policy names it in ``service_approvers`` — how an automated check approves on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass

from chainpipe.core.errors import InvalidTransition, NotAllowed, PipeError
from chainpipe.core.machine import PIPELINE


@dataclass(frozen=True)
class Decision:
    """The answer to "may this gate be decided now (by this person)?"; ``refusal`` says why not."""

    refusal: PipeError | None = None

    @property
    def allowed(self) -> bool:
        return self.refusal is None

    def require(self) -> None:
        if self.refusal is not None:
            raise self.refusal


def can_decide(pipeline, gate, person: str | None, policy, *, service: str | None = None) -> Decision:
    """May ``person`` decide ``gate`` of ``pipeline`` now? With ``person=None``: may anyone?

    ``pipeline`` has ``id``, ``status``, ``current_stage``, ``created_by``; ``gate`` has ``name``,
    ``stage``; ``policy`` is a ``core.config.GatePolicy`` whose ``members`` are resolved.
    ``service`` is the name of a service principal (a CI or bot token) asking: it may decide only
    where the policy names it in ``service_approvers``; its own name is then its allow-list.
    """
    if not PIPELINE.allows(pipeline.status, "decide"):
        return Decision(InvalidTransition(PIPELINE.refusal(pipeline.status, "decide", obj_id=pipeline.id)))
    if pipeline.current_stage != gate.stage:
        return Decision(InvalidTransition(
            f"gate {gate.name} guards stage {gate.stage}, but pipeline {pipeline.id} is at stage "
            f"{pipeline.current_stage}; move it there first (pipe stage {pipeline.id} {gate.stage})"
        ))
    if person is None:
        return Decision()
    if service is not None:
        if service not in policy.service_approvers:
            return Decision(NotAllowed(
                f"service token {service} may not decide gate {gate.name}: service tokens record work, people "
                f"decide gates (a policy can name it in gates.{gate.name}.service_approvers)"
            ))
    elif not policy.open_to_anyone and person not in policy.members:
        names = ", ".join(list(policy.approvers) + [f"group {g}" for g in policy.groups])
        return Decision(NotAllowed(f"{person} may not decide gate {gate.name}; allowed: {names}"))
    if policy.forbid_self_approval and person == pipeline.created_by:
        return Decision(NotAllowed(
            f"self-approval is not allowed: {person} created pipeline {pipeline.id} and cannot decide {gate.name}"
        ))
    return Decision()


def gate_state(pipeline, gate) -> str:
    """Where a gate stands for someone waiting on it.

    ``approved`` / ``rejected`` as decided; ``open`` (pending and decidable now); ``waiting``
    (pending, not decidable yet: another stage, or the pipeline paused or failed); ``closed``
    (pending, and its pipeline is completed or cancelled, so it never will be).
    """
    if gate.status != "pending":
        return gate.status
    if pipeline.status in PIPELINE.terminal:
        return "closed"
    return "open" if can_decide(pipeline, gate, None, None).allowed else "waiting"
