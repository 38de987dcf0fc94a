"""Every state machine of chainpipe, as data, and the one function that moves a status.

Each table is a list of rows ``(from, trigger, to)``. `fire` is the only code that assigns a
status: it looks the row up, or raises ``InvalidTransition`` naming the states the trigger is
allowed from and the way out (``…; allowed from: running; resume it first: pipe resume pipe-…``).
Rows whose target is ``STAY`` are preconditions: the trigger (deploy, decide, add-artifact, touch…)
is allowed from that status and leaves it as it is, so "may this happen now" has one answer too.
Guards that need more than the status (gates approved, caps, policies) live in core/rules and the
services and run before `fire`, so a refused request changes nothing.

    pipeline   created → running ⇄ paused; running → completed; running/paused → failed → running;
               created/running/paused/failed → cancelled          (completed, cancelled terminal)
               stay: stage, deploy, decide (a gate) from running; add-artifact from any open status
    stage      pending → running → completed; pending → skipped; running → failed → running;
               rework re-opens running/completed/skipped stages to pending
    gate       pending → approved | rejected; approved/rejected → pending (re-open)
    deploy     pending → in-progress → succeeded | failed; pending → succeeded | failed;
               in-progress/succeeded → rolled-back                 (failed, rolled-back terminal)
    pipeline_v2  pending → active ⇄ paused; pending/active/paused → archived (terminal)
                 stay: touch from pending/active/paused; run (create or start a run) from active
    run_v2       queued → running | cancelled; running → completed | failed | cancelled
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chainpipe.core.errors import InvalidTransition

STAY = "="  # a row's target: the trigger is allowed from here and leaves the status unchanged


@dataclass(frozen=True)
class Machine:
    noun: str
    states: tuple[str, ...]
    initial: str
    rows: tuple[tuple[str, str, str], ...]
    # How a trigger reads in "can't <phrase> a <noun>" when it is not a plain verb.
    phrases: dict[str, str] = field(default_factory=dict)
    # Ways out: triggers worth suggesting, with the command that fires each
    # ("resume it first: pipe resume <id>").
    ways_out: dict[str, str] = field(default_factory=dict)

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

    def allows(self, state: str, trigger: str) -> bool:
        return self.target(state, trigger) is not None

    def way_out(self, state: str, trigger: str) -> str | None:
        """The first move from ``state`` (not into a terminal state) after which ``trigger`` is allowed."""
        for src, trig, dst in self.rows:
            if src == state and trig in self.ways_out and self.allows(dst, trigger):
                return trig
        return None

    def refusal(self, state: str, trigger: str, *, obj_id: str | None = None, label: str | None = None) -> str:
        """The one message for a trigger that may not fire from ``state``."""
        allowed = ", ".join(self.allowed_from(trigger)) or "nowhere"
        message = (f"can't {self.phrases.get(trigger, trigger)} a {label or self.noun} that is {state}; "
                   f"allowed from: {allowed}")
        move = self.way_out(state, trigger)
        if move is not None:
            return f"{message}; {move} it first: pipe {self.ways_out[move]}" + (f" {obj_id}" if obj_id else "")
        if state in self.terminal:
            return f"{message}; {state} is final"
        return message


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
            out.append((s, trig, s if dst == STAY else dst))
    return tuple(out)


OPEN_PIPELINE = ("created", "running", "paused", "failed")


PIPELINE = Machine(
    "pipeline",
    ("created", "running", "paused", "completed", "failed", "cancelled"),
    "created",
    _rows(
        ("created", "start", "running"),
        ("running", "pause", "paused"),
        ("paused", "resume", "running"),
        ("running", "complete", "completed"),
        (("running", "paused"), "fail", "failed"),
        ("failed", "retry", "running"),
        (OPEN_PIPELINE, "cancel", "cancelled"),
        ("running", "stage", STAY),
        ("running", "deploy", STAY),
        ("running", "decide", STAY),
        (OPEN_PIPELINE, "add-artifact", STAY),
    ),
    phrases={"stage": "change the stage of", "deploy": "record a deploy of", "decide": "decide a gate of",
             "add-artifact": "add an artifact to"},
    ways_out={"start": "start", "resume": "resume", "retry": "retry"},
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
        # a pending gate whose partial approvals went stale starts a new round
        ("pending", "reopen", STAY),
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
    phrases={"restart": "move back to pending", "succeed": "mark succeeded"},
)

PIPELINE_V2 = Machine(
    "governed pipeline",
    ("pending", "active", "paused", "archived"),
    "pending",
    _rows(
        (("pending", "paused"), "activate", "active"),
        ("active", "pause", "paused"),
        (("pending", "active", "paused"), "archive", "archived"),
        (("pending", "active", "paused"), "touch", STAY),
        ("active", "run", STAY),
    ),
    phrases={"run": "create or start a run of"},
    ways_out={"activate": "activate-pipeline-v2"},
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


def check(machine: Machine, obj, trigger: str, *, label: str | None = None) -> str:
    """The status ``trigger`` would move ``obj`` to; raise InvalidTransition (with the way out) if none."""
    dst = machine.target(obj.status, trigger)
    if dst is None:
        raise InvalidTransition(machine.refusal(obj.status, trigger, obj_id=getattr(obj, "id", None), label=label))
    return dst


def fire(machine: Machine, obj, trigger: str, *, label: str | None = None) -> tuple[str, str]:
    """Move ``obj.status`` along ``trigger``; return ``(from, to)`` or raise InvalidTransition."""
    src = obj.status
    obj.status = check(machine, obj, trigger, label=label)
    return src, obj.status
