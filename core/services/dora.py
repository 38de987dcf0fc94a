"""The four DORA figures, from the aggregates the write paths keep (core/aggregates.py).

``DEFINITIONS`` is the one text of what each figure means: ``pipe stats --explain`` prints it and
docs/monitoring.md carries it verbatim (a test keeps them equal). A window's figures come from two
reads whatever the history: the day rows of its whole UTC days (counts, and lead and restore times
sorted) and the deployments of its two partial days; the percentiles are ranked over the merged
times (nearest rank), so they are exact.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from chainpipe.core.aggregates import ALL_TARGETS, DAYS, FACTS, refresh
from chainpipe.core.clock import iso, parse_iso
from chainpipe.core.errors import InvalidInput
from chainpipe.core.uow import UnitOfWork
from sqlalchemy import and_, bindparam, or_, select

DEFAULT_DAYS = 30
DEFINITIONS: dict[str, str] = {
    "window": (
        "The window is [--since, --until) in UTC; by default the 30 days up to now. --target keeps the "
        "deploys to that target only."
    ),
    "deployment_frequency": (
        "Deployment frequency: deploys that reached `succeeded` within the window (including ones "
        "rolled back later), divided by the window's length in days."
    ),
    "lead_time": (
        "Lead time for changes: from the pipeline's creation to its deploy reaching `succeeded`, over "
        "the deploys that succeeded within the window; the median and the 90th percentile (nearest "
        "rank), in seconds."
    ),
    "change_failure_rate": (
        "Change-failure rate: failed deployments divided by deployments. Deployments are the deploys "
        "that succeeded within the window plus the deploys rolled back from `in-progress` within it; "
        "a deployment failed when it was rolled back (by hand or by auto_rollback) or judged "
        "`unhealthy` by a metric. Deploys still pending or in progress, and deploys that failed "
        "before going out, are not counted."
    ),
    "time_to_restore": (
        "Time to restore: for each failed deployment of the window, from the failure (its first "
        "`unhealthy` verdict or its rollback, whichever came first) to the next healthy deploy to "
        "the same target: the first deploy created after the failed one that is `succeeded`, "
        "finished after the failure and never judged unhealthy. The median (nearest rank), in "
        "seconds; failures with no such deploy yet are counted as unrestored."
    ),
}

_DAYS = (select(DAYS.c.deployments, DAYS.c.succeeded, DAYS.c.failures, DAYS.c.restored, DAYS.c.lead_seconds,
                DAYS.c.restore_seconds)
         .where(DAYS.c.target == bindparam("target"), DAYS.c.day >= bindparam("first"), DAYS.c.day < bindparam("end")))
_EDGES = (select(FACTS.c.succeeded_at.is_not(None), FACTS.c.lead_seconds, FACTS.c.failed_at.is_not(None),
                 FACTS.c.restore_seconds)
          .where(or_(and_(FACTS.c.out_at >= bindparam("a0"), FACTS.c.out_at < bindparam("a1")),
                     and_(FACTS.c.out_at >= bindparam("b0"), FACTS.c.out_at < bindparam("b1")))))
_EDGES_OF_TARGET = _EDGES.where(FACTS.c.target == bindparam("target"))


def nearest_rank(ordered: list[float], p: int) -> float | None:
    """The p-th percentile of ascending values: value number ceil(p * n / 100)."""
    return ordered[(len(ordered) * p + 99) // 100 - 1] if ordered else None


def deployment_changed(uow: UnitOfWork, deploy) -> None:
    """``deploy`` succeeded, was rolled back or judged unhealthy in this unit of work: its DORA facts
    (and those of the earlier failures it restores or stops restoring) are re-derived at commit."""
    uow.defer("dora", deploy, lambda deploys: refresh(uow.conn, deploys))


def window(now: datetime, since: str | None, until: str | None) -> tuple[datetime, datetime]:
    end = parse_iso(until) if until else now
    start = parse_iso(since) if since else end - timedelta(days=DEFAULT_DAYS)
    if start >= end:
        raise InvalidInput(f"--since ({iso(start)}) must be before --until ({iso(end)})")
    return start, end


def _round(value) -> float | None:
    return None if value is None else round(float(value), 3)


def _midnight(moment: datetime, *, up: bool) -> datetime:
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return day + timedelta(days=1) if up and day != moment else day


def dora_figures(
    uow: UnitOfWork, since: str | None = None, until: str | None = None, target: str | None = None,
) -> dict:
    start, end = window(uow.now(), since, until)
    first, last = _midnight(start, up=True), _midnight(end, up=False)
    if first >= last:  # no whole day inside: the window's deployments themselves
        first = last = end
    days = uow.conn.execute(_DAYS, {"target": target or ALL_TARGETS, "first": first.date().isoformat(),
                                    "end": last.date().isoformat()}).all() if first < last else []
    edges = uow.conn.execute(_EDGES_OF_TARGET if target else _EDGES, {
        "a0": start, "a1": first, "b0": last, "b1": end} | ({"target": target} if target else {})).all()
    deployments = sum(d.deployments for d in days) + len(edges)
    succeeded = sum(d.succeeded for d in days) + sum(1 for e in edges if e[0])
    failures = sum(d.failures for d in days) + sum(1 for e in edges if e[2])
    leads = sorted([v for d in days for v in json.loads(d.lead_seconds)] + [e[1] for e in edges if e[1] is not None])
    restores = sorted([v for d in days for v in json.loads(d.restore_seconds)]
                      + [e[3] for e in edges if e[3] is not None])
    span = (end - start).total_seconds() / 86400
    return {
        "since": iso(start),
        "until": iso(end),
        "target": target,
        "days": _round(span),
        "deployment_frequency": {"per_day": _round(succeeded / span), "succeeded_deploys": succeeded},
        "lead_time": {"median_seconds": _round(nearest_rank(leads, 50)), "p90_seconds": _round(nearest_rank(leads, 90)),
                      "deploys": len(leads)},
        "change_failure_rate": {"rate": _round(failures / deployments) if deployments else None,
                                "failures": failures, "deployments": deployments},
        "time_to_restore": {"median_seconds": _round(nearest_rank(restores, 50)), "restored": len(restores),
                            "unrestored": failures - len(restores)},
    }
