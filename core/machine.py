"""Every state machine of chainpipe, as data, and the one function that moves a status.

Each table is a list of rows ``(from, trigger, to)``. `fire` is the only code that assigns a
status: it looks the row up, or raises ``InvalidTransition`` with the states the trigger is allowed
from. Guards that need more than the status (gates approved, caps) live in the services and run
before `fire`, so a refused request changes nothing.

    pipeline   created → running ⇄ paused; running → completed; running/paused → failed → running;
               created/running/paused/failed → cancelled          (completed, cancelled terminal)
    stage      pending → running → completed; pending → skipped; running → failed → running;
               rework re-opens running/completed/skipped stages to pending
    gate       pending → approved | rejected; approved/rejected → pending (re-open)
    deploy     pending → in-progress → succeeded | failed; pending → succeeded | failed;
               in-progress/succeeded → rolled-back                 (failed, rolled-back terminal)
    pipeline_v2  pending → active ⇄ paused; pending/active/paused → archived (terminal)
    run_v2       queued → running | cancelled; running → completed | failed | cancelled
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import InvalidTransition


@dataclass(frozen=True)
class Machine:
    noun: str
    states: tuple[str, ...]
    initial: str
    rows: tuple[tuple[str, str, str], ...]

    def __post_init__(self) -> None:
        check_shape(self)

    @property
    def terminal(self) -> frozenset[str]:
        return frozenset(s for s in self.states if not any(r[0] == s for r in self.rows))

    def target(self, state: str, trigger: str) -> str | None:
        for src, trig, dst in self.rows:
            if src == state and trig == trigger:
                return dst
        return None

    def allowed_from(self, trigger: str) -> list[str]:
        return [src for src, trig, _ in self.rows if trig == trigger]

    def triggers(self) -> list[str]:
        return list(dict.fromkeys(trig for _, trig, _ in self.rows))


def check_shape(m: Machine) -> None:
    """Refuse a malformed table when the module loads: unknown states, duplicates, unreachable states."""
    known = set(m.states)
    if m.initial not in known:
        raise ValueError(f"{m.noun}: initial state {m.initial} is not a state")
    seen = set()
    for src, trig, dst in m.rows:
        if src not in known or dst not in known:
            raise ValueError(f"{m.noun}: row {(src, trig, dst)} names an unknown state")
        if (src, trig) in seen:
            raise ValueError(f"{m.noun}: two rows for {trig} from {src}")
        seen.add((src, trig))
    reachable, frontier = {m.initial}, [m.initial]
    while frontier:
        state = frontier.pop()
        for src, _, dst in m.rows:
            if src == state and dst not in reachable:
                reachable.add(dst)
                frontier.append(dst)
    if reachable != known:
        raise ValueError(f"{m.noun}: unreachable states {sorted(known - reachable)}")


def _rows(*spec: tuple[str | tuple[str, ...], str, str]) -> tuple[tuple[str, str, str], ...]:
    out = []
    for src, trig, dst in spec:
        for s in (src,) if isinstance(src, str) else src:
            out.append((s, trig, dst))
    return tuple(out)


PIPELINE = Machine(
    "pipeline",
    ("created", "running", "paused", "completed", "failed", "cancelled"),
    "created",
    _rows(
        ("created", "start", "running"),
        ("running", "pause", "paused"),
        ("paused", "resume", "running"),
        ("running", "stage", "running"),
        ("running", "complete", "completed"),
        (("running", "paused"), "fail", "failed"),
        ("failed", "retry", "running"),
        (("created", "running", "paused", "failed"), "cancel", "cancelled"),
    ),
)

STAGE = Machine(
    "stage",
    ("pending", "running", "completed", "failed", "skipped"),
    "pending",
    _rows(
        (("pending", "completed", "skipped"), "enter", "running"),
        ("running", "complete", "completed"),
        ("pending", "skip", "skipped"),
        ("running", "fail", "failed"),
        ("failed", "retry", "running"),
        (("running", "completed", "skipped"), "reopen", "pending"),
    ),
)

GATE = Machine(
    "gate",
    ("pending", "approved", "rejected"),
    "pending",
    _rows(
        ("pending", "approve", "approved"),
        ("pending", "reject", "rejected"),
        (("approved", "rejected"), "reopen", "pending"),
    ),
)

DEPLOY = Machine(
    "deploy",
    ("pending", "in-progress", "succeeded", "failed", "rolled-back"),
    "pending",
    _rows(
        ("pending", "start", "in-progress"),
        (("pending", "in-progress"), "succeed", "succeeded"),
        (("pending", "in-progress"), "fail", "failed"),
        (("in-progress", "succeeded"), "rollback", "rolled-back"),
    ),
)

PIPELINE_V2 = Machine(
    "governed pipeline",
    ("pending", "active", "paused", "archived"),
    "pending",
    _rows(
        (("pending", "paused"), "activate", "active"),
        ("active", "pause", "paused"),
        (("pending", "active", "paused"), "archive", "archived"),
    ),
)

RUN_V2 = Machine(
    "run",
    ("queued", "running", "completed", "failed", "cancelled"),
    "queued",
    _rows(
        ("queued", "start", "running"),
        ("running", "complete", "completed"),
        ("running", "fail", "failed"),
        (("queued", "running"), "cancel", "cancelled"),
    ),
)

MACHINES: dict[str, Machine] = {
    m.noun: m for m in (PIPELINE, STAGE, GATE, DEPLOY, PIPELINE_V2, RUN_V2)
}


def fire(machine: Machine, obj, trigger: str, *, label: str | None = None) -> tuple[str, str]:
    """Move ``obj.status`` along ``trigger``; return ``(from, to)`` or raise InvalidTransition."""
    src = obj.status
    dst = machine.target(src, trigger)
    if dst is None:
        allowed = machine.allowed_from(trigger)
        noun = label or machine.noun
        raise InvalidTransition(
            f"can't {trigger} a {noun} that is {src}; allowed from: {', '.join(allowed) or 'nowhere'}"
        )
    obj.status = dst
    return src, dst
