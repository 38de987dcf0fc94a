"""What a GitHub deployment protection rule is told: one pure answer from a pipeline's gates.

Every gate of the pipeline guards its deploys (a deploy is refused while any gate is not approved),
so the protected environment is

    approved    when every gate is approved — the comment names each gate's approvers
    rejected    when a gate is rejected — the comment names who and why — or the pipeline ended
                (completed or cancelled) with a gate still pending, so it never will be approved
    undecided   otherwise: GitHub keeps holding the job, no runner waits
"""

from __future__ import annotations

from dataclasses import dataclass

from chainpipe.core.machine import PIPELINE

COMMENT_LIMIT = 1000  # GitHub keeps the comment short; ours fits in one line anyway


@dataclass(frozen=True)
class Verdict:
    answer: str  # approved | rejected
    comment: str


def protection_verdict(pipeline, gates, approvers: dict[str, list[str]]) -> Verdict | None:
    """``pipeline`` has ``id`` and ``status``; ``gates`` have ``name``, ``status``, ``decided_by``,
    ``reason``; ``approvers`` maps a gate's name to the people whose approval counts now."""
    where = f"chainpipe pipeline {pipeline.id}"
    for gate in gates:
        if gate.status == "rejected":
            why = f": {gate.reason}" if gate.reason else ""
            return Verdict("rejected", _short(f"{gate.name} rejected by {gate.decided_by or 'someone'}{why} ({where})"))
    if all(gate.status == "approved" for gate in gates):
        named = "; ".join(f"{g.name} by {', '.join(approvers.get(g.name) or [g.decided_by or 'someone'])}"
                          for g in gates)
        return Verdict("approved", _short(f"approved in {where}: {named}" if named else
                                          f"approved: {where} has no gates"))
    if pipeline.status in PIPELINE.terminal:
        pending = ", ".join(g.name for g in gates if g.status == "pending")
        return Verdict("rejected", _short(f"{where} is {pipeline.status} with {pending} never approved"))
    return None


def _short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= COMMENT_LIMIT else line[: COMMENT_LIMIT - 1] + "…"
