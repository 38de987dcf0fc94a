"""What an approval covered, and the separation of duties: pure rules over plain values.

An approval records the artifacts present when it was given (the latest version of each name,
``name@version sha256:…``). A new version of a covered artifact makes that approval stale, which
re-opens its gate (policy ``reopen_on_new_artifact``, on by default). An artifact first added after
the approval — a build made from the reviewed code — is "built after review", not unreviewed.
A deploy of a covered artifact must use the covered version.

Separation of duties (``[separation]``): ``distinct`` lists groups of gates one person may not
approve more than one of; ``deployer_not_approver`` means whoever records a deploy may not be one
of the pipeline's approvers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from chainpipe.core.errors import GateNotApproved, NotAllowed


@dataclass(frozen=True)
class Covered:
    name: str
    version: int
    digest: str | None

    def label(self) -> str:
        return f"{self.name}@{self.version}" + (f" {self.digest}" if self.digest else "")

    def as_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "digest": self.digest}


def covered_from(items: Iterable[Mapping]) -> list[Covered]:
    return [Covered(i["name"], int(i["version"]), i.get("digest")) for i in items]


def stale_by(covered: Iterable[Covered], name: str, version: int) -> Covered | None:
    """The covered entry a new ``name@version`` makes stale, if the approval covered that name."""
    return next((c for c in covered if c.name == name and c.version != version), None)


def reviewed_versions(covered_by_gate: Mapping[str, Iterable[Covered]]) -> dict[str, tuple[int, str]]:
    """name → (version, gate) over the approvals of the gates' current rounds."""
    out: dict[str, tuple[int, str]] = {}
    for gate, covered in covered_by_gate.items():
        for c in covered:
            out.setdefault(c.name, (c.version, gate))
    return out


def deploy_refusal(name: str, version: int, reviewed: Mapping[str, tuple[int, str]]) -> GateNotApproved | None:
    """A deploy of ``name@version`` when the reviewed version of ``name`` is another one."""
    if name in reviewed and reviewed[name][0] != version:
        approved, gate = reviewed[name]
        return GateNotApproved(
            f"{name}@{version} was not reviewed: gate {gate} approved {name}@{approved}; deploy "
            f"{name}@{approved}, or have {gate} approved again"
        )
    return None


def deploy_evidence(latest: Iterable[Covered], reviewed: Mapping[str, tuple[int, str]],
                    covered_by_gate: Mapping[str, Iterable[Covered]]) -> dict:
    """What a deploy record says about review: the covered artifacts, and those built after review."""
    seen, reviewed_items = set(), []
    for covered in covered_by_gate.values():
        for c in covered:
            if (c.name, c.version) not in seen:
                seen.add((c.name, c.version))
                reviewed_items.append(c.label())
    after = [c.label() for c in latest if c.name not in reviewed]
    return {"reviewed": reviewed_items, "built_after_review": after}


@dataclass(frozen=True)
class Separation:
    distinct: tuple[frozenset[str], ...] = ()
    deployer_not_approver: bool = False

    def as_dict(self) -> dict:
        return {"distinct": [sorted(g) for g in self.distinct], "deployer_not_approver": self.deployer_not_approver}


def approval_refusal(person: str, gate: str, approvers: Mapping[str, set[str]], sep: Separation) -> NotAllowed | None:
    """``person`` approving ``gate`` when they approved another gate of the same distinct group."""
    for group in sep.distinct:
        if gate not in group:
            continue
        for other in sorted(group - {gate}):
            if person in approvers.get(other, ()):
                names = " / ".join(sorted(group))
                return NotAllowed(f"separation of duties ([separation] distinct {names}): {person} approved "
                                  f"{other} and may not also decide {gate}")
    return None


def deployer_refusal(person: str, approvers: Mapping[str, set[str]], sep: Separation) -> NotAllowed | None:
    if not sep.deployer_not_approver:
        return None
    for gate, people in sorted(approvers.items()):
        if person in people:
            return NotAllowed(f"separation of duties ([separation] deployer_not_approver): {person} approved "
                              f"{gate} and may not record this pipeline's deploy")
    return None
